"""The hit layer in front of Flask: the same answers as the Flask views, a compact buffer."""

from __future__ import annotations

import json
import socket
import uuid

import pytest
import sqlalchemy as sa
from flask import Flask
from redis import Redis
from redis.exceptions import RedisError

from outreach import db
from outreach.blasts.models import Link, Message
from outreach.queue import get_queue, redis
from outreach.tracking import buffer, hits
from outreach.tracking.buffer import HITS_KEY, encode_hit, write_hits
from outreach.tracking.hits import HitLayer, with_attribution
from outreach.tracking.models import Event
from tests.fixtures.app import run_jobs
from tests.tracking import events, rollup_totals, sent_email_blast

BROWSER = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like "
           "Gecko) Version/17.4 Safari/605.1.15")


def flask_only(app: Flask) -> Flask:
    """The same app with the hit layer taken out, so Flask's views answer every request."""
    layer = app.wsgi_app
    assert isinstance(layer, HitLayer)
    app.wsgi_app = layer.wrapped  # type: ignore[method-assign]
    return app


def answer(client, path, method="get", ua=BROWSER, **kwargs):
    return getattr(client, method)(path, headers={"User-Agent": ua},
                                   environ_base={"REMOTE_ADDR": "203.0.113.9"}, **kwargs)


def comparable(response):
    """Status, headers (but the request id) and body of a response."""
    headers = sorted((k, v) for k, v in response.headers.items() if k != "X-Request-ID")
    return response.status, headers, response.data


@pytest.mark.parametrize("method", ["get", "head"])
def test_layer_answers_exactly_as_the_flask_views(app, method):
    _, _, tokens = sent_email_blast(app)
    token = tokens["p0@example.org"]
    paths = [f"/o/{token}.gif", f"/c/{token}/0", f"/c/{token}/1"]
    fast = [comparable(answer(app.test_client(), p, method)) for p in paths]
    assert all("X-Content-Type-Options" in dict(headers) for _, headers, _ in fast)
    with app.app_context():
        assert buffer.pending() == len(paths)
    flask_client = flask_only(app).test_client()
    slow = [comparable(answer(flask_client, p, method)) for p in paths]
    assert fast == slow
    run_jobs(app)
    assert [(e.kind, e.detail["method"]) for e in events(app)] == [
        (kind, method.upper()) for kind in ("open", "click", "click")] * 2


def test_https_hits_carry_hsts(app, client):
    _, _, tokens = sent_email_blast(app)
    response = client.get(f"/o/{tokens['p0@example.org']}.gif", base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in client.get(
        f"/o/{tokens['p0@example.org']}.gif").headers


def test_what_the_layer_cannot_answer_goes_to_flask(app, client):
    _, _, tokens = sent_email_blast(app)
    token = tokens["p0@example.org"]
    for path in (f"/o/{token}", f"/o/{token}.gif/", f"/c/{token}/9", f"/c/{token}/+1",
                 f"/c/{token}/99999999999", f"/c/{token[:-1]}/0", "/o/%E2%82%AC.gif"):
        response = answer(client, path)
        assert response.status_code == 404 and b"<html" in response.data.lower(), path
    assert client.post(f"/o/{token}.gif").status_code == 405
    assert answer(client, f"/c/{token}/h").status_code == 200  # the honeypot: Flask's view
    with app.app_context():
        assert buffer.pending() == 1


def test_clicks_to_our_action_pages_carry_attribution(app, client):
    blast_id, _, tokens = sent_email_blast(app)
    base = app.config["PUBLIC_BASE_URL"].rstrip("/")
    with app.app_context(), db.transaction() as session:
        session.execute(sa.update(Link).where(Link.blast_id == blast_id, Link.position == 1)
                        .values(url=f"{base}/a/act-now?src=mail&t=old"))
    token = tokens["p1@example.org"]
    location = answer(client, f"/c/{token}/1").headers["Location"]
    assert location == f"{base}/a/act-now?src=mail&t={token}&l=1"
    assert with_attribution("https://elsewhere.example/a/x", token, 1, base) == (
        "https://elsewhere.example/a/x")


def test_a_redis_outage_loses_the_hit_but_not_the_answer(app, client):
    _, _, tokens = sent_email_blast(app)
    app.extensions["redis"] = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    token = tokens["p0@example.org"]
    assert answer(client, f"/o/{token}.gif").status_code == 200
    assert answer(client, f"/c/{token}/0").headers["Location"] == (
        "https://act.example.org/letter?x=1&y=2")


def test_compact_records_and_older_json_records_are_both_written(app):
    blast_id, _, _ = sent_email_blast(app)
    with app.app_context():
        mid = db.session().scalar(sa.select(Message.id).where(Message.blast_id == blast_id)
                                  .order_by(Message.id).limit(1))
        raw = [encode_hit("open", mid, None, None, "203.0.113.1", "A\tbrowser\twith tabs"),
               encode_hit("click", mid, 1, "head", "203.0.113.1", BROWSER, "HEAD"),
               json.dumps({"id": uuid.uuid4().hex, "k": "open", "m": mid, "p": None,
                           "t": 1.7e9, "x": False, "r": None, "ip": "203.0.113.1",
                           "ua": BROWSER}).encode(),
               b"2\tshort", b"2\tid\tz\t1\t\t1.0\t\tGET\t\tua", b"\xff\xfe"]
        redis().rpush(HITS_KEY, *raw)
        assert buffer.flush_hits() == len(raw)
        assert write_hits(raw) == 0  # read again (a crash before the trim): nothing twice
    stored = events(app)
    assert [(e.kind, e.machine, e.detail.get("reason"), e.detail.get("useragent"))
            for e in stored] == [("open", False, None, "A\tbrowser\twith tabs"),
                                 ("click", True, "head", BROWSER),
                                 ("open", False, None, BROWSER)]
    assert stored[1].link_position == 1 and stored[1].detail["method"] == "HEAD"
    assert rollup_totals(app, blast_id)[("open", -1, False)] == (2, 1)


def test_opens_need_no_database(app, client):
    """A signed token is trusted as it is: the pixel answers and buffers with SQL unreachable."""
    _, _, tokens = sent_email_blast(app)
    token = tokens["p2@example.org"]
    engine = app.extensions["db_engine"]
    app.extensions["db_engine"] = sa.create_engine("sqlite:////nonexistent/dir/no.sqlite3")
    try:
        response = answer(client, f"/o/{token}.gif")
    finally:
        app.extensions["db_engine"] = engine
    assert response.status_code == 200 and response.data.startswith(b"GIF89a")
    run_jobs(app)
    assert len(events(app, Event.kind == "open")) == 1


def test_the_pusher_survives_a_dropped_connection_and_a_flushed_script_cache(app):
    with app.app_context():
        client = redis()
        pusher = buffer.HitPusher(client)
        first = encode_hit("open", 1, None, None, "203.0.113.1", BROWSER)
        assert pusher.push(first) is True  # the guard was free: the caller queues a flush
        assert pusher.push(first) is False  # within the second: no second flush job
        pusher._local.conn._sock.shutdown(socket.SHUT_RDWR)  # as a Redis restart would
        assert pusher.push(first) is False
        client.script_flush()  # a new Redis without the script: EVAL loads it again
        assert pusher.push(first) is False
        assert pusher.push(first) is False  # and EVALSHA finds it
        assert client.llen(HITS_KEY) == 5
        assert int(client.hget("outreach:counters", "tracking_hits_buffered_total")) == 5
        client.delete(buffer.GUARD_KEY)
        assert pusher.push(first) is True
    dead = buffer.HitPusher(Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2))
    with pytest.raises(RedisError):
        dead.push(first)


