"""The quota store's own Redis client against redis-py as the oracle, on a real redis-server:
the same replies for the same commands and scripts, replies kept in order under pipelining
and when a caller gives up, and a connection that Redis dropped replaced."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from extproc.quota.resp import RespClient, RespError, Script
from tests.harness import Process, RedisServer, free_port, redis_server

pytestmark = pytest.mark.redis

NESTED = Script(
    """
    redis.call('SET', KEYS[1], ARGV[1])
    return {tonumber(ARGV[2]), redis.call('GET', KEYS[1]), false, {1, 'two', {3}}, 'ok'}
    """
)


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture
async def oracle(redis: RedisServer) -> AsyncIterator[Redis]:
    async with Redis.from_url(redis.url) as client:
        await client.flushdb()
        await client.script_flush()
        yield client


@pytest.fixture(params=["tcp", "unix"])
async def client(request: pytest.FixtureRequest, redis: RedisServer) -> AsyncIterator[RespClient]:
    url = redis.url if request.param == "tcp" else redis.socket_url
    ours = RespClient(url, password=None, timeout=2.0)
    yield ours
    await ours.close()


COMMANDS: list[tuple[Any, ...]] = [
    ("SET", "k", "välue"),
    ("GET", "k"),
    ("GET", "missing"),
    ("INCRBY", "n", 41),
    ("INCRBY", "n", -2),
    ("MGET", "k", "missing", "n"),
    ("RPUSH", "l", "a", "b", b"\x00\xff"),
    ("LRANGE", "l", 0, -1),
    ("SET", "k", "x", "PX", 60000),
    ("PTTL", "nothing"),
    ("TIME",),
]


async def test_replies_are_those_redis_py_reads(redis: RedisServer, oracle: Redis) -> None:
    """The same commands, ours on database 1 and redis-py's on database 2."""
    ours = RespClient(redis.url + "/1", password=None, timeout=2.0)
    try:
        await ours.execute("FLUSHDB")
        async with Redis.from_url(redis.url + "/2") as theirs:
            await theirs.flushdb()
            theirs.response_callbacks.clear()  # the replies as they come, not made Pythonic
            for command in COMMANDS:
                mine, reference = (
                    await ours.execute(*command),
                    await theirs.execute_command(*command),
                )
                if command[0] == "TIME":
                    assert [type(value) for value in mine] == [bytes, bytes]
                    assert abs(int(mine[0]) - int(reference[0])) <= 1
                else:
                    assert mine == reference, command
    finally:
        await ours.close()


async def test_a_script_runs_by_digest_and_is_sent_whole_when_unknown(
    client: RespClient, oracle: Redis
) -> None:
    ours = await client.run(NESTED, ["{t}:a"], ["value", "7"])  # Redis does not know it yet
    assert await oracle.script_exists(NESTED.digest) == [True]
    again = await client.run(NESTED, ["{t}:a"], ["value", "7"])
    theirs = await oracle.register_script(NESTED.source)(keys=["{t}:a"], args=["value", "7"])
    assert ours == again == theirs == [7, b"value", None, [1, b"two", [3]], b"ok"]


async def test_an_error_reply_is_raised_and_the_line_goes_on(client: RespClient) -> None:
    await client.execute("SET", "s", "text")
    with pytest.raises(RespError, match="not an integer"):
        await client.execute("INCRBY", "s", 1)
    with pytest.raises(RespError, match="unknown command"):
        await client.execute("NOSUCHCOMMAND")
    assert await client.execute("GET", "s") == b"text"


async def test_many_commands_in_flight_each_get_their_own_reply(
    client: RespClient, oracle: Redis
) -> None:
    replies = await asyncio.gather(*(client.execute("INCRBY", f"c{n % 7}", n) for n in range(500)))
    totals: dict[int, int] = {}
    for n, reply in enumerate(replies):
        totals[n % 7] = totals.get(n % 7, 0) + n
        assert reply <= totals[n % 7]
    for key, total in totals.items():
        assert int(await client.execute("GET", f"c{key}")) == total


async def test_a_caller_that_gave_up_leaves_the_later_replies_in_order(redis: RedisServer) -> None:
    """Redis frozen: the command times out; once Redis runs again, the late reply is dropped
    and the next command gets its own."""
    client = RespClient(redis.url, password=None, timeout=0.3)
    try:
        await client.execute("SET", "order", "before")
        os.kill(redis.process.popen.pid, signal.SIGSTOP)
        try:
            with pytest.raises(TimeoutError):
                await client.execute("GET", "order")
        finally:
            os.kill(redis.process.popen.pid, signal.SIGCONT)
        assert await client.execute("SET", "order", "after") == b"OK"
        assert await client.execute("GET", "order") == b"after"
    finally:
        await client.close()


async def drained(client: RespClient, *command: Any) -> Any:
    """The command's reply once the line is short enough again (the late replies arrive)."""
    for _ in range(500):
        try:
            return await client.execute(*command)
        except RespError as error:
            if "too many commands" not in str(error):
                raise
            await asyncio.sleep(0.01)
    raise AssertionError("the line of waiting commands never emptied")


async def test_callers_waiting_on_a_frozen_redis_are_bounded(redis: RedisServer) -> None:
    """Past the bound, a command fails at once instead of joining the line; once Redis
    answers again the line empties and commands are served."""
    client = RespClient(redis.url, password=None, timeout=0.5, max_waiting=50)
    try:
        await client.execute("DEL", "waiting")
        os.kill(redis.process.popen.pid, signal.SIGSTOP)
        try:
            outcomes = await asyncio.gather(
                *(client.execute("INCR", "waiting") for _ in range(80)), return_exceptions=True
            )
        finally:
            os.kill(redis.process.popen.pid, signal.SIGCONT)
        timed_out = [o for o in outcomes if isinstance(o, TimeoutError)]
        refused = [o for o in outcomes if isinstance(o, RespError)]
        assert (len(timed_out), len(refused)) == (50, 30)
        assert "too many commands" in str(refused[0])
        assert int(await drained(client, "GET", "waiting")) == 50, "the waiting ones ran late"
    finally:
        await client.close()


async def test_a_restarted_redis_is_reconnected_to_at_once() -> None:
    port = free_port()
    with redis_server(port) as first:
        client = RespClient(first.url, password=None, timeout=2.0)
        await client.execute("SET", "k", "1")
    try:
        with pytest.raises(RespError):
            await client.execute("GET", "k")  # nobody listens
        with redis_server(port) as second:
            assert await client.execute("GET", "k") is None  # a new, empty Redis
            assert await client.execute("SET", "k", "2") == b"OK"
            second.process.stop()
        with redis_server(port):
            assert await client.execute("GET", "k") is None
    finally:
        await client.close()


async def test_a_password_and_a_database_from_the_url(tmp_path: Any) -> None:
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    process = Process([*argv, "--requirepass", "s3cret", "--appendonly", "no"])
    try:
        process.wait_for(r"Ready to accept connections")
        url = f"redis://127.0.0.1:{port}/3"
        with pytest.raises(RespError, match=r"WRONGPASS|NOAUTH"):
            await RespClient(url, password="wrong", timeout=2.0).execute("PING")
        client = RespClient(url, password="s3cret", timeout=2.0)
        await client.execute("SET", "where", "db3")
        async with Redis.from_url(url, password="s3cret") as oracle:
            assert await oracle.get("where") == b"db3"
        async with Redis.from_url(f"redis://127.0.0.1:{port}/0", password="s3cret") as other:
            assert await other.get("where") is None
        await client.close()
    finally:
        process.stop()
