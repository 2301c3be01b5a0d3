"""Issue 7's sshd_config items checked against the real sshd on the same input.

- authorized_keys options expiry-time=, from=, cert-authority with principals=, and
  RevokedKeys given a plain list of public keys (not a KRL): the real ssh logs in to
  pysshd and to the real sshd with one authorized_keys file, and both give the same
  answer. verify-required and tunnel= are refused by pysshd (it cannot check FIDO user
  verification nor forward tunnels; sshd accepts a plain key with either).
- ``-d``: pysshd serves one connection in the foreground and exits, as ``sshd -d``;
  its "Server listening" lines for AddressFamily/ListenAddress are sshd's, byte for byte
  (and so are those ``-E`` appends to a log file).
- syslog: without -e (and without -D) pysshd logs through /dev/log with sshd's priority
  and message text; read through a test socket bound over /dev/log in a private mount
  namespace (root and unshare(1) needed, else skipped).
"""

from __future__ import annotations

import grp
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import run, stop_process, tool_path
from tests.interop.pysshd import PYSSHD, USER, PysshdServer, keygen, pysshd_env, start_pysshd
from tests.interop.sshd import SshdServer, free_port, sshd_path, start_sshd

ROOT = os.geteuid() == 0


@dataclass
class Pair:
    directory: Path
    pysshd: PysshdServer
    sshd: SshdServer | None

    def authorize(self, *lines: str) -> None:
        (self.directory / "authorized_keys").write_text("".join(f"{x}\n" for x in lines))

    def pub(self, name: str) -> str:
        return (self.directory / f"{name}.pub").read_text().strip()

    def logins(self, identity: str, certificate: str | None = None,
               source: str = "127.0.0.1") -> list[bool]:
        """Whether the real ssh logs in with ``identity`` from ``source`` to pysshd
        (and to sshd)."""
        answers = []
        bind = (f"BindAddress={source}",)
        done = self.pysshd.ssh("echo in", identity=identity, certificate=certificate,
                               options=bind)
        answers.append((done.returncode, done.stdout) == (0, "in\n"))
        if self.sshd is not None:
            cert = None if certificate is None else self.directory / certificate
            done = self.sshd.ssh("echo in", identity=self.directory / identity,
                                 certificate=cert, options=list(bind))
            answers.append((done.returncode, done.stdout) == (0, "in\n"))
        return answers


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    d = tmp_path_factory.mktemp("audit")
    for name in ("host", "id", "listed", "ca", "certified"):
        keygen("-q", "-t", "ed25519", "-N", "", "-C", name, "-f", d / name)
    keygen("-q", "-s", d / "ca", "-I", "audit", "-n", "ops", "-V", "-5m:+1h",
           d / "certified.pub")
    # RevokedKeys as a plain list of public keys (a comment and a blank line too)
    (d / "revoked_keys").write_text(f"# revoked\n\n{(d / 'listed.pub').read_text()}")
    group = grp.getgrgid(os.getgid()).gr_name
    common = (f"AuthorizedKeysFile {d}/authorized_keys\nRevokedKeys {d}/revoked_keys\n"
              f"LogLevel VERBOSE\nInclude {d}/match.conf\n")
    # the Match blocks live in an included file (their scope ends with it), so the
    # sshd fixture's own lines, written after ours, stay global
    matches = ("Match Address 127.0.0.21\n  AllowGroups pyssh-no-such-group\n"
              f"Match Address 127.0.0.22\n  DenyGroups {group}\n"
              f"Match Address 127.0.0.23\n  AllowGroups pyssh-no-such-group {group[0]}*\n")
    safe_dir: Path | None = None
    if ROOT:
        # AuthorizedPrincipalsCommand must live where only root can write, all the way up
        safe_dir = Path(tempfile.mkdtemp(prefix="pyssh-t-", dir="/run"))
        safe_dir.chmod(0o755)
        script = safe_dir / "principals-command"
        script.write_text("#!/bin/sh\n[ \"$(id -un)\" = nobody ] || exit 1\n"
                          f"[ \"$1\" = {USER} ] && [ \"$2\" = audit ] && echo ops\n")
        script.chmod(0o755)
        matches += (f"Match Address 127.0.0.24\n  TrustedUserCAKeys {d / 'ca.pub'}\n"
                   f"  AuthorizedPrincipalsCommand {script} %u %i\n"
                   "  AuthorizedPrincipalsCommandUser nobody\n")
    (d / "match.conf").write_text(matches)
    server: PysshdServer | None = None
    real: SshdServer | None = None
    try:
        server = start_pysshd(d, f"HostKey {d / 'host'}\n" + common)
        if ROOT and USER == "root":  # the sshd fixture logs in as root
            real = start_sshd(d / "sshd", common, host_key=d / "host")
        yield Pair(d, server, real)
    finally:
        if server is not None:
            server.stop()
        if real is not None:
            real.stop()
        if safe_dir is not None:
            shutil.rmtree(safe_dir, ignore_errors=True)


