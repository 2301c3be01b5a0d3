"""pyadd -s / -e with a SoftHSM2 token, against OpenSSH's ssh-agent and pyagent.

Keys made by pykeygen are imported onto a token in a temporary directory. pyadd loads
them into OpenSSH's ssh-agent exactly as ssh-add does; both tools load them into pyagent,
which signs on the token; ssh-agent's -P allowlist is enforced by pyagent too; and the
real ssh logs in to a real sshd with a token key held by each agent.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests.helpers import run, tool_path
from tests.interop.pyadd_support import (
    TOKEN_PIN,
    RunningAgent,
    SoftToken,
    import_keys,
    normalise,
    openssh_agent,
    py_agent,
    pyadd,
    pykeygen,
    softhsm_token,
    ssh_add,
)
from tests.interop.sshd import SshdServer

StartAgent = Callable[..., AbstractContextManager[RunningAgent]]


@pytest.fixture(scope="module")
def made_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tokenkeys")
    pykeygen("-t", "rsa", "-b", "2048", "-N", "", "-C", "", "-f", str(d / "rsa"))
    pykeygen("-t", "ecdsa", "-N", "", "-C", "", "-f", str(d / "ec"))
    return d


@pytest.fixture
def token(tmp_path: Path, made_keys: Path) -> SoftToken:
    tok = softhsm_token(tmp_path / "hsm")
    import_keys(tok, [(made_keys / "rsa", "token rsa"), (made_keys / "ec", "token ec")])
    return tok


def agent_env(token: SoftToken) -> dict[str, str]:
    return {**os.environ, **token.env()}


def listing(agent: RunningAgent) -> list[str]:
    return sorted(ssh_add(["-L"], agent.env()).stdout.splitlines())


def test_pyadd_drives_openssh_agent(token: SoftToken, tmp_path: Path, made_keys: Path) -> None:
    with openssh_agent(tmp_path / "a", "-P", "/usr/lib/*", env=agent_env(token)) as agent:
        results = []
        for tool in (ssh_add, pyadd):
            steps = []
            for args, answer in ((["-s", token.module], "0000\n"),
                                 (["-s", token.module], TOKEN_PIN + "\n"),
                                 (["-l"], None), (["-s", token.module], TOKEN_PIN + "\n"),
                                 (["-e", token.module], None), (["-e", token.module], None),
                                 (["-q", "-s", token.module], TOKEN_PIN + "\n")):
                done = tool(args, agent.env(), input=answer)
                steps.append((done.returncode, sorted(done.stdout.splitlines()),
                              normalise(done.stderr), listing(agent)))
            results.append(steps)
            ssh_add(["-e", token.module], agent.env())
        assert results[0] == results[1]
        added = results[0][1]
        assert added[0] == 0 and added[2] == "Enter passphrase for PKCS#11: Card added: " \
            f"{token.module}\n"
        assert len(added[3]) == 2
        assert results[0][4][:3] == (0, [], f"Card removed: {token.module}\n")


def test_pin_from_askpass(token: SoftToken, tmp_path: Path) -> None:
    script = tmp_path / "askpass"
    script.write_text(f"#!/bin/sh\n[ \"$1\" = 'Enter passphrase for PKCS#11: ' ] && "
                      f"echo {TOKEN_PIN}\n")
    script.chmod(0o755)
    with openssh_agent(tmp_path / "a", "-P", "/usr/lib/*", env=agent_env(token)) as agent:
        env = agent.env(SSH_ASKPASS=str(script), SSH_ASKPASS_REQUIRE="force")
        done = pyadd(["-s", token.module], env)
        assert (done.returncode, done.stderr) == (0, f"Card added: {token.module}\n")
        assert len(listing(agent)) == 2


@pytest.mark.parametrize("loader", [ssh_add, pyadd], ids=["ssh-add", "pyadd"])
def test_pyagent_holds_token_keys(token: SoftToken, tmp_path: Path, made_keys: Path,
                                  loader: Callable[..., object]) -> None:
    """Both tools load the token into pyagent; the keys list as OpenSSH's agent lists
    them, sign on the token (-T) and go away with -e."""
    with openssh_agent(tmp_path / "ref", "-P", "/usr/lib/*", env=agent_env(token)) as ref:
        assert ssh_add(["-s", token.module], ref.env(), input=TOKEN_PIN + "\n").returncode == 0
        expected = listing(ref)
        their_l = sorted(ssh_add(["-l"], ref.env()).stdout.splitlines())
    with py_agent(tmp_path / "py", "-P", "/usr/lib/*", env=agent_env(token)) as agent:
        done = loader(["-s", token.module], agent.env(), input=TOKEN_PIN + "\n")
        assert done.returncode == 0, done.stderr  # type: ignore[attr-defined]
        assert listing(agent) == expected
        assert sorted(pyadd(["-l"], agent.env()).stdout.splitlines()) == their_l
        pubs = tmp_path / "token.pub"
        pubs.write_text("\n".join(expected) + "\n")
        for line_no, line in enumerate(expected):
            one = tmp_path / f"k{line_no}.pub"
            one.write_text(line + "\n")
            for tool in (ssh_add, pyadd):
                tested = tool(["-T", str(one)], agent.env())
                assert tested.returncode == 0, tested.stderr
        again = pyadd(["-s", token.module], agent.env(), input=TOKEN_PIN + "\n")
        assert again.returncode == 1
        assert again.stderr.endswith(f'Could not add card "{token.module}": '
                                     "agent refused operation\n")
        removed = loader(["-e", token.module], agent.env())
        assert removed.returncode == 0  # type: ignore[attr-defined]
        assert ssh_add(["-l"], agent.env()).returncode == 1
        # after -e the provider can be loaded again
        assert pyadd(["-s", token.module], agent.env(), input=TOKEN_PIN + "\n").returncode == 0


def test_pyagent_provider_allowlist(token: SoftToken, tmp_path: Path) -> None:
    """pyagent -P refuses providers outside the list, as ssh-agent -P does."""
    outcomes = []
    for start in (openssh_agent, py_agent):
        with start(tmp_path / start.__name__, "-P", "/opt/*,/usr/local/lib/*",
                   env=agent_env(token)) as agent:
            done = pyadd(["-s", token.module], agent.env(), input=TOKEN_PIN + "\n")
            outcomes.append((done.returncode, done.stderr, listing(agent)))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == 1 and outcomes[0][2] == ["The agent has no identities."]


@pytest.mark.parametrize("start", [openssh_agent, py_agent], ids=["ssh-agent", "pyagent"])
def test_ssh_login_with_token_key(token: SoftToken, tmp_path: Path, made_keys: Path,
                                  sshd_factory: Callable[..., SshdServer],
                                  start: StartAgent) -> None:
    authorized = tmp_path / "authorized_keys"
    authorized.write_text((made_keys / "rsa.pub").read_text())
    server = sshd_factory(f"AuthorizedKeysFile {authorized}")
    public_only = tmp_path / "token-rsa.pub"  # no private key beside it: the agent signs
    public_only.write_text((made_keys / "rsa.pub").read_text())
    with start(tmp_path / "agent", "-P", "/usr/lib/*",
               env=agent_env(token)) as agent:
        assert pyadd(["-s", token.module], agent.env(), input=TOKEN_PIN + "\n").returncode == 0
        ok = server.ssh("echo", "token login", identity=public_only,
                        env={"SSH_AUTH_SOCK": str(agent.socket)})
        assert (ok.returncode, ok.stdout) == (0, "token login\n"), ok.stderr + server.log_text()
        assert pyadd(["-e", token.module], agent.env()).returncode == 0
        refused = server.ssh("true", identity=public_only,
                             env={"SSH_AUTH_SOCK": str(agent.socket)})
        assert refused.returncode == 255


def test_token_key_certificates(token: SoftToken, tmp_path: Path, made_keys: Path) -> None:
    """-s with certificate files attaches them to the token keys (associated-certs);
    with -C only the certificates are loaded."""
    ca = tmp_path / "ca"
    done = run([tool_path("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", str(ca)])
    assert done.returncode == 0
    pub = tmp_path / "ec.pub"
    pub.write_text((made_keys / "ec.pub").read_text())
    done = run([tool_path("ssh-keygen"), "-q", "-s", str(ca), "-I", "token cert", "-n", "u",
                str(pub)])
    assert done.returncode == 0, done.stderr
    cert = tmp_path / "ec-cert.pub"
    with py_agent(tmp_path / "py", "-P", "/usr/lib/*", env=agent_env(token)) as agent:
        added = pyadd(["-s", token.module, str(cert)], agent.env(), input=TOKEN_PIN + "\n")
        assert added.returncode == 0, added.stderr
        listed = pyadd(["-l"], agent.env()).stdout.splitlines()
        types = sorted(line.split()[-1] for line in listed)
        assert types == ["(ECDSA)", "(ECDSA-CERT)", "(RSA)"]
        assert pyadd(["-T", str(cert)], agent.env()).returncode == 0
        assert pyadd(["-e", token.module], agent.env()).returncode == 0
        added = pyadd(["-C", "-s", token.module, str(cert)], agent.env(),
                      input=TOKEN_PIN + "\n")
        assert added.returncode == 0, added.stderr
        listed = pyadd(["-l"], agent.env()).stdout.splitlines()
        assert len(listed) == 1 and listed[0].endswith("token ec (ECDSA-CERT)")
