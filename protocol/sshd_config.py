"""sshd_config for pysshd: the keywords we implement, and all of OpenSSH's others by name.

Parsing follows servconf.c: the first value of a single-valued keyword wins (so ``-o``
options, read first, override the file), ``Port``/``ListenAddress``/``HostKey``/
``AcceptEnv`` accumulate, a value sshd would refuse is fatal with its words
(``path line N: Badly formatted port number.``), an unknown keyword is counted and
reported as ``path: line N: Bad configuration option: X``. Keywords OpenSSH knows but
pysshd does not implement yet draw one warning line naming them.

Match blocks (protocol/sshd_match.py) work as in sshd: at start-up their lines are
checked (a keyword not allowed in Match is fatal) but not applied; the lines from the
first Match on are kept in ``ServerConfig.match_lines`` and ``for_connection`` replays
them for a connection (user, host, addresses, local port), the values set by matching
blocks replacing the global ones (copy_set_server_options()). ``-T -C spec`` prints that.

The parts live in sshd_keywords.py (keyword tables), sshd_values.py (value syntax),
sshd_options.py (ServerConfig), sshd_builder.py (first value wins), sshd_listen.py
(ListenAddress), sshd_auth_keywords.py (authentication policy) and sshd_dump.py (``-T``);
this module reads the lines and re-exports their names, so importers need only it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable

from keytools.errors import SshError
from protocol.forward_policy import POLICY_KEYWORDS, apply_policy_keyword
from protocol.kex import kexinit as _alg
from protocol.penalty import LIMIT_KEYWORDS, limit_line
from protocol.session_config import SESSION_KEYWORDS, session_line
from protocol.sshd_auth_keywords import (
    _FLAGS,
    _POLICY,
    AUTH_METHODS,
    PERMIT_ROOT_LOGIN,
    _policy_dump,
    _policy_line,
    _rest_of_line,
)
from protocol.sshd_builder import _Builder, _extend, _set
from protocol.sshd_dump import _listen_text, dump_config, dump_for_spec
from protocol.sshd_keywords import (
    _BUILT_WITHOUT,
    _DEPRECATED,
    _SUPPORTED,
    _UNSUPPORTED,
    ALIASES,
    BUILT_WITHOUT,
    DEPRECATED,
    GLOBAL_ONLY,
    IGNORED,
    KNOWN_UNSUPPORTED,
    SUPPORTED,
)
from protocol.sshd_listen import (
    _WILDCARDS,
    ADDRESS_FAMILIES,
    _listen_address,
    resolve_listen,
    resolve_listeners,
)
from protocol.sshd_options import DEFAULT_PORT, ServerConfig, _merge_subsystems
from protocol.sshd_values import _TIME_UNITS, ConfigError, _port, convtime, split_args

#: the names importable from here, this module's and those of its parts
__all__ = [
    "ADDRESS_FAMILIES", "ALIASES", "AUTH_METHODS", "BUILT_WITHOUT", "DEFAULT_PORT",
    "DEPRECATED", "GLOBAL_ONLY", "IGNORED", "KNOWN_UNSUPPORTED", "LOG_LEVELS",
    "PERMIT_ROOT_LOGIN", "SSHDIR", "SUPPORTED", "VERBOSE", "_BUILT_WITHOUT", "_DEPRECATED",
    "_FLAGS", "_POLICY", "_SUPPORTED", "_TIME_UNITS", "_UNSUPPORTED", "_WILDCARDS",
    "BadCommandLineOption", "BadOptions", "ConfigError", "ServerConfig", "_Builder",
    "_extend", "_include", "_keyword_line", "_listen_address", "_listen_text", "_match",
    "_merge_subsystems", "_policy_dump", "_policy_line", "_port", "_rest_of_line", "_set",
    "_subsystem_defined", "convtime", "dump_config", "dump_for_spec", "parse_config",
    "process_line", "resolve_listen", "resolve_listeners", "split_args",
]

LOG_LEVELS = ("QUIET", "FATAL", "ERROR", "INFO", "VERBOSE", "DEBUG", "DEBUG1", "DEBUG2",
              "DEBUG3")
#: the logging level of sshd's verbose() lines (between logging.DEBUG and INFO): shown
#: from LogLevel VERBOSE on, as in sshd
VERBOSE = 15


class BadOptions(SshError):
    """Unknown keywords: each reported, then ``path: terminating, N bad configuration
    options``."""

    def __init__(self, lines: list[str], path: str) -> None:
        super().__init__("\n".join(
            [*lines, f"{path}: terminating, {len(lines)} bad configuration options"]))


class BadCommandLineOption(ConfigError):
    """An unknown keyword in a ``-o`` option: sshd reports it and exits 1."""


def _subsystem_defined(values: dict[str, object], name: str) -> bool:
    defined = values.get("subsystems", ())
    return isinstance(defined, tuple) and any(item[0] == name for item in defined)


def process_line(b: _Builder, line: str, path: str, number: int) -> None:
    """process_server_config_line() for one line of ``path``."""
    text = line.strip(" \t\r\n")
    if not text or text.startswith("#"):
        return
    m = re.match(r"([^ \t=]+)[ \t]*=?[ \t]*(.*)", text)
    if m is None:
        return
    keyword, rest = m.group(1), m.group(2)
    lower = keyword.lower()
    where = f"{path} line {number}"

    def fatal(message: str) -> ConfigError:
        return ConfigError(f"{where}: {message}")

    if not rest.strip():
        b.bad.append(f"{where}: no argument after keyword \"{keyword}\"")
        return
    if b.connection is not None:
        # replaying Match blocks for a connection: global lines were applied at start-up
        if lower == "match":
            b.active = _match(b, rest, number, fatal)
        elif b.active and lower not in GLOBAL_ONLY and lower != "include":
            # (global keywords of a "Match all" block were applied at start-up; included
            # files' lines are already in match_lines)
            _keyword_line(b, keyword, lower, rest, where, fatal, path, number)
        return
    known = lower in _SUPPORTED or lower in _UNSUPPORTED or lower in _DEPRECATED \
        or lower in _BUILT_WITHOUT or lower in ALIASES or lower in IGNORED
    if not known:
        b.bad.append(f"{path}: line {number}: Bad configuration option: {keyword}")
    if b.in_match and not b.active and (not known or lower in GLOBAL_ONLY):
        refusal = fatal(f"Directive '{keyword}' is not allowed within a Match block")
        raise ConfigError("\n".join([*(b.bad[-1:] if not known else []), refusal.message]))
    if not known:
        return
    if lower == "match":
        if b.cmdline:
            raise ConfigError("Match directive not supported as a command-line option")
        b.in_match = True
        b.active = _match(b, rest, number, fatal)  # only "Match all" applies at start-up
    if b.in_match:
        b.match_lines.append((line, path, number))
    if lower == "include":
        _include(b, rest, fatal)
        return
    _keyword_line(b, keyword, lower, rest, where, fatal, path, number)


#: sshd's SSHDIR: where a relative Include is looked for
SSHDIR = "/etc/ssh"


def _include(b: _Builder, rest: str, fatal: Callable[[str], ConfigError]) -> None:
    """Include: each glob's files in order, their lines as if written here; a Match
    block in an included file ends with it (sshd restores the including file's state)."""
    import glob

    if b.cmdline:
        raise ConfigError("Include directive not supported as a command-line option")
    args = split_args(rest)
    if args is None:
        raise fatal("invalid quotes")
    if b.depth >= 16:
        raise ConfigError("Too many recursive configuration includes")
    for arg in args:
        pattern = arg if arg.startswith(("/", "~")) else f"{SSHDIR}/{arg}"
        for name in sorted(glob.glob(os.path.expanduser(pattern))):
            try:
                with open(name, encoding="utf-8", errors="surrogateescape") as f:
                    text = f.read()
            except OSError as exc:
                raise ConfigError(f"{name}: {exc.strerror}") from None
            saved = (b.in_match, b.active)
            b.depth += 1
            try:
                for number, line in enumerate(text.splitlines(), 1):
                    process_line(b, line, name, number)
            finally:
                b.depth -= 1
                b.in_match, b.active = saved


def _match(b: _Builder, rest: str, number: int, fatal: Callable[[str], ConfigError]) -> bool:
    from protocol.sshd_match import MatchError, match_condition

    try:
        return match_condition(rest, number, b.connection)
    except MatchError as exc:
        if exc.fatal:
            raise ConfigError(exc.message) from None
        raise ConfigError(f"{exc.message}\n{fatal('Bad Match condition').message}") from None


def _keyword_line(b: _Builder, keyword: str, lower: str, rest: str, where: str,
                  fatal: Callable[[str], ConfigError], path: str, number: int) -> None:
    """One known keyword's line: check its value, store it if the line applies."""
    lower = ALIASES.get(lower, lower)
    if lower == "match" or lower in IGNORED:
        return
    if lower in _DEPRECATED:
        b.warnings.append(f"{where}: Deprecated option {keyword}")
        return
    if lower in _BUILT_WITHOUT:
        b.warnings.append(f"{where}: Unsupported option {keyword}")
        return
    if lower in LIMIT_KEYWORDS:  # MaxStartups, PerSource*: protocol/penalty.py
        limit_line(b.values, lower, split_args(rest) or [], fatal)
        return
    if lower in SESSION_KEYWORDS:  # session keywords: protocol/session_config.py
        words = split_args(rest) or []
        if lower == "subsystem" and b.connection is not None and len(words) > 1 \
                and _subsystem_defined(b.values, words[0]):
            return  # replaying Match blocks: the first matching block's definition wins
        session_line(b.values if b.active else {}, lower, words, fatal)
        return
    if lower in POLICY_KEYWORDS:  # forwarding keywords: protocol/forward_policy.py
        _set(b, *apply_policy_keyword(lower, split_args(rest) or [], fatal))
        return
    if lower in _UNSUPPORTED:
        b.unimplemented.setdefault(_UNSUPPORTED[lower], []).append(f"line {number}")
        return
    if lower in _POLICY:
        _policy_line(b, keyword, lower, rest, fatal)
        return
    args = split_args(rest)
    if args is None:
        raise fatal("invalid quotes")
    if not args:
        b.bad.append(f"{where}: no argument after keyword \"{keyword}\"")
        return
    value = args[0]
    if lower == "port":
        port = _port(value)
        if port is None:
            raise fatal("Badly formatted port number.")
        if not b.ports_from_cmdline:
            b.ports.append(port)
    elif lower == "listenaddress":
        b.listen.append(_listen_address(value, fatal))
    elif lower == "addressfamily":
        if value.lower() not in ADDRESS_FAMILIES:
            raise fatal(f'unsupported option "{value}".')
        _set(b, "address_family", value.lower())
    elif lower == "hostkey":
        b.host_keys.append(value)
    elif lower in _alg.SERVER_ALGORITHM_KEYWORDS:
        spec = _alg.SERVER_ALGORITHM_KEYWORDS[lower]
        try:
            names, lacking = _alg.assemble_algorithms(lower, value)
        except _alg.BadAlgorithmList as exc:
            raise ConfigError(exc.located(where)) from None
        if lacking and spec.field not in b.values:
            b.warnings.append(f"{where}: {spec.keyword}: {','.join(lacking)} not supported "
                              "by pysshd; ignored")
        _set(b, spec.field, names)
    elif lower == "hostcertificate":
        certificates = b.values.setdefault("host_certificates", ())
        assert isinstance(certificates, tuple)
        b.values["host_certificates"] = (*certificates, value)
    elif lower == "hostkeyagent":
        _set(b, "host_key_agent", None if value == "none" else value)
    elif lower == "acceptenv":
        for word in args:
            if not word or "=" in word:
                raise fatal("Invalid environment name.")
        _extend(b, "accept_env", args)
    elif lower == "authorizedkeysfile":
        _set(b, "authorized_keys_files", () if args == ["none"] else tuple(args))
    elif lower in ("pubkeyauthentication", "passwordauthentication"):
        if value.lower() not in ("yes", "no"):
            raise fatal(f'unsupported option "{value}".')
        on = value.lower() == "yes"
        _set(b, "password_authentication" if lower == "passwordauthentication"
             else "pubkey_authentication", on)
    elif lower == "maxauthtries":
        if not re.fullmatch(r"-?\d+", value):
            raise fatal("MaxAuthTries integer value invalid.")
        _set(b, "max_auth_tries", int(value))
    elif lower == "logingracetime":
        seconds = convtime(value)
        if seconds is None:
            raise fatal("invalid time value.")
        _set(b, "login_grace_time", seconds)
    elif lower == "loglevel":
        if value.upper() not in LOG_LEVELS:
            raise fatal(f"unsupported log level '{value}'")
        _set(b, "log_level", value.upper().replace("DEBUG1", "DEBUG"))
    elif lower == "pidfile":
        _set(b, "pid_file", value)
    elif lower == "trustedusercakeys":
        _set(b, "trusted_user_ca_keys", None if value == "none" else value)
    elif lower == "revokedkeys":
        _set(b, "revoked_keys", None if value == "none" else value)


def parse_config(text: str, path: str, *, options: Iterable[str] = (),
                 ports: Iterable[int] = (), host_keys: Iterable[str] = ()) -> ServerConfig:
    """The effective configuration: ``-o`` options first, then the file's lines.

    ``ports`` (``-p``) replace every Port line; ``host_keys`` (``-h``) come first.
    Raises ConfigError (fatal value) or BadOptions (unknown keywords).
    """
    b = _Builder()
    b.ports.extend(ports)
    b.ports_from_cmdline = bool(b.ports)
    b.host_keys.extend(host_keys)
    b.cmdline = True
    for option in options:
        process_line(b, option, "command-line", 0)
    b.cmdline = False
    if b.bad:
        raise BadCommandLineOption("\n".join(b.bad))
    for number, line in enumerate(text.splitlines(), 1):
        process_line(b, line, path, number)
    if b.bad:
        raise BadOptions(b.bad, path)
    return b.build()
