"""The store contract, held by the memory store and by a real redis-server alike."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from extproc.quota.memory_store import MemoryStore
from extproc.quota.redis_store import KEY_PREFIX, RedisStore
from extproc.quota.store import Charge, QuotaStore, StoreUnavailable
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


def charge(counter: str, amount: int, cap: int | None) -> Charge:
    return Charge(counter, amount, cap, time.time() + 60)


async def test_a_reservation_is_all_or_nothing(store: QuotaStore) -> None:
    granted = await store.reserve([charge("a", 3, 5), charge("b", 7, 10), charge("s", 9, None)])
    assert granted.granted and granted.values == (3, 7, 9)

    refused = await store.reserve([charge("a", 1, 5), charge("b", 4, 10), charge("s", 1, None)])
    assert not refused.granted
    assert refused.refused == (1,)
    assert refused.values == (3, 7, 9)
    assert await store.read(["a", "b", "s", "never"]) == [3, 7, 9, 0]


async def test_adjust_refunds_never_below_zero_and_skips_gone_counters(store: QuotaStore) -> None:
    await store.reserve([charge("a", 10, None)])
    await store.settle([("a", -4), ("gone", 5)])
    assert await store.read(["a", "gone"]) == [6, 0]
    await store.settle([("a", -100)])
    assert await store.read(["a"]) == [0]


async def test_concurrent_reservations_never_pass_the_cap(store: QuotaStore) -> None:
    outcomes = await asyncio.gather(*(store.reserve([charge("c", 1, 10)]) for _ in range(50)))
    assert sum(outcome.granted for outcome in outcomes) == 10
    assert await store.read(["c"]) == [10]


def slot(holder: str, lease: float) -> Charge:
    return Charge("inflight", 1, 2, time.time() + lease, holder)


async def test_in_flight_slots_are_held_released_and_counted(store: QuotaStore) -> None:
    assert (await store.reserve([slot("a", 60)])).values == (1,)
    assert (await store.reserve([slot("b", 60), charge("n", 5, None)])).values == (2, 5)
    refused = await store.reserve([slot("c", 60), charge("n", 5, None)])
    assert not refused.granted and refused.refused == (0,)
    assert await store.read(["inflight", "n"]) == [2, 5]
    await store.settle([("n", -1)], [("inflight", "a")])
    assert await store.read(["inflight", "n"]) == [1, 4]
    assert (await store.reserve([slot("c", 60)])).granted


async def test_a_vanished_holder_frees_its_slot_when_its_lease_ends(store: QuotaStore) -> None:
    # A holder whose processor died never releases: its lease (already over here) does.
    await store.reserve([slot("alive", 60)])
    await store.reserve([slot("crashed", -1)])
    assert await store.read(["inflight"]) == [1]
    assert (await store.reserve([slot("next", 60)])).values == (2,)


async def test_redis_counters_expire_with_their_window(redis: RedisServer) -> None:
    store = RedisStore(redis.url, password=None, timeout=1.0)
    end = time.time() + 30
    await store.reserve([Charge("w", 1, None, end)])
    async with Redis.from_url(redis.url) as client:
        expiry = await client.pexpiretime(KEY_PREFIX + "w")
    assert expiry == int(end * 1000)
    await store.close()


async def test_memory_counters_expire_with_their_window() -> None:
    now = [1000.0]
    store = MemoryStore(lambda: now[0])
    await store.reserve([Charge("w", 4, None, 1060.0)])
    now[0] = 1059.9
    assert await store.read(["w"]) == [4]
    now[0] = 1060.0
    assert await store.read(["w"]) == [0]
    granted = await store.reserve([Charge("w", 1, 1, 1120.0)])
    assert granted.granted and granted.values == (1,)


async def test_an_unreachable_redis_is_a_store_error_not_a_hang() -> None:
    with redis_server() as server:
        url = server.url
    store = RedisStore(url, password=None, timeout=0.25)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await store.reserve([charge("a", 1, 5)])
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
