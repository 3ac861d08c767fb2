"""The Store protocol: the state that nodes would share.

`MemoryStore` (default) keeps it in this process; `server.store.redis.RedisStore`
(``--redis URL``) shares it between nodes. Every operation is atomic at this
boundary, so Redis does each with one command or one script.
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

    async def hset(self, key: str, field: str, value: str) -> None:
        """Set one field of the hash at `key` (no expiry)."""
        ...

    async def hget(self, key: str, field: str) -> str | None: ...

    async def hdel(self, key: str, field: str) -> bool:
        """Remove a field; True if it was there."""
        ...

    async def hgetall(self, key: str) -> dict[str, str]: ...

    async def hswap(self, key: str, field: str, expected: str, new: str) -> bool:
        """Compare-and-set: replace the field's value only if it is `expected`."""
        ...

    async def append(self, key: str, value: str, keep: int) -> None:
        """Append to the list at `key`, keeping only the newest `keep` items."""
        ...

    async def items(self, key: str) -> list[str]:
        """The list at `key`, oldest first."""
        ...

    async def close(self) -> None: ...