@pytest.mark.parametrize(("option", "allowed"), [
    ('expiry-time="20200101"', False),
    ('expiry-time="20991231235959"', True),
    ('from="10.0.0.0/8"', False),
    ('from="!10.0.0.1,127.0.0.0/8"', True),
    ('from="127.0.0.1",expiry-time="20200101"', False),
])
def test_key_options_as_sshd(pair: Pair, option: str, allowed: bool) -> None:
    pair.authorize(f"{option} {pair.pub('id')}")
    answers = pair.logins("id")
    assert set(answers) == {allowed}, (answers, pair.pysshd.log_text()[-2000:])


def test_expired_key_logged(pair: Pair) -> None:
    pair.authorize(f'expiry-time="20200101" {pair.pub("id")}')
    assert pair.pysshd.ssh("true").returncode == 255
    assert "Authentication key has expired" in pair.pysshd.log_text()


@pytest.mark.parametrize(("principals", "allowed"), [
    ("nobody", False), ("nobody,ops", True), ("o*", False)])
def test_cert_authority_principals_as_sshd(pair: Pair, principals: str, allowed: bool) -> None:
    pair.authorize(f'cert-authority,principals="{principals}" {pair.pub("ca")}')
    answers = pair.logins("certified", "certified-cert.pub")
    assert set(answers) == {allowed}, (answers, pair.pysshd.log_text()[-2000:])


def test_revoked_keys_plain_list_as_sshd(pair: Pair) -> None:
    pair.authorize(pair.pub("listed"), pair.pub("id"))
    assert set(pair.logins("listed")) == {False}
    assert set(pair.logins("id")) == {True}
    assert f"revoked by file {pair.directory / 'revoked_keys'}" in pair.pysshd.log_text()


@pytest.mark.parametrize(("source", "allowed"), [
    ("127.0.0.21", False), ("127.0.0.22", False), ("127.0.0.23", True)],
    ids=["allowgroups-other", "denygroups-own", "allowgroups-pattern"])
def test_allow_and_deny_groups_as_sshd(pair: Pair, source: str, allowed: bool) -> None:
    pair.authorize(pair.pub("id"))
    answers = pair.logins("id", source=source)
    assert set(answers) == {allowed}, (answers, pair.pysshd.log_text()[-2000:])
    if not allowed:
        assert re.search(r"User \S+ from 127\.0\.0\.2[12] not allowed because",
                         pair.pysshd.log_text())


def test_authorized_principals_command_as_sshd(pair: Pair) -> None:
    if not ROOT:
        pytest.skip("needs root: AuthorizedPrincipalsCommand must be root-owned all the way")
    pair.authorize()
    assert set(pair.logins("certified", "certified-cert.pub", source="127.0.0.24")) == {True}
    # without the command (another address) the CA is not trusted at all
    assert set(pair.logins("certified", "certified-cert.pub")) == {False}


@pytest.mark.parametrize("option", ["verify-required", 'tunnel="0"', "restrict,tunnel=\"1\""])
def test_options_pysshd_cannot_honour_are_refused(pair: Pair, option: str) -> None:
    pair.authorize(f"{option} {pair.pub('id')}")
    done = pair.pysshd.ssh("true")
    assert done.returncode == 255
    assert "Permission denied (" in done.stderr
    word = "verify-required" if "verify" in option else "tunnel="
    assert re.search(rf"Authentication key refused: {word}.* not supported by pysshd",
                     pair.pysshd.log_text())
    pair.authorize(pair.pub("id"))
    assert pair.pysshd.ssh("true").returncode == 0


