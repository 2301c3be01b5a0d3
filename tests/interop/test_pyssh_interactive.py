"""pyssh's interactive sessions against a real sshd, driven through a real pty, and
compared with the real ssh run the same way: pty allocation, terminal modes, window
changes, escapes, shell exit status, subsystems, SendEnv/SetEnv, keepalive timeouts,
-f and -N, exit codes.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO_ROOT, run, tool_path
from tests.interop.sshd import SshdServer, start_sshd

PYSSH = [sys.executable, "-c",
         "from protocol.cli import pyssh_main; raise SystemExit(pyssh_main())"]


@dataclass(frozen=True)
class Expect:
    """A step: read until the output so far contains ``text`` (b"": any output)."""

    text: bytes
    timeout: float = 20.0


@dataclass(frozen=True)
class Kill:
    """A step: send ``signum`` to the program."""

    signum: int


#: a step: bytes to type, seconds to wait (reading), (rows, cols) to resize + SIGWINCH,
#: an Expect or a Kill
Step = bytes | float | tuple[int, int] | Expect | Kill


@dataclass
class Env:
    server: SshdServer
    key: Path
    known_hosts: Path
    home: Path

    def args(self, *extra: str, level: str = "INFO") -> list[str]:
        return ["-F", "/dev/null", "-p", str(self.server.port), "-i", str(self.key),
                "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
                "-o", f"LogLevel={level}", *extra]

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK", "DISPLAY")}
        env.update(HOME=str(self.home), TERM="vt220",
                   PYTHONPATH=str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
        env.update(extra)
        return env


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("pyssh_interactive")
    key = tmp / "id_user"
    made = run([tool_path("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
    assert made.returncode == 0, made.stderr
    authorized = tmp / "authorized_keys"
    authorized.write_text(Path(f"{key}.pub").read_text())
    server = start_sshd(tmp / "sshd", f"AuthorizedKeysFile {authorized}\n"
                        "AcceptEnv PYSSH_T_*\nSubsystem sftp internal-sftp\n")
    known = tmp / "known_hosts"
    host_pub = Path(f"{server.host_key}.pub").read_text().split()
    known.write_text(f"[127.0.0.1]:{server.port} {host_pub[0]} {host_pub[1]}\n")
    home = tmp / "home"
    home.mkdir(mode=0o700)
    try:
        yield Env(server, key, known, home)
    finally:
        server.stop()


def tools() -> list[tuple[str, list[str]]]:
    return [("pyssh", PYSSH), ("ssh", [tool_path("ssh")])]


def drive(argv: Sequence[str], steps: Sequence[Step], env: dict[str, str], *,
          rows: int = 24, cols: int = 80, settle: float = 8.0,
          pre: str = "", modes: list[list[Any]] | None = None) -> tuple[bytes, int]:
    """Run argv on a new pty of the given size, play ``steps``, then read until it
    exits; (all output, exit status). ``pre``: shell commands run on the pty first;
    ``modes`` gets the terminal's attributes before and after."""
    from protocol.tty import WindowSize, set_window_size

    if pre:
        argv = ["/bin/sh", "-c", f'{pre}; exec "$@"', "sh", *argv]
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.execvpe(argv[0], list(argv), env)
        finally:
            os._exit(127)
    set_window_size(fd, WindowSize(cols, rows))
    if modes is not None:
        modes.append(termios.tcgetattr(fd))
    out = bytearray()

    def read_for(seconds: float) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    return False
                if not data:
                    return False
                out.extend(data)
        return True

    try:
        for step in steps:
            if isinstance(step, float):
                read_for(step)
            elif isinstance(step, Kill):
                os.kill(pid, step.signum)
            elif isinstance(step, Expect):
                end = time.monotonic() + step.timeout
                while (step.text not in out or not out) and time.monotonic() < end:
                    if not read_for(0.05):
                        break
                assert step.text in out and out, f"no {step.text!r} in {bytes(out)!r}"
            elif isinstance(step, tuple):
                set_window_size(fd, WindowSize(step[1], step[0]))
                os.kill(pid, signal.SIGWINCH)
            else:
                os.write(fd, step)
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            if not read_for(0.2):
                break
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                read_for(0.1)
                return bytes(out), os.waitstatus_to_exitcode(status)
        os.kill(pid, signal.SIGKILL)  # (no effect when it has just exited)
        _, status = os.waitpid(pid, 0)
        return bytes(out), os.waitstatus_to_exitcode(status)
    finally:
        if modes is not None:
            modes.append(termios.tcgetattr(fd))  # the pty's, even after the program left
        os.close(fd)


# -- pty ------------------------------------------------------------------------------


