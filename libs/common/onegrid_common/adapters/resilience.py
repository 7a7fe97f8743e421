"""Retry timing and the circuit breaker of an adapter: pure logic, a clock passed in.

`Backoff` spaces the attempts to deliver one task (exponential, capped, with jitter so a
department coming back is not hit by every adapter replica at once). `CircuitBreaker`
stops calling a department that keeps failing: after `failure_threshold` failures in a
row it opens, refuses calls for `reset_timeout_s`, then lets one probe through
(half-open); the probe's outcome closes it or opens it again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True)
class Backoff:
    base_s: float = 1.0
    cap_s: float = 60.0
    multiplier: float = 2.0
    jitter: float = 0.5  # fraction of the delay that is random: delay in [d*(1-jitter), d]

    def __post_init__(self) -> None:
        if self.base_s < 0 or self.cap_s < self.base_s:
            raise ValueError("backoff needs 0 <= base_s <= cap_s")
        if self.multiplier < 1:
            raise ValueError("backoff multiplier must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("backoff jitter is a fraction between 0 and 1")

    def nominal(self, attempt: int) -> float:
        """The delay after failed attempt number `attempt` (1-based), before jitter."""
        if attempt < 1:
            raise ValueError("attempts are numbered from 1")
        return min(self.cap_s, self.base_s * self.multiplier ** (attempt - 1))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        nominal = self.nominal(attempt)
        draw = (rng or random).random()
        return nominal * (1.0 - self.jitter * draw)

    def budget_s(self, max_attempts: int) -> float:
        """The longest time `max_attempts` attempts can be spread over (no jitter)."""
        return sum(self.nominal(n) for n in range(1, max_attempts))


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    failure_threshold: int = 5
    reset_timeout_s: float = 15.0
    clock: Callable[[], float] = time.monotonic
    _failures: int = field(default=0, init=False)
    _opened_at: float | None = field(default=None, init=False)
    _probing: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if self.reset_timeout_s <= 0:
            raise ValueError("reset_timeout_s must be positive")

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._probing or self.clock() - self._opened_at >= self.reset_timeout_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def allow(self) -> bool:
        """May a call go now? In half-open only one probe at a time goes."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def retry_in(self) -> float:
        """Seconds until `allow()` may say yes (0 when it would now)."""
        if self._opened_at is None:
            return 0.0
        if self._probing:
            return self.reset_timeout_s  # a probe is out; its outcome decides
        return max(0.0, self.reset_timeout_s - (self.clock() - self._opened_at))

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def record_failure(self) -> None:
        self._failures += 1
        if self._probing or self._failures >= self.failure_threshold:
            self._opened_at = self.clock()
        self._probing = False
