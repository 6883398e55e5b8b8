"""The Redis store: counters shared by every replica, one Lua script per operation.

A script runs atomically on the server, so replicas reserving at the same moment cannot
together go past a cap. Scripts read the time from Redis (`TIME`), never from the processor:
a reservation that arrives after its deadline (written to a connection before Redis froze or
failed over, run when it resumed) sees that it is late and changes nothing. Counter keys
carry their window start and expire with the window; a ticket's record (what it reserved)
expires with its lease. All keys share one hash tag so the multi-key scripts also work on a
Redis Cluster.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from typing import Any

from extproc.quota.resp import RespClient, RespError, Script
from extproc.quota.store import OWNER_TTL, Charge, Final, Outcome, StoreUnavailable

TAG = "{extproc}"
KEY_PREFIX = TAG + ":quota:"
TICKET_PREFIX = TAG + ":ticket:"
ALIVE_PREFIX = TAG + ":alive:"
EPOCH_KEY = TAG + ":epoch"
COOL_PREFIX = TAG + ":cool:"
NOTE_PREFIX = TAG + ":note:"
CLAIM_PREFIX = TAG + ":claim:"
TOMBSTONE_MS = 60_000
"""How long a cancelled ticket refuses a reservation still on its way."""
SYNC_RTT = 0.05
"""Round trips up to this long (seconds) correct the estimate of Redis's clock."""

# Holders whose owner no longer beats are dropped from a holder set when a slot is needed.
_SWEEP = f"""
local alive = {{}}
local function owner_of(member)
  return string.match(member, '^[^.]*')
end
local function sweep(key, own)
  local removed = 0
  for _, member in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    local owner = owner_of(member)
    if owner ~= own then
      if alive[owner] == nil then
        alive[owner] = redis.call('EXISTS', '{ALIVE_PREFIX}' .. owner) == 1
      end
      if not alive[owner] then
        redis.call('ZREM', key, member)
        removed = removed + 1
      end
    end
  end
  return removed
end
"""

# A ticket's record: what it holds on each of its counters, by position ("4104 1 1"); a
# cancelled ticket's is "!" for a while, which a reservation still on its way finds.
_RECORD = """
local function held(record, count)
  local amounts = {}
  if record then
    for amount in string.gmatch(record, '%S+') do
      amounts[#amounts + 1] = tonumber(amount)
    end
  end
  for i = #amounts + 1, count do
    amounts[i] = 0
  end
  return amounts
end
"""

