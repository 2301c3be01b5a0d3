"""Hypothesis properties of the public-key import parsers (RFC4716, PKCS8, PEM).

Arbitrary and mutated input must give a key or one of the project's SshError types:
never IndexError, ValueError, UnicodeError or a cryptography exception.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keytools.convert import (
    export_pem_public,
    export_pkcs8_public,
    import_pem_public,
    import_pkcs8_public,
)
from keytools.errors import InvalidFormat, SshError
from keytools.public import PublicKey, parse_public_line
from keytools.rfc4716 import (
    b64_pton,
    export_rfc4716,
    import_rfc4716,
    is_ssh2_private,
    rfc4716_payload,
)
from tests.helpers import TESTDATA

SSHKEY = TESTDATA / "sshkey"


def _key(name: str) -> PublicKey:
    return parse_public_line((SSHKEY / name).read_text())[0]


def _seeds() -> list[bytes]:
    out = [
        export_rfc4716(_key(name), "fuzz seed").encode()
        for name in ("rsa_1.pub", "ecdsa_1.pub", "ed25519_1-cert.pub", "ecdsa_sk1.pub")
    ]
    out += [export_pkcs8_public(_key(n)).encode() for n in ("rsa_1.pub", "ecdsa_2.pub")]
    out.append(export_pem_public(_key("rsa_1.pub")).encode())
    out.append((TESTDATA / "regress" / "rsa_ssh2.prv").read_bytes())
    return out


SEEDS = _seeds()
# Bytes that matter to these parsers: markers, header syntax, base64 and line ends.
INTERESTING = st.sampled_from(
    [b"\n", b"\r\n", b"\r", b"\\", b": ", b"=", b"==", b"-", b"----", b"-----", b" ", b"\t",
     b"\0", b"\xff", b"---- END ", b"-----END PUBLIC KEY-----\n", b"-----BEGIN PUBLIC KEY-----\n",
     b"Comment: x\n", b"\n\n", b"A", b"/", b"+", b"---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\n"]
)
EDIT = st.tuples(
    st.integers(min_value=0, max_value=4000),
    st.sampled_from(["insert", "delete", "replace"]),
    st.one_of(INTERESTING, st.binary(min_size=1, max_size=6)),
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid seed document with a few byte-level edits."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for pos, op, chunk in draw(st.lists(EDIT, min_size=1, max_size=6)):
        pos %= len(data) + 1
        if op == "insert":
            data[pos:pos] = chunk
        elif op == "delete":
            del data[pos : pos + len(chunk)]
        else:
            data[pos : pos + len(chunk)] = chunk
    return bytes(data)


INPUTS = st.one_of(st.binary(max_size=600), mutated())
TEXT_INPUTS = st.one_of(st.text(max_size=400), mutated().map(lambda b: b.decode("latin-1")))
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _only_ssh_errors(parse: Callable[[bytes | str], object], data: bytes | str) -> None:
    try:
        result = parse(data)
    except SshError:
        return
    assert result is not None


@FUZZ
@given(INPUTS)
def test_import_rfc4716_bytes(data: bytes) -> None:
    _only_ssh_errors(import_rfc4716, data)
    _only_ssh_errors(rfc4716_payload, data)
    assert isinstance(is_ssh2_private(data), bool)


@FUZZ
@given(TEXT_INPUTS)
def test_import_rfc4716_text(text: str) -> None:
    _only_ssh_errors(import_rfc4716, text)


@FUZZ
@given(INPUTS)
def test_import_pkcs8_public(data: bytes) -> None:
    _only_ssh_errors(import_pkcs8_public, data)


@FUZZ
@given(INPUTS)
def test_import_pem_public(data: bytes) -> None:
    _only_ssh_errors(import_pem_public, data)


@FUZZ
@given(TEXT_INPUTS)
def test_import_pkcs8_pem_text(text: str) -> None:
    _only_ssh_errors(import_pkcs8_public, text)
    _only_ssh_errors(import_pem_public, text)


@FUZZ
@given(st.text(alphabet="ABCDEFab01+/= \t\n\r\v\f-:!", max_size=80))
def test_b64_pton_fails_only_with_invalid_format(text: str) -> None:
    try:
        raw = b64_pton(text)
    except InvalidFormat:
        return
    # whatever it accepts is canonical base64 once whitespace is gone
    assert base64.b64encode(raw).decode() == "".join(text.split())


@FUZZ
@given(st.binary(max_size=200), st.lists(st.sampled_from([" ", "\t", "\n", "\r"]), max_size=5),
       st.integers(min_value=0))
def test_b64_pton_round_trip(raw: bytes, spaces: list[str], where: int) -> None:
    text = base64.b64encode(raw).decode()
    for space in spaces:
        pos = where % (len(text) + 1)
        text = text[:pos] + space + text[pos:]
    assert b64_pton(text) == raw
