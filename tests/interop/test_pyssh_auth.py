"""pyssh's user authentication and connection set-up against a REAL sshd, each case
compared with the real ssh client run with the same arguments and environment.

Prompts are answered by an SSH_ASKPASS script (SSH_ASKPASS_REQUIRE=force) that logs each
prompt, so the prompts themselves (password, keyboard-interactive, key passphrase) are
compared with ssh's, as are stderr (banner, "Permission denied, please try again.", the
final "Permission denied (...)") and the exit status. A test user with a known password
is created (root only) and removed at the end of the module.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import helpers
from tests.agent.agentproc import AgentFactory, agent_factory
from tests.helpers import REPO_ROOT, run, tool_path
from tests.interop.pyadd_support import pyadd, ssh_add
from tests.interop.sshd import SshdServer, start_sshd

__all__ = ["agent_factory"]

PYSSH = [sys.executable, "-c",
         "from protocol.cli import pyssh_main; raise SystemExit(pyssh_main())"]
PASSWORD = "Pw-" + secrets.token_hex(6)
PASSPHRASE = "key passphrase"
BANNER = "Authorized use only.\nSecond line\n"

ASKPASS = """#!/bin/sh
printf '%s\\n' "$1" >> "$ASKPASS_LOG"
n=$(wc -l < "$ASKPASS_LOG")
sed -n "${n}p" "$ASKPASS_ANSWERS"
"""


@dataclass
class Env:
    user: str
    home: Path
    server: SshdServer  # password, keyboard-interactive (PAM), keys, certificates, banner
    tmp: Path
    key: Path  # authorized, no passphrase
    locked: Path  # authorized, encrypted with PASSPHRASE
    stranger: Path  # encrypted, not authorized
    certified: Path  # not authorized itself; its certificate is (TrustedUserCAKeys)
    known_hosts: Path


def keygen(*args: str) -> None:
    done = run([tool_path("ssh-keygen"), "-q", *args])
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    if os.geteuid() != 0:
        pytest.skip("needs root: creates a test user with a password")
    for tool in ("useradd", "userdel", "chpasswd"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    tmp = tmp_path_factory.mktemp("pyssh_auth")
    user = "pyssh-t-" + secrets.token_hex(4)
    made = run(["useradd", "-m", "-s", "/bin/sh", user])
    assert made.returncode == 0, made.stderr
    try:
        done = run(["chpasswd"], input=f"{user}:{PASSWORD}\n")
        assert done.returncode == 0, done.stderr
        home = Path(os.path.expanduser(f"~{user}"))
        keys = {name: tmp / name for name in ("id_plain", "id_locked", "id_stranger",
                                               "id_cert", "ca")}
        keygen("-t", "ed25519", "-N", "", "-C", "plain", "-f", str(keys["id_plain"]))
        keygen("-t", "ed25519", "-a", "2", "-N", PASSPHRASE, "-C", "locked",
               "-f", str(keys["id_locked"]))
        keygen("-t", "ed25519", "-a", "2", "-N", PASSPHRASE, "-f", str(keys["id_stranger"]))
        keygen("-t", "ed25519", "-N", "", "-f", str(keys["id_cert"]))
        keygen("-t", "ed25519", "-N", "", "-f", str(keys["ca"]))
        keygen("-s", str(keys["ca"]), "-I", "test", "-n", user, str(keys["id_cert"]) + ".pub")
        ssh_dir = home / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        authorized = ssh_dir / "authorized_keys"
        authorized.write_text(Path(f"{keys['id_plain']}.pub").read_text()
                              + Path(f"{keys['id_locked']}.pub").read_text())
        shutil.chown(ssh_dir, user, user)
        shutil.chown(authorized, user, user)
        (tmp / "banner").write_text(BANNER)
        # No PAM here (its failure delay would cost seconds); see test_keyboard_interactive.
        server = start_sshd(tmp / "sshd", "\n".join((
            "PasswordAuthentication yes", "AuthorizedKeysFile .ssh/authorized_keys",
            f"TrustedUserCAKeys {keys['ca']}.pub", f"Banner {tmp / 'banner'}")))
        host_pub = Path(f"{server.host_key}.pub").read_text()
        known_hosts = tmp / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{server.port} {host_pub}")
        try:
            yield Env(user, home, server, tmp, keys["id_plain"], keys["id_locked"],
                      keys["id_stranger"], keys["id_cert"], known_hosts)
        finally:
            server.stop()
    finally:
        run(["userdel", "-r", "-f", user])


class Askpass:
    """An SSH_ASKPASS program answering from a list and logging every prompt."""

    def __init__(self, directory: Path, name: str, answers: list[str]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.program = directory / f"askpass_{name}"
        self.program.write_text(ASKPASS)
        self.program.chmod(0o755)
        self.log = directory / f"prompts_{name}"
        self.answers = directory / f"answers_{name}"
        self.answers.write_text("".join(a + "\n" for a in answers))

    def environ(self) -> dict[str, str]:
        return {"SSH_ASKPASS": str(self.program), "SSH_ASKPASS_REQUIRE": "force",
                "ASKPASS_LOG": str(self.log), "ASKPASS_ANSWERS": str(self.answers)}

    def prompts(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


def base_env(home: Path, extra: dict[str, str]) -> dict[str, str]:
    child = {k: v for k, v in os.environ.items()
             if k not in ("SSH_AUTH_SOCK", "SSH_ASKPASS", "SSH_ASKPASS_REQUIRE", "DISPLAY",
                          "WAYLAND_DISPLAY")}
    child["HOME"] = str(home)
    child["PYTHONPATH"] = str(REPO_ROOT)
    child.update(extra)
    return child


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    prompts: list[str]


def both(env: Env, tmp_path: Path, name: str, args: list[str], answers: list[str],
         *, destination: str | None = None, extra_env: dict[str, str] | None = None,
         port: int | None = None) -> tuple[Outcome, Outcome]:
    """The real ssh and pyssh on the same arguments: (ssh's outcome, pyssh's)."""
    outcomes = []
    for tool in ("ssh", "pyssh"):
        askpass = Askpass(tmp_path / tool, name, answers)
        cmd = [tool_path("ssh")] if tool == "ssh" else list(PYSSH)
        cmd += ["-F", "/dev/null", "-p", str(port or env.server.port),
                "-o", f"UserKnownHostsFile={env.known_hosts}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
                *args, destination or f"{env.user}@127.0.0.1", "echo", "ok"]
        done = run(cmd, env=base_env(tmp_path, {**askpass.environ(), **(extra_env or {})}),
                   cwd=REPO_ROOT, timeout=60)
        outcomes.append(Outcome(done.returncode, done.stdout, done.stderr, askpass.prompts()))
    return outcomes[0], outcomes[1]


NO_KEYS = ["-o", "IdentityFile=none", "-o", "IdentitiesOnly=yes"]


def test_password(env: Env, tmp_path: Path) -> None:
    real, ours = both(env, tmp_path, "pw", [*NO_KEYS, "-o", "PreferredAuthentications=password"],
                      [PASSWORD])
    assert real.code == 0, real
    assert ours == real
    assert ours.prompts == [f"{env.user}@127.0.0.1's password: "]
    assert ours.stderr == BANNER


@pytest.mark.parametrize("level", ["INFO", "ERROR"])
def test_wrong_passwords_then_denied(env: Env, tmp_path: Path, level: str) -> None:
    real, ours = both(env, tmp_path, "wrong",
                      [*NO_KEYS, "-o", "PreferredAuthentications=password",
                       "-o", "NumberOfPasswordPrompts=2", "-o", f"LogLevel={level}"],
                      ["bad1", "bad2", "bad3"])
    assert real.code == 255
    assert ours == real
    assert "Permission denied, please try again." in ours.stderr


def another_server(env: Env, tmp_path: Path, config: str, *,
                   same_host_key: bool = True) -> SshdServer:
    """One more sshd (with the same host key, or its own), known in env.known_hosts."""
    server = start_sshd(tmp_path / "sshd_more", config,
                        host_key=env.server.host_key if same_host_key else None)
    host_pub = Path(f"{server.host_key}.pub").read_text()
    with env.known_hosts.open("a") as known:
        known.write(f"[127.0.0.1]:{server.port} {host_pub}")
    return server


def test_keyboard_interactive(env: Env, tmp_path: Path) -> None:
    server = another_server(env, tmp_path, "KbdInteractiveAuthentication yes\nUsePAM yes")
    try:
        real, ours = both(env, tmp_path, "kbd", NO_KEYS, [PASSWORD], port=server.port)
    finally:
        server.stop()
    if real.code != 0:
        pytest.skip(f"sshd's PAM keyboard-interactive does not work here: {real.stderr}")
    assert ours == real
    assert ours.prompts == [f"({env.user}@127.0.0.1) Password: "]


def test_batch_mode_and_quiet(env: Env, tmp_path: Path) -> None:
    real, ours = both(env, tmp_path, "batch", [*NO_KEYS, "-o", "BatchMode=yes"], [PASSWORD])
    assert real.code == 255 and real.prompts == []
    assert ours == real
    assert ours.stderr.endswith(
        f"{env.user}@127.0.0.1: Permission denied (publickey,password).\r\n")
    real, ours = both(env, tmp_path, "quiet", ["-q", *NO_KEYS, "-o", "BatchMode=yes"], [])
    assert ours == real and ours.stderr == ""


def test_encrypted_key_asked_only_when_accepted(env: Env, tmp_path: Path) -> None:
    args = ["-o", "IdentitiesOnly=yes", "-o", "PreferredAuthentications=publickey",
            "-i", str(env.stranger), "-i", str(env.locked)]
    real, ours = both(env, tmp_path, "enc", args, [PASSPHRASE])
    assert real.code == 0, real
    assert ours == real
    assert ours.prompts == [f"Enter passphrase for key '{env.locked}': "]
    # Refused keys are never decrypted; in batch mode nothing is asked at all.
    real, ours = both(env, tmp_path, "enc_batch", [*args, "-o", "BatchMode=yes"], [PASSPHRASE])
    assert real.code == 255 and real.prompts == []
    assert ours == real


def test_certificates(env: Env, tmp_path: Path) -> None:
    cert = Path(f"{env.certified}-cert.pub")
    # The implicit id-cert.pub beside the identity file.
    real, ours = both(env, tmp_path, "cert1",
                      ["-o", "IdentitiesOnly=yes", "-o", "PreferredAuthentications=publickey",
                       "-i", str(env.certified)], [])
    assert real.code == 0, real
    assert ours == real
    # CertificateFile naming a certificate kept apart from its key.
    elsewhere = tmp_path / "elsewhere.pub"
    elsewhere.write_text(cert.read_text())
    real, ours = both(env, tmp_path, "cert2",
                      ["-o", "IdentitiesOnly=yes", "-o", "PreferredAuthentications=publickey",
                       "-o", f"CertificateFile={elsewhere}", "-i", str(env.certified)], [])
    assert real.code == 0, real
    assert ours == real


def test_partial_success(env: Env, tmp_path: Path) -> None:
    server = another_server(env, tmp_path, "\n".join((
        "PasswordAuthentication yes", "AuthorizedKeysFile .ssh/authorized_keys",
        "AuthenticationMethods publickey,password")))
    try:
        real, ours = both(env, tmp_path, "2fa", ["-o", "IdentitiesOnly=yes", "-i", str(env.key)],
                          [PASSWORD], port=server.port)
    finally:
        server.stop()
    assert ours == real
    assert ours.prompts == real.prompts == [f"{env.user}@127.0.0.1's password: "]
    assert (ours.code, ours.stdout) == (real.code, real.stdout)


def test_proxy_command_through_another_sshd(env: Env, tmp_path: Path) -> None:
    """ProxyCommand: the real ssh -W through a second real sshd to the first."""
    jump = start_sshd(tmp_path / "jump", "AuthorizedKeysFile .ssh/authorized_keys",
                      host_key=env.server.host_key)
    try:
        proxy = (f"{tool_path('ssh')} -F /dev/null -p {jump.port} -i {env.key} "
                 f"-o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no "
                 f"-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -W %h:%p "
                 f"{env.user}@127.0.0.1")
        real, ours = both(env, tmp_path, "proxy",
                          ["-o", "IdentitiesOnly=yes", "-i", str(env.key), "-o", "BatchMode=yes",
                           "-o", f"ProxyCommand={proxy}"], [])
    finally:
        jump.stop()
    assert real.code == 0, real
    assert ours == real, ours


def test_proxy_jump(env: Env, tmp_path: Path) -> None:
    """ProxyJump: pyssh -W runs as the hop's ProxyCommand (through a second real sshd)."""
    forward = (REPO_ROOT / "protocol" / "forward_client.py")
    if not forward.exists():
        pytest.skip("-W (protocol/forward_client.py) is not there yet")
    jump = start_sshd(tmp_path / "jump", "AuthorizedKeysFile .ssh/authorized_keys",
                      host_key=env.server.host_key)
    try:
        host_pub = Path(f"{env.server.host_key}.pub").read_text()
        known = tmp_path / "known_jump"
        known.write_text(f"[127.0.0.1]:{env.server.port} {host_pub}"
                         f"[127.0.0.1]:{jump.port} {host_pub}")
        config = tmp_path / "config"
        config.write_text(f"Host *\n  IdentityFile {env.key}\n  IdentitiesOnly yes\n"
                          f"  BatchMode yes\n  UserKnownHostsFile {known}\n"
                          "  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n")
        results = []
        for cmd in ([tool_path("ssh")], PYSSH):
            done = run([*cmd, "-F", str(config), "-J", f"{env.user}@127.0.0.1:{jump.port}",
                        "-p", str(env.server.port), f"{env.user}@127.0.0.1", "echo", "ok"],
                       env=base_env(tmp_path, {}), cwd=REPO_ROOT, timeout=60)
            results.append((done.returncode, done.stdout, done.stderr))
    finally:
        jump.stop()
    assert results[0][0] == 0, results[0]
    assert results[1] == results[0]


