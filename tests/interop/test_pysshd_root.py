"""pysshd as root: any user logs in, the session runs as that user, and the network-facing
pre-auth process runs unprivileged and chrooted (privilege separation).

A test user is created for the module (``useradd -m``) and removed in the finaliser
(``userdel -r``); the real ``ssh`` logs in with a key from the user's own
~/.ssh/authorized_keys. Root's key sits in a temporary AuthorizedKeysFile (%u), so
PermitRootLogin no is what refuses it (real ~root is never touched).
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.sshd_config import ServerConfig
from tests.interop.pysshd import PysshdServer, keygen, start_pysshd
from tests.interop.sshd import free_port
from tests.interop.users import temporary_user

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root: pysshd's root mode and useradd")


@pytest.fixture(scope="module")
def user() -> Iterator[pwd.struct_passwd]:
    with temporary_user("/bin/bash") as made:
        yield made


@pytest.fixture(scope="module")
def alt_port() -> int:
    """A second port of the module's pysshd, with a Match LocalPort block."""
    return free_port()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, user: pwd.struct_passwd,
           alt_port: int) -> Iterator[PysshdServer]:
    d = tmp_path_factory.mktemp("pysshd-root")
    for name in ("host", "id", "root"):
        keygen("-q", "-t", "ed25519", "-N", "", "-C", name, "-f", d / name)
    ssh_dir = Path(user.pw_dir) / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text((d / "id.pub").read_text())
    for path in (ssh_dir, ssh_dir / "authorized_keys"):
        os.chown(path, user.pw_uid, user.pw_gid)
    keys = d / "keys"
    keys.mkdir()
    (keys / "root").write_text((d / "root.pub").read_text())
    srv = start_pysshd(d, f"HostKey {d / 'host'}\n"
                          f"AuthorizedKeysFile .ssh/authorized_keys {keys}/%u\n"
                          "PermitRootLogin no\nLogLevel VERBOSE\nLoginGraceTime 30\n"
                          f"Port {alt_port}\nMatch LocalAddress 127.0.0.1 LocalPort {alt_port}\n"
                          f"  ForceCommand echo forced-for-local-port-{alt_port}\n")
    yield srv
    srv.stop()


def test_login_as_the_user(server: PysshdServer, user: pwd.struct_passwd) -> None:
    done = server.ssh("id -un; id -u; echo $HOME $SHELL $USER $LOGNAME; pwd",
                      user=user.pw_name)
    assert done.returncode == 0, done.stderr + server.log_text()
    assert done.stdout.splitlines() == [
        user.pw_name, str(user.pw_uid),
        f"{user.pw_dir} {user.pw_shell} {user.pw_name} {user.pw_name}", user.pw_dir]


def test_match_local_port_applies_in_root_mode(server: PysshdServer, alt_port: int,
                                              user: pwd.struct_passwd) -> None:
    """Match LocalAddress/LocalPort see the address the client connected to, though
    the monitor authenticates over a socketpair (privilege separation)."""
    other = dataclasses.replace(server, port=alt_port)
    done = other.ssh("echo not-forced", user=user.pw_name)
    assert (done.returncode, done.stdout) == (0, f"forced-for-local-port-{alt_port}\n"), \
        done.stderr + server.log_text()
    done = server.ssh("echo not-forced", user=user.pw_name)
    assert (done.returncode, done.stdout) == (0, "not-forced\n"), done.stderr


def test_session_has_the_users_groups_and_login_environment(
        server: PysshdServer, user: pwd.struct_passwd) -> None:
    done = server.ssh("id -G; id -g; echo $MAIL; echo $PATH; echo $SSH_CONNECTION",
                      user=user.pw_name)
    assert done.returncode == 0, done.stderr
    groups, gid, mail, path, connection = done.stdout.splitlines()
    assert sorted(map(int, groups.split())) == sorted(
        set(os.getgrouplist(user.pw_name, user.pw_gid)))
    assert int(gid) == user.pw_gid
    assert mail == f"/var/mail/{user.pw_name}"
    assert path.split(":")[:3] == ["/usr/local/bin", "/usr/bin", "/bin"]
    assert connection.split()[0] == "127.0.0.1"
    assert connection.split()[3] == str(server.port)


def test_files_are_created_as_the_user(server: PysshdServer, user: pwd.struct_passwd) -> None:
    done = server.ssh("touch made-by-session && stat -c '%U %G' made-by-session",
                      user=user.pw_name)
    assert done.returncode == 0, done.stderr
    made = Path(user.pw_dir) / "made-by-session"
    assert (made.stat().st_uid, made.stat().st_gid) == (user.pw_uid, user.pw_gid)


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry.name))
    return out


def _uids(pid: int) -> list[int]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return [int(x) for x in line.split()[1:]]
    raise AssertionError("no Uid line")


def test_preauth_child_is_unprivileged_and_chrooted(server: PysshdServer) -> None:
    unpriv = next((pw for name in ("sshd", "nobody")
                   for pw in pwd.getpwall() if pw.pw_name == name), None)
    assert unpriv is not None
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as stalled:
        assert stalled.recv(256).startswith(b"SSH-2.0-")  # the network child is up
        monitors = _children(server.proc.pid)
        assert monitors, "no connection process"
        net = [c for m in monitors for c in _children(m)]
        assert len(net) == 1, (monitors, net)
        assert _uids(net[0]) == [unpriv.pw_uid] * 4
        assert os.readlink(f"/proc/{net[0]}/root") == "/run/sshd"
        status = Path(f"/proc/{net[0]}/status").read_text()
        groups = next(line for line in status.splitlines() if line.startswith("Groups:"))
        assert groups.split()[1:] in ([], [str(unpriv.pw_gid)])
        # the monitor stays root
        assert _uids(monitors[0])[0] == 0


def test_root_login_refused_by_permit_root_login(server: PysshdServer) -> None:
    if "permit_root_login" not in ServerConfig.__dataclass_fields__:
        pytest.skip("PermitRootLogin not implemented")
    done = server.ssh("true", user="root", identity="root")
    assert done.returncode == 255
    assert "Permission denied" in done.stderr


def test_unknown_user_refused(server: PysshdServer) -> None:
    done = server.ssh("true", user="no-such-user-pysshd-root")
    assert done.returncode == 255
    assert "Permission denied" in done.stderr


def test_session_processes_end_with_the_connection(server: PysshdServer,
                                                    user: pwd.struct_passwd) -> None:
    done = server.ssh("true", user=user.pw_name)
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 10
    while _children(server.proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _children(server.proc.pid) == []
    owned = subprocess.run(["pgrep", "-u", user.pw_name], capture_output=True, text=True)
    assert owned.stdout == ""
