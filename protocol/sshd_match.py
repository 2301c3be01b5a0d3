"""sshd_config ``Match`` conditions and the user/host patterns of AllowUsers/DenyUsers.

``match_condition`` is servconf.c's match_cfg_line(): the criteria on one Match line are
ANDed; ``All`` stands alone; User, Group, Host, Address, LocalAddress, LocalPort and
RDomain take an argument. With no connection (``ci`` None: the syntax check at start-up)
nothing matches but Address lists are still checked. In ``-T`` test mode a criterion the
connection spec does not give is false, except LocalPort which sshd then refuses.
``addr_match_list`` is addrmatch.c's: CIDR entries, wildcard patterns, ``!`` negation.
"""

from __future__ import annotations

import grp
import pwd
from dataclasses import dataclass

from keytools.addrmatch import _netmatch, _pton_cidr, addr_pton
from keytools.errors import SshError
from keytools.match import match_hostname, match_pattern, match_pattern_list


class MatchError(SshError):
    """A Match line sshd refuses; the caller adds ``path line N: Bad Match condition``
    unless the message is itself fatal (``fatal`` True)."""

    def __init__(self, message: str, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


@dataclass(frozen=True)
class ConnectionInfo:
    """What Match criteria are tested against (sshd's struct connection_info)."""

    user: str | None = None
    host: str | None = None
    address: str | None = None
    laddress: str | None = None
    lport: int = 0
    rdomain: str | None = None
    #: ``-T``: criteria the spec leaves out are false instead of fatal
    test: bool = False


def addr_match_list(addr: str | None, patterns: str) -> int:
    """1 match, 0 no match, -1 negated match, -2 malformed list (addr_match_list())."""
    host = None
    if addr is not None:
        host = addr_pton(addr)
        if host is None:
            return 0
    result = 0
    for entry in patterns.split(","):
        negated = entry.startswith("!")
        if negated:
            entry = entry[1:]
        if not entry:
            return -2
        parsed = _pton_cidr(entry) if set(entry) <= set("0123456789abcdefABCDEF.:/") else -1
        if parsed == -2:
            return -2
        if isinstance(parsed, tuple):
            hit = host is not None and _netmatch(host, parsed[0], parsed[1])
        else:
            hit = addr is not None and match_pattern(addr, entry)
        if hit:
            if negated:
                return -1
            result = 1
    return result


def match_host_and_ip(host: str | None, ipaddr: str | None, patterns: str) -> int:
    """match.c's match_host_and_ip(): 1, 0, or -1 for a malformed address list."""
    mip = addr_match_list(ipaddr, patterns)
    if mip == -2:
        return -1
    if host is None or ipaddr is None or mip == -1:
        return 0
    mhost = match_hostname(host, patterns)
    if mhost == -1:
        return 0
    return 0 if mhost == 0 and mip == 0 else 1


def match_user(user: str | None, host: str | None, ipaddr: str | None, pattern: str) -> int:
    """AllowUsers/DenyUsers ``user[@host]`` entries (match.c's match_user()); -1 when
    the host part is malformed. All three None checks only the syntax."""
    at = pattern.rfind("@")
    if user is None and host is None and ipaddr is None:
        if at >= 0 and match_host_and_ip(None, None, pattern[at + 1 :]) < 0:
            return -1
        return 0
    if user is None:
        return 0
    if at < 0:
        return 1 if match_pattern(user, pattern) else 0
    if not match_pattern(user, pattern[:at]):
        return 0
    return match_host_and_ip(host, ipaddr, pattern[at + 1 :])


def user_groups(user: str) -> list[str] | None:
    """The names of the user's primary and supplementary groups (ga_init()); None for
    an unknown user."""
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return None
    names: list[str] = []
    try:
        import os

        gids = os.getgrouplist(user, pw.pw_gid)
    except OSError:
        gids = [pw.pw_gid]
    for gid in gids:
        try:
            name = grp.getgrgid(gid).gr_name
        except KeyError:
            continue
        if name not in names:
            names.append(name)
    return names


def group_match_list(groups: list[str], patterns: str) -> bool:
    """ga_match_pattern_list(): some group matches and none is negated."""
    found = False
    for name in groups:
        r = match_pattern_list(name, patterns)
        if r == -1:
            return False
        if r == 1:
            found = True
    return found


def _missing(criterion: str, attribute: str) -> MatchError:
    return MatchError(f"'Match {criterion}' in configuration but '{attribute}' not in "
                      "connection test specification.", fatal=True)


def match_condition(text: str, line: int, ci: ConnectionInfo | None) -> bool:
    """One Match line's criteria (the words after ``Match``)."""
    words = text.split()
    if "#" in text:
        cut = next((i for i, w in enumerate(words) if w.startswith("#")), len(words))
        words = words[:cut]
    result = True
    attributes = 0
    i = 0
    while i < len(words):
        attrib = words[i]
        i += 1
        attributes += 1
        lower = attrib.lower()
        if lower == "all":
            if attributes > 1 or i < len(words):
                raise MatchError("'all' cannot be combined with other Match attributes")
            return True
        if i >= len(words):
            raise MatchError(f"Missing Match criteria for {attrib}")
        arg = words[i]
        i += 1
        if lower in ("user", "group", "host", "rdomain"):
            value = {"user": ci.user if ci else None, "group": ci.user if ci else None,
                     "host": ci.host if ci else None,
                     "rdomain": ci.rdomain if ci else None}[lower]
            if ci is None or (ci.test and value is None):
                result = False
                continue
            if value is None:
                raise _missing(attrib if lower != "rdomain" else "RDomain",
                               "user" if lower == "group" else lower)
            if lower == "user":
                ok = match_pattern_list(value, arg) == 1
            elif lower == "group":
                groups = user_groups(value)
                ok = groups is not None and group_match_list(groups, arg)
            elif lower == "host":
                ok = match_hostname(value, arg) == 1
            else:
                ok = match_pattern_list(value, arg) == 1
            if not ok:
                result = False
        elif lower in ("address", "localaddress"):
            value = (ci.address if lower == "address" else ci.laddress) if ci else None
            if ci is None or (ci.test and value is None):
                if addr_match_list(None, arg) != 0:
                    raise MatchError(f"Invalid Match {lower} argument '{arg}' at line {line}",
                                     fatal=True)
                result = False
                continue
            if value is None:
                raise _missing("Address" if lower == "address" else "LocalAddress",
                               "addr" if lower == "address" else "laddr")
            r = addr_match_list(value, arg)
            if r == -2:
                raise MatchError(f"Invalid Match {lower} argument '{arg}'")
            if r != 1:
                result = False
        elif lower == "localport":
            port = int(arg) if arg.isdigit() and 0 < int(arg) < 65536 else -1
            if port == -1:
                raise MatchError(f"Invalid LocalPort '{arg}' on Match line")
            if ci is None or (ci.test and ci.lport == -1):
                result = False
                continue
            if ci.lport == 0:
                raise _missing("LocalPort", "lport")
            if port != ci.lport:
                result = False
        else:
            raise MatchError(f"Unsupported Match attribute {attrib}")
    if attributes == 0:
        raise MatchError("One or more attributes required for Match")
    return result


def parse_test_spec(spec: str) -> ConnectionInfo:
    """``-C user=,host=,addr=,laddr=,lport=,rdomain=``; raises SshError with sshd's
    words for a bad entry."""
    fields: dict[str, str | None] = {"user": None, "host": None, "address": None,
                                     "laddress": None, "rdomain": None}
    lport = 0
    for part in spec.split(","):
        if not part:
            break
        key, eq, value = part.partition("=")
        names = {"addr": "address", "host": "host", "user": "user", "laddr": "laddress",
                 "rdomain": "rdomain"}
        if eq and key in names:
            fields[names[key]] = value
        elif eq and key == "lport":
            if not value.isdigit() or not 0 < int(value) < 65536:
                raise SshError(f"Invalid port '{value}' in test mode specification {part}")
            lport = int(value)
        else:
            raise SshError(f"Invalid test mode specification {part}")
    return ConnectionInfo(user=fields["user"], host=fields["host"], address=fields["address"],
                          laddress=fields["laddress"], lport=lport,
                          rdomain=fields["rdomain"], test=True)
