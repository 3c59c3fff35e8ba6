"""Segment use-cases: define, list, count and page through the contacts a CEL rule selects."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from switchboard.server.common.timeutil import now_us, set_ts
from switchboard.server.domain.segment_snapshot import FactsSnapshot
from switchboard.server.errors import AlreadyExists, InvalidArgument, NotFound, Violation
from switchboard.server.rules.cel import CelSyntaxError, compile_expression
from switchboard.server.rules.paging import PageTokens
from switchboard.server.rules.segment_expr import ExpressionError, Node, parse
from switchboard.server.rules.segment_facts import day_of
from switchboard.server.rules.segment_sql import POSTGRES, Dialect, to_sql
from switchboard.server.rules.segment_vec import supports
from switchboard.server.rules.validation import Violations, check_length, check_page_size
from switchboard.server.store.base import Store
from switchboard.v1 import contacts_pb2, segments_pb2

_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
_ROLL_CHUNK = 5_000  # rows re-summed per write transaction when days have passed
# PostgreSQL hands out change-log numbers before commit, so one may become visible after a
# higher one: the snapshot re-reads this many changes behind its watermark there.
_PG_REORDER_WINDOW = 1_000


@dataclass(frozen=True, slots=True)
class Compiled:
    """A segment's expression as a SQL condition over `segment_facts f`."""

    where: str
    params: list[Any]
    tree: Node | None = None  # the checked expression, for the column snapshot


def check_expression(expression: str, field: str = "segment.expression") -> Compiled:
    """Parse and translate `expression`.

    Raises:
        InvalidArgument: the expression is not CEL, or outside the supported subset; the
            message names the position (line:column) and, for a bad name, the known fields.
    """
    try:
        compile_expression(expression)  # the reference parser: real CEL, or refused
        tree = parse(expression)
    except (CelSyntaxError, ExpressionError) as exc:
        text = str(exc)
        raise InvalidArgument([Violation(field, text[:200])], f"{field}: {text}") from None
    return Compiled(*to_sql(tree, _DIALECT_FOR_CHECK))


def check_name(v: Violations, name: str, field: str = "name") -> None:
    """A segment name: lower-case letters, digits, `_`, `-`, `.`; a letter first."""
    if not name:
        v.add(field, "is required")
    elif not _NAME.fullmatch(name):
        v.add(field, "must be 1-64 of a-z, 0-9, '_', '-', '.', starting with a letter")


# Checking a definition needs no dialect; the service translates again with its own.
_DIALECT_FOR_CHECK = Dialect(mark="?", attribute="a(?)", has_attribute="h(?)")


