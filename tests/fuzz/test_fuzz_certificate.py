"""Property tests of the certificate code: arbitrary input gives an SshError or a result.

Random and mutated certificate blobs go through the checked decoder, the -L listing and
the acceptance check; random text goes through -V, -O and source-address parsing.
"""

from __future__ import annotations

import base64
import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from keytools.addrmatch import addr_match_cidr_list
from keytools.cert_check import check_certificate
from keytools.cert_listing import describe
from keytools.cert_options import build_options, read_options
from keytools.cert_validity import parse_validity
from keytools.certificate import CERT_TYPES, Certificate, decode_key_checked
from keytools.cli.keygen_certs import read_key
from keytools.errors import InvalidArgument, SshError
from keytools.public import decode_public_blob
from keytools.wire import Writer
from tests.fuzz.mutations import mutated_from
from tests.helpers import TESTDATA

_FILES = sorted(TESTDATA.glob("sshkey/*-cert.pub")) + sorted(TESTDATA.glob("authopt/*.cert"))
LINES = [p.read_text().splitlines()[0] for p in _FILES if not p.name.startswith("mldsa44")]
BLOBS = [base64.b64decode(line.split()[1]) for line in LINES]
NAMES = [Writer().string(name).getvalue() for name in CERT_TYPES]


def _use(blob: bytes) -> None:
    """Everything a tool does with a certificate blob; only SshError may escape."""
    try:
        key = decode_public_blob(blob)
    except SshError:
        return
    assert isinstance(key, Certificate)
    assert decode_public_blob(key.blob()) == key
    for step in (
        lambda: describe(key, "sha256"),
        lambda: decode_key_checked(blob),
        lambda: read_options(key.critical_options, key.extensions),
        lambda: check_certificate(key, principal="user", host=key.is_host, ca_keys=None,
                                  now=915235200, source_address="127.0.0.1"),
        lambda: check_certificate(key, principal=None, host=not key.is_host,
                                  ca_keys=[key.signature_key], ca_algorithms=None),
    ):
        with contextlib.suppress(SshError):
            step()


def mutated() -> st.SearchStrategy[bytes]:
    return mutated_from(BLOBS)


@given(st.sampled_from(NAMES), st.binary(max_size=400))
def test_certificate_type_then_random_body(name: bytes, body: bytes) -> None:
    _use(name + body)


@settings(max_examples=300)
@given(mutated())
def test_mutated_corpus_certificates(blob: bytes) -> None:
    _use(blob)


@given(mutated(), st.sampled_from(list(CERT_TYPES)), st.text(max_size=20))
def test_listing_lines_with_mutated_certificates(blob: bytes, name: str, tail: str) -> None:
    try:
        key = read_key(f"{name} {base64.b64encode(blob).decode()}{tail}")
    except SshError:
        return
    if isinstance(key, Certificate):
        with contextlib.suppress(SshError):
            describe(key)


@given(st.text(max_size=60))
def test_read_key_random_text(text: str) -> None:
    with contextlib.suppress(SshError):
        read_key(text)


_SPEC = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="0123456789+-:smhdwSMHDWZzUTCx alwysforev", max_size=30),
)


@given(_SPEC, st.integers(0, 2**40))
def test_validity_specs(spec: str, now: int) -> None:
    try:
        after, before = parse_validity(spec, now)
    except InvalidArgument:
        return
    assert 0 <= after <= before <= 2**64 - 1
    assert after < before or (spec.startswith("+") and ":" not in spec)


@given(st.lists(st.text(max_size=30), max_size=5), st.booleans())
def test_option_words(words: list[str], host: bool) -> None:
    try:
        critical, extensions = build_options(words, host)
    except InvalidArgument:
        return
    with contextlib.suppress(SshError):
        read_options(critical, extensions)


@given(st.one_of(st.text(max_size=60), st.text(alphabet="0123456789abcdefx.:/,%", max_size=60)),
       st.one_of(st.none(), st.text(max_size=40),
                 st.text(alphabet="0123456789abcdef.:", max_size=40)))
def test_source_address_lists(entries: str, address: str | None) -> None:
    assert addr_match_cidr_list(address, entries) in (-1, 0, 1)
