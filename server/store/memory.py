"""In-memory Store: one dict with expiry times, for a single node."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["MemoryStore"]

_SWEEP_EVERY = 1024
"""Expired keys are swept after this many writes, so memory stays bounded."""


class MemoryStore:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._values: dict[str, tuple[str, float]] = {}
        self._writes = 0
        self._hashes: dict[str, dict[str, str]] = {}
        self._lists: dict[str, list[str]] = {}

    def _live(self, key: str) -> str | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires <= self._clock():
            del self._values[key]
            return None
        return value

    def _write(self, key: str, value: str, ttl_s: float) -> None:
        self._values[key] = (value, self._clock() + ttl_s)
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            now = self._clock()
            for stale in [k for k, (_, e) in self._values.items() if e <= now]:
                del self._values[stale]

    async def claim(self, key: str, owner: str, ttl_s: float) -> str:
        held = self._live(key)
        if held is not None:
            return held
        self._write(key, owner, ttl_s)
        return owner

    async def get(self, key: str) -> str | None:
        return self._live(key)

    async def put(self, key: str, value: str, ttl_s: float) -> None:
        self._write(key, value, ttl_s)

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)

    async def hset(self, key: str, field: str, value: str) -> None:
        self._hashes.setdefault(key, {})[field] = value

    async def hget(self, key: str, field: str) -> str | None:
        return self._hashes.get(key, {}).get(field)

    async def hdel(self, key: str, field: str) -> bool:
        fields = self._hashes.get(key)
        if fields is None or field not in fields:
            return False
        del fields[field]
        if not fields:
            del self._hashes[key]
        return True

    async def hgetall(self, key: str) -> dict[str, str]:
        return dict(self._hashes.get(key, {}))

    async def hswap(self, key: str, field: str, expected: str, new: str) -> bool:
        fields = self._hashes.get(key)
        if fields is None or fields.get(field) != expected:
            return False
        fields[field] = new
        return True

    async def append(self, key: str, value: str, keep: int) -> None:
        items = self._lists.setdefault(key, [])
        items.append(value)
        if len(items) > keep:
            del items[: len(items) - keep]

    async def items(self, key: str) -> list[str]:
        return list(self._lists.get(key, []))

    async def close(self) -> None:
        self._values.clear()
        self._hashes.clear()
        self._lists.clear()
