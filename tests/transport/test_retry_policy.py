"""Retry arithmetic and error mapping: delays grow and cap, Retry-After, a 401 is an authentication failure.
Pure logic, no network."""

from datetime import datetime, timedelta, timezone

import pytest

from aioqueue import (
    AuthenticationFailed,
    ConfigurationError,
    RetryPolicy,
)
from aioqueue._dates import format_rfc1123 as rfc1123
from aioqueue._retry import retry_after_seconds

UTC = timezone.utc


def test_retry_policy_delays_grow_and_cap():
    policy = RetryPolicy(initial_delay=0.5, max_delay=2.0, jitter=None)
    gen = policy.delays()
    assert [next(gen) for _ in range(5)] == [0.5, 1.0, 2.0, 2.0, 2.0]
    jittered = RetryPolicy(initial_delay=0.2).delays()
    first = [next(jittered) for _ in range(3)]
    assert all(0 <= d <= 0.2 * 2**i for i, d in enumerate(first))
    for bad in ({"max_attempts": 0}, {"initial_delay": -1}, {"retry_statuses": frozenset({404})}):
        with pytest.raises(ConfigurationError):
            RetryPolicy(**bad)


def test_retry_after_parsing():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    later = rfc1123(datetime.now(UTC) + timedelta(seconds=30))
    assert 25 < (retry_after_seconds(later) or 0) <= 30


@pytest.mark.parametrize("code", ["InvalidAuthenticationInfo", "NoAuthenticationInformation", None])
def test_a_401_is_an_authentication_failure(code):
    """Azure answers 401 to a missing or expired bearer token (the official SDK raises
    ClientAuthenticationError); it was a plain ServiceError."""
    from aioqueue._errors import service_error

    error = service_error(401, code, "Server failed to authenticate the request.", "rid", {})
    assert isinstance(error, AuthenticationFailed) and error.status == 401 and error.request_id == "rid"
