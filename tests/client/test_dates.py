"""Dates are written the same whatever the process locale: x-ms-date, SAS times, access policies."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from aioqueue import AccessPolicy, MalformedResponse, QueueClient, generate_account_sas
from aioqueue._dates import RequestDate, format_iso8601, format_rfc1123, parse_iso8601, parse_rfc1123
from aioqueue.testing import DEV_KEY

UTC = timezone.utc
GERMAN_NAMES = ("Mo,", "Di,", "Mi,", "Do,", "Fr,", "Sa,", "So,", "Mär", "Mai", "Okt", "Dez")


def test_rfc1123_and_iso8601_round_trip():
    when = datetime(2009, 10, 9, 21, 4, 30, tzinfo=UTC)
    assert format_rfc1123(when) == "Fri, 09 Oct 2009 21:04:30 GMT"
    assert format_rfc1123(when.timestamp()) == "Fri, 09 Oct 2009 21:04:30 GMT"
    assert parse_rfc1123("Fri, 09 Oct 2009 21:04:30 GMT") == when
    assert format_iso8601(when) == "2009-10-09T21:04:30Z"
    assert parse_iso8601("2009-10-09T21:04:30.1234567Z") == when.replace(microsecond=123456)
    with pytest.raises(ValueError):
        format_rfc1123(datetime(2009, 10, 9))  # naive
    with pytest.raises(ValueError):
        format_iso8601(datetime(2009, 10, 9))


@pytest.mark.parametrize(
    "text",
    ["yesterday", "Fri, 09 Oct 2009 21:04:30 CET", "Fri, 09 Okt 2009 21:04:30 GMT", "Fri, ٠٩ Oct 2009 21:04:30 GMT"],
)
def test_bad_http_dates_are_malformed_responses(text):
    with pytest.raises(MalformedResponse):
        parse_rfc1123(text)


@pytest.mark.parametrize(
    "text", ["2009-10-09", "2009-10-09T21:04:30Zjunk", "２００９-10-09T21:04:30Z", "2009-13-09T21:04:30Z"]
)
def test_bad_iso_dates_are_malformed_responses(text):
    with pytest.raises(MalformedResponse):
        parse_iso8601(text)


def test_every_day_and_month_is_english_even_with_a_german_strftime(monkeypatch):
    """The C library's names follow LC_TIME; patching strftime to answer German proves none is used."""
    real = time.strftime

    def german(fmt, t=None):
        text = real(fmt, *(() if t is None else (t,)))
        return text.replace("Fri", "Fr").replace("Oct", "Okt").replace("Mon", "Mo").replace("Dec", "Dez")

    monkeypatch.setattr(time, "strftime", german)
    day = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
    names = {format_rfc1123(day + timedelta(days=d * 31 + d)) for d in range(12)}
    assert all(n.endswith(" GMT") and n[:3] in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun") for n in names)
    assert {n.split()[2] for n in names} == {
        "Jan",
        "Feb",
        "Mar",
        "Apr",
        "May",
        "Jun",
        "Jul",
        "Aug",
        "Sep",
        "Oct",
        "Nov",
        "Dec",
    }
    header = RequestDate().now()
    assert header.endswith(" GMT") and header[:3] in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _german_locale() -> str | None:
    """A German LC_TIME name this machine can set (asked in a fresh process: glibc caches its archive)."""
    for name in ("de_DE.UTF-8", "de_DE.utf8", "de_DE"):
        probe = f"import locale; locale.setlocale(locale.LC_TIME, {name!r})"
        if subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0:
            return name
    return None


def _ensure_german_locale() -> str:
    """de_DE.UTF-8, generated with glibc's localedef when the machine lacks it (nothing downloaded)."""
    name = _german_locale()
    if name is None:
        subprocess.run(["localedef", "-i", "de_DE", "-f", "UTF-8", "de_DE.UTF-8"], capture_output=True, check=False)
        name = _german_locale()
    if name is None:
        pytest.fail("could not set or generate a German LC_TIME locale (localedef -i de_DE -f UTF-8 de_DE.UTF-8)")
    return name


async def test_signed_requests_work_under_a_german_lc_time(aioqueue_service, queue_client):
    """In a process whose LC_TIME is German, strftime says 'Fr, 27 Nov'; our x-ms-date must not."""
    name = _ensure_german_locale()
    script = f"""
import asyncio, locale, time
locale.setlocale(locale.LC_TIME, {name!r})
assert time.strftime("%a %b", time.gmtime(0)) == "Do Jan", time.strftime("%a %b", time.gmtime(0))
from aioqueue import QueueClient
from aioqueue._transport import RetryingSession
sent = []
real = RetryingSession._attempt
async def spy(self, session, target, attempt):
    sent.append(self._date.now())
    return await real(self, session, target, attempt)
RetryingSession._attempt = spy
async def main():
    async with QueueClient({aioqueue_service.url!r}, {queue_client.queue_name!r}, credential={DEV_KEY!r}) as q:
        await q.send_message("hallo")
        assert (await q.peek_messages())[0].content == "hallo"
    print(sent[0])
asyncio.run(main())
"""
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    header = result.stdout.strip()
    assert header.endswith(" GMT") and header[:3] in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    assert not any(g in header for g in GERMAN_NAMES)


def test_sas_and_policy_times_are_iso_whatever_the_locale(monkeypatch):
    monkeypatch.setattr(time, "strftime", lambda *a: "Fr, 27 Nov")
    token = generate_account_sas(
        "acct", DEV_KEY, resource_types="s", permission="r", expiry=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    )
    assert "se=2030-01-02T03%3A04%3A05Z" in token
    q = QueueClient("https://acct.queue.core.windows.net", "jobs", credential=DEV_KEY)
    assert q.queue_name == "jobs" and AccessPolicy(permission="r").permission == "r"