# KEYS: epoch, ticket, counters…; ARGV: deadline, lease end, ticket, the owner's TTL (ms), then
# per counter: amount, cap (-1: none), expiry, in flight (1/0), room. The time is Redis's, and
# the epoch is made when missing, from that time: a Redis that lost its keys gets an epoch no
# earlier one had.
_RESERVE = (
    _SWEEP
    + _RECORD
    + f"""
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local stored = redis.call('MGET', KEYS[1], KEYS[2])
local epoch, record = stored[1], stored[2]
if not epoch then
  epoch = clock[1] .. '.' .. clock[2]
  redis.call('SET', KEYS[1], epoch)
end
if now > tonumber(ARGV[1]) or record == '!' then
  return {{-1, now, epoch}}
end
local ticket = ARGV[3]
local own = owner_of(ticket)
local found, refused, added = {{}}, {{}}, {{}}
local holds = false
for i = 3, #KEYS do
  local at = 5 * i - 10
  local amount, cap = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
  local room = tonumber(ARGV[at + 4])
  local value = 0
  if amount == 0 and (cap < 0 or ARGV[at + 3] == '1') then
    -- untouched by this call
  elseif ARGV[at + 3] == '1' then
    holds = true
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    value = redis.call('ZCARD', KEYS[i])
    if cap >= 0 and value + amount + room > cap then
      value = value - sweep(KEYS[i], own)
    end
  else
    -- Added at once rather than read first (a call fewer), taken back below should any
    -- counter refuse. Every counter gets its expiry when made, so only one that was 0 (or
    -- new) may lack it.
    value = redis.call('INCRBY', KEYS[i], amount) - amount
    if value == 0 then
      redis.call('PEXPIREAT', KEYS[i], ARGV[at + 2])
    end
    added[#added + 1] = i
  end
  found[i - 2] = value
  if cap >= 0 and amount + room > 0 and value + amount + room > cap then
    refused[#refused + 1] = i - 3
  end
end
if #refused > 0 then
  for _, i in ipairs(added) do
    local amount = tonumber(ARGV[5 * i - 10])
    if amount ~= 0 then
      redis.call('INCRBY', KEYS[i], -amount)
    end
  end
  return {{0, now, epoch, found, refused}}
end
local amounts = held(record, #KEYS - 2)
for i = 3, #KEYS do
  local at = 5 * i - 10
  local amount = tonumber(ARGV[at])
  local expiry = tonumber(ARGV[at + 2])
  if amount == 0 and (tonumber(ARGV[at + 1]) < 0 or ARGV[at + 3] == '1') then
    -- untouched by this call
  elseif ARGV[at + 3] == '1' then
    redis.call('ZADD', KEYS[i], expiry, ticket)
    -- A holder set that was empty is new (Redis deletes empty sets): it has no expiry yet.
    if found[i - 2] == 0 then
      redis.call('PEXPIREAT', KEYS[i], expiry)
    else
      redis.call('PEXPIREAT', KEYS[i], expiry, 'GT')
    end
    found[i - 2] = found[i - 2] + 1
    amounts[i - 2] = 1
  else
    found[i - 2] = found[i - 2] + amount
    amounts[i - 2] = amounts[i - 2] + amount
  end
end
redis.call('SET', KEYS[2], table.concat(amounts, ' '), 'PXAT', ARGV[2])
if holds then
  redis.call('SET', '{ALIVE_PREFIX}' .. own, 1, 'PX', ARGV[4])
end
return {{1, now, epoch, found, refused}}
"""
)

# Adds `delta` to a counter that still exists, never going below 0. Every counter is made
# with an expiry: one without was made here (it had expired), and goes again.
_ADJUST = """
local function adjust(key, delta)
  if delta ~= 0 then
    local value = redis.call('INCRBY', key, delta)
    if value == delta and redis.call('PEXPIRETIME', key) == -1 then
      redis.call('DEL', key)
    elseif value < 0 then
      redis.call('SET', key, 0, 'KEEPTTL')
    end
  end
end
"""

# Settles several reservations in one call. KEYS: epoch, then per settlement its ticket and
# counters…; ARGV: the number of settlements, then per settlement: its number of counters,
# the reservation's epoch, ticket, and per counter: final amount, expiry, in flight (1/0).
_SETTLE = (
    _RECORD
    + _ADJUST
    + """
local current = nil
local k, a = 2, 2
for _ = 1, tonumber(ARGV[1]) do
  local count, reserved_in, ticket = tonumber(ARGV[a]), ARGV[a + 1], ARGV[a + 2]
  local record = redis.call('GET', KEYS[k])
  if record == '!' then
    -- cancelled: nothing was held
  elseif record then
    local amounts = held(record, count)
    for i = 1, count do
      local at = a + 3 * i
      if ARGV[at + 2] == '1' then
        redis.call('ZREM', KEYS[k + i], ticket)
      else
        adjust(KEYS[k + i], tonumber(ARGV[at]) - amounts[i])
      end
    end
    redis.call('DEL', KEYS[k])
  else
    if not current then
      current = redis.call('GET', KEYS[1])
      if not current then  -- nothing has run since Redis lost its keys
        local clock = redis.call('TIME')
        current = clock[1] .. '.' .. clock[2]
        redis.call('SET', KEYS[1], current)
      end
    end
    if current ~= reserved_in then
      for i = 1, count do
        local at = a + 3 * i
        local final, key = tonumber(ARGV[at]), KEYS[k + i]
        if ARGV[at + 2] ~= '1' and final > 0 and redis.call('INCRBY', key, final) == final then
          redis.call('PEXPIREAT', key, ARGV[at + 1])
        end
      end
    end
  end
  k, a = k + 1 + count, a + 3 + 3 * count
end
return 0
"""
)
SETTLE_BATCH = 64
"""Settlements sent in one script call, at most (those of one turn of the event loop)."""


