"""The fake queue service's own tests. Their fixtures, ``fake`` (a fresh
:class:`~aioqueue.testing.FakeQueueService` per test) and ``fake_queue`` (a queue on it through the real
client), are in tests/conftest.py, for every area. No Azurite: the unit tier."""

from __future__ import annotations

from tests.helpers import FAST_RETRY

__all__ = ["FAST_RETRY"]
