"""The local development key of `switchboard serve --local`, kept beside the database."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from switchboard.server.auth.api_keys import KEY_PREFIX, generate_key


def local_key_path(database_path: str) -> Path:
    """`data/switchboard.db` → `data/switchboard.db.local-api-key`."""
    db = Path(database_path)
    return db.with_name(db.name + ".local-api-key")


def ensure_local_key(database_path: str) -> str:
    """Reuse the stored key, or create one readable by its owner only (0600)."""
    path = local_key_path(database_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        key = path.read_text("utf-8").strip()
    except FileNotFoundError:
        key = ""
    if key.startswith(KEY_PREFIX):
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(0o600)
        return key
    key = generate_key()
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(key + "\n")
    return key
