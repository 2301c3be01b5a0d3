"""allowed_signers files (ssh-keygen(1) ALLOWED SIGNERS): who may sign, for what, and when.

Each line is ``principals [options] key``. This follows OpenSSH's sshsig.c line by line:
a bad line is reported as ``path:N: reason`` through the ``log`` callback and skipped
(except by match_principals, which stops there as ssh-keygen does), the first line that
accepts the key wins, and a certificate is judged by the ``cert-authority`` lines of its
CA. A certificate with no principals matches nobody (the OpenSSH 10.3 rule).
"""

from __future__ import annotations

import calendar
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keytools.errors import FileError, InvalidFormat, KeyNotFound, KeyTypeMismatch, SshError
from keytools.match import match_pattern, match_pattern_list

if TYPE_CHECKING:
    from keytools.certificate import Certificate
    from keytools.public import PublicKey

#: where error lines go (ssh-keygen's error()); None drops them
Log = Callable[[str], None] | None

_WHITESPACE = " \t\r\n"
_SPACE_TAB = " \t"
#: C isspace() in the "C" locale
_ISSPACE = b" \t\n\v\f\r"
#: the largest time_t OpenSSH formats (SSH_TIME_T_MAX)
_TIME_T_MAX = 2**63 - 1


# -- patterns (match.c) -------------------------------------------------------------------


# -- times (misc.c) -----------------------------------------------------------------------


def _get_number(buf: bytes, pos: int, low: int, high: int, digits: int) -> tuple[int, int]:
    """glibc strptime's get_number(): skip spaces, read up to ``digits`` digits."""
    while pos < len(buf) and buf[pos] in _ISSPACE:
        pos += 1
    if pos >= len(buf) or not 0x30 <= buf[pos] <= 0x39:
        raise InvalidFormat()
    val = 0
    while True:
        val = val * 10 + buf[pos] - 0x30
        pos += 1
        digits -= 1
        if not (digits > 0 and val * 10 <= high and pos < len(buf) and 0x30 <= buf[pos] <= 0x39):
            break
    if not low <= val <= high:
        raise InvalidFormat()
    return val, pos


def parse_absolute_time(text: str) -> int:
    """``YYYYMMDD[HHMM[SS]]`` in local time, or UTC with a ``Z``/``UTC`` suffix.

    OpenSSH's parse_absolute_time(): the digits go through strptime and mktime, so
    out-of-range days roll over as mktime does. Raises InvalidFormat.
    """
    raw = text.encode("utf-8", "surrogateescape")
    utc = False
    if len(raw) > 1 and raw[-1:].lower() == b"z":
        utc, raw = True, raw[:-1]
    elif len(raw) > 3 and raw[-3:].lower() == b"utc":
        utc, raw = True, raw[:-3]
    if len(raw) not in (8, 12, 14) or b"\0" in raw:
        raise InvalidFormat()
    fields = [(raw[0:4], 0, 9999, 4), (raw[4:6], 1, 12, 2), (raw[6:8], 1, 31, 2)]
    if len(raw) >= 12:
        fields += [(raw[8:10], 0, 23, 2), (raw[10:12], 0, 59, 2)]
    if len(raw) == 14:
        fields.append((raw[12:14], 0, 61, 2))
    values: list[int] = []
    for chunk, low, high, digits in fields:
        value, pos = _get_number(chunk, 0, low, high, digits)
        if pos != len(chunk):  # the next literal separator would not match
            raise InvalidFormat()
        values.append(value)
    values += [0] * (6 - len(values))
    year, month, day, hour, minute, second = values
    try:
        if utc:
            stamp = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
        else:
            stamp = int(time.mktime((year, month, day, hour, minute, second, 0, 0, 0)))
    except (OverflowError, ValueError):
        raise InvalidFormat() from None
    if stamp < 0:
        raise InvalidFormat()
    return stamp


