"""Slow counts over many rows are remembered for a time proportional to their cost; others never."""

from __future__ import annotations

import json
import time

from outreach import slow_counts
from outreach.queue import redis


def BIG(value):
    return slow_counts.MIN_ROWS


def len_or_n(value):
    return value


def counting(value, seconds=0.0):
    calls = []

    def compute():
        calls.append(1)
        time.sleep(seconds)
        return value

    return compute, calls


def test_a_fast_count_is_always_counted_afresh(app):
    with app.app_context():
        compute, calls = counting({"n": 1})
        for _ in range(3):
            assert slow_counts.remembered("fast", compute, rows=BIG) == {"n": 1}
        assert len(calls) == 3
        assert redis().get(slow_counts.PREFIX + "fast") is None


def test_a_slow_count_is_remembered_for_ten_times_its_cost(app):
    with app.app_context():
        compute, calls = counting([1, 2], seconds=0.06)
        assert slow_counts.remembered("slow", compute, rows=BIG) == [1, 2]
        assert slow_counts.remembered("slow", compute, rows=BIG) == [1, 2]
        assert len(calls) == 1
        entry = json.loads(redis().get(slow_counts.PREFIX + "slow"))
        assert 0.5 <= entry["until"] - time.time() <= slow_counts.MAX_SECONDS
        assert slow_counts.last_value("slow") == [1, 2]


def test_a_stale_value_is_served_while_another_request_recounts(app):
    with app.app_context():
        client = redis()
        client.set(slow_counts.PREFIX + "stale",
                   json.dumps({"value": "old", "until": time.time() - 1}))
        client.set(slow_counts.PREFIX + "stale:lock", 1)  # another process is recounting
        compute, calls = counting("new", seconds=0.06)
        assert slow_counts.remembered("stale", compute, rows=BIG) == "old" and not calls
        client.delete(slow_counts.PREFIX + "stale:lock")  # it finished without storing
        assert slow_counts.remembered("stale", compute, rows=BIG) == "new" and len(calls) == 1
        assert client.get(slow_counts.PREFIX + "stale:lock") is None
        assert slow_counts.remembered("stale", compute, rows=BIG) == "new" and len(calls) == 1


def test_a_count_that_became_small_is_exact_again(app):
    with app.app_context():
        client = redis()
        client.set(slow_counts.PREFIX + "shrunk",
                   json.dumps({"value": 10**6, "until": time.time() - 1}))
        compute, calls = counting(3, seconds=0.06)  # slow (a busy machine) but small
        assert slow_counts.remembered("shrunk", compute, rows=len_or_n) == 3
        assert client.get(slow_counts.PREFIX + "shrunk") is None
        assert slow_counts.remembered("shrunk", compute, rows=len_or_n) == 3
        assert len(calls) == 2


def test_without_redis_every_count_is_computed(app, monkeypatch):
    from redis.exceptions import ConnectionError

    class Down:
        def get(self, key):
            raise ConnectionError("down")

    monkeypatch.setattr(slow_counts, "_client", lambda: Down())
    with app.app_context():
        compute, calls = counting(7, seconds=0.06)
        assert slow_counts.remembered("down", compute, rows=BIG) == 7
        assert slow_counts.remembered("down", compute, rows=BIG) == 7
        assert len(calls) == 2 and slow_counts.last_value("down") is None
