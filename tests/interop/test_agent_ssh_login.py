"""The real ssh logs in to a real sshd with keys that only pyagent holds, and the
destination constraints of `ssh-add -h` are enforced through session-bind."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.agent.agentproc import AgentFactory, RunningAgent, agent_factory  # noqa: F401
from tests.helpers import openssh_version, run, tool_path
from tests.interop.sshd import SshdServer


def keygen(path: Path, *spec: str) -> Path:
    made = run([tool_path("ssh-keygen"), "-q", *spec, "-N", "", "-C", path.name, "-f",
                str(path)])
    assert made.returncode == 0, made.stderr
    return path


def ssh_via_agent(server: SshdServer, agent: RunningAgent, *cmd: str,
                  options: tuple[str, ...] = ()) -> tuple[int, str, str]:
    """ssh with no identity files of its own: only the agent's keys can log in."""
    args = [tool_path("ssh"), "-F", "/dev/null", "-p", str(server.port),
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "IdentitiesOnly=no", "-o", "IdentityFile=none",
            "-o", "PreferredAuthentications=publickey"]
    for option in options:
        args += ["-o", option]
    env = agent.env(HOME=str(server.client_dir))
    result = run([*args, "root@127.0.0.1", *cmd], env=env, timeout=60)
    return result.returncode, result.stdout, result.stderr


def ssh_add(agent: RunningAgent, *args: str) -> None:
    result = run([tool_path("ssh-add"), *args], env=agent.env())
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("spec", [("-t", "ed25519"), ("-t", "ecdsa", "-b", "256"),
                                  ("-t", "ecdsa", "-b", "521"), ("-t", "rsa", "-b", "2048")],
                         ids=["ed25519", "ecdsa256", "ecdsa521", "rsa"])
def test_login_with_agent_key(tmp_path: Path, sshd_factory: Callable[..., SshdServer],
                              agent_factory: AgentFactory,  # noqa: F811
                              spec: tuple[str, ...]) -> None:
    key = keygen(tmp_path / "user", *spec)
    authorized = tmp_path / "authorized_keys"
    authorized.write_text((tmp_path / "user.pub").read_text())
    server = sshd_factory(f"AuthorizedKeysFile {authorized}")
    agent = agent_factory("pyagent")
    rc, _, err = ssh_via_agent(server, agent, "true")
    assert rc == 255, "no key in the agent yet: login must fail"
    ssh_add(agent, str(key))
    os.unlink(key)  # only the agent has the private key now
    rc, out, err = ssh_via_agent(server, agent, "echo", "logged-in")
    assert (rc, out) == (0, "logged-in\n"), err + server.log_text()
    assert "Accepted publickey for root" in server.log_text()
    if "rsa" in spec:
        # ssh checks the agent's signature is of the type it asked for (flags 2 and 4)
        for algorithm in ("rsa-sha2-256", "rsa-sha2-512"):
            rc, out, err = ssh_via_agent(server, agent, "echo", algorithm,
                                         options=(f"PubkeyAcceptedAlgorithms={algorithm}",))
            assert (rc, out) == (0, f"{algorithm}\n"), err + server.log_text()


def test_login_with_agent_certificate(tmp_path: Path, sshd_factory: Callable[..., SshdServer],
                                      agent_factory: AgentFactory) -> None:  # noqa: F811
    ca = keygen(tmp_path / "ca", "-t", "ed25519")
    key = keygen(tmp_path / "user", "-t", "ecdsa")
    signed = run([tool_path("ssh-keygen"), "-q", "-s", str(ca), "-I", "agent-cert", "-n", "root",
                  str(tmp_path / "user.pub")])
    assert signed.returncode == 0, signed.stderr
    server = sshd_factory(f"TrustedUserCAKeys {ca}.pub\nAuthorizedKeysFile none")
    agent = agent_factory("pyagent")
    ssh_add(agent, str(key))  # adds user and user-cert.pub
    rc, out, err = ssh_via_agent(server, agent, "echo", "cert")
    assert (rc, out) == (0, "cert\n"), err + server.log_text()
    assert "agent-cert" in server.log_text()


@pytest.mark.parametrize("kind", ["pyagent", "ssh-agent"])
def test_destination_constraints(tmp_path: Path, sshd_factory: Callable[..., SshdServer],
                                 agent_factory: AgentFactory, kind: str) -> None:  # noqa: F811
    if openssh_version() < (8, 9):
        pytest.skip("destination constraints need OpenSSH 8.9")
    key = keygen(tmp_path / "user", "-t", "ed25519")
    authorized = tmp_path / "authorized_keys"
    authorized.write_text((tmp_path / "user.pub").read_text())
    allowed = sshd_factory(f"AuthorizedKeysFile {authorized}")
    other = sshd_factory(f"AuthorizedKeysFile {authorized}")
    known = tmp_path / "known_hosts"
    host_pub = Path(f"{allowed.host_key}.pub").read_text().split()
    known.write_text(f"allowed.example {host_pub[0]} {host_pub[1]}\n")
    agent = agent_factory(kind)
    ssh_add(agent, "-H", str(known), "-h", "allowed.example", str(key))
    rc, out, err = ssh_via_agent(allowed, agent, "echo", "ok")
    assert (rc, out) == (0, "ok\n"), err + allowed.log_text()
    rc, out, err = ssh_via_agent(other, agent, "echo", "ok")
    assert rc == 255, f"{kind} let a constrained key log in to another host"
    assert "Accepted publickey" not in other.log_text()
    # locally the key is still listed
    listed = run([tool_path("ssh-add"), "-l"], env=agent.env())
    assert listed.returncode == 0 and "ED25519" in listed.stdout
