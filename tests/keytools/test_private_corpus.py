"""Every private key in the conformance corpus loads, matches what ssh-keygen says of it,
and has the numbers recorded in its ``.param.*`` files."""

from __future__ import annotations

from pathlib import Path

import pytest

from keytools.errors import FeatureUnsupported, KeyTypeUnknown, WrongPassphrase
from keytools.keyfile import load_private
from keytools.private import EcdsaPrivate, PrivateKey, RsaPrivate, SkEcdsaPrivate, SkEd25519Private
from keytools.public import parse_public_line
from tests.helpers import TESTDATA, private_copy, run

SSHKEY = TESTDATA / "sshkey"
PASSPHRASE = (SSHKEY / "pw").read_text().strip() if (SSHKEY / "pw").exists() else ""


def _private_files() -> list[str]:
    """Corpus files that are private keys: sshkey/X_1 etc., sshsig/X, regress/*.prv."""
    names: list[str] = []
    for sub in ("sshkey", "sshsig"):
        folder = TESTDATA / sub
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if "." in path.name or path.name in ("pw", "namespace", "signed-data"):
                continue
            if path.read_bytes().startswith(b"-----BEGIN"):
                names.append(f"{sub}/{path.name}")
    regress = TESTDATA / "regress"
    names += [f"regress/{p.name}" for p in sorted(regress.glob("*_openssh.prv"))]
    return names


PRIVATE_FILES = _private_files()
ENCRYPTED = [n for n in PRIVATE_FILES if n.endswith("_pw")]


def _skip_unsupported(name: str) -> None:
    if "mldsa44" in name:
        pytest.skip("ML-DSA-44 composite keys (OpenSSH 10.4, experimental) are not supported")


def _load(name: str, tmp_path: Path) -> tuple[PrivateKey, str, Path]:
    _skip_unsupported(name)
    copy = private_copy(name, tmp_path)
    key, comment = load_private(str(copy), PASSPHRASE if name.endswith("_pw") else None)
    return key, comment, copy


def test_corpus_found() -> None:
    assert len(PRIVATE_FILES) >= 20
    assert ENCRYPTED


@pytest.mark.parametrize("name", PRIVATE_FILES)
def test_loads_like_ssh_keygen(name: str, tmp_path: Path, ssh_keygen: str) -> None:
    """Our public key and comment are exactly what ``ssh-keygen -y`` prints."""
    key, comment, copy = _load(name, tmp_path)
    proc = run([ssh_keygen, "-y", "-P", PASSPHRASE, "-f", copy])
    assert proc.returncode == 0, proc.stderr
    assert key.public.openssh(comment) + "\n" == proc.stdout


@pytest.mark.parametrize("name", PRIVATE_FILES)
def test_public_matches_pub_file(name: str, tmp_path: Path) -> None:
    key, _, _ = _load(name, tmp_path)
    pub = TESTDATA / (name.removesuffix("_pw").removesuffix(".prv") + ".pub")
    if name.startswith("sshkey/") and "_n" in name:
        pub = TESTDATA / (name.removesuffix("_pw").replace("_n", "_1") + ".pub")
    expected, _ = parse_public_line(pub.read_text())
    assert key.public.blob() == expected.blob()
    assert key.key_type == expected.key_type
    assert key.bits == expected.bits


@pytest.mark.parametrize("name", PRIVATE_FILES)
def test_signatures_verify(name: str, tmp_path: Path) -> None:
    key, _, _ = _load(name, tmp_path)
    if isinstance(key, SkEd25519Private | SkEcdsaPrivate):
        with pytest.raises(FeatureUnsupported):
            key.sign(b"data")
        return
    signature = key.sign(b"some data")
    key.public.verify(b"some data", signature)


@pytest.mark.parametrize("name", ENCRYPTED)
@pytest.mark.parametrize("passphrase", [None, "", "wrong passphrase", PASSPHRASE + "x"])
def test_wrong_passphrase(name: str, passphrase: str | None, tmp_path: Path) -> None:
    _skip_unsupported(name)
    copy = private_copy(name, tmp_path)
    with pytest.raises(WrongPassphrase) as info:
        load_private(str(copy), passphrase)
    assert str(info.value) == "incorrect passphrase supplied to decrypt private key"


def _param(name: str, field: str) -> str:
    return (SSHKEY / f"{name}.param.{field}").read_text().strip()


def _hex(text: str) -> int:
    return int(text, 16)


@pytest.mark.parametrize(
    "name", sorted({p.name.split(".")[0] for p in SSHKEY.glob("rsa_*.param.n")})
)
@pytest.mark.parametrize("suffix", ["", "_pw"])
def test_rsa_params(name: str, suffix: str, tmp_path: Path) -> None:
    if not (SSHKEY / (name + suffix)).exists():
        pytest.skip(f"no {name}{suffix} in the corpus")
    key, _, _ = _load(f"sshkey/{name}{suffix}", tmp_path)
    assert isinstance(key, RsaPrivate)
    assert key.n == _hex(_param(name, "n"))
    assert {key.p, key.q} == {_hex(_param(name, "p")), _hex(_param(name, "q"))}
    assert key.p * key.q == key.n


OPENSSL_CURVES = {"prime256v1": "nistp256", "secp384r1": "nistp384", "secp521r1": "nistp521"}


@pytest.mark.parametrize(
    "name", sorted({p.name.split(".")[0] for p in SSHKEY.glob("ecdsa_*.param.curve")})
)
@pytest.mark.parametrize("suffix", ["", "_pw"])
def test_ecdsa_params(name: str, suffix: str, tmp_path: Path) -> None:
    if not (SSHKEY / (name + suffix)).exists():
        pytest.skip(f"no {name}{suffix} in the corpus")
    key, _, _ = _load(f"sshkey/{name}{suffix}", tmp_path)
    assert isinstance(key, EcdsaPrivate)
    assert key.curve == OPENSSL_CURVES[_param(name, "curve")]
    assert key.d == _hex(_param(name, "priv"))
    assert key.point == bytes.fromhex(_param(name, "pub"))


def test_mldsa_is_an_unknown_type(tmp_path: Path) -> None:
    """Until ML-DSA is supported, its keys fail cleanly with OpenSSH's wording."""
    path = SSHKEY / "mldsa44_ed25519_1"
    if not path.exists():
        pytest.skip("no ML-DSA key in the corpus")
    copy = private_copy(path, tmp_path)
    with pytest.raises(KeyTypeUnknown) as info:
        load_private(str(copy), None)
    assert str(info.value) == "unknown or unsupported key type"
