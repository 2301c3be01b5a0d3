"""known_hosts files: every line form parsed as OpenSSH's hostfile.c does, and lookups.

``scan`` walks a file like hostkeys_foreach(): each line becomes a ``HostLine`` that is
a comment/blank line, a host entry, or an invalid line carrying its line number and
the reason (never an exception). ``check_host_key`` is the client's question: is this
the key (or a certificate from a listed CA) for this host and port?

Editing (add, remove, hash in place) lives in keytools.known_hosts_edit.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keytools.errors import FileError, SshError
from keytools.hostmatch import HASH_DELIM, host_matcher, host_port

if TYPE_CHECKING:
    from keytools.certificate import Certificate
    from keytools.public import PublicKey

CA_MARKER = "@cert-authority"
REVOKE_MARKER = "@revoked"
_WS = " \t"
#: check_markers() copies a marker into a 32-byte buffer.
_MAX_MARKER = 31
#: hostkeys_foreach() copies the key type name into a 128-byte buffer.
_MAX_KEYTYPE = 127

Source = str | os.PathLike[str] | Iterable[str]
Matcher = Callable[[str], "bool | None"]


class Marker(enum.Enum):
    NONE = ""
    CERT_AUTHORITY = CA_MARKER
    REVOKED = REVOKE_MARKER

    @property
    def label(self) -> str:
        """What ``ssh-keygen -F`` prints after "found: line N"."""
        return {"": "", CA_MARKER: "CA", REVOKE_MARKER: "REVOKED"}[self.value]


class LineStatus(enum.Enum):
    COMMENT = "comment"  # blank, whitespace only, or starting with '#'
    ENTRY = "entry"
    INVALID = "invalid"


@dataclass(frozen=True)
class HostLine:
    """One line of a known_hosts file."""

    number: int
    #: the line as OpenSSH keeps it: up to the newline (or a NUL byte), "\r" included
    text: str
    status: LineStatus
    marker: Marker = Marker.NONE
    #: the host field: a pattern list or one ``|1|salt|hash`` name ("" when absent)
    hosts: str = ""
    #: everything after the host field and its blanks: key type, base64, comment
    key_text: str = ""
    #: the parsed key, when keys were parsed
    key: PublicKey | None = None
    comment: str = ""
    #: why the line is invalid (OpenSSH's debug wording), else None
    error: str | None = None
    #: the host being looked up matches this line's host field
    matched: bool = False

    @property
    def hashed(self) -> bool:
        return self.hosts.startswith(HASH_DELIM)


# -- parsing ------------------------------------------------------------------------------


def _key_type_names() -> frozenset[str]:
    from keytools.public.base import known_types  # every name, no key module imported

    names = set(known_types())
    names.update(("rsa-sha2-256", "rsa-sha2-512", "rsa-sha2-256-cert-v01@openssh.com",
                  "rsa-sha2-512-cert-v01@openssh.com",
                  "webauthn-sk-ecdsa-sha2-nistp256@openssh.com"))
    return frozenset(names)


#: sshkey_type_from_name() also takes the short names of plain types, in any case.
_SHORT_NAMES = frozenset(("rsa", "dsa", "ecdsa", "ed25519", "ecdsa-sk", "ed25519-sk"))
_TYPE_NAMES: frozenset[str] | None = None


def is_key_type_name(name: str) -> bool:
    """Whether OpenSSH's sshkey_type_from_name() knows ``name``."""
    global _TYPE_NAMES
    if _TYPE_NAMES is None:
        _TYPE_NAMES = _key_type_names()
    return name in _TYPE_NAMES or name.lower() in _SHORT_NAMES


def key_type_pattern() -> bytes:
    """A bytes regular expression (a group) matching exactly the names is_key_type_name
    accepts, for whole-file scans; short names in any ASCII case (a non-ASCII name that
    Python folds to one of them is left to the line parser)."""
    import re

    global _TYPE_NAMES
    if _TYPE_NAMES is None:
        _TYPE_NAMES = _key_type_names()
    names = b"|".join(re.escape(name.encode()) for name in sorted(_TYPE_NAMES))
    short = b"|".join(re.escape(name.encode()) for name in sorted(_SHORT_NAMES))
    return b"(?:" + names + b"|(?i:" + short + b"))"


def _split_marker(rest: str) -> tuple[Marker, str] | None:
    """check_markers(): at most one marker, ended by a space (else a tab); None if bad."""
    marker = Marker.NONE
    while rest.startswith("@"):
        if marker is not Marker.NONE:
            return None
        end = rest.find(" ")
        if end < 0:
            end = rest.find("\t")
        if end <= 1 or end > _MAX_MARKER:
            return None
        word = rest[:end]
        if word == CA_MARKER:
            marker = Marker.CERT_AUTHORITY
        elif word == REVOKE_MARKER:
            marker = Marker.REVOKED
        else:
            return None
        rest = rest[end:].lstrip(_WS)
    return marker, rest


