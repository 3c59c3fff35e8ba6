"""Lead use-cases: record activities, score, move through the lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from google.protobuf.struct_pb2 import Struct

from switchboard.server.cache.entries_pb2 import LeadState, StoredActivity
from switchboard.server.cache.read_cache import ReadCache, lead_key
from switchboard.server.cache.steady_scores import SteadyScores
from switchboard.server.common.ids import new_id
from switchboard.server.common.timeutil import iso, now_us, set_ts, to_us
from switchboard.server.config.flow import TriggerSettings
from switchboard.server.config.sections import ScoringSettings
from switchboard.server.dispatch.worker import Dispatcher
from switchboard.server.domain.contacts import read_through
from switchboard.server.domain.idempotency import write_once
from switchboard.server.errors import NotFound, SwitchboardError, status_name
from switchboard.server.observability.telemetry import current_traceparent
from switchboard.server.rules import leads as lead_rules
from switchboard.server.rules.payloads import profile
from switchboard.server.rules.scoring import ScoreResult, ScoringEngine
from switchboard.server.rules.validation import (
    Violations,
    check_email,
    check_id,
    check_idempotency_key,
    check_length,
    check_struct,
    normalize_email,
)
from switchboard.server.runs.start import start_run
from switchboard.server.store import event_values
from switchboard.server.store.base import ActivityRow, ReadTx, Store, WriteTx
from switchboard.server.store.event_log import append, as_caller
from switchboard.v1 import common_pb2, contacts_pb2, leads_pb2

STATUS_EVENT = "lead.status_updated"
_FUTURE_SLACK_US = 5 * 60 * 1_000_000
_PAYLOAD_ACTIVITIES = 100
# A lead state with more recent activities than this is read from the store each time rather
# than cached: it keeps one cache entry under a few kilobytes.
_CACHED_ACTIVITIES = 64


def check_ref(v: Violations, ref: leads_pb2.ContactRef, field: str = "contact") -> tuple[str, str]:
    """Validate a ContactRef; return (id, normalized email)."""
    which = ref.WhichOneof("lookup")
    if which == "id":
        check_id(v, f"{field}.id", ref.id, "c", required=True)
        return ref.id, ""
    if which == "email":
        return "", check_email(v, f"{field}.email", ref.email, required=True)
    v.add(field, "set contact.id or contact.email")
    return "", ""


def _stored_lead(contact: contacts_pb2.Contact, state: LeadState) -> leads_pb2.Lead:
    """The stored lead (the state is the caller's own decoded copy), or a NEW one for a
    contact never scored."""
    if state.has_lead:
        return state.lead
    return leads_pb2.Lead(contact_id=contact.id, status=leads_pb2.LEAD_STATUS_NEW)


def _store_score(tx: WriteTx, lead: leads_pb2.Lead, now: int) -> None:
    """Store a re-scored lead and log it, unless its contact was erased meanwhile."""
    if tx.contact_by_id(lead.contact_id) is not None:
        tx.put_lead(lead)
        _scored_event(tx, lead, now)


def _scored_event(tx: WriteTx, lead: leads_pb2.Lead, now: int) -> None:
    # The log holds every stored score, so a replay rebuilds the leads (`store/replay.py`).
    clear, personal = event_values.lead_scored(lead)
    cid = lead.contact_id
    append(tx, "lead.scored", cid, now, contact_id=cid, clear=clear, personal=personal)


def _resolve(tx: ReadTx, contact_id: str, email: str) -> contacts_pb2.Contact:
    contact = tx.contact_by_id(contact_id) if contact_id else tx.contact_by_email(email)
    if contact is None:
        raise NotFound(
            f"no contact with {'id ' + repr(contact_id) if contact_id else 'email ' + repr(email)}"
        )
    return contact


class LeadService:
    """Scoring and lifecycle over the store, with rules from settings."""

    def __init__(
        self,
        store: Store,
        cache: ReadCache,
        rules: ScoringSettings,
        triggers: Mapping[str, TriggerSettings],
        dispatcher: Dispatcher,
        steady: SteadyScores | None = None,
    ) -> None:
        self._store = store
        self._cache = cache
        self._rules = rules
        self._engine = ScoringEngine(rules)
        self._triggers = triggers
        self._dispatcher = dispatcher
        self._steady = steady if steady is not None else SteadyScores()

    def _rescore(
        self, tx: ReadTx, contact: contacts_pb2.Contact, lead: leads_pb2.Lead, now: int
    ) -> None:
        rows = tx.recent_activities(contact.id, self._rules.max_activities)
        result = self._result(contact, lead, rows, now)
        lead_rules.apply_score(lead, result, tx.activity_count(contact.id), now)

    def _result(
        self,
        contact: contacts_pb2.Contact,
        lead: leads_pb2.Lead,
        rows: Iterable[ActivityRow | StoredActivity],
        now: int,
    ) -> ScoreResult:
        timed = [(r.type, r.occurred_us, r.value) for r in rows]
        status = lead_rules.status_name(lead.status)
        return self._engine.score_us(profile(contact), timed, status, now)

    async def _contact(self, contact_id: str, email: str) -> contacts_pb2.Contact:
        """The contact, through the contact cache."""
        return contacts_pb2.Contact.FromString(await self._contact_wire(contact_id, email))

    async def _contact_wire(self, contact_id: str, email: str) -> bytes:
        which, key = ("id", contact_id) if contact_id else ("email", email)
        return await read_through(self._store, self._cache, which, key)

    async def _state(self, contact_id: str) -> LeadState:
        """The stored lead, recent activities and count, through the cache: every write to
        them drops the cached state before it is acknowledged (`lead_key`)."""
        state = await self._cache.get_lead_state(contact_id)
        return state if state is not None else await self._load_state(contact_id)

    async def _load_state(self, contact_id: str) -> LeadState:
        """The lead state from the store, then cached unless it is large."""
        state = await self._store.read(lambda tx: self._read_state(tx, contact_id), point=True)
        if len(state.recent) <= _CACHED_ACTIVITIES:
            await self._cache.put_lead_state(contact_id, state)
        return state

    def _read_state(self, tx: ReadTx, contact_id: str) -> LeadState:
        state = LeadState(read_us=now_us())
        lead = tx.lead(contact_id)
        if lead is not None:
            state.lead.CopyFrom(lead)
            state.has_lead = True
        state.activity_count = tx.activity_count(contact_id)
        if state.activity_count:
            for r in tx.recent_activities(contact_id, self._rules.max_activities):
                state.recent.add(type=r.type, occurred_us=r.occurred_us, value=r.value)
        return state

    @staticmethod
    def _lead(tx: ReadTx, contact: contacts_pb2.Contact) -> leads_pb2.Lead:
        lead = tx.lead(contact.id)
        return (
            lead
            if lead is not None
            else leads_pb2.Lead(contact_id=contact.id, status=leads_pb2.LEAD_STATUS_NEW)
        )

    async def record_activity(
        self, req: leads_pb2.RecordActivityRequest
    ) -> leads_pb2.RecordActivityResponse:
        """Store one activity and re-score its lead."""
        v = Violations()
        contact_id, email = check_ref(v, req.contact)
        act = req.activity
        if act.type == leads_pb2.ACTIVITY_TYPE_UNSPECIFIED:
            v.add("activity.type", "is required (e.g. ACTIVITY_TYPE_EMAIL_CLICK)")
        elif act.type not in leads_pb2.ActivityType.values():
            # proto3 enums are open: a newer client may send a value this server lacks.
            v.add("activity.type", f"{act.type} is not a known activity type")
        received = now_us()
        occurred = to_us(act.occurred_at) if act.HasField("occurred_at") else received
        if occurred > received + _FUTURE_SLACK_US:
            v.add("activity.occurred_at", "is more than 5 minutes in the future")
        if act.value < 0:
            v.add("activity.value", "must not be negative")
        check_struct(v, "activity.attributes", act.attributes)
        check_idempotency_key(v, req.idempotency_key)
        v.raise_if_any()
        kind = leads_pb2.ActivityType.Name(act.type).removeprefix("ACTIVITY_TYPE_").lower()

        def work(tx: WriteTx, now: int) -> tuple[leads_pb2.RecordActivityResponse, None]:
            contact = _resolve(tx, contact_id, email)
            activity_id = new_id("a")
            tx.add_activity(
                activity_id,
                contact.id,
                ActivityRow(kind, occurred, act.value),
                act.attributes.SerializeToString(),
            )
            lead = self._lead(tx, contact)
            self._rescore(tx, contact, lead, now)
            tx.put_lead(lead)
            clear, personal = event_values.activity_recorded(
                activity_id, act.type, occurred, act.value, act.attributes, lead
            )
            append(
                tx,
                "lead.activity_recorded",
                contact.id,
                now,
                contact_id=contact.id,
                clear=clear,
                personal=personal,
            )
            return leads_pb2.RecordActivityResponse(activity_id=activity_id, lead=lead), None

        resp, _ = await write_once(
            self._store,
            "RecordActivity",
            req,
            req.idempotency_key,
            leads_pb2.RecordActivityResponse,
            work,
            lambda r: r.lead.contact_id,
        )
        await self._cache.invalidate(lead_key(resp.lead.contact_id))
        return resp

    async def score(self, ref: leads_pb2.ContactRef) -> leads_pb2.Lead:
        """Re-score now from fresh inputs; store the result when it changed."""
        v = Violations()
        contact_id, email = check_ref(v, ref)
        v.raise_if_any()
        raw = await self._contact_wire(contact_id, email)
        contact = contacts_pb2.Contact.FromString(raw)
        cached = await self._cache.get_lead_state_wire(contact.id)
        steady = b""  # the digest of both cached inputs, when no activity can decay
        if cached is None:
            state = await self._load_state(contact.id)
        else:
            state = LeadState.FromString(cached)
            if not state.recent:
                steady = self._steady.digest(raw, cached)
                if self._steady.holds(steady):
                    # These exact inputs re-scored to their stored lead before, and with
                    # nothing to decay cannot score otherwise now: the stored lead, scored now.
                    set_ts(state.lead.scored_at, now_us())
                    return state.lead
        now = now_us()
        lead = _stored_lead(contact, state)
        result = self._result(contact, lead, state.recent, now)
        if lead.HasField("scored_at") and lead_rules.holds(lead, result, state.activity_count):
            if steady:
                self._steady.add(steady)
            set_ts(lead.scored_at, now)  # the usual case: nothing to store
            return lead
        lead_rules.apply_score(lead, result, state.activity_count, now)
        await self._store.write(as_caller(lambda tx: _store_score(tx, lead, now)))
        await self._cache.invalidate(lead_key(contact.id))
        return lead

    async def get(self, ref: leads_pb2.ContactRef) -> leads_pb2.Lead:
        """The stored lead; a contact never scored is a NEW lead with no score."""
        v = Violations()
        contact_id, email = check_ref(v, ref)
        v.raise_if_any()
        contact = await self._contact(contact_id, email)
        state = await self._state(contact.id)
        lead = _stored_lead(contact, state)
        if not lead.HasField("scored_at"):
            lead.activity_count = state.activity_count
        return lead

    async def update_status(
        self, req: leads_pb2.UpdateLeadStatusRequest
    ) -> leads_pb2.UpdateLeadStatusResponse:
        """Move the lead, re-score it, and start the `lead.status_updated` run if configured."""
        v = Violations()
        contact_id, email = check_ref(v, req.contact)
        if req.status == leads_pb2.LEAD_STATUS_UNSPECIFIED:
            v.add("status", "is required (e.g. LEAD_STATUS_MQL)")
        check_length(v, "reason", req.reason, 500)
        check_idempotency_key(v, req.idempotency_key)
        v.raise_if_any()
        trigger = self._triggers.get(STATUS_EVENT)
        traceparent = current_traceparent()

        def work(tx: WriteTx, now: int) -> tuple[leads_pb2.UpdateLeadStatusResponse, bool]:
            contact = _resolve(tx, contact_id, email)
            lead = self._lead(tx, contact)
            previous = lead.status
            lead_rules.check_transition(previous, req.status)
            resp = leads_pb2.UpdateLeadStatusResponse()
            if previous != req.status:
                lead.status = req.status
                set_ts(lead.status_changed_at, now)
            self._rescore(tx, contact, lead, now)
            tx.put_lead(lead)
            if previous == req.status:
                _scored_event(tx, lead, now)
            else:
                # The reason is free text, maybe about the person: sealed with their key.
                clear, personal = event_values.lead_status_changed(
                    previous, req.status, req.reason, lead
                )
                append(
                    tx,
                    "lead.status_changed",
                    contact.id,
                    now,
                    contact_id=contact.id,
                    clear=clear,
                    personal=personal,
                )
                if trigger is not None:
                    payload = self._lead_payload(tx, contact, previous, req.status)
                    attrs = Struct()
                    attrs.update({"reason": req.reason})
                    resp.run_id = start_run(
                        tx, STATUS_EVENT, trigger, contact, attrs, now, payload, traceparent
                    ).id
            resp.lead.CopyFrom(lead)
            return resp, bool(resp.run_id)  # a run was started, not replayed

        resp, started = await write_once(
            self._store,
            "UpdateLeadStatus",
            req,
            req.idempotency_key,
            leads_pb2.UpdateLeadStatusResponse,
            work,
            lambda r: r.lead.contact_id,
        )
        await self._cache.invalidate(lead_key(resp.lead.contact_id))
        if started:
            self._dispatcher.started(STATUS_EVENT)
        return resp

    def _lead_payload(
        self, tx: ReadTx, contact: contacts_pb2.Contact, previous: int, status: int
    ) -> dict[str, Any]:
        rows = tx.recent_activities(contact.id, _PAYLOAD_ACTIVITIES)
        return {
            "status": lead_rules.status_name(status),
            "previous_status": lead_rules.status_name(previous),
            "activities": [
                {"type": r.type, "occurred_at": iso(r.occurred_us), "value": r.value} for r in rows
            ],
        }

    async def score_many(
        self, requests: AsyncIterator[leads_pb2.ScoreLeadsRequest]
    ) -> AsyncIterator[leads_pb2.ScoreLeadsResponse]:
        """One answer per request, in order; a failed item carries its error."""
        index = 0
        async for req in requests:
            resp = leads_pb2.ScoreLeadsResponse(index=index)
            try:
                resp.lead.CopyFrom(await self.score(req.contact))
            except SwitchboardError as exc:
                resp.error.CopyFrom(
                    common_pb2.ItemError(
                        index=index,
                        code=status_name(exc),
                        message=exc.message,
                        key=normalize_email(req.contact.email) or req.contact.id,
                    )
                )
                for item in getattr(exc, "violations", []):
                    resp.error.field_violations.add(field=item.field, description=item.description)
            yield resp
            index += 1
