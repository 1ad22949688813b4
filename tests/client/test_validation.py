"""Argument checks: queue names, durations, message counts, metadata. Pure logic, no network."""

from datetime import timedelta
from typing import Any

import pytest

from aioqueue import (
    ConfigurationError,
)
from aioqueue._validation import message_count, metadata_headers, queue_name, seconds


@pytest.mark.parametrize("name", ["ab", "a" * 64, "Upper", "-abc", "abc-", "a--b", "a_b", "a.b", "", 123])
def test_bad_queue_names(name):
    with pytest.raises(ConfigurationError):
        queue_name(name)


@pytest.mark.parametrize("name", ["abc", "a" * 63, "a-b-c", "0queue9"])
def test_good_queue_names(name):
    assert queue_name(name) == name


def test_durations():
    assert seconds(timedelta(minutes=5), "v", low=0) == 300
    assert seconds(0.2, "v", low=0) == 1
    assert seconds(-1, "ttl", low=1, high=None, allow_never=True) == -1
    for bad in (-1, 7 * 24 * 3600 + 1, "30", True, float("nan"), timedelta(days=8)):
        with pytest.raises(ConfigurationError):
            seconds(bad, "visibility_timeout", low=0)


def test_counts_and_metadata():
    assert message_count(32) == 32
    for bad in (0, 33, 1.5, True, "3"):
        with pytest.raises(ConfigurationError):
            message_count(bad)
    assert metadata_headers({"Color": "blue"}) == {"x-ms-meta-Color": "blue"}
    bad_metadata: list[dict[str, Any]] = [
        {"1abc": "x"},
        {"a-b": "x"},
        {"a": 1},
        {"a": "é"},
        {"a": "x\n"},
        {"A": "1", "a": "2"},
    ]
    for metadata in bad_metadata:
        with pytest.raises(ConfigurationError):
            metadata_headers(metadata)