def _field_end(text: str) -> int:
    space = text.find(" ")
    tab = text.find("\t")
    if space < 0:
        return len(text) if tab < 0 else tab
    return space if tab < 0 or space < tab else tab


def _check_key_text(key_text: str) -> str | None:
    """Without parsing the key: a known type name and something after it."""
    end = _field_end(key_text)
    if end <= 1 or end > _MAX_KEYTYPE or end >= len(key_text):
        return "bad key type"
    name = key_text[:end]
    after = key_text[end:].lstrip(_WS)
    if not after or after.startswith("#"):
        return "truncated after key type"
    if not is_key_type_name(name):
        return "unknown key type"
    return None


def parse_line(
    raw: str,
    number: int,
    host: str | None = None,
    *,
    want_match: bool = False,
    parse_key: bool = False,
) -> HostLine | None:
    """Parse one line as hostkeys_foreach() does.

    With ``host`` the line's ``matched`` flag is set; with ``want_match`` lines that do
    not match (and comments, and lines with a bad marker) give None. ``parse_key``
    decodes the key (a bad key makes the line invalid); otherwise only the key type
    name is checked, as ssh-keygen -H and -R do.
    """
    matcher = host_matcher(host) if host is not None else None
    return _parse(raw, number, matcher, want_match, parse_key)


def _invalid(number: int, text: str, error: str, marker: Marker = Marker.NONE,
             hosts: str = "", matched: bool = False) -> HostLine:
    return HostLine(number, text, LineStatus.INVALID, marker, hosts, error=error,
                    matched=matched)


def _parse(
    raw: str,
    number: int,
    matcher: Matcher | None,
    want_match: bool,
    parse_key: bool,
) -> HostLine | None:
    text = raw.split("\n", 1)[0]
    if "\0" in text:
        text = text.split("\0", 1)[0]
    rest = text.lstrip(_WS)
    if not rest or rest[0] == "#":
        return None if want_match else HostLine(number, text, LineStatus.COMMENT)
    marker = Marker.NONE
    if rest[0] == "@":
        split = _split_marker(rest)
        if split is None:
            return None if want_match else _invalid(number, text, "invalid marker")
        marker, rest = split
    end = _field_end(rest)
    hosts = rest[:end]
    matched = False
    if matcher is not None:
        result = matcher(hosts)
        if result is None:
            return _invalid(number, text, "bad host hash", marker, hosts)
        matched = bool(result)
        if want_match and not matched:
            return None
    key_text = rest[end:].lstrip(_WS)
    if not key_text or key_text[0] == "#":
        return _invalid(number, text, "truncated before key type", marker, hosts, matched)
    key: PublicKey | None = None
    comment = ""
    if parse_key:
        from keytools.public import read_key_token

        try:
            key, after = read_key_token(key_text)
        except SshError as exc:
            return _invalid(number, text, f"invalid key: {exc}", marker, hosts, matched)
        comment = after.lstrip(_WS)
    else:
        problem = _check_key_text(key_text)
        if problem is not None:
            return _invalid(number, text, problem, marker, hosts, matched)
    return HostLine(number, text, LineStatus.ENTRY, marker, hosts, key_text, key, comment,
                    None, matched)


def scan(
    lines: Iterable[str],
    host: str | None = None,
    *,
    want_match: bool = False,
    parse_key: bool = False,
) -> Iterator[HostLine]:
    """Every line of a known_hosts file as a HostLine (see parse_line for the flags)."""
    matcher = host_matcher(host) if host is not None else None
    for number, raw in enumerate(lines, 1):
        line = _parse(raw, number, matcher, want_match, parse_key)
        if line is not None:
            yield line


def open_lines(path: str | os.PathLike[str]) -> Iterator[str]:
    """The lines of a file, split at "\\n" only (a "\\r" stays in the line, as in C).

    A directory reads as empty, as getline() on it fails at once in OpenSSH.
    """
    try:
        with open(path, encoding="utf-8", errors="surrogateescape", newline="\n") as f:
            yield from f
    except IsADirectoryError:
        return
    except OSError as exc:
        raise FileError.from_os(exc) from None


def lines_of(source: Source) -> Iterable[str]:
    """A path's lines, or the given lines as they are."""
    if isinstance(source, (str, os.PathLike)):
        return open_lines(source)
    return source


