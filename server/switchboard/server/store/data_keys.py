"""Per-person data keys: AES-256-GCM keys that seal the personal values of events.

Each contact gets its own data key on the first event that holds something personal about
them. The key is stored wrapped (AES-GCM under the database's own server key, made once
and kept in `server_keys`), in `contact_keys`. Erasing the contact deletes that row: the
events stay (the log is append-only) but what was sealed with the key can no longer be
read. This is crypto-shredding.

Pure apart from the in-process cache of unwrapped keys. The cache is keyed by the wrapped
bytes (random per key), so it is only ever consulted after the row was found in the
database: a destroyed key is never used again, even by a process that still caches it.
"""

from __future__ import annotations

import functools
import os
from collections import OrderedDict

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SERVER_KEY_NAME = "event_data_keys"
KEY_ID_BYTES = 8
NONCE_BYTES = 12  # the 96-bit nonce GCM is specified for; random per message
_WRAP_CONTEXT = b"switchboard contact key v1\x00"
_CACHE_SIZE = 50_000


class Unreadable(Exception):
    """A sealed value does not open with the key it names (altered, or a wrong key)."""


def new_wrapped_key(server_key: bytes) -> tuple[bytes, bytes, bytes]:
    """A fresh data key: `(key_id, key, wrapped)`, with a random 8-byte id, a 256-bit AES
    key, and the key sealed under the server key (nonce followed by ciphertext), bound to
    its id. One call to the OS's random source for all three (it is most of the cost)."""
    material = os.urandom(KEY_ID_BYTES + 32 + NONCE_BYTES)
    key_id, key, nonce = (
        material[:KEY_ID_BYTES],
        material[KEY_ID_BYTES:-NONCE_BYTES],
        material[-NONCE_BYTES:],
    )
    wrapped = nonce + _wrapper(server_key).encrypt(nonce, key, _WRAP_CONTEXT + key_id)
    return key_id, key, wrapped


@functools.lru_cache(maxsize=8)
def _wrapper(server_key: bytes) -> AESGCM:
    # One object per server key (one per database): every created contact wraps a key.
    return AESGCM(server_key)


class KeyRing:
    """Opens wrapped data keys (cached) and seals or opens values with them.

    The cache holds the unwrapped key bytes, not `AESGCM` objects: each of those holds ~2.8 KB
    of OpenSSL state outside Python's heap (invisible to tracemalloc), so a full cache of
    them was ~140 MB per worker process, and the soak's workers grew by that as they met
    more contacts. Making the object again per use costs ~3.5 µs.
    """

    def __init__(self) -> None:
        self._open: OrderedDict[bytes, bytes] = OrderedDict()

    def cipher(self, server_key: bytes | None, key_id: bytes, wrapped: bytes) -> AESGCM:
        """The AES-GCM object of a stored key; `server_key` is needed only on a cache miss.

        Raises:
            Unreadable: the wrapped key does not open with the server key (or none is given).
        """
        found = self._open.get(wrapped)
        if found is not None:
            self._open.move_to_end(wrapped)
            return AESGCM(found)
        if server_key is None:
            raise Unreadable("no server key")
        try:
            raw = _wrapper(server_key).decrypt(
                wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _WRAP_CONTEXT + key_id
            )
        except InvalidTag as exc:
            raise Unreadable("the data key does not open with this database's server key") from exc
        return self.remember(wrapped, raw)

    def cached(self, wrapped: bytes) -> bool:
        """Whether the key stored as `wrapped` is already open in this process."""
        return wrapped in self._open

    def remember(self, wrapped: bytes, raw: bytes) -> AESGCM:
        """Keep an opened key (e.g. one just made) so the next event skips unwrapping."""
        self._open[wrapped] = raw
        if len(self._open) > _CACHE_SIZE:
            self._open.popitem(last=False)
        return AESGCM(raw)


def seal(cipher: AESGCM, aad: bytes, plaintext: bytes) -> tuple[bytes, bytes]:
    """`(nonce, ciphertext)` of `plaintext`, bound to `aad`."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce, cipher.encrypt(nonce, plaintext, aad)


def unseal(cipher: AESGCM, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """The plaintext of a sealed value.

    Raises:
        Unreadable: it was altered, or sealed under another key or context.
    """
    try:
        return cipher.decrypt(nonce, ciphertext, aad)
    except InvalidTag as exc:
        raise Unreadable("a sealed event value does not open with its key") from exc


# One per process: unwrapped keys are shared by every store and transaction in it.
KEYRING = KeyRing()
