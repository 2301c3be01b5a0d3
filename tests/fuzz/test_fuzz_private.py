"""Private key parsers given arbitrary or damaged input raise only the project's errors.

Encrypted inputs use one bcrypt round, and the openssh decoder is told to refuse more
than a few (a flipped byte in the rounds field must not make a case take minutes).
Encrypted PKCS#8 (whose PBKDF2 iteration count a mutation could inflate) is not fuzzed.
"""

from __future__ import annotations

import base64
import contextlib
import functools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keytools.errors import SshError
from keytools.private import PrivateKey, decode_private_reader, encode_private_key, generate
from keytools.private.openssh import decode_openssh_private, encode_openssh_private
from keytools.private.pem import decode_pem_private, encode_pem_private
from keytools.private.ssh2 import decode_ssh2_private, parse_ssh2_text
from keytools.wire import Reader
from tests.fuzz.mutations import mutation
from tests.helpers import TESTDATA

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PASSPHRASE = b"fuzz passphrase"
MAX_ROUNDS = 4
BEGIN = b"-----BEGIN OPENSSH PRIVATE KEY-----\n"
END = b"-----END OPENSSH PRIVATE KEY-----\n"


@functools.cache
def _keys() -> tuple[PrivateKey, ...]:
    return (generate("ed25519"), generate("ecdsa", 256), generate("ecdsa", 521),
            generate("rsa", 1024))


def _unarmor(data: bytes) -> bytes:
    lines = data.split(b"\n")
    return base64.b64decode(b"".join(lines[1:-2]))


def _armor(blob: bytes, begin: bytes = BEGIN, end: bytes = END) -> bytes:
    text = base64.b64encode(blob)
    return begin + b"\n".join(text[i : i + 70] for i in range(0, len(text), 70)) + b"\n" + end


@functools.cache
def _openssh_blobs() -> tuple[bytes, ...]:
    """Decoded openssh-key-v1 files: plain, and encrypted with each kind of cipher."""
    keys = _keys()
    files = [encode_openssh_private(k, "comment") for k in keys]
    for cipher in ("aes256-ctr", "aes128-cbc", "aes256-gcm@openssh.com",
                   "chacha20-poly1305@openssh.com", "3des-cbc", "none"):
        files.append(encode_openssh_private(keys[0], "c", PASSPHRASE, cipher, 1))
    files.append(encode_openssh_private(keys[3], "rsa", PASSPHRASE, "aes128-ctr", 1))
    return tuple(_unarmor(f) for f in files)


@functools.cache
def _private_blobs() -> tuple[bytes, ...]:
    return tuple(encode_private_key(k) for k in _keys())


@functools.cache
def _pem_files() -> tuple[tuple[bytes, bytes, bytes, bytes], ...]:
    """(header line, extra headers, DER body, footer) of plain and legacy-encrypted PEM."""
    out = []
    for key in _keys()[1:]:
        for fmt, secret in (("PEM", b""), ("PKCS8", b""), ("PEM", PASSPHRASE)):
            lines = encode_pem_private(key, secret, fmt).split(b"\n")
            body_at = next(i for i, line in enumerate(lines) if line and b":" not in line
                           and not line.startswith(b"-----"))
            headers = b"\n".join(lines[1:body_at]) + (b"\n\n" if body_at > 1 else b"")
            der = base64.b64decode(b"".join(lines[body_at:-2]))
            out.append((lines[0] + b"\n", headers, der, lines[-2] + b"\n"))
    return tuple(out)


def _ssh2_body() -> bytes:
    return parse_ssh2_text((TESTDATA / "regress" / "rsa_ssh2.prv").read_text())[1]


mutated = mutation  # one byte-editing strategy for every fuzz test


def _decode_openssh(data: bytes, passphrase: bytes | None) -> None:
    with contextlib.suppress(SshError):
        decode_openssh_private(data, passphrase, max_rounds=MAX_ROUNDS)


# -- openssh-key-v1 -----------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=2048), st.sampled_from([None, b"", PASSPHRASE]))
def test_openssh_arbitrary_bytes(data: bytes, passphrase: bytes | None) -> None:
    _decode_openssh(data, passphrase)
    _decode_openssh(BEGIN + data + b"\n" + END, passphrase)
    _decode_openssh(_armor(b"openssh-key-v1\0" + data), passphrase)


