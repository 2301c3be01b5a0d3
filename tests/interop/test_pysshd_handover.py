"""pysshd as root hands the connection over after authentication (protocol/privsep.py):
the network child passes the socket and the transport state to the user's process and
exits; the user's process encrypts, decrypts and rekeys itself (the monitor still signs).

The real ``ssh`` reads a 10 MiB file intact after login for each cipher family (AES-CTR
with an -etm MAC, AES-GCM, chacha20-poly1305) and with zlib@openssh.com compression, once
with the default rekey limit and once rekeying every MiB (``RekeyLimit=1M``), and the
network child is gone while the session runs.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import tool_path
from tests.interop.pysshd import PysshdServer, keygen, pysshd_env, start_pysshd
from tests.interop.users import temporary_user

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root: pysshd's root mode and useradd")

SIZE = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def user() -> Iterator[pwd.struct_passwd]:
    with temporary_user() as made:
        yield made


@pytest.fixture(scope="module")
def payload(user: pwd.struct_passwd) -> tuple[Path, str]:
    """A 10 MiB file of random bytes in the user's home, and its SHA-256."""
    path = Path(user.pw_dir) / "payload"
    data = os.urandom(SIZE)
    path.write_bytes(data)
    os.chown(path, user.pw_uid, user.pw_gid)
    return path, hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory,
           user: pwd.struct_passwd) -> Iterator[PysshdServer]:
    d = tmp_path_factory.mktemp("pysshd-handover")
    for name in ("host", "id"):
        keygen("-q", "-t", "ed25519", "-N", "", "-C", name, "-f", d / name)
    ssh_dir = Path(user.pw_dir) / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text((d / "id.pub").read_text())
    for path in (ssh_dir, ssh_dir / "authorized_keys"):
        os.chown(path, user.pw_uid, user.pw_gid)
    srv = start_pysshd(d, f"HostKey {d / 'host'}\nLogLevel VERBOSE\nLoginGraceTime 30\n"
                          "Ciphers aes256-ctr,aes128-gcm@openssh.com,"
                          "chacha20-poly1305@openssh.com\n"
                          "MACs hmac-sha2-256-etm@openssh.com\n")
    yield srv
    srv.stop()


def _ssh_cmd(server: PysshdServer, user: str, *options: str) -> list[str]:
    client = server.directory / "client"
    cmd = [tool_path("ssh"), "-F", "/dev/null", "-p", str(server.port),
           "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=20",
           "-o", f"UserKnownHostsFile={client / 'known_hosts'}",
           "-o", "StrictHostKeyChecking=accept-new", "-o", "LogLevel=ERROR",
           "-i", str(server.key("id"))]
    for option in options:
        cmd += ["-o", option]
    return [*cmd, f"{user}@127.0.0.1"]


def _env(server: PysshdServer) -> dict[str, str]:
    env = pysshd_env()
    env["HOME"] = str(server.directory / "client")
    return env


SUITES = [
    ("aes256-ctr", "hmac-sha2-256-etm@openssh.com", False),
    ("aes128-gcm@openssh.com", None, False),
    ("chacha20-poly1305@openssh.com", None, False),
    ("chacha20-poly1305@openssh.com", None, True),
    ("aes256-ctr", "hmac-sha2-256-etm@openssh.com", True),
]


@pytest.mark.parametrize("rekey", [False, True], ids=["keys", "rekey-1M"])
@pytest.mark.parametrize(("cipher", "mac", "compress"), SUITES,
                         ids=[f"{c}{'-zlib' if z else ''}" for c, _, z in SUITES])
def test_transfer_after_handover(server: PysshdServer, user: pwd.struct_passwd,
                                 payload: tuple[Path, str], cipher: str, mac: str | None,
                                 compress: bool, rekey: bool) -> None:
    options = [f"Ciphers={cipher}", f"Compression={'yes' if compress else 'no'}"]
    if mac is not None:
        options.append(f"MACs={mac}")
    if rekey:
        options.append("RekeyLimit=1M")
    path, digest = payload
    # the upload direction crosses the hand-over too: stdin is hashed remotely
    cmd = [*_ssh_cmd(server, user.pw_name, *options),
           f"cat {path}; sha256sum | cut -d' ' -f1 >&2"]
    done = subprocess.run(cmd, input=path.read_bytes(), capture_output=True,
                          env=_env(server), timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace") + server.log_text()
    assert len(done.stdout) == SIZE
    assert hashlib.sha256(done.stdout).hexdigest() == digest
    assert done.stderr.decode().strip() == digest


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def _uid(pid: int) -> int:
    """The real uid (/proc/PID itself is root's once a process is not dumpable)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


def test_network_child_is_gone_after_login(server: PysshdServer,
                                           user: pwd.struct_passwd) -> None:
    """While a session runs, the connection's monitor (root) has one child left: the
    user's process. The unprivileged network child exited at the hand-over."""
    before = set(_children(server.proc.pid))
    proc = subprocess.Popen([*_ssh_cmd(server, user.pw_name), "echo ready; sleep 30"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=_env(server))
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        monitors = [p for p in _children(server.proc.pid) if p not in before]
        assert len(monitors) == 1
        deadline = time.monotonic() + 5
        while True:
            kids = _children(monitors[0])
            if len(kids) == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(kids) == 1, [(k, _uid(k)) for k in kids]
        assert _uid(kids[0]) == user.pw_uid
    finally:
        proc.kill()
        proc.wait()
