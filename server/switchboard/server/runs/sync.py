"""Contact sync runs: a contact change fanned out to the `sync` destinations, in the writing
transaction.

A change starts a `contact.changed` run with one step per destination, in the order they
are configured. Rapid changes coalesce: when the contact's newest `contact.changed` run is
still PENDING and its first step was never claimed (its outbox row has no attempt), the new
snapshot replaces that run's plan instead of queuing another run. The row keeps its place in
the outbox, so the contact's deliveries stay in order, and as no tool has seen the row's
idempotency key yet, reusing it for the newer snapshot is safe. Once a step was claimed, its
run is left alone and the change starts a new run behind it.

Erasure joins the `contact.erased` trigger: the destinations with `erased` in their events
are added as steps after the trigger's own, unless the trigger already calls that
connector's erase action (sent once, not twice). Unclaimed `contact.changed` steps of the
erased contact are skipped rather than sent with what erasure left of the person.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf.struct_pb2 import Struct

from switchboard.server.common import json_text
from switchboard.server.common.ids import new_id
from switchboard.server.common.timeutil import set_ts
from switchboard.server.config.flow import StepSettings, TriggerSettings
from switchboard.server.config.sync import SyncDestinationSettings, SyncSettings
from switchboard.server.connectors.base import Connector, batch_limits
from switchboard.server.rules.payloads import contact_payload, struct_dict
from switchboard.server.rules.plan import Plan, PlanStep
from switchboard.server.rules.sync import StepSync
from switchboard.server.runs.outcome import queue_step
from switchboard.server.runs.sealed import seal_key, with_sealed_email
from switchboard.server.runs.start import start_run
from switchboard.server.runs.sync_chunk import (
    extend_chunk,
    fold_into_chunk,
    item_entry,
    start_chunk_run,
)
from switchboard.server.store.base import RunFilter, WriteTx
from switchboard.server.store.event_log import actor_label, append_details, current_actor
from switchboard.v1 import campaigns_pb2, contacts_pb2

CHANGED_EVENT = "contact.changed"
ERASED_EVENT = "contact.erased"
ERASED_SKIP = "the contact was erased before this change was sent"
RunStatus = campaigns_pb2.RunStatus
StepStatus = campaigns_pb2.StepStatus


class SyncFanout:
    """The `sync` section, made ready for the write path: each change's steps and run shape
    are worked out once per set of destinations, not once per contact (an import starts
    thousands of runs in one transaction).

    `batched` names the (connector, action) pairs whose connector has a batch call: with
    `chunk_runs = "auto"` an import sends those destinations one chunk run per written
    chunk and the others one run per contact.
    """

    def __init__(
        self, sync: SyncSettings, batched: Collection[tuple[str, str]] = frozenset()
    ) -> None:
        self.settings = sync
        dests = [d for d in sync.destinations.values() if "changed" in d.events]
        if sync.chunk_runs == "on":
            chunked = dests
        elif sync.chunk_runs == "off":
            chunked = []
        else:
            chunked = [d for d in dests if (d.connector, d.action) in batched]
        self._all = _Shapes(dests)
        self._chunked = _Shapes(chunked)
        self._single = _Shapes([d for d in dests if not any(d is c for c in chunked)])
        #: Whether an import starts chunk runs (for some destinations at least).
        self.chunks = bool(chunked)

    def change(
        self,
        tx: WriteTx,
        contact: contacts_pb2.Contact,
        fields: list[str],
        now: int,
        *,
        created: bool,
        traceparent: str = "",
    ) -> str | None:
        """Start (or coalesce into) the `contact.changed` run for this accepted write.

        Returns the event when a new run was started (for the dispatcher's count), else None.
        """
        shape = self._all.shape(contact)
        if shape is None:
            return None
        return self._one(tx, shape, contact, fields, now, created, traceparent)

    def _one(
        self,
        tx: WriteTx,
        shape: _Shape,
        contact: contacts_pb2.Contact,
        fields: list[str],
        now: int,
        created: bool,
        traceparent: str,
    ) -> str | None:
        # A contact created by this write has no runs yet: no lookup.
        if self.settings.coalesce and not created and _coalesce(tx, contact, shape, fields, now):
            return None
        attributes = {"version": contact.version, "fields": list(fields), "changes": 1}
        run = shape.new_run(contact.id, attributes, now)
        run.started_by = actor_label(current_actor())
        plan = _ShapedPlan(_base(run.id, contact, attributes), shape.steps, shape.steps_json)
        tx.put_run(run, plan, traceparent)
        queue_step(tx, run, plan, 0, now)
        started = {"event": CHANGED_EVENT, "contact_id": contact.id}
        append_details(tx, "run.started", run.id, now, started, contact.id)
        return CHANGED_EVENT

    def change_chunk(
        self,
        tx: WriteTx,
        changes: list[tuple[contacts_pb2.Contact, list[str], bool]],
        now: int,
        traceparent: str = "",
        open_runs: dict[str, str] | None = None,
        hold_us: int = 0,
        joined: dict[str, str] | None = None,
    ) -> list[str]:
        """Start the sync runs of an import chunk's changes (contact, changed fields,
        created): one chunk run per set of batch destinations, after folding each change
        into its contact's waiting run where coalescing allows, and one run per contact for
        the destinations without a batch call. Returns the event of each run started.

        `open_runs` (destination set -> run id), kept by the caller across the parts of one
        chunk written in separate transactions: a later part joins the run an earlier part
        started while no worker claimed it, and records the runs it starts; a run it starts
        is held back from the workers until `hold_us` (when later), so that the later parts
        find it unclaimed. The last part releases the runs (`release_chunk_runs`); a part
        that never comes (the call failed) leaves the hold to run out.

        `joined` gets contact id -> the chunk run that carries its change (started, joined
        or folded into): the change's event names it (`held_events`)."""
        started: list[str] = []
        groups: dict[int, tuple[_Shape, dict[str, dict[str, Any]]]] = {}
        folds: dict[str, list[tuple[contacts_pb2.Contact, list[str]]]] = {}
        for contact, fields, created in changes:
            single = self._single.shape(contact)
            event = single and self._one(tx, single, contact, fields, now, created, traceparent)
            if event:
                started.append(event)
            shape = self._chunked.shape(contact)
            if shape is None:
                continue
            coalesce = self.settings.coalesce and not created
            if coalesce and _coalesce(tx, contact, shape, fields, now, folds):
                continue
            group = groups.setdefault(id(shape), (shape, {}))
            group[1][contact.id] = item_entry(contact, fields)
        carried = {} if joined is None else joined
        for run_id, folding in folds.items():
            folded = _fold(tx, run_id, folding, now)
            for contact, fields in folding:
                if contact.id in folded:
                    carried[contact.id] = run_id
                elif shape := self._chunked.shape(contact):
                    group = groups.setdefault(id(shape), (shape, {}))
                    group[1][contact.id] = item_entry(contact, fields)
        runs = 0
        for shape, items in groups.values():
            open_run = open_runs is not None and open_runs.get(shape.steps_json)
            if open_run and extend_chunk(tx, open_run, items, now):
                carried.update(dict.fromkeys(items, open_run))
                continue
            run = start_chunk_run(tx, shape.template, shape.steps, items, now, traceparent)
            carried.update(dict.fromkeys(items, run.id))
            runs += 1
            if open_runs is not None:
                open_runs[shape.steps_json] = run.id
            if hold_us > now:
                tx.hold_step(run.id, 0, hold_us)
        return started + [CHANGED_EVENT] * runs

    @staticmethod
    def release_chunk_runs(tx: WriteTx, open_runs: dict[str, str], now: int) -> None:
        """Let the workers take the chunk runs of `change_chunk(open_runs=...)` now."""
        for run_id in open_runs.values():
            tx.hold_step(run_id, 0, now)