def test_library_password(env: Env) -> None:
    """protocol.client.connect with a password (keyboard-interactive or password)."""
    import asyncio

    from protocol.client import accept_any_host_key, connect

    async def main() -> Any:
        async with await connect("127.0.0.1", env.server.port, username=env.user,
                                 known_host_check=accept_any_host_key,
                                 password=PASSWORD) as conn:
            return conn.auth.method, (await conn.run("echo hi")).stdout

    method, out = asyncio.run(main())
    assert out == b"hi\n" and method in ("password", "keyboard-interactive")

    async def over_socket() -> Any:
        """An already-connected socket (as a caller's own proxying would give)."""
        import socket

        sock = socket.create_connection(("127.0.0.1", env.server.port))
        async with await connect("127.0.0.1", env.server.port, username=env.user,
                                 known_host_check=accept_any_host_key, password=PASSWORD,
                                 sock=sock) as conn:
            return (await conn.run("echo sock")).stdout

    assert asyncio.run(over_socket()) == b"sock\n"


@pytest.mark.parametrize(("kind", "adder"), [("ssh-agent", "ssh-add"), ("pyagent", "pyadd"),
                                             ("ssh-agent", "pyadd")])
def test_agent_destination_constraint(env: Env, tmp_path: Path, agent_factory: AgentFactory,
                                      kind: str, adder: str) -> None:
    """A key added with -h for the server's host key: pyssh binds the agent connection to
    the session (session-bind@openssh.com) and signs with publickey-hostbound, so the key
    works there and is refused elsewhere, exactly as with ssh."""
    other = another_server(env, tmp_path, "AuthorizedKeysFile .ssh/authorized_keys",
                           same_host_key=False)
    try:
        constraints = tmp_path / "constraint_hosts"
        constraints.write_text(f"server {Path(f'{env.server.host_key}.pub').read_text()}"
                               f"elsewhere {Path(f'{other.host_key}.pub').read_text()}")
        agent = agent_factory(kind)
        add = ssh_add if adder == "ssh-add" else pyadd
        added = add(["-q", "-H", str(constraints), "-h", "server", str(env.key)], agent.env())
        assert added.returncode == 0, added.stderr
        args = ["-o", "IdentityFile=none", "-o", "BatchMode=yes"]
        sock = {"SSH_AUTH_SOCK": agent.path}
        real, ours = both(env, tmp_path, "dest_ok", args, [], extra_env=sock)
        assert real.code == 0, real
        assert ours == real
        real, ours = both(env, tmp_path, "dest_no", args, [], extra_env=sock, port=other.port)
        assert real.code == 255, real
        assert ours == real
    finally:
        other.stop()


