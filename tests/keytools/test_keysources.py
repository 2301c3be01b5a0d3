"""pykeygen's injected key sources, in process: keytools signs through whatever agent or
token the caller hands it, and never imports the agent package itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from keytools.certificate import Certificate
from keytools.cli.keysources import AgentUnavailable, KeySources, Signer, TokenKey
from keytools.cli.pykeygen import main
from keytools.errors import KeyNotFound
from keytools.keyfile import load_public, save_private, save_public
from keytools.private import PrivateKey, generate
from keytools.public import PublicKey
from tests.helpers import REPO_ROOT


@pytest.fixture
def keys(tmp_path: Path) -> tuple[PrivateKey, Path, Path]:
    ca = generate("ed25519", None)
    user = generate("ed25519", None)
    save_public(str(tmp_path / "ca.pub"), ca.public, "ca")
    save_private(str(tmp_path / "user"), user, "user", "", "openssh", None, None)
    save_public(str(tmp_path / "user.pub"), user.public, "user")
    return ca, tmp_path / "ca.pub", tmp_path / "user.pub"


def _agent_holding(key: PrivateKey, used: list[PublicKey]) -> KeySources:
    def lookup(public: PublicKey) -> Signer:
        if not public.plain.same_key(key.public):
            raise KeyNotFound()
        used.append(public)
        return key.sign

    return KeySources(agent_signer=lookup)


def test_ca_sign_goes_through_the_injected_agent(keys: tuple[PrivateKey, Path, Path]) -> None:
    ca, ca_pub, user_pub = keys
    used: list[PublicKey] = []
    code = main(["-q", "-s", str(ca_pub), "-U", "-I", "id", "-n", "p", str(user_pub)],
                sources=_agent_holding(ca, used))
    assert code == 0 and len(used) == 1
    cert, _ = load_public(str(user_pub.with_name("user-cert.pub")))
    assert isinstance(cert, Certificate) and cert.signature_key.same_key(ca.public)
    cert.check_signature()


def test_agent_errors_become_ssh_keygen_messages(keys: tuple[PrivateKey, Path, Path],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    _, ca_pub, user_pub = keys

    def absent(public: PublicKey) -> Signer:
        raise AgentUnavailable()

    argv = ["-s", str(ca_pub), "-U", "-I", "id", str(user_pub)]
    assert main(argv, sources=KeySources(agent_signer=absent)) == 255
    assert capsys.readouterr().err == "Cannot use public key for CA signature: agent not present\n"
    other = generate("ed25519", None)
    assert main(argv, sources=_agent_holding(other, [])) == 255
    assert capsys.readouterr().err == f"CA key {ca_pub} not found in agent\n"


def test_token_source_lists_and_signs(keys: tuple[PrivateKey, Path, Path],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    ca, ca_pub, user_pub = keys
    asked: list[tuple[str, str | None]] = []

    def token(provider: str, pin: str | None) -> list[TokenKey]:
        asked.append((provider, pin))
        return [TokenKey(ca.public, "on token", ca.sign)]

    sources = KeySources(pkcs11_keys=token)
    assert main(["-D", "lib.so"], sources=sources) == 0
    assert capsys.readouterr().out == ca.public.openssh("on token") + "\n"
    assert main(["-q", "-s", str(ca_pub), "-D", "lib.so", "-P", "1234", "-I", "t",
                 str(user_pub)], sources=sources) == 0
    assert asked == [("lib.so", None), ("lib.so", "1234")]
    cert, _ = load_public(str(user_pub.with_name("user-cert.pub")))
    assert isinstance(cert, Certificate)
    cert.check_signature()


def test_without_sources_the_operations_say_so(keys: tuple[PrivateKey, Path, Path],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    _, ca_pub, user_pub = keys
    for argv in (["-D", "lib.so"], ["-s", str(ca_pub), "-U", "-I", "i", str(user_pub)],
                 ["-s", str(ca_pub), "-D", "lib.so", "-I", "i", str(user_pub)]):
        assert main(argv) == 1
        assert "not implemented yet" in capsys.readouterr().err


def test_keytools_cli_does_not_import_agent() -> None:
    code = ("import sys, keytools.cli.pykeygen, keytools.cli.keygen_certs, "
            "keytools.cli.keygen_sshsig, keytools.cli.keygen_tokens; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('agent', 'protocol')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO_ROOT, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