class _Shapes:
    """The run shapes of a list of destinations, one per set a contact is sent to."""

    def __init__(self, dests: list[SyncDestinationSettings]) -> None:
        self._dests = dests
        self._shapes: dict[tuple[bool, ...], _Shape] = {}

    def shape(self, contact: contacts_pb2.Contact) -> _Shape | None:
        """The shape of this contact's change run; None when no destination takes it."""
        # update_only: only a tool that already knows the person (an external id) is sent to.
        known = tuple(
            d.mode != "update_only" or bool(contact.external_ids.get(d.connector))
            for d in self._dests
        )
        shape = self._shapes.get(known)
        if shape is None:
            dests = [d for d, take in zip(self._dests, known, strict=True) if take]
            shape = self._shapes[known] = _Shape(dests) if dests else _NO_SHAPE
        return None if shape is _NO_SHAPE else shape


class _Shape:
    """The steps of a change run for one set of destinations, and its run record's form."""

    def __init__(self, dests: list[SyncDestinationSettings]) -> None:
        self.steps = tuple(
            PlanStep(
                d.connector,
                d.action,
                {**d.params, "mode": d.mode},
                sync=StepSync.from_settings(d),
            )
            for d in dests
        )
        # Every run of this shape stores the same steps: encoded once, not per contact.
        self.steps_json = json_text.dumps([s.to_json() for s in self.steps])
        self.template = campaigns_pb2.Run(event=CHANGED_EVENT, status=RunStatus.RUN_STATUS_PENDING)
        for index, step in enumerate(self.steps):
            self.template.steps.add(
                index=index,
                connector=step.connector,
                action=step.action,
                status=StepStatus.STEP_STATUS_PENDING,
            )

    def new_run(self, contact_id: str, attributes: dict[str, Any], now: int) -> campaigns_pb2.Run:
        """A PENDING run of these steps (a C-level copy of the template, then its own data)."""
        run = campaigns_pb2.Run()
        run.CopyFrom(self.template)
        run.id = new_id("r")
        run.contact_id = contact_id
        fields = tuple(attributes["fields"])
        run.attributes.MergeFromString(_attributes(attributes["version"], fields, 1))
        set_ts(run.created_at, now)
        set_ts(run.updated_at, now)
        for step in run.steps:
            step.updated_at.CopyFrom(run.created_at)
        return run


