"""The identification string exchange (RFC 4253 section 4.2), without I/O.

A server may send other lines before its ``SSH-`` line (each kept, at most 1024 of at
most 8192 bytes, as OpenSSH's client allows); a client may not. The identification line
itself is limited to 255 bytes with its CR LF. Bytes after it already belong to the
binary packet protocol and are handed over as ``leftover``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keytools.errors import InvalidFormat, NoProtocolVersion

MAX_IDENT_LINE = 255
MAX_OTHER_LINE = 8192
MAX_PRE_BANNER_LINES = 1024
SOFTWARE_VERSION = "pyssh_0.1"

_IDENT = re.compile(r"SSH-(\d+)\.(\d+)-([^ ]+)(?: (.*))?", re.DOTALL)


def local_version(software: str = SOFTWARE_VERSION) -> str:
    """Our identification line without CR LF."""
    return f"SSH-2.0-{software}"


@dataclass(frozen=True)
class PeerVersion:
    #: the identification line without CR LF, exactly as received (it is hashed)
    line: str
    software: str
    comments: str
    #: lines the server sent before its identification
    pre_banner: tuple[str, ...] = ()


class VersionReader:
    """Feed received bytes until ``feed`` returns the peer's version."""

    def __init__(self, *, server: bool) -> None:
        self._server = server
        self._buf = bytearray()
        self._lines: list[str] = []
        self.leftover = b""

    def feed(self, data: bytes) -> PeerVersion | None:
        self._buf += data
        while True:
            end = self._buf.find(b"\n")
            if end < 0:
                limit = MAX_IDENT_LINE if self._buf.startswith(b"SSH-") else MAX_OTHER_LINE
                if len(self._buf) > limit:
                    raise InvalidFormat("banner line too long")
                return None
            raw = bytes(self._buf[:end])
            del self._buf[: end + 1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            if b"\0" in raw or b"\r" in raw:
                raise InvalidFormat("banner line contains invalid characters")
            line = raw.decode("utf-8", "surrogateescape")
            if raw.startswith(b"SSH-"):
                if len(raw) + 2 > MAX_IDENT_LINE:
                    raise InvalidFormat("identification string too long")
                version = self._parse(line)
                self.leftover = bytes(self._buf)
                self._buf.clear()
                return version
            if self._server:
                raise InvalidFormat("Invalid SSH identification string.")
            if len(raw) > MAX_OTHER_LINE:
                raise InvalidFormat("banner line too long")
            self._lines.append(line)
            if len(self._lines) >= MAX_PRE_BANNER_LINES:
                raise InvalidFormat("No SSH identification string received.")

    def _parse(self, line: str) -> PeerVersion:
        m = _IDENT.fullmatch(line)
        if m is None:
            raise InvalidFormat("Invalid SSH identification string.")
        major, minor = int(m.group(1)), int(m.group(2))
        if (major, minor) not in ((2, 0), (1, 99)):
            raise NoProtocolVersion(f"Protocol major versions differ: 2 vs. {major}")
        return PeerVersion(line, m.group(3), m.group(4) or "", tuple(self._lines))