# KEYS: ticket, counters…; ARGV: ticket, tombstone lifetime (ms), then per counter: in
# flight (1/0).
_CANCEL = (
    _RECORD
    + _ADJUST
    + """
local record = redis.call('GET', KEYS[1])
if record and record ~= '!' then
  local amounts = held(record, #KEYS - 1)
  for i = 2, #KEYS do
    if ARGV[i + 1] == '1' then
      redis.call('ZREM', KEYS[i], ARGV[1])
    else
      adjust(KEYS[i], -amounts[i - 1])
    end
  end
end
redis.call('SET', KEYS[1], '!', 'PX', ARGV[2])
return 0
"""
)

_READ = (
    "local clock = redis.call('TIME')\n"
    "local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)\n"
    + _SWEEP
    + """
local values = {}
for i = 1, #KEYS do
  local kind = redis.call('TYPE', KEYS[i])['ok']
  if kind == 'zset' then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    sweep(KEYS[i], '')
    values[i] = redis.call('ZCARD', KEYS[i])
  elseif kind == 'string' then
    values[i] = tonumber(redis.call('GET', KEYS[i]))
  else
    values[i] = 0
  end
end
return values
"""
)

_COOL = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local ends = tonumber(ARGV[1])
if ends > current then redis.call('SET', KEYS[1], ends, 'PXAT', ends) end
"""


class _Batch:
    """Settlements gathered over one turn of the event loop and sent as one script call:
    Redis runs one script instead of one per request. A failure fails every settlement of
    the batch (each is kept for replay by the ledger, as one alone would be)."""

    def __init__(self, client: RespClient, script: Script, first_key: str) -> None:
        self._client, self._script, self._first_key = client, script, first_key
        self._keys: list[str] = []
        self._args: list[int | str] = []
        self._count = 0
        self._done: asyncio.Future[None] | None = None

    def add(self, keys: list[str], args: list[int | str]) -> asyncio.Future[None]:
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(self._send)
        done = self._done
        self._keys += keys
        self._args += args
        self._count += 1
        if self._count >= SETTLE_BATCH:
            self._send()
        return done

    def _send(self) -> None:
        done = self._done
        if done is None:
            return  # sent already, when full
        keys, args = [self._first_key, *self._keys], [self._count, *self._args]
        self._keys, self._args, self._count, self._done = [], [], 0, None
        sending = asyncio.ensure_future(self._client.run(self._script, keys, args))
        sending.add_done_callback(lambda sent: _settled(done, sent))


def _settled(done: asyncio.Future[None], sent: asyncio.Future[Any]) -> None:
    """Pass the call's outcome to every settlement of the batch."""
    if sent.cancelled():
        done.set_exception(TimeoutError())
    elif (error := sent.exception()) is not None:
        done.set_exception(error)
    else:
        done.set_result(None)
    done.exception()  # read here too: every waiter may have gone (each waits shielded)


def _milliseconds(seconds: float) -> int:
    return int(seconds * 1000)


