"""pysshd's forwarding policy: the sshd_config keywords AllowTcpForwarding,
AllowStreamLocalForwarding, AllowAgentForwarding, DisableForwarding, GatewayPorts,
PermitOpen and PermitListen, and the permitopen=/permitlisten= matching sshd's channels.c
does against them and against the authorized_keys options.

Pure logic (no sockets): sshd_config.py parses the keywords through
``apply_policy_keyword`` and protocol/forward_server.py asks ``ForwardPolicy``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from keytools.errors import SshError
from keytools.match import match_pattern

#: sshd_config keywords handled here (lower case -> sshd's spelling)
POLICY_KEYWORDS = {k.lower(): k for k in (
    "AllowTcpForwarding", "AllowStreamLocalForwarding", "AllowAgentForwarding",
    "DisableForwarding", "GatewayPorts", "PermitOpen", "PermitListen",
)}
_WHERE = {"yes": "yes", "all": "yes", "no": "no", "local": "local", "remote": "remote"}
_GATEWAY = {"no": 0, "yes": 1, "clientspecified": 2}
_FLAG = {"yes": True, "no": False}
ANY_PORT = -1


@dataclass(frozen=True)
class ForwardPolicy:
    """The effective forwarding settings (sshd's defaults)."""

    allow_tcp_forwarding: str = "yes"  # yes / no / local / remote
    allow_streamlocal_forwarding: str = "yes"
    allow_agent_forwarding: bool = True
    disable_forwarding: bool = False
    gateway_ports: int = 0  # 0 no, 1 yes, 2 clientspecified
    #: None: any; () : none; else "host:port" entries as written
    permit_open: tuple[str, ...] | None = None
    permit_listen: tuple[str, ...] | None = None

    def tcp_local(self) -> bool:
        return not self.disable_forwarding and self.allow_tcp_forwarding in ("yes", "local")

    def tcp_remote(self) -> bool:
        return not self.disable_forwarding and self.allow_tcp_forwarding in ("yes", "remote")

    def streamlocal_local(self) -> bool:
        return not self.disable_forwarding \
            and self.allow_streamlocal_forwarding in ("yes", "local")

    def streamlocal_remote(self) -> bool:
        return not self.disable_forwarding \
            and self.allow_streamlocal_forwarding in ("yes", "remote")

    def agent(self) -> bool:
        return not self.disable_forwarding and self.allow_agent_forwarding


def split_hostport(text: str) -> tuple[str, str] | None:
    """hpdelim(): ``host:port`` or ``[host]:port``; None without a port."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1:end + 2] != ":":
            return None
        return text[1:end], text[end + 2:]
    host, colon, port = text.rpartition(":") if text.count(":") == 1 else ("", "", "")
    if not colon:
        return None
    return host, port


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _port_ok(port: str) -> bool:
    return port == "*" or (_digits(port) and 0 < int(port) < 65536)


def apply_policy_keyword(key: str, words: list[str],
                         fatal: Callable[[str], SshError]) -> tuple[str, object]:
    """One sshd_config line of these keywords: (ServerConfig field, value), or
    ``fatal(message)`` raised with sshd's words for a value it refuses."""
    keyword = POLICY_KEYWORDS[key]
    if not words:
        raise fatal(f"{keyword} missing argument.")
    value = words[0]
    lower = value.lower()
    if key in ("allowtcpforwarding", "allowstreamlocalforwarding"):
        if lower not in _WHERE:
            raise fatal(f"unsupported option \"{value}\".")
        name = "allow_tcp_forwarding" if key == "allowtcpforwarding" \
            else "allow_streamlocal_forwarding"
        return name, _WHERE[lower]
    if key in ("allowagentforwarding", "disableforwarding"):
        if lower not in _FLAG:
            raise fatal(f"unsupported option \"{value}\".")
        name = "allow_agent_forwarding" if key == "allowagentforwarding" \
            else "disable_forwarding"
        return name, _FLAG[lower]
    if key == "gatewayports":
        if lower not in _GATEWAY:
            raise fatal(f"unsupported option \"{value}\".")
        return "gateway_ports", _GATEWAY[lower]
    name = "permit_open" if key == "permitopen" else "permit_listen"
    if lower in ("any", "none"):
        if len(words) > 1:
            raise fatal(f"keyword {keyword} extra arguments at end of line")
        return name, None if lower == "any" else ()
    entries: list[str] = []
    for word in words:
        if key == "permitlisten" and ":" not in word:
            word = f"*:{word}"  # a bare port: any listen host
        parts = split_hostport(word)
        if parts is None or not parts[0] or not _port_ok(parts[1]):
            raise fatal(f"{keyword} bad port number")
        entries.append(word)
    return name, tuple(entries)


def policy_of(config: object) -> ForwardPolicy:
    """The ForwardPolicy of a ServerConfig (its fields of the same names)."""
    defaults = ForwardPolicy()
    return ForwardPolicy(**{name: getattr(config, name, getattr(defaults, name))
                            for name in ForwardPolicy.__dataclass_fields__})


def dump_policy(policy: ForwardPolicy) -> list[str]:
    """sshd -T's lines for these keywords."""
    gateway = {0: "no", 1: "yes", 2: "clientspecified"}[policy.gateway_ports]

    def permits(entries: tuple[str, ...] | None) -> str:
        if entries is None:
            return "any"
        return " ".join(entries) if entries else "none"

    return [
        f"gatewayports {gateway}",
        f"allowtcpforwarding {policy.allow_tcp_forwarding}",
        f"allowagentforwarding {'yes' if policy.allow_agent_forwarding else 'no'}",
        f"disableforwarding {'yes' if policy.disable_forwarding else 'no'}",
        f"allowstreamlocalforwarding {policy.allow_streamlocal_forwarding}",
        f"permitopen {permits(policy.permit_open)}",
        f"permitlisten {permits(policy.permit_listen)}",
    ]


# -- matching ---------------------------------------------------------------------------


def _open_match(entry: str, host: str, port: int) -> bool:
    """open_match(): host compared exactly (or "*"), port exactly (or "*")."""
    parts = split_hostport(entry)
    if parts is None:
        return False
    want_host, want_port = parts
    if want_port != "*" and (not _digits(want_port) or int(want_port) != port):
        return False
    return want_host in ("*", host)


def open_permitted(policy: ForwardPolicy, user: tuple[str, ...], host: str,
                   port: int) -> bool:
    """direct-tcpip to host:port: both the user's permitopen= list (empty: any) and
    PermitOpen must allow it."""
    if user and not any(_open_match(e, host, port) for e in user):
        return False
    admin = policy.permit_open
    return admin is None or any(_open_match(e, host, port) for e in admin)


def _listen_match(entry: str, host: str, port: int) -> bool:
    """remote_open_match(): port exactly (or "*"), host a pattern, case-insensitively."""
    if ":" not in entry:
        entry = f"*:{entry}"
    parts = split_hostport(entry)
    if parts is None:
        return False
    want_host, want_port = parts
    if want_port != "*" and (not _digits(want_port) or int(want_port) != port):
        return False
    return match_pattern(host.lower(), want_host)


def listen_permitted(policy: ForwardPolicy, user: tuple[str, ...], host: str,
                     port: int) -> bool:
    """tcpip-forward on host:port: permitlisten= (empty: any) and PermitListen."""
    if user and not any(_listen_match(e, host, port) for e in user):
        return False
    admin = policy.permit_listen
    return admin is None or any(_listen_match(e, host, port) for e in admin)


__all__ = ["POLICY_KEYWORDS", "ForwardPolicy", "apply_policy_keyword", "dump_policy",
           "listen_permitted", "open_permitted", "policy_of"]
