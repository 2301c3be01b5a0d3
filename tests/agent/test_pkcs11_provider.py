"""agent.pkcs11 against a real SoftHSM2 token: keys made by pykeygen are imported onto
the token, then found, listed and used for signing there (the secret never leaves it).

The library is loaded in this process with SOFTHSM2_CONF pointing at a temporary token
directory; every provider is closed (C_Finalize) at the end of its test, so the next test
re-reads its own configuration.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.certkey import certify
from agent.keyring import KeyRing
from agent.pkcs11 import Pkcs11Backend, Pkcs11Error, TokenKey, canonical_provider, load_provider
from keytools.certificate import Certificate
from keytools.errors import FeatureUnsupported
from keytools.keyfile import load_public
from keytools.public import EcdsaPublic, RsaPublic
from keytools.wire import Writer
from tests.helpers import run, tool_path
from tests.interop.pyadd_support import (
    TOKEN_PIN,
    SoftToken,
    import_keys,
    pykeygen,
    softhsm_token,
)

NAMES = {"rsa": "rsa key", "ec256": "ec key", "ec384": ""}


@pytest.fixture(scope="module")
def made_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pk")
    pykeygen("-t", "rsa", "-b", "2048", "-N", "", "-f", str(d / "rsa"))
    pykeygen("-t", "ecdsa", "-b", "256", "-N", "", "-f", str(d / "ec256"))
    pykeygen("-t", "ecdsa", "-b", "384", "-N", "", "-f", str(d / "ec384"))
    ca = d / "ca"
    done = run([tool_path("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", str(ca)])
    assert done.returncode == 0
    done = run([tool_path("ssh-keygen"), "-q", "-s", str(ca), "-I", "token cert", "-n", "u",
                str(d / "ec256.pub")])
    assert done.returncode == 0, done.stderr
    return d


@pytest.fixture
def token(tmp_path: Path, made_keys: Path, monkeypatch: pytest.MonkeyPatch) -> SoftToken:
    tok = softhsm_token(tmp_path / "hsm")
    import_keys(tok, [(made_keys / name, label) for name, label in NAMES.items()])
    monkeypatch.setenv("SOFTHSM2_CONF", str(tok.conf))
    return tok


@pytest.fixture
def provider(token: SoftToken) -> Iterator[list[TokenKey]]:
    loaded = load_provider(token.module, TOKEN_PIN)
    try:
        yield loaded.keys
    finally:
        loaded.close()


def _by_blob(keys: list[TokenKey]) -> dict[bytes, TokenKey]:
    return {k.public.blob(): k for k in keys}


def test_finds_every_imported_key(provider: list[TokenKey], made_keys: Path,
                                  token: SoftToken) -> None:
    found = _by_blob(provider)
    assert len(found) == 3
    for name, label in NAMES.items():
        pub, _ = load_public(str(made_keys / f"{name}.pub"))
        key = found[pub.blob()]
        assert key.label == label
        assert key.provider == canonical_provider(token.module)
        assert key.comment == (label or key.provider)


@pytest.mark.parametrize("algorithm", [None, "rsa-sha2-256", "rsa-sha2-512", "ssh-rsa"])
def test_rsa_signs_on_token(provider: list[TokenKey], algorithm: str | None) -> None:
    key = next(k for k in provider if isinstance(k.public, RsaPublic))
    sig = key.sign(b"data to sign", algorithm)
    key.public.verify(b"data to sign", sig)
    wanted = algorithm or "rsa-sha2-512"
    assert sig[4:4 + len(wanted)] == wanted.encode()
    with pytest.raises(Exception):  # noqa: B017 - any verification failure
        key.public.verify(b"other data", sig)


def test_ecdsa_signs_on_token(provider: list[TokenKey]) -> None:
    keys = [k for k in provider if isinstance(k.public, EcdsaPublic)]
    assert sorted(k.public.bits for k in keys) == [256, 384]
    for key in keys:
        for data in (b"", b"x" * 5000):
            key.public.verify(data, key.sign(data))


def test_secret_never_leaves_the_token(provider: list[TokenKey]) -> None:
    key = provider[0]
    with pytest.raises(FeatureUnsupported):
        key.encode_private_fields(Writer())
    with pytest.raises(FeatureUnsupported):
        key.to_cryptography()


def test_certificate_grafted_on_token_key(provider: list[TokenKey], made_keys: Path) -> None:
    cert, _ = load_public(str(made_keys / "ec256-cert.pub"))
    assert isinstance(cert, Certificate)
    key = _by_blob(provider)[cert.key.blob()]
    certified = certify(key, cert)
    assert certified.public.blob() == cert.blob()
    cert.verify(b"abc", certified.sign(b"abc"))


def test_wrong_pin_and_bad_provider(token: SoftToken, tmp_path: Path) -> None:
    with pytest.raises(Pkcs11Error, match="login"):
        load_provider(token.module, "0000")
    with pytest.raises(Pkcs11Error):
        load_provider(str(tmp_path / "missing.so"), TOKEN_PIN)
    not_a_library = tmp_path / "lib.so"
    not_a_library.write_text("not a library")
    with pytest.raises(Pkcs11Error):
        load_provider(str(not_a_library), TOKEN_PIN)
    # the right PIN still works after the failures
    loaded = load_provider(token.module, TOKEN_PIN)
    assert len(loaded.keys) == 3
    loaded.close()


def test_empty_token_has_no_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tok = softhsm_token(tmp_path / "empty")
    monkeypatch.setenv("SOFTHSM2_CONF", str(tok.conf))
    with pytest.raises(Pkcs11Error, match="no keys"):
        load_provider(tok.module, TOKEN_PIN)


def test_closed_provider_stops_signing(token: SoftToken) -> None:
    loaded = load_provider(token.module, TOKEN_PIN)
    key = loaded.keys[0]
    key.sign(b"ok")
    loaded.close()
    with pytest.raises(Pkcs11Error):
        key.sign(b"too late")


def test_backend_load_unload(token: SoftToken) -> None:
    backend = Pkcs11Backend()
    canonical = canonical_provider(token.module)
    keys = backend.load(canonical, TOKEN_PIN)
    assert {comment for _, comment in keys} == set(NAMES.values())
    with pytest.raises(Pkcs11Error, match="already loaded"):
        backend.load(canonical, TOKEN_PIN)
    backend.unload(canonical)
    with pytest.raises(Pkcs11Error, match="not loaded"):
        backend.unload(canonical)
    assert len(backend.load(canonical, TOKEN_PIN)) == 3
    backend.close()


def test_keyring_with_token_keys(token: SoftToken, made_keys: Path) -> None:
    """The agent's key store lists, signs with and removes token keys (ssh-agent -P's
    allowlist applies to the canonical path)."""
    from agent.errors import AgentError
    from agent.interface import Constraints

    canonical = canonical_provider(token.module)
    refusing = KeyRing(smartcard=Pkcs11Backend(), allowed_providers="/nowhere/*")
    with pytest.raises(AgentError):
        refusing.add_smartcard(token.module, TOKEN_PIN)

    backend = Pkcs11Backend()
    ring = KeyRing(smartcard=backend, allowed_providers=canonical)
    cert, _ = load_public(str(made_keys / "ec256-cert.pub"))
    ring.add_smartcard(token.module, TOKEN_PIN, Constraints(associated_certs=(cert,)))
    listed = {i.key.blob(): i.comment for i in ring.list()}
    assert len(listed) == 4 and listed[cert.blob()] == "ec key"
    for identity in ring.list():
        sig = ring.sign(identity.key, b"challenge")
        identity.key.verify(b"challenge", sig)
    ring.remove_smartcard(token.module, "")
    assert ring.list() == []
    backend.close()