@pytest.mark.parametrize("hashed", [False, True])
def test_update_host_keys(env: Env, tmp_path: Path, hashed: bool) -> None:
    """UpdateHostKeys=yes: the server's second host key is proved and added to
    known_hosts, as ssh adds it (the same lines; hashed names with HashKnownHosts)."""
    extra = tmp_path / "ssh_host_ecdsa_key"
    keygen("-t", "ecdsa", "-N", "", "-f", str(extra))
    server = start_sshd(tmp_path / "sshd_keys", f"HostKey {extra}\nAuthorizedKeysFile "
                        ".ssh/authorized_keys", host_key=env.server.host_key)
    # The host key in use, and a stale one the server no longer has (deprecated).
    start = (f"[127.0.0.1]:{server.port} {Path(f'{env.server.host_key}.pub').read_text()}"
             f"[127.0.0.1]:{server.port} {Path(f'{env.certified}.pub').read_text()}")
    results = {}
    try:
        for tool in ("ssh", "pyssh"):
            known = tmp_path / f"known_{tool}"
            known.write_text(start)
            cmd = [tool_path("ssh")] if tool == "ssh" else list(PYSSH)
            done = run([*cmd, "-F", "/dev/null", "-p", str(server.port), "-i", str(env.key),
                        "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                        "-o", f"UserKnownHostsFile={known}", "-o", "GlobalKnownHostsFile=/dev/null",
                        "-o", "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=yes",
                        "-o", f"HashKnownHosts={'yes' if hashed else 'no'}",
                        f"{env.user}@127.0.0.1", "echo", "ok"],
                       env=base_env(tmp_path, {}), cwd=REPO_ROOT, timeout=60)
            assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr
            results[tool] = known.read_text().splitlines()
    finally:
        server.stop()
    real, ours = results["ssh"], results["pyssh"]
    assert len(real) == 2 and "ecdsa" in real[1], real
    if hashed:
        def keys_only(lines: list[str]) -> list[str]:
            return [line.split(" ", 1)[1] for line in lines]
        assert keys_only(ours) == keys_only(real)
        assert ours[1].startswith("|1|") and real[1].startswith("|1|")
        found = run([tool_path("ssh-keygen"), "-F", f"[127.0.0.1]:{server.port}",
                     "-f", str(tmp_path / "known_pyssh")])
        assert found.stdout.count("ecdsa-sha2-nistp256") == 1, found.stdout
    else:
        assert ours == real


