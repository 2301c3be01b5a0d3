"""Authentication policy of pysshd, judged by the real OpenSSH ``ssh`` client.

One pysshd serves the whole module. Its config gives each test its own ``Match Address``
block, and the client picks the block by binding its source address (``BindAddress
127.0.0.N``), so AllowUsers, DenyUsers, ForceCommand, PermitRootLogin,
AuthenticationMethods, AuthorizedPrincipalsFile, AuthorizedKeysCommand and Banner are all
tried against one server. StrictModes (global only) gets a second, small server.

Password and keyboard-interactive logins need a user with a password: as root the
module creates ``pyssh-t-<random>`` (useradd + chpasswd) and removes it in the finaliser;
the real ssh reads the password from an SSH_ASKPASS script. Without root those tests skip.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import run, tool_path
from tests.interop.pysshd import USER, PysshdServer, keygen, pysshd_env, start_pysshd
from tests.interop.sshd import SshdServer

ROOT = os.geteuid() == 0
PASSWORD = "Pw-" + secrets.token_hex(8)


@dataclass
class Env:
    server: PysshdServer
    test_user: str | None
    askpass: Path
    safe_dir: Path | None


def _ssh(server: PysshdServer, *remote: str, source: str = "127.0.0.1", user: str = USER,
         identity: str | None = "id", certificate: str | None = None,
         options: tuple[str, ...] = (), password: bool = False,
         log_level: str = "ERROR") -> subprocess.CompletedProcess[str]:
    """The real ssh from ``source`` to the module's pysshd."""
    client = server.directory / "client"
    cmd = [tool_path("ssh"), "-F", "/dev/null", "-p", str(server.port),
           "-o", f"BindAddress={source}", "-o", "IdentitiesOnly=yes",
           "-o", "ConnectTimeout=20", "-o", f"UserKnownHostsFile={client / 'known_hosts'}",
           "-o", "StrictHostKeyChecking=accept-new", "-o", f"LogLevel={log_level}",
           "-o", "NumberOfPasswordPrompts=1"]
    env = pysshd_env()
    env["HOME"] = str(client)
    if password:
        env.update(SSH_ASKPASS=str(server.directory / "askpass"), SSH_ASKPASS_REQUIRE="force",
                   DISPLAY=":0")
    else:
        cmd += ["-o", "BatchMode=yes"]
    if identity is None:
        cmd += ["-o", "PubkeyAuthentication=no"]
    else:
        cmd += ["-i", str(server.key(identity))]
    if certificate is not None:
        cmd += ["-o", f"CertificateFile={server.key(certificate)}"]
    for option in options:
        cmd += ["-o", option]
    return run([*cmd, f"{user}@127.0.0.1", *remote], env=env, timeout=60)


def _make_user() -> str:
    name = f"pyssh-t-{secrets.token_hex(3)}"
    done = run(["useradd", "-m", "-s", "/bin/sh", name])
    assert done.returncode == 0, done.stderr
    done = run(["chpasswd"], input=f"{name}:{PASSWORD}\n")
    assert done.returncode == 0, done.stderr
    return name


