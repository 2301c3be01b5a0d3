"""ssh.c's and readconf.c's side of a session, before connecting: the session keywords
of ssh_config (EscapeChar, RequestTTY, SessionType, StdinNull, ForkAfterAuthentication,
SendEnv, SetEnv, ServerAlive*, TCPKeepAlive) and the flags that set them (-t -T -N -n -f
-s -e), their checks and ``ssh -G`` lines, and ``plan_session``: ssh's pty decision
(with its notice) and fatal checks, as a ``SessionPlan`` for protocol/session_client.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from keytools.errors import SshError
from protocol.escape import NO_ESCAPE, BadEscapeChar, parse_escape_char
from protocol.ssh_log import Log

_YES_NO = {"yes": True, "true": True, "no": False, "false": False}
_REQUEST_TTY = {"yes": "true", "true": "true", "no": "false", "false": "false",
                "force": "force", "auto": "auto"}


class SessionError(SshError):
    """A problem found before connecting, in ssh's words (exit 255)."""


def check_option(key: str, args: list[str], where: str) -> None:
    """Validate a session keyword's value as readconf.c does (ConfigError, ssh's words)."""
    from keytools.cert_validity import convtime
    from protocol.ssh_config import ConfigError

    value = args[0]
    if key == "escapechar":
        try:
            parse_escape_char(value)
        except BadEscapeChar:
            raise ConfigError(f"{where}: Bad escape character.") from None
    elif key == "serveraliveinterval":
        if convtime(value) is None:
            raise ConfigError(f"{where}: invalid time value.")
    elif key == "serveralivecountmax":
        if not value.lstrip("-").isdigit():
            raise ConfigError(f"{where}: integer value invalid.")
        if int(value) < 0:
            raise ConfigError(f"{where}: integer value too small.")
    elif key in ("tcpkeepalive", "forkafterauthentication"):
        if value.lower() not in _YES_NO:
            raise ConfigError(f"{where}: unsupported option \"{value}\".")
    elif key == "sendenv":
        if any("=" in a for a in args):
            raise ConfigError(f"{where}: Invalid environment name.")
    elif key == "setenv" and any("=" not in a for a in args):
        raise ConfigError(f"{where}: Invalid SetEnv.")
    elif (key == "requesttty" and value.lower() not in _REQUEST_TTY) or \
            (key == "sessiontype" and value.lower() not in ("default", "none", "subsystem")):
        raise ConfigError(f"{where}: unsupported option \"{value}\".")


@dataclass(frozen=True)
class SessionPlan:
    """What ssh decided before connecting."""

    host: str  # for "Connection to HOST closed." (the HostName, as ssh's host)
    command: str
    session_type: str  # default, subsystem, none
    tty: bool  # ssh's tty_flag: request a pty (and handle escapes)
    force_tty: bool  # RequestTTY force (-tt)
    escape_char: int
    stdin_null: bool
    fork: bool  # -f / ForkAfterAuthentication
    send_env: tuple[str, ...]
    set_env: tuple[tuple[str, str], ...]
    alive_interval: int  # seconds; 0 = off
    alive_count_max: int
    tcp_keepalive: bool
    log_to_stderr: bool  # no -E (ssh's log_is_on_stderr)


def _flag(values: dict[str, list[str]], key: str, default: bool) -> bool:
    got = values.get(key)
    return _YES_NO.get(got[0].lower(), default) if got else default


def _send_env_patterns(words: list[str]) -> tuple[str, ...]:
    """SendEnv lines in order; "-pattern" drops the patterns it matches (readconf.c)."""
    from keytools.match import match_pattern

    patterns: list[str] = []
    for word in words:
        if word.startswith("-"):
            patterns = [p for p in patterns if not match_pattern(p, word[1:])]
        elif word not in patterns:
            patterns.append(word)
    return tuple(patterns)


def _set_env(words: list[str]) -> tuple[tuple[str, str], ...]:
    """The first SetEnv line, duplicates of a name ignored (readconf.c)."""
    seen: dict[str, str] = {}
    for word in words:
        name, _, value = word.partition("=")
        seen.setdefault(name, value)
    return tuple(seen.items())


def flag_values(args: object) -> dict[str, list[str]]:
    """-t/-T/-N/-n/-f/-s/-e as ssh_config values: set while ssh parses its arguments, they
    win over -o and the files (ConfigError for a bad -e, in ssh's words)."""
    from protocol.ssh_cli import SshArgs
    from protocol.ssh_config import ConfigError

    assert isinstance(args, SshArgs)
    values: dict[str, list[str]] = {}
    for item in args.ignored:  # flags ssh_cli keeps for this module
        if item.startswith("-e "):
            try:
                parse_escape_char(item[3:])
            except BadEscapeChar:
                raise ConfigError(f"Bad escape character '{item[3:]}'.") from None
            values["escapechar"] = [item[3:]]
        elif item == "-s":
            values["sessiontype"] = ["subsystem"]
        elif item == "-f":
            values["forkafterauthentication"] = values["stdinnull"] = ["yes"]
    if args.stdin_null:
        values["stdinnull"] = ["yes"]
    if args.no_command:
        values["sessiontype"] = ["none"]
    if args.tty:
        values["requesttty"] = ["no" if args.tty < 0 else "yes" if args.tty == 1 else "force"]
    elif args.no_command:
        values["requesttty"] = ["no"]
    return values


