"""ssh.com "SSH2 ENCRYPTED PRIVATE KEY" import, compared with ``ssh-keygen -i``."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from keytools.errors import (
    InvalidFormat,
    KeyLength,
    KeyTypeUnknown,
    SshError,
    UnknownCipher,
)
from keytools.keyfile import load_private
from keytools.private import DsaPrivate, RsaPrivate, from_cryptography
from keytools.private.pem import decode_pem_private, encode_pem_private
from keytools.private.ssh2 import (
    SSH_COM_PRIVATE_KEY_MAGIC,
    decode_ssh2_private,
    decode_ssh2_private_blob,
    parse_ssh2_text,
)
from keytools.public import parse_public_line
from keytools.wire import Writer
from tests.helpers import TESTDATA, private_copy, run

SSH2_FILE = TESTDATA / "regress" / "rsa_ssh2.prv"
RSA_TYPE = "if-modn{sign{rsa-pkcs1-sha1},encrypt{rsa-pkcs1v2-oaep}}"
DSA_TYPE = "dl-modp{sign{dsa-nist-sha1},dh{plain}}"


def _bits(value: int) -> bytes:
    n = value.bit_length()
    return n.to_bytes(4, "big") + value.to_bytes((n + 7) // 8, "big")


def build_blob(key_type: str, cipher: str, keydata: bytes) -> bytes:
    """The binary layout ssh.com used: magic, total length, type, cipher, string(string)."""
    inner = Writer().string(key_type).string(cipher).string(Writer().string(keydata).getvalue())
    body = inner.getvalue()
    total = 8 + len(body)
    return Writer().uint32(SSH_COM_PRIVATE_KEY_MAGIC).uint32(total).raw(body).getvalue()


def rsa_keydata(key: RsaPrivate) -> bytes:
    return b"".join(_bits(v) for v in (key.e, key.d, key.n, key.iqmp, key.q, key.p))


def armour(blob: bytes, headers: str = 'Comment: "test"\n') -> str:
    text = base64.b64encode(blob).decode("ascii")
    lines = "\n".join(text[i : i + 70] for i in range(0, len(text), 70))
    return (f"---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\n{headers}{lines}\n"
            "---- END SSH2 ENCRYPTED PRIVATE KEY ----\n")


@pytest.fixture(scope="module")
def corpus_key() -> RsaPrivate:
    key = decode_ssh2_private(SSH2_FILE.read_text())
    assert isinstance(key, RsaPrivate)
    return key


def test_matches_ssh_keygen_i(corpus_key: RsaPrivate, ssh_keygen: str) -> None:
    """ssh-keygen -i prints the key as PKCS#1 PEM; ours is the same key, byte for byte."""
    proc = run([ssh_keygen, "-i", "-f", SSH2_FILE])
    assert proc.returncode == 0, proc.stderr
    assert decode_pem_private(proc.stdout.encode("ascii"), None) == corpus_key
    assert encode_pem_private(corpus_key, b"", "PEM").decode("ascii") == proc.stdout


def test_matches_openssh_copy(corpus_key: RsaPrivate) -> None:
    expected, _ = parse_public_line((TESTDATA / "regress" / "rsa_openssh.pub").read_text())
    assert corpus_key.public == expected
    assert corpus_key.bits == 1024


def test_layout_understood(corpus_key: RsaPrivate) -> None:
    private, body = parse_ssh2_text(SSH2_FILE.read_text())
    assert private
    assert body == build_blob(RSA_TYPE, "none", rsa_keydata(corpus_key))


def test_not_a_key_file_for_load_private(tmp_path: Path, ssh_keygen: str) -> None:
    """Like OpenSSH, the loaders for use do not read this format (only -i does)."""
    copy = private_copy(SSH2_FILE, tmp_path)
    with pytest.raises(InvalidFormat):
        load_private(str(copy), None)
    assert run([ssh_keygen, "-y", "-f", copy]).returncode != 0


def test_header_continuation(corpus_key: RsaPrivate) -> None:
    _, body = parse_ssh2_text(SSH2_FILE.read_text())
    text = armour(body, 'Subject: me\nComment: "a long \\\ncomment continued"\n')
    assert decode_ssh2_private(text) == corpus_key
    assert decode_ssh2_private(text.replace("\n", "\r\n")) == corpus_key


def test_small_exponent_quirk(corpus_key: RsaPrivate) -> None:
    """ssh-keygen reads e as one byte when that byte is >= 30, else as three bytes."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    k = corpus_key
    # Re-derive d for e = 37 (a one-byte exponent) from the same primes.
    phi = (k.p - 1) * (k.q - 1)
    e = 37
    if phi % e == 0:
        pytest.skip("37 divides phi for this key")
    d = pow(e, -1, phi)
    obj = rsa.RSAPrivateNumbers(k.p, k.q, d, rsa.rsa_crt_dmp1(d, k.p), rsa.rsa_crt_dmq1(d, k.q),
                                k.iqmp, rsa.RSAPublicNumbers(e, k.n)).private_key()
    small = from_cryptography(obj)
    assert isinstance(small, RsaPrivate)
    assert decode_ssh2_private_blob(build_blob(RSA_TYPE, "none", rsa_keydata(small))) == small


def test_dsa(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import dsa

    key = from_cryptography(dsa.generate_private_key(1024))
    assert isinstance(key, DsaPrivate)
    keydata = (0).to_bytes(4, "big") + b"".join(
        _bits(v) for v in (key.p, key.g, key.q, key.y, key.x))
    assert decode_ssh2_private(armour(build_blob(DSA_TYPE, "none", keydata))) == key


def test_damage(corpus_key: RsaPrivate) -> None:
    good = build_blob(RSA_TYPE, "none", rsa_keydata(corpus_key))
    with pytest.raises(InvalidFormat):
        decode_ssh2_private_blob(b"\x3f\x6f\xf9\xec" + good[4:])
    with pytest.raises(UnknownCipher):
        decode_ssh2_private_blob(build_blob(RSA_TYPE, "3des-cbc", rsa_keydata(corpus_key)))
    with pytest.raises(KeyTypeUnknown):
        decode_ssh2_private_blob(build_blob("if-ecc{sign}", "none", rsa_keydata(corpus_key)))
    with pytest.raises(InvalidFormat):  # p and q swapped breaks iqmp
        k = corpus_key
        decode_ssh2_private_blob(build_blob(RSA_TYPE, "none", b"".join(
            _bits(v) for v in (k.e, k.d, k.n, k.iqmp, k.p, k.q))))
    for cut in range(0, len(good), 7):
        with pytest.raises(SshError):
            decode_ssh2_private_blob(good[:cut])
    with pytest.raises(InvalidFormat):
        decode_ssh2_private(
            "---- BEGIN SSH2 PUBLIC KEY ----\nAAAA\n---- END SSH2 PUBLIC KEY ----\n")
    with pytest.raises(InvalidFormat):
        decode_ssh2_private(armour(good).replace("P2/", "P2!"))


def test_small_rsa_refused(corpus_key: RsaPrivate) -> None:
    """A modulus under 1024 bits says "Invalid key length", as everywhere in OpenSSH."""
    n = corpus_key.n >> 200
    data = b"".join(_bits(v) for v in (65537, 3, n, 1, 3, n // 3))
    with pytest.raises(KeyLength):
        decode_ssh2_private_blob(build_blob(RSA_TYPE, "none", data))
