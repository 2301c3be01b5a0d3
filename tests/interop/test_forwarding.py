"""Port and agent forwarding across real OpenSSH: pyssh -L/-R/-D/-W/-A against a real
sshd (bytes through a local echo server), the real ssh -L/-R/-A against pysshd with the
authorized_keys restrictions honoured, and pyssh's messages compared with ssh's on the
same failure.

One sshd, one pysshd and one echo server per module; each client process is stopped by
pid in a finaliser.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.agent.agentproc import AgentFactory, agent_factory, base_env
from tests.helpers import REPO_ROOT, run, stop_process, tool_path
from tests.interop.pysshd import USER, PysshdServer, start_pysshd
from tests.interop.sshd import SshdServer, free_port, start_sshd

__all__ = ["agent_factory"]

PYSSH = [sys.executable, "-c",
         "from protocol.cli import pyssh_main; raise SystemExit(pyssh_main())"]


class Echo:
    """A TCP echo server on 127.0.0.1 (threads; stopped when the module ends)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port: int = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def close(self) -> None:
        self.sock.close()


@dataclass
class Env:
    sshd: SshdServer
    pysshd: PysshdServer
    echo: Echo
    key: Path
    directory: Path
    known_hosts: Path

    def client(self, tool: str, *args: str, target: str = "sshd") -> list[str]:
        """pyssh's or ssh's command line for the sshd (or pysshd) with ``args``."""
        server = self.sshd if target == "sshd" else self.pysshd
        user = "root" if target == "sshd" else USER
        cmd = PYSSH if tool == "pyssh" else [tool_path("ssh")]
        return [*cmd, "-F", "/dev/null", "-p", str(server.port), "-i", str(self.key),
                "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
                *args, f"{user}@127.0.0.1"]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    d = tmp_path_factory.mktemp("forwarding")
    for name in ("id", "host"):
        made = run([tool_path("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", name,
                    "-f", str(d / name)])
        assert made.returncode == 0, made.stderr
    pub = (d / "id.pub").read_text()
    (d / "ak").write_text(pub)
    echo = Echo()
    sshd = start_sshd(d / "sshd", f"AuthorizedKeysFile {d / 'ak'}\nAllowTcpForwarding yes\n"
                      "AllowAgentForwarding yes\nPermitOpen 127.0.0.1:*\n"
                      "PermitListen localhost:*\n")
    (d / "p").mkdir()
    pysshd = start_pysshd(d / "p",
                          f"HostKey {d / 'host'}\nAuthorizedKeysFile {d}/p/authorized_keys\n"
                          "LogLevel DEBUG\nPasswordAuthentication no\n"
                          "KbdInteractiveAuthentication no\nStrictModes no\n")
    host_pub = (d / "host.pub").read_text().split()
    sshd_pub = Path(f"{sshd.host_key}.pub").read_text().split()
    known = d / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {sshd_pub[0]} {sshd_pub[1]}\n"
                     f"[127.0.0.1]:{pysshd.port} {host_pub[0]} {host_pub[1]}\n")
    try:
        yield Env(sshd, pysshd, echo, d / "id", d, known)
    finally:
        pysshd.stop()
        sshd.stop()
        echo.close()


@pytest.fixture
def background() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start client processes in the background; each stopped by pid at the end."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env or base_env(), cwd=REPO_ROOT)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        stop_process(proc)


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"client exited: {proc.communicate()[1]!r}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("forwarded port did not open")


def roundtrip(port: int, data: bytes) -> bytes:
    """Send ``data`` to 127.0.0.1:port, half-close, read everything back."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        def send() -> None:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send)
        sender.start()
        chunks = []
        while chunk := s.recv(1 << 16):
            chunks.append(chunk)
        sender.join()
    return b"".join(chunks)


def own(stderr: str) -> list[str]:
    """The client's own messages (ssh ends its lines with CRLF), not the remote shell's."""
    return [line for line in stderr.splitlines(keepends=True) if line.endswith("\r\n")]


def stderr_line(proc: subprocess.Popen[bytes], pattern: str, timeout: float = 20) -> str:
    """Read the background client's stderr up to a line matching ``pattern``."""
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode(errors="replace")
        if not line and proc.poll() is not None:
            break
        if re.search(pattern, line):
            return line.rstrip("\r\n")
    raise AssertionError(f"no stderr line matching {pattern!r}")