class RedisStore:
    def __init__(self, url: str, *, password: str | None, timeout: float) -> None:
        # Longer retrying than the client's one reconnection would only hold requests that
        # the failure policy should decide.
        self._client = RespClient(url, password=password, timeout=timeout)
        self._offset: float | None = None
        """Redis's clock minus this machine's (seconds), once measured."""
        self._reserve = Script(_RESERVE)
        self._settlements = _Batch(self._client, Script(_SETTLE), EPOCH_KEY)
        self._cancel = Script(_CANCEL)
        self._read = Script(_READ)
        self._cool = Script(_COOL)

    def now(self) -> float:
        return time.time() + (self._offset or 0.0)

    async def reserve(
        self, ticket: str, charges: Sequence[Charge], *, deadline: float, lease_end: float
    ) -> Outcome:
        if self._offset is None:
            await self._synchronise()
        keys = [EPOCH_KEY, TICKET_PREFIX + ticket]
        keys += [KEY_PREFIX + charge.counter for charge in charges]
        args: list[int | str] = [
            _milliseconds(deadline),
            _milliseconds(lease_end),
            ticket,
            _milliseconds(OWNER_TTL),
        ]
        for charge in charges:
            cap = -1 if charge.cap is None else charge.cap
            expiry = _milliseconds(charge.expires_at)
            args += [charge.amount, cap, expiry, int(charge.in_flight), charge.room]
        sent = time.time()
        answer = await self._call(self._client.run(self._reserve, keys, args))
        self._observe(sent, int(answer[1]))
        granted, epoch = int(answer[0]), _text(answer[2])
        if granted < 0:
            raise StoreUnavailable("the reservation reached the store after its deadline")
        values, refused = answer[3], answer[4]
        return Outcome(bool(granted), tuple(int(v) for v in values), tuple(refused), epoch)

    async def settle(self, ticket: str, epoch: str, finals: Sequence[Final]) -> None:
        keys = [TICKET_PREFIX + ticket, *(KEY_PREFIX + final.counter for final in finals)]
        args: list[int | str] = [len(finals), epoch, ticket]
        for final in finals:
            args += [final.amount, _milliseconds(final.expires_at), int(final.in_flight)]
        await self._call(asyncio.shield(self._settlements.add(keys, args)))

    async def cancel(self, ticket: str, charges: Sequence[Charge]) -> None:
        keys = [TICKET_PREFIX + ticket, *(KEY_PREFIX + charge.counter for charge in charges)]
        args: list[int | str] = [ticket, TOMBSTONE_MS]
        args += [int(charge.in_flight) for charge in charges]
        await self._call(self._client.run(self._cancel, keys, args))

    async def beat(self, owner: str) -> None:
        key = ALIVE_PREFIX + owner
        await self._call(self._client.execute("SET", key, 1, "PX", _milliseconds(OWNER_TTL)))

    async def read(self, counters: Sequence[str]) -> list[int]:
        if not counters:
            return []
        keys = [KEY_PREFIX + counter for counter in counters]
        values = await self._call(self._client.run(self._read, keys, []))
        return [int(value) for value in values]

    async def cool(self, name: str, until: float) -> None:
        await self._call(self._client.run(self._cool, [COOL_PREFIX + name], [_milliseconds(until)]))

    async def cooling(self, names: Sequence[str]) -> list[float]:
        if not names:
            return []
        values = await self._call(
            self._client.execute("MGET", *(COOL_PREFIX + name for name in names))
        )
        return [int(value) / 1000 if value is not None else 0.0 for value in values]

    async def note(self, name: str, value: str, until: float) -> None:
        operation = self._client.execute(
            "SET", NOTE_PREFIX + name, value, "PXAT", _milliseconds(until)
        )
        await self._call(operation)

    async def noted(self, name: str) -> str | None:
        value = await self._call(self._client.execute("GET", NOTE_PREFIX + name))
        return None if value is None else _text(value)

    async def claim(self, name: str, until: float) -> bool:
        operation = self._client.execute(
            "SET", CLAIM_PREFIX + name, "1", "NX", "PXAT", _milliseconds(until)
        )
        return await self._call(operation) is not None

    async def close(self) -> None:
        await self._client.close()

    async def _synchronise(self) -> None:
        """Measure Redis's clock against this machine's (before the first reservation)."""
        sent = time.time()
        seconds, microseconds = await self._call(self._client.execute("TIME"))
        self._observe(sent, int(seconds) * 1000 + int(microseconds) // 1000)

    def _observe(self, sent: float, redis_ms: int) -> None:
        """Correct the clock estimate from one answer's Redis time, when the answer came
        quickly enough to place it."""
        received = time.time()
        if received - sent <= SYNC_RTT or self._offset is None:
            self._offset = redis_ms / 1000 - (sent + received) / 2

    async def _call(self, operation: Awaitable[Any]) -> Any:
        """Await a Redis call (the client bounds it in time); any failure to get an answer in
        time becomes StoreUnavailable."""
        try:
            return await operation
        except (RespError, OSError, TimeoutError) as error:
            raise StoreUnavailable(type(error).__name__) from None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
