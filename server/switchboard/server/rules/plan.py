"""A run's plan: the steps of its trigger frozen when the run started, and the payload base.

A config change or a restart must not alter a run that is already under way, so every run
carries its own copy of the steps. The plan is plain data (no I/O): the store keeps it as
JSON, the dispatcher reads it, a wait step's branch extends it.

It lives with the pure rules rather than in `runs/` because the store contract, one level
below the run state machine, carries it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from switchboard.server.common import json_text
from switchboard.server.config.flow import BranchStepSettings, FallbackSettings, StepSettings
from switchboard.server.rules.sync import StepSync, map_contact


@dataclass(frozen=True, slots=True)
class PlanFallback:
    """What a step does when its connector fails for good: another action, or a fixed result."""

    connector: str | None = None
    action: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    result: Mapping[str, Any] | None = None

    @classmethod
    def from_settings(cls, fallback: FallbackSettings) -> PlanFallback:
        """The fallback of a configured step."""
        return cls(fallback.connector, fallback.action, fallback.params, fallback.result)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlanFallback:
        """Read a stored fallback."""
        return cls(data.get("connector"), data.get("action"), data.get("params") or {},
                   data.get("result"))

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {"connector": self.connector, "action": self.action,
                "params": dict(self.params), "result": self.result}


@dataclass(frozen=True, slots=True)
class PlanWait:
    """A pause until an inbound event with the same correlation key arrives, or a timeout."""

    source: str
    key: str
    timeout_s: float
    timeout_branch: str = "timeout"
    branches: Mapping[str, tuple[PlanStep, ...]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlanWait:
        """Read a stored wait."""
        branches = {
            name: tuple(PlanStep.from_json(s) for s in steps)
            for name, steps in (data.get("branches") or {}).items()
        }
        return cls(data["source"], data["key"], float(data["timeout_s"]),
                   data.get("timeout_branch", "timeout"), branches)

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "source": self.source,
            "key": self.key,
            "timeout_s": self.timeout_s,
            "timeout_branch": self.timeout_branch,
            "branches": {n: [s.to_json() for s in steps] for n, steps in self.branches.items()},
        }


@dataclass(frozen=True, slots=True)
class PlanStep:
    """One connector call of a run, or a wait (then `wait` is set and `connector` empty).

    `sync` is set on a contact-sync step: the destination's mapping and write-back rules.
    `when` is the step's CEL condition ("" for none), checked when the step becomes due.
    """

    connector: str
    action: str
    params: Mapping[str, Any] = field(default_factory=dict)
    fallback: PlanFallback | None = None
    wait: PlanWait | None = None
    sync: StepSync | None = None
    when: str = ""

    @classmethod
    def from_settings(cls, step: StepSettings | BranchStepSettings) -> PlanStep:
        """Freeze a configured step."""
        wait = getattr(step, "wait", None)
        fallback = PlanFallback.from_settings(step.fallback) if step.fallback else None
        when = step.when or ""
        if wait is None:
            return cls(step.connector, step.action, step.params, fallback, when=when)
        branches = {
            name: tuple(cls.from_settings(s) for s in steps)
            for name, steps in wait.branches.items()
        }
        plan_wait = PlanWait(wait.source, wait.key, wait.timeout_s, wait.timeout_branch, branches)
        return cls(
            step.connector, step.action or "wait", step.params, fallback, plan_wait, when=when
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlanStep:
        """Read a stored step."""
        fallback = data.get("fallback")
        wait = data.get("wait")
        sync = data.get("sync")
        return cls(
            data.get("connector", ""),
            data.get("action", ""),
            data.get("params") or {},
            PlanFallback.from_json(fallback) if fallback else None,
            PlanWait.from_json(wait) if wait else None,
            StepSync.from_json(sync) if sync else None,
            data.get("when") or "",
        )

    def to_json(self) -> dict[str, Any]:
        """The stored form (`sync` and `when` only when set: plans stored before them read
        the same)."""
        out = {
            "connector": self.connector,
            "action": self.action,
            "params": dict(self.params),
            "fallback": self.fallback.to_json() if self.fallback else None,
            "wait": self.wait.to_json() if self.wait else None,
        }
        if self.sync is not None:
            out["sync"] = self.sync.to_json()
        if self.when:
            out["when"] = self.when
        return out


@dataclass(frozen=True, slots=True)
class Plan:
    """A run's frozen steps and the payload every step's call starts from."""

    base: Mapping[str, Any]
    steps: tuple[PlanStep, ...]

    @classmethod
    def from_json(cls, data: str | bytes | Mapping[str, Any]) -> Plan:
        """Read a stored plan (its JSON text, or the parsed object)."""
        obj = json_text.loads(data) if isinstance(data, str | bytes) else data
        return cls(obj["base"], tuple(PlanStep.from_json(s) for s in obj["steps"]))

    def to_json(self) -> str:
        """The stored form: compact JSON."""
        body = {"base": self.base, "steps": [s.to_json() for s in self.steps]}
        return json_text.dumps(body)

    def step_payload(self, index: int, params: Mapping[str, Any]) -> dict[str, Any]:
        """What step `index`'s connector receives, with `params` (the step's or its
        fallback's): the base, the step index and the params; a sync step's `contact` is
        the destination's mapped record, made now from the base's contact."""
        payload = {**self.base, "step": index, "params": dict(params)}
        sync = self.steps[index].sync
        if sync is not None:
            payload["contact"] = map_contact(self.base.get("contact") or {}, sync)
        return payload

    def with_branch(self, index: int, branch: str) -> Plan:
        """This plan with the steps of wait step `index`'s `branch` inserted after it."""
        wait = self.steps[index].wait
        added = wait.branches.get(branch, ()) if wait else ()
        if not added:
            return self
        return replace(self, steps=(*self.steps[: index + 1], *added, *self.steps[index + 1 :]))