def test_log_lines_on_stderr_as_sshd(pair: Pair) -> None:
    """-e: lines end in CR LF as sshd's log.c writes them; LogLevel VERBOSE shows no
    debug lines."""
    pair.authorize(pair.pub("id"))
    assert pair.pysshd.ssh("true").returncode == 0
    raw = pair.pysshd.log.read_bytes()
    assert re.search(rb"\r\nAccepted publickey for \S+ from 127\.0\.0\.1 port \d+ ssh2: "
                     rb"ED25519 SHA256:\S+\r\n", raw), raw[-2000:]
    assert b"debug1: " not in raw


@pytest.mark.parametrize("level", ["INFO", "VERBOSE"])
def test_log_level_shows_what_sshd_shows(tmp_path: Path, level: str) -> None:
    """sshd's verbose() lines (Starting session, Accepted key, an early failed
    publickey) only from LogLevel VERBOSE on; compared with the real sshd's lines of
    the same kinds."""
    keygen("-q", "-t", "ed25519", "-N", "", "-f", tmp_path / "host")
    keygen("-q", "-t", "ed25519", "-N", "", "-f", tmp_path / "id")
    keygen("-q", "-t", "ed25519", "-N", "", "-f", tmp_path / "other")
    common = f"AuthorizedKeysFile {tmp_path / 'id.pub'}\nLogLevel {level}\n"
    # (sshd's "Close session" depends on which end closes first: not compared)
    kinds = ("Accepted publickey", "Accepted key", "Failed publickey", "Starting session")

    def seen(log: str) -> list[str]:
        return sorted({k for k in kinds for line in log.splitlines() if line.startswith(k)})

    (tmp_path / "ours").mkdir()
    ours = start_pysshd(tmp_path / "ours", f"HostKey {tmp_path / 'host'}\n" + common)
    try:
        assert ours.ssh("true", identity="../id").returncode == 0
        assert ours.ssh("true", identity="../other").returncode == 255
        time.sleep(0.3)
        our_kinds = seen(ours.log_text())
    finally:
        ours.stop()
    assert ("Starting session" in our_kinds) is (level == "VERBOSE"), ours.log_text()
    if not (ROOT and USER == "root"):
        return
    real = start_sshd(tmp_path / "sshd", common, host_key=tmp_path / "host")
    try:
        assert real.ssh("true", identity=tmp_path / "id").returncode == 0
        assert real.ssh("true", identity=tmp_path / "other").returncode == 255
        time.sleep(0.3)
        assert our_kinds == seen(real.log_text())
    finally:
        real.stop()


# -- -d: one connection in the foreground; AddressFamily and ListenAddress ---------------


def _config(directory: Path, port: int, lines: str) -> Path:
    config = directory / "sshd_config"
    config.write_text(f"Port {port}\n{lines}\nHostKey {directory / 'host'}\n"
                      f"AuthorizedKeysFile {directory / 'id.pub'}\nStrictModes no\n"
                      f"PidFile {directory / 'pid'}\n")
    return config


