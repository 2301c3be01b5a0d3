"""What a pysshd session does, judged by the real OpenSSH ssh and sftp (issue 7).

ptys are driven through a pty of the test's own (pty.fork): ``tty``, ``stty size``, a
resize, the terminal modes ssh copies from its terminal, a login shell, an exit status.
A command killed by a signal is compared with the real sshd on the same machine (root
only), sftp runs through the Subsystem, MaxSessions refuses a multiplexed second session,
ClientAliveInterval drops a client that stopped answering, PrintMotd prints /etc/motd
for interactive logins only. One pysshd (and one sshd) per module.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import pwd
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from keytools.keyfile import load_private
from keytools.wire import Writer
from protocol.client import accept_any_host_key, connect
from protocol.errors import ChannelOpenFailed
from tests.helpers import run, stop_process, tool_path
from tests.interop.pysshd import USER, PysshdServer, keygen, pysshd_env, start_pysshd
from tests.interop.sshd import SshdServer, free_port, start_sshd
from tests.interop.users import temporary_user

SHELL = pwd.getpwnam(USER).pw_shell or "/bin/sh"
MOTD = Path("/etc/motd")


@pytest.fixture(scope="module")
def alt_port() -> int:
    """A second port of the module's pysshd, whose Match LocalPort block says
    DisableForwarding yes."""
    return free_port()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, alt_port: int) -> Iterator[PysshdServer]:
    d = tmp_path_factory.mktemp("sessions")
    for name in ("host", "id"):
        keygen("-q", "-t", "ed25519", "-N", "", "-C", name, "-f", d / name)
    srv = start_pysshd(d, f"HostKey {d / 'host'}\nAuthorizedKeysFile {d}/authorized_keys\n"
                          "LogLevel VERBOSE\nMaxSessions 1\nClientAliveInterval 1\n"
                          "ClientAliveCountMax 2\nSubsystem sftp internal-sftp\n"
                          f"PermitUserEnvironment PYSSH_*\nPort {alt_port}\n"
                          f"Match LocalPort {alt_port}\n  DisableForwarding yes\n")
    srv.authorize(srv.pub("id"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def real_sshd(server: PysshdServer) -> Iterator[SshdServer]:
    """The real sshd, for comparisons: it logs in root only, so root only."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the real sshd is the reference")
    real = start_sshd(server.directory / "real", f"AuthorizedKeysFile {server.authorized_keys}")
    yield real
    real.stop()


def ssh_command(port: int, directory: Path, *args: str, log_level: str = "ERROR") -> list[str]:
    return [tool_path("ssh"), "-F", "/dev/null", "-p", str(port), "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", f"LogLevel={log_level}",
            "-i", str(directory / "id"), *args]


def client_env(directory: Path) -> dict[str, str]:
    return {**pysshd_env(), "HOME": str(directory / "client")}


class PtyClient:
    """A process (ssh) on a pty of ours, as if a person ran it in a terminal."""

    def __init__(self, cmd: list[str], env: dict[str, str], rows: int = 33,
                 cols: int = 101, intr: int = 3) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                os.execve(cmd[0], cmd, env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.output = b""
        self.status: int | None = None
        self.resize(rows, cols, signal_child=False)
        attrs = termios.tcgetattr(fd)
        attrs[6][termios.VINTR] = bytes((intr,))
        termios.tcsetattr(fd, termios.TCSANOW, attrs)

    def resize(self, rows: int, cols: int, signal_child: bool = True) -> None:
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        if signal_child:
            os.kill(self.pid, signal.SIGWINCH)

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def expect(self, needle: bytes, timeout: float = 20) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.output:
            if not self._read(deadline - time.monotonic()):
                break
        assert needle in self.output, self.output
        return self.output

    def _read(self, timeout: float) -> bool:
        if timeout <= 0:
            return False
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            return False
        self.output += data
        return bool(data)

    def wait(self, timeout: float = 30) -> tuple[int, bytes]:
        deadline = time.monotonic() + timeout
        while self._read(deadline - time.monotonic()):
            pass
        while time.monotonic() < deadline:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status), self.output
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"ssh did not exit: {self.output!r}")

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)