def test_bind_address(env: Env, tmp_path: Path) -> None:
    """-b: the connection comes from the address given (127.0.0.2 on the loopback)."""
    real, ours = both(env, tmp_path, "bind", ["-b", "127.0.0.2", "-o", "IdentitiesOnly=yes",
                                              "-i", str(env.key)], [])
    assert real.code == 0, real
    assert ours == real
    log = env.server.log_text()
    assert log.count(f"Accepted publickey for {env.user} from 127.0.0.2") == 2, log


def test_proxy_command_failing(tmp_path: Path) -> None:
    """A ProxyCommand that dies: ssh's two lines (no host address: UNKNOWN port 65535)."""
    outcomes = []
    for cmd in ([tool_path("ssh")], PYSSH):
        done = run([*cmd, "-F", "/dev/null", "-o", "ProxyCommand=false",
                    "-o", "BatchMode=yes", "somewhere", "true"],
                   env=base_env(tmp_path, {}), cwd=REPO_ROOT, timeout=60)
        outcomes.append((done.returncode, done.stdout, done.stderr))
    assert outcomes[1] == outcomes[0]


@pytest.mark.parametrize("kind", ["ssh-agent", "pyagent"])
def test_add_keys_to_agent(env: Env, tmp_path: Path, agent_factory: AgentFactory,
                           kind: str) -> None:
    """AddKeysToAgent=yes: the identity file decrypted to log in ends up in the agent,
    listed as ssh-add lists the one the real ssh added."""
    listings = []
    for tool in ("ssh", "pyssh"):
        agent = agent_factory(kind)
        real, ours = both(env, tmp_path, f"add_{tool}",
                          ["-o", "IdentitiesOnly=yes", "-o", "AddKeysToAgent=yes",
                           "-i", str(env.locked)], [PASSPHRASE],
                          extra_env={"SSH_AUTH_SOCK": agent.path})
        outcome = real if tool == "ssh" else ours
        assert outcome.code == 0, outcome
        listed = ssh_add(["-l"], agent.env())
        listings.append(listed.stdout)
        if tool == "ssh":
            assert listed.returncode == 0, listed.stderr
    assert listings[1] == listings[0]