def test_tty_command_sees_terminal_and_size(env: Env) -> None:
    cmd = "tty; stty size; echo $TERM; exit 3"
    results = {}
    for name, tool in tools():
        out, status = drive([*tool, *env.args("-t", level="ERROR"), "root@127.0.0.1", cmd],
                            [], env.env(), rows=30, cols=100)
        lines = out.decode().splitlines()
        assert status == 3, out
        assert lines[0].startswith("/dev/pts/"), out
        results[name] = lines[1:]
    assert results["pyssh"] == results["ssh"] == ["30 100", "vt220"]


def test_terminal_modes_match_ssh(env: Env) -> None:
    """The encoded modes: the remote pty ends up set like the local one, as with ssh."""
    pre = "stty erase ^H intr ^B -echoe ixany -iexten"
    outputs = {}
    for name, tool in tools():
        out, status = drive([*tool, *env.args("-t", level="ERROR"), "root@127.0.0.1",
                             "stty -a"], [], env.env(), pre=pre)
        assert status == 0, out
        outputs[name] = out
    assert b"erase = ^H" in outputs["pyssh"] and b"intr = ^B" in outputs["pyssh"]
    assert outputs["pyssh"] == outputs["ssh"]


def test_window_change_reaches_remote(env: Env) -> None:
    cmd = "stty size; read x; stty size"
    for _, tool in tools():
        out, status = drive([*tool, *env.args("-t", level="ERROR"), "root@127.0.0.1", cmd],
                            [Expect(b"24 80"), (40, 132), 0.7, b"\r"], env.env())
        assert status == 0, out
        sizes = [line for line in out.decode().splitlines() if line and line[0].isdigit()]
        assert sizes == ["24 80", "40 132"], out


def test_shell_without_command(env: Env) -> None:
    steps: list[Step] = [Expect(b""), 1.0, b"echo marker-$((40+2))\r", 0.5, b"exit 3\r"]
    for _, tool in tools():
        out, status = drive([*tool, *env.args(level="ERROR"), "root@127.0.0.1"], steps,
                            env.env())
        assert status == 3, out
        assert b"marker-42" in out


# -- escapes --------------------------------------------------------------------------


