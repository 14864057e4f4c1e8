"""Opens and clicks: the tracking hit path, served by a thin WSGI layer in front of Flask.

Why a layer of its own: a blast of 200,000 emails brings thousands of hits a second, and a hit
needs none of Flask's request machinery. The routes are public (no auth hook, no session, no
CSRF), the token is HMAC-signed (outreach/tokens.py), so an open is trusted with no SQL at
all, and a click costs one indexed query for the URL stored for its blast and position. The
hit itself goes to the Redis buffer (buffer.py) in one round trip; the "too soon after
sending" machine rule is applied by the flush, which reads the messages anyway.

`HitLayer` answers `GET|HEAD /o/<token>.gif` and `GET|HEAD /c/<token>/<position>` with the
same bytes and headers (the app's security headers included) as the Flask views in views.py,
and hands every other request, and every hit it cannot answer (a forged token, an unknown
link), to Flask, whose views answer them (the 404 page) as before.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from functools import lru_cache
from html import escape
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import sqlalchemy as sa
from flask import Flask
from redis.exceptions import RedisError
from werkzeug.urls import iri_to_uri

from outreach.blasts.models import Link, Message
from outreach.queue import connection, enqueue
from outreach.tokens import read_token
from outreach.tracking import buffer, machine
from outreach.web import HSTS_HEADER, SECURITY_HEADERS

log = logging.getLogger(__name__)
# A 1x1 transparent GIF (43 bytes).
PIXEL = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
         b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
NO_STORE = {"Cache-Control": "no-store, max-age=0", "Pragma": "no-cache"}
MAX_POSITION = 2**31 - 1  # links.position is a 32-bit integer column
# Plain DBAPI SQL: through SQLAlchemy's Connection a click cost ~4x the CPU (pre-ping, BEGIN,
# ROLLBACK on check-in), for one primary-key join. "{}" is the driver's placeholder.
CLICK_TARGET = (f"SELECT l.url FROM {Message.__tablename__} m JOIN {Link.__tablename__} l "
                "ON l.blast_id = m.blast_id WHERE m.id = {} AND l.position = {}")
PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}
PIXEL_HEADERS = [("Content-Type", "image/gif"), ("Content-Length", str(len(PIXEL))),
                 *NO_STORE.items(), *SECURITY_HEADERS]
Answer = tuple[str, list[tuple[str, str]], bytes]


def lookup_engine(app: Flask) -> sa.Engine:
    """The engine for click lookups: autocommit, no pre-ping (a dropped connection is retried).

    SQLite's engine serves as it is (no pre-ping, no server); a server gets its own small pool.
    """
    engine = app.extensions.get("tracking_lookup_engine")
    if engine is None:
        main = app.extensions["db_engine"]
        engine = main if main.dialect.name == "sqlite" else sa.create_engine(
            main.url, isolation_level="AUTOCOMMIT", pool_size=4, max_overflow=8,
            pool_recycle=3600)
        # Two threads may race here: both engines work, one is kept.
        engine = app.extensions.setdefault("tracking_lookup_engine", engine)
    return engine


_threads = threading.local()  # .held: {engine: (a DBAPI connection, its cursor)} per thread


def click_url(engine: sa.Engine, message_id: int, position: int) -> str | None:
    """The URL stored for the message's blast at this position, or None."""
    if not 0 <= position <= MAX_POSITION:
        return None
    mark = PLACEHOLDERS[engine.dialect.paramstyle]
    sql = CLICK_TARGET.format(mark, mark)
    if engine.dialect.name == "sqlite":  # the tests' and dev's database: a checkout per click
        return _click_url_checkout(engine, sql, message_id, position)
    # A server: each thread keeps an autocommit connection of its own, detached from the pool,
    # and one cursor on it; a pool checkout and check-in plus a new cursor cost ~50 us of CPU
    # per click, a third of the lookup. Weakly keyed: an engine thrown away (a test's app)
    # takes its connections with it.
    held = getattr(_threads, "held", None)
    if held is None:
        held = _threads.held = weakref.WeakKeyDictionary()
    for attempt in (1, 2):
        pair = held.get(engine)
        if pair is None:
            fairy = engine.raw_connection()
            fairy.detach()  # ours now: the pool neither counts nor resets it
            conn = fairy.dbapi_connection
            pair = held[engine] = (conn, conn.cursor())
        conn, cursor = pair
        try:
            cursor.execute(sql, (message_id, position))
            row = cursor.fetchone()
            return None if row is None else row[0]
        except engine.dialect.loaded_dbapi.Error:
            del held[engine]  # a dropped connection (server restart): retry on a fresh one
            try:
                conn.close()
            except engine.dialect.loaded_dbapi.Error:
                pass
            if attempt == 2:
                raise
    return None


