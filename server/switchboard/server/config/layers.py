"""How the layers of settings combine: each layer extends the one below it.

A layer is nested tables as TOML (or the environment) gives them. Merging `upper` into
`lower`:

- tables merge key by key, at any depth (`[cache] ttl_s = 5` keeps every other cache key);
- a value or a list replaces the one below (a trigger's `steps` list is replaced whole);
- in a *named table* (a table of entries by name: connectors, triggers, inbound sources,
  API-key callers), an entry set to `false` removes the entry below (`connectors.crm =
  false`), and an entry holding `replace = true` replaces the entry below instead of merging
  into it (`[connectors.crm]` + `replace = true` + a new `kind`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, get_args, get_origin

from pydantic import BaseModel

REPLACE = "replace"
"""The key that makes an entry replace the one below instead of extending it."""

Path = tuple[str, ...]


class LayerError(ValueError):
    """A removal or replacement that cannot apply; the message names the key."""


def extend(
    lower: Mapping[str, Any],
    upper: Mapping[str, Any],
    named_tables: frozenset[Path],
    path: Path = (),
) -> dict[str, Any]:
    """`lower` extended by `upper` (neither is changed).

    Args:
        lower: the layer below (e.g. the defaults).
        upper: the layer on top (e.g. a file).
        named_tables: paths of the tables whose entries may be removed or replaced.
        path: where `lower` and `upper` sit (for recursion and messages).

    Raises:
        LayerError: a removal of an entry that is not there, or a non-boolean `replace`.
    """
    merged = dict(lower)
    for key, value in upper.items():
        here = (*path, key)
        if path in named_tables:
            _extend_entry(merged, key, value, here, named_tables)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = extend(merged[key], value, named_tables, here)
        else:
            merged[key] = value
    return merged


def _extend_entry(
    merged: dict[str, Any], key: str, value: Any, here: Path, named_tables: frozenset[Path]
) -> None:
    if value is False:
        if key not in merged:
            have = ", ".join(sorted(merged)) or "none"
            raise LayerError(f"{dotted(here)} = false removes nothing (entries: {have})")
        del merged[key]
        return
    if isinstance(value, Mapping) and REPLACE in value:
        replace = value[REPLACE]
        if not isinstance(replace, bool):
            raise LayerError(f"{dotted((*here, REPLACE))} must be true or false")
        value = {k: v for k, v in value.items() if k != REPLACE}
        if replace:
            merged[key] = value
            return
    below = merged.get(key)
    if isinstance(value, Mapping) and isinstance(below, Mapping):
        merged[key] = extend(below, value, named_tables, here)
    else:
        merged[key] = value


def named_tables(model: type[BaseModel], path: Path = ()) -> frozenset[Path]:
    """Paths of the fields of `model` (and its sections) typed `dict[str, <a model>]`."""
    return frozenset(_named_tables(model, path))


def _named_tables(model: type[BaseModel], path: Path) -> Iterator[Path]:
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from _named_tables(kind, (*path, name))
        elif get_origin(kind) is dict and _is_model(get_args(kind)[1]):
            yield (*path, name)


def _is_model(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, BaseModel)


def dotted(path: tuple[str | int, ...]) -> str:
    """A key path as TOML writes it: `triggers."newsletter.signup".steps[0]`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        bare = part.replace("_", "").replace("-", "").isalnum()
        name = part if bare else f'"{part}"'
        out += f".{name}" if out else name
    return out
