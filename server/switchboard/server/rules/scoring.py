"""The lead-scoring engine: pure functions from a lead's facts and the configured rules to a score.

No I/O and no clock: the caller passes `now`, so the same inputs always give the same result.

    total = profile points + best title keyword + decayed activity points + status points
    score = clamp(round(total), 0, 100)

Activity points halve every `half_life_days`; only the `max_activities` most recent count.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any, NamedTuple

from switchboard.server.common.timeutil import from_datetime
from switchboard.server.config.sections import ScoringSettings

ACTIVITY_TYPES: tuple[str, ...] = (
    "email_open",
    "email_click",
    "page_view",
    "form_submit",
    "purchase",
    "event_attended",
    "demo_request",
    "unsubscribe",
)
STATUSES: tuple[str, ...] = ("new", "mql", "sql", "opportunity", "customer", "lost")
PROFILE_FIELDS: tuple[str, ...] = (
    "email",
    "phone",
    "company",
    "job_title",
    "consent",
    "first_name",
    "last_name",
    "country",
)

_SECONDS_PER_DAY = 86_400.0
_RECENCY = itemgetter(1, 0, 2)  # (time, type, value) of a TimedActivity
_GRADES: tuple[tuple[int, str], ...] = ((75, "A"), (50, "B"), (25, "C"))


@dataclass(frozen=True, slots=True)
class ActivityRecord:
    """One thing the lead did, at a timezone-aware time, with an optional value."""

    type: str
    occurred_at: datetime
    value: float = 0.0


#: An activity as (type, microseconds since the epoch, value): what `score_us` takes.
TimedActivity = tuple[str, int, float]


class Reason(NamedTuple):
    """One rule's contribution to a score (a named tuple: made several times per score, and
    a frozen dataclass costs about four times as much to build)."""

    rule: str
    points: float
    description: str


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """A score in 0..100, its grade, and the non-zero contributions, largest first."""

    score: int
    grade: str
    reasons: tuple[Reason, ...]


def validate_rules(rules: ScoringSettings) -> None:
    """Check that every rule key names a known activity type, status or profile field.

    Raises:
        ValueError: naming every unknown key and the keys allowed in its table.
    """
    problems = [
        f"{table} has unknown key(s) {', '.join(map(repr, unknown))} (known: {', '.join(known)})"
        for table, keys, known in (
            ("activity_points", rules.activity_points, ACTIVITY_TYPES),
            ("status_points", rules.status_points, STATUSES),
            ("profile_points", rules.profile_points, PROFILE_FIELDS),
        )
        if (unknown := sorted(k for k in keys if k not in known))
    ]
    if problems:
        raise ValueError("invalid scoring rules: " + "; ".join(problems))


def grade_for(score: int) -> str:
    """Letter grade of a score: A >= 75, B >= 50, C >= 25, else D."""
    return next((grade for floor, grade in _GRADES if score >= floor), "D")


class ScoringEngine:
    """One set of scoring rules, checked and compiled once.

    Build it once per settings object (a server builds one at start-up): compiling the
    reasons and title patterns costs more than scoring one lead.
    """

    def __init__(self, rules: ScoringSettings) -> None:
        """Check `rules` (ValueError naming every unknown key) and compile them."""
        validate_rules(rules)
        self.rules = rules
        self._table = _compile(rules)

    def score(
        self,
        profile: Mapping[str, Any],
        activities: Sequence[ActivityRecord],
        status: str,
        now: datetime,
    ) -> ScoreResult:
        """Score a lead from its profile, activities and status at time `now`."""
        timed = [(a.type, from_datetime(a.occurred_at), a.value) for a in activities]
        return _score(profile, timed, status, self.rules, self._table, from_datetime(now))

    def score_us(
        self,
        profile: Mapping[str, Any],
        activities: Sequence[TimedActivity],
        status: str,
        now_us: int,
    ) -> ScoreResult:
        """`score` with times as microseconds since the epoch, as the store keeps them: no
        datetime per activity (the same result, to the last bit)."""
        return _score(profile, activities, status, self.rules, self._table, now_us)


def _score(
    profile: Mapping[str, Any],
    activities: Sequence[TimedActivity],
    status: str,
    rules: ScoringSettings,
    table: _Table,
    now_us: int,
) -> ScoreResult:
    raw = [reason for field, reason in table.profile if profile.get(field)]
    raw += _title_reasons(str(profile.get("job_title") or ""), table)
    raw += _activity_reasons(activities, rules, now_us)
    raw.append(table.status.get(status) or Reason(f"status.{status}", 0.0, _status_text(status)))
    total = sum(r.points for r in raw)
    score = min(100, max(0, round(total)))
    shown = [
        r if (p := round(r.points, 2)) == r.points else Reason(r.rule, p, r.description)
        for r in raw
    ]
    shown = [r for r in shown if r.points != 0]  # after rounding: 0.004 points is not shown
    shown.sort(key=lambda r: (-abs(r.points), r.rule))
    return ScoreResult(score=score, grade=grade_for(score), reasons=tuple(shown))


@dataclass(frozen=True, slots=True)
class _Table:
    """What a rules object always gives, built once: the reasons of each profile field and
    status, and the title-keyword patterns."""

    profile: tuple[tuple[str, Reason], ...]
    status: dict[str, Reason]
    titles: tuple[tuple[float, str, re.Pattern[str]], ...]


def _compile(rules: ScoringSettings) -> _Table:
    return _Table(
        profile=tuple(
            (field, Reason(f"profile.{field}", points, f"profile has {field}"))
            for field, points in rules.profile_points.items()
        ),
        status={
            status: Reason(f"status.{status}", points, _status_text(status))
            for status, points in rules.status_points.items()
        },
        titles=tuple(
            (points, keyword, re.compile(rf"\b{re.escape(keyword)}\b", re.IGNORECASE))
            for keyword, points in rules.title_keywords.items()
        ),
    )


def _status_text(status: str) -> str:
    return f"lead status is {status}"


def _title_reasons(job_title: str, table: _Table) -> list[Reason]:
    if not job_title:
        return []
    matches = [
        (points, keyword) for points, keyword, pattern in table.titles if pattern.search(job_title)
    ]
    if not matches:
        return []
    # Highest points wins; ties go to the alphabetically first keyword, for determinism.
    points, keyword = min(matches, key=lambda m: (-m[0], m[1]))
    return [Reason("profile.title_keyword", points, f"job title contains '{keyword}'")]


def _activity_reasons(
    activities: Sequence[TimedActivity], rules: ScoringSettings, now_us: int
) -> list[Reason]:
    # Sort on every field so equal timestamps still cut at the same place each time.
    recent = sorted(activities, key=_RECENCY, reverse=True)
    totals: dict[str, float] = {}
    counts: dict[str, int] = {}
    points_of = rules.activity_points
    for kind, occurred_us, _ in recent[: rules.max_activities]:
        # int / int, then days: what timedelta.total_seconds() / 86,400 gives, bit for bit.
        age_days = max(0.0, (now_us - occurred_us) / 1_000_000 / _SECONDS_PER_DAY)
        points = points_of.get(kind, 0.0) * 0.5 ** (age_days / rules.half_life_days)
        totals[kind] = totals.get(kind, 0.0) + points
        counts[kind] = counts.get(kind, 0) + 1
    return [
        Reason(f"activity.{kind}", totals[kind], _activity_text(counts[kind], kind))
        for kind in sorted(totals)
    ]


def _activity_text(count: int, kind: str) -> str:
    noun = "activity" if count == 1 else "activities"
    return f"{count} {kind} {noun} (decayed)"