def test_a_trickle_of_hits_is_gathered_into_fewer_batches(app, monkeypatch):
    """While hits keep arriving, the flush waits for the next batch instead of writing each
    handful as it comes (a batch's fixed cost is a lock, six statements and a commit)."""
    blast_id, _, _ = sent_email_blast(app)
    with app.app_context():
        mid = db.session().scalar(sa.select(Message.id).where(Message.blast_id == blast_id)
                                  .order_by(Message.id).limit(1))
        batches: list[int] = []
        pauses: list[float] = []
        write = buffer.write_hits

        def arrive(count: int) -> None:
            redis().rpush(HITS_KEY, *[encode_hit("open", mid, None, None, "203.0.113.1",
                                                 BROWSER) for _ in range(count)])

        def writing(raw):
            batches.append(len(raw))
            if len(batches) == 1:
                arrive(2)  # two hits come in while the first batch is written
            return write(raw)

        def sleeping(seconds: float) -> None:
            pauses.append(seconds)
            arrive(3)  # and three more during the pause

        monkeypatch.setattr(buffer, "write_hits", writing)
        monkeypatch.setattr(buffer.time, "sleep", sleeping)
        arrive(4)
        assert buffer.flush_hits(batch_size=100, interval=0.5) == 9
    assert batches == [4, 5] and len(pauses) == 1 and 0 < pauses[0] <= 0.5
    assert rollup_totals(app, blast_id)[("open", -1, False)] == (9, 1)


def test_a_long_flush_hands_over_to_a_fresh_job(app):
    blast_id, _, _ = sent_email_blast(app)
    with app.app_context():
        mid = db.session().scalar(sa.select(Message.id).where(Message.blast_id == blast_id)
                                  .order_by(Message.id).limit(1))
        redis().rpush(HITS_KEY, *[encode_hit("open", mid, None, None, "203.0.113.1", BROWSER)
                                  for _ in range(5)])
        assert buffer.flush_hits(batch_size=2, max_seconds=0) == 2  # one batch, then hand over
        assert buffer.pending() == 3 and get_queue("events").count == 1
    run_jobs(app)  # the fresh job (batches of 10,000) writes the rest
    with app.app_context():
        assert buffer.pending() == 0
    assert rollup_totals(app, blast_id)[("open", -1, False)] == (5, 1)


def test_clicks_survive_a_dropped_lookup_connection(app, client):
    """On a server each thread keeps its lookup connection: a dropped one is replaced."""
    engine = hits.lookup_engine(app)
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite checks a connection out per click")
    _, _, tokens = sent_email_blast(app)
    token = tokens["p0@example.org"]
    assert answer(client, f"/c/{token}/0").status_code == 302
    conn, _ = hits._threads.held[engine]
    with app.app_context():
        db.session().execute(sa.text("SELECT pg_terminate_backend(:pid)"),
                             {"pid": conn.info.backend_pid})
        db.session().commit()
    assert answer(client, f"/c/{token}/1").status_code == 302
    assert hits._threads.held[engine][0] is not conn
    assert answer(client, f"/c/{token}/9").status_code == 404
