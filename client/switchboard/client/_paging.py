"""Following `next_page_token` until the last page, once for every List RPC."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from typing import Protocol, TypeVar

T = TypeVar("T")
P = TypeVar("P", bound="Page")


class Page(Protocol):
    """Any List response: it says where the next page starts ('' after the last)."""

    @property
    def next_page_token(self) -> str: ...


async def every_item(
    fetch: Callable[[str], Awaitable[P]], items: Callable[[P], Iterable[T]]
) -> AsyncGenerator[T, None]:
    """Yield `items(page)` of each page `fetch(page_token)` returns, from the first page on."""
    token = ""
    while True:
        page = await fetch(token)
        for item in items(page):
            yield item
        token = page.next_page_token
        if not token:
            return
