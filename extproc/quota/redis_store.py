"""The Redis store: counters shared by every replica, one Lua script per operation.

A script runs atomically on the server, so replicas reserving at the same moment cannot
together go past a cap. The reservations a processor makes in one turn of its event loop go
as one script call, and so do its settlements: each still all-or-nothing on its own, in
order, while a counter several of them name is read and written once. Scripts read the time
from Redis (`TIME`), never from the processor: a reservation that arrives after its deadline
(written to a connection before Redis froze or failed over, run when it resumed) sees that it
is late and changes nothing. Counter keys carry their window start and expire with the
window; a ticket's record (what it reserved) expires with its lease. All keys share one hash
tag so the multi-key scripts also work on a Redis Cluster.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Coroutine, Sequence
from typing import Any

from extproc.quota.resp import (
    ConnectionLost,
    RespClient,
    RespError,
    Script,
    encode,
    unknown_script,
)
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

# How a reservation treats each counter it names.
UNTOUCHED, HOLDER, AMOUNT = "-", "h", "a"
NO_CHECK = "-"
"""In place of a counter's headroom: nothing it could hold refuses the reservation."""

# What a batch of reservations learns of a counter the first time one of them names it, and
# writes back once at its end: n reservations on one counter cost Redis two or three commands,
# not n. (`expiry` serves an amount counter made new; a holder set takes its latest lease.)
_TOUCHED = """
local call, tonumber = redis.call, tonumber
local touched, order = {}, {}
local function touch(key, kind, expiry)
  local counter = touched[key]
  if not counter then
    counter = {kind = kind, expiry = expiry, added = 0, taken = 0, holders = {}}
    if kind == 'HOLDER' then
      call('ZREMRANGEBYSCORE', key, '-inf', now)
      counter.stored = call('ZCARD', key)
    elseif kind == 'AMOUNT' then
      counter.value = tonumber(call('GET', key) or '0')
      counter.fresh = counter.value == 0
    end
    touched[key] = counter
    order[#order + 1] = key
  end
  return counter
end
""".replace("'HOLDER'", f"'{HOLDER}'").replace("'AMOUNT'", f"'{AMOUNT}'")

