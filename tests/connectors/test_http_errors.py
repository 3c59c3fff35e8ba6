"""HTTP status classification and Retry-After parsing."""

from __future__ import annotations

import pytest

from switchboard.server.connectors.http_errors import error_for_status, parse_retry_after
from switchboard.server.errors import PermanentConnectorError, RetryableConnectorError


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        pytest.param(408, True, id="408"),
        pytest.param(429, True, id="429"),
        pytest.param(500, True, id="500"),
        pytest.param(502, True, id="502"),
        pytest.param(503, True, id="503"),
        pytest.param(504, True, id="504"),
        pytest.param(501, False, id="501"),
        pytest.param(505, False, id="505"),
        pytest.param(400, False, id="400"),
        pytest.param(404, False, id="404"),
        pytest.param(422, False, id="422"),
    ],
)
def test_status_classification(status: int, retryable: bool) -> None:
    error = error_for_status(status, {}, "webhook 'w'")
    expected = RetryableConnectorError if retryable else PermanentConnectorError
    assert type(error) is expected
    assert str(status) in str(error)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param("120", 120.0, id="delta"),
        pytest.param("Thu, 01 Jan 1970 00:01:40 GMT", 40.0, id="http-date"),
        pytest.param("Thu, 01 Jan 1970 00:00:10 GMT", 0.0, id="past-date"),
        pytest.param("soon", None, id="garbage"),
        pytest.param(None, None, id="absent"),
    ],
)
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=60.0) == seconds


def test_retry_after_travels_with_the_error() -> None:
    error = error_for_status(429, {"retry-after": "7"}, "webhook 'w'")
    assert isinstance(error, RetryableConnectorError)
    assert error.retry_after_s == 7.0
