"""Opening the log's rows for a replay: only what the read models need.

`event_log.decode_rows` frames every event for callers (cursor, time, schema version); a
replay reads the row's own columns instead and skips that, which is a third of its cost.
Keys are looked up once per chunk and unwrapped once per contact (`KEYRING` caches them).
"""

from __future__ import annotations

from collections.abc import Sequence

from switchboard.server.store import data_keys
from switchboard.server.store.data_keys import KEYRING, SERVER_KEY_NAME, Unreadable
from switchboard.server.store.event_log import ENVELOPE_VERSION, EventReads, EventRow, legacy_event
from switchboard.server.store.replay import ReadModels
from switchboard.server.store.sealed_pb2 import SealedEventView
from switchboard.v1 import events_pb2


def replay_rows(tx: EventReads, rows: Sequence[EventRow], models: ReadModels) -> None:
    """Open `rows` (oldest first) and fold them into `models`."""
    ids = sorted({r.contact_id for r in rows if r.version == ENVELOPE_VERSION and r.contact_id})
    keys = tx.contact_keys(ids) if ids else {}
    server_key: list[bytes | None] = []  # read once, on the first key not yet unwrapped
    for row in rows:
        if row.version != ENVELOPE_VERSION:
            models.apply(row, legacy_event(row))
            continue
        sealed = SealedEventView.FromString(row.payload)
        event = events_pb2.Event.FromString(sealed.clear)
        if sealed.ciphertext:
            stored = keys.get(row.contact_id)
            personal = None
            if stored is not None and stored[0] == sealed.key_id:
                if not server_key and not KEYRING.cached(stored[1]):
                    server_key.append(tx.server_key_or_none(SERVER_KEY_NAME))
                try:
                    cipher = KEYRING.cipher(server_key[0] if server_key else None, *stored)
                    # The associated data `event_log.append` bound the value to.
                    aad = sealed.key_id + b"\x00" + row.type.encode()
                    personal = data_keys.unseal(cipher, sealed.nonce, sealed.ciphertext, aad)
                except Unreadable:
                    personal = None
            if personal is None:
                event.redacted = True  # the key was destroyed: the person was erased
            else:
                event.MergeFromString(personal)
        models.apply(row, event)