def read_known_hosts(source: Source) -> list[HostLine]:
    """All lines of a file (or of the given lines), keys parsed, invalid lines flagged."""
    return list(scan(lines_of(source), parse_key=True))


# -- lookups ------------------------------------------------------------------------------


class HostKeyStatus(enum.Enum):
    MATCH = "match"  # the key is listed for the host
    CA_MATCH = "ca-match"  # a valid host certificate from a @cert-authority for the host
    CHANGED = "changed"  # the host has other keys, none of them this one
    REVOKED = "revoked"  # a @revoked line names the key (or its certificate's CA)
    NOT_FOUND = "not-found"  # no key is known for the host


@dataclass(frozen=True)
class HostKeyResult:
    status: HostKeyStatus
    #: the deciding line: the matching key or CA, a differing key, or the @revoked line
    line: HostLine | None = None
    #: a certificate whose CA is listed but that is not valid for this host (why);
    #: the plain key inside it was then looked up instead, as ssh does
    certificate_problem: str | None = None


def load_host_keys(source: Source, host: str, port: int | None = 22) -> list[HostLine]:
    """The valid lines (keys parsed) whose host field matches ``host`` on ``port``.

    The name looked up is ``host``, or ``[host]:port`` off port 22, as ssh stores it.
    """
    name = host_port(host, port)
    if isinstance(source, (str, os.PathLike)):
        from keytools.known_hosts_fast import scan_file

        found: Iterable[HostLine] = scan_file(source, name, want_match=True, parse_key=True)
    else:
        found = scan(source, name, want_match=True, parse_key=True)
    return [line for line in found if line.status is LineStatus.ENTRY]


def _same(a: PublicKey, b: PublicKey) -> bool:
    """sshkey_equal_public: the plain keys are equal."""
    return a.plain.blob() == b.plain.blob()


def _revoked_by(entries: list[HostLine], key: PublicKey) -> HostLine | None:
    from keytools.certificate import Certificate

    ca = key.signature_key if isinstance(key, Certificate) else None
    for line in entries:
        if line.marker is not Marker.REVOKED or line.key is None:
            continue
        if _same(key, line.key) or (ca is not None and _same(ca, line.key)):
            return line
    return None


def certificate_problem(cert: Certificate, host: str, now: float | None = None) -> str | None:
    """Why a host certificate is not valid for ``host`` (None when it is).

    The client's checks of keytools.cert_check (signature, CA signature algorithm, type,
    validity at ``now``, wildcard principals, no critical options), with OpenSSH 10.3's
    rule that a certificate with no principals matches nobody.
    """
    from keytools.cert_check import check_certificate

    try:
        check_certificate(cert, principal=host, host=True, ca_keys=None, now=now)
    except SshError as exc:
        return str(exc)
    return None


def _check_plain(entries: list[HostLine], key: PublicKey) -> HostKeyResult:
    status = HostKeyStatus.NOT_FOUND
    decided: HostLine | None = None
    for line in entries:
        if line.marker is not Marker.NONE or line.key is None:
            continue
        if not line.key.is_certificate and _same(key, line.key):
            status, decided = HostKeyStatus.MATCH, line
            break
        status, decided = HostKeyStatus.CHANGED, line
    revoked = _revoked_by(entries, key)
    if revoked is not None:
        return HostKeyResult(HostKeyStatus.REVOKED, revoked)
    return HostKeyResult(status, decided)


def check_host_key(
    source: Source,
    host: str,
    port: int | None,
    key: PublicKey,
    *,
    now: float | None = None,
) -> HostKeyResult:
    """Is ``key`` the right host key for ``host``:``port`` according to ``source``?

    ``source`` is a path or the file's lines. A certificate is accepted when a
    @cert-authority line for the host lists its CA and it is valid for ``host``
    (type, validity at ``now``, principals, signature); otherwise the plain key inside
    it is looked up, as ssh falls back. A @revoked key (or CA) always wins.
    """
    from keytools.certificate import Certificate

    entries = load_host_keys(source, host, port)
    problem: str | None = None
    if isinstance(key, Certificate):
        revoked = _revoked_by(entries, key)
        if revoked is not None:
            return HostKeyResult(HostKeyStatus.REVOKED, revoked)
        for line in entries:
            if line.marker is Marker.CERT_AUTHORITY and line.key is not None \
                    and _same(key.signature_key, line.key):
                problem = certificate_problem(key, host, now)
                if problem is None:
                    return HostKeyResult(HostKeyStatus.CA_MATCH, line)
                break
        result = _check_plain(entries, key.key)
        return HostKeyResult(result.status, result.line, problem)
    return _check_plain(entries, key)