def _debug_run(cmd: list[str], directory: Path, address: str,
               env: dict[str, str] | None = None) -> tuple[list[str], int | None, str]:
    """Start ``cmd`` (a server with -d), log in once to ``address`` with the real ssh;
    return its "Server listening" lines, its exit status once it has ended by itself
    (None if it had to be stopped) and the ssh's stdout (sshd -d's session also writes
    its debug lines to the client's stderr)."""
    log = directory / "debug.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                env=env)
    try:
        deadline = time.monotonic() + 20
        while b"Server listening on" not in log.read_bytes():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        time.sleep(0.2)  # every listening socket is bound
        port = re.search(r"^Port (\d+)$", (directory / "sshd_config").read_text(), re.M)
        assert port is not None
        done = run([tool_path("ssh"), "-F", "/dev/null", "-p", port.group(1), "-o",
                    "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o",
                    "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                    "-i", str(directory / "id"), f"{USER}@{address}", "echo one"],
                   env={**pysshd_env(), "HOME": str(directory)}, timeout=60)
        try:
            status: int | None = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            status = None
    finally:
        stop_process(proc)
    text = log.read_bytes().decode(errors="replace")
    listening = [line.replace(port.group(1), "PORT") for line in text.split("\n")
                 if "Server listening on" in line]
    return listening, status, done.stdout


FAMILIES = [
    ("AddressFamily inet\nListenAddress localhost", "127.0.0.1"),
    ("AddressFamily inet6\nListenAddress ::1", "::1"),
    ("AddressFamily any\nListenAddress ::1\nListenAddress 127.0.0.1", "127.0.0.1"),
]


@pytest.mark.parametrize(("lines", "address"), FAMILIES, ids=["inet", "inet6", "any"])
def test_debug_mode_serves_one_connection(tmp_path: Path, lines: str, address: str) -> None:
    if address == "::1" and not socket.has_ipv6:
        pytest.skip("no IPv6")
    keygen("-q", "-t", "ed25519", "-N", "", "-f", tmp_path / "host")
    keygen("-q", "-t", "ed25519", "-N", "", "-f", tmp_path / "id")
    ours_dir = tmp_path / "pysshd"
    ours_dir.mkdir()
    for name in ("host", "id", "id.pub"):
        (ours_dir / name).write_bytes((tmp_path / name).read_bytes())
        (ours_dir / name).chmod(0o600)
    config = _config(ours_dir, free_port(), lines + "\nPerSourcePenalties no")
    ours, status, output = _debug_run([*PYSSHD, "-d", "-f", str(config)], ours_dir, address,
                                      env=pysshd_env())
    assert output == "one\n"
    assert status is not None, "pysshd -d did not exit after its connection"
    assert not (ours_dir / "pid").exists()  # sshd -d writes no pid file either
    debug_lines = (ours_dir / "debug.log").read_text(errors="replace")
    assert "debug1: " in debug_lines
    if not ROOT:
        return
    real_dir = tmp_path / "sshd"
    real_dir.mkdir()
    for name in ("host", "id", "id.pub"):
        (real_dir / name).write_bytes((tmp_path / name).read_bytes())
        (real_dir / name).chmod(0o600)
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    config = _config(real_dir, free_port(), lines)
    theirs, real_status, output = _debug_run([sshd_path(), "-d", "-f", str(config)],
                                             real_dir, address)
    assert output == "one\n"
    assert real_status is not None
    assert sorted(ours) == sorted(theirs)


@pytest.mark.parametrize("lines", [
    "AddressFamily inet\nListenAddress ::1", "AddressFamily inet6\nListenAddress 127.0.0.1",
    "AddressFamily bogus", "ListenAddress no-such-host.invalid"])
def test_address_family_errors_as_sshd(tmp_path: Path, lines: str) -> None:
    keygen("-q", "-t", "ed25519", "-N", "", "-f", tmp_path / "host")
    (tmp_path / "id.pub").write_text("")
    config = _config(tmp_path, 2222, lines)
    ours = run([*PYSSHD, "-t", "-f", str(config)], env=pysshd_env())
    theirs = run([sshd_path(), "-t", "-f", str(config)])
    assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr)
    assert ours.returncode == 255