def test_hash_known_hosts_when_adding(env: Env, tmp_path: Path) -> None:
    """HashKnownHosts=yes with accept-new: the new line's name is hashed, as ssh's."""
    lines = {}
    for cmd, tool in (([tool_path("ssh")], "ssh"), (PYSSH, "pyssh")):
        known = tmp_path / f"kh_{tool}"
        done = run([*cmd, "-F", "/dev/null", "-p", str(env.server.port), "-i", str(env.key),
                    "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                    "-o", f"UserKnownHostsFile={known}", "-o", "GlobalKnownHostsFile=/dev/null",
                    "-o", "StrictHostKeyChecking=accept-new", "-o", "HashKnownHosts=yes",
                    f"{env.user}@127.0.0.1", "true"], env=base_env(tmp_path, {}),
                   cwd=REPO_ROOT, timeout=60)
        assert done.returncode == 0, done.stderr
        lines[tool] = (done.stderr, known.read_text().splitlines())
        found = run([tool_path("ssh-keygen"), "-F", f"[127.0.0.1]:{env.server.port}",
                     "-f", str(known)])
        assert found.returncode == 0 and "|1|" in found.stdout
    (real_err, real), (our_err, ours) = lines["ssh"], lines["pyssh"]
    assert our_err == real_err
    assert [ln.split(" ", 1)[1] for ln in ours] == [ln.split(" ", 1)[1] for ln in real]
    assert all(ln.startswith("|1|") for ln in ours + real)


