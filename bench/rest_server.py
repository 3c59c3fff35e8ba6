"""What a team would build instead: the same contact reads and writes as REST/JSON
(FastAPI + uvicorn) over the very same store, cache and domain code."""

from __future__ import annotations

import argparse
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel

from switchboard.server.cache.read_cache import ReadCache
from switchboard.server.config.settings import settings_for_tests
from switchboard.server.domain.contacts import ContactService
from switchboard.server.errors import NotFound, SwitchboardError
from switchboard.server.rules.paging import PageTokens
from switchboard.server.rules.payloads import contact_payload
from switchboard.server.store.sqlite.store import SqliteStore
from switchboard.v1 import contacts_pb2


class ContactIn(BaseModel):
    """The writable fields a REST client sends."""

    email: str
    first_name: str = ""
    last_name: str = ""
    company: str = ""
    job_title: str = ""
    country: str = ""
    phone: str = ""
    lists: list[str] = []


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


def make_app(db_path: Path) -> FastAPI:
    """The REST app on its own SQLite file."""
    settings = settings_for_tests(db_path)
    store = SqliteStore(settings.database)
    cache = ReadCache(settings.cache)
    # The REST app serves no listing, so a throwaway page-token key is enough.
    tokens = PageTokens([secrets.token_bytes(32)])
    contacts = ContactService(store, cache, {}, _NoDispatch(), tokens)  # type: ignore[arg-type]

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await store.open()
        yield
        await store.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/v1/contacts")
    async def get_contact(email: str) -> Response:
        try:
            found = await contacts.get(contacts_pb2.GetContactRequest(email=email))
        except NotFound as exc:
            raise HTTPException(404, exc.message) from exc
        return _json(contact_payload(found))

    @app.put("/v1/contacts")
    async def upsert_contact(body: ContactIn) -> Response:
        request = contacts_pb2.UpsertContactRequest(
            contact=contacts_pb2.Contact(**body.model_dump())
        )
        try:
            reply = await contacts.upsert(request)
        except SwitchboardError as exc:
            raise HTTPException(400, exc.message) from exc
        return _json({"contact": contact_payload(reply.contact), "created": reply.created})

    return app


class _NoDispatch:
    def wake(self) -> None:
        """REST contacts start no runs."""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", type=Path, required=True)
    args = parser.parse_args()
    import uvicorn

    uvicorn.run(
        make_app(args.db),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
