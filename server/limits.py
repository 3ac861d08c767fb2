"""Rate limits: token buckets, one per connection or per client address.

A bucket holds up to `burst` tokens and refills at `rate_per_s`; each message or
attempt takes one. `AddressLimits` keeps one bucket per key (a client address) in
a bounded table, so a flood of addresses cannot grow memory without bound: the
least recently used bucket goes first. No aiohttp here: the caller picks the key.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["AddressLimits", "FloodGuard", "TokenBucket"]

Clock = Callable[[], float]


class TokenBucket:
    def __init__(
        self, rate_per_s: float, burst: float, clock: Clock = time.monotonic
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("a bucket needs a positive rate and a burst of at least 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._at)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate_per_s)
        self._at = now

    def take(self) -> bool:
        """Take one token if there is one."""
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    @property
    def full(self) -> bool:
        self._refill()
        return self._tokens >= self.burst

    def wait_s(self) -> float:
        """Seconds until one token is back."""
        self._refill()
        return max(0.0, (1 - self._tokens) / self.rate_per_s)


class AddressLimits:
    """One bucket per key, at most `max_keys` of them (least recently used goes)."""

    def __init__(
        self,
        rate_per_s: float,
        burst: float,
        max_keys: int = 10_000,
        clock: Clock = time.monotonic,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def bucket(self, key: str) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self.rate_per_s, self.burst, self._clock)
            self._buckets[key] = bucket
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def take(self, key: str) -> bool:
        return self.bucket(key).take()

    def blocked(self, key: str) -> bool:
        """True while `key` has no token left (without taking one)."""
        bucket = self._buckets.get(key)
        return bucket is not None and bucket.wait_s() > 0

    def __len__(self) -> int:
        return len(self._buckets)


class FloodGuard:
    """Per-connection and per-address message limits with a verdict per message.

    `check` answers "ok", "refuse" (tell the sender once, drop the message) or
    "close" (the sender kept flooding after being told: `strikes` refused
    messages since the last accepted one).
    """

    OK = "ok"
    REFUSE = "refuse"
    CLOSE = "close"

    def __init__(
        self,
        connection: TokenBucket,
        addresses: AddressLimits,
        address: str,
        strikes: int,
    ) -> None:
        self._connection = connection
        self._addresses = addresses
        self._address = address
        self._strikes = strikes
        self.refused = 0
        """Messages refused since the last accepted one."""

    def check(self) -> str:
        if self._connection.take() and self._addresses.take(self._address):
            self.refused = 0
            return self.OK
        self.refused += 1
        if self.refused >= self._strikes:
            return self.CLOSE
        return self.REFUSE
