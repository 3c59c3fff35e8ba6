"""struct_dict reads a Struct exactly as json_format.MessageToDict does."""

from __future__ import annotations

import math
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct

from switchboard.server.rules.payloads import struct_dict

CASES: list[dict[str, Any]] = [
    {},
    {"s": "x", "empty": "", "n": 3, "f": -2.5, "big": 2**60, "t": True, "b": False, "z": None},
    {"items": {"c_1": {"status": "STEP_STATUS_SUCCEEDED", "attempts": 1, "error": "é ☃"}}},
    {"list": [1, "a", None, True, {"k": [[], {}]}, [2.0, [3]]]},
    {"nested": {"deeper": {"deepest": {"x": [{"y": 0}]}}}},
]


@pytest.mark.parametrize("value", CASES)
def test_struct_dict_matches_message_to_dict(value: dict[str, Any]) -> None:
    struct = Struct()
    struct.update(value)
    got = struct_dict(struct)
    assert got == json_format.MessageToDict(struct)
    # Same types too (numbers come back as floats, as from json_format).
    assert repr(got) == repr(json_format.MessageToDict(struct))
    assert list(got) == list(json_format.MessageToDict(struct))


def test_unset_value_reads_as_null() -> None:
    struct = Struct()
    struct.fields["unset"]  # touching a map entry creates an empty Value
    assert struct_dict(struct) == {"unset": None} == json_format.MessageToDict(struct)


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused_like_json_format(number: float) -> None:
    struct = Struct()
    struct.update({"outer": {"n": number}})
    with pytest.raises(ValueError, match="Fail to serialize"):
        json_format.MessageToDict(struct)
    with pytest.raises(ValueError, match="JSON cannot carry"):
        struct_dict(struct)
