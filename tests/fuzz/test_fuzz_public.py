"""Property tests of the public key parsers: a key or an SshError, never anything else."""

from __future__ import annotations

import base64
import contextlib

from hypothesis import given
from hypothesis import strategies as st

from keytools.certificate import Certificate
from keytools.errors import SshError
from keytools.public import PublicKey, decode_public_blob, parse_public_line
from tests.helpers import TESTDATA

_PATTERNS = ("sshkey/*.pub", "regress/*.pub", "hostkeys/*.pub", "authopt/*.cert", "sshsig/*.pub")


def _corpus_lines() -> list[str]:
    lines = []
    for pattern in _PATTERNS:
        for path in sorted(TESTDATA.glob(pattern)):
            if ".param." in path.name or path.name.startswith(("rsa1_", "mldsa44")):
                continue
            lines.append(path.read_text().splitlines()[0])
    return lines


LINES = _corpus_lines()
BLOBS = [base64.b64decode(line.split()[1]) for line in LINES]


def _check_key(key: PublicKey) -> None:
    """A key that decoded must re-encode to a blob that decodes to the same key."""
    blob = key.blob()
    again = decode_public_blob(blob)
    assert again == key
    assert again.blob() == blob
    assert key.bits > 0
    if isinstance(key, Certificate):
        with contextlib.suppress(SshError):
            key.check_signature()


def _decode(blob: bytes) -> None:
    try:
        key = decode_public_blob(blob)
    except SshError:
        return
    _check_key(key)


@st.composite
def mutated_blobs(draw: st.DrawFn) -> bytes:
    """A corpus blob with a few bytes changed, inserted, removed or the tail cut off."""
    blob = bytearray(draw(st.sampled_from(BLOBS)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(("set", "insert", "delete", "truncate", "length")))
        pos = draw(st.integers(0, max(len(blob) - 1, 0)))
        if op == "set" and blob:
            blob[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            blob[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and blob:
            del blob[pos : pos + draw(st.integers(1, 8))]
        elif op == "truncate":
            del blob[pos:]
        elif op == "length" and len(blob) >= pos + 4:
            # Overwrite what may be a length prefix with an extreme value.
            value = draw(st.sampled_from((0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x8000001)))
            blob[pos : pos + 4] = value.to_bytes(4, "big")
    return bytes(blob)


def test_corpus_loaded() -> None:
    assert len(BLOBS) > 40


@given(st.binary(max_size=600))
def test_decode_random_bytes(blob: bytes) -> None:
    _decode(blob)


def _type_name_prefix(blob: bytes) -> bytes:
    return blob[: 4 + int.from_bytes(blob[:4], "big")]


@given(st.sampled_from(BLOBS).map(_type_name_prefix), st.binary(max_size=300))
def test_decode_known_type_name_then_random_body(prefix: bytes, body: bytes) -> None:
    _decode(prefix + body)


@given(mutated_blobs())
def test_decode_mutated_corpus_blobs(blob: bytes) -> None:
    _decode(blob)


def _parse(line: str) -> None:
    try:
        key, comment = parse_public_line(line)
    except SshError:
        return
    _check_key(key)
    assert isinstance(comment, str)


@given(st.text(max_size=200))
def test_parse_random_text(line: str) -> None:
    _parse(line)


@given(st.sampled_from(LINES), st.text(max_size=40), st.data())
def test_parse_mutated_corpus_lines(line: str, junk: str, data: st.DataObject) -> None:
    pos = data.draw(st.integers(0, len(line)))
    cut = data.draw(st.integers(pos, len(line)))
    _parse(line[:pos] + junk + line[cut:])


@given(mutated_blobs(), st.sampled_from(LINES), st.text(max_size=30))
def test_parse_line_with_mutated_blob(blob: bytes, line: str, comment: str) -> None:
    name = line.split()[0]
    _parse(f"{name} {base64.b64encode(blob).decode()} {comment}")
