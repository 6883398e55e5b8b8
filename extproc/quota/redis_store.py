"""The Redis store: counters shared by every replica, one Lua script per operation.

A script runs atomically on the server, so replicas reserving at the same moment cannot
together go past a cap. Counter keys carry their window start and expire with the window.
All keys share one hash tag so the multi-key scripts also work on a Redis Cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from extproc.quota.store import Charge, Outcome, StoreUnavailable

KEY_PREFIX = "{extproc}:quota:"

_RESERVE = """
local found = {}
local refused = {}
for i = 1, #KEYS do
  local value = tonumber(redis.call('GET', KEYS[i]) or '0')
  found[i] = value
  local cap = tonumber(ARGV[3 * i - 1])
  if cap >= 0 and value + tonumber(ARGV[3 * i - 2]) > cap then
    refused[#refused + 1] = i - 1
  end
end
if #refused > 0 then
  return {0, found, refused}
end
for i = 1, #KEYS do
  found[i] = redis.call('INCRBY', KEYS[i], ARGV[3 * i - 2])
  redis.call('PEXPIREAT', KEYS[i], ARGV[3 * i])
end
return {1, found, refused}
"""

_ADJUST = """
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    if redis.call('INCRBY', KEYS[i], ARGV[i]) < 0 then
      redis.call('SET', KEYS[i], 0, 'KEEPTTL')
    end
  end
end
return 0
"""


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
        self._adjust = self._client.register_script(_ADJUST)

    async def reserve(self, charges: Sequence[Charge]) -> Outcome:
        keys = [KEY_PREFIX + charge.counter for charge in charges]
        args: list[int] = []
        for charge in charges:
            cap = -1 if charge.cap is None else charge.cap
            args += [charge.amount, cap, int(charge.expires_at * 1000)]
        granted, values, refused = await self._call(self._reserve(keys=keys, args=args))
        return Outcome(bool(granted), tuple(int(v) for v in values), tuple(refused))

    async def adjust(self, deltas: Sequence[tuple[str, int]]) -> None:
        keys = [KEY_PREFIX + counter for counter, _ in deltas]
        await self._call(self._adjust(keys=keys, args=[delta for _, delta in deltas]))

    async def read(self, counters: Sequence[str]) -> list[int]:
        if not counters:
            return []
        values = await self._call(self._client.mget([KEY_PREFIX + c for c in counters]))
        return [int(value) if value is not None else 0 for value in values]

    async def close(self) -> None:
        await self._client.aclose()

    async def _call(self, operation: Any) -> Any:
        """Await a Redis call; any failure to get an answer becomes StoreUnavailable."""
        try:
            return await asyncio.wait_for(operation, self._timeout * 2)
        except (RedisError, OSError, TimeoutError) as error:
            raise StoreUnavailable(type(error).__name__) from None