def test_identity_agent(env: Env, tmp_path: Path, agent_factory: AgentFactory) -> None:
    """IdentityAgent: a socket path (with SSH_AUTH_SOCK unset), or none (agent ignored)."""
    agent = agent_factory("ssh-agent")
    added = ssh_add([str(env.key)], agent.env())
    assert added.returncode == 0, added.stderr
    args = ["-o", "IdentityFile=none", "-o", "BatchMode=yes"]
    real, ours = both(env, tmp_path, "ia_path", [*args, "-o", f"IdentityAgent={agent.path}"], [])
    assert real.code == 0, real
    assert ours == real
    real, ours = both(env, tmp_path, "ia_none", [*args, "-o", "IdentityAgent=none"], [],
                      extra_env={"SSH_AUTH_SOCK": agent.path})
    assert real.code == 255, real
    assert ours == real


def run_in_pty(cmd: list[str], env: dict[str, str], answers: list[bytes],
               timeout: float = 30) -> tuple[int, bytes]:
    """Run ``cmd`` on a new terminal, typing the next answer at each prompt (": ")."""
    return helpers.run_in_pty(cmd, env, answers, lambda out: out.endswith(b": "), timeout)


def test_password_on_terminal(env: Env, tmp_path: Path) -> None:
    """Prompts on the terminal (echo off), a wrong password then the right one: the same
    bytes on the terminal as ssh's."""
    results = []
    for cmd in ([tool_path("ssh")], PYSSH):
        results.append(run_in_pty(
            [*cmd, "-F", "/dev/null", "-p", str(env.server.port), *NO_KEYS,
             "-o", "PreferredAuthentications=password",
             "-o", f"UserKnownHostsFile={env.known_hosts}",
             "-o", "GlobalKnownHostsFile=/dev/null", f"{env.user}@127.0.0.1", "echo ok"],
            base_env(tmp_path, {}), [b"wrong\n", PASSWORD.encode() + b"\n"]))
    assert results[0][0] == 0, results[0]
    assert results[1] == results[0]
    assert b"Permission denied, please try again." in results[1][1]
    assert PASSWORD.encode() not in results[1][1]  # not echoed


