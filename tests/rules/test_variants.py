"""A/B variant assignment: weights respected, the same answer every time and everywhere."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from switchboard.server.config.flow import TriggerSettings
from switchboard.server.rules.variants import assign, variant_params


def test_distribution_follows_the_weights_over_10k_contacts() -> None:
    weights = {"a": 50, "b": 30, "c": 20}
    counts = Counter(assign("welcome", f"c_{i:026d}", weights) for i in range(10_000))
    # Binomial sd at n=10k is at most 50 (0.5 %); 2 % is four standard deviations.
    for name, weight in weights.items():
        assert abs(counts[name] / 10_000 - weight / 100) < 0.02, counts


def test_a_zero_weight_variant_gets_nobody() -> None:
    weights = {"a": 1, "off": 0}
    assert {assign("e", f"c{i}", weights) for i in range(1000)} == {"a"}


def test_assignment_is_deterministic_and_ignores_variant_order() -> None:
    ids = [f"c_{i}" for i in range(500)]
    first = [assign("welcome", i, {"a": 50, "b": 50}) for i in ids]
    assert first == [assign("welcome", i, {"b": 50, "a": 50}) for i in ids]
    # Another trigger splits the same contacts independently.
    other = [assign("promo", i, {"a": 50, "b": 50}) for i in ids]
    assert other != first


@pytest.mark.slow
def test_assignment_is_the_same_in_another_process() -> None:
    # Python's own hash() is salted per process; the assignment must not be.
    code = (
        "from switchboard.server.rules.variants import assign;"
        "print(','.join(assign('welcome', f'c_{i}', {'a': 50, 'b': 50}) for i in range(200)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    here = ",".join(assign("welcome", f"c_{i}", {"a": 50, "b": 50}) for i in range(200))
    assert out.stdout.strip() == here


def test_variant_params_merge_over_the_step() -> None:
    trigger = TriggerSettings.model_validate(
        {
            "steps": [{"connector": "esp", "action": "send", "params": {"template": "w", "x": 1}}],
            "variants": {"a": 50, "b": {"weight": 50, "params": {"0": {"template": "w_b"}}}},
        }
    )
    assert variant_params(trigger, "a", 0) == {"template": "w", "x": 1}
    assert variant_params(trigger, "b", 0) == {"template": "w_b", "x": 1}


def test_variant_params_must_name_an_existing_step() -> None:
    with pytest.raises(ValueError, match="changes step 3, but the trigger has 1 steps"):
        TriggerSettings.model_validate(
            {
                "steps": [{"connector": "esp", "action": "send"}],
                "variants": {"b": {"weight": 1, "params": {"3": {}}}},
            }
        )
