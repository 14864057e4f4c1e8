"""Benchmark: does the email pipeline scale with worker processes? 1, 2 and 4 workers, and
workers in separate network namespaces talking to the same PostgreSQL and Redis.

Uses bench/blast_email.py's harness: one throwaway PostgreSQL database seeded once with
`--contacts` consenting contacts (COPY; not measured), the email template of that benchmark, the
SendGrid emulator in its own process. For each worker count it starts that many real
`outreach worker --queues prepare,email` processes, sends a new blast to the same list, and
measures launch -> every recipient accepted by the emulator. Between runs the finished blast is
deleted (its messages with it) and the tables vacuumed, so every run starts from the same
database.

Then, where the machine allows it (root and a kernel that lets us create network
namespaces), the same blast with `--netns-workers` workers, each in its own network namespace
(`ip netns add` + a veth pair), as if on separate machines: they reach PostgreSQL, Redis and the
emulator through the veth's host address, where a TCP forwarder per service (socat, one process
per connection, or a Python fallback) passes the connections to the servers on 127.0.0.1. When
namespaces cannot be made, the output says precisely which command failed and why.

    .venv/bin/python bench/scale_out.py                          # 200,000 contacts, 1/2/4 workers
    .venv/bin/python bench/scale_out.py --contacts 50000         # a quick run
    .venv/bin/python bench/scale_out.py --workers 1,2 --no-netns

The default size is 200,000 (not the 1,000,000 of blast_email.py) so the four runs take a few
minutes. Speedup is judged against the machine: on 2 cores, 4 workers cannot beat 2x. Each run
reports where the CPU went; a process at 100% of one core (the emulator, a forwarder) while
workers wait is a single-process bottleneck. Exits non-zero when a correctness check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from blast_email import (
    DEFAULT_REDIS_URL,
    EMAIL_HTML,
    EMAIL_SUBJECT,
    EMAIL_TEXT,
    Emulators,
    Workers,
    admin_database_url,
    bench_app,
    cpu_seconds,
    create_blast,
    ensure_schema,
    failed_jobs,
    flush_redis,
    fresh_database,
    interruptible,
    launch,
    libpq_url,
    machine_busy,
    machine_line,
    make_list,
    message_counts,
    n,
    postgres_line,
    print_figures,
    rate_between,
    save_template,
    secs,
    seed_contacts,
    stop_process,
    vacuum_analyze,
    watch_blast,
    worker_env,
)


@dataclass
class Run:
    """One measured blast."""

    label: str
    workers: int
    total: float | None
    prepare: float | None
    steady: float | None
    worker_cpu: float
    emulator_cpu: float
    postgres_cpu: float
    forwarder_cpu: float
    busy: float
    ok: bool
    detail: str


# ---- network namespaces -------------------------------------------------------------------------

class NamespaceError(RuntimeError):
    """A namespace could not be made: the command and what it said."""


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise NamespaceError(f"`ip {' '.join(args)}` failed (exit {result.returncode}): "
                             f"{(result.stderr or result.stdout).strip() or 'no message'}")


class Namespaces:
    """`count` network namespaces, each joined to the host by a veth pair of its own /30."""

    def __init__(self, count: int) -> None:
        tag = secrets.token_hex(2)
        self.names = [f"outreach-bench-{tag}-{i}" for i in range(count)]
        self.veths = [f"ob{tag}h{i}" for i in range(count)]  # <= 15 characters
        octet = 200 + secrets.randbelow(50)
        self.host_ips = [f"10.{octet}.{i}.1" for i in range(count)]
        self.inner_ips = [f"10.{octet}.{i}.2" for i in range(count)]
        self.made: list[int] = []

    def create(self) -> None:
        if os.geteuid() != 0:
            raise NamespaceError("not running as root: `ip netns add` needs CAP_SYS_ADMIN")
        if shutil.which("ip") is None:
            raise NamespaceError("the `ip` command (iproute2) is not installed")
        for i, (name, veth) in enumerate(zip(self.names, self.veths, strict=True)):
            _ip("netns", "add", name)
            self.made.append(i)
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name)
            _ip("addr", "add", f"{self.host_ips[i]}/30", "dev", veth)
            _ip("link", "set", veth, "up")
            _ip("netns", "exec", name, "ip", "addr", "add", f"{self.inner_ips[i]}/30",
                "dev", "eth0")
            _ip("netns", "exec", name, "ip", "link", "set", "eth0", "up")
            _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")

    def check(self, index: int, host: str, port: int) -> None:
        """Raise unless a TCP connection from inside namespace `index` reaches host:port."""
        probe = (f"import socket; socket.create_connection(({host!r}, {port}), timeout=3)"
                 ".close()")
        result = subprocess.run(["ip", "netns", "exec", self.names[index], sys.executable,
                                 "-c", probe], capture_output=True, text=True)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no message"])[-1]
            raise NamespaceError(f"from namespace {self.names[index]}, {host}:{port} is not "
                                 f"reachable: {last}")

    def delete(self) -> None:
        for i in self.made:
            subprocess.run(["ip", "link", "del", self.veths[i]], capture_output=True)
            subprocess.run(["ip", "netns", "del", self.names[i]], capture_output=True)
        self.made = []


def tree_cpu(root: int) -> float:
    """CPU seconds of a process, its reaped children and its live descendants."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += cpu_seconds(pid)
        todo += parents.get(pid, [])
    return total