def _remove_user(name: str) -> None:
    run(["userdel", "-r", name])


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    d = tmp_path_factory.mktemp("pysshd-auth")
    for name in ("host", "id", "forced", "ca", "certified", "command", "usercert"):
        keygen("-q", "-t", "ed25519", "-N", "", "-C", name, "-f", d / name)
    keygen("-q", "-s", d / "ca", "-I", "principal-test", "-n", "ops,deploy", "-V", "-5m:+1h",
           d / "certified.pub")
    # the user's name (and root, for the real sshd's comparison) as principals
    keygen("-q", "-s", d / "ca", "-I", "ca-algorithm-test", "-n", ",".join({USER, "root"}),
           "-V", "-5m:+1h", d / "usercert.pub")
    (d / "authorized_keys").write_text(
        (d / "id.pub").read_text() + 'command="echo key-forced" ' + (d / "forced.pub").read_text())
    (d / "principals").mkdir()
    (d / "banner").write_text("Welcome to the pysshd banner test\n")
    askpass = d / "askpass"
    askpass.write_text(f"#!/bin/sh\necho '{PASSWORD}'\n")
    askpass.chmod(0o755)
    test_user = _make_user() if ROOT else None
    safe_dir: Path | None = None
    server: PysshdServer | None = None
    try:
        command_block = ""
        if ROOT:
            # AuthorizedKeysCommand must live where only root can write, all the way up
            safe_dir = Path(tempfile.mkdtemp(prefix="pyssh-t-", dir="/run"))
            safe_dir.chmod(0o755)
            script = safe_dir / "keys-command"
            script.write_text(
                "#!/bin/sh\n"
                "[ \"$(id -un)\" = nobody ] || exit 1\n"
                f"[ \"$1\" = {USER} ] || exit 1\n"
                f"[ \"$3\" = {(d / 'id.pub').read_text().split()[1]} ] || exit 0\n"
                "echo \"$2 $3 from-command\"\n")
            script.chmod(0o755)
            command_block = (f"Match Address 127.0.0.7\n  AuthorizedKeysFile none\n"
                             f"  AuthorizedKeysCommand {script} %u %t %k\n"
                             "  AuthorizedKeysCommandUser nobody\n")
        user_block = ""
        if test_user is not None:
            user_block = (f"Match User {test_user} Address 127.0.0.8\n"
                          "  ForceCommand echo match-user\n")
        config = (
            f"HostKey {d / 'host'}\nAuthorizedKeysFile {d}/authorized_keys\n"
            f"TrustedUserCAKeys {d / 'ca.pub'}\nLogLevel VERBOSE\nLoginGraceTime 30\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "Match Address 127.0.0.2\n  AllowUsers nobody-pyssh root@10.0.0.0/8\n"
            f"Match Address 127.0.0.3\n  DenyUsers {USER}@127.0.0.3\n"
            "Match Address 127.0.0.4\n  ForceCommand echo forced-by-match\n"
            "Match Address 127.0.0.5\n  PasswordAuthentication yes\n"
            "  AuthenticationMethods publickey,password\n"
            f"Match Address 127.0.0.6\n  AuthorizedPrincipalsFile {d}/principals/%u\n"
            + command_block + user_block +
            f"Match Address 127.0.0.9\n  Banner {d / 'banner'}\n"
            "Match Address 127.0.0.10\n  PermitRootLogin no\n"
            "Match Address 127.0.0.11\n  PermitRootLogin forced-commands-only\n"
            "Match Address 127.0.0.12\n  PasswordAuthentication yes\n"
            "  KbdInteractiveAuthentication yes\n"
            "Match Address 127.0.0.13\n  CASignatureAlgorithms rsa-sha2-512\n"
        )
        server = start_pysshd(d, config)
        yield Env(server, test_user, askpass, safe_dir)
    finally:
        if server is not None:
            server.stop()
        if test_user is not None:
            _remove_user(test_user)
        if safe_dir is not None:
            shutil.rmtree(safe_dir, ignore_errors=True)


def _log(env: Env, text: str) -> bool:
    return text in env.server.log_text()


def test_plain_key_login(env: Env) -> None:
    done = _ssh(env.server, "echo ok")
    assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr + env.server.log_text()


def test_allow_users_refuses_unlisted(env: Env) -> None:
    done = _ssh(env.server, "true", source="127.0.0.2")
    assert done.returncode == 255
    assert "Permission denied" in done.stderr
    assert _log(env, f"User {USER} from 127.0.0.2 not allowed because not listed in "
                     "AllowUsers")


def test_deny_users_user_at_host(env: Env) -> None:
    done = _ssh(env.server, "true", source="127.0.0.3")
    assert done.returncode == 255
    assert _log(env, f"User {USER} from 127.0.0.3 not allowed because listed in DenyUsers")


def test_refused_user_and_unknown_user_look_alike(env: Env) -> None:
    refused = _ssh(env.server, "true", source="127.0.0.3")
    unknown = _ssh(env.server, "true", user="no-such-user-pyssh")
    bad_key = _ssh(env.server, "true", identity="ca")
    assert refused.returncode == unknown.returncode == bad_key.returncode == 255
    lines = {r.stderr.split(": ", 1)[1] for r in (refused, unknown, bad_key)}
    assert lines == {"Permission denied (publickey).\r\n"}


def test_force_command_from_match_address(env: Env) -> None:
    done = _ssh(env.server, "echo asked", source="127.0.0.4")
    assert (done.returncode, done.stdout) == (0, "forced-by-match\n"), done.stderr


def test_banner_shown_by_ssh(env: Env) -> None:
    done = _ssh(env.server, "true", source="127.0.0.9", log_level="INFO")
    assert done.returncode == 0, done.stderr
    assert "Welcome to the pysshd banner test" in done.stderr
    quiet = _ssh(env.server, "true")
    assert "Welcome" not in quiet.stderr


