"""Pre-authentication limits of pysshd: LoginGraceTime, MaxStartups, PerSourcePenalties,
identification line limits, and stalled clients that must not delay anyone else.

Each server is a real pysshd subprocess on 127.0.0.1; the judge is the real ``ssh``.
Raw TCP sockets play the stalled or hostile clients. The unit tests at the end pin
MaxStartups' drop probability and the penalty arithmetic to sshd's formulas.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from protocol.host_keys import load_host_signers
from protocol.penalty import (
    AUTHFAIL,
    CRASH,
    EXIT_AUTH_ATTEMPTED,
    NOAUTH,
    MaxStartups,
    PenaltyConfig,
    PenaltyTable,
    parse_max_startups,
    parse_penalties,
    should_drop,
)
from protocol.server import Server
from protocol.sshd_config import parse_config
from tests.helpers import run, tool_path
from tests.interop.pysshd import PysshdServer, keygen, pysshd_env, start_pysshd


def _server(directory: Path, extra: str) -> PysshdServer:
    for name in ("host", "id", "other"):
        if not (directory / name).exists():
            keygen("-q", "-t", "ed25519", "-N", "", "-C", name, "-f", directory / name)
    srv = start_pysshd(directory, f"HostKey {directory / 'host'}\n"
                                  f"AuthorizedKeysFile {directory}/authorized_keys\n"
                                  "LogLevel VERBOSE\n" + extra)
    srv.authorize(srv.pub("id"))
    return srv


def _wait_for(condition: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _stalled(stack: ExitStack, port: int, count: int) -> list[socket.socket]:
    """``count`` connections that read the server's banner and then send nothing."""
    socks = []
    for _ in range(count):
        s = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
        assert s.recv(256).startswith(b"SSH-2.0-")
        socks.append(s)
    return socks


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PysshdServer]:
    srv = _server(tmp_path_factory.mktemp("limits"),
                  "LoginGraceTime 2\nMaxStartups 4\n")
    yield srv
    srv.stop()


def test_stalled_connections_do_not_delay_a_login(server: PysshdServer) -> None:
    with ExitStack() as stack:
        _stalled(stack, server.port, 3)  # fewer than MaxStartups (4)
        started = time.monotonic()
        done = server.ssh("echo through")
        elapsed = time.monotonic() - started
    assert (done.returncode, done.stdout) == (0, "through\n"), done.stderr + server.log_text()
    assert elapsed < 1.5, elapsed


