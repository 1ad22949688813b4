"""Shared Key and SAS signatures must equal what the official SDK computes for the same request.

The expected values were computed once with azure-storage-queue 12.18.1 (its SharedKeyCredentialPolicy
and SAS generators) for exactly these inputs; aioqueue's own code must reproduce them.
"""

from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs

import pytest

from aioqueue import ConfigurationError, SharedKeyCredential, generate_account_sas, generate_queue_sas
from aioqueue.testing import DEV_KEY

KEY = DEV_KEY  # the emulator's well-known key: the one the expected signatures were computed with
DATE = "Fri, 27 Nov 2026 03:46:05 GMT"
CRED = SharedKeyCredential("devstoreaccount1", KEY)
BASE = {"x-ms-date": DATE, "x-ms-version": "2025-11-05"}
EXPIRY = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "length", "expected"),
    [
        # path-style emulator URL: the account appears twice in the canonical resource
        (
            "PUT",
            "/devstoreaccount1/myqueue",
            {},
            {**BASE, "x-ms-meta-Color": "blue"},
            0,
            "26jRW/crf+XrvogcGPgPSX4gNsEs7lcFrYDo06rNXP8=",
        ),
        (
            "GET",
            "/myqueue/messages",
            {"numofmessages": "16", "visibilitytimeout": "300"},
            BASE,
            0,
            "USAagKw8+stxy3xjoDlOJFUJqe8uABQN14Gevh7NoOc=",
        ),
        (
            "POST",
            "/myqueue/messages",
            {"messagettl": "-1"},
            {**BASE, "Content-Type": "application/xml; charset=utf-8"},
            58,
            "JRlCCZ30RHPxFl8f0cAXbmipfSpq+4E9T7R6w1gOOXk=",
        ),
        # query values are signed URL-decoded
        (
            "DELETE",
            "/myqueue/messages/abc",
            {"popreceipt": "AgAAAAMAAAAAAAAA+x/="},
            BASE,
            0,
            "JmP1SSi0JV3Hx6kUbPlRZlDzuk+RCmCP2vsXw9EPAdA=",
        ),
        (
            "GET",
            "/",
            {"comp": "list", "prefix": "job", "include": "metadata"},
            BASE,
            0,
            "wYj+8C0qTaQXtzy9HaQc9iWMn17Yb8qTM5I1M34Vabc=",
        ),
    ],
)
def test_shared_key_matches_official_sdk(method, path, query, headers, length, expected):
    assert CRED.authorization(method, path, query, headers, length) == f"SharedKey devstoreaccount1:{expected}"


def test_shared_key_changes_with_any_signed_part():
    base = CRED.authorization("GET", "/q/messages", {"numofmessages": "1"}, BASE, 0)
    assert CRED.authorization("GET", "/q/messages", {"numofmessages": "2"}, BASE, 0) != base
    assert CRED.authorization("GET", "/q/messages", {"numofmessages": "1"}, {**BASE, "x-ms-date": "x"}, 0) != base
    assert CRED.authorization("PUT", "/q/messages", {"numofmessages": "1"}, BASE, 0) != base


def _sig(token: str) -> str:
    return parse_qs(token)["sig"][0]


def test_queue_sas_matches_official_sdk():
    token = generate_queue_sas("devstoreaccount1", "myqueue", KEY, permission="upar", expiry=EXPIRY, start=START)
    assert _sig(token) == "cX5hZSjiDPXfxNn/KNsofrEQ4vTqFuRZvmGKAlz4m28="
    fields = parse_qs(token)
    assert fields["sp"] == ["raup"] and fields["sv"] == ["2025-11-05"] and not token.startswith("?")


def test_queue_sas_with_policy_id_matches_official_sdk():
    assert _sig(generate_queue_sas("devstoreaccount1", "myqueue", KEY, policy_id="pol1")) == (
        "V9IfTOYwluy9ePhvhJy3jriYTvZJh6BwH0DBqhVLIEc="
    )


def test_queue_sas_with_ip_and_protocol_matches_official_sdk():
    token = generate_queue_sas(
        "devstoreaccount1", "myqueue", KEY, permission="r", expiry=EXPIRY, ip="10.0.0.1", protocol="https"
    )
    assert _sig(token) == "MuO/z2xYq/JyowpljteOsGAjCe5b4aVrOBQRyhJXWfk="


def test_account_sas_matches_official_sdk():
    token = generate_account_sas(
        "devstoreaccount1", KEY, resource_types="ocs", permission="pucalwdr", expiry=EXPIRY, start=START
    )
    assert _sig(token) == "8Vaf4fiql3POdHsnLiBnR3pAAsB+4oB+N4i3AKzuoQI="
    assert parse_qs(token)["srt"] == ["sco"] and parse_qs(token)["sp"] == ["rwdlacup"]
    assert parse_qs(token)["ss"] == ["q"]  # the queue service alone, unless services= names more


@pytest.mark.parametrize(
    ("services", "ss", "expected"),
    [
        ("qb", "bq", "ONF+QhRMsIocReFJ1feZyigjxnOzgr+vBTFdx/Zcvc4="),  # large payloads: queue and blob
        ("fqb", "bqf", "Wup1eBNZh18ZC66cTqD7/MlGsxJcvoAgMbgTypyITnE="),
    ],
)
def test_account_sas_for_several_services_matches_official_sdk(services, ss, expected):
    """The official SDK's Services(blob=True, queue=True[, fileshare=True]) for the same inputs."""
    token = generate_account_sas(
        "devstoreaccount1", KEY, resource_types="sco", permission="rwdlacup", expiry=EXPIRY, start=START,
        services=services,
    )  # fmt: skip
    assert _sig(token) == expected and parse_qs(token)["ss"] == [ss]


@pytest.mark.parametrize("services", ["", "x", "qx", "Q", 5, None, ["q"]])
def test_account_sas_refuses_services_outside_bqtf(services):
    with pytest.raises(ConfigurationError, match="services"):
        generate_account_sas(
            "devstoreaccount1", KEY, resource_types="sco", permission="r", expiry=EXPIRY, services=services
        )


def test_sas_expiry_as_timedelta_is_from_now():
    token = generate_queue_sas("devstoreaccount1", "q1x", KEY, permission="r", expiry=timedelta(hours=1))
    se = datetime.strptime(parse_qs(token)["se"][0], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert abs((se - datetime.now(timezone.utc)) - timedelta(hours=1)) < timedelta(seconds=5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"permission": "rx", "expiry": EXPIRY},  # x is not a queue permission
        {"permission": "r"},  # no expiry and no policy
        {"expiry": EXPIRY},  # no permission and no policy
        {"permission": "r", "expiry": datetime(2030, 1, 1)},  # naive datetime
        {"permission": "r", "expiry": EXPIRY, "protocol": "ftp"},
        {"permission": "r", "expiry": EXPIRY, "ip": "not-an-ip"},
    ],
)
def test_queue_sas_rejects_bad_arguments(kwargs):
    with pytest.raises(ConfigurationError):
        generate_queue_sas("devstoreaccount1", "myqueue", KEY, **kwargs)


def test_sas_with_bad_key_names_the_problem_without_echoing_it():
    with pytest.raises(ConfigurationError) as info:
        generate_queue_sas("acct", "myqueue", "not base64!!", permission="r", expiry=EXPIRY)
    assert "not base64!!" not in str(info.value)
