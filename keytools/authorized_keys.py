"""authorized_keys lines: the options before the key, parsed as sshd's auth-options.c does.

A line is ``[options] keytype base64 [comment]``; options are a comma-separated list of
flags (``no-pty``, ``restrict``, ``cert-authority``, ...) and ``name="value"`` pairs whose
value may hold ``\\"``. sshd refuses a line whose options it cannot parse, so
``parse_line`` raises InvalidFormat with sshauthopt_parse's reason and the caller skips it.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

from keytools.addrmatch import addr_match_cidr_list, addr_pton
from keytools.errors import InvalidFormat, SshError
from keytools.match import ascii_lower, match_hostname
from keytools.public import PublicKey, read_key_token

_WS = " \t"


@dataclass(frozen=True)
class KeyOptions:
    """What one authorized_keys entry allows (sshd's struct sshauthopt)."""

    permit_pty: bool = True
    permit_port_forwarding: bool = True
    permit_agent_forwarding: bool = True
    permit_x11_forwarding: bool = True
    permit_user_rc: bool = True
    restricted: bool = False
    cert_authority: bool = False
    no_touch_required: bool = False
    verify_required: bool = False
    command: str | None = None
    from_patterns: str | None = None
    principals: str | None = None
    expiry_time: int | None = None
    tunnel: str | None = None
    environment: tuple[str, ...] = ()
    permit_open: tuple[str, ...] = ()
    permit_listen: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuthorizedKey:
    key: PublicKey
    options: KeyOptions
    comment: str
    line: int


_FLAGS: dict[str, dict[str, bool]] = {
    "agent-forwarding": {"permit_agent_forwarding": True},
    "no-agent-forwarding": {"permit_agent_forwarding": False},
    "port-forwarding": {"permit_port_forwarding": True},
    "no-port-forwarding": {"permit_port_forwarding": False},
    "pty": {"permit_pty": True},
    "no-pty": {"permit_pty": False},
    "user-rc": {"permit_user_rc": True},
    "no-user-rc": {"permit_user_rc": False},
    "x11-forwarding": {"permit_x11_forwarding": True},
    "no-x11-forwarding": {"permit_x11_forwarding": False},
    "cert-authority": {"cert_authority": True},
    "touch-required": {"no_touch_required": False},
    "no-touch-required": {"no_touch_required": True},
    "verify-required": {"verify_required": True},
    "restrict": {"restricted": True, "permit_pty": False, "permit_port_forwarding": False,
                 "permit_agent_forwarding": False, "permit_x11_forwarding": False,
                 "permit_user_rc": False},
}
_VALUES = ("command", "environment", "from", "expiry-time", "permitopen", "permitlisten",
           "principals", "tunnel")


def _value(text: str, i: int) -> tuple[str, int]:
    """opt_dequote(): the quoted value starting at ``text[i]`` and the index after it."""
    if i >= len(text) or text[i] != '"':
        raise InvalidFormat("missing start quote")
    out: list[str] = []
    i += 1
    while i < len(text) and text[i] != '"':
        if text[i] == "\\" and text[i + 1 : i + 2] == '"':
            i += 1
        out.append(text[i])
        i += 1
    if i >= len(text):
        raise InvalidFormat("missing end quote")
    return "".join(out), i + 1


def _expiry(value: str) -> int:
    """YYYYMMDD[HHMM[SS]][Z] as local time (UTC with a trailing Z)."""
    utc = value.endswith(("Z", "z"))
    digits = value[:-1] if utc else value
    if not digits.isdigit() or len(digits) not in (8, 12, 14):
        raise InvalidFormat("invalid expires time")
    digits = digits.ljust(14, "0")
    fields = (int(digits[0:4]), int(digits[4:6]), int(digits[6:8]), int(digits[8:10]),
              int(digits[10:12]), int(digits[12:14]))
    tm = (*fields, 0, 0, -1)
    try:
        return calendar.timegm(tm) if utc else int(time.mktime(tm))
    except (OverflowError, ValueError):
        raise InvalidFormat("invalid expires time") from None


def parse_options(text: str) -> tuple[KeyOptions, str]:
    """sshauthopt_parse(): the options at the start of ``text`` and the text after them."""
    changes: dict[str, object] = {}
    lists: dict[str, list[str]] = {"environment": [], "permit_open": [], "permit_listen": []}
    i = 0
    while i < len(text) and text[i] not in _WS:
        start = name_end = i
        while name_end < len(text) and text[name_end] not in _WS + ",=":
            name_end += 1
        name = ascii_lower(text[i:name_end])
        i = name_end
        if name in _FLAGS:
            changes.update(_FLAGS[name])
        elif name in _VALUES:
            if text[i : i + 1] != "=":
                raise InvalidFormat(f"missing value for {name}")
            value, i = _value(text, i + 1)
            if name == "command":
                if "command" in changes:
                    raise InvalidFormat("multiple command clauses")
                changes["command"] = value
            elif name == "from":
                if "from_patterns" in changes:
                    raise InvalidFormat("multiple from clauses")
                changes["from_patterns"] = value
            elif name == "principals":
                if "principals" in changes:
                    raise InvalidFormat("multiple principals clauses")
                changes["principals"] = value
            elif name == "expiry-time":
                when = _expiry(value)
                old = changes.get("expiry_time")
                changes["expiry_time"] = when if not isinstance(old, int) else min(old, when)
            elif name == "tunnel":
                if not value.isdigit() and value != "any":
                    raise InvalidFormat("invalid tun device")
                changes["tunnel"] = value
            elif name == "environment":
                if "=" not in value or not value.partition("=")[0]:
                    raise InvalidFormat("invalid environment string")
                lists["environment"].append(value)
            else:
                lists["permit_open" if name == "permitopen" else "permit_listen"].append(value)
        else:
            raise InvalidFormat(f"unknown key option: {text[start:name_end]}")
        if i >= len(text) or text[i] in _WS:
            break
        if text[i] != ",":
            raise InvalidFormat("unexpected end of options")
        i += 1
        if i >= len(text) or text[i] in _WS:
            raise InvalidFormat("unexpected end of options")
    options = replace(KeyOptions(), **changes,  # type: ignore[arg-type]
                      environment=tuple(lists["environment"]),
                      permit_open=tuple(lists["permit_open"]),
                      permit_listen=tuple(lists["permit_listen"]))
    return options, text[i:]


def parse_line(line: str, number: int = 0) -> AuthorizedKey | None:
    """One authorized_keys line; None for blanks and comments, InvalidFormat if bad."""
    text = line.rstrip("\r\n").lstrip(_WS)
    if not text or text.startswith("#"):
        return None
    options = KeyOptions()
    try:
        key, rest = read_key_token(text)
    except SshError:
        options, after = parse_options(text)
        key, rest = read_key_token(after.lstrip(_WS))
    return AuthorizedKey(key, options, rest.strip(_WS), number)


def parse_file(text: str) -> Iterator[AuthorizedKey | InvalidFormat]:
    """Each usable entry of a file; a bad line yields its error (with the line number)."""
    for number, line in enumerate(text.splitlines(), 1):
        try:
            entry = parse_line(line, number)
        except SshError as exc:
            yield InvalidFormat(f"line {number}: {exc}")
            continue
        if entry is not None:
            yield entry


def match_from(address: str, patterns: str, hostname: str | None = None) -> bool:
    """match_host_and_ip() for ``from=``: the client's address (and, with UseDNS, its
    name) against the pattern list; a negated match or a malformed list refuses."""
    ip_match = 0
    for entry in patterns.split(","):
        negated = entry.startswith("!")
        pattern = entry[1:] if negated else entry
        if "/" in pattern and addr_pton(pattern.split("/")[0]) is not None:
            hit = addr_match_cidr_list(address, pattern)
            if hit == -1:
                return False
            matched = hit == 1
        else:
            matched = match_hostname(address, pattern) == 1
        if matched:
            if negated:
                return False
            ip_match = 1
    if hostname is not None and hostname != address:
        host_match = match_hostname(hostname, patterns)
        if host_match == -1:
            return False
        return ip_match == 1 or host_match == 1
    return ip_match == 1
