"""Redis Store: the same protocol as `MemoryStore`, shared by several nodes.

Every operation is one Redis command or one Lua script, so it is atomic for all
nodes at once: `claim` is ``SET NX PX``, then a read of the holder, in one script;
`hswap` compares and sets in one script, `append` pushes and trims in one
transaction. Every key and channel carries `prefix`, so several deployments (or
tests) can share one Redis.

Outage: the first failed command logs one warning and marks the store down; from
then on every call fails at once with `StoreUnavailable` (a clear error for new
joins, no pile of waiting requests) while one task pings Redis with exponential
backoff. The first answered ping logs one line with the outage's length and the
store is up again. Sessions already running do not need the store for media.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from server.errors import StoreUnavailable

__all__ = ["RedisStore"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

CONNECT_TIMEOUT_S = 1.0
"""Longest wait to open a connection to Redis, seconds."""
COMMAND_TIMEOUT_S = 2.0
"""Longest wait for one command's reply, seconds."""
BACKOFF_FIRST_S = 0.1
"""First wait before pinging a Redis that went away, seconds (doubles each time)."""
BACKOFF_MAX_S = 5.0
"""Longest wait between two pings of a Redis that is away, seconds."""

_FAILURES = (RedisConnectionError, RedisTimeoutError, OSError)

_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return ARGV[1]
end
return redis.call('GET', KEYS[1])
"""

_HSWAP = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return 1
end
return 0
"""

_HDEL_IF = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""


def _ms(ttl_s: float) -> int:
    return max(1, round(ttl_s * 1000))


class RedisStore:
    def __init__(self, url: str, prefix: str = "tapline:") -> None:
        self.url = url
        self.prefix = prefix
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=COMMAND_TIMEOUT_S,
            # Fail fast: reconnecting is the store's job (one task, with backoff),
            # not every caller's.
            retry=Retry(NoBackoff(), 0),
        )
        self._claim = self.client.register_script(_CLAIM)
        self._hswap = self.client.register_script(_HSWAP)
        self._hdel_if = self.client.register_script(_HDEL_IF)
        self._down_since: float | None = None
        self._reconnect: asyncio.Task[None] | None = None
        self.up_listeners: list[Callable[[], None]] = []
        """Called once each time the store is back after an outage."""

    def key(self, name: str) -> str:
        return self.prefix + name

    @property
    def available(self) -> bool:
        return self._down_since is None

    # outage handling

    async def run(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run one Redis call, turning a lost Redis into `StoreUnavailable`."""
        if self._down_since is not None:
            raise StoreUnavailable(
                "The service is briefly unavailable. Please try again in a moment."
            )
        try:
            return await call()
        except _FAILURES as exc:
            self._went_down(exc)
            raise StoreUnavailable(
                "The service is briefly unavailable. Please try again in a moment."
            ) from None

    def _went_down(self, exc: BaseException) -> None:
        if self._down_since is not None:
            return
        self._down_since = time.monotonic()
        logger.warning("redis %s: unreachable (%s); retrying", self._where(), exc)
        self._reconnect = asyncio.get_running_loop().create_task(
            self._reconnect_loop(), name="redis reconnect"
        )

    def _where(self) -> str:
        kwargs = self.client.connection_pool.connection_kwargs
        return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"

    async def _reconnect_loop(self) -> None:
        wait = BACKOFF_FIRST_S
        while True:
            await asyncio.sleep(wait)
            try:
                await self.client.ping()
            except _FAILURES:
                wait = min(wait * 2, BACKOFF_MAX_S)
                continue
            break
        assert self._down_since is not None
        logger.warning(
            "redis %s: back after %.1f s",
            self._where(),
            time.monotonic() - self._down_since,
        )
        self._down_since = None
        self._reconnect = None
        for listener in list(self.up_listeners):
            listener()

    # the Store protocol

    async def claim(self, key: str, owner: str, ttl_s: float) -> str:
        held = await self.run(
            lambda: self._claim(keys=[self.key(key)], args=[owner, _ms(ttl_s)])
        )
        return str(held)

    async def get(self, key: str) -> str | None:
        value = await self.run(lambda: self.client.get(self.key(key)))
        return None if value is None else str(value)

    async def put(self, key: str, value: str, ttl_s: float) -> None:
        await self.run(lambda: self.client.set(self.key(key), value, px=_ms(ttl_s)))

    async def delete(self, key: str) -> None:
        await self.run(lambda: self.client.delete(self.key(key)))

    async def hset(self, key: str, field: str, value: str) -> None:
        await self.run(lambda: self.client.hset(self.key(key), field, value))

    async def hget(self, key: str, field: str) -> str | None:
        value = await self.run(lambda: self.client.hget(self.key(key), field))
        return None if value is None else str(value)

    async def hdel(self, key: str, field: str) -> bool:
        removed: int = await self.run(lambda: self.client.hdel(self.key(key), field))
        return removed > 0

    async def hgetall(self, key: str) -> dict[str, str]:
        fields = await self.run(lambda: self.client.hgetall(self.key(key)))
        return {str(name): str(value) for name, value in fields.items()}

    async def hswap(self, key: str, field: str, expected: str, new: str) -> bool:
        done = await self.run(
            lambda: self._hswap(keys=[self.key(key)], args=[field, expected, new])
        )
        return bool(done)

    async def hsetnx(self, key: str, field: str, value: str) -> bool:
        """Set a hash field only if it is absent; True if set."""
        done = await self.run(lambda: self.client.hsetnx(self.key(key), field, value))
        return bool(done)

    async def hdel_if(self, key: str, field: str, expected: str) -> bool:
        """Remove a hash field only if its value is `expected`."""
        done = await self.run(
            lambda: self._hdel_if(keys=[self.key(key)], args=[field, expected])
        )
        return bool(done)

    async def append(self, key: str, value: str, keep: int) -> None:
        name = self.key(key)

        async def push() -> None:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.rpush(name, value)
                pipe.ltrim(name, -keep, -1)
                await pipe.execute()

        await self.run(push)

    async def items(self, key: str) -> list[str]:
        found = await self.run(lambda: self.client.lrange(self.key(key), 0, -1))
        return [str(item) for item in found]

    # the bus between nodes

    async def publish(self, channel: str, text: str) -> None:
        await self.run(lambda: self.client.publish(self.key(channel), text))

    async def listen(
        self, channels: list[str]
    ) -> AsyncGenerator[tuple[str, str], None]:
        """(channel, message) pairs as they come; ends when the connection is lost.

        The caller resubscribes (after the outage) by calling `listen` again.
        """
        names = [self.key(c) for c in channels]
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            try:
                await pubsub.subscribe(*names)
            except _FAILURES as exc:
                self._went_down(exc)
                return
            while True:
                try:
                    message: dict[str, Any] | None = await pubsub.get_message(
                        timeout=1.0
                    )
                except _FAILURES as exc:
                    self._went_down(exc)
                    return
                if message is None or message.get("type") != "message":
                    continue
                yield (
                    str(message["channel"])[len(self.prefix) :],
                    str(message["data"]),
                )
        finally:
            with contextlib.suppress(*_FAILURES):
                await pubsub.aclose()

    async def wait_up(self) -> None:
        """Return once the store is reachable again."""
        while self._down_since is not None:
            await asyncio.sleep(BACKOFF_FIRST_S)

    async def close(self) -> None:
        if self._reconnect is not None:
            self._reconnect.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect
        with contextlib.suppress(TimeoutError, *_FAILURES):
            await asyncio.wait_for(self.client.aclose(), COMMAND_TIMEOUT_S)