@FUZZ
@given(st.data())
def test_openssh_mutated(data: st.DataObject) -> None:
    blob = data.draw(st.sampled_from(_openssh_blobs()))
    damaged = data.draw(mutated(blob))
    passphrase = data.draw(st.sampled_from([PASSPHRASE, None]))
    _decode_openssh(_armor(damaged), passphrase)


@FUZZ
@given(st.data())
def test_openssh_mutated_text(data: st.DataObject) -> None:
    text = _armor(data.draw(st.sampled_from(_openssh_blobs())))
    _decode_openssh(data.draw(mutated(text)), PASSPHRASE)


# -- the private key codec ----------------------------------------------------------------


def _decode_private(data: bytes) -> None:
    with contextlib.suppress(SshError):
        decode_private_reader(Reader(data))


@FUZZ
@given(st.binary(max_size=1024))
def test_private_reader_arbitrary(data: bytes) -> None:
    _decode_private(data)
    for name in (b"ssh-ed25519", b"ssh-rsa", b"ecdsa-sha2-nistp256", b"ssh-dss",
                 b"sk-ssh-ed25519@openssh.com", b"sk-ecdsa-sha2-nistp256@openssh.com"):
        _decode_private(len(name).to_bytes(4, "big") + name + data)


@FUZZ
@given(st.data())
def test_private_reader_mutated(data: st.DataObject) -> None:
    _decode_private(data.draw(mutated(data.draw(st.sampled_from(_private_blobs())))))


# -- PEM ----------------------------------------------------------------------------------


def _decode_pem(data: bytes, passphrase: bytes | None) -> None:
    with contextlib.suppress(SshError):
        decode_pem_private(data, passphrase)


@FUZZ
@given(st.binary(max_size=2048), st.sampled_from([None, PASSPHRASE]))
def test_pem_arbitrary(data: bytes, passphrase: bytes | None) -> None:
    _decode_pem(data, passphrase)
    for label in (b"RSA PRIVATE KEY", b"EC PRIVATE KEY", b"PRIVATE KEY", b"DSA PRIVATE KEY"):
        _decode_pem(_armor(data, b"-----BEGIN " + label + b"-----\n",
                           b"-----END " + label + b"-----\n"), passphrase)


@FUZZ
@given(st.data())
def test_pem_mutated_der(data: st.DataObject) -> None:
    head, headers, der, foot = data.draw(st.sampled_from(_pem_files()))
    damaged = data.draw(mutated(der))
    passphrase = PASSPHRASE if headers else None
    text = base64.b64encode(damaged)
    body = b"\n".join(text[i : i + 64] for i in range(0, len(text), 64))
    _decode_pem(head + headers + body + b"\n" + foot, passphrase)


@FUZZ
@given(st.data())
def test_pem_mutated_text(data: st.DataObject) -> None:
    head, headers, der, foot = data.draw(st.sampled_from(_pem_files()))
    text = base64.b64encode(der)
    whole = head + headers + b"\n".join(text[i : i + 64] for i in range(0, len(text), 64))
    _decode_pem(data.draw(mutated(whole + b"\n" + foot)), PASSPHRASE)


# -- SSH2 ---------------------------------------------------------------------------------


def _decode_ssh2(text: str) -> None:
    with contextlib.suppress(SshError):
        decode_ssh2_private(text)


@FUZZ
@given(st.text(max_size=2048))
def test_ssh2_arbitrary_text(text: str) -> None:
    _decode_ssh2(text)
    _decode_ssh2("---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\n" + text)


@FUZZ
@given(st.data())
def test_ssh2_mutated(data: st.DataObject) -> None:
    body = data.draw(mutated(_ssh2_body()))
    text = base64.b64encode(body).decode("ascii")
    _decode_ssh2("---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\nComment: x\n"
                 + "\n".join(text[i : i + 70] for i in range(0, len(text), 70))
                 + "\n---- END SSH2 ENCRYPTED PRIVATE KEY ----\n")


@FUZZ
@given(st.data())
def test_ssh2_mutated_text(data: st.DataObject) -> None:
    text = (TESTDATA / "regress" / "rsa_ssh2.prv").read_bytes()
    damaged = data.draw(mutated(text))
    _decode_ssh2(damaged.decode("utf-8", "surrogateescape"))