# Reserves for several tickets in one call, each all-or-nothing on its own, in order. KEYS:
# epoch, then per reservation its ticket and counters…; ARGV: the number of reservations, then
# per reservation: its number of counters, deadline, lease end, ticket, owner, the owner's TTL
# (ms), and per counter: how it is treated (UNTOUCHED, HOLDER, AMOUNT), the amount, the
# headroom (the most it may hold before this reservation: its cap less the amount and the
# room asked for; or NO_CHECK), its expiry. Returns Redis's time, the epoch, and per
# reservation: -1 (late, or its ticket cancelled), 0 (refused) or 1, what each counter held
# (after it, when granted), and which refused. The time is Redis's, and the epoch is made when
# missing, from that time: a Redis that lost its keys gets an epoch no earlier one had.
_RESERVE = (
    "local clock = redis.call('TIME')\n"
    "local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)\n"
    + _SWEEP
    + _RECORD
    + _TOUCHED
    + f"""
local wanted = {{KEYS[1]}}
local k, a = 2, 2
for r = 1, tonumber(ARGV[1]) do
  wanted[r + 1] = KEYS[k]
  local count = tonumber(ARGV[a])
  k, a = k + 1 + count, a + 6 + 4 * count
end
local stored = call('MGET', unpack(wanted))
local epoch = stored[1]
if not epoch then
  epoch = clock[1] .. '.' .. clock[2]
  call('SET', KEYS[1], epoch)
end
local answers = {{now, epoch}}
local living, recorded = {{}}, {{}}
k, a = 2, 2
for r = 1, tonumber(ARGV[1]) do
  local count, ticket, own = tonumber(ARGV[a]), ARGV[a + 3], ARGV[a + 4]
  local ticket_key = KEYS[k]
  local record = stored[r + 1]
  if recorded[ticket_key] then  -- named again: as the earlier reservation left it
    record = call('GET', ticket_key)
  end
  if now > tonumber(ARGV[a + 1]) or record == '!' then
    answers[#answers + 1] = {{-1}}
  else
    local found, refused, counters = {{}}, {{}}, {{}}
    for j = 1, count do
      local at = a + 2 + 4 * j
      local kind, headroom = ARGV[at], tonumber(ARGV[at + 2])
      local value = 0
      if kind ~= '{UNTOUCHED}' then
        local counter = touch(KEYS[k + j], kind, ARGV[at + 3])
        if kind == '{HOLDER}' then
          if headroom and counter.stored + counter.taken > headroom then
            counter.stored = counter.stored - sweep(KEYS[k + j], own)
          end
          value = counter.stored + counter.taken
        else
          value = counter.value
        end
        counters[j] = counter
      end
      found[j] = value
      if headroom and value > headroom then
        refused[#refused + 1] = j - 1
      end
    end
    if #refused > 0 then
      answers[#answers + 1] = {{0, found, refused}}
    else
      local holding = held(record, count)
      for j = 1, count do
        local at = a + 2 + 4 * j
        local counter = counters[j]
        if counter and counter.kind == '{HOLDER}' then
          local expiry = ARGV[at + 3]
          counter.holders[#counter.holders + 1] = expiry
          counter.holders[#counter.holders + 1] = ticket
          counter.taken = counter.taken + 1
          if not counter.latest or tonumber(expiry) > tonumber(counter.latest) then
            counter.latest = expiry
          end
          living[own] = ARGV[a + 5]
          found[j] = found[j] + 1
          holding[j] = 1
        elseif counter then
          local amount = tonumber(ARGV[at + 1])
          counter.value = counter.value + amount
          counter.added = counter.added + amount
          found[j] = found[j] + amount
          holding[j] = holding[j] + amount
        end
      end
      call('SET', ticket_key, table.concat(holding, ' '), 'PXAT', ARGV[a + 2])
      recorded[ticket_key] = true
      answers[#answers + 1] = {{1, found, refused}}
    end
  end
  k, a = k + 1 + count, a + 6 + 4 * count
end
for _, key in ipairs(order) do
  local counter = touched[key]
  if counter.kind == '{HOLDER}' then
    if counter.taken > 0 then
      -- Pairs of lease end and ticket: ZADD takes them all in one command.
      call('ZADD', key, unpack(counter.holders))
      -- A holder set that was empty is new (Redis deletes empty sets): it has no expiry yet.
      if counter.stored == 0 then
        call('PEXPIREAT', key, counter.latest)
      else
        call('PEXPIREAT', key, counter.latest, 'GT')
      end
    end
  elseif counter.added ~= 0 or counter.fresh then
    -- Every counter gets its expiry when made, so only one that was 0 (or new) may lack it.
    if counter.added ~= 0 then
      call('INCRBY', key, counter.added)
    end
    if counter.fresh then
      call('PEXPIREAT', key, counter.expiry)
    end
  end
end
-- The owner's beats keep it alive; a reservation taking a slot only makes it so when it is
-- not (the first one, or the first after Redis lost its keys).
for owner, ttl in pairs(living) do
  call('SET', '{ALIVE_PREFIX}' .. owner, 1, 'PX', ttl, 'NX')
end
return answers
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
# The differences to what the tickets held add up per counter, written once each.
_SETTLE = (
    _RECORD
    + _ADJUST
    + """
local call, tonumber = redis.call, tonumber
local tickets, records = {}, {}
local k, a = 2, 2
for s = 1, tonumber(ARGV[1]) do
  tickets[s] = KEYS[k]
  local count = tonumber(ARGV[a])
  k, a = k + 1 + count, a + 3 + 3 * count
end
local stored = call('MGET', unpack(tickets))
for s, key in ipairs(tickets) do
  records[key] = stored[s]
end
local settled, deltas, freed, order = {}, {}, {}, {}
local current = nil
k, a = 2, 2
for s = 1, #tickets do
  local count, reserved_in, ticket = tonumber(ARGV[a]), ARGV[a + 1], ARGV[a + 2]
  local record = records[KEYS[k]]
  records[KEYS[k]] = false  -- a ticket named twice is settled once
  if record == '!' then
    -- cancelled: nothing was held
  elseif record then
    settled[#settled + 1] = KEYS[k]
    local amounts = held(record, count)
    for i = 1, count do
      local at, key = a + 3 * i, KEYS[k + i]
      if not deltas[key] and not freed[key] then
        order[#order + 1] = key
      end
      if ARGV[at + 2] == '1' then
        freed[key] = freed[key] or {}
        freed[key][#freed[key] + 1] = ticket
      else
        deltas[key] = (deltas[key] or 0) + tonumber(ARGV[at]) - amounts[i]
      end
    end
  else
    if not current then
      current = call('GET', KEYS[1])
      if not current then  -- nothing has run since Redis lost its keys
        local clock = call('TIME')
        current = clock[1] .. '.' .. clock[2]
        call('SET', KEYS[1], current)
      end
    end
    if current ~= reserved_in then
      for i = 1, count do
        local at = a + 3 * i
        local final, key = tonumber(ARGV[at]), KEYS[k + i]
        if ARGV[at + 2] ~= '1' and final > 0 and call('INCRBY', key, final) == final then
          call('PEXPIREAT', key, ARGV[at + 1])
        end
      end
    end
  end
  k, a = k + 1 + count, a + 3 + 3 * count
end
if #settled > 0 then
  call('DEL', unpack(settled))
end
for _, key in ipairs(order) do
  if freed[key] then
    call('ZREM', key, unpack(freed[key]))
  else
    adjust(key, deltas[key])
  end
end
return 0
"""
)
BATCH = 64
"""Reservations, or settlements, sent in one script call at most (those of one turn of the
event loop)."""


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
    """Calls of one script gathered over one turn of the event loop and sent as one: Redis
    runs one script instead of one per request, and reads each counter it names once. Each
    caller waits on a future of its own, answered with the whole reply and told its place in
    it; a failure fails every call of the batch (the ledger cancels or replays each, as it
    would one alone)."""

    def __init__(self, client: RespClient, script: Script, first_key: str) -> None:
        self._client, self._script, self._first_key = client, script, first_key
        self._keys: list[str] = []
        self._args: list[int | str] = []
        self._waiters: list[asyncio.Future[Any]] = []

    def add(self, keys: list[str], args: list[int | str]) -> tuple[asyncio.Future[Any], int]:
        """The future reply to the batch, and this call's place in it."""
        loop = asyncio.get_running_loop()
        waiters = self._waiters
        if not waiters:
            loop.call_soon(self._send)
        waiter = loop.create_future()
        waiters.append(waiter)
        self._keys += keys
        self._args += args
        place = len(waiters) - 1
        if len(waiters) >= BATCH:
            self._send()
        return waiter, place

    def _send(self) -> None:
        waiters = self._waiters
        if not waiters:
            return  # sent already, when full
        keys, args = [self._first_key, *self._keys], [len(waiters), *self._args]
        self._keys, self._args, self._waiters = [], [], []
        batch = _Sent(self._client, self._script, keys, args, waiters)
        pipeline = self._client.open_pipeline()
        if pipeline is None:
            batch.run_anew()
        else:
            # Written at once and answered as the reply is read: no turn of the loop is
            # spent between the callers and Redis but the one that gathered them.
            command = encode(self._script.by_digest(keys, args))
            pipeline.send_now(command, self._client.deadline(), batch)


class _Sent:
    """A batch in the connection's line, answering its callers when its reply is read. A
    script Redis does not know yet (it restarted), or a connection found lost, sends it again
    the way one call alone is sent (the client loads the script, and reconnects)."""

    def __init__(
        self,
        client: RespClient,
        script: Script,
        keys: list[str],
        args: list[int | str],
        waiters: list[asyncio.Future[Any]],
    ) -> None:
        self._client, self._script, self._keys, self._args = client, script, keys, args
        self._waiters = waiters
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, result: Any, /) -> None:
        self._done = True
        for waiter in self._waiters:
            if not waiter.done():  # its caller may have given up
                waiter.set_result(result)

    def set_exception(self, exception: BaseException, /) -> None:
        if unknown_script(exception):
            self._run(self._client.load_and_run(self._script, self._keys, self._args))
        elif isinstance(exception, ConnectionLost):
            self.run_anew()
        else:
            self._fail(exception)

    def run_anew(self) -> None:
        self._run(self._client.run(self._script, self._keys, self._args))

    def _run(self, call: Coroutine[Any, Any, Any]) -> None:
        self._done = True
        asyncio.ensure_future(call).add_done_callback(self._ran)

    def _ran(self, ran: asyncio.Future[Any]) -> None:
        error = TimeoutError() if ran.cancelled() else ran.exception()
        if error is None:
            self.set_result(ran.result())
        else:
            self._fail(error)

    def _fail(self, error: BaseException) -> None:
        self._done = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(error)


def _reserving(charge: Charge) -> tuple[str, int, int | str, int]:
    """A charge as the reservation script takes it: how it treats the counter, the amount,
    the headroom, the expiry."""
    amount, cap = charge.amount, charge.cap
    if amount == 0 and (cap is None or charge.in_flight):
        kind = UNTOUCHED
    else:
        kind = HOLDER if charge.in_flight else AMOUNT
    headroom: int | str = NO_CHECK
    if cap is not None and amount + charge.room > 0:
        headroom = cap - amount - charge.room
    return kind, amount, headroom, _milliseconds(charge.expires_at)


def _milliseconds(seconds: float) -> int:
    return int(seconds * 1000)


class RedisStore:
    def __init__(self, url: str, *, password: str | None, timeout: float) -> None:
        # Longer retrying than the client's one reconnection would only hold requests that
        # the failure policy should decide.
        self._client = RespClient(url, password=password, timeout=timeout)
        self._offset: float | None = None
        """Redis's clock minus this machine's (seconds), once measured."""
        self._reservations = _Batch(self._client, Script(_RESERVE), EPOCH_KEY)
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
        keys = [TICKET_PREFIX + ticket, *(KEY_PREFIX + charge.counter for charge in charges)]
        args: list[int | str] = [
            len(charges),
            _milliseconds(deadline),
            _milliseconds(lease_end),
            ticket,
            ticket.partition(".")[0],
            _milliseconds(OWNER_TTL),
        ]
        for charge in charges:
            args += _reserving(charge)
        sent = time.time()
        waiter, place = self._reservations.add(keys, args)
        reply = await self._call(waiter)
        self._observe(sent, int(reply[0]))
        answer, epoch = reply[2 + place], _text(reply[1])
        if answer[0] < 0:
            raise StoreUnavailable("the reservation reached the store after its deadline")
        values, refused = answer[1], answer[2]
        return Outcome(answer[0] == 1, tuple(int(v) for v in values), tuple(refused), epoch)

    async def settle(self, ticket: str, epoch: str, finals: Sequence[Final]) -> None:
        keys = [TICKET_PREFIX + ticket, *(KEY_PREFIX + final.counter for final in finals)]
        args: list[int | str] = [len(finals), epoch, ticket]
        for final in finals:
            args += [final.amount, _milliseconds(final.expires_at), int(final.in_flight)]
        await self._call(self._settlements.add(keys, args)[0])

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