def test_authorized_principals_file(env: Env) -> None:
    principals = env.server.directory / "principals" / USER
    principals.write_text("# ops team\nsomeone-else\n")
    done = _ssh(env.server, "echo cert", source="127.0.0.6", identity="certified",
                certificate="certified-cert.pub")
    assert done.returncode == 255, "no principal listed: refused"
    assert _log(env, "Certificate does not contain an authorized principal")
    principals.write_text('command="echo via-principals" deploy\n')
    done = _ssh(env.server, "echo cert", source="127.0.0.6", identity="certified",
                certificate="certified-cert.pub")
    assert (done.returncode, done.stdout) == (0, "via-principals\n"), \
        done.stderr + env.server.log_text()
    # without AuthorizedPrincipalsFile the user name must be a principal: it is not
    done = _ssh(env.server, "true", identity="certified", certificate="certified-cert.pub")
    assert done.returncode == 255


def _cert_algorithm_lines(log: str) -> list[str]:
    return [line.removesuffix(" [preauth]") for line in log.splitlines()
            if "certificate signature algorithm" in line]


def test_ca_signature_algorithms_refuses_other_ca_signatures(
        env: Env, sshd_factory: Callable[..., SshdServer]) -> None:
    """CASignatureAlgorithms (here from a Match block) without the CA's signature
    algorithm: the certificate is refused before any key file is read, with sshd's log
    line (compared with the real sshd's, as root)."""
    done = _ssh(env.server, "echo cert-ok", identity="usercert",
                certificate="usercert-cert.pub")
    assert (done.returncode, done.stdout) == (0, "cert-ok\n"), done.stderr
    done = _ssh(env.server, "echo cert-ok", source="127.0.0.13", identity="usercert",
                certificate="usercert-cert.pub")
    assert done.returncode == 255, done.stdout
    ours = _cert_algorithm_lines(env.server.log_text())
    assert ours, env.server.log_text()
    if not ROOT:
        return
    d = env.server.directory
    real = sshd_factory(f"CASignatureAlgorithms rsa-sha2-512\nTrustedUserCAKeys {d / 'ca.pub'}\n")
    done = real.ssh("true", identity=d / "usercert", certificate=d / "usercert-cert.pub")
    assert done.returncode == 255
    theirs = _cert_algorithm_lines(real.log_text())
    assert theirs, real.log_text()
    assert ours[-1] == theirs[-1]


def test_permit_root_login(env: Env) -> None:
    if USER != "root":
        pytest.skip("needs root: PermitRootLogin applies to uid 0")
    done = _ssh(env.server, "true", source="127.0.0.10")
    assert done.returncode == 255
    assert _log(env, "ROOT LOGIN REFUSED FROM 127.0.0.10 port")
    done = _ssh(env.server, "true", source="127.0.0.11")
    assert done.returncode == 255
    done = _ssh(env.server, "echo x", source="127.0.0.11", identity="forced")
    assert (done.returncode, done.stdout) == (0, "key-forced\n"), done.stderr
    assert _log(env, "Root login accepted for forced command.")


def test_authorized_keys_command(env: Env) -> None:
    if not ROOT:
        pytest.skip("needs root: AuthorizedKeysCommand must be root-owned and run as nobody")
    done = _ssh(env.server, "echo from-cmd", source="127.0.0.7")
    assert (done.returncode, done.stdout) == (0, "from-cmd\n"), \
        done.stderr + env.server.log_text()
    done = _ssh(env.server, "true", source="127.0.0.7", identity="command")
    assert done.returncode == 255  # the command vouches only for the "id" key


def test_authentication_methods_publickey_then_password(env: Env) -> None:
    if env.test_user is None:
        pytest.skip("needs root: creates a user with a password")
    user = env.test_user
    done = _ssh(env.server, "id -un", source="127.0.0.5", user=user, password=True,
                options=("PreferredAuthentications=publickey,password",))
    if done.returncode != 0 and "setuid" in env.server.log_text():
        pytest.skip("root mode (another user's session) not available")
    assert (done.returncode, done.stdout) == (0, f"{user}\n"), \
        done.stderr + env.server.log_text()
    log = env.server.log_text()
    assert f"Partial publickey for {user} from 127.0.0.5" in log
    assert f"Accepted password for {user} from 127.0.0.5" in log
    # the key alone is not enough
    done = _ssh(env.server, "true", source="127.0.0.5", user=user)
    assert done.returncode == 255


@pytest.mark.parametrize("method", ["password", "keyboard-interactive"])
def test_password_methods(env: Env, method: str) -> None:
    if env.test_user is None:
        pytest.skip("needs root: creates a user with a password")
    user = env.test_user
    done = _ssh(env.server, "id -un", source="127.0.0.12", user=user, identity=None,
                password=True, options=(f"PreferredAuthentications={method}",))
    assert (done.returncode, done.stdout) == (0, f"{user}\n"), \
        done.stderr + env.server.log_text()
    assert f"Accepted {method} for {user} from 127.0.0.12" in env.server.log_text()


