"""The sshd_config keywords of sessions: MaxSessions, PrintMotd, Subsystem, PermitTTY,
PermitUserRC, PermitUserEnvironment, ClientAliveInterval and ClientAliveCountMax.

Parsed as servconf.c parses them (the first value wins, Subsystem lines accumulate and a
repeated name keeps its first definition, as OpenSSH 9.4+), with sshd's fatal
messages; ``-T`` lines as sshd prints them. sshd_config.py calls ``session_line`` for
these keywords; ``SessionPolicy`` is what the session code (protocol/server_session.py)
reads from a ServerConfig, together with AcceptEnv, ForceCommand and
AllowAgentForwarding/DisableForwarding.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keytools.errors import SshError

#: sshd_config keywords handled here (lower case -> sshd's spelling)
SESSION_KEYWORDS = {k.lower(): k for k in (
    "MaxSessions", "PrintMotd", "Subsystem", "PermitTTY", "PermitUserRC",
    "PermitUserEnvironment", "ClientAliveInterval", "ClientAliveCountMax",
)}
_FLAGS = {"printmotd": "print_motd", "permittty": "permit_tty", "permituserrc": "permit_user_rc"}
_INTS = {"maxsessions": "max_sessions", "clientalivecountmax": "client_alive_count_max"}
_TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _convtime(text: str) -> int | None:
    if not text:
        return None
    total = 0
    for m in re.finditer(r"(\d+)([sSmMhHdDwW]?)|(.)", text):
        if m.group(3) is not None:
            return None
        total += int(m.group(1)) * _TIME_UNITS[m.group(2).lower()]
    return total if total < 2**31 else None


def session_line(values: dict[str, object], lower: str, args: list[str],
                 fatal: Callable[[str], SshError]) -> None:
    """One line of these keywords into ``values`` (field name -> value; the first value
    wins); raises ``fatal(message)`` with sshd's words for a value it refuses."""
    keyword = SESSION_KEYWORDS[lower]
    if not args or not args[0]:
        raise fatal(f"{keyword} missing argument.")
    value = args[0]
    if lower in _FLAGS:
        if value not in ("yes", "no"):
            raise fatal(f'unsupported option "{value}".')
        values.setdefault(_FLAGS[lower], value == "yes")
    elif lower in _INTS:
        if not re.fullmatch(r"-?\d+", value):
            raise fatal(f"{keyword} integer value invalid.")
        values.setdefault(_INTS[lower], int(value))
    elif lower == "clientaliveinterval":
        seconds = _convtime(value)
        if seconds is None:
            raise fatal("invalid time value.")
        values.setdefault("client_alive_interval", seconds)
    elif lower == "permituserenvironment":
        values.setdefault("permit_user_environment", value)
    elif lower == "subsystem":
        # As OpenSSH 9.4+ (Subsystem allowed in Match): a name without a command is an
        # error, a name defined again keeps its first definition.
        if len(args) < 2 or not args[1]:
            raise fatal("Subsystem missing argument.")
        defined = values.get("subsystems", ())
        assert isinstance(defined, tuple)
        if not any(name == value for name, _ in defined):
            values["subsystems"] = (*defined, (value, " ".join(args[1:])))


def dump_session(config: object) -> list[str]:
    """sshd -T's lines for these keywords."""

    def get(name: str, default: object) -> object:
        return getattr(config, name, default)

    def flag(name: str) -> str:
        return "yes" if get(name, True) else "no"

    lines = [
        f"maxsessions {get('max_sessions', 10)}",
        f"clientaliveinterval {get('client_alive_interval', 0)}",
        f"clientalivecountmax {get('client_alive_count_max', 3)}",
        f"printmotd {flag('print_motd')}",
        f"permittty {flag('permit_tty')}",
        f"permituserrc {flag('permit_user_rc')}",
        f"permituserenvironment {get('permit_user_environment', 'no')}",
    ]
    subsystems = get("subsystems", ())
    assert isinstance(subsystems, tuple)
    lines += [f"subsystem {name} {command}" for name, command in subsystems]
    return lines


def _words(value: object) -> tuple[str, ...]:
    if value is None or value is False:
        return ()
    if value is True:
        return ("*",)
    if isinstance(value, str):
        low = value.lower()
        if low in ("no", "none", ""):
            return ()
        return ("*",) if low == "yes" else tuple(p for p in value.split(",") if p)
    if isinstance(value, (tuple, list)):
        return tuple(str(v) for v in value)
    return ()


@dataclass(frozen=True)
class SessionPolicy:
    """The sshd_config keywords that shape sessions, with sshd's defaults."""

    accept_env: tuple[str, ...] = ()
    max_sessions: int = 10
    print_motd: bool = True
    #: (name, command line) per Subsystem line
    subsystems: tuple[tuple[str, str], ...] = ()
    force_command: str | None = None
    #: PermitUserEnvironment: () for no, ("*",) for yes, else the allowed name patterns
    permit_user_environment: tuple[str, ...] = ()
    allow_agent_forwarding: bool = True
    permit_tty: bool = True
    permit_user_rc: bool = True
    client_alive_interval: int = 0
    client_alive_count_max: int = 3

    @classmethod
    def from_config(cls, config: Any) -> SessionPolicy:
        """Read what the configuration has; keywords it does not carry keep sshd's
        defaults."""

        def get(name: str, default: Any) -> Any:
            value = getattr(config, name, default)
            return default if value is None and default is not None else value

        subsystems = get("subsystems", ())
        if isinstance(subsystems, dict):
            subsystems = tuple(subsystems.items())
        force = get("force_command", None)
        return cls(
            accept_env=tuple(get("accept_env", ())),
            max_sessions=int(get("max_sessions", 10)),
            print_motd=bool(get("print_motd", True)),
            subsystems=tuple((str(n), str(c)) for n, c in subsystems),
            force_command=None if force in (None, "none") else str(force),
            permit_user_environment=_words(get("permit_user_environment", ())),
            allow_agent_forwarding=_agent_allowed(config),
            permit_tty=bool(get("permit_tty", True)),
            permit_user_rc=bool(get("permit_user_rc", True)),
            client_alive_interval=int(get("client_alive_interval", 0)),
            client_alive_count_max=int(get("client_alive_count_max", 3)),
        )

    def subsystem(self, name: str) -> str | None:
        for sub, command in self.subsystems:
            if sub == name:
                return command
        return None


def _agent_allowed(config: object) -> bool:
    """AllowAgentForwarding, and not DisableForwarding."""
    from protocol.forward_policy import policy_of

    return policy_of(config).agent()
