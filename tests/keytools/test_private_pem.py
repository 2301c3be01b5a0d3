"""PEM and PKCS#8 private keys: both directions against ssh-keygen, encrypted and not,
and ssh-keygen's choices for key types PEM cannot hold."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from keytools.errors import (
    FeatureUnsupported,
    InvalidArgument,
    InvalidFormat,
    PassphraseTooShort,
    SshError,
    WrongPassphrase,
)
from keytools.keyfile import is_encrypted, load_private, save_private
from keytools.private import DsaPrivate, PrivateKey, from_cryptography, generate
from keytools.private.pem import decode_pem_private, encode_pem_private, is_pem_private
from keytools.public import parse_public_line
from tests.helpers import run

PASS = "pem passphrase"


@pytest.fixture(scope="module")
def keys() -> dict[str, PrivateKey]:
    return {
        "rsa1024": generate("rsa", 1024),
        "rsa2048": generate("rsa", 2048),
        "ecdsa256": generate("ecdsa", 256),
        "ecdsa384": generate("ecdsa", 384),
        "ecdsa521": generate("ecdsa", 521),
    }


KINDS = ["rsa1024", "rsa2048", "ecdsa256", "ecdsa384", "ecdsa521"]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def _first_line(path: Path) -> str:
    return path.read_text().splitlines()[0]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fmt", ["PEM", "PKCS8"])
@pytest.mark.parametrize("passphrase", ["", PASS])
def test_ssh_keygen_reads_ours(
    kind: str, fmt: str, passphrase: str, keys: dict[str, PrivateKey], tmp_path: Path,
    ssh_keygen: str,
) -> None:
    key = keys[kind]
    path = tmp_path / "k"
    save_private(str(path), key, "ignored for PEM", passphrase, fmt)
    assert is_pem_private(path.read_bytes())
    assert is_encrypted(str(path)) == bool(passphrase)
    proc = run([ssh_keygen, "-y", "-P", passphrase, "-f", path])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == key.public.openssh() + "\n"
    assert load_private(str(path), passphrase) == (key, "")
    proc = run([ssh_keygen, "-p", "-P", passphrase, "-N", "changed it", "-a", "2", "-f", path])
    assert proc.returncode == 0, proc.stderr
    assert load_private(str(path), "changed it")[0] == key


@pytest.mark.parametrize(
    ("ktype", "bits"), [("rsa", "1024"), ("ecdsa", "256"), ("ecdsa", "384"), ("ecdsa", "521")]
)
@pytest.mark.parametrize("fmt", ["PEM", "PKCS8"])
@pytest.mark.parametrize("passphrase", ["", PASS])
def test_we_read_ssh_keygens(
    ktype: str, bits: str, fmt: str, passphrase: str, tmp_path: Path, ssh_keygen: str,
    keys: dict[str, PrivateKey],
) -> None:
    theirs = tmp_path / "theirs"
    proc = run([ssh_keygen, "-t", ktype, "-b", bits, "-m", fmt, "-N", passphrase, "-q",
                "-C", "c", "-f", theirs])
    assert proc.returncode == 0, proc.stderr
    key, comment = load_private(str(theirs), passphrase)
    assert comment == ""
    assert key.public == parse_public_line((tmp_path / "theirs.pub").read_text())[0]
    key.public.verify(b"x", key.sign(b"x"))
    if passphrase:
        for wrong in (None, "", "wrong"):
            with pytest.raises(WrongPassphrase):
                load_private(str(theirs), wrong)
    # Our file for a key of the same kind starts with the same armour line.
    ours = tmp_path / "ours"
    same_kind = keys[f"{ktype}{bits}"]
    save_private(str(ours), same_kind, "c", passphrase, fmt)
    assert _first_line(ours) == _first_line(theirs)
    if passphrase and fmt == "PEM":
        assert ours.read_text().splitlines()[1] == theirs.read_text().splitlines()[1]


@pytest.mark.parametrize("fmt", ["PEM", "PKCS8"])
def test_ed25519_is_written_as_openssh_like_ssh_keygen(
    fmt: str, tmp_path: Path, ssh_keygen: str
) -> None:
    """ssh-keygen (9.2) writes Ed25519 keys as openssh-key-v1 whatever -m says."""
    theirs = tmp_path / "theirs"
    assert run([ssh_keygen, "-t", "ed25519", "-m", fmt, "-N", "", "-q", "-f", theirs]
               ).returncode == 0
    ours = tmp_path / "ours"
    key = generate("ed25519")
    save_private(str(ours), key, "comment", "", fmt)
    assert _first_line(ours) == _first_line(theirs)
    assert load_private(str(ours), None) == (key, "comment")
    with pytest.raises(FeatureUnsupported):
        encode_pem_private(key, b"", fmt)


def test_ed25519_pkcs8_refused_like_ssh_keygen(tmp_path: Path, ssh_keygen: str) -> None:
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ed25519

    data = ed25519.Ed25519PrivateKey.generate().private_bytes(
        ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    path = _write(tmp_path / "k", data)
    with pytest.raises(InvalidFormat) as info:
        load_private(str(path), None)
    proc = run([ssh_keygen, "-y", "-f", path])
    if proc.returncode == 0:
        pytest.xfail("this ssh-keygen reads Ed25519 PKCS#8; pyssh follows OpenSSH 9.2")
    assert proc.stderr.strip() == f'Load key "{path}": {info.value}'


@pytest.mark.parametrize("fmt", ["PEM", "PKCS8"])
def test_short_passphrase_refused_like_ssh_keygen(
    fmt: str, keys: dict[str, PrivateKey], tmp_path: Path, ssh_keygen: str
) -> None:
    path = tmp_path / "k"
    with pytest.raises(PassphraseTooShort) as info:
        save_private(str(path), keys["ecdsa256"], "", "four", fmt)
    assert not path.exists()
    proc = run([ssh_keygen, "-t", "ecdsa", "-m", fmt, "-N", "four", "-q", "-f", path])
    assert proc.returncode != 0
    assert proc.stderr.strip() == f'Saving key "{path}" failed: {info.value}'
    # The openssh format has no such minimum.
    save_private(str(path), keys["ecdsa256"], "", "four", "openssh", rounds=1)
    assert load_private(str(path), "four")[0] == keys["ecdsa256"]


def test_unknown_format(keys: dict[str, PrivateKey]) -> None:
    with pytest.raises(InvalidArgument):
        encode_pem_private(keys["rsa1024"], b"", "DER")


def _curve_key(curve_name: str) -> bytes:
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ec

    curve = {"p224": ec.SECP224R1(), "k256": ec.SECP256K1()}[curve_name]
    return ec.generate_private_key(curve).private_bytes(
        ser.Encoding.PEM, ser.PrivateFormat.TraditionalOpenSSL, ser.NoEncryption())


@pytest.mark.parametrize("curve", ["p224", "k256"])
def test_other_curves_refused_like_ssh_keygen(curve: str, tmp_path: Path,
                                              ssh_keygen: str) -> None:
    path = _write(tmp_path / "k", _curve_key(curve))
    with pytest.raises(InvalidFormat) as info:
        load_private(str(path), None)
    proc = run([ssh_keygen, "-y", "-f", path])
    assert proc.stderr.strip() == f'Load key "{path}": {info.value}'


def test_damaged_pem() -> None:
    cases = [
        b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
        b"-----BEGIN EC PRIVATE KEY-----\n-----END EC PRIVATE KEY-----\n",
        b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN RSA PRIVATE KEY-----\n",
        b"garbage",
        b"",
    ]
    for data in cases:
        with pytest.raises(InvalidFormat):
            decode_pem_private(data, None)
        with pytest.raises(InvalidFormat):
            decode_pem_private(data, b"passphrase")


def test_truncated_pem(keys: dict[str, PrivateKey]) -> None:
    for fmt in ("PEM", "PKCS8"):
        for passphrase in (b"", b"secret"):
            data = encode_pem_private(keys["rsa1024"], passphrase, fmt)
            for cut in range(0, len(data), 23):
                with pytest.raises(SshError):
                    decode_pem_private(data[:cut], passphrase or None)


def test_pem_passphrase_ignored_when_unencrypted(keys: dict[str, PrivateKey]) -> None:
    data = encode_pem_private(keys["ecdsa256"], b"", "PEM")
    assert decode_pem_private(data, b"some passphrase") == keys["ecdsa256"]


def test_dsa_pem(tmp_path: Path, ssh_keygen: str) -> None:
    """DSA PEM files are read (and can be re-written, e.g. by ssh-keygen -i)."""
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import dsa

    obj = dsa.generate_private_key(1024)
    data = obj.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.TraditionalOpenSSL,
                             ser.BestAvailableEncryption(b"dsa passphrase"))
    assert b"BEGIN DSA PRIVATE KEY" in data
    path = _write(tmp_path / "k", data)
    key, comment = load_private(str(path), "dsa passphrase")
    assert isinstance(key, DsaPrivate) and comment == ""
    assert key == from_cryptography(obj)
    plain = encode_pem_private(key, b"", "PEM")
    assert decode_pem_private(plain, None) == key
    query = subprocess.run(["ssh", "-Q", "key"], capture_output=True, text=True, check=False)
    if "ssh-dss" in query.stdout.split():
        proc = run([ssh_keygen, "-y", "-P", "dsa passphrase", "-f", path])
        assert proc.stdout == key.public.openssh() + "\n"


def test_short_dek_info_iv_is_invalid_format_not_a_panic() -> None:
    """cryptography's Rust code panics on an IV shorter than the cipher's; we refuse it."""
    from keytools.errors import InvalidFormat
    from keytools.private.pem import decode_pem_private

    data = (b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
            b"DEK-Info: AES-128-CBC,00112233445566778899aabbccddee\n\nAAAA\n"
            b"-----END RSA PRIVATE KEY-----\n")
    with pytest.raises((InvalidFormat, WrongPassphrase)):
        decode_pem_private(data, b"secret")
