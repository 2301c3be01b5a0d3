"""OpenSSH's ssh-add drives pyagent exactly as it drives ssh-agent: the same commands
against both agents (started the same way, with the same keys) give the same output."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent import messages as m
from agent.client import AgentClient
from agent.errors import AgentError
from keytools.keyfile import load_public
from tests.agent.agentproc import AgentFactory, RunningAgent, agent_factory  # noqa: F401
from tests.helpers import run, tool_path

KEY_SPECS = {
    "ed25519": ["-t", "ed25519"],
    "ecdsa256": ["-t", "ecdsa", "-b", "256"],
    "ecdsa384": ["-t", "ecdsa", "-b", "384"],
    "ecdsa521": ["-t", "ecdsa", "-b", "521"],
    "rsa": ["-t", "rsa", "-b", "2048"],
}


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One key of each type, plus user certificates for the Ed25519 and RSA keys."""
    directory = tmp_path_factory.mktemp("agentkeys")
    keygen = tool_path("ssh-keygen")
    for name, spec in {**KEY_SPECS, "ca": ["-t", "ed25519"]}.items():
        made = run([keygen, "-q", *spec, "-N", "", "-C", f"{name} key", "-f",
                    str(directory / name)])
        assert made.returncode == 0, made.stderr
    for name in ("ed25519", "rsa"):
        signed = run([keygen, "-q", "-s", str(directory / "ca"), "-I", f"{name}-id",
                      "-n", "root", str(directory / f"{name}.pub")])
        assert signed.returncode == 0, signed.stderr
    # a copy of the Ed25519 key without its certificate beside it
    (directory / "plain").mkdir()
    for suffix in ("", ".pub"):
        src = directory / f"ed25519{suffix}"
        dst = directory / "plain" / f"ed25519{suffix}"
        dst.write_bytes(src.read_bytes())
        dst.chmod(src.stat().st_mode)
    return directory


Pair = dict[str, RunningAgent]


@pytest.fixture
def agents(agent_factory: AgentFactory) -> Pair:  # noqa: F811
    return {"pyagent": agent_factory("pyagent"), "ssh-agent": agent_factory("ssh-agent")}


def ssh_add(agent: RunningAgent, *args: str, **env: str) -> tuple[int, str, str]:
    result = run([tool_path("ssh-add"), *args], env=agent.env(**env))
    return result.returncode, result.stdout, result.stderr


def same(agents: Pair, *args: str, **env: str) -> tuple[int, str, str]:
    """Run ssh-add against both agents; the results must be identical."""
    ours = ssh_add(agents["pyagent"], *args, **env)
    theirs = ssh_add(agents["ssh-agent"], *args, **env)
    assert ours == theirs, f"ssh-add {' '.join(args)}"
    return ours


def test_every_key_type(agents: Pair, keydir: Path) -> None:
    files = [str(keydir / "plain" / "ed25519")] + [str(keydir / n) for n in KEY_SPECS
                                                   if n not in ("ed25519", "rsa")]
    rc, _, err = same(agents, *files)
    assert rc == 0 and err.count("Identity added") == len(files)
    rc, out, _ = same(agents, "-l")
    assert rc == 0 and len(out.splitlines()) == len(files)
    same(agents, "-L")
    same(agents, "-l", "-E", "md5")
    rc, _, _ = same(agents, "-T", *(f + ".pub" for f in files))
    assert rc == 0
    same(agents, "-d", str(keydir / "ecdsa384"))
    same(agents, "-d", str(keydir / "ecdsa384"))  # not there any more
    same(agents, "-l")
    rc, out, err = same(agents, "-D")
    assert rc == 0
    rc, out, _ = same(agents, "-l")
    assert (rc, out) == (1, "The agent has no identities.\n")
    same(agents, "-L")


def test_rsa_key(agents: Pair, keydir: Path) -> None:
    """ssh-add -T signs with the SHA-1 default; our client asks for rsa-sha2-256/512."""
    plain = keydir / "rsa-plain"
    for suffix in ("", ".pub"):
        (plain.parent / f"rsa-plain{suffix}").write_bytes((keydir / f"rsa{suffix}").read_bytes())
    plain.chmod(0o600)
    same(agents, str(plain))
    same(agents, "-l")
    rc, _, _ = same(agents, "-T", str(plain) + ".pub")
    assert rc == 0
    pub, _ = load_public(str(plain) + ".pub")
    for flags, name in ((0, b"ssh-rsa"), (m.SSH_AGENT_RSA_SHA2_256, b"rsa-sha2-256"),
                        (m.SSH_AGENT_RSA_SHA2_512, b"rsa-sha2-512")):
        algorithms = set()
        for agent in agents.values():
            with AgentClient(agent.path) as client:
                sig = client.sign(pub, b"payload", flags)
            pub.verify(b"payload", sig)
            algorithms.add(sig[4:4 + len(name)])
        assert algorithms == {name}


def test_certificates(agents: Pair, keydir: Path) -> None:
    rc, _, err = same(agents, str(keydir / "ed25519"), str(keydir / "rsa"))
    assert rc == 0 and err.count("Certificate added") == 2
    rc, out, _ = same(agents, "-l")
    assert out.count("-CERT)") == 2
    same(agents, "-L")
    rc, _, _ = same(agents, "-T", str(keydir / "ed25519-cert.pub"), str(keydir / "rsa-cert.pub"))
    assert rc == 0
    same(agents, "-d", str(keydir / "rsa"))  # removes the key and its certificate
    rc, out, _ = same(agents, "-l")
    assert len(out.splitlines()) == 2


