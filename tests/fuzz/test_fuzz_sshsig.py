"""Property tests of the SSH signature and allowed_signers parsers.

Arbitrary armour, blobs and allowed_signers text give a result or an SshError, never
anything else; mutated corpus signatures never verify; the glob matcher agrees with a
regular-expression reference.
"""

from __future__ import annotations

import base64
import contextlib
import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from keytools import allowed_signers as al
from keytools import sshsig
from keytools.errors import KeyNotFound, SshError
from keytools.public import parse_public_line
from tests.helpers import TESTDATA

SSHSIG = TESTDATA / "sshsig"
DATA = (SSHSIG / "signed-data").read_bytes()
NAMESPACE = (SSHSIG / "namespace").read_text().strip()
ARMOURED = [p.read_bytes() for p in sorted(SSHSIG.glob("*.sig")) if "mldsa" not in p.name]
BLOBS = [sshsig.dearmor(a) for a in ARMOURED]
KEY_LINES = [" ".join(p.read_text().split()[:2]) for p in sorted(SSHSIG.glob("*.pub"))
             if "mldsa" not in p.name]
KEY = parse_public_line(KEY_LINES[0])[0]


def _armour(body: bytes) -> bytes:
    return b"-----BEGIN SSH SIGNATURE-----\n" + body + b"\n-----END SSH SIGNATURE-----\n"


_armours = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=200).map(_armour),
    st.binary(max_size=200).map(lambda b: _armour(base64.b64encode(b))),
    st.sampled_from(ARMOURED),
)


@given(_armours)
def test_dearmor_gives_bytes_or_ssh_error(data: bytes) -> None:
    try:
        blob = sshsig.dearmor(data)
    except SshError:
        return
    assert isinstance(blob, bytes)
    if blob:  # an empty body has no line of its own, in OpenSSH's armour too
        assert sshsig.dearmor(sshsig.armor(blob)) == blob


def _mutate(blob: bytes, position: int, value: int, cut: int) -> bytes:
    position %= len(blob)
    changed = blob[:position] + bytes((value,)) + blob[position + 1 :]
    return changed[: len(changed) - cut % 8]


@given(st.sampled_from(BLOBS), st.integers(0, 10**6), st.integers(0, 255), st.integers(0, 64))
def test_mutated_blobs_fail_cleanly(blob: bytes, position: int, value: int, cut: int) -> None:
    mutated = _mutate(blob, position, value, cut)
    for check in (sshsig.parse_signature, sshsig.get_public_key, sshsig.peek_hash_algorithm):
        with contextlib.suppress(SshError):
            check(mutated)
    try:
        sig = sshsig.verify(mutated, DATA, NAMESPACE)
    except SshError:
        return
    # only the version (any up to 1, as OpenSSH) and the reserved field are outside the
    # signature; any other change must fail
    assert sig.blob() == mutated
    assert sig.version <= sshsig.SIG_VERSION
    assert any(mutated == _unsigned_fields(b, sig.reserved, sig.version) for b in BLOBS)


def _unsigned_fields(blob: bytes, reserved: bytes, version: int) -> bytes:
    sig = sshsig.parse_signature(blob)
    return sshsig.SshSignature(sig.public_key, sig.namespace, sig.hash_algorithm,
                               sig.signature, reserved, version).blob()


@given(st.binary(max_size=400))
def test_arbitrary_blobs(blob: bytes) -> None:
    for check in (sshsig.parse_signature, sshsig.get_public_key, sshsig.peek_hash_algorithm):
        with contextlib.suppress(SshError):
            check(blob)
    with contextlib.suppress(SshError):
        sshsig.verify(sshsig.MAGIC + blob, DATA, NAMESPACE)


# -- allowed_signers ----------------------------------------------------------------------

_pieces = st.sampled_from([
    " ", "\t", "\r", "\n", ",", "!", "*", "?", '"', "\\", "=", "#", "\0", "é",
    "alice", "bob", "cert-authority", "CERT-AUTHORITY", "namespaces=", 'namespaces="file"',
    "valid-after=", 'valid-after="20200101"', 'valid-before="20300101Z"', '"20990101"',
    "ssh-ed25519", "AAAA", *KEY_LINES,
])
_lines = st.one_of(
    st.text(max_size=200),
    st.lists(_pieces, max_size=14).map("".join),
    st.sampled_from([f"alice {line}" for line in KEY_LINES]),
)


@given(_lines, st.one_of(st.none(), st.sampled_from(["alice", "bob", "*", ""]), st.text()))
def test_parse_line_gives_entry_none_or_ssh_error(line: str, principal: str | None) -> None:
    try:
        entry = al.parse_line(line + "\n", "f", 1, principal)
    except SshError as exc:
        assert str(exc).startswith("f:1: ")
        return
    if entry is not None:
        assert entry.key.blob()
        if principal is not None:
            assert al.match_pattern_list(principal, entry.principals) == 1


@given(st.text(max_size=100))
def test_parse_options_and_times(text: str) -> None:
    with contextlib.suppress(SshError):
        al.parse_options(text)
    with contextlib.suppress(SshError):
        al.parse_absolute_time(text)


@given(st.lists(_lines, max_size=12), st.sampled_from(["alice", "bob", "x"]), st.booleans())
def test_file_queries_never_crash(lines: list[str], principal: str, crlf: bool) -> None:
    import tempfile

    ending = "\r\n" if crlf else "\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "allowed_signers"
        path.write_bytes(ending.join(lines).encode("utf-8", "surrogateescape"))
        log: list[str] = []
        for query in (
            lambda: al.check_allowed_keys(str(path), KEY, principal, "file", 1_700_000_000,
                                          log.append),
            lambda: al.find_principals(str(path), KEY, 1_700_000_000, log.append),
            lambda: al.match_principals(str(path), principal, log.append),
        ):
            with contextlib.suppress(KeyNotFound, SshError):
                query()
        assert all(isinstance(m, str) for m in log)


def _reference(s: str, pattern: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, s, re.DOTALL) is not None


_glob = st.text(alphabet="ab*?", max_size=12)


@given(st.text(alphabet="ab", max_size=12), _glob)
def test_match_pattern_agrees_with_regex(s: str, pattern: str) -> None:
    assert al.match_pattern(s, pattern) is _reference(s, pattern)


@given(st.text(alphabet="ab", max_size=8), st.lists(_glob, max_size=4), st.lists(st.booleans()))
def test_match_pattern_list_semantics(s: str, patterns: list[str], negate: list[bool]) -> None:
    marked = ["!" + p if i < len(negate) and negate[i] else p for i, p in enumerate(patterns)]
    result = al.match_pattern_list(s, ",".join(marked))
    hits = [_reference(s, p) for p in patterns]
    if marked and marked[-1] == "":  # OpenSSH never tries a trailing empty sub-pattern
        hits[-1] = False
    negated_hit = any(h and m.startswith("!") for h, m in zip(hits, marked, strict=True))
    if negated_hit:
        assert result == -1
    else:
        assert result == (1 if any(hits) else 0)