_NO_SHAPE = _Shape([])


@dataclass(frozen=True, slots=True)
class _ShapedPlan(Plan):
    """A change run's plan whose steps' stored form was encoded once for its shape."""

    steps_json: str = "[]"

    def to_json(self) -> str:
        """The same text `Plan.to_json` makes, the steps not encoded again."""
        base = json_text.dumps(self.base)
        return f'{{"base":{base},"steps":{self.steps_json}}}'


@functools.lru_cache(maxsize=4096)
def _attributes(version: int, fields: tuple[str, ...], changes: int) -> bytes:
    """A change run's attributes as Struct bytes: an import repeats a handful of shapes."""
    struct = Struct()
    struct.update({"version": version, "fields": list(fields), "changes": changes})
    return struct.SerializeToString()


def _base(run_id: str, contact: contacts_pb2.Contact, attributes: dict[str, Any]) -> dict[str, Any]:
    return {
        "event": CHANGED_EVENT,
        "run_id": run_id,
        "contact": contact_payload(contact),
        "attributes": attributes,
    }


def _coalesce(
    tx: WriteTx,
    contact: contacts_pb2.Contact,
    shape: _Shape,
    fields: list[str],
    now: int,
    folds: dict[str, list[tuple[contacts_pb2.Contact, list[str]]]] | None = None,
) -> bool:
    """Fold this change into the contact's newest unclaimed sync run, if there is one.

    A chunk run's fold is added to `folds` (run id -> changes) when given, so that an
    import chunk reads and writes each chunk plan once, not once per contact.
    """
    # Only a run whose first step no worker claimed: a tool may have seen a claimed
    # step's key, so the change queues behind it.
    run = tx.pending_run(contact.id, CHANGED_EVENT)
    if run is None:
        return False
    steps = shape.steps
    if [(s.connector, s.action) for s in run.steps] != [(s.connector, s.action) for s in steps]:
        return False  # another set of destinations (an update_only tool learnt the person)
    if struct_dict(run.attributes).get("chunk"):
        if folds is not None:
            folds.setdefault(run.id, []).append((contact, fields))
            return True
        return bool(_fold(tx, run.id, [(contact, fields)], now))
    before = struct_dict(run.attributes)
    seen = [str(f) for f in before.get("fields") or []]
    attributes: dict[str, Any] = {
        "version": contact.version,
        "fields": seen + [f for f in fields if f not in seen],
        "changes": int(before.get("changes", 1)) + 1,
    }
    run.attributes.Clear()
    run.attributes.update(attributes)
    set_ts(run.updated_at, now)
    tx.update_plan(run.id, Plan(_base(run.id, contact, attributes), steps))
    tx.put_run(run)
    body = {"run_id": run.id, "version": contact.version}
    append_details(tx, "run.coalesced", run.id, now, body, contact.id)
    return True


def _fold(
    tx: WriteTx, run_id: str, changes: list[tuple[contacts_pb2.Contact, list[str]]], now: int
) -> set[str]:
    """Fold `changes` into the chunk run `run_id`; returns the ids of the contacts folded."""
    folded = fold_into_chunk(tx, run_id, changes)
    for contact in folded:
        body = {"run_id": run_id, "contact_id": contact.id, "version": contact.version}
        append_details(tx, "run.coalesced", run_id, now, body, contact.id)
    return {c.id for c in folded}