def _listening_line(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> bytes:
    """Run a server in the foreground until its log file says it listens; that line."""
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            found = re.search(rb"Server listening on [^\n]*\n",
                              log.read_bytes() if log.exists() else b"")
            if found is not None:
                return found.group(0)
            time.sleep(0.05)
        raise AssertionError(proc.stderr.read() if proc.stderr and proc.poll() else b"")
    finally:
        stop_process(proc)


def test_log_file_lines_as_sshd(tmp_path: Path) -> None:
    """-E appends sshd's stderr lines (CR LF endings) to the file."""
    keygen("-q", "-t", "ed25519", "-N", "", "-f", tmp_path / "host")
    (tmp_path / "id.pub").write_text("")
    port = free_port()
    config = _config(tmp_path, port, "ListenAddress 127.0.0.1\nPerSourcePenalties no")
    ours = _listening_line([*PYSSHD, "-D", "-E", str(tmp_path / "ours.log"), "-f",
                            str(config)], tmp_path / "ours.log", env=pysshd_env())
    assert ours == f"Server listening on 127.0.0.1 port {port}.\r\n".encode()
    if not ROOT:
        return
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    config = _config(tmp_path, port, "ListenAddress 127.0.0.1")
    theirs = _listening_line([sshd_path(), "-D", "-E", str(tmp_path / "theirs.log"), "-f",
                              str(config)], tmp_path / "theirs.log")
    assert ours == theirs


# -- syslog ------------------------------------------------------------------------------


def _namespace_ok() -> str | None:
    if not ROOT:
        return "needs root: a private mount namespace with a test socket at /dev/log"
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "needs unshare(1) and mount(8)"
    probe = run(["unshare", "-m", "sh", "-c", "mount --make-rprivate / && true"])
    if probe.returncode != 0:
        return f"cannot make a mount namespace here: {probe.stderr.strip()}"
    return None


def _in_namespace(dev: Path, cmd: list[str]) -> list[str]:
    """``cmd`` where /dev is ``dev`` (its null the real /dev/null, its log our socket)."""
    script = (f"mount --make-rprivate / && mount --bind /dev/null {dev}/null && "
              f"mount --bind {dev} /dev && exec \"$@\"")
    return ["unshare", "-m", "sh", "-c", script, "sh", *cmd]


def _messages(sock: socket.socket, until: str, timeout: float = 20) -> list[str]:
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while not any(until in m for m in got) and time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            got.append(sock.recv(65536).decode(errors="replace").rstrip("\0\n"))
        except TimeoutError:
            break
    return got


def test_syslog_without_e_as_sshd(tmp_path: Path) -> None:
    reason = _namespace_ok()
    if reason is not None:
        pytest.skip(reason)
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "null").touch()
    keygen("-q", "-t", "ed25519", "-N", "", "-f", tmp_path / "host")
    (tmp_path / "id.pub").write_text("")
    port = free_port()
    config = _config(tmp_path, port, "ListenAddress 127.0.0.1\nPerSourcePenalties no")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as log:
        log.bind(str(dev / "log"))
        # no -D, no -e: pysshd goes to the background and logs through syslog
        started = run(_in_namespace(dev, [*PYSSHD, "-f", str(config)]), env=pysshd_env())
        assert started.returncode == 0, started.stderr
        daemon = 0
        try:
            deadline = time.monotonic() + 20
            while not (tmp_path / "pid").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            daemon = int((tmp_path / "pid").read_text())
            ours = _messages(log, "Server listening on")
            # a connection's own process logs with its own pid
            run([tool_path("ssh"), "-F", "/dev/null", "-p", str(port), "-o", "BatchMode=yes",
                 "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                 "-o", "IdentityFile=none", "pyssh-no-such-user@127.0.0.1", "true"],
                env={**pysshd_env(), "HOME": str(tmp_path)})
            ours += _messages(log, "Invalid user pyssh-no-such-user")
        finally:
            if daemon:
                os.kill(daemon, 15)
        listening = [m for m in ours if "Server listening on" in m]
        assert listening == [f"<38>pysshd[{daemon}]: Server listening on 127.0.0.1 port "
                             f"{port}."], ours
        invalid = [m for m in ours if "Invalid user pyssh-no-such-user" in m]
        assert invalid, ours
        child = re.match(r"<38>pysshd\[(\d+)\]: Invalid user", invalid[0])
        assert child is not None and int(child.group(1)) != daemon, invalid
        # the real sshd (-D without -e: syslog too) sends the same priority and text
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        real_port = free_port()
        config = _config(tmp_path, real_port, "ListenAddress 127.0.0.1")
        proc = subprocess.Popen(_in_namespace(dev, [sshd_path(), "-D", "-f", str(config)]),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            theirs = _messages(log, "Server listening on")
        finally:
            stop_process(proc)
    line = next(m for m in theirs if "Server listening on" in m)
    match = re.fullmatch(r"<(\d+)>.*sshd\[\d+\]: (.*)", line)
    assert match is not None, line
    assert match.group(1) == "38"
    assert match.group(2) == f"Server listening on 127.0.0.1 port {real_port}."
