"""The lead-scoring engine: hand-computed scores, decay, limits and rule validation."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from switchboard.server.config.sections import ScoringSettings
from switchboard.server.config.settings import Settings
from switchboard.server.rules.scoring import (
    ActivityRecord,
    Reason,
    ScoreResult,
    ScoringEngine,
    TimedActivity,
    _activity_reasons,
    grade_for,
    validate_rules,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def score_lead(
    profile: dict[str, Any],
    activities: list[ActivityRecord],
    status: str,
    rules: ScoringSettings,
    now: datetime,
) -> ScoreResult:
    """One lead under `rules`: a fresh engine each time, so each test's rules apply."""
    return ScoringEngine(rules).score(profile, activities, status, now)


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def rules(**overrides: Any) -> ScoringSettings:
    base: dict[str, Any] = {
        "half_life_days": 30.0,
        "max_activities": 500,
        "activity_points": {"demo_request": 20.0, "email_click": 3.0, "unsubscribe": -10.0},
        "profile_points": {},
        "title_keywords": {},
        "status_points": {},
    }
    return ScoringSettings(**{**base, **overrides})


@pytest.fixture
def defaults() -> ScoringSettings:
    return Settings().scoring


def test_hand_computed_score_with_default_rules(defaults: ScoringSettings) -> None:
    profile = {
        "email": "ada@example.com",
        "phone": "",
        "company": "Acme",
        "job_title": "VP, Marketing Director",
        "consent": True,
    }
    activities = [
        ActivityRecord("email_click", ago(0)),
        ActivityRecord("email_click", ago(30)),
        ActivityRecord("demo_request", ago(60)),
        ActivityRecord("form_submit", ago(90)),
    ]

    result = score_lead(profile, activities, "mql", defaults, NOW)

    # 2 + 5 + 3 + 5 (profile) + 12 (vp beats director) + 3 + 1.5 + 5 + 1.25 + 10 (mql) = 47.75
    assert result.score == 48
    assert result.grade == "C"
    assert result.reasons == (
        Reason("profile.title_keyword", 12.0, "job title contains 'vp'"),
        Reason("status.mql", 10.0, "lead status is mql"),
        Reason("activity.demo_request", 5.0, "1 demo_request activity (decayed)"),
        Reason("profile.company", 5.0, "profile has company"),
        Reason("profile.consent", 5.0, "profile has consent"),
        Reason("activity.email_click", 4.5, "2 email_click activities (decayed)"),
        Reason("profile.job_title", 3.0, "profile has job_title"),
        Reason("profile.email", 2.0, "profile has email"),
        Reason("activity.form_submit", 1.25, "1 form_submit activity (decayed)"),
    )


def test_activity_points_halve_after_one_half_life() -> None:
    fresh = score_lead({}, [ActivityRecord("demo_request", ago(0))], "new", rules(), NOW)
    old = score_lead({}, [ActivityRecord("demo_request", ago(30))], "new", rules(), NOW)

    assert fresh.reasons[0].points == 20.0
    assert old.reasons[0].points == 10.0
    assert (fresh.score, old.score) == (20, 10)


def test_future_activities_count_as_new() -> None:
    result = score_lead({}, [ActivityRecord("demo_request", ago(-5))], "new", rules(), NOW)

    assert result.reasons[0].points == 20.0


def test_only_the_most_recent_activities_count() -> None:
    activities = [
        ActivityRecord("email_click", ago(1)),
        ActivityRecord("demo_request", ago(100)),
        ActivityRecord("email_click", ago(0)),
    ]

    result = score_lead({}, activities, "new", rules(max_activities=2), NOW)

    assert [r.rule for r in result.reasons] == ["activity.email_click"]
    assert result.reasons[0].description == "2 email_click activities (decayed)"


@pytest.mark.parametrize(
    ("status", "activity", "expected"),
    [
        pytest.param("lost", "unsubscribe", 0, id="clamped-at-zero"),
        pytest.param("customer", "demo_request", 100, id="clamped-at-hundred"),
    ],
)
def test_score_is_clamped(status: str, activity: str, expected: int) -> None:
    many = [ActivityRecord(activity, ago(0))] * 10
    ruleset = rules(status_points={"lost": -20.0, "customer": 30.0})

    assert score_lead({}, many, status, ruleset, NOW).score == expected


@pytest.mark.parametrize(
    ("title", "rule_points"),
    [
        pytest.param("Head of Growth", 8.0, id="whole-word"),
        pytest.param("HEAD of growth", 8.0, id="case-insensitive"),
        pytest.param("Headhunter", None, id="not-inside-a-word"),
        pytest.param("Chief Marketing Officer and VP", 15.0, id="highest-keyword-wins"),
        pytest.param("", None, id="no-title"),
    ],
)
def test_title_keywords(defaults: ScoringSettings, title: str, rule_points: float | None) -> None:
    result = score_lead({"job_title": title}, [], "new", defaults, NOW)

    found = {r.rule: r.points for r in result.reasons}
    assert found.get("profile.title_keyword") == rule_points


