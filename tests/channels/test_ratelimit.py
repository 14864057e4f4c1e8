"""The Redis rate limiter, shared by real separate processes."""

from __future__ import annotations

import bisect
import multiprocessing
import time
import uuid
from typing import Any

import pytest
from redis import Redis

from outreach.channels.ratelimit import RateLimiter, for_sender, parse_rates
from outreach.exceptions import ConfigurationError
from outreach.queue import connection
from tests.fixtures.app import build_app

RATE = 50.0


def send_paced(redis_url: str, key: str, seconds: float, n: int, start: Any) -> list[float]:
    """In a worker process: reserve n slots at a time for some seconds; return send times."""
    redis = Redis.from_url(redis_url)
    redis.ping()  # connect before the start line, so both processes start level
    limiter = RateLimiter(redis, key, RATE)
    start.wait(60)
    deadline = time.time() + seconds
    stamps: list[float] = []
    while time.time() < deadline:
        offsets = limiter.wait(n)
        base = time.monotonic()
        for offset in offsets:  # each of the n sends starts at its own slot
            time.sleep(max(0.0, base + offset - time.monotonic()))
            stamps.append(time.time())
    return stamps


def busiest(stamps: list[float], window: float) -> int:
    """The most sends in any window of this length that starts at a send."""
    return max(bisect.bisect_left(stamps, t + window) - i for i, t in enumerate(stamps))


def _worker(out: Any, *args: Any) -> None:
    out.put(send_paced(*args))


def test_two_processes_share_one_rate(redis_url: str) -> None:
    key = f"test:{uuid.uuid4().hex}"
    spawn = multiprocessing.get_context("spawn")
    out, start = spawn.Queue(), spawn.Barrier(2)
    workers = [spawn.Process(target=_worker, args=(out, redis_url, key, 6.0, n, start))
               for n in (1, 4)]  # one sends one at a time, the other reserves 4 slots at once
    for worker in workers:
        worker.start()
    runs = [out.get(timeout=90) for _ in workers]
    for worker in workers:
        worker.join(10)
    assert all(len(run) > 20 for run in runs)  # both really took part
    stamps = sorted(runs[0] + runs[1])
    # The average over the middle: a process that wakes late for its very first or last slot
    # says something about the machine's scheduler, not about the limiter.
    begin, end = stamps[0] + 0.5, stamps[-1] - 0.5
    observed = (bisect.bisect_left(stamps, end) - bisect.bisect_left(stamps, begin)) / (end - begin)
    assert abs(observed - RATE) <= RATE * 0.05, observed
    assert busiest(stamps, 2.0) <= RATE * 2.0 * 1.05


def test_slots_are_spaced_one_interval_apart(app) -> None:
    limiter = RateLimiter(connection(app), f"test:{uuid.uuid4().hex}", 10)
    assert limiter.acquire(5) == 0.0
    first = limiter.acquire(1)
    second = limiter.acquire(2)
    # Each wait is the slot's distance from "now": the second slot is at most 0.1 s further.
    assert 0 < first <= 0.5 and 0 < second <= 0.6 and second - first <= 0.1 + 1e-3
    assert 0 < connection(app).pttl(limiter.key) <= 1800  # gone once its slots are past
    assert limiter.wait(3) == pytest.approx([0.0, 0.1, 0.2])


def test_an_idle_limiter_banks_no_burst(app) -> None:
    limiter = RateLimiter(connection(app), f"test:{uuid.uuid4().hex}", 20)
    limiter.acquire(1)
    time.sleep(0.3)
    assert limiter.acquire(1) == 0.0 and limiter.acquire(1) > 0


def test_an_idle_limiter_banks_at_most_its_burst(app) -> None:
    limiter = RateLimiter(connection(app), f"test:{uuid.uuid4().hex}", 20, burst=3)
    limiter.acquire(1)
    time.sleep(1.0)  # idle for 20 slots: only 3 are banked
    assert [limiter.acquire(1) for _ in range(4)] == [0.0] * 4  # 3 banked + the current one
    assert 0 < limiter.acquire(1) <= 0.05 + 1e-3


def test_a_stall_is_made_up_within_the_burst_and_no_window_runs_over(app) -> None:
    """After a stall, burst slots are free at once (made up), never more than that: the slots
    handed out put at most rate x T + burst + 1 sends in any window of T seconds."""
    rate, burst = 50.0, 10
    limiter = RateLimiter(connection(app), f"test:{uuid.uuid4().hex}", rate, burst=burst)
    slots: list[float] = []

    def reserve(n: int) -> list[float]:
        waits = []
        for _ in range(n):
            waits.append(limiter.acquire(1))
            slots.append(time.monotonic() + waits[-1])
        return waits

    reserve(50)  # one second of slots, booked ahead
    time.sleep(1.5)  # all of them past, then a stall of 25 slots
    started = time.monotonic()
    waits = reserve(100)
    late = time.monotonic() - started  # on a busy machine the loop itself takes a while
    immediate = sum(w == 0.0 for w in waits)
    assert burst + 1 <= immediate <= burst + 2 + late * rate
    assert busiest(sorted(slots), 1.0) <= rate * 1.0 + burst + 2


def test_sms_limiters_bank_a_bounded_burst(database_url: str, redis_url: str, tmp_path) -> None:
    app = build_app(database_url, redis_url, tmp_path / "i", SMS_RATE_PER_SECOND=50.0)
    limiter = for_sender(app, "MGabc")
    # 0.3 s of sending: a 10-second window at 50/s holds at most 500 + 15 + 1 (< 525, 5%).
    assert limiter.burst == 15
    fast = build_app(database_url, redis_url, tmp_path / "j", SMS_RATE_PER_SECOND=1000.0)
    assert for_sender(fast, None).burst == 25  # capped


@pytest.mark.parametrize("rate", [0, None])
def test_no_rate_means_no_wait_and_no_redis(rate) -> None:
    unreachable = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    limiter = RateLimiter(unreachable, "test:none", rate)
    started = time.monotonic()
    assert [limiter.acquire(10) for _ in range(100)] == [0.0] * 100
    assert limiter.wait(3) == [0.0, 0.0, 0.0] and time.monotonic() - started < 0.1


def test_per_sender_rates(database_url: str, redis_url: str, tmp_path) -> None:
    app = build_app(database_url, redis_url, tmp_path / "i", SMS_RATE_PER_SECOND=30.0,
                    SMS_RATE_PER_SENDER=" +15550001111=1, MGabc=100 ")
    assert for_sender(app, "+15550001111").rate == 1
    assert for_sender(app, "MGabc").rate == 100
    other = for_sender(app, "+15550002222")
    assert other.rate == 30 and other.key.endswith("sms:+15550002222")
    assert for_sender(app, None).key.endswith("sms:default")


@pytest.mark.parametrize("spec", ["+1555", "+1555=fast", "=3", "+1555=-1"])
def test_bad_per_sender_settings_are_configuration_errors(spec: str) -> None:
    with pytest.raises(ConfigurationError, match="SMS_RATE_PER_SENDER"):
        parse_rates(spec)