def pty_ssh(server: PysshdServer, *remote: str, user: str = USER, **kwargs: int) -> PtyClient:
    cmd = ssh_command(server.port, server.directory, "-tt", f"{user}@127.0.0.1", *remote)
    return PtyClient(cmd, {**client_env(server.directory), "TERM": "xterm-pyssh"}, **kwargs)


def test_pty_tty_size_term_and_modes(server: PysshdServer) -> None:
    client = pty_ssh(server, "tty; stty size; echo T=$TERM S=$SSH_TTY; stty -a", intr=2)
    code, out = client.wait()
    text = out.decode(errors="replace")
    lines = text.split("\r\n")
    assert code == 0, text
    assert lines[0].startswith("/dev/pts/"), text
    assert lines[1] == "33 101"
    assert lines[2] == f"T=xterm-pyssh S={lines[0]}"
    assert "intr = ^B" in text  # ssh copied our terminal's modes; pysshd applied them


def test_window_change_reaches_the_remote(server: PysshdServer) -> None:
    client = pty_ssh(server, "trap 'stty size; exit 7' WINCH; stty size; "
                             "while :; do sleep 0.1; done")
    client.expect(b"33 101\r\n")
    client.resize(40, 120)
    code, out = client.wait()
    assert (code, out.split(b"\r\n")[1]) == (7, b"40 120"), out


def test_login_shell_exit_status_and_motd(server: PysshdServer) -> None:
    client = pty_ssh(server)
    client.send("echo \"zero=$0\"; exit 4\r")
    code, out = client.wait()
    assert code == 4, out
    assert f"zero=-{os.path.basename(SHELL)}\r\n".encode() in out
    motd = MOTD.read_bytes() if MOTD.exists() else b""
    if motd.strip():  # PrintMotd yes (the default): an interactive login shows it
        assert motd.replace(b"\n", b"\r\n") in out


def test_motd_not_for_commands_nor_with_printmotd_no(server: PysshdServer,
                                                     tmp_path: Path) -> None:
    motd = MOTD.read_bytes().strip() if MOTD.exists() else b""
    if not motd:
        pytest.skip("/etc/motd is empty here")
    first_line = motd.splitlines()[0]
    code, out = pty_ssh(server, "echo done").wait()
    assert (code, first_line in out) == (0, False), out
    for name in ("host", "id"):
        (tmp_path / name).write_bytes((server.directory / name).read_bytes())
        (tmp_path / name).chmod(0o600)
    quiet = start_pysshd(tmp_path, f"HostKey {tmp_path / 'host'}\n"
                                   f"AuthorizedKeysFile {server.authorized_keys}\n"
                                   "PrintMotd no\n")
    try:
        client = pty_ssh(quiet)
        client.send("exit 0\r")
        code, out = client.wait()
        assert (code, first_line in out) == (0, False), out
    finally:
        quiet.stop()


def _signal_runs(port: int, directory: Path, env: dict[str, str]) -> list[tuple[int, bytes]]:
    """ssh's exit status and what it printed for a remote command killed by SIGTERM,
    without and with a pty."""
    target = f"{USER}@127.0.0.1"
    plain = run(ssh_command(port, directory, target, "kill -TERM $$", log_level="INFO"),
                env=env, binary=True)
    tty = PtyClient(ssh_command(port, directory, "-tt", target, "kill -TERM $$",
                                log_level="INFO"), env).wait()
    runs = [(plain.returncode, plain.stdout + plain.stderr), tty]
    return [(code, out.replace(str(port).encode(), b"PORT")) for code, out in runs]


def test_exit_signal_as_with_sshd(server: PysshdServer, real_sshd: SshdServer) -> None:
    env = client_env(server.directory)
    ours = _signal_runs(server.port, server.directory, env)
    theirs = _signal_runs(real_sshd.port, server.directory, env)
    assert ours == theirs
    assert ours[0][0] == 255