# -- pyssh against the real sshd --------------------------------------------------------


def test_local_forward_moves_bytes(env: Env, background: Callable[..., subprocess.Popen[bytes]]
                                   ) -> None:
    port = free_port()
    proc = background(env.client("pyssh", "-N", "-L", f"{port}:127.0.0.1:{env.echo.port}"))
    wait_port(port, proc)
    data = os.urandom(1 << 20)
    assert hashlib.sha256(roundtrip(port, data)).digest() == hashlib.sha256(data).digest()
    assert roundtrip(port, b"second") == b"second"


def test_remote_forward_allocated_port(env: Env,
                                       background: Callable[..., subprocess.Popen[bytes]]
                                       ) -> None:
    lines = {}
    for tool in ("ssh", "pyssh"):
        proc = background(env.client(tool, "-N", "-R", f"0:127.0.0.1:{env.echo.port}"))
        line = stderr_line(proc, "Allocated port")
        port = int(line.split()[2])
        assert roundtrip(port, b"through -R " + tool.encode()) == b"through -R " + tool.encode()
        lines[tool] = re.sub(r"port \d+", "port N", line)
    assert lines["pyssh"] == lines["ssh"]


def test_remote_dynamic_forward(env: Env,
                                background: Callable[..., subprocess.Popen[bytes]]) -> None:
    """-R with only a port: pyssh is the SOCKS server for connections to the remote port."""
    lines = {}
    for tool in ("ssh", "pyssh"):
        proc = background(env.client(tool, "-N", "-R", "0"))
        line = stderr_line(proc, "Allocated port")
        port = int(line.split()[2])
        assert _socks5(port, b"127.0.0.1", env.echo.port, b"remote socks") == b"remote socks"
        lines[tool] = re.sub(r"port \d+", "port N", line)
    assert lines["pyssh"] == lines["ssh"]


def test_local_forward_from_unix_socket(
        env: Env, background: Callable[..., subprocess.Popen[bytes]]) -> None:
    path = env.directory / "local.sock"
    proc = background(env.client("pyssh", "-N", "-L", f"{path}:127.0.0.1:{env.echo.port}"))
    deadline = time.monotonic() + 20
    while not path.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    assert path.stat().st_mode & 0o777 == 0o600  # StreamLocalBindMask 0177
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(path))
        s.sendall(b"unix in")
        s.shutdown(socket.SHUT_WR)
        assert s.recv(100) == b"unix in"


def test_remote_forward_refused_warning_matches_ssh(env: Env) -> None:
    """PermitListen localhost:* refuses 127.0.0.2: the warning (or, with
    ExitOnForwardFailure, the error and 255) as ssh prints them."""
    port = free_port()
    spec = f"127.0.0.2:{port}:127.0.0.1:{env.echo.port}"
    for extra in ((), ("-o", "ExitOnForwardFailure=yes")):
        results = [run([*env.client(tool, "-R", spec, *extra), "echo done"], env=base_env(),
                       timeout=60, cwd=REPO_ROOT) for tool in ("ssh", "pyssh")]
        ours, theirs = results[1], results[0]
        assert (ours.returncode, ours.stdout, own(ours.stderr)) == \
            (theirs.returncode, theirs.stdout, own(theirs.stderr))
    assert "remote port forwarding failed for listen port" in ours.stderr


def test_local_bind_in_use_matches_ssh(env: Env) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        spec = f"127.0.0.1:{port}:127.0.0.1:{env.echo.port}"
        results = [run(env.client(tool, "-N", "-o", "ExitOnForwardFailure=yes", "-L", spec),
                       env=base_env(), timeout=60, cwd=REPO_ROOT) for tool in ("ssh", "pyssh")]
    finally:
        busy.close()
    assert (results[1].returncode, own(results[1].stderr)) == \
        (results[0].returncode, own(results[0].stderr))
    assert f"bind [127.0.0.1]:{port}: Address already in use" in results[1].stderr


