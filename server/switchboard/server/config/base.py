"""The one base every settings model derives from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

FROZEN = ConfigDict(frozen=True, extra="forbid")
"""Read once and passed down, never changed; an unknown key is an error, not a silent no-op."""


class FrozenModel(BaseModel):
    """A settings model: immutable, and strict about keys it does not know (typos)."""

    model_config = FROZEN
