"""Private PostgreSQL and Redis servers that a test may restart, and real `outreach worker`s.

The machine's shared servers must never be restarted, so each fault test starts its own: a
PostgreSQL cluster made with initdb (run as the postgres user when the tests run as root, since
initdb refuses root) and a redis-server without persistence, each on a free port in a temp dir.
Without the binaries the tests skip (fail under CI).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.services import require


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port} after {timeout} s")


class PrivateRedis:
    """A redis-server of this test's own, without persistence: a restart loses every key."""

    def __init__(self, workdir: Path) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            require("redis-server is not installed (apt install redis-server)")
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server on its port (the same port after a restart)."""
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            [str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)], stdout=log, stderr=log)
        wait_for_port(self.port)

    def crash(self) -> None:
        """SIGKILL the server: its data is gone (nothing was persisted)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def restart_empty(self, down_for: float = 1.0) -> None:
        """Crash, stay down a moment, come back empty on the same port."""
        self.crash()
        time.sleep(down_for)
        self.start()

    def stop(self) -> None:
        self.crash()


class PrivatePostgres:
    """A PostgreSQL cluster of this test's own (initdb), on a free port, restartable."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            require("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self.bin = Path(bins[-1]).parent
        self.runas: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                require("running as root without a postgres user to run initdb as")
            if shutil.which("runuser") is None:
                require("running as root without runuser: cannot run initdb as postgres")
            self.runas = ["runuser", "-u", "postgres", "--"]
        self.dir = Path(tempfile.mkdtemp(prefix="outreach-pg-"))
        if self.runas:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/outreach"

    def _run(self, *argv: str, timeout: float = 60) -> None:
        done = subprocess.run([*self.runas, *argv], capture_output=True, timeout=timeout,
                              check=False)
        if done.returncode:
            raise AssertionError(f"{argv[0]} failed: {done.stderr.decode()[-2000:]}")

    def init(self) -> None:
        """initdb (trust auth, no fsync: a throwaway cluster), start it, create the database."""
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "-A", "trust", "--no-sync")
        self.start()
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                  "-U", "postgres", "outreach")

    def _ctl(self, *args: str) -> None:
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                  str(self.dir / "postgres.log"), "-o", options, "-w", "-t", "60", *args)

    def start(self) -> None:
        self._ctl("start")

    def restart(self, down_for: float = 1.0) -> None:
        """Stop at once (every connection cut, as in a crash), stay down, start again."""
        self._ctl("stop", "-m", "immediate")
        time.sleep(down_for)
        self.start()

    def stop(self) -> None:
        try:
            self._ctl("stop", "-m", "immediate")
        except AssertionError:
            pass  # not running
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of this test's own, started."""
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of this test's own, with an empty `outreach` database."""
    server = PrivatePostgres()
    try:
        server.init()
    except (AssertionError, OSError, subprocess.TimeoutExpired) as exc:
        server.stop()
        require(f"cannot start a private PostgreSQL cluster: {exc}")
    try:
        yield server
    finally:
        server.stop()


class Workers:
    """Real `outreach worker` processes, each in a session of its own."""

    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        self.env = env
        self.logdir = logdir
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, count: int = 1, *args: str) -> None:
        for i in range(count):
            log = open(self.logdir / f"worker{len(self.processes)}-{i}.log", "ab")  # noqa: SIM115
            self.processes.append(subprocess.Popen(
                [sys.executable, "-m", "outreach", "worker", *args], env=self.env,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until every worker listens on its queues; fail with the logs if one died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.alive() < len(self.processes):
                raise AssertionError(f"a worker exited:\n{self.logs()[-4000:]}")
            if self.logs().count("Listening on") >= len(self.processes):
                return
            time.sleep(0.1)
        raise AssertionError(f"workers not ready after {timeout} s:\n{self.logs()[-4000:]}")

    def alive(self) -> int:
        return sum(p.poll() is None for p in self.processes)

    def logs(self) -> str:
        return "\n".join(path.read_text(errors="replace")
                         for path in sorted(self.logdir.glob("worker*.log")))

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)


def worker_env(app: Any, instance: Path, **extra: str) -> dict[str, str]:
    """The environment of a worker process that shares the test app's settings."""
    config = app.config
    env = dict(os.environ, DATABASE_URL=config["DATABASE_URL"], REDIS_URL=config["REDIS_URL"],
               SECRET_KEY=config["SECRET_KEY"], OUTREACH_ENV="testing",
               OUTREACH_NO_DOTENV="1", OUTREACH_INSTANCE=str(instance),
               NO_PROXY="127.0.0.1,localhost")
    env.update(extra)
    return env