def _click_url_checkout(engine: sa.Engine, sql: str, message_id: int,
                        position: int) -> str | None:
    conn = engine.raw_connection()
    try:
        cursor = conn.cursor()
        cursor.execute(sql, (message_id, position))
        row = cursor.fetchone()
        cursor.close()
        return None if row is None else row[0]
    finally:
        conn.close()


@lru_cache(maxsize=4096)  # a blast's few links, clicked thousands of times
def is_own_action_page(url: str, public_base_url: str) -> bool:
    """True for a URL of our own action pages (/a/... on PUBLIC_BASE_URL)."""
    base, parts = urlsplit(public_base_url), urlsplit(url)
    return ((parts.scheme, parts.netloc) == (base.scheme, base.netloc)
            and parts.path.startswith("/a/"))


def with_attribution(url: str, token: str, position: int, public_base_url: str) -> str:
    """Our own action pages learn which blast, message and link brought the supporter."""
    if not is_own_action_page(url, public_base_url):
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k not in ("t", "l")]
    return urlunsplit(parts._replace(query=urlencode([*query, ("t", token),
                                                      ("l", str(position))])))


def record_hit(app: Flask, kind: str, message_id: int, position: int | None,
               reason: str | None, ip: str | None, user_agent: str | None, method: str) -> None:
    """Buffer a hit; a Redis outage loses the hit but never the pixel or the redirect."""
    record = buffer.encode_hit(kind, message_id, position, reason, ip, user_agent, method)
    try:
        client = connection(app)
        pusher = app.extensions.get("tracking_hit_pusher")
        if pusher is None or pusher.client is not client:  # first hit, or a new client
            pusher = app.extensions["tracking_hit_pusher"] = buffer.HitPusher(client)
        if pusher.push(record):
            with app.app_context():  # about once a second: RQ's enqueue wants the app
                enqueue("events", buffer.flush_hits)
    except RedisError:
        log.exception("could not buffer a tracking hit")


@lru_cache(maxsize=4096)  # the same few locations again and again (attributed ones vary)
def redirect_answer(location: str) -> Answer:
    """A 302 as werkzeug's redirect() writes it (the same body and headers)."""
    location = iri_to_uri(location)
    html = escape(location)
    body = ("<!doctype html>\n<html lang=en>\n<title>Redirecting...</title>\n"
            "<h1>Redirecting...</h1>\n<p>You should be redirected automatically to the target "
            f'URL: <a href="{html}">{html}</a>. If not, click the link.\n').encode()
    return ("302 FOUND", [("Content-Type", "text/html; charset=utf-8"),
                          ("Content-Length", str(len(body))), ("Location", location),
                          *NO_STORE.items(), *SECURITY_HEADERS], body)


class HitLayer:
    """WSGI middleware: answers opens and clicks itself, hands everything else to Flask."""

    def __init__(self, app: Flask, wrapped: Callable[..., Iterable[bytes]]) -> None:
        self.app, self.wrapped = app, wrapped

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "")
        if path[:3] in ("/o/", "/c/") and method in ("GET", "HEAD"):
            answer = self.answer(environ, path, method)
            if answer is not None:
                status, headers, body = answer
                if environ.get("wsgi.url_scheme") == "https":
                    headers = [*headers, HSTS_HEADER]
                start_response(status, headers)
                return [b"" if method == "HEAD" else body]
        return self.wrapped(environ, start_response)

    def answer(self, environ: dict[str, Any], path: str, method: str) -> Answer | None:
        """The response to a valid hit (recorded), or None to let Flask answer."""
        config = self.app.config
        ip, user_agent = environ.get("REMOTE_ADDR"), environ.get("HTTP_USER_AGENT", "")
        rest = path[3:]
        if path[1] == "o":
            if not rest.endswith(".gif") or "/" in rest:
                return None
            message_id = read_token(rest[:-4], config["SECRET_KEY"])
            if message_id is None:
                return None
            reason = machine.classify_open(ip, user_agent, None)
            record_hit(self.app, "open", message_id, None, reason, ip, user_agent, method)
            return "200 OK", PIXEL_HEADERS, PIXEL
        token, _, position = rest.partition("/")
        if not (position.isascii() and position.isdigit()):
            return None  # the honeypot (/c/<token>/h) and anything else: Flask
        message_id = read_token(token, config["SECRET_KEY"])
        if message_id is None:
            return None
        url = click_url(lookup_engine(self.app), message_id, int(position))
        if url is None:
            return None
        reason = machine.classify_click(method, user_agent, None)
        record_hit(self.app, "click", message_id, int(position), reason, ip, user_agent, method)
        return redirect_answer(with_attribution(url, token, int(position),
                                                config["PUBLIC_BASE_URL"]))


def init_app(app: Flask) -> None:
    """Put the hit layer in front of the Flask app (inside ProxyFix, if any, so it sees the
    client's address)."""
    app.wsgi_app = HitLayer(app, app.wsgi_app)  # type: ignore[method-assign]