def test_open_refused_by_permitopen_matches_ssh(
        env: Env, background: Callable[..., subprocess.Popen[bytes]]) -> None:
    """sshd's PermitOpen 127.0.0.1:* refuses "localhost": the same channel message."""
    lines = {}
    for tool in ("ssh", "pyssh"):
        port = free_port()
        proc = background(env.client(tool, "-N", "-L",
                                     f"127.0.0.1:{port}:localhost:{env.echo.port}"))
        wait_port(port, proc)  # this probe is refused, as is the next
        with socket.create_connection(("127.0.0.1", port), timeout=20) as probe, \
                contextlib.suppress(ConnectionResetError):
            assert probe.recv(10) == b""
        lines[tool] = stderr_line(proc, "open failed")
    assert lines["pyssh"] == lines["ssh"]
    assert lines["pyssh"].endswith("open failed: administratively prohibited: open failed")


def _socks5(port: int, host: bytes, target: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(b"\x05\x01\x00")
        assert s.recv(2) == b"\x05\x00"
        s.sendall(b"\x05\x01\x00\x03" + bytes([len(host)]) + host + target.to_bytes(2, "big"))
        answer = s.recv(10)
        assert answer[:2] == b"\x05\x00", answer
        s.sendall(data)
        return s.recv(100)


def _socks4(port: int, target: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(b"\x04\x01" + target.to_bytes(2, "big") + bytes([127, 0, 0, 1]) + b"me\0")
        answer = s.recv(8)
        assert answer[:2] == b"\x00\x5a", answer
        s.sendall(data)
        return s.recv(100)


def test_dynamic_forward_socks4_and_socks5(
        env: Env, background: Callable[..., subprocess.Popen[bytes]]) -> None:
    port = free_port()
    proc = background(env.client("pyssh", "-N", "-D", f"127.0.0.1:{port}"))
    wait_port(port, proc)
    assert _socks5(port, b"127.0.0.1", env.echo.port, b"socks five") == b"socks five"
    assert _socks4(port, env.echo.port, b"socks four") == b"socks four"


def test_stdio_forward(env: Env) -> None:
    target = f"127.0.0.1:{env.echo.port}"
    data = os.urandom(200_000)
    results = [run([*env.client(tool, "-W", target)], input=data, binary=True, env=base_env(),
                   timeout=60, cwd=REPO_ROOT) for tool in ("ssh", "pyssh")]
    assert results[1].stdout == data
    assert results[1].returncode == results[0].returncode
    refused = [run(env.client(tool, "-W", "localhost:1"), env=base_env(), timeout=60,
                   cwd=REPO_ROOT) for tool in ("ssh", "pyssh")]
    assert (refused[1].returncode, own(refused[1].stderr)) == \
        (refused[0].returncode, own(refused[0].stderr))


@pytest.mark.parametrize("kind", ["ssh-agent", "pyagent"])
def test_agent_forwarding_to_sshd(kind: str, env: Env, agent_factory: AgentFactory) -> None:
    agent = agent_factory(kind)
    added = run([tool_path("ssh-add"), str(env.key)], env=agent.env())
    assert added.returncode == 0, added.stderr
    local = run([tool_path("ssh-add"), "-l"], env=agent.env())
    forwarded = run([*env.client("pyssh", "-A"), "ssh-add -l"], env=agent.env(), timeout=60,
                    cwd=REPO_ROOT)
    assert (forwarded.returncode, forwarded.stdout) == (0, local.stdout), forwarded.stderr
    for flag in ("-a", "-oForwardAgent=no"):
        results = [run([*env.client(tool, flag), "ssh-add -l"], env=agent.env(), timeout=60,
                       cwd=REPO_ROOT) for tool in ("ssh", "pyssh")]
        assert (results[1].returncode, results[1].stdout) == \
            (results[0].returncode, results[0].stdout)


def test_bad_specs_match_ssh(env: Env) -> None:
    for args in (("-L", "1234"), ("-R", "x:y"), ("-D", "a:b:c"), ("-W", "nohostport"),
                 ("-L", "0:h:22")):
        results = [run([*env.client(tool, *args), "true"], env=base_env(), timeout=60,
                       cwd=REPO_ROOT) for tool in ("ssh", "pyssh")]
        assert results[1].returncode == results[0].returncode == 255
        assert results[1].stderr.strip() == results[0].stderr.strip()


# -- the real ssh against pysshd --------------------------------------------------------


def test_ssh_local_and_remote_forward_through_pysshd(
        env: Env, background: Callable[..., subprocess.Popen[bytes]]) -> None:
    pub = (env.directory / "id.pub").read_text().strip()
    env.pysshd.authorize(pub)
    port = free_port()
    proc = background(env.client("ssh", "-N", "-L", f"{port}:127.0.0.1:{env.echo.port}",
                                 "-R", f"0:127.0.0.1:{env.echo.port}", target="pysshd"))
    line = stderr_line(proc, "Allocated port")
    wait_port(port, proc)
    data = os.urandom(300_000)
    assert roundtrip(port, data) == data
    assert roundtrip(int(line.split()[2]), b"remote via pysshd") == b"remote via pysshd"


def test_pyssh_against_pysshd(env: Env, background: Callable[..., subprocess.Popen[bytes]]
                              ) -> None:
    env.pysshd.authorize((env.directory / "id.pub").read_text().strip())
    port = free_port()
    proc = background(env.client("pyssh", "-N", "-L", f"{port}:127.0.0.1:{env.echo.port}",
                                 "-D", f"{port + 1 if port < 65535 else port - 1}",
                                 target="pysshd"))
    wait_port(port, proc)
    assert roundtrip(port, b"pyssh to pysshd") == b"pyssh to pysshd"
    out = run(env.client("pyssh", "-W", f"127.0.0.1:{env.echo.port}", target="pysshd"),
              input=b"stdio via pysshd", env=base_env(), timeout=60, cwd=REPO_ROOT)
    assert (out.returncode, out.stdout) == (0, "stdio via pysshd"), out.stderr


def test_permitopen_and_no_port_forwarding_in_pysshd(
        env: Env, background: Callable[..., subprocess.Popen[bytes]]) -> None:
    pub = (env.directory / "id.pub").read_text().strip()
    env.pysshd.authorize(f'permitopen="127.0.0.1:{env.echo.port}" {pub}')
    allowed = run(env.client("ssh", "-W", f"127.0.0.1:{env.echo.port}", target="pysshd"),
                  input=b"permitted", env=base_env(), timeout=60)
    assert (allowed.returncode, allowed.stdout) == (0, "permitted"), allowed.stderr
    denied = run(env.client("ssh", "-W", f"127.0.0.1:{free_port()}", target="pysshd"),
                 env=base_env(), timeout=60)
    assert denied.returncode == 255
    assert "open failed: administratively prohibited: open failed" in denied.stderr
    env.pysshd.authorize(f"no-port-forwarding {pub}")
    refused = run([*env.client("ssh", "-R", f"0:127.0.0.1:{env.echo.port}", target="pysshd"),
                   "echo ran"], env=base_env(), timeout=60)
    assert refused.stdout == "ran\n", refused.stderr
    assert "Warning: remote port forwarding failed for listen port 0" in refused.stderr
    blocked = run(env.client("ssh", "-W", f"127.0.0.1:{env.echo.port}", target="pysshd"),
                  env=base_env(), timeout=60)
    assert blocked.returncode == 255
    assert "administratively prohibited" in blocked.stderr


def test_ssh_agent_forwarding_through_pysshd(env: Env, agent_factory: AgentFactory) -> None:
    env.pysshd.authorize((env.directory / "id.pub").read_text().strip())
    agent = agent_factory("ssh-agent")
    assert run([tool_path("ssh-add"), str(env.key)], env=agent.env()).returncode == 0
    local = run([tool_path("ssh-add"), "-l"], env=agent.env())
    forwarded = run([*env.client("ssh", "-A", target="pysshd"),
                     "ssh-add -l; test -S \"$SSH_AUTH_SOCK\" && stat -c %a "
                     "\"$(dirname \"$SSH_AUTH_SOCK\")\""],
                    env=agent.env(), timeout=60)
    assert forwarded.returncode == 0, forwarded.stderr + env.pysshd.log_text()[-3000:]
    assert forwarded.stdout == local.stdout + "700\n"
    pub = (env.directory / "id.pub").read_text().strip()
    env.pysshd.authorize(f"no-agent-forwarding {pub}")
    refused = run([*env.client("ssh", "-A", target="pysshd"), "ssh-add -l"],
                  env=agent.env(), timeout=60)
    assert refused.returncode == 2  # ssh-add: no agent


def test_forward_agent_socket_choice_matches_ssh(env: Env, agent_factory: AgentFactory,
                                                 tmp_path: Path) -> None:
    """Which agent reaches the server, as with ssh: ForwardAgent's socket path or $VAR,
    else the IdentityAgent socket (-A with IdentityAgent set), else SSH_AUTH_SOCK; -A/-a
    override -o ForwardAgent whatever their order. ``ssh-add -l`` on the server tells."""
    first, second = agent_factory("ssh-agent"), agent_factory("ssh-agent")
    other = tmp_path / "other"
    made = run([tool_path("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", "other",
                "-f", str(other)])
    assert made.returncode == 0, made.stderr
    assert run([tool_path("ssh-add"), str(env.key)], env=first.env()).returncode == 0
    assert run([tool_path("ssh-add"), str(other)], env=second.env()).returncode == 0
    cases = [("-A", "-o", f"IdentityAgent={second.path}"),
             ("-o", f"ForwardAgent={second.path}"),
             ("-o", "ForwardAgent=$OTHER_AGENT"),
             ("-o", "ForwardAgent=$UNSET_AGENT"),
             ("-o", "ForwardAgent=no", "-A"),
             ("-A", "-o", "ForwardAgent=no"),
             ("-a", "-o", "ForwardAgent=yes")]
    seen = set()
    for args in cases:
        results = [run([*env.client(tool, *args), "ssh-add -l"],
                       env=first.env(OTHER_AGENT=str(second.path)), timeout=60,
                       cwd=REPO_ROOT) for tool in ("ssh", "pyssh")]
        assert (results[1].returncode, results[1].stdout) == \
            (results[0].returncode, results[0].stdout), (args, results[1].stderr)
        seen.add(results[0].stdout)
    assert len(seen) == 3  # the first agent's key, the second's, and no agent
    # No agent of its own (SSH_AUTH_SOCK unset): ssh forwards nothing, even a named socket.
    results = [run([*env.client(tool, "-o", f"ForwardAgent={second.path}"), "ssh-add -l"],
                   env=base_env(), timeout=60, cwd=REPO_ROOT) for tool in ("ssh", "pyssh")]
    assert (results[1].returncode, results[1].stdout) == \
        (results[0].returncode, results[0].stdout)


def test_exit_waits_for_forwarded_connections(
        env: Env, background: Callable[..., subprocess.Popen[bytes]]) -> None:
    """The remote command ends while a -L connection is open: like ssh, pyssh keeps
    relaying it and exits (with the command's status) only once it is closed."""
    for tool in ("ssh", "pyssh"):
        port = free_port()
        proc = background([*env.client(tool, "-L", f"{port}:127.0.0.1:{env.echo.port}"),
                           "sleep 1.5; exit 3"])
        wait_port(port, proc)
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            s.sendall(b"before")
            assert s.recv(100) == b"before"
            time.sleep(3)  # the command is over by now
            assert proc.poll() is None, (tool, proc.communicate())
            s.sendall(b"after")
            assert s.recv(100) == b"after", tool
        assert proc.wait(timeout=20) == 3, tool