class Forwarders:
    """TCP forwarders on the veths' host addresses to services listening on 127.0.0.1.

    PostgreSQL and Redis listen on loopback only here, and the benchmark must not reconfigure
    or restart the shared servers; a forwarder is what a router would be between machines.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen] = []
        self.kind = "socat" if shutil.which("socat") else "python"

    def add(self, listen_host: str, target_port: int) -> int:
        """Forward listen_host:<free port> to 127.0.0.1:target_port; return the port."""
        with socket.socket() as sock:
            sock.bind((listen_host, 0))
            port = int(sock.getsockname()[1])
        if self.kind == "socat":  # a process per connection: no single-process bottleneck
            argv = ["socat", f"TCP-LISTEN:{port},bind={listen_host},fork,reuseaddr,nodelay",
                    f"TCP:127.0.0.1:{target_port},nodelay"]
        else:
            argv = [sys.executable, __file__, "--_forward", f"{listen_host}:{port}:{target_port}"]
        log = open(self.workdir / f"forward-{port}.log", "wb")  # noqa: SIM115
        self.procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection((listen_host, port), timeout=1).close()
                return port
            except OSError:
                time.sleep(0.05)
        raise NamespaceError(f"the {self.kind} forwarder on {listen_host}:{port} did not start")

    def cpu(self) -> float:
        """CPU of the forwarders, their finished and their live per-connection children."""
        return sum(tree_cpu(p.pid) for p in self.procs)

    def stop(self) -> None:
        for proc in self.procs:
            stop_process(proc, grace=3)


def run_forwarder(spec: str) -> int:
    """Child process (no socat): forward HOST:PORT to 127.0.0.1:TARGET with asyncio."""
    host, port, target = spec.split(":")

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", int(target))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def serve() -> None:
        server = await asyncio.start_server(handle, host, int(port))
        async with server:
            await server.serve_forever()

    asyncio.run(serve())
    return 0


def _moved(url: str, host: str, port: int) -> str:
    """The same URL (credentials, path, query kept) at another host and port."""
    parts = urlsplit(url)
    auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit((parts.scheme, f"{auth}{host}:{port}", parts.path, parts.query,
                       parts.fragment))


class NamespacedWorkers(Workers):
    """Workers, each started inside its own network namespace with its own environment."""

    def __init__(self, envs: list[dict[str, str]], namespaces: Namespaces, workdir: Path,
                 redis_url: str) -> None:
        super().__init__(len(envs), "prepare,email", envs[0], workdir, redis_url, "netns-worker")
        self.envs, self.namespaces = envs, namespaces

    def prefix(self, index: int) -> list[str]:
        # `ip netns exec` execs the command: the pid we hold is the worker's own.
        return ["ip", "netns", "exec", self.namespaces.names[index]]

    def env_of(self, index: int) -> dict[str, str]:
        return self.envs[index]


# ---- one run ------------------------------------------------------------------------------------

def measure(label: str, workers: Workers, app: Any, database_url: str, emulators: Emulators,
            template_id: int, list_id: int, count: int, timeout: float, redis_url: str,
            forwarders: Forwarders | None = None) -> Run:
    """Start the workers, send one blast, stop them; then delete the blast (not measured)."""
    import psycopg

    emulators.reset("sendgrid")
    blast_id = create_blast(app, f"scale-out {label}", template_id, [list_id])
    workers.start()
    try:
        cpu0, emu0 = workers.cpu(), emulators.cpu()
        fwd0 = forwarders.cpu() if forwarders else 0.0
        busy0 = machine_busy()
        launched = launch(app, blast_id)

        def accepted() -> tuple[int, dict[str, Any]]:
            state = emulators.state("sendgrid")
            return int(state["recipients"]), state

        watch = watch_blast(database_url, blast_id, launched, count, accepted, timeout,
                            redis_url, progress_every=30.0)
        busy1 = machine_busy()
        worker_cpu, emulator_cpu = workers.cpu() - cpu0, emulators.cpu() - emu0
        forwarder_cpu = (forwarders.cpu() - fwd0) if forwarders else 0.0
    finally:
        workers.stop()
    counts = message_counts(database_url, blast_id)
    failed = failed_jobs(redis_url, ["prepare", "email"])
    ok = (watch.reason is None and counts.get("sent", 0) == count and failed == 0
          and workers.tracebacks() == 0)
    detail = watch.reason or (f"{n(counts.get('sent', 0))} sent, {failed} failed jobs, "
                              f"{workers.tracebacks()} tracebacks")
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute("DELETE FROM blasts WHERE id = %s", (blast_id,))  # messages cascade
    vacuum_analyze(database_url, "messages", "blasts")
    prepare = watch.since_launch(watch.reached("sending", "done"))
    total = watch.since_launch(watch.all_accepted)
    return Run(label, workers.count, total, prepare, rate_between(watch.samples, count),
               worker_cpu, emulator_cpu, watch.postgres_cpu, forwarder_cpu,
               (busy1[0] - busy0[0]) / max(1e-9, busy1[1] - busy0[1]), ok, detail)


def netns_run(args: argparse.Namespace, app: Any, database_url: str, emulators: Emulators,
              template_id: int, list_id: int, timeout: float,
              workdir: Path) -> tuple[Run | None, str]:
    """The namespaced run, or None and the precise reason it was skipped."""
    namespaces = Namespaces(args.netns_workers)
    forwarders = Forwarders(workdir)
    try:
        try:
            namespaces.create()
        except NamespaceError as exc:
            return None, f"skipped: {exc}"
        db_url, redis_url = urlsplit(libpq_url(database_url)), urlsplit(args.redis_url)
        if redis_url.scheme != "redis" or not redis_url.hostname:
            return None, f"skipped: Redis at {args.redis_url} is not a TCP URL"
        envs = []
        for i in range(args.netns_workers):
            host = namespaces.host_ips[i]
            pg = forwarders.add(host, db_url.port or 5432)
            rd = forwarders.add(host, redis_url.port or 6379)
            sg = forwarders.add(host, emulators.sendgrid_port)
            for port in (pg, rd, sg):
                namespaces.check(i, host, port)
            env = worker_env(database_url, args.redis_url, emulators,
                             workdir / f"netns-instance-{i}")
            env.update(DATABASE_URL=_moved(database_url, host, pg),
                       REDIS_URL=_moved(args.redis_url, host, rd),
                       SENDGRID_API_HOST=f"http://{host}:{sg}",
                       NO_PROXY=f"127.0.0.1,localhost,{host}")
            envs.append(env)
        workers = NamespacedWorkers(envs, namespaces, workdir, args.redis_url)
        run = measure(f"{args.netns_workers} (netns)", workers, app, database_url, emulators,
                      template_id, list_id, args.contacts, timeout, args.redis_url, forwarders)
        return run, (f"{args.netns_workers} namespaces, one worker each, through {forwarders.kind}"
                     " forwarders on the veths' host addresses")
    except NamespaceError as exc:
        return None, f"skipped: {exc}"
    finally:
        try:
            forwarders.stop()
        finally:
            namespaces.delete()


# ---- main ---------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=200_000)
    parser.add_argument("--workers", default="1,2,4", help="worker counts to compare")
    parser.add_argument("--netns-workers", type=int, default=2,
                        help="workers (one per network namespace) in the namespaced run")
    parser.add_argument("--no-netns", action="store_true", help="skip the namespaced run")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL,
                        help="Redis database for the queues (flushed at start and end)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="per blast (default: 1 s per 100 contacts, at least 300)")
    parser.add_argument("--_forward", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args._forward:
        return run_forwarder(args._forward)
    interruptible()
    counts = [int(c) for c in args.workers.split(",") if c.strip()]
    timeout = args.timeout or max(300.0, args.contacts / 100)
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    workdir = Path(tempfile.mkdtemp(prefix="outreach-bench-scale-"))
    print(f"machine: {machine_line()}", flush=True)
    print(f"work dir (worker and emulator logs): {workdir}", flush=True)
    if args.contacts != 1_000_000:
        print(f"size: {n(args.contacts)} contacts per blast (blast_email.py uses 1,000,000; "
              "this one defaults to 200,000 to keep four blasts to a few minutes)", flush=True)
    emulators = Emulators(workdir)
    runs: list[Run] = []
    netns_note = "skipped: --no-netns"
    flush_redis(args.redis_url)
    try:
        with fresh_database(admin_database_url(args.database_url)) as database_url:
            server = postgres_line(database_url)
            emulators.start()
            app = bench_app(database_url, workdir / "instance", args.redis_url, emulators)
            ensure_schema(app)
            seed_contacts(database_url, args.contacts)
            list_id = make_list(database_url, "bench scale-out", args.contacts)
            template_id = save_template(app, {
                "channel": "email", "name": "bench scale-out", "subject": EMAIL_SUBJECT,
                "html": EMAIL_HTML, "text": EMAIL_TEXT, "from_name": "Outreach Bench"})
            env = worker_env(database_url, args.redis_url, emulators, workdir / "worker-instance")
            for count in counts:
                print(f"-- {count} worker(s)", flush=True)
                workers = Workers(count, "prepare,email", env, workdir, args.redis_url,
                                  label=f"w{count}")
                runs.append(measure(str(count), workers, app, database_url, emulators,
                                    template_id, list_id, args.contacts, timeout,
                                    args.redis_url))
                print(f"   {_summary(runs[-1], args.contacts)}", flush=True)
            if not args.no_netns:
                print(f"-- {args.netns_workers} worker(s) in network namespaces", flush=True)
                run, netns_note = netns_run(args, app, database_url, emulators, template_id,
                                            list_id, timeout, workdir)
                if run is not None:
                    runs.append(run)
                    print(f"   {_summary(run, args.contacts)}", flush=True)
        report(args, runs, netns_note, server)
        return 0 if runs and all(r.ok for r in runs) else 1
    finally:
        emulators.stop()
        flush_redis(args.redis_url)


def _summary(run: Run, contacts: int) -> str:
    """One line per run as it finishes (the table comes at the end)."""
    if not run.total:
        return f"{run.label}: not finished ({run.detail})"
    return (f"{run.label}: {secs(run.total)}, {n(contacts / run.total)} messages/s, workers' CPU "
            f"{secs(run.worker_cpu)}")


def report(args: argparse.Namespace, runs: list[Run], netns_note: str, server: str) -> None:
    cores = os.cpu_count() or 1
    base = next((r.total for r in runs if r.workers == 1 and "netns" not in r.label), None)
    rows: list[tuple[str, ...] | None] = []
    for r in runs:
        rate = args.contacts / r.total if r.total else None
        speedup = f"{base / r.total:.2f}x vs 1" if base and r.total else "-"
        rows.append((f"workers {r.label}", secs(r.total) if r.total else "-",
                     f"{n(rate) if rate else '-':>7} messages/s  {speedup:>10}  steady "
                     f"{n(r.steady) if r.steady else '-'}/s  prepare "
                     f"{secs(r.prepare) if r.prepare else '-'}"))
        forward = f", forwarders {secs(r.forwarder_cpu)}" if r.forwarder_cpu else ""
        cpu = r.worker_cpu + r.emulator_cpu + r.postgres_cpu + r.forwarder_cpu
        rows.append(("  CPU", secs(cpu),
                     f"{cpu / args.contacts * 1e6:.0f} us per message; "
                     f"workers {secs(r.worker_cpu)}, emulator {secs(r.emulator_cpu)}"
                     f" ({r.emulator_cpu / r.total if r.total else 0:.0%} of one core), "
                     f"PostgreSQL {secs(r.postgres_cpu)}{forward}; machine {r.busy:.0%} busy"))
    rows.append(("network namespaces", "", netns_note))
    print_figures(rows, title=f"bench/scale_out.py --contacts {args.contacts} "
                              f"--workers {args.workers}")
    most = min(cores, max((r.workers for r in runs), default=1))
    print(f"\n{cores} cores: on an otherwise idle machine the best possible speedup here is "
          f"{most}x, and a run whose CPU over wall time reaches the core count is bound by the "
          "machine, not by a single process. On a shared machine more processes also win a "
          "larger share of the CPU from everyone else, so compare the CPU per message too.")
    print("\nchecks:")
    for r in runs:
        print(f"  [{'ok' if r.ok else 'FAIL'}] workers {r.label}: {r.detail}")
    print(f"machine: {machine_line()}; {server}")


if __name__ == "__main__":
    sys.exit(main())