def test_zero_point_reasons_are_omitted(defaults: ScoringSettings) -> None:
    result = score_lead({"consent": False}, [ActivityRecord("other", ago(0))], "new", defaults, NOW)

    assert result == ScoreResult(score=0, grade="D", reasons=())


def test_a_reason_that_rounds_to_zero_is_omitted() -> None:
    # 20 points after 16 half-lives is 0.0003: it still counts in the total, but is not shown
    faded = score_lead({}, [ActivityRecord("demo_request", ago(480))], "new", rules(), NOW)

    assert faded.reasons == ()


def test_a_reason_shows_its_points_rounded_to_two_places() -> None:
    result = score_lead({}, [ActivityRecord("demo_request", ago(10))], "new", rules(), NOW)

    assert result.reasons[0].points == round(20.0 * 0.5 ** (10 / 30), 2)


def test_result_does_not_depend_on_activity_order(defaults: ScoringSettings) -> None:
    activities = [ActivityRecord(t, ago(d)) for t, d in [("email_open", 3), ("purchase", 9)] * 20]
    shuffled = random.Random(7).sample(activities, len(activities))
    capped = defaults.model_copy(update={"max_activities": 15})

    first = score_lead({}, activities, "sql", capped, NOW)

    assert score_lead({}, shuffled, "sql", capped, NOW) == first


@pytest.mark.parametrize(
    ("score", "grade"),
    [
        pytest.param(100, "A", id="100"),
        pytest.param(75, "A", id="75"),
        pytest.param(74, "B", id="74"),
        pytest.param(50, "B", id="50"),
        pytest.param(49, "C", id="49"),
        pytest.param(25, "C", id="25"),
        pytest.param(24, "D", id="24"),
        pytest.param(0, "D", id="0"),
    ],
)
def test_grade_for(score: int, grade: str) -> None:
    assert grade_for(score) == grade


def test_default_rules_are_valid(defaults: ScoringSettings) -> None:
    validate_rules(defaults)


def test_an_engine_refuses_unknown_rule_keys_when_it_is_built() -> None:
    bad = ScoringSettings.model_validate({"activity_points": {"carrier_pigeon": 5}})
    with pytest.raises(ValueError, match="carrier_pigeon"):
        ScoringEngine(bad)


def test_validate_rules_names_every_unknown_key() -> None:
    bad = rules(
        activity_points={"email_click": 1.0, "tweet": 2.0},
        status_points={"zombie": 1.0},
        profile_points={"shoe_size": 1.0, "email": 1.0},
    )

    with pytest.raises(ValueError, match=r"unknown") as info:
        validate_rules(bad)

    message = str(info.value)
    for name in ("activity_points", "'tweet'", "status_points", "'zombie'", "'shoe_size'"):
        assert name in message
    assert "'email_click'" not in message
    assert "'email'" not in message


def _decayed_by_datetimes(
    activities: list[ActivityRecord], settings: ScoringSettings, now: datetime
) -> dict[str, float]:
    """Each type's decayed points with datetime arithmetic, as the engine computed them
    before it took microseconds: the reference `score_us` must match bit for bit."""
    recent = sorted(activities, key=lambda a: (a.occurred_at, a.type, a.value), reverse=True)
    totals: dict[str, float] = {}
    for a in recent[: settings.max_activities]:
        age_days = max(0.0, (now - a.occurred_at).total_seconds() / 86_400.0)
        decay = 0.5 ** (age_days / settings.half_life_days)
        totals[a.type] = totals.get(a.type, 0.0) + settings.activity_points.get(a.type, 0.0) * decay
    return totals


def test_microsecond_times_decay_exactly_as_datetimes_did() -> None:
    gen = random.Random(7)
    settings = rules(max_activities=40, half_life_days=17.3)
    engine = ScoringEngine(settings)

    def reasons(timed: list[TimedActivity], now_us: int) -> list[Reason]:
        return _activity_reasons(timed, settings, now_us)  # before any rounding

    now_us = 1_780_000_000_123_457
    now = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=now_us)
    kinds = list(settings.activity_points)
    for _ in range(300):
        timed = [
            # up to two years back, a few a little in the future (they count as now)
            (gen.choice(kinds), now_us - gen.randrange(-3_600_000_000, 63_072_000_000_000), 0.0)
            for _ in range(gen.randrange(0, 60))
        ]
        dated = [
            ActivityRecord(kind, now + timedelta(microseconds=at - now_us), value)
            for kind, at, value in timed
        ]
        result = engine.score_us({}, timed, "new", now_us)
        assert result == engine.score({}, dated, "new", now)
        raw = {r.rule.removeprefix("activity."): r.points for r in reasons(timed, now_us)}
        assert raw == _decayed_by_datetimes(dated, settings, now)