def test_connect_timeout_during_banner(tmp_path: Path) -> None:
    """ConnectTimeout while waiting for the server's version line, directly and through a
    ProxyCommand: ssh's two lines."""
    import socket

    with socket.socket() as silent:  # accepts (the kernel does) and never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        port = silent.getsockname()[1]
        for extra in ([], ["-o", "ProxyCommand=sleep 30"]):
            outcomes = []
            for cmd in ([tool_path("ssh")], PYSSH):
                done = run([*cmd, "-F", "/dev/null", "-p", str(port), "-o", "ConnectTimeout=1",
                            "-o", "BatchMode=yes", *extra, "127.0.0.1", "true"],
                           env=base_env(tmp_path, {}), cwd=REPO_ROOT, timeout=60)
                outcomes.append((done.returncode, done.stdout, done.stderr))
            assert outcomes[1] == outcomes[0]
            assert "banner exchange" in outcomes[0][2]


def _debug_agent(path: Path, home: Path) -> tuple[Any, Path]:
    """ssh-agent -d (its log names each added key with its constraints), allowing each
    use of a confirm-constrained key (an askpass printing nothing); stopped by pid."""
    import subprocess
    import time

    log = path.with_suffix(".log")
    agent_env = base_env(home, {"SSH_ASKPASS": shutil.which("true") or "/bin/true",
                                "SSH_ASKPASS_REQUIRE": "force"})
    with open(log, "wb") as out:
        proc = subprocess.Popen([tool_path("ssh-agent"), "-d", "-a", str(path)], stdout=out,
                                stderr=out, stdin=subprocess.DEVNULL, env=agent_env)
    deadline = time.monotonic() + 20
    while not path.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    return proc, log


@pytest.mark.parametrize("value,answer", [("ask", "yes"), ("ask", "no"), ("confirm", ""),
                                          ("confirm 77", ""), ("1h", "")])
def test_add_keys_to_agent_constraints(env: Env, tmp_path: Path, value: str,
                                       answer: str) -> None:
    """AddKeysToAgent ask (SSH_ASKPASS: "Add key FILE (COMMENT) to agent?"), confirm,
    confirm <time> and <time>: the same question, and the key reaches the agent with the
    same constraints (ssh-agent -d logs them: "(life: N) (confirm: N)") as with ssh."""
    from tests.helpers import stop_process

    seen = {}
    for tool in ("ssh", "pyssh"):
        sock = tmp_path / f"agent_{tool}.sock"
        proc, log = _debug_agent(sock, tmp_path)
        askpass = Askpass(tmp_path / tool, "add", [answer])
        cmd = [tool_path("ssh")] if tool == "ssh" else list(PYSSH)
        try:
            done = run([*cmd, "-F", "/dev/null", "-p", str(env.server.port),
                        "-o", f"UserKnownHostsFile={env.known_hosts}",
                        "-o", "GlobalKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                        "-o", "IdentitiesOnly=yes", "-o", f"AddKeysToAgent={value}",
                        "-i", str(env.key), f"{env.user}@127.0.0.1", "echo", "ok"],
                       env=base_env(tmp_path, {**askpass.environ(),
                                               "SSH_AUTH_SOCK": str(sock)}),
                       cwd=REPO_ROOT, timeout=60)
        finally:
            stop_process(proc)
        assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr
        seen[tool] = (askpass.prompts(),
                      [line.split("process_add_identity: add ", 1)[1].split(" (provider")[0]
                       for line in log.read_text().splitlines()
                       if "process_add_identity: add " in line])
    assert seen["pyssh"] == seen["ssh"]
    assert len(seen["ssh"][1]) == (0 if answer == "no" else 1)
    assert bool(seen["ssh"][0]) == (value == "ask")  # (the question was asked)
