"""Threaded HTTP plumbing shared by the provider emulators: lifecycle, faults, control API."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from http.client import responses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple, Self
from urllib.parse import parse_qs

CONTROL_PREFIX = "/_emulator/"  # 10 characters
Headers = Mapping[str, str] | None


class Response(NamedTuple):
    """An HTTP answer: status, body bytes and extra headers."""

    status: int
    body: bytes = b""
    headers: Headers = None


def json_response(status: int, payload: Any, headers: Headers = None) -> Response:
    """Serialize payload as a JSON response."""
    merged = {"Content-Type": "application/json"}
    merged.update(headers or {})
    return Response(status, json.dumps(payload).encode(), merged)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        """Refuse redirects: a provider reports a webhook's redirect as its answer."""
        return None


# Emulators talk to local apps: never route their webhooks through a proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def post_webhook(
    url: str, body: bytes, headers: Mapping[str, str], timeout: float = 10.0
) -> tuple[int, str]:
    """POST body to url (no proxy, no redirects) and return the status and response text."""
    req = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up or time out are routine under fault injection.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive for the Twilio SDK's requests.Session
    timeout = 120  # idle keep-alive connections are closed after this many seconds
    disable_nagle_algorithm = True  # headers and body go out as two writes: do not stall
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.connections_lock:
                self.server.connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._serve(self.command)

    do_POST = do_DELETE = do_GET

    def _read_body(self, limit: int) -> bytes | None:
        """Read the Content-Length body; None (after draining it) when it exceeds limit."""
        length = int(self.headers.get("Content-Length") or 0)
        if length <= limit:
            return self.rfile.read(length) if length > 0 else b""
        while length > 0 and (got := self.rfile.read(min(length, 1 << 20))):
            length -= len(got)
        return None

    def _serve(self, method: str) -> None:
        emu = self.server.emulator
        path, _, qs = self.path.partition("?")
        query = {k: v[-1] for k, v in parse_qs(qs).items()}
        try:
            body = self._read_body(emu.max_body_bytes)
        except ValueError:
            self.close_connection = True
            self.send_error(400, "Malformed request body")
            return
        if path.startswith(CONTROL_PREFIX):
            resp: Response | None = emu.serve_control(method, path[10:], query, body)
        else:
            resp = emu.serve_api(method, path, query, self.headers, body)
        if resp is None:  # hung until the emulator stopped: drop the connection unanswered
            self.close_connection = True
            return
        self.send_response(resp.status)
        for name, value in (resp.headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        self.wfile.write(resp.body)


class Emulator:
    """Base class: a provider API on a background ThreadingHTTPServer with fault injection."""

    name = "emulator"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, max_body_bytes: int = 1 << 20):
        self.host, self.port, self.max_body_bytes = host, port, max_body_bytes
        self._lock, self._stopped = threading.Lock(), threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._timestamps: list[float] = []
        self._counts = {"requests": 0, "faulted": 0}
        self._init_faults()

    # lifecycle
    def start(self) -> Self:
        """Bind (port 0 picks a free port) and serve in a daemon thread."""
        if self._server is not None:
            return self
        self._stopped.clear()
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
            name=f"{self.name}-{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, release hung requests and close open connections."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopped.set()
        server.shutdown()
        with server.connections_lock:
            for conn in list(server.connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # fault injection
    def _init_faults(self) -> None:
        self._fail_queue: list[list[Any]] = []  # [remaining, status, headers]
        self._fault: tuple[int, Headers] | None = None
        self._delay = 0.0
        self._hang = False

    def fail_next(self, n: int, status: int = 429, headers: Headers = None) -> None:
        """Answer the next n API requests with status (and optional extra headers)."""
        if int(n) > 0:
            with self._lock:
                self._fail_queue.append([int(n), int(status), dict(headers or {})])

    def set_fault(self, status: int | None = 503, headers: Headers = None) -> None:
        """Answer every API request with status until set_fault(None)."""
        with self._lock:
            self._fault = None if status is None else (int(status), dict(headers or {}))

    def set_delay(self, seconds: float) -> None:
        """Wait this long before answering each API request."""
        self._delay = max(0.0, float(seconds or 0))

    def set_hang(self, hang: bool = True) -> None:
        """Never answer API requests (until cleared or stopped), so clients time out."""
        self._hang = bool(hang)

    def clear_faults(self) -> None:
        """Remove every fault, delay and hang."""
        with self._lock:
            self._init_faults()

    def faults(self) -> dict[str, Any]:
        """Describe the active faults."""
        with self._lock:
            queued = [{"count": c, "status": s} for c, s, _ in self._fail_queue]
            status = self._fault[0] if self._fault else None
        return {"fail_next": queued, "status": status, "delay": self._delay, "hang": self._hang}

    def _take_fault(self) -> tuple[int, Headers] | None:
        with self._lock:
            if self._fail_queue:
                entry = self._fail_queue[0]
                entry[0] -= 1
                if entry[0] <= 0:
                    self._fail_queue.pop(0)
                return entry[1], entry[2]
            return self._fault

    # provider hooks
    def error_response(self, status: int, message: str) -> Response:
        """The provider's error body for status (overridden by each provider)."""
        return json_response(status, {"message": message})

    def rate_limit_headers(self) -> dict[str, str]:
        """Headers sent with an injected 429 (overridden by each provider)."""
        return {}

    def handle_api(self, method: str, path: str, query: dict, headers: Any, body: bytes) -> Any:
        """Answer one provider API request (overridden by each provider)."""
        raise NotImplementedError

    def handle_control(self, method: str, name: str, query: dict, payload: dict) -> Response | None:
        """Answer provider-specific /_emulator/ endpoints; None when unknown."""
        return None

    def reset(self) -> None:
        """Forget recorded requests and clear faults."""
        with self._lock:
            self._timestamps.clear()
            self._counts = dict.fromkeys(self._counts, 0)
            self._init_faults()

    def state(self) -> dict[str, Any]:
        """Counters and faults, as served by GET /_emulator/state."""
        with self._lock:
            counts = dict(self._counts)
        return {**counts, "faults": self.faults()}

    def timestamps(self, since: float = 0.0) -> list[float]:
        """Arrival times (unix seconds) of API requests after since."""
        with self._lock:
            return [t for t in self._timestamps if t > since]

    def count(self, key: str, n: int = 1) -> None:
        """Add n to a state counter."""
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + n

    # dispatch (called from handler threads)
    def serve_api(
        self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes | None
    ) -> Response | None:
        """Apply faults, then hand the request to handle_api; None means drop the connection."""
        with self._lock:
            self._timestamps.append(time.time())
            self._counts["requests"] += 1
        while self._hang and not self._stopped.wait(0.05):
            pass
        if self._stopped.is_set():
            return None
        if self._delay and self._stopped.wait(self._delay):
            return None
        fault = self._take_fault()
        if fault is not None:
            self.count("faulted")
            status, extra = fault
            resp = self.error_response(status, responses.get(status, "Error"))
            merged = dict(resp.headers or {})
            merged.update(self.rate_limit_headers() if status == 429 else {})
            merged.update(extra or {})
            return resp._replace(headers=merged)
        if body is None:
            return self.error_response(413, "Payload Too Large")
        return self.handle_api(method, path, query, headers, body)

    def serve_control(
        self, method: str, name: str, query: dict[str, str], raw: bytes | None
    ) -> Response:
        """Answer GET/POST /_emulator/<name>."""
        try:
            payload = json.loads(raw) if raw and raw.strip() else {}
            if not isinstance(payload, dict):
                raise ValueError("expected a JSON object")
            name = name.strip("/")
            if (method, name) == ("GET", "state"):
                return json_response(200, self.state())
            if (method, name) == ("POST", "reset"):
                self.reset()
                return json_response(200, self.state())
            if (method, name) == ("POST", "fault"):
                self._apply_fault(payload)
                return json_response(200, self.state())
            if method == "GET" and name in ("timestamps", "requests/timestamps"):
                stamps = self.timestamps(float(query.get("since") or 0))
                return json_response(200, {"count": len(stamps), "timestamps": stamps})
            resp = self.handle_control(method, name, query, payload)
        except (ValueError, KeyError, TypeError) as err:
            return json_response(400, {"error": f"{type(err).__name__}: {err}"})
        return resp or json_response(404, {"error": f"unknown endpoint {method} /_emulator/{name}"})

    def _apply_fault(self, payload: dict[str, Any]) -> None:
        status, count = payload.get("status"), payload.get("count")
        if status is not None and count is not None:
            self.fail_next(int(count), int(status), payload.get("headers"))
        elif "status" in payload:
            if status is None:
                with self._lock:
                    self._fail_queue.clear()
            self.set_fault(status, payload.get("headers"))
        if "delay" in payload:
            self.set_delay(payload["delay"] or 0)
        if "hang" in payload:
            self.set_hang(bool(payload["hang"]))


def page(items: list[Any], query: Mapping[str, str], key: str = "items") -> dict[str, Any]:
    """Slice items by ?offset=&limit= (no limit: everything) for a control endpoint."""
    offset = int(query.get("offset") or 0)
    limit = query.get("limit")
    chunk = items[offset : offset + int(limit)] if limit else items[offset:]
    return {"total": len(items), "offset": offset, "count": len(chunk), key: chunk}
