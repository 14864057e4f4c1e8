"""`outreach dev` starts everything, answers healthz, lets the printed admin in, stops on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from http.cookiejar import CookieJar
from urllib.parse import urlencode


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_dev_runs_the_whole_system_and_stops_on_ctrl_c(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL",
                                                             "SECRET_KEY", "OUTREACH_ENV"}}
    env["OUTREACH_NO_DOTENV"] = "1"
    proc = subprocess.Popen([sys.executable, "-m", "outreach", "dev", "--port", str(port)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output = []
    try:
        deadline = time.monotonic() + 90
        password = None
        while time.monotonic() < deadline and password is None:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "".join(output)
            output.append(line)
            found = re.search(r"Sign in as (\S+) with password (\S+)", line)
            password = found and found.group(2)
        assert password, "".join(output)
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as response:
            assert response.status == 200
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        page = opener.open(f"{base}/login", timeout=5).read().decode()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        form = urlencode({"email": "admin@example.org", "password": password,
                          "csrf_token": token}).encode()
        home = opener.open(f"{base}/login", data=form, timeout=5)
        assert home.url == f"{base}/" and "admin@example.org" in home.read().decode()
        assert (tmp_path / "instance" / "outreach.sqlite3").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    # Every child went with it: nothing is left in the process group.
    time.sleep(0.5)
    try:
        os.killpg(proc.pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive, "outreach dev left processes running"
