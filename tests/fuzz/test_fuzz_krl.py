"""Property tests of the KRL reader, writer and spec parser.

Arbitrary or mutated bytes give a Krl or an SshError, nothing else; a KRL that was read
writes out and reads back to the same revocations; a KRL built from random revocations
answers membership exactly like a plain Python set of them.
"""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from keytools.errors import SshError
from keytools.keyfile import load_public
from keytools.krl import Krl, parse_krl
from keytools.krl.codec import KRL_MAGIC
from keytools.krl.spec import SpecReader
from tests.fuzz.mutations import mutated_from
from tests.helpers import TESTDATA

KRL_DIR = TESTDATA / "krl"
CORPUS = [(KRL_DIR / name).read_bytes() for name in ("plain.krl", "big.krl")]
CA = load_public(str(KRL_DIR / "ca.pub"))[0]
U64 = (1 << 64) - 1


def _same_revocations(a: Krl, b: Krl) -> None:
    assert a.revoked_keys == b.revoked_keys
    assert a.revoked_sha1 == b.revoked_sha1
    assert a.revoked_sha256 == b.revoked_sha256
    assert [e.ca_blob for e in a.certs] == [e.ca_blob for e in b.certs]
    for x, y in zip(a.certs, b.certs, strict=True):
        assert x.key_ids == y.key_ids
        assert x.serials.runs() == y.serials.runs()


def _parse(data: bytes) -> None:
    try:
        krl = parse_krl(data)
    except SshError:
        return
    again = parse_krl(krl.to_bytes())
    _same_revocations(krl, again)
    assert isinstance(krl.listing(), str)


def mutated() -> st.SearchStrategy[bytes]:
    return mutated_from(CORPUS)


@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    _parse(data)


@given(st.binary(max_size=400))
def test_random_bytes_after_magic(body: bytes) -> None:
    _parse(KRL_MAGIC + b"\0\0\0\1" + body)


@settings(max_examples=60)
@given(mutated())
def test_mutated_corpus(data: bytes) -> None:
    _parse(data)


_serial = st.integers(1, U64)
_range = st.tuples(_serial, st.integers(0, 1 << 20)).map(lambda t: (t[0], min(U64, t[0] + t[1])))


@settings(max_examples=40)
@given(
    st.lists(st.one_of(_serial.map(lambda s: (s, s)), _range,
                       st.tuples(st.integers(1, 3000), st.integers(0, 70))
                       .map(lambda t: (t[0], t[0] + t[1]))), max_size=60),
    st.lists(st.integers(1, 5000), max_size=300),
    st.lists(st.binary(max_size=12).filter(lambda b: b"\0" not in b), max_size=4),
    st.booleans(),
    st.lists(_serial, min_size=1, max_size=20),
)
def test_built_krl_round_trip_and_lookups(
        ranges: list[tuple[int, int]], singles: list[int], key_ids: list[bytes],
        wildcard: bool, probes: list[int]) -> None:
    krl = Krl(comment="fuzz")
    ca = None if wildcard else CA
    for lo, hi in ranges:
        krl.revoke_serial(ca, lo, hi)
    krl.revoke_serials(ca, singles)
    for key_id in key_ids:
        krl.revoke_key_id(ca, key_id)
    again = parse_krl(krl.to_bytes())
    _same_revocations(krl, again)
    if not krl.certs:
        return
    wanted = again.certs[0].serials
    for probe in [*probes, *singles[:20], *(lo for lo, _ in ranges), *(hi for _, hi in ranges)]:
        expected = probe in singles or any(lo <= probe <= hi for lo, hi in ranges)
        assert (probe in wanted) is expected
        assert (probe in krl.certs[0].serials) is expected


_line = st.one_of(
    st.text(max_size=60),
    st.builds(lambda word, rest: f"{word}{rest}",
              st.sampled_from(["serial:", "SERIAL: ", "id: ", "hash: SHA256:", "key: ",
                               "sha1: ", "sha256: ", "ssh-ed25519 ", "# "]),
              st.text(max_size=50)),
)


@settings(max_examples=80)
@given(st.lists(_line, max_size=8), st.booleans())
def test_spec_lines(lines: list[str], wildcard: bool) -> None:
    krl = Krl()
    with contextlib.suppress(SshError):
        SpecReader(krl, None if wildcard else CA, wildcard).apply(
            "\n".join(lines).encode("utf-8", "surrogateescape"), "fuzz.spec")
    _same_revocations(krl, parse_krl(krl.to_bytes()))