def test_escapes_as_ssh(env: Env) -> None:
    # ~R rekeys: the remote pty's echo of what follows shows the session survived it.
    # ~^Z: a pty.fork child's process group is orphaned, so SIGTSTP does not stop it
    # (for ssh neither): the message, the terminal restored and made raw again.
    steps: list[Step] = [Expect(b"ready"), b"\r", 0.4, b"~?", 0.4, b"~V", 0.3, b"~v", 0.3,
                         b"~R", 0.5, b"~B", 0.3, b"~\x1a", 0.5, b"\r~~", 0.3, b"\r~.", 0.3]
    outputs = {}
    for name, tool in tools():
        out, status = drive([*tool, *env.args("-tt"), "root@127.0.0.1",
                             "echo ready; sleep 60"], steps, env.env())
        assert status == 255, out
        outputs[name] = out
    assert outputs["pyssh"] == outputs["ssh"]
    assert outputs["pyssh"].endswith(b"Connection to 127.0.0.1 closed.\r\r\n")
    assert b"Supported escape sequences:" in outputs["pyssh"]
    assert b"~^Z [suspend ssh]\r\n" in outputs["pyssh"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_terminal_restored_after_signal(env: Env, signum: int) -> None:
    """Killed in raw mode: the terminal is as before, the status 255 (as ssh)."""
    for _, tool in tools():
        modes: list[list[Any]] = []
        out, status = drive([*tool, *env.args("-t"), "root@127.0.0.1", "echo ready; sleep 60"],
                            [Expect(b"ready"), 0.2, Kill(signum)], env.env(), modes=modes)
        assert status == 255, out
        assert modes[0] == modes[1]


def test_escape_list_connections(env: Env) -> None:
    out, status = drive([*PYSSH, *env.args("-tt", "-e", "^]", level="ERROR"),
                         "root@127.0.0.1", "echo ready; sleep 60"],
                        [Expect(b"ready"), b"\x1d#", 0.3, b"\r\x1d."],
                        env.env())
    assert status == 255
    assert b"\x1d#\r\nThe following connections are open:\r\n  #0 client-session" in out


def test_no_escapes_without_pty(env: Env) -> None:
    data = "a\n~.\nb\n"
    for _, tool in tools():
        got = run([*tool, *env.args("-e", "~", level="ERROR"), "root@127.0.0.1", "cat"],
                  input=data, env=env.env(), timeout=60)
        assert (got.returncode, got.stdout) == (0, data), got.stderr


def test_bad_escape_char(env: Env) -> None:
    got = {name: run([*tool, *env.args("-e", "ab"), "root@127.0.0.1", "true"], env=env.env())
           for name, tool in tools()}
    assert got["pyssh"].returncode == got["ssh"].returncode == 255
    assert got["pyssh"].stderr.replace("\r", "") == got["ssh"].stderr.replace("\r", "")


# -- session types, environment, status ---------------------------------------------


def test_subsystem_sftp(env: Env) -> None:
    """-s: SSH_FXP_INIT (version 3) answered by SSH_FXP_VERSION."""
    for _, tool in tools():
        proc = subprocess.Popen([*tool, *env.args("-s", level="ERROR"), "root@127.0.0.1",
                                 "sftp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env.env(), start_new_session=True)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(b"\0\0\0\x05\x01\0\0\0\x03")
            proc.stdin.flush()
            head = proc.stdout.read(9)
            proc.stdin.close()
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert head[4:] == b"\x02\0\0\0\x03"


def test_send_env_and_set_env(env: Env) -> None:
    cmd = "env | grep ^PYSSH_T_ | sort"
    options = ["-o", "SendEnv=PYSSH_T_A*", "-o", "SetEnv=PYSSH_T_B=set PYSSH_T_C=x"]
    got = {name: run([*tool, *env.args(*options, level="ERROR"), "root@127.0.0.1", cmd],
                     env=env.env(PYSSH_T_A1="sent", PYSSH_T_Z="not sent"))
           for name, tool in tools()}
    assert got["pyssh"].stdout == got["ssh"].stdout == \
        "PYSSH_T_A1=sent\nPYSSH_T_B=set\nPYSSH_T_C=x\n"


def test_remote_killed_by_signal(env: Env) -> None:
    got = {name: run([*tool, *env.args(), "root@127.0.0.1", "kill -TERM $$"], env=env.env())
           for name, tool in tools()}
    assert got["pyssh"].returncode == got["ssh"].returncode == 255
    assert got["pyssh"].stderr == got["ssh"].stderr == ""


def start(env: Env, argv: list[str]) -> subprocess.Popen[bytes]:
    """Start argv and return once the server logged it in (its log says so)."""
    before = env.server.log_text().count("Accepted publickey")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env.env(), start_new_session=True)
    deadline = time.monotonic() + 30
    while env.server.log_text().count("Accepted publickey") == before:
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.7)  # the session (or -N's idle loop) starts
    return proc


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    for child in run(["pgrep", "-P", str(pid)]).stdout.split():
        found += [int(child), *_descendants(int(child))]
    return found


def test_server_alive_timeout(env: Env) -> None:
    """A server that stops answering: ssh's message and 255 after CountMax+1 intervals."""
    results = {}
    for name, tool in tools():
        proc = start(env, [*tool, *env.args("-o", "ServerAliveInterval=1",
                                            "-o", "ServerAliveCountMax=1"),
                           "root@127.0.0.1", "sleep 30"])
        stopped = _descendants(env.server.proc.pid)
        try:
            for pid in stopped:
                os.kill(pid, signal.SIGSTOP)
            _, err = proc.communicate(timeout=20)
        finally:
            for pid in stopped:
                os.kill(pid, signal.SIGCONT)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        results[name] = (proc.returncode, err.replace(b"\r", b""))
    assert results["pyssh"] == results["ssh"] == \
        (255, b"Timeout, server 127.0.0.1 not responding.\n")


def test_fork_after_authentication(env: Env, tmp_path: Path) -> None:
    for name, tool in tools():
        out = tmp_path / f"{name}.out"
        # A file, not a pipe: the background child keeps it open until the command ends.
        with open(out, "wb") as stdout:
            start = time.monotonic()
            proc = subprocess.run([*tool, *env.args("-f", level="ERROR"), "root@127.0.0.1",
                                   "sleep 1; echo done"], stdout=stdout,
                                  stderr=subprocess.DEVNULL, env=env.env(), timeout=30,
                                  start_new_session=True, check=False)
            assert proc.returncode == 0
            assert time.monotonic() - start < 3
        assert out.read_bytes() == b""  # the command runs on in the background
        deadline = time.monotonic() + 20
        while out.read_bytes() != b"done\n" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert out.read_bytes() == b"done\n"


def test_fork_without_command(env: Env) -> None:
    got = {name: run([*tool, *env.args("-f"), "root@127.0.0.1"], env=env.env())
           for name, tool in tools()}
    assert got["pyssh"].returncode == got["ssh"].returncode == 255
    assert got["pyssh"].stderr.replace("\r", "") == got["ssh"].stderr.replace("\r", "") == \
        "Cannot fork into background without a command to execute.\n"


def _client_timers(server_port: int) -> set[str]:
    """The "tr" (active timer) column of the client ends of connections to the server:
    02 is the keepalive timer of an idle connection with SO_KEEPALIVE."""
    timers = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[2].endswith(f":{server_port:04X}") and fields[3] == "01":  # ESTABLISHED
            timers.add(fields[5].split(":")[0])
    return timers


@pytest.mark.parametrize("keepalive", ["yes", "no"])
def test_no_command_until_sigterm(env: Env, keepalive: str) -> None:
    """-N keeps the connection (with TCPKeepAlive as set) until SIGTERM, then exits 0."""
    for _, tool in tools():
        proc = start(env, [*tool, *env.args("-N", "-o", f"TCPKeepAlive={keepalive}",
                                            level="ERROR"), "root@127.0.0.1"])
        assert proc.poll() is None  # -N: keeps the connection
        assert _client_timers(env.server.port) == {"02" if keepalive == "yes" else "00"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


@pytest.mark.parametrize("command", [[], ["sleep 30"]], ids=["-N", "command"])
def test_connection_lost(env: Env, command: list[str]) -> None:
    """The server's session processes die: ssh's "closed by remote host" and 255."""
    flags = [] if command else ["-N"]
    results = {}
    for name, tool in tools():
        proc = start(env, [*tool, *env.args(*flags), "root@127.0.0.1", *command])
        for pid in _descendants(env.server.proc.pid):
            os.kill(pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=20)
        results[name] = (proc.returncode, err.replace(b"\r", b""))
    assert results["pyssh"] == results["ssh"] == \
        (255, b"Connection to 127.0.0.1 closed by remote host.\n")


def test_interrupted_without_pty(env: Env) -> None:
    for _, tool in tools():
        proc = start(env, [*tool, *env.args(), "root@127.0.0.1", "sleep 30"])
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
        assert (proc.returncode, err) == (255, b"")


def test_tty_requests_without_terminal(env: Env) -> None:
    """-t with stdin not a terminal: ssh's notice and no pty; -tt: a pty anyway, and
    "Connection to HOST closed." at the end."""
    for flag, expect_tty in (("-t", False), ("-tt", True)):
        got = {name: run([*tool, *env.args(flag), "root@127.0.0.1", "tty"], env=env.env())
               for name, tool in tools()}
        for result in got.values():
            assert result.stdout.startswith("/dev/pts/") == expect_tty, result
        assert got["pyssh"].returncode == got["ssh"].returncode
        assert got["pyssh"].stderr.replace("\r", "") == got["ssh"].stderr.replace("\r", "")


def test_server_alive_only_when_idle(env: Env, tmp_path: Path) -> None:
    """ServerAliveInterval sends keepalive@openssh.com only after an interval with nothing
    from the server (as clientloop.c): none while output keeps coming, some when the
    command is silent. The sshd's debug log counts them, for ssh and pyssh alike.
    (ssh 9.x keeps the deadline in whole seconds, so with a 1 s interval it sends some even
    under steady traffic: the test uses 2 s with output every 0.3 s.)"""
    server = start_sshd(tmp_path / "sshd", f"LogLevel DEBUG1\nAuthorizedKeysFile "
                        f"{env.key}.pub\n", host_key=env.server.host_key)
    known = tmp_path / "known_hosts"
    host_pub = Path(f"{server.host_key}.pub").read_text().split()
    known.write_text(f"[127.0.0.1]:{server.port} {host_pub[0]} {host_pub[1]}\n")
    args = ["-F", "/dev/null", "-p", str(server.port), "-i", str(env.key),
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={known}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "ServerAliveInterval=2", "root@127.0.0.1"]
    counts: dict[tuple[str, str], int] = {}
    try:
        for command in ("for i in 1 2 3 4 5 6 7 8 9 10; do echo x; sleep 0.3; done",
                        "sleep 2.8"):
            for name, tool in tools():
                before = server.log_text().count("rtype keepalive@openssh.com")
                got = run([*tool, *args, command], env=env.env(), timeout=60)
                assert got.returncode == 0, got.stderr
                time.sleep(0.2)
                counts[(name, command[:5])] = \
                    server.log_text().count("rtype keepalive@openssh.com") - before
    finally:
        server.stop()
    assert counts[("pyssh", "for i")] == counts[("ssh", "for i")] == 0, counts
    assert counts[("ssh", "sleep")] >= 1 and counts[("pyssh", "sleep")] >= 1, counts


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_killed_by_signal_message(env: Env, signum: int) -> None:
    """SIGTERM/SIGINT during a session: exit 255 and ssh's "Killed by signal N." (a
    VERBOSE message: shown with -v/LogLevel VERBOSE, silent at the default level)."""
    results = {}
    for name, tool in tools():
        proc = start(env, [*tool, *env.args(level="VERBOSE"), "root@127.0.0.1", "sleep 30"])
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=20)
        results[name] = (proc.returncode, err.decode().splitlines()[-1:])
    assert results["pyssh"] == results["ssh"] == (255, [f"Killed by signal {int(signum)}."])
