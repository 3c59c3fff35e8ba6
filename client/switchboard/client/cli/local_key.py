"""Finding the development key of a local server, so `switchboard` works without --api-key.

`switchboard serve --local` (what `make run` starts) keeps a key with every scope beside its
database: `data/switchboard.db` → `data/switchboard.db.local-api-key`. When the target is on
this machine and no key was given, the client commands read it from there. The database path
is the server's own setting, `SWITCHBOARD_DATABASE__PATH`, when set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

#: The server's default database path, relative to where it was started.
DEFAULT_DATABASE = "data/switchboard.db"
KEY_SUFFIX = ".local-api-key"
KEY_PREFIX = "sb_"
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0", ""})


def is_local(target: str) -> bool:
    """Whether `target` (host:port) names this machine."""
    host = target.rpartition(":")[0] if ":" in target else target
    if target.startswith("[") and "]" in target:
        host = target[1 : target.index("]")]
    return host.lower() in _LOCAL_HOSTS or host.startswith("127.")


def key_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where a local server keeps its development key."""
    env = os.environ if environ is None else environ
    database = Path(env.get("SWITCHBOARD_DATABASE__PATH") or DEFAULT_DATABASE)
    return database.with_name(database.name + KEY_SUFFIX)


def find_local_key(
    target: str, environ: Mapping[str, str] | None = None
) -> tuple[str, Path] | None:
    """The development key and its file, when `target` is local and the file holds a key."""
    if not is_local(target):
        return None
    path = key_path(environ)
    try:
        key = path.read_text("utf-8").strip()
    except OSError:
        return None
    return (key, path) if key.startswith(KEY_PREFIX) else None
