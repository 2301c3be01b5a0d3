"""The pyssh command against a real OpenSSH sshd on 127.0.0.1, compared with the real
ssh client run on the same arguments wherever the output is ssh's.

Every run passes -F (so no ~/.ssh/config is read), its own known_hosts files and its own
identities (``IdentityFile none`` where only an agent should be used): ssh and pyssh take
the home directory from the password database, so nothing else keeps the user's ~/.ssh
out of the test.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import helpers
from tests.agent.agentproc import AgentFactory, agent_factory, base_env
from tests.helpers import REPO_ROOT, TESTDATA, private_copy, run, tool_path
from tests.interop.sshd import SshdServer, free_port, start_sshd

__all__ = ["agent_factory"]

PYSSH = [sys.executable, "-c",
         "from protocol.cli import pyssh_main; raise SystemExit(pyssh_main())"]


@dataclass
class Env:
    server: SshdServer
    key: Path  # authorized
    other: Path  # not authorized
    directory: Path


def keygen(path: Path, kind: str = "ed25519") -> Path:
    made = run([tool_path("ssh-keygen"), "-q", "-t", kind, "-N", "", "-C", path.name,
                "-f", str(path)])
    assert made.returncode == 0, made.stderr
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("pyssh_cli")
    key = keygen(tmp / "id_user")
    other = keygen(tmp / "id_other")
    authorized = tmp / "authorized_keys"
    authorized.write_text(Path(f"{key}.pub").read_text()
                          + (TESTDATA / "sshkey" / "rsa_1.pub").read_text())
    server = start_sshd(tmp / "sshd", f"AuthorizedKeysFile {authorized}")
    try:
        yield Env(server, key, other, tmp)
    finally:
        server.stop()


def common(env: Env, known_hosts: Path, strict: str = "no") -> list[str]:
    return ["-F", "/dev/null", "-p", str(env.server.port), "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", f"StrictHostKeyChecking={strict}"]


def pyssh(*args: str, input: bytes | None = None, env: dict[str, str] | None = None,
          binary: bool = False) -> Any:
    return run([*PYSSH, *args], input=input, env=env or base_env(), cwd=REPO_ROOT,
               timeout=60, binary=binary)


def real_ssh(*args: str, env: dict[str, str] | None = None) -> Any:
    return run([tool_path("ssh"), *args], env=env or base_env(), timeout=60)


def known(env: Env, tmp_path: Path) -> Path:
    """A known_hosts file that already lists the server's key (as ssh itself wrote it)."""
    path = tmp_path / "known_hosts"
    wrote = real_ssh(*common(env, path, "accept-new"), "-i", str(env.key), "root@127.0.0.1",
                     "true")
    assert wrote.returncode == 0, wrote.stderr
    return path


def test_exec_status_and_streams(env: Env, tmp_path: Path) -> None:
    kh = known(env, tmp_path)
    out = pyssh(*common(env, kh, "yes"), "-i", str(env.key), "root@127.0.0.1",
                "echo out; echo err >&2; exit 7")
    assert (out.returncode, out.stdout, out.stderr) == (7, "out\n", "err\n")


