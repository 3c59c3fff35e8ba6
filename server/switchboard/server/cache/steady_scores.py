"""Which cached inputs of ScoreLead are known to re-score to the lead they hold.

A lead with no recorded activities scores the same at any time: its points come from the
contact's profile and the lead's status alone (only activities decay). Once ScoreLead has
found that such a lead's stored score holds for the exact cached bytes of its contact and
lead state, re-scoring those same bytes again can only find the same; the next call with
them answers the stored lead without running the rules (about a quarter of the call's server
CPU, `docs/performance.md`).

What is kept is a 16-byte digest of the two byte strings, not the bytes: nothing personal
stays here after the cache drops a contact (an erasure included), and a changed contact or
lead state (a new version, status, score or activity) has other bytes, so another digest.
The set is bounded; the oldest digests go first.
"""

from __future__ import annotations

import hashlib

#: Digests kept: 89 bytes each with the dict's own (1.5 MB when full). More than the memory
#: cache's default 10,000 entries can hold lead states for; a digest of inputs no longer
#: cached is never matched again, so only the hot set needs to fit.
MAX_DIGESTS = 16_384


class SteadyScores:
    """A bounded set of digests of (contact bytes, lead state bytes) whose score holds."""

    def __init__(self, max_digests: int = MAX_DIGESTS) -> None:
        self._max = max_digests
        self._digests: dict[bytes, None] = {}  # insertion-ordered: the oldest first
        #: Calls answered from a digest found here (`holds` true), for the metrics.
        self.answered = 0

    def __len__(self) -> int:
        return len(self._digests)

    @staticmethod
    def digest(contact: bytes, state: bytes) -> bytes:
        """The key of one pair of cached inputs."""
        # The contact's length first: two splits of the same bytes are two keys.
        h = hashlib.blake2b(len(contact).to_bytes(4, "little"), digest_size=16)
        h.update(contact)
        h.update(state)
        return h.digest()

    def holds(self, digest: bytes) -> bool:
        """Whether the inputs of `digest` were found to hold their stored score (counted in
        `answered` when they were: the caller answers from it)."""
        if digest in self._digests:
            self.answered += 1
            return True
        return False

    def add(self, digest: bytes) -> None:
        """Remember that the inputs of `digest` hold their stored score."""
        if digest in self._digests:
            return
        if len(self._digests) >= self._max:
            del self._digests[next(iter(self._digests))]
        self._digests[digest] = None
