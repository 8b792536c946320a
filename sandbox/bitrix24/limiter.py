"""The per-portal request limit."""

from __future__ import annotations

import time as _time
from dataclasses import dataclass, field


@dataclass
class Bucket:
    """The portal's leaky bucket: each request adds 1, the level drains at ``rate`` per second; a request
    that would take it above ``burst`` is refused (503 ``QUERY_LIMIT_EXCEEDED``)."""

    rate: float
    burst: int
    level: float = 0.0
    stamp: float = field(default_factory=_time.monotonic)

    def admit(self) -> bool:
        now = _time.monotonic()
        self.level = max(0.0, self.level - (now - self.stamp) * self.rate)
        self.stamp = now
        if self.level + 1 > self.burst:
            return False
        self.level += 1
        return True