def _askpass(tmp_path: Path, name: str, answer: str, log: Path | None = None) -> Path:
    script = tmp_path / name
    record = f'printf "%s|%s\\n" "$SSH_ASKPASS_PROMPT" "$1" >> {log}\n' if log else ""
    script.write_text(f"#!/bin/sh\n{record}echo '{answer}'\n")
    script.chmod(0o755)
    return script


def test_lock_and_unlock(agents: Pair, keydir: Path, tmp_path: Path) -> None:
    good = str(_askpass(tmp_path, "good", "s3cret pass"))
    bad = str(_askpass(tmp_path, "bad", "wrong"))
    same(agents, str(keydir / "ecdsa256"))
    rc, out, err = same(agents, "-x", SSH_ASKPASS=good, SSH_ASKPASS_REQUIRE="force")
    assert rc == 0 and "Agent locked" in out + err
    rc, out, _ = same(agents, "-l")
    assert rc == 1
    rc, _, _ = same(agents, "-x", SSH_ASKPASS=good, SSH_ASKPASS_REQUIRE="force")
    assert rc == 1  # already locked
    same(agents, str(keydir / "ecdsa384"))  # refused while locked
    rc, _, _ = same(agents, "-X", SSH_ASKPASS=bad, SSH_ASKPASS_REQUIRE="force")
    assert rc == 1
    rc, _, _ = same(agents, "-X", SSH_ASKPASS=good, SSH_ASKPASS_REQUIRE="force")
    assert rc == 0
    rc, out, _ = same(agents, "-l")
    assert rc == 0 and len(out.splitlines()) == 1


def test_lifetime(agents: Pair, keydir: Path) -> None:
    rc, _, err = same(agents, "-t", "1", str(keydir / "ecdsa256"))
    assert rc == 0 and "Lifetime set to 1 seconds" in err
    same(agents, "-t", "1h", str(keydir / "plain" / "ed25519"))
    rc, out, _ = same(agents, "-l")
    assert len(out.splitlines()) == 2
    time.sleep(2)
    rc, out, _ = same(agents, "-l")
    assert len(out.splitlines()) == 1 and "ED25519" in out


def test_default_lifetime(agent_factory: AgentFactory, keydir: Path) -> None:  # noqa: F811
    pair = {"pyagent": agent_factory("pyagent", ["-t", "1"]),
            "ssh-agent": agent_factory("ssh-agent", ["-t", "1"])}
    same(pair, str(keydir / "ecdsa256"))
    rc, _, _ = same(pair, "-l")
    assert rc == 0
    time.sleep(2)
    rc, _, _ = same(pair, "-l")
    assert rc == 1


@pytest.mark.parametrize("answer,allowed", [("yes", True), ("", True), ("no", False)])
def test_confirm(agent_factory: AgentFactory, keydir: Path, tmp_path: Path,  # noqa: F811
                 answer: str, allowed: bool) -> None:
    from tests.agent.agentproc import base_env

    logs = {name: tmp_path / f"{name}.asked" for name in ("pyagent", "ssh-agent")}
    pair = {name: agent_factory(name, env=base_env(
        SSH_ASKPASS=str(_askpass(tmp_path, f"ask-{name}", answer, logs[name])),
        SSH_ASKPASS_REQUIRE="force")) for name in logs}
    rc, _, err = same(pair, "-c", str(keydir / "plain" / "ed25519"))
    assert rc == 0 and "confirm each use" in err
    rc, _, _ = same(pair, "-T", str(keydir / "plain" / "ed25519.pub"))
    assert rc == (0 if allowed else 1)
    ours = logs["pyagent"].read_text()
    assert ours.startswith("confirm|Allow use of key ed25519 key?\nKey fingerprint SHA256:")
    assert logs["ssh-agent"].read_text().splitlines()[:2] == ours.splitlines()[:2]


def test_confirm_without_askpass_denies(agent_factory: AgentFactory,  # noqa: F811
                                        keydir: Path) -> None:
    pair = {"pyagent": agent_factory("pyagent"), "ssh-agent": agent_factory("ssh-agent")}
    same(pair, "-c", str(keydir / "plain" / "ed25519"))
    rc, _, _ = same(pair, "-T", str(keydir / "plain" / "ed25519.pub"))
    assert rc == 1


def test_our_client_against_ssh_agent(agents: Pair, keydir: Path) -> None:
    """agent.client works against the real ssh-agent the same as against pyagent."""
    from agent.interface import Constraints
    from keytools.keyfile import load_private

    key, comment = load_private(str(keydir / "plain" / "ed25519"), None)
    listings: list[list[tuple[bytes, str]]] = []
    for agent in agents.values():
        with AgentClient(agent.path) as client:
            client.add(key, comment, Constraints(lifetime=600))
            key.public.verify(b"x", client.sign(key.public, b"x"))
            listings.append([(i.key.blob(), i.comment) for i in client.list()])
            client.lock(b"pw")
            assert client.list() == []
            with pytest.raises(AgentError):
                client.unlock(b"nope")
            client.unlock(b"pw")
            client.remove(key.public)
            with pytest.raises(AgentError):
                client.remove(key.public)
            with pytest.raises(AgentError):
                client.extension("nonesuch@example.org", b"")
    assert listings[0] == listings[1]
    with AgentClient(agents["pyagent"].path) as client:
        assert "session-bind@openssh.com" in client.query_extensions()

