"""The Redis store: counters shared by every replica, one Lua script per operation.

A script runs atomically on the server, so replicas reserving at the same moment cannot
together go past a cap. Counter keys carry their window start and expire with the window.
All keys share one hash tag so the multi-key scripts also work on a Redis Cluster.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from extproc.quota.store import Charge, Outcome, StoreUnavailable

KEY_PREFIX = "{extproc}:quota:"

_RESERVE = """
local now = tonumber(ARGV[1])
local found = {}
local refused = {}
for i = 1, #KEYS do
  local at = 4 * i - 2
  local holder = ARGV[at + 3]
  local value
  if holder ~= '' then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    value = redis.call('ZCARD', KEYS[i])
  else
    value = tonumber(redis.call('GET', KEYS[i]) or '0')
  end
  found[i] = value
  local cap = tonumber(ARGV[at + 1])
  if cap >= 0 and value + tonumber(ARGV[at]) > cap then
    refused[#refused + 1] = i - 1
  end
end
if #refused > 0 then
  return {0, found, refused}
end
for i = 1, #KEYS do
  local at = 4 * i - 2
  local expiry = tonumber(ARGV[at + 2])
  local holder = ARGV[at + 3]
  if holder ~= '' then
    redis.call('ZADD', KEYS[i], expiry, holder)
    found[i] = found[i] + 1
    if redis.call('PEXPIRETIME', KEYS[i]) < expiry then
      redis.call('PEXPIREAT', KEYS[i], expiry)
    end
  else
    found[i] = redis.call('INCRBY', KEYS[i], ARGV[at])
    redis.call('PEXPIREAT', KEYS[i], expiry)
  end
end
return {1, found, refused}
"""

_SETTLE = """
local deltas = tonumber(ARGV[1])
for i = 1, #KEYS do
  if i <= deltas then
    if redis.call('EXISTS', KEYS[i]) == 1 then
      if redis.call('INCRBY', KEYS[i], ARGV[i + 1]) < 0 then
        redis.call('SET', KEYS[i], 0, 'KEEPTTL')
      end
    end
  else
    redis.call('ZREM', KEYS[i], ARGV[i + 1])
  end
end
return 0
"""

_READ = """
local now = tonumber(ARGV[1])
local values = {}
for i = 1, #KEYS do
  local kind = redis.call('TYPE', KEYS[i])['ok']
  if kind == 'zset' then
    values[i] = redis.call('ZCOUNT', KEYS[i], '(' .. now, '+inf')
  elseif kind == 'string' then
    values[i] = tonumber(redis.call('GET', KEYS[i]))
  else
    values[i] = 0
  end
end
return values
"""


_COOL = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local ends = tonumber(ARGV[1])
if ends > current then redis.call('SET', KEYS[1], ends, 'PXAT', ends) end
"""
COOL_PREFIX = "{extproc}:cool:"
NOTE_PREFIX = "{extproc}:note:"


def _milliseconds(seconds: float) -> int:
    return int(seconds * 1000)


class RedisStore:
    def __init__(self, url: str, *, password: str | None, timeout: float) -> None:
        self._client = Redis.from_url(
            url,
            password=password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry_on_timeout=False,
            # One immediate retry replaces a connection that went stale (Redis restarted);
            # longer retrying would only hold requests that the failure policy should decide.
            retry=Retry(NoBackoff(), retries=1),
        )
        self._timeout = timeout
        self._reserve = self._client.register_script(_RESERVE)
        self._settle = self._client.register_script(_SETTLE)
        self._read = self._client.register_script(_READ)
        self._cool = self._client.register_script(_COOL)

    async def reserve(self, charges: Sequence[Charge]) -> Outcome:
        keys = [KEY_PREFIX + charge.counter for charge in charges]
        args: list[int | str] = [_milliseconds(time.time())]
        for charge in charges:
            cap = -1 if charge.cap is None else charge.cap
            args += [charge.amount, cap, _milliseconds(charge.expires_at), charge.holder or ""]
        granted, values, refused = await self._call(self._reserve(keys=keys, args=args))
        return Outcome(bool(granted), tuple(int(v) for v in values), tuple(refused))

    async def settle(
        self, deltas: Sequence[tuple[str, int]], releases: Sequence[tuple[str, str]] = ()
    ) -> None:
        keys = [KEY_PREFIX + counter for counter, _ in (*deltas, *releases)]
        args: list[int | str] = [len(deltas)]
        args += [delta for _, delta in deltas]
        args += [holder for _, holder in releases]
        await self._call(self._settle(keys=keys, args=args))

    async def read(self, counters: Sequence[str]) -> list[int]:
        if not counters:
            return []
        keys = [KEY_PREFIX + counter for counter in counters]
        values = await self._call(self._read(keys=keys, args=[_milliseconds(time.time())]))
        return [int(value) for value in values]

    async def cool(self, name: str, until: float) -> None:
        await self._call(self._cool(keys=[COOL_PREFIX + name], args=[_milliseconds(until)]))

    async def cooling(self, names: Sequence[str]) -> list[float]:
        if not names:
            return []
        values = await self._call(self._client.mget([COOL_PREFIX + name for name in names]))
        return [int(value) / 1000 if value is not None else 0.0 for value in values]

    async def note(self, name: str, value: str, until: float) -> None:
        operation = self._client.set(NOTE_PREFIX + name, value, pxat=_milliseconds(until))
        await self._call(operation)

    async def noted(self, name: str) -> str | None:
        value = await self._call(self._client.get(NOTE_PREFIX + name))
        return None if value is None else value.decode() if isinstance(value, bytes) else str(value)

    async def close(self) -> None:
        await self._client.aclose()

    async def _call(self, operation: Any) -> Any:
        """Await a Redis call; any failure to get an answer becomes StoreUnavailable."""
        try:
            return await asyncio.wait_for(operation, self._timeout * 2)
        except (RedisError, OSError, TimeoutError) as error:
            raise StoreUnavailable(type(error).__name__) from None
