"""The portal's request limit, kept on the client: a leaky bucket every HTTP attempt passes (retries included)."""

from __future__ import annotations

import threading
import time

from requests.adapters import HTTPAdapter


class LeakyBucket:
    """The portal's own model (each request adds 1, the level drains at ``rate`` per second, above ``burst``
    the portal answers 503), kept on the client so a normal run never reaches the server's limit."""

    def __init__(self, rate: float, burst: int, clock=time.monotonic, sleep=time.sleep):
        # Headroom of one request: the portal measures at arrival, we at departure, and network jitter can
        # bunch requests closer together than we sent them; one request absorbs 1 / rate seconds of it
        # (0.5 s on the standard plan). More would idle while the portal admits: 5 % of a burst of 50 cost
        # every load 1.25 s of wall time.
        self.rate, self.burst = rate, max(1.0, burst - 1.0)
        self.clock, self.sleep = clock, sleep  # a test passes its own: the bucket's arithmetic, not the machine
        self.level, self.stamp = 0.0, clock()
        self.waited = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = self.clock()
            self.level = max(0.0, self.level - (now - self.stamp) * self.rate)
            self.stamp = now
            wait = (self.level + 1 - self.burst) / self.rate if self.level + 1 > self.burst else 0.0
            self.level += 1
        if wait > 0:
            self.waited += wait
            self.sleep(wait)

    def fill(self) -> None:
        """The server says its bucket is full (another app shares it): wait as if ours were."""
        with self._lock:
            self.level, self.stamp = self.burst, self.clock()


class ThrottledAdapter(HTTPAdapter):
    """Every HTTP attempt, retries by dlt's client included, passes the bucket."""

    def __init__(self, bucket: LeakyBucket, **kwargs):
        super().__init__(**kwargs)
        self.bucket = bucket

    def send(self, request, *args, **kwargs):
        self.bucket.acquire()
        response = super().send(request, *args, **kwargs)
        if response.status_code == 503:
            self.bucket.fill()
        return response
