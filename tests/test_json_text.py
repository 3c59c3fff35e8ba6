"""The store's JSON text (common/json_text.py): what json wrote reads back the same."""

from __future__ import annotations

import json
import math

from switchboard.server.common import json_text


def test_text_reads_back_as_json_wrote_it() -> None:
    value = {"base": {"items": {"c_1": {"n": 1, "name": "Zoë", "on": True}}, 3: None}}
    text = json_text.dumps(value)
    assert json.loads(text) == json.loads(json.dumps(value))
    assert json_text.loads(text)["base"]["3"] is None  # an int key comes back a string


def test_rows_json_wrote_with_nan_still_read() -> None:
    old = json.dumps({"score": float("nan"), "top": float("inf")})  # 'NaN': not JSON
    got = json_text.loads(old)
    assert math.isnan(got["score"])
    assert got["top"] == float("inf")


def test_nan_is_written_as_null() -> None:
    assert json_text.dumps({"score": float("nan")}) == '{"score":null}'