def test_stdin_piped_intact(env: Env, tmp_path: Path) -> None:
    kh = known(env, tmp_path)
    data = os.urandom(3 << 20)
    out = pyssh(*common(env, kh, "yes"), "-i", str(env.key), "root@127.0.0.1", "sha256sum",
                input=data, binary=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()
    cat = pyssh(*common(env, kh, "yes"), "-i", str(env.key), "root@127.0.0.1", "cat",
                input=data, binary=True)
    assert cat.stdout == data


def test_stdin_null(env: Env, tmp_path: Path) -> None:
    kh = known(env, tmp_path)
    out = pyssh(*common(env, kh, "yes"), "-n", "-i", str(env.key), "root@127.0.0.1", "wc -c",
                input=b"ignored")
    assert out.stdout.strip() == "0"


def test_config_file_host_port_user_identity(env: Env, tmp_path: Path) -> None:
    kh = known(env, tmp_path)
    config = tmp_path / "config"
    config.write_text(f"Host target\n  HostName 127.0.0.1\n  Port {env.server.port}\n"
                      f"  User root\n  IdentityFile {env.key}\n  IdentitiesOnly yes\n"
                      f"  UserKnownHostsFile {kh}\n  GlobalKnownHostsFile /dev/null\n"
                      "  StrictHostKeyChecking yes\n  BatchMode yes\n")
    out = pyssh("-F", str(config), "target", "echo", "$USER")
    assert (out.returncode, out.stdout) == (0, "root\n"), out.stderr


@pytest.mark.parametrize("kind", ["ssh-agent", "pyagent"])
def test_keys_from_agent(kind: str, env: Env, tmp_path: Path,
                         agent_factory: AgentFactory) -> None:
    kh = known(env, tmp_path)
    agent = agent_factory(kind)
    added = run([tool_path("ssh-add"), str(env.other), str(env.key)], env=agent.env())
    assert added.returncode == 0, added.stderr
    out = pyssh(*common(env, kh, "yes"), "-o", "IdentityFile=none", "root@127.0.0.1",
                "echo agent", env=agent.env())
    assert (out.returncode, out.stdout) == (0, "agent\n"), out.stderr
    # IdentitiesOnly with a file the agent holds: the agent's copy signs.
    only = pyssh(*common(env, kh, "yes"), "-o", "IdentitiesOnly=yes", "-i", str(env.key),
                 "root@127.0.0.1", "true", env=agent.env())
    assert only.returncode == 0, only.stderr


@pytest.mark.parametrize("kind", ["file", "ssh-agent"])
def test_rsa_key_signs_sha2(kind: str, env: Env, tmp_path: Path,
                            agent_factory: AgentFactory) -> None:
    """An RSA key (file or agent): the signature asked of the Agent is rsa-sha2-512,
    which sshd (refusing ssh-rsa by default) accepts."""
    kh = known(env, tmp_path)
    rsa = private_copy("sshkey/rsa_1", tmp_path)
    if kind == "file":
        out = pyssh(*common(env, kh, "yes"), "-i", str(rsa), "root@127.0.0.1", "echo rsa")
    else:
        agent = agent_factory("ssh-agent")
        assert run([tool_path("ssh-add"), str(rsa)], env=agent.env()).returncode == 0
        out = pyssh(*common(env, kh, "yes"), "-o", "IdentityFile=none", "root@127.0.0.1",
                    "echo rsa", env=agent.env())
    assert (out.returncode, out.stdout) == (0, "rsa\n"), out.stderr
    assert "RSA SHA256" in env.server.log_text()


def compare(env: Env, args: list[str]) -> tuple[Any, Any]:
    real = real_ssh(*args)
    ours = pyssh(*args)
    return real, ours


def test_permission_denied_like_ssh(env: Env, tmp_path: Path) -> None:
    kh = known(env, tmp_path)
    real, ours = compare(env, [*common(env, kh, "yes"), "-i", str(env.other),
                               "root@127.0.0.1", "true"])
    assert (ours.returncode, ours.stderr) == (real.returncode, real.stderr) == \
        (255, real.stderr)
    assert "Permission denied (publickey)." in ours.stderr


def test_connection_refused_like_ssh(env: Env, tmp_path: Path) -> None:
    port = free_port()
    args = ["-F", "/dev/null", "-p", str(port), "-o", "BatchMode=yes", "127.0.0.1", "true"]
    real, ours = compare(env, args)
    assert (ours.returncode, ours.stderr) == (real.returncode, real.stderr)
    assert ours.stderr == f"ssh: connect to host 127.0.0.1 port {port}: Connection refused\r\n"


@pytest.mark.parametrize("host", ["nosuch.invalid", "localhost"])
def test_resolution_and_refusal_like_ssh(host: str, env: Env) -> None:
    """An unknown name, and a name with several addresses none of which listens."""
    args = ["-F", "/dev/null", "-p", str(free_port()), "-o", "BatchMode=yes", host]
    real, ours = compare(env, args)
    assert (ours.returncode, ours.stderr) == (real.returncode, real.stderr)
    assert ours.returncode == 255


def test_accept_new_writes_known_hosts_like_ssh(env: Env, tmp_path: Path) -> None:
    ours_kh, real_kh = tmp_path / "ours", tmp_path / "real"
    real = real_ssh(*common(env, real_kh, "accept-new"), "-i", str(env.key),
                    "root@127.0.0.1", "true")
    ours = pyssh(*common(env, ours_kh, "accept-new"), "-i", str(env.key), "root@127.0.0.1",
                 "true")
    assert (ours.returncode, ours.stderr) == (real.returncode, real.stderr) == (0, real.stderr)
    assert "Permanently added" in ours.stderr
    assert ours_kh.read_text() == real_kh.read_text()
    again = pyssh(*common(env, ours_kh, "yes"), "-i", str(env.key), "root@127.0.0.1", "true")
    assert (again.returncode, again.stderr) == (0, "")


@pytest.mark.parametrize("strict", ["yes", "accept-new", "no"])
def test_changed_host_key_like_ssh(strict: str, env: Env, tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{env.server.port} "
                  + Path(str(env.other) + ".pub").read_text())
    real, ours = compare(env, [*common(env, kh, strict), "-i", str(env.key), "root@127.0.0.1",
                               "echo through"])
    assert (ours.returncode, ours.stdout, ours.stderr) == \
        (real.returncode, real.stdout, real.stderr)
    assert "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!" in ours.stderr
    assert ours.returncode == (0 if strict == "no" else 255)


def test_unknown_host_strict_like_ssh(env: Env, tmp_path: Path) -> None:
    kh = tmp_path / "empty_known_hosts"
    real, ours = compare(env, [*common(env, kh, "yes"), "-i", str(env.key), "root@127.0.0.1",
                               "true"])
    assert (ours.returncode, ours.stderr) == (real.returncode, real.stderr)
    assert ours.returncode == 255 and "Host key verification failed." in ours.stderr
    assert not kh.exists()


@pytest.mark.parametrize("strict", ["yes", "no"])
def test_revoked_host_key_like_ssh(strict: str, env: Env, tmp_path: Path) -> None:
    host_key = Path(str(env.server.host_key) + ".pub").read_text().split()
    kh = tmp_path / "known_hosts"
    kh.write_text(f"@revoked [127.0.0.1]:{env.server.port} {host_key[0]} {host_key[1]}\n")
    real, ours = compare(env, [*common(env, kh, strict), "-i", str(env.key), "root@127.0.0.1",
                               "echo through"])
    assert (ours.returncode, ours.stdout, ours.stderr) == \
        (real.returncode, real.stdout, real.stderr)
    assert "WARNING: REVOKED HOST KEY DETECTED!" in ours.stderr


def test_ask_without_terminal_like_ssh(env: Env, tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    args = ["-F", "/dev/null", "-p", str(env.server.port), "-o", f"UserKnownHostsFile={kh}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-i", str(env.key), "root@127.0.0.1",
            "true"]
    real, ours = compare(env, args)
    assert (ours.returncode, ours.stderr) == (real.returncode, real.stderr)
    assert ours.returncode == 255 and not kh.exists()


def test_encrypted_identity_asks_like_ssh(env: Env, tmp_path: Path) -> None:
    """An encrypted -i key: the passphrase comes through SSH_ASKPASS with ssh's prompt."""
    kh = known(env, tmp_path)
    enc = tmp_path / "enc"
    enc.write_bytes(env.key.read_bytes())
    enc.chmod(0o600)
    changed = run([tool_path("ssh-keygen"), "-q", "-p", "-a", "4", "-P", "", "-N", "secret",
                   "-f", str(enc)])
    assert changed.returncode == 0, changed.stderr
    asked = tmp_path / "asked"
    script = tmp_path / "askpass.sh"
    script.write_text(f"#!/bin/sh\necho \"$1\" >> {asked}\necho secret\n")
    script.chmod(0o700)
    askenv = base_env(SSH_ASKPASS=str(script), SSH_ASKPASS_REQUIRE="force", DISPLAY=":0")
    args = ["-F", "/dev/null", "-p", str(env.server.port), "-o", f"UserKnownHostsFile={kh}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
            "-i", str(enc), "root@127.0.0.1", "echo ok"]
    real = real_ssh(*args, env=askenv)
    real_prompts = asked.read_text()
    asked.unlink()
    ours = pyssh(*args, env=askenv)
    assert (ours.returncode, ours.stdout) == (real.returncode, real.stdout) == (0, "ok\n")
    assert asked.read_text() == real_prompts == f"Enter passphrase for key '{enc}': \n"


def test_log_file_and_quiet(env: Env, tmp_path: Path) -> None:
    """-E sends ssh's messages to a file; -q silences the informational ones."""
    log = tmp_path / "log"
    kh = tmp_path / "known_hosts"
    args = [*common(env, kh, "accept-new"), "-i", str(env.key), "root@127.0.0.1", "echo ok"]
    out = pyssh("-E", str(log), *args)
    assert (out.returncode, out.stdout, out.stderr) == (0, "ok\n", "")
    assert "Permanently added" in log.read_text()
    kh.unlink()
    quiet = pyssh("-q", *args)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "ok\n", "")
    assert kh.exists()


def test_unsupported_option_warns_and_continues(env: Env, tmp_path: Path) -> None:
    kh = known(env, tmp_path)
    out = pyssh(*common(env, kh, "yes"), "-o", "VerifyHostKeyDNS=no", "-i", str(env.key),
                "root@127.0.0.1", "echo ok")
    assert (out.returncode, out.stdout) == (0, "ok\n")
    assert out.stderr == 'command-line line 0: Unsupported option "VerifyHostKeyDNS"\r\n'
    real, ours = compare(env, [*common(env, kh, "yes"), "-o", "NoSuchOption=1",
                               "root@127.0.0.1", "true"])
    assert ours.returncode == real.returncode == 255
    assert "Bad configuration option: nosuchoption" in real.stderr
    assert "Bad configuration option: nosuchoption" in ours.stderr


def run_in_pty(cmd: list[str], answer: bytes, timeout: float = 60) -> tuple[int, bytes]:
    """Run ``cmd`` on a new terminal; type ``answer`` at the first question."""
    return helpers.run_in_pty(cmd, base_env(), [answer],
                              lambda out: out.rstrip().endswith(b"?"), timeout)


@pytest.mark.parametrize("answer", [b"yes\n", b"no\n"])
def test_ask_on_terminal_like_ssh(answer: bytes, env: Env, tmp_path: Path) -> None:
    """StrictHostKeyChecking=ask at a terminal: ssh's question, then the same result."""
    results = {}
    for name, prog in (("real", [tool_path("ssh")]), ("ours", PYSSH)):
        kh = tmp_path / f"known_hosts_{name}"
        results[name] = run_in_pty([*prog, "-F", "/dev/null", "-p", str(env.server.port),
                                    "-i", str(env.key), "-o", f"UserKnownHostsFile={kh}",
                                    "-o", "GlobalKnownHostsFile=/dev/null", "root@127.0.0.1",
                                    "echo ok"], answer)
        assert kh.exists() == (answer == b"yes\n")
    assert results["ours"] == results["real"]
    assert b"Are you sure you want to continue connecting" in results["ours"][1]


def test_known_hosts_orders_host_key_algorithms_like_ssh(tmp_path: Path) -> None:
    """A server with an Ed25519 and an ECDSA host key, known_hosts listing only the ECDSA
    one: ssh puts the known key's algorithm first only while HostKeyAlgorithms is the
    default (or the default with "+"/"-"); an explicit list or "^" keeps the given order,
    so Ed25519 is negotiated and the unknown key fails StrictHostKeyChecking=yes."""
    ecdsa = keygen(tmp_path / "host_ecdsa", "ecdsa")
    key = keygen(tmp_path / "id_user")
    server = start_sshd(tmp_path / "sshd", f"AuthorizedKeysFile {key}.pub\n"
                        f"HostKey {ecdsa}\n")
    try:
        kh = tmp_path / "known_hosts"
        pub = Path(f"{ecdsa}.pub").read_text().split()
        kh.write_text(f"[127.0.0.1]:{server.port} {pub[0]} {pub[1]}\n")
        base = ["-F", "/dev/null", "-p", str(server.port), "-o", "BatchMode=yes",
                "-o", f"UserKnownHostsFile={kh}", "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "StrictHostKeyChecking=yes", "-i", str(key)]
        outcomes = set()
        for spec in ([], ["-o", "HostKeyAlgorithms=ssh-ed25519,ecdsa-sha2-nistp256"],
                     ["-o", "HostKeyAlgorithms=-rsa-sha2-256"],
                     ["-o", "HostKeyAlgorithms=+ssh-ed25519"],
                     ["-o", "HostKeyAlgorithms=^ssh-ed25519"]):
            args = [*base, *spec, "root@127.0.0.1", "true"]
            real, ours = real_ssh(*args), pyssh(*args)
            verdict = (real.returncode, "Host key verification failed." in real.stderr)
            assert (ours.returncode, "Host key verification failed." in ours.stderr) == \
                verdict, (spec, ours.stderr, real.stderr)
            outcomes.add(verdict)
        assert outcomes == {(0, False), (255, True)}
    finally:
        server.stop()
