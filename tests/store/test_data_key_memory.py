"""The data-key cache's memory stays small as a worker meets more contacts (issue #16)."""

from __future__ import annotations

import os

from switchboard.server.store.data_keys import KeyRing, new_wrapped_key, seal, unseal

KEYS = 20_000


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_cached_keys_do_not_keep_openssl_state_alive() -> None:
    server_key = os.urandom(32)
    wrapped = [new_wrapped_key(server_key) for _ in range(KEYS)]
    ring = KeyRing()
    before = _rss_bytes()
    for key_id, _, sealed_key in wrapped:
        ring.cipher(server_key, key_id, sealed_key)
    grown = _rss_bytes() - before
    # Caching AESGCM objects kept ~2.8 KB of native state each: ~57 MB for 20,000 keys.
    # The key bytes and their dict entries are a few hundred bytes each.
    assert grown < 20 * 2**20, f"{grown / 2**20:.1f} MB for {KEYS} cached keys"


def test_a_cached_key_still_opens_what_it_sealed() -> None:
    server_key = os.urandom(32)
    key_id, _, sealed_key = new_wrapped_key(server_key)
    ring = KeyRing()
    nonce, ciphertext = seal(ring.cipher(server_key, key_id, sealed_key), b"aad", b"secret")
    assert ring.cached(sealed_key)
    again = ring.cipher(None, key_id, sealed_key)  # from the cache: no server key needed
    assert unseal(again, nonce, ciphertext, b"aad") == b"secret"