def format_absolute_time(stamp: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` in local time (format_absolute_time)."""
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(min(stamp, _TIME_T_MAX)))
    except (OverflowError, ValueError, OSError):
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(2**31 - 1))


# -- one line -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SignerOptions:
    """The options field: ``cert-authority``, ``namespaces="..."``, validity bounds."""

    cert_authority: bool = False
    namespaces: str | None = None
    valid_after: int = 0
    valid_before: int = 0


@dataclass(frozen=True)
class AllowedSigner:
    """One parsed line; ``principals`` is the raw comma-separated pattern list."""

    principals: str
    options: SignerOptions
    key: PublicKey
    path: str = ""
    line_number: int = 0


def _dequote(s: str, i: int) -> tuple[str, int]:
    """opt_dequote: a double-quoted value with ``\\"`` escapes; returns it and the end."""
    if i >= len(s) or s[i] != '"':
        raise InvalidFormat("missing start quote")
    i += 1
    out: list[str] = []
    while i < len(s) and s[i] != '"':
        if s[i] == "\\" and i + 1 < len(s) and s[i + 1] == '"':
            i += 1
        out.append(s[i])
        i += 1
    if i >= len(s):
        raise InvalidFormat("missing end quote")
    return "".join(out), i + 1


def _opt_match(s: str, i: int, term: str) -> bool:
    end = i + len(term)
    return s[i:end].lower() == term and s[end : end + 1] == "="


def _time_option(s: str, i: int, name: str, current: int) -> tuple[int, int]:
    if current:
        raise InvalidFormat(f'multiple "{name}" clauses')
    value, i = _dequote(s, i + len(name) + 1)
    try:
        stamp = parse_absolute_time(value)
    except InvalidFormat:
        stamp = 0
    if stamp == 0:
        raise InvalidFormat(f'invalid "{name}" time')
    return stamp, i


def parse_options(text: str) -> SignerOptions:
    """sshsigopt_parse; raises InvalidFormat whose message is OpenSSH's reason."""
    ca, namespaces, after, before = False, None, 0, 0
    i, n = 0, len(text)
    while i < n and text[i] not in _SPACE_TAB:
        if text[i : i + 14].lower() == "cert-authority":
            ca, i = True, i + 14
        elif _opt_match(text, i, "namespaces"):
            if namespaces is not None:
                raise InvalidFormat('multiple "namespaces" clauses')
            namespaces, i = _dequote(text, i + len("namespaces") + 1)
        elif _opt_match(text, i, "valid-after"):
            after, i = _time_option(text, i, "valid-after", after)
        elif _opt_match(text, i, "valid-before"):
            before, i = _time_option(text, i, "valid-before", before)
        if i >= n or text[i] in _SPACE_TAB:
            break
        if text[i] != ",":
            raise InvalidFormat("unknown key option")
        i += 1
        if i >= n:
            raise InvalidFormat("unexpected end-of-options")
    if after and before and before <= after:
        raise InvalidFormat('"valid-before" time is before "valid-after"')
    return SignerOptions(ca, namespaces, after, before)


def _strdelimw(s: str) -> tuple[str | None, str | None]:
    """misc.c strdelimw: the first token (quotes group) and what follows its whitespace.

    (None, None) for an unterminated quote; (token, None) when nothing follows.
    """
    idx = next((i for i, c in enumerate(s) if c in _WHITESPACE or c == '"'), -1)
    if idx < 0:
        return s, None
    if s[idx] == '"':
        s = s[:idx] + s[idx + 1 :]
        close = s.find('"', idx)
        if close < 0:
            return None, None
        return s[:close], s[close + 1 :].lstrip(_WHITESPACE)
    return s[:idx], s[idx + 1 :].lstrip(_WHITESPACE)


def read_key(text: str) -> tuple[PublicKey, str]:
    """sshkey_read: ``type base64`` at the very start of ``text``; returns the key and rest."""
    from keytools.public import decode_public_blob
    from keytools.public.base import known_types
    from keytools.sshsig import b64_pton

    space = next((i for i, c in enumerate(text) if c in _SPACE_TAB), -1)
    if space < 0 or text[:space] not in known_types():
        raise InvalidFormat()
    rest = text[space:].lstrip(_SPACE_TAB)
    if not rest:
        raise InvalidFormat()
    stop = next((i for i, c in enumerate(rest) if c in _SPACE_TAB), len(rest))
    key = decode_public_blob(b64_pton(rest[:stop].encode("utf-8", "surrogateescape")))
    if key.key_type != text[:space]:
        raise KeyTypeMismatch()
    return key, rest[stop:].lstrip(_SPACE_TAB)


def _advance_past_options(s: str) -> int:
    """sshkey_advance_past_options: index of the first unquoted blank; -1 if a quote is open."""
    quoted = False
    i = 0
    while i < len(s) and (quoted or s[i] not in _SPACE_TAB):
        if s[i] == "\\" and s[i + 1 : i + 2] == '"':
            i += 1
        elif s[i] == '"':
            quoted = not quoted
        i += 1
    return -1 if i >= len(s) and quoted else i


def parse_line(
    line: str, path: str = "", line_number: int = 0, required_principal: str | None = None
) -> AllowedSigner | None:
    """One allowed_signers line (with its newline, as read); None for blank/comment lines
    and for lines that do not list ``required_principal``.

    A malformed line raises InvalidFormat with OpenSSH's ``path:N: reason`` message.
    """
    where = f"{path}:{line_number}"
    cp = line.lstrip(_WHITESPACE)
    if not cp or cp[0] == "#":
        return None
    principals, rest = _strdelimw(cp)
    if principals is None or rest is None:
        raise InvalidFormat(f"{where}: invalid line")
    if required_principal is not None and match_pattern_list(required_principal, principals) != 1:
        return None
    opts = ""
    try:
        key, _ = read_key(rest)
    except SshError:
        end = _advance_past_options(rest)
        if end < 0:
            raise InvalidFormat(f"{where}: invalid options") from None
        if end >= len(rest):
            raise InvalidFormat(f"{where}: missing key") from None
        opts = rest[:end]
        try:
            key, _ = read_key(rest[end + 1 :].lstrip(_SPACE_TAB))
        except SshError:
            raise InvalidFormat(f"{where}: invalid key") from None
    try:
        options = parse_options(opts)
    except InvalidFormat as exc:
        raise InvalidFormat(f"{where}: bad options: {exc}") from None
    return AllowedSigner(principals, options, key, path, line_number)


# -- the file -----------------------------------------------------------------------------


def read_lines(path: str) -> Iterator[tuple[int, str]]:
    """(line number, line with its newline) as getline() gives them; text stops at a NUL."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, after the generator ends
    except OSError as exc:
        raise FileError(
            f'Unable to open allowed keys file "{path}": {exc.strerror}', exc.errno
        ) from None
    with f:
        for number, raw in enumerate(f, 1):
            yield number, raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _say(log: Log, message: str) -> None:
    if log is not None:
        log(message)


def _cert_reason(cert: Certificate, verify_time: int, name: str | None) -> str | None:
    """sshkey_cert_check_authority for a user certificate; None when acceptable."""
    from keytools.certificate import USER_CERT

    if cert.cert_type != USER_CERT:
        return "Certificate invalid: not a user certificate"
    if verify_time < cert.valid_after:
        return "Certificate invalid: not yet valid"
    if verify_time >= cert.valid_before:
        return "Certificate invalid: expired"
    if not cert.principals:
        return "Certificate lacks principal list"
    if name is not None and name not in cert.principals:
        return "Certificate invalid: name is not a listed principal"
    return None


def _cert_principals(entry: AllowedSigner, cert: Certificate, verify_time: int, log: Log) -> str:
    """cert_filter_principals: the certificate's principals that the line's patterns allow."""
    found: list[str] = []
    for pattern in entry.principals.split(","):
        if not pattern:
            break
        if _cert_reason(cert, verify_time, None) is not None:
            continue
        found += [p for p in cert.principals if match_pattern(p, pattern)]
    if not found:
        _say(log, f"{entry.path}:{entry.line_number}: no valid principals found")
        raise KeyNotFound()
    return ",".join(found)


def _check_line(
    entry: AllowedSigner,
    sign_key: PublicKey,
    principal: str | None,
    namespace: str | None,
    verify_time: int,
    log: Log,
) -> str:
    """check_allowed_keys_line after parsing: the principals this line grants, or KeyNotFound."""
    from keytools.certificate import Certificate

    where = f"{entry.path}:{entry.line_number}"
    opts = entry.options
    principals = entry.principals
    if not opts.cert_authority and entry.key.blob() == sign_key.blob():
        pass
    elif (
        opts.cert_authority
        and isinstance(sign_key, Certificate)
        and sign_key.signature_key.plain.same_key(entry.key.plain)
    ):
        if principal is not None:
            reason = _cert_reason(sign_key, verify_time, principal)
            if reason is not None:
                _say(log, f"{where}: certificate not authorized: {reason}")
                raise KeyNotFound()
        else:
            principals = _cert_principals(entry, sign_key, verify_time, log)
    else:
        raise KeyNotFound()
    if (
        opts.namespaces is not None
        and namespace is not None
        and match_pattern_list(namespace, opts.namespaces) != 1
    ):
        _say(log, f'{where}: key is not permitted for use in signature namespace "{namespace}"')
        raise KeyNotFound()
    shown = format_absolute_time(verify_time)
    if opts.valid_after and verify_time < opts.valid_after:
        _say(log, f"{where}: key is not yet valid: verify time {shown} < valid-after "
                  f"{format_absolute_time(opts.valid_after)}")
        raise KeyNotFound()
    if opts.valid_before and verify_time > opts.valid_before:
        _say(log, f"{where}: key has expired: verify time {shown} > valid-before "
                  f"{format_absolute_time(opts.valid_before)}")
        raise KeyNotFound()
    return principals


def _first_match(
    path: str,
    sign_key: PublicKey,
    principal: str | None,
    namespace: str | None,
    verify_time: int,
    log: Log,
) -> str:
    for number, line in read_lines(path):
        try:
            entry = parse_line(line, path, number, principal)
            if entry is None:
                continue
            return _check_line(entry, sign_key, principal, namespace, verify_time, log)
        except KeyNotFound:
            continue
        except InvalidFormat as exc:
            _say(log, str(exc))
    raise KeyNotFound()


def now() -> int:
    return int(time.time())


def check_allowed_keys(
    path: str,
    sign_key: PublicKey,
    principal: str,
    namespace: str,
    verify_time: int | None = None,
    log: Log = None,
) -> None:
    """sshsig_check_allowed_keys: may ``principal`` sign in ``namespace`` with this key?

    Returns quietly when a line allows it; raises KeyNotFound (or FileError) otherwise.
    """
    when = now() if verify_time is None else verify_time
    _first_match(os.fspath(path), sign_key, principal, namespace, when, log)


def _split_principals(principals: str) -> list[str]:
    """How ssh-keygen prints a principals list: split at commas, stop at an empty one."""
    out: list[str] = []
    for name in principals.split(","):
        if not name:
            break
        out.append(name)
    return out


def find_principals(
    path: str, sign_key: PublicKey, verify_time: int | None = None, log: Log = None
) -> list[str]:
    """sshsig_find_principals: the principals of the first line that accepts the key.

    For a certificate that is the certificate's own principals the line allows.
    Raises KeyNotFound when no line does.
    """
    when = now() if verify_time is None else verify_time
    return _split_principals(_first_match(os.fspath(path), sign_key, None, None, when, log))


def match_principals(path: str, principal: str, log: Log = None) -> list[str]:
    """sshsig_match_principals: the principals field of every line whose patterns match.

    Unlike verification, a malformed line that matches stops the scan (InvalidFormat),
    as in ssh-keygen; KeyNotFound when nothing matched.
    """
    found: list[str] = []
    for number, line in read_lines(os.fspath(path)):
        try:
            entry = parse_line(line, path, number, principal)
        except InvalidFormat as exc:
            _say(log, str(exc))
            raise
        if entry is not None:
            found.append(entry.principals)
    if not found:
        raise KeyNotFound()
    return found