def erasure_trigger(trigger: TriggerSettings | None, sync: SyncSettings) -> TriggerSettings | None:
    """The `contact.erased` steps: the trigger's, then each destination's erase action
    that the trigger does not already call. None when nothing is to be told."""
    steps = list(trigger.steps) if trigger else []
    calls = {(s.connector, s.action) for s in steps}
    for dest in sync.destinations.values():
        if "erased" not in dest.events or dest.erase_action is None:
            continue
        if (dest.connector, dest.erase_action) in calls:
            continue
        calls.add((dest.connector, dest.erase_action))
        steps.append(StepSettings(connector=dest.connector, action=dest.erase_action))
    if not steps:
        return None
    description = trigger.description if trigger else "Erasure sent to the sync destinations."
    return TriggerSettings(description=description, steps=steps)


def start_erasure(
    tx: WriteTx,
    trigger: TriggerSettings,
    contact_id: str,
    email: str,
    now: int,
    traceparent: str = "",
) -> campaigns_pb2.Run:
    """Start the `contact.erased` run of an erased contact.

    Its plan names the person by id, and by email only sealed (see `runs/sealed.py`): the
    tools that delete by email can still be told, and nothing readable is kept.
    """
    stub = contacts_pb2.Contact(id=contact_id)
    run = start_run(tx, ERASED_EVENT, trigger, stub, Struct(), now, traceparent=traceparent)
    plan = tx.run_plan(run.id)
    if email and plan is not None:
        tx.update_plan(run.id, with_sealed_email(plan, seal_key(tx), email, run.id))
    return run


def skip_pending_changes(tx: WriteTx, contact_id: str, now: int) -> None:
    """Skip the erased contact's `contact.changed` steps that no worker has claimed."""
    for status in (RunStatus.RUN_STATUS_PENDING, RunStatus.RUN_STATUS_RUNNING):
        flt = RunFilter(contact_id=contact_id, event=CHANGED_EVENT, status=status)
        for run in tx.list_runs(flt, None, 1000):
            # A chunk run covers others too: erasure reduced this contact's item to its
            # id, and the dispatcher skips such an item.
            if not struct_dict(run.attributes).get("chunk"):
                _skip_rest(tx, run, now)


def _skip_rest(tx: WriteTx, run: campaigns_pb2.Run, now: int) -> None:
    waiting = (StepStatus.STEP_STATUS_PENDING,)
    current = next((s.index for s in run.steps if s.status in waiting), None)
    if current is None:
        return
    item = tx.outbox_item(run.id, current)
    if item is None or item.attempts:
        return  # in flight or retrying: it ends on its own
    tx.finish_outbox(item.id)
    for step in run.steps[current:]:
        step.status = StepStatus.STEP_STATUS_SKIPPED
        step.skip_reason = ERASED_SKIP
        set_ts(step.updated_at, now)
    failed = any(s.status == StepStatus.STEP_STATUS_FAILED for s in run.steps)
    run.status = RunStatus.RUN_STATUS_FAILED if failed else RunStatus.RUN_STATUS_SUCCEEDED
    set_ts(run.updated_at, now)
    set_ts(run.finished_at, now)
    tx.put_run(run)


def check_destinations(sync: SyncSettings, registry: Mapping[str, Connector]) -> None:
    """Check that every destination's connector is configured and has its actions.

    Raises:
        ValueError: naming the destination, the connector and the action.
    """
    for name, dest in sync.destinations.items():
        connector = registry.get(dest.connector)
        where = f"sync destination {name!r}: connector {dest.connector!r}"
        if connector is None:
            raise ValueError(f"{where} is not configured")
        for action in _actions(dest):
            if action not in connector.actions:
                known = ", ".join(sorted(connector.actions))
                raise ValueError(f"{where} has no action {action!r} (its actions: {known})")
        changed = "changed" in dest.events
        if sync.chunk_runs == "on" and changed and batch_limits(connector, dest.action)[0] <= 1:
            # A chunk step to a tool without a batch call would send its contacts one call
            # each and hold the whole chunk until the last one ended.
            raise ValueError(
                f"{where} has no batch call for {dest.action!r}, which sync.chunk_runs = "
                "'on' needs: use 'auto' (chunk runs only where there is a batch call)"
            )


def batched_destinations(
    sync: SyncSettings, registry: Mapping[str, Connector]
) -> frozenset[tuple[str, str]]:
    """The (connector, action) pairs of `sync` destinations whose connector has a batch
    call for that action: the ones `chunk_runs = "auto"` sends chunk runs to."""
    pairs = {(d.connector, d.action) for d in sync.destinations.values()}
    return frozenset(
        (name, action)
        for name, action in pairs
        if (connector := registry.get(name)) is not None and batch_limits(connector, action)[0] > 1
    )


def _actions(dest: SyncDestinationSettings) -> list[str]:
    actions = [dest.action] if "changed" in dest.events else []
    if "erased" in dest.events and dest.erase_action:
        actions.append(dest.erase_action)
    return actions