def test_login_grace_time_drops_a_silent_client(server: PysshdServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        local_port = s.getsockname()[1]
        assert s.recv(256).startswith(b"SSH-2.0-")
        started = time.monotonic()
        s.settimeout(8)
        rest = b""
        while chunk := s.recv(4096):
            rest += chunk
        elapsed = time.monotonic() - started
    assert 1.5 < elapsed < 6, elapsed
    assert _wait_for(lambda: f"Timeout before authentication for 127.0.0.1 port {local_port}"
                     in server.log_text())
    # the listener read the connection process's exit status as "grace exceeded"
    assert _wait_for(lambda: re.search(r"Timeout before authentication for connection from "
                                       r"127\.0\.0\.1 to 127\.0\.0\.1, pid = \d+",
                                       server.log_text()) is not None), server.log_text()


def _connection_processes(pid: int) -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            count += int(stat.rsplit(")", 1)[1].split()[1]) == pid
    return count


def test_max_startups_full_drops_new_connections(server: PysshdServer) -> None:
    assert _wait_for(lambda: _connection_processes(server.proc.pid) == 0)
    with ExitStack() as stack:
        _stalled(stack, server.port, 4)  # MaxStartups 4 (start = full)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as extra:
            extra.settimeout(5)
            answer = extra.recv(256)
        assert answer == b"Not allowed at this time\r\n"
        assert re.search(r"drop connection #4 from \[127\.0\.0\.1\]:\d+ on "
                         rf"\[127\.0\.0\.1\]:{server.port} past Maxstartups",
                         server.log_text()), server.log_text()
        assert "beginning MaxStartups throttling" in server.log_text()
        refused = server.ssh("true")
        assert refused.returncode == 255
    # the stalled clients are gone: once their processes are reaped, logins work again
    assert _wait_for(lambda: server.ssh("true").returncode == 0, timeout=15), \
        server.log_text()


def test_authenticated_sessions_are_not_startups(server: PysshdServer) -> None:
    """Each connection process reports its authentication on the startup pipe, so
    logged-in sessions never count against MaxStartups (4 here)."""
    assert _wait_for(lambda: _connection_processes(server.proc.pid) == 0)
    client = server.directory / "client"
    sessions = []
    try:
        for _ in range(6):
            proc = subprocess.Popen(
                [tool_path("ssh"), "-F", "/dev/null", "-p", str(server.port), "-o",
                 "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o",
                 f"UserKnownHostsFile={client / 'known_hosts'}", "-o",
                 "StrictHostKeyChecking=accept-new", "-i", str(server.key("id")),
                 f"{getpass.getuser()}@127.0.0.1", "echo up; exec cat >/dev/null"],
                stdout=subprocess.PIPE, stdin=subprocess.PIPE, stderr=subprocess.DEVNULL,
                env={**pysshd_env(), "HOME": str(client)})
            sessions.append(proc)
            assert proc.stdout is not None
            assert proc.stdout.readline() == b"up\n", server.log_text()
        done = server.ssh("echo more")
        assert (done.returncode, done.stdout) == (0, "more\n"), done.stderr
    finally:
        for proc in sessions:  # EOF ends each remote cat, then its session
            assert proc.stdin is not None
            proc.stdin.close()
        for proc in sessions:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_overlong_identification_line_is_refused(server: PysshdServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        assert s.recv(256).startswith(b"SSH-2.0-")
        s.sendall(b"SSH-2.0-" + b"x" * 300 + b"\r\n")
        s.settimeout(5)
        while s.recv(4096):
            pass
    done = server.ssh("echo still")
    assert done.stdout == "still\n", done.stderr


@pytest.fixture(scope="module")
def penalised(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PysshdServer]:
    srv = _server(tmp_path_factory.mktemp("penalties"),
                  "PerSourcePenalties authfail:30s noauth:0s min:1s\n")
    yield srv
    srv.stop()


def test_failed_authentication_penalises_the_source(penalised: PysshdServer) -> None:
    assert penalised.ssh("true").returncode == 0  # success: never penalised
    failed = penalised.ssh("true", identity="other")
    assert failed.returncode == 255
    assert "Permission denied (publickey" in failed.stderr
    assert _wait_for(lambda: "new 127.0.0.1/32 active penalty of 30.000 seconds for "
                     "penalty: failed authentication" in penalised.log_text()), \
        penalised.log_text()
    refused = penalised.ssh("true")
    assert refused.returncode == 255
    assert re.search(r"drop connection #0 from \[127\.0\.0\.1\]:\d+ on \[127\.0\.0\.1\]:"
                     rf"{penalised.port} penalty: failed authentication",
                     penalised.log_text()), penalised.log_text()


def test_exempt_list_is_never_penalised(tmp_path: Path) -> None:
    srv = _server(tmp_path, "PerSourcePenalties authfail:30s min:1s\n"
                            "PerSourcePenaltyExemptList 10.0.0.0/8,127.0.0.1\n")
    try:
        for _ in range(2):
            assert srv.ssh("true", identity="other").returncode == 255
        time.sleep(0.5)
        done = srv.ssh("echo ok")
        assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr + srv.log_text()
        assert "srclimit_penalise" not in srv.log_text()
    finally:
        srv.stop()


def test_unprivileged_connection_process_reports_how_it_ended(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The path pysshd takes without root (no privilege separation): the connection is
    served in the calling process, which reports authentication through the callback
    and a failed one through its exit status."""
    for name in ("host", "id", "other"):
        keygen("-q", "-t", "ed25519", "-N", "", "-f", tmp_path / name)
    (tmp_path / "authorized_keys").write_text((tmp_path / "id.pub").read_text())
    config = parse_config(f"HostKey {tmp_path / 'host'}\nStrictModes no\n"
                          f"AuthorizedKeysFile {tmp_path}/authorized_keys\n", "test")
    server = Server(config, load_host_signers(config))
    monkeypatch.setattr(os, "geteuid", lambda: 4242)  # take the non-root branch
    env = {**pysshd_env(), "HOME": str(tmp_path)}
    with socket.create_server(("127.0.0.1", 0)) as listen:
        port = listen.getsockname()[1]
        for identity, expected in (("id", (0, True)), ("other", (EXIT_AUTH_ATTEMPTED, False))):
            result: list[tuple[int, bool]] = []

            def serve_one(result: list[tuple[int, bool]]) -> None:
                sock, _ = listen.accept()
                called: list[bool] = []
                with sock:
                    status = server.run_connection(sock, lambda: called.append(True))
                result.append((status, bool(called)))

            thread = threading.Thread(target=serve_one, args=(result,))
            thread.start()
            done = run([tool_path("ssh"), "-F", "/dev/null", "-p", str(port), "-o",
                        "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o",
                        "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                        "-o", "LogLevel=ERROR", "-i", str(tmp_path / identity),
                        f"{getpass.getuser()}@127.0.0.1", "true"], env=env)
            thread.join(30)
            assert done.returncode == (0 if identity == "id" else 255), done.stderr
            assert result == [expected]


# -- the arithmetic, against sshd's formulas ---------------------------------------------


def test_should_drop_follows_sshd() -> None:
    spec = parse_max_startups("10:30:100")
    assert spec == MaxStartups(10, 30, 100)
    assert not should_drop(9, spec, rand=lambda n: 0)
    assert should_drop(100, spec, rand=lambda n: 99)
    # p = 30 + (100-30)*(startups-10)/(100-10): at 55 startups p = 65
    assert should_drop(55, spec, rand=lambda n: 64)
    assert not should_drop(55, spec, rand=lambda n: 65)
    assert parse_max_startups("5") == MaxStartups(5, 100, 5)
    for bad in ("10:30", "0", "10:0:100", "20:30:10", "x"):
        with pytest.raises(ValueError):
            parse_max_startups(bad)


def test_penalties_accumulate_and_activate_past_min() -> None:
    now = [1000.0]
    table = PenaltyTable(PenaltyConfig(), exempt_list="192.0.2.0/24", clock=lambda: now[0])
    assert "deferred penalty of 5.000" in (table.penalise("198.51.100.7", AUTHFAIL) or "")
    assert table.check("198.51.100.7") is None  # 5s is below min (15s)
    for _ in range(2):
        table.penalise("198.51.100.7", AUTHFAIL)
    assert table.check("198.51.100.7") is None  # exactly 15s: not more than min
    assert "activating" in (table.penalise("198.51.100.7", NOAUTH) or "")
    assert table.check("198.51.100.7") == "penalty: connections without attempting " \
        "authentication"
    assert table.check("198.51.100.8") is None  # other address, same default /32
    assert table.penalise("192.0.2.9", CRASH) is None  # exempt
    now[0] += 17
    assert table.check("198.51.100.7") is None  # expired
    capped = PenaltyTable(parse_penalties(["crash:2h", "max:10m"]), clock=lambda: now[0])
    capped.penalise("2001:db8::1", CRASH)
    capped.penalise("2001:db8::1", CRASH)
    now[0] += 601
    assert capped.check("2001:db8::1") is None  # held at most max (10m)


def test_penalty_keywords_merge_like_servconf() -> None:
    off = parse_penalties(["no"])
    assert not off.enabled
    on = parse_penalties(["authfail:30s", "min:1s"], off)
    assert (on.enabled, on.authfail, on.min, on.crash) == (True, 30.0, 1.0, 90.0)
    assert parse_penalties(["authfail:3"], on).authfail == 30.0  # first value wins
    with pytest.raises(ValueError):
        parse_penalties(["no", "crash:1"])
    with pytest.raises(ValueError):
        parse_penalties(["bogus:1"])
