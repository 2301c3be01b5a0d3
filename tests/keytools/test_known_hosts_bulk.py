"""The whole-file bulk scans of big known_hosts files (keytools.known_hosts_bulk, for
-F, -R and -H) agree with the line-by-line parser, in one process and split with a
forked child; the thresholds are lowered so that small files take the bulk path."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keytools import known_hosts_fast as fast
from keytools.hostmatch import hash_host, match_hashed
from keytools.known_hosts import scan
from keytools.known_hosts_edit import delete_host_lines, hash_host_lines
from keytools.public import parse_public_line
from tests.helpers import TESTDATA

KEY = parse_public_line((TESTDATA / "hostkeys" / "ed25519_1.pub").read_text())[0].openssh()

_lines = st.one_of(
    st.sampled_from([
        "", "# comment", "#", " ", "\t", "\r", "x", "@revoked host " + KEY,
        "@cert-authority *.example.com " + KEY, " host " + KEY, "host\t" + KEY,
        "HOST " + KEY, "host,other " + KEY, "*.example.com,!host " + KEY, "h?st " + KEY,
        "host ssh-foo AAAA", "host ED25519 AAAA", "host ssh-ed25519", "host ssh-ed25519 #",
        "|1|bad|hash " + KEY, "|2|x " + KEY, "h\0st " + KEY, "[host]:2222 " + KEY,
        "other.example.com,192.0.2.1 " + KEY, "host  " + KEY, "host " + KEY + " c",
    ]),
    st.builds(lambda name, tail: f"{hash_host(name)}{tail}",
              st.sampled_from(["host", "HOST", "other.example.com", "[host]:2222"]),
              st.sampled_from([" " + KEY, "\t" + KEY, "  " + KEY, " " + KEY + " c"])),
)


@pytest.fixture(params=["one process", "two processes"])
def bulk(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every file is scanned in bulk (and split between two processes, or not); the
    setting holds for every example hypothesis draws."""
    saved = fast.BULK_BYTES, fast.PARALLEL_BYTES
    fast.BULK_BYTES = 0
    fast.PARALLEL_BYTES = 0 if request.param == "two processes" else 1 << 60
    yield
    fast.BULK_BYTES, fast.PARALLEL_BYTES = saved


def _check(lines: list[str], host: str, newline_at_end: bool) -> None:
    text = "\n".join(lines) + ("\n" if newline_at_end else "")
    raw = text.split("\n")
    if raw and raw[-1] == "":
        raw.pop()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "known_hosts")
        with open(path, "wb") as f:
            f.write(text.encode("utf-8", "surrogateescape"))
        for parse_key in (False, True):
            assert list(fast.scan_file(path, host, want_match=True, parse_key=parse_key)) == \
                list(scan(raw, host, want_match=True, parse_key=parse_key))
        slow, quick = delete_host_lines(raw, host), fast.delete_host_file(path, host)
        assert "".join(f"{t}\n" for t in slow.lines).encode("utf-8", "surrogateescape") == \
            quick.output()
        assert (slow.found, slow.invalid) == (quick.found, quick.invalid)
        slow_h, quick_h = hash_host_lines(raw), fast.hash_file(path)
        mine = quick_h.output().split(b"\n")[:-1]
        assert len(mine) == len(slow_h.lines)
        assert [line.number for line in slow_h.invalid] == [n.number for n in quick_h.invalid]
        assert [line.number for line in slow_h.wildcard] == [n.number for n in quick_h.wildcard]
        assert slow_h.hashed_names == quick_h.hashed_names
        for new, old in zip(mine, (t.encode("utf-8", "surrogateescape") for t in slow_h.lines),
                            strict=True):
            if new != old:  # a name hashed with another salt: the same key text follows
                assert new.startswith(b"|1|") and old.startswith(b"|1|")
                assert new.split(b" ", 1)[1] == old.split(b" ", 1)[1]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_lines, max_size=30), st.sampled_from(["host", "HOST", "[host]:2222",
                                                       "other.example.com", "nowhere"]),
       st.booleans())
def test_bulk_scans_agree_with_the_line_parser(bulk: None, lines: list[str], host: str,
                                               newline_at_end: bool) -> None:
    _check(lines, host, newline_at_end)


def test_big_regular_file(bulk: None) -> None:
    """Many ordinary lines with the looked-up host in clear and hashed among them."""
    lines = [f"h{i}.example.com,10.0.{i >> 8}.{i & 255} {KEY}" if i % 2 else
             f"{hash_host(f'h{i}.example.com')} {KEY}" for i in range(400)]
    lines[7] = f"{hash_host('host')} {KEY}"
    lines[300] = f"{hash_host('host')} {KEY}"
    lines[123] = f"host {KEY}"
    lines[200] = "# a comment"
    lines[201] = ""
    for host in ("host", "h33.example.com", "h34.example.com", "10.0.1.7", "missing"):
        _check(lines, host, True)


def test_bulk_hashes_match_their_names(bulk: None, tmp_path: Path) -> None:
    names = [(f"H{i}.Example.com", f"10.1.{i >> 8}.{i & 255}") for i in range(300)]
    path = os.path.join(str(tmp_path), "known_hosts")
    with open(path, "w") as f:
        f.write("# first\n" + "".join(f"{a},{b} {KEY} c{i}\n" for i, (a, b) in enumerate(names)))
    out = fast.hash_file(path).output().decode().splitlines()
    assert out[0] == "# first" and len(out) == 1 + 2 * len(names)
    for i, (a, b) in enumerate(names):
        for line, name in zip(out[1 + 2 * i:3 + 2 * i], (a.lower(), b), strict=True):
            field, rest = line.split(" ", 1)
            assert match_hashed(name, field) and rest == f"{KEY} c{i}"