def test_env_from_key_option_with_permit_user_environment(server: PysshdServer) -> None:
    server.authorize(f'environment="PYSSH_A=1",environment="OTHER=2" {server.pub("id")}')
    try:
        done = server.ssh("echo A=$PYSSH_A O=$OTHER")
    finally:
        server.authorize(server.pub("id"))
    assert (done.returncode, done.stdout) == (0, "A=1 O=\n"), done.stderr


def test_sftp_subsystem(server: PysshdServer, tmp_path: Path) -> None:
    source = tmp_path / "up.bin"
    source.write_bytes(os.urandom(300_000))
    batch = tmp_path / "batch"
    batch.write_text(f"put {source} {tmp_path / 'remote.bin'}\n"
                     f"get {tmp_path / 'remote.bin'} {tmp_path / 'down.bin'}\n")
    cmd = [tool_path("sftp"), "-F", "/dev/null", "-P", str(server.port), "-o", "BatchMode=yes",
           "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
           "-o", "UserKnownHostsFile=/dev/null", "-i", str(server.key("id")),
           "-b", str(batch), f"{USER}@127.0.0.1"]
    done = run(cmd, env=client_env(server.directory))
    assert done.returncode == 0, done.stderr + server.log_text()
    assert (tmp_path / "down.bin").read_bytes() == source.read_bytes()


def test_max_sessions_refuses_a_multiplexed_session(server: PysshdServer) -> None:
    d = server.directory
    control = d / "cm"
    env = client_env(d)
    target = f"{USER}@127.0.0.1"
    master = run(ssh_command(server.port, d, "-fN", "-o", "ControlMaster=yes",
                             "-o", f"ControlPath={control}", target), env=env)
    assert master.returncode == 0, master.stderr
    first = subprocess.Popen(
        ssh_command(server.port, d, "-o", f"ControlPath={control}", target,
                    "echo first; sleep 30"),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        start_new_session=True)
    try:
        assert first.stdout is not None
        assert first.stdout.readline() == b"first\n"
        second = run(ssh_command(server.port, d, "-o", f"ControlPath={control}",
                                 "-o", "ControlMaster=no", target, "echo second"), env=env)
        assert "Session open refused by peer" in second.stderr, second.stderr
        assert "no more sessions" in server.log_text()
    finally:
        stop_process(first)
        run(ssh_command(server.port, d, "-o", f"ControlPath={control}", "-O", "exit",
                        target), env=env)


def test_signal_request_and_second_session_with_pyssh(server: PysshdServer) -> None:
    key = load_private(str(server.key("id")), None)[0]

    async def scenario() -> tuple[tuple[str, bool, str] | None, bool]:
        conn = await connect("127.0.0.1", server.port, username=USER, keys=[key],
                             known_host_check=accept_any_host_key)
        async with conn:
            session = await conn.open_session()
            await session.exec("echo started; sleep 30")
            assert await session.read() == b"started\n"
            refused = False
            try:
                await conn.open_session()
            except ChannelOpenFailed:
                refused = True  # MaxSessions 1
            assert await session.request("signal", Writer().string("TERM").getvalue())
            await asyncio.wait_for(session.wait_closed(), 20)
            return session.exit_signal, refused

    exit_signal, refused = asyncio.run(scenario())
    assert exit_signal == ("TERM", False, "")
    assert refused


