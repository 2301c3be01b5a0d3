"""Identification string exchange: pre-banner lines, CR LF handling and the limits."""

from __future__ import annotations

import pytest

from keytools.errors import InvalidFormat, NoProtocolVersion
from protocol.version import MAX_PRE_BANNER_LINES, VersionReader, local_version


def test_plain_version_and_leftover() -> None:
    reader = VersionReader(server=False)
    got = reader.feed(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n\x00\x00\x01")
    assert got is not None
    assert got.line == "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"
    assert (got.software, got.comments) == ("OpenSSH_9.2p1", "Debian-2+deb12u3")
    assert reader.leftover == b"\x00\x00\x01"


def test_byte_by_byte_with_pre_banner_lines() -> None:
    data = b"Welcome\r\nto the server\nSSH-1.99-Other_1.0\n"
    reader = VersionReader(server=False)
    results = [reader.feed(data[i : i + 1]) for i in range(len(data))]
    assert all(r is None for r in results[:-1])
    last = results[-1]
    assert last is not None and last.pre_banner == ("Welcome", "to the server")
    assert last.line == "SSH-1.99-Other_1.0"


def test_a_client_may_not_send_lines_before_its_version() -> None:
    with pytest.raises(InvalidFormat):
        VersionReader(server=True).feed(b"hello\r\nSSH-2.0-x\r\n")


@pytest.mark.parametrize("data", [
    b"SSH-2.0-" + b"a" * 250 + b"\r\n",          # 260 bytes: over the 255 limit
    b"SSH-2.0-" + b"a" * 300,                    # ... even before its newline arrives
    b"x" * 9000,                                 # an endless other line
    b"SSH-2.0-abc\rdef\r\n",                     # a lone CR
    b"SSH-2.0-a\x00b\r\n",                       # NUL
    b"SSH-2.0-\r\n",                             # no software version
    b"SSH-2.0\r\n",
    b"SSH-x.y-z\r\n",
])
def test_malformed_identification(data: bytes) -> None:
    with pytest.raises(InvalidFormat):
        VersionReader(server=False).feed(data)


def test_exactly_255_bytes_is_fine() -> None:
    line = b"SSH-2.0-" + b"a" * (255 - 2 - 8)
    assert VersionReader(server=False).feed(line + b"\r\n") is not None


@pytest.mark.parametrize("data", [b"SSH-1.5-old\r\n", b"SSH-3.0-future\r\n"])
def test_other_protocol_versions(data: bytes) -> None:
    with pytest.raises(NoProtocolVersion):
        VersionReader(server=False).feed(data)


def test_too_many_pre_banner_lines() -> None:
    reader = VersionReader(server=False)
    with pytest.raises(InvalidFormat):
        reader.feed(b"junk\r\n" * MAX_PRE_BANNER_LINES + b"SSH-2.0-late\r\n")


def test_local_version() -> None:
    assert local_version("pyssh_0.1") == "SSH-2.0-pyssh_0.1"
