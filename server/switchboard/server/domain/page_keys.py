"""The keys that sign page tokens: the configured ones, or the database's own."""

from __future__ import annotations

import secrets

from switchboard.server.config.security import PageTokenSettings
from switchboard.server.rules.paging import PageTokens
from switchboard.server.store.base import Store

_DB_KEY_NAME = "page_tokens"


async def load_page_tokens(settings: PageTokenSettings, store: Store) -> PageTokens:
    """The configured keys, or the database's own key (made on first use).

    Raises:
        ValueError: a configured key cannot be resolved or is too short.
    """
    keys = settings.signing_keys()
    if not keys:
        fresh = secrets.token_bytes(32)
        keys = [await store.write(lambda tx: tx.server_key(_DB_KEY_NAME, fresh))]
    return PageTokens(keys)