def test_client_alive_drops_a_stopped_client(server: PysshdServer) -> None:
    d = server.directory
    proc = subprocess.Popen(
        ssh_command(server.port, d, f"{USER}@127.0.0.1", "echo ready; sleep 60"),
        env=client_env(d), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        port = _client_port(server, proc.pid)
        os.kill(proc.pid, signal.SIGSTOP)
        wanted = f"Timeout, client not responding from user {USER} 127.0.0.1 port {port}"
        deadline = time.monotonic() + 15
        while wanted not in server.log_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert wanted in server.log_text()
        os.kill(proc.pid, signal.SIGCONT)
        assert proc.wait(20) == 255
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
        stop_process(proc)


def _client_port(server: PysshdServer, pid: int) -> int:
    """The local port of ssh ``pid``'s connection, from the server's log: the last
    "Accepted publickey" line (the sessions of this module run one at a time)."""
    for line in reversed(server.log_text().splitlines()):
        if "Accepted publickey" in line and " port " in line:
            return int(line.split(" port ")[1].split()[0])
    raise AssertionError(server.log_text())


@pytest.mark.parametrize(("option", "args"), [
    ("no-pty", ("-tt", "tty")),
    ('command="internal-sftp"', ("echo hi",)),
    ('command="echo o=$SSH_ORIGINAL_COMMAND; exit 2"', ("echo hi",)),
])
def test_key_options_as_with_sshd(server: PysshdServer, real_sshd: SshdServer, option: str,
                                  args: tuple[str, ...]) -> None:
    """no-pty refuses the pty (fatal for ssh -tt); a forced internal-sftp refuses a
    command with sshd's words and status."""
    env = client_env(server.directory)
    server.authorize(f"{option} {server.pub('id')}")
    try:
        results = []
        for port in (server.port, real_sshd.port):
            done = run(ssh_command(port, server.directory, *args[:-1], f"{USER}@127.0.0.1",
                                   args[-1]), env=env)
            results.append((done.returncode, done.stdout, done.stderr))
    finally:
        server.authorize(server.pub("id"))
    assert results[0] == results[1]


@pytest.fixture(scope="module")
def other_user() -> Iterator[pwd.struct_passwd]:
    with temporary_user() as made:  # skips unless root: pysshd's root mode
        yield made


def test_root_mode_pty_session_is_the_users(server: PysshdServer,
                                            other_user: pwd.struct_passwd) -> None:
    """Root mode: the pty belongs to the user, the login shell and environment are
    theirs."""
    client = pty_ssh(server, user=other_user.pw_name)
    client.send('echo "$(id -un) $(stat -c %U $(tty)) $HOME $USER $0"; exit 3\r')
    code, out = client.wait()
    name = other_user.pw_name
    assert code == 3, out
    assert f"{name} {name} {other_user.pw_dir} {name} -sh\r\n".encode() in out


def test_user_rc_runs_before_the_command(server: PysshdServer,
                                         other_user: pwd.struct_passwd) -> None:
    """~/.ssh/rc runs (with the session's output) before the command, as in sshd."""
    rc = Path(other_user.pw_dir) / ".ssh" / "rc"
    rc.parent.mkdir(mode=0o700, exist_ok=True)
    rc.write_text("echo rc-ran in $(pwd)\n")
    for path in (rc.parent, rc):
        os.chown(path, other_user.pw_uid, other_user.pw_gid)
    try:
        done = server.ssh("echo command", user=other_user.pw_name)
    finally:
        rc.unlink()
    assert (done.returncode, done.stdout) == (0, f"rc-ran in {other_user.pw_dir}\ncommand\n")


def test_user_environment_file(server: PysshdServer, other_user: pwd.struct_passwd) -> None:
    """PermitUserEnvironment PYSSH_*: ~/.ssh/environment's matching names only."""
    path = Path(other_user.pw_dir) / ".ssh" / "environment"
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_text("# comment\nPYSSH_E=from file\nOTHER=no\n")
    for p in (path.parent, path):
        os.chown(p, other_user.pw_uid, other_user.pw_gid)
    try:
        done = server.ssh("echo \"$PYSSH_E-$OTHER\"", user=other_user.pw_name)
    finally:
        path.unlink()
    assert (done.returncode, done.stdout) == (0, "from file-\n"), done.stderr


def test_eow_when_the_command_closes_its_stdin(server: PysshdServer,
                                              real_sshd: SshdServer) -> None:
    """The command closes stdin while ssh still sends: eow@openssh.com, as from sshd."""
    env = client_env(server.directory)
    seen = []
    for port in (server.port, real_sshd.port):
        done = run(ssh_command(port, server.directory, "-v", f"{USER}@127.0.0.1",
                               "exec 0<&-; sleep 0.5; echo done"),
                   input=b"x" * 4_000_000, env=env)
        seen.append((done.returncode, done.stdout,
                     "rtype eow@openssh.com" in done.stderr))
    assert seen[0] == seen[1] == (0, "done\n", True)


@contextlib.contextmanager
def _agent(tmp_path: Path) -> Iterator[Path]:
    """A real ssh-agent on a socket of ``tmp_path``, stopped by pid afterwards."""
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen([tool_path("ssh-agent"), "-D", "-a", str(sock)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield sock
    finally:
        stop_process(agent)


def test_disable_forwarding_refuses_agent_forwarding(server: PysshdServer, alt_port: int,
                                                     tmp_path: Path) -> None:
    """DisableForwarding yes (a Match LocalPort block): auth-agent-req is refused, no
    SSH_AUTH_SOCK; the module's other port still forwards."""
    with _agent(tmp_path) as sock:
        env = {**client_env(server.directory), "SSH_AUTH_SOCK": str(sock)}
        seen = []
        for port in (server.port, alt_port):
            done = run(ssh_command(port, server.directory, "-A", f"{USER}@127.0.0.1",
                                   'echo "sock=${SSH_AUTH_SOCK:+set}"'), env=env)
            seen.append((done.returncode, done.stdout))
    assert seen == [(0, "sock=set\n"), (0, "sock=\n")]


def _user_rc(user: pwd.struct_passwd) -> Path:
    rc = Path(user.pw_dir) / ".ssh" / "rc"
    rc.parent.mkdir(mode=0o700, exist_ok=True)
    rc.write_text("echo rc-ran\n")
    for path in (rc.parent, rc):
        os.chown(path, user.pw_uid, user.pw_gid)
    return rc


@pytest.mark.parametrize(("options", "cert_options", "runs"), [
    ("no-user-rc", None, False),
    ("restrict", None, False),
    ("restrict,user-rc", None, True),
    ("cert-authority", (), True),
    ("cert-authority", ("-O", "no-user-rc"), False),
    ("cert-authority,no-user-rc", (), False),
])
def test_user_rc_follows_key_options_and_certificate(
        server: PysshdServer, other_user: pwd.struct_passwd, options: str,
        cert_options: tuple[str, ...] | None, runs: bool) -> None:
    """~/.ssh/rc runs only when the key's options (no-user-rc, restrict, user-rc) and the
    certificate (permit-user-rc) allow it, as sshd's permit_user_rc."""
    d = server.directory
    identity, certificate = "id", None
    line = f"{options} {server.pub('id')}"
    if cert_options is not None:
        for name in ("rc-ca", "rc-id"):
            if not (d / name).exists():
                keygen("-q", "-t", "ed25519", "-N", "", "-C", name, "-f", d / name)
        (d / "rc-id-cert.pub").unlink(missing_ok=True)
        keygen("-q", "-s", d / "rc-ca", "-I", "rc", "-n", other_user.pw_name,
               *cert_options, d / "rc-id.pub")
        identity, certificate = "rc-id", "rc-id-cert.pub"
        line = f"{options} {server.pub('rc-ca')}"
    rc = _user_rc(other_user)
    server.authorize(line)
    try:
        done = server.ssh("echo command", user=other_user.pw_name, identity=identity,
                          certificate=certificate)
    finally:
        rc.unlink()
        server.authorize(server.pub("id"))
    expected = ("rc-ran\n" if runs else "") + "command\n"
    assert (done.returncode, done.stdout) == (0, expected), done.stderr


def test_agent_forwarding(server: PysshdServer, tmp_path: Path) -> None:
    """ssh -A: the session's SSH_AUTH_SOCK reaches the client's agent."""
    with _agent(tmp_path) as sock:
        env = {**client_env(server.directory), "SSH_AUTH_SOCK": str(sock)}
        added = run([tool_path("ssh-add"), "-q", str(server.key("id"))], env=env)
        assert added.returncode == 0, added.stderr
        listed = run([tool_path("ssh-add"), "-l"], env=env)
        done = run(ssh_command(server.port, server.directory, "-A", f"{USER}@127.0.0.1",
                               "ssh-add -l"), env=env)
        assert (done.returncode, done.stdout) == (0, listed.stdout), done.stderr
        done = run(ssh_command(server.port, server.directory, "-a", f"{USER}@127.0.0.1",
                               'echo "sock=$SSH_AUTH_SOCK"'), env=env)
        assert done.stdout == "sock=\n"