def _vis(c: int) -> str:
    """vis(3) with VIS_WHITE, as ssh -G prints the escape character."""
    if c == 0x5C:
        return "\\\\"
    if 0x21 <= c <= 0x7E:
        return chr(c)
    if c >= 0x80:
        low = c & 0x7F
        if 0x21 <= low <= 0x7E:
            return "\\M-" + chr(low)
        return "\\M^" + ("?" if low == 0x7F else chr(low + 64)) if low != 0x20 else "\\240"
    if c == 0x20:
        return "\\040"
    return "\\^" + ("?" if c == 0x7F else chr(c + 64))


def dump_lines(values: dict[str, list[str]]) -> dict[str, list[str]]:
    """``ssh -G`` lines for the session keywords, by the place they go in ssh's order."""
    def first(key: str, default: str) -> str:
        return values.get(key, [default])[0]

    request = _REQUEST_TTY[first("requesttty", "auto").lower()]
    escape = parse_escape_char(first("escapechar", "~"))
    yes_no = {True: "yes", False: "no"}
    return {
        "tty": [f"requesttty {request}",
                f"sessiontype {first('sessiontype', 'default').lower()}",
                f"stdinnull {yes_no[_flag(values, 'stdinnull', False)]}",
                "forkafterauthentication "
                f"{yes_no[_flag(values, 'forkafterauthentication', False)]}"],
        "tcpkeepalive": [f"tcpkeepalive {yes_no[_flag(values, 'tcpkeepalive', True)]}"],
        "serveralive": [f"serveralivecountmax {first('serveralivecountmax', '3')}",
                        f"serveraliveinterval {_alive_interval(values)}"],
        "env": [f"sendenv {p}" for p in _send_env_patterns(values.get("sendenv", []))]
        + [f"setenv {n}={v}" for n, v in _set_env(values.get("setenv", []))],
        "escapechar": ["escapechar none" if escape == NO_ESCAPE
                       else f"escapechar {_vis(escape)}"],
    }


def _alive_interval(values: dict[str, list[str]]) -> int:
    """ServerAliveInterval: default 0, or 300 with BatchMode (Debian's ssh, the one the
    tests compare with, does this)."""
    got = values.get("serveraliveinterval")
    if got is None:
        return 300 if _flag(values, "batchmode", False) else 0
    return _convtime(got[0])


def _convtime(text: str) -> int:
    from keytools.cert_validity import convtime

    return convtime(text) or 0


def plan_session(args: object, r: object, log: Log, *, stdin_is_tty: bool | None = None,
                 ) -> SessionPlan:
    """ssh.c's checks and tty decision (with its notice); SessionError on a fatal one."""
    from protocol.ssh_cli import SshArgs
    from protocol.ssh_config import Resolved

    assert isinstance(args, SshArgs) and isinstance(r, Resolved)
    values = {**r.values, **flag_values(args)}  # (configure put them in r.values already)
    fork = _flag(values, "forkafterauthentication", False)
    stdin_null = fork or _flag(values, "stdinnull", False)
    session_type = values.get("sessiontype", ["default"])[0].lower()
    command = " ".join(args.command)
    if "-s" in args.ignored and not command:  # ssh.c checks -s before reading config
        from protocol.ssh_cli import USAGE

        sys.stderr.write("You must specify a subsystem to invoke.\n" + USAGE)
        raise SessionError("")
    if fork and not command and session_type != "none":
        raise SessionError("Cannot fork into background without a command to execute.")
    request = _REQUEST_TTY[values.get("requesttty", ["auto"])[0].lower()]
    tty = request in ("true", "force")
    if not command:
        tty = request != "false"
    if request == "false" or session_type == "none":
        tty = False
    if stdin_is_tty is None:
        stdin_is_tty = os.isatty(0)
    if (not stdin_is_tty or stdin_null) and request != "force":
        if tty:
            log.info("Pseudo-terminal will not be allocated because stdin is not a terminal.")
        tty = False
    return SessionPlan(
        host=r.hostname, command=command, session_type=session_type, tty=tty,
        force_tty=request == "force",
        escape_char=parse_escape_char(values.get("escapechar", ["~"])[0]),
        stdin_null=stdin_null, fork=fork,
        send_env=_send_env_patterns(values.get("sendenv", [])),
        set_env=_set_env(values.get("setenv", [])),
        alive_interval=_alive_interval(values),
        alive_count_max=int(values.get("serveralivecountmax", ["3"])[0]),
        tcp_keepalive=_flag(values, "tcpkeepalive", True),
        log_to_stderr=args.log_file is None)


def env_requests(plan: SessionPlan, environ: dict[str, str]) -> list[tuple[str, str]]:
    """The (name, value) pairs ssh sends as "env": SendEnv matches, then SetEnv."""
    from keytools.match import match_pattern

    out = [(name, value) for name, value in environ.items()
           if any(match_pattern(name, p) for p in plan.send_env)]
    return out + list(plan.set_env)


__all__ = ["SessionError", "SessionPlan", "check_option", "dump_lines", "env_requests",
           "flag_values", "plan_session"]
