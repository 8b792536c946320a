"""The ONLYOFFICE client's pacing to the cloud's window and its parallel detail calls: correctness only, on a
fake clock (no sleeping, no timing)."""

from __future__ import annotations

import threading

import pytest
from crm_invoices.sources.onlyoffice import helpers
from crm_invoices.sources.onlyoffice.helpers import PACE_MARGIN, RateLimitGate, in_parallel


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def time(self) -> float:
        return self.now


class Answer:
    def __init__(self, status: int, retry_after: str | None = None):
        self.status_code = status
        self.headers = {"Retry-After": retry_after} if retry_after else {}


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(helpers, "time", fake)
    return fake


def test_no_pacing_before_the_portal_throttles(clock):
    gate = RateLimitGate(max_waits=3, limit=3, window=10.0)
    sent = []
    for _ in range(10):
        gate.send(lambda: sent.append(clock.now) or Answer(200))
    assert sent == [100.0] * 10  # a self-hosted portal has no limit: nothing waits
    assert clock.slept == [] and not gate.pacing


def test_after_a_503_every_request_keeps_to_the_window_and_retry_after_is_honoured(clock, caplog):
    gate = RateLimitGate(max_waits=3, limit=3, window=10.0)
    window = 10.0 * PACE_MARGIN
    admitted: list[float] = []
    answers = iter([Answer(200), Answer(200), Answer(200), Answer(503, "4")])  # the 4th is refused once

    def attempt():
        answer = next(answers, Answer(200))
        if answer.status_code == 200:
            admitted.append(clock.now)
        return answer

    for _ in range(9):
        assert gate.send(attempt).status_code == 200
    assert gate.pacing and gate.waits == 1
    assert "the portal is rate-limiting (HTTP 503); waiting 4 s as its Retry-After asks" in caplog.text
    assert len(admitted) == 9
    assert admitted[3] >= 100.0 + 4  # the refused request went again only after Retry-After
    # never more than `limit` admitted requests in any paced window (one that starts at a request; the
    # window's end is open, as the portal's: a request leaves it exactly `window` seconds after it was sent)
    for i, at in enumerate(admitted):
        assert sum(1 for other in admitted[i:] if other < at + window - 1e-9) <= 3, admitted
    # the refused request does not count: the window after it starts from the three admitted ones
    assert admitted[3] == pytest.approx(100.0 + window)


def test_pacing_is_off_with_a_limit_of_zero(clock):
    gate = RateLimitGate(max_waits=2, limit=0, window=10.0)
    answers = iter([Answer(503, "1"), Answer(200), Answer(200), Answer(200)])
    for _ in range(3):
        gate.send(lambda: next(answers))
    assert not gate.pacing and clock.slept == [1.0]


def test_in_parallel_keeps_the_order_of_the_items():
    assert in_parallel(lambda x: x * 2, list(range(50)), 4) == [x * 2 for x in range(50)]
    assert in_parallel(lambda x: x, [], 4) == []


def test_in_parallel_stops_taking_items_after_a_failure_and_raises_it():
    taken: list[int] = []
    lock = threading.Lock()

    def call(x: int) -> int:
        with lock:
            taken.append(x)
        if x == 3:
            raise ValueError("boom")
        return x

    with pytest.raises(ValueError, match="boom"):
        in_parallel(call, list(range(1000)), 2)
    assert len(taken) < 1000  # the queued items were dropped, not each called
