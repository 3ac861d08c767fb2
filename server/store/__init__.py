"""The Store protocol: the state that nodes would share.

`MemoryStore` (default) keeps it in this process. Every operation is atomic at this
boundary so that a Redis implementation can do the same with one command or script.
"""

from __future__ import annotations

from typing import Protocol

from server.store.memory import MemoryStore

__all__ = ["MemoryStore", "Store"]


class Store(Protocol):
    async def claim(self, key: str, owner: str, ttl_s: float) -> str:
        """Set `key` to `owner` unless it is set; return the owner that holds it."""
        ...

    async def get(self, key: str) -> str | None:
        """The value of `key`, or None when absent or expired."""
        ...

    async def put(self, key: str, value: str, ttl_s: float) -> None:
        """Set `key` to `value` for `ttl_s` seconds."""
        ...

    async def delete(self, key: str) -> None: ...

    async def close(self) -> None: ...