class SegmentService:
    """Segments over the store's read model (`segment_facts`)."""

    def __init__(self, store: Store, tokens: PageTokens, dialect: Dialect) -> None:
        self._store = store
        self._tokens = tokens
        self._dialect = dialect
        reorder = _PG_REORDER_WINDOW if dialect == POSTGRES else 0
        self._snapshot = FactsSnapshot(store, reorder_window=reorder)

    async def create(self, segment: segments_pb2.Segment) -> segments_pb2.Segment:
        """Store a new segment after checking its expression."""
        v = Violations()
        check_name(v, segment.name, "segment.name")
        check_length(v, "segment.description", segment.description, 500)
        if not segment.expression.strip():
            v.add("segment.expression", 'is required, e.g. purchases_90d > 5 && country == "FR"')
        v.raise_if_any()
        check_expression(segment.expression)
        stored = segments_pb2.Segment(
            name=segment.name, expression=segment.expression, description=segment.description
        )
        set_ts(stored.created_at, now_us())
        if not await self._store.write(lambda tx: tx.put_segment(stored)):
            raise AlreadyExists(f"a segment named {segment.name!r} exists; delete it first")
        return stored

    async def get(self, name: str) -> segments_pb2.Segment:
        """One segment, or NOT_FOUND."""
        v = Violations()
        check_name(v, name)
        v.raise_if_any()
        found = await self._store.read(lambda tx: tx.segment(name), point=True)
        if found is None:
            raise NotFound(f"no segment named {name!r}")
        return found

    async def list_page(
        self, req: segments_pb2.ListSegmentsRequest
    ) -> segments_pb2.ListSegmentsResponse:
        """Segments by name, a page at a time."""
        v = Violations()
        size = check_page_size(v, req.page_size, 50, 500)
        cursor = self._tokens.decode(req.page_token, ("ListSegments",), v)
        v.raise_if_any()
        after = cursor[1] if cursor else ""
        found = await self._store.read(lambda tx: tx.list_segments(after, size + 1))
        resp = segments_pb2.ListSegmentsResponse(segments=found[:size])
        if len(found) > size:
            resp.next_page_token = self._tokens.encode((0, found[size - 1].name), ("ListSegments",))
        return resp

    async def delete(self, name: str) -> None:
        """Delete a segment, or NOT_FOUND."""
        v = Violations()
        check_name(v, name)
        v.raise_if_any()
        if not await self._store.write(lambda tx: tx.delete_segment(name)):
            raise NotFound(f"no segment named {name!r}")

    async def compiled(self, name: str) -> Compiled:
        """The named segment's SQL condition, with the read model brought up to today."""
        segment = await self.get(name)
        tree = parse(segment.expression)
        await self.roll()
        return Compiled(*to_sql(tree, self._dialect), tree=tree)

    async def roll(self) -> None:
        """Re-sum the windows of rows whose day has come (usually none: one index probe)."""
        today = day_of(now_us())
        while await self._store.read(lambda tx: tx.facts_due(today), point=True):
            await self._store.write(lambda tx: tx.roll_facts(today, _ROLL_CHUNK), bulk=True)

    async def count(self, name: str) -> int:
        """How many live contacts the segment holds now.

        Over the column snapshot when the expression allows (see rules/segment_vec.py and
        domain/segment_attributes.py), else in SQL; both see every write committed before
        the call.
        """
        segment = await self.get(name)
        tree = parse(segment.expression)
        await self.roll()
        if supports(tree):
            counted = await self._snapshot.count(tree)
            if counted is not None:
                return counted
        where, params = to_sql(tree, self._dialect)
        return await self._store.read(lambda tx: tx.segment_count(where, params))

    async def members(
        self, req: segments_pb2.ListSegmentMembersRequest
    ) -> segments_pb2.ListSegmentMembersResponse:
        """Members by contact id, a page at a time."""
        v = Violations()
        check_name(v, req.name)
        size = check_page_size(v, req.page_size, 100, 1000)
        scope = ("ListSegmentMembers", req.name)
        cursor = self._tokens.decode(req.page_token, scope, v)
        v.raise_if_any()
        seg = await self.compiled(req.name)
        after = cursor[1] if cursor else ""
        found = await self._snapshot_members(seg.tree, after, size + 1)
        if found is None:
            found = await self._store.read(
                lambda tx: tx.segment_members(seg.where, seg.params, after, size + 1)
            )
        resp = segments_pb2.ListSegmentMembersResponse(contacts=found[:size])
        if len(found) > size:
            resp.next_page_token = self._tokens.encode((0, found[size - 1].id), scope)
        return resp

    async def _snapshot_members(
        self, tree: Node | None, after: str, limit: int
    ) -> list[contacts_pb2.Contact] | None:
        """The page from the column snapshot, or None when SQL has to answer."""
        if tree is None or not supports(tree):
            return None
        ids = await self._snapshot.member_ids(tree, after, limit)
        if not ids:
            return None if ids is None else []
        where = f"f.contact_id IN ({', '.join(self._dialect.mark for _ in ids)})"
        found: list[contacts_pb2.Contact] = await self._store.read(
            lambda tx: tx.segment_members(where, list(ids), "", len(ids))
        )
        # A contact erased since the snapshot looked would shorten the page: ask SQL.
        return found if len(found) == len(ids) else None

    async def member_ids(self, seg: Compiled, after: str, limit: int) -> list[str]:
        """Up to `limit` member ids after `after` (audience campaigns walk these)."""
        return await self._store.read(
            lambda tx: tx.segment_member_ids(seg.where, seg.params, after, limit)
        )
