"""The store contract, held by the memory store and by a real redis-server alike."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from extproc.quota.memory_store import MemoryStore
from extproc.quota.redis_store import ALIVE_PREFIX, KEY_PREFIX, RedisStore
from extproc.quota.store import Charge, Final, Outcome, QuotaStore, StoreUnavailable
from tests.harness import RedisServer, redis_server

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(params=["memory", "redis", "redis-unix-socket"])
async def store(request: pytest.FixtureRequest, redis: RedisServer) -> AsyncIterator[QuotaStore]:
    if request.param == "memory":
        chosen: QuotaStore = MemoryStore()
    else:
        url = redis.url if request.param == "redis" else redis.socket_url
        async with Redis.from_url(url) as client:
            await client.flushdb()
        chosen = RedisStore(url, password=None, timeout=1.0)
    yield chosen
    await chosen.close()


def charge(counter: str, amount: int, cap: int | None, *, room: int = 0) -> Charge:
    return Charge(counter, amount, cap, time.time() + 60, room=room)


async def reserve(
    store: QuotaStore, ticket: str, charges: list[Charge], *, lease: float = 60
) -> Outcome:
    now = store.now()
    return await store.reserve(ticket, charges, deadline=now + 5, lease_end=now + lease)


def final(counter: str, amount: int) -> Final:
    return Final(counter, amount, time.time() + 60)


async def test_a_reservation_is_all_or_nothing(store: QuotaStore) -> None:
    granted = await reserve(
        store, "o.1", [charge("a", 3, 5), charge("b", 7, 10), charge("s", 9, None)]
    )
    assert granted.granted and granted.values == (3, 7, 9)

    refused = await reserve(
        store, "o.2", [charge("a", 1, 5), charge("b", 4, 10), charge("s", 1, None)]
    )
    assert not refused.granted
    assert refused.refused == (1,)
    assert refused.values == (3, 7, 9)
    assert await store.read(["a", "b", "s", "never"]) == [3, 7, 9, 0]


async def test_room_must_fit_but_is_not_charged(store: QuotaStore) -> None:
    assert (await reserve(store, "o.1", [charge("a", 2, 10, room=8)])).granted
    refused = await reserve(store, "o.2", [charge("a", 2, 10, room=7)])
    assert not refused.granted and refused.values == (2,)
    assert await store.read(["a"]) == [2]


async def test_settling_charges_the_final_cost_once(store: QuotaStore) -> None:
    first = await reserve(store, "o.1", [charge("a", 10, None)])
    await reserve(store, "o.2", [charge("a", 5, None)])
    await reserve(store, "o.1", [charge("a", 4, None)])  # the first one grew
    await store.settle("o.1", first.epoch, [final("a", 6), final("gone", 5)])
    assert await store.read(["a", "gone"]) == [11, 0]
    # An answer that was lost, so the settlement is made again: nothing changes.
    await store.settle("o.1", first.epoch, [final("a", 6)])
    assert await store.read(["a"]) == [11]
    await store.settle("o.2", first.epoch, [final("a", 0)])  # did not run: refunded
    assert await store.read(["a"]) == [6]


async def test_a_cancelled_reservation_is_undone_and_a_late_one_refused(store: QuotaStore) -> None:
    charges = [charge("a", 5, None), slot_charge()]
    await reserve(store, "o.1", charges)
    await store.cancel("o.1", charges)
    assert await store.read(["a", "inflight"]) == [0, 0]
    await store.cancel("o.2", charges[:1])  # its reservation is still on the way
    if not isinstance(store, MemoryStore):  # the memory store is never late
        with pytest.raises(StoreUnavailable):
            await reserve(store, "o.2", [charge("a", 5, None)])
        assert await store.read(["a"]) == [0]


async def test_a_growth_charges_only_the_counters_it_names(store: QuotaStore) -> None:
    first = await reserve(store, "o.1", [slot_charge(), charge("r", 1, 1), charge("t", 10, 100)])
    # A stream grows: its request and slot are named, untouched (the request is at its cap).
    untouched = [Charge("inflight", 0, None, 0, in_flight=True), Charge("r", 0, None, 0)]
    grown = await reserve(store, "o.1", [*untouched, charge("t", 30, 100)])
    assert grown.granted
    assert await store.read(["inflight", "r", "t"]) == [1, 1, 40]
    finals = [Final("inflight", 0, 0, in_flight=True), final("r", 1), final("t", 35)]
    await store.settle("o.1", first.epoch, finals)
    assert await store.read(["inflight", "r", "t"]) == [0, 1, 35]


async def test_concurrent_reservations_never_pass_the_cap(store: QuotaStore) -> None:
    outcomes = await asyncio.gather(
        *(reserve(store, f"o.{n}", [charge("c", 1, 10)]) for n in range(50))
    )
    assert sum(outcome.granted for outcome in outcomes) == 10
    assert await store.read(["c"]) == [10]


def slot_charge(lease: float = 60) -> Charge:
    return Charge("inflight", 1, 2, time.time() + lease, in_flight=True)


async def test_in_flight_slots_are_held_released_and_counted(store: QuotaStore) -> None:
    assert (await reserve(store, "o.a", [slot_charge()])).values == (1,)
    b = await reserve(store, "o.b", [slot_charge(), charge("n", 5, None)])
    assert b.values == (2, 5)
    refused = await reserve(store, "o.c", [slot_charge(), charge("n", 5, None)])
    assert not refused.granted and refused.refused == (0,)
    assert await store.read(["inflight", "n"]) == [2, 5]
    await store.settle("o.b", b.epoch, [Final("inflight", 0, 0, in_flight=True), final("n", 4)])
    assert await store.read(["inflight", "n"]) == [1, 4]
    assert (await reserve(store, "o.c", [slot_charge()])).granted


async def test_a_vanished_holder_frees_its_slot_when_its_lease_ends(store: QuotaStore) -> None:
    # A holder whose processor died never releases: its lease (already over here) does.
    await reserve(store, "o.alive", [slot_charge(60)])
    await reserve(store, "o.crashed", [slot_charge(-1)])
    assert await store.read(["inflight"]) == [1]
    assert (await reserve(store, "o.next", [slot_charge(60)])).values == (2,)


async def test_redis_keeps_its_own_clock(redis: RedisServer) -> None:
    store = RedisStore(redis.url, password=None, timeout=1.0)
    await reserve(store, "o.1", [charge("a", 1, None)])
    async with Redis.from_url(redis.url) as client:
        seconds, microseconds = await client.time()
    assert store.now() == pytest.approx(seconds + microseconds / 1e6, abs=0.05)
    await store.close()


async def test_a_reservation_past_its_deadline_changes_nothing(redis: RedisServer) -> None:
    store = RedisStore(redis.url, password=None, timeout=1.0)
    async with Redis.from_url(redis.url) as client:
        await client.flushdb()
    now = store.now()
    with pytest.raises(StoreUnavailable, match="deadline"):
        await store.reserve("o.1", [charge("a", 5, None)], deadline=now - 1, lease_end=now + 60)
    assert await store.read(["a"]) == [0]
    await store.close()


async def test_a_settlement_from_before_a_restart_charges_the_new_counters_in_full(
    redis: RedisServer,
) -> None:
    store = RedisStore(redis.url, password=None, timeout=1.0)
    async with Redis.from_url(redis.url) as client:
        await client.flushdb()
        old = await reserve(store, "o.1", [charge("a", 4000, None)])
        await client.flushall()  # what a restart without persistence leaves
        new = await reserve(store, "o.2", [charge("a", 100, None)])
        assert new.epoch != old.epoch
        await store.settle("o.1", old.epoch, [final("a", 10)])
        assert await store.read(["a"]) == [110]  # not 100 + 10 - 4000
    await store.close()


async def test_settlements_made_together_go_as_one_call_each_with_its_own_outcome(
    redis: RedisServer,
) -> None:
    """Held, cancelled, already settled, from before a restart, holding a slot: one script."""
    store = RedisStore(redis.url, password=None, timeout=1.0)
    async with Redis.from_url(redis.url) as client:
        await client.flushdb()
        old = await reserve(store, "o.old", [charge("a", 50, None)])
        await client.flushall()  # a restart without persistence
        held = await reserve(store, "o.held", [charge("a", 10, None), slot_charge()])
        await reserve(store, "o.cancelled", [charge("b", 7, None)])
        await store.cancel("o.cancelled", [charge("b", 7, None)])
        done = await reserve(store, "o.done", [charge("b", 3, None)])
        await store.settle("o.done", done.epoch, [final("b", 2)])
        before = (await client.info("commandstats")).get("cmdstat_evalsha", {}).get("calls", 0)
        slot = Final("inflight", 0, 0, in_flight=True)
        await asyncio.gather(
            store.settle("o.held", held.epoch, [final("a", 4), slot]),
            store.settle("o.cancelled", held.epoch, [final("b", 7)]),
            store.settle("o.done", done.epoch, [final("b", 2)]),
            store.settle("o.old", old.epoch, [final("a", 5)]),
        )
        after = (await client.info("commandstats"))["cmdstat_evalsha"]["calls"]
        assert after - before == 1
        assert await store.read(["a", "b", "inflight"]) == [4 + 5, 2, 0]
    await store.close()


SCRIPTED = ("evalsha", "eval")


async def test_reservations_made_together_go_as_one_call_each_with_its_own_outcome(
    redis: RedisServer,
) -> None:
    """Granted in order until the cap, late, cancelled, growing, holding a slot: one script,
    and what each one left is what the next one found."""
    store = RedisStore(redis.url, password=None, timeout=1.0)
    async with Redis.from_url(redis.url) as client:
        await client.flushdb()
        await reserve(store, "o.grows", [charge("a", 2, 10)])
        await reserve(store, "o.cancelled", [charge("b", 1, None)])
        await store.cancel("o.cancelled", [charge("b", 1, None)])
        await client.script_flush()  # Redis forgot the scripts: the batch loads them again
        stats = await client.info("commandstats")
        before = {name: stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in SCRIPTED}
        now = store.now()
        late = store.reserve("o.late", [charge("a", 1, 10)], deadline=now - 1, lease_end=now + 60)
        outcomes = await asyncio.gather(
            reserve(store, "o.1", [charge("a", 3, 10), slot_charge()]),
            reserve(store, "o.grows", [charge("a", 4, 10)]),
            reserve(store, "o.2", [charge("a", 2, 10), slot_charge()]),  # 11 > 10
            reserve(store, "o.3", [charge("a", 1, 10), slot_charge()]),
            reserve(store, "o.4", [slot_charge()]),  # a third slot of two
            reserve(store, "o.cancelled", [charge("b", 1, None)]),
            late,
            return_exceptions=True,
        )
        stats = await client.info("commandstats")
        calls = {name: stats[f"cmdstat_{name}"]["calls"] - before[name] for name in SCRIPTED}
        assert calls == {"evalsha": 1, "eval": 1}  # unknown (NOSCRIPT), then sent whole
        first, grown, over, last, third_slot, cancelled, too_late = outcomes
        assert isinstance(first, Outcome) and first.values == (5, 1)
        assert isinstance(grown, Outcome) and grown.values == (9,)
        assert isinstance(over, Outcome) and not over.granted and over.values == (9, 1)
        assert isinstance(last, Outcome) and last.values == (10, 2)
        assert isinstance(third_slot, Outcome) and third_slot.refused == (0,)
        assert isinstance(cancelled, StoreUnavailable) and isinstance(too_late, StoreUnavailable)
        assert await store.read(["a", "b", "inflight"]) == [10, 0, 2]
        await store.settle("o.grows", grown.epoch, [final("a", 5)])
        assert await store.read(["a"]) == [10 - 6 + 5]
    await store.close()


async def test_slots_of_an_owner_that_stopped_beating_are_taken_when_needed(
    redis: RedisServer,
) -> None:
    store = RedisStore(redis.url, password=None, timeout=1.0)
    async with Redis.from_url(redis.url) as client:
        await client.flushdb()
        await store.beat("live")
        await reserve(store, "live.1", [slot_charge()])
        await reserve(store, "dead.1", [slot_charge()])
        await client.delete(ALIVE_PREFIX + "dead")  # its beat ran out
        assert await store.read(["inflight"]) == [1]
        assert (await reserve(store, "next.1", [slot_charge()])).values == (2,)
        assert not (await reserve(store, "next.2", [slot_charge()])).granted  # the live one stays
    await store.close()


async def test_redis_counters_expire_with_their_window(redis: RedisServer) -> None:
    store = RedisStore(redis.url, password=None, timeout=1.0)
    end = time.time() + 30
    await reserve(store, "o.1", [Charge("w", 1, None, end)])
    async with Redis.from_url(redis.url) as client:
        expiry = await client.pexpiretime(KEY_PREFIX + "w")
    assert expiry == int(end * 1000)
    await store.close()


async def test_redis_counters_and_slots_keep_an_expiry_however_they_were_left(
    redis: RedisServer,
) -> None:
    """A reservation sets a counter's expiry only when it finds the counter at 0 (new), and a
    holder set's only when it was empty: one refunded to 0, or refused, still has one, and a
    later slot's longer lease extends its set's while a shorter one does not cut it."""
    store = RedisStore(redis.url, password=None, timeout=1.0)
    end = time.time() + 30
    async with Redis.from_url(redis.url) as client:
        await client.flushdb()
        first = await reserve(store, "o.1", [Charge("w", 4, 10, end)])
        await store.settle("o.1", first.epoch, [Final("w", 0, end)])  # refunded to 0
        assert not (await reserve(store, "o.2", [Charge("w", 11, 10, end)])).granted
        assert await client.get(KEY_PREFIX + "w") == b"0"
        assert await client.pexpiretime(KEY_PREFIX + "w") == int(end * 1000)
        await reserve(store, "o.3", [Charge("w", 2, 10, end)])
        assert await client.pexpiretime(KEY_PREFIX + "w") == int(end * 1000)

        def slot(expiry: float) -> Charge:
            return Charge("slots", 1, 5, expiry, in_flight=True)

        await reserve(store, "o.4", [slot(end)])
        assert await client.pexpiretime(KEY_PREFIX + "slots") == int(end * 1000)
        await reserve(store, "o.5", [slot(end + 60)])
        assert await client.pexpiretime(KEY_PREFIX + "slots") == int((end + 60) * 1000)
        await reserve(store, "o.6", [slot(end)])
        assert await client.pexpiretime(KEY_PREFIX + "slots") == int((end + 60) * 1000)
    await store.close()


async def test_a_counter_that_expired_is_not_made_again_by_its_settlement(
    redis: RedisServer,
) -> None:
    """A request that outlived its window's counter: its settlement and cancellation change
    nothing, and leave no counter without an expiry (it would never go)."""
    store = RedisStore(redis.url, password=None, timeout=1.0)
    end = time.time() + 30
    settled = await reserve(store, "o.1", [Charge("w", 4, None, end)])
    await reserve(store, "o.2", [Charge("v", 4, None, end)])
    async with Redis.from_url(redis.url) as client:
        await client.delete(KEY_PREFIX + "w", KEY_PREFIX + "v")  # as their expiry would
        await store.settle("o.1", settled.epoch, [Final("w", 9, end)])
        await store.cancel("o.2", [Charge("v", 4, None, end)])
        assert await client.exists(KEY_PREFIX + "w", KEY_PREFIX + "v") == 0
        # A live counter settled down to nothing keeps its expiry.
        live = await reserve(store, "o.3", [Charge("w", 4, None, end)])
        await store.settle("o.3", live.epoch, [Final("w", 0, end)])
        assert await client.get(KEY_PREFIX + "w") == b"0"
        assert await client.pexpiretime(KEY_PREFIX + "w") == int(end * 1000)
    await store.close()


async def test_memory_counters_expire_with_their_window() -> None:
    now = [1000.0]
    store = MemoryStore(lambda: now[0])
    await reserve(store, "o.1", [Charge("w", 4, None, 1060.0)])
    now[0] = 1059.9
    assert await store.read(["w"]) == [4]
    now[0] = 1060.0
    assert await store.read(["w"]) == [0]
    granted = await reserve(store, "o.2", [Charge("w", 1, 1, 1120.0)])
    assert granted.granted and granted.values == (1,)


async def test_an_unreachable_redis_is_a_store_error_not_a_hang() -> None:
    with redis_server() as server:
        url = server.url
    store = RedisStore(url, password=None, timeout=0.25)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await reserve(store, "o.1", [charge("a", 1, 5)])
    assert time.monotonic() - started < 5
    await store.close()


async def test_a_cooldown_lasts_until_its_time_and_a_shorter_one_does_not_cut_it(
    store: QuotaStore,
) -> None:
    now = time.time()
    await store.cool("p/m", now + 30)
    await store.cool("p/m", now + 5)  # another replica saw a shorter wait
    await store.cool("p/gone", now - 1)

    cooling = await store.cooling(["p/m", "p/gone", "p/never"])

    assert cooling[0] == pytest.approx(now + 30, abs=0.01)
    assert cooling[1:] == [0.0, 0.0]


async def test_a_note_is_kept_until_its_time(store: QuotaStore) -> None:
    now = time.time()
    await store.note("response:resp_1", "coder\nopenai", now + 30)
    await store.note("response:resp_gone", "coder\nopenai", now - 1)

    assert await store.noted("response:resp_1") == "coder\nopenai"
    assert await store.noted("response:resp_gone") is None
    assert await store.noted("response:resp_never") is None