def test_wrong_password_and_unknown_user_alike(env: Env) -> None:
    if env.test_user is None:
        pytest.skip("needs root: creates a user with a password")
    env.askpass.write_text("#!/bin/sh\necho wrong-password\n")
    try:
        bad = _ssh(env.server, "true", source="127.0.0.12", user=env.test_user,
                   identity=None, password=True,
                   options=("PreferredAuthentications=password",))
        unknown = _ssh(env.server, "true", source="127.0.0.12", user="no-such-pyssh-user",
                       identity=None, password=True,
                       options=("PreferredAuthentications=password",))
    finally:
        env.askpass.write_text(f"#!/bin/sh\necho '{PASSWORD}'\n")
    assert bad.returncode == unknown.returncode == 255
    assert bad.stderr.split(": ", 1)[1] == unknown.stderr.split(": ", 1)[1]
    assert f"Failed password for {env.test_user} from 127.0.0.12" in env.server.log_text()
    assert "Failed password for invalid user no-such-pyssh-user" in env.server.log_text()


def test_match_user_force_command(env: Env) -> None:
    if env.test_user is None:
        pytest.skip("needs root: creates a user")
    done = _ssh(env.server, "echo asked", source="127.0.0.8", user=env.test_user)
    assert (done.returncode, done.stdout) == (0, "match-user\n"), \
        done.stderr + env.server.log_text()


def test_check_password_directly(env: Env) -> None:
    if env.test_user is None:
        pytest.skip("needs root: creates a user with a password")
    from protocol.password import check_password

    assert check_password(env.test_user, PASSWORD)
    assert not check_password(env.test_user, PASSWORD + "x")
    assert not check_password("no-such-pyssh-user", PASSWORD)
    assert check_password(env.test_user, PASSWORD, use_pam=True)
    assert not check_password(env.test_user, "", use_pam=False)


def test_strict_modes_refuses_world_writable(tmp_path: Path) -> None:
    """StrictModes yes (global only): files under the world-writable /tmp are refused
    with sshd's log line; StrictModes no (pysshd.py's default for tests) accepts them."""
    keygen("-q", "-t", "ed25519", "-N", "", "-f", tmp_path / "host")
    keygen("-q", "-t", "ed25519", "-N", "", "-f", tmp_path / "id")
    (tmp_path / "authorized_keys").write_text((tmp_path / "id.pub").read_text())
    server = start_pysshd(tmp_path, f"HostKey {tmp_path / 'host'}\nStrictModes yes\n"
                                    f"AuthorizedKeysFile {tmp_path}/authorized_keys\n"
                                    "LogLevel VERBOSE\nPasswordAuthentication no\n"
                                    "KbdInteractiveAuthentication no\n")
    try:
        done = _ssh(server, "true")
        assert done.returncode == 255
        assert "Authentication refused: bad ownership or modes for directory /tmp" \
            in server.log_text()
    finally:
        server.stop()


def test_keyboard_interactive_with_pam(env: Env, tmp_path: Path) -> None:
    """UsePAM yes (global only, so a server of its own): the "sshd" PAM service checks
    the password given at the keyboard-interactive prompt."""
    if env.test_user is None:
        pytest.skip("needs root: creates a user with a password")
    if not Path("/etc/pam.d/sshd").exists():
        pytest.skip("no PAM service file /etc/pam.d/sshd")
    pytest.importorskip("pam", reason="python-pam not installed")
    keygen("-q", "-t", "ed25519", "-N", "", "-f", tmp_path / "host")
    (tmp_path / "askpass").write_text(env.askpass.read_text())
    (tmp_path / "askpass").chmod(0o755)
    server = start_pysshd(tmp_path, f"HostKey {tmp_path / 'host'}\nUsePAM yes\n"
                                    "PasswordAuthentication no\nLogLevel VERBOSE\n")
    try:
        done = _ssh(server, "id -un", user=env.test_user, identity=None, password=True,
                    options=("PreferredAuthentications=keyboard-interactive",))
        assert (done.returncode, done.stdout) == (0, f"{env.test_user}\n"), \
            done.stderr + server.log_text()
        assert f"Accepted keyboard-interactive/pam for {env.test_user}" in server.log_text()
        (tmp_path / "askpass").write_text("#!/bin/sh\necho wrong\n")
        done = _ssh(server, "true", user=env.test_user, identity=None, password=True,
                    options=("PreferredAuthentications=keyboard-interactive",))
        assert done.returncode == 255
        assert f"Failed keyboard-interactive/pam for {env.test_user}" in server.log_text()
    finally:
        server.stop()
