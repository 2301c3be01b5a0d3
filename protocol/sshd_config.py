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
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from keytools.errors import SshError
from protocol.forward_policy import POLICY_KEYWORDS, apply_policy_keyword, dump_policy, policy_of
from protocol.kex import kexinit as _alg
from protocol.penalty import (
    LIMIT_KEYWORDS,
    MaxStartups,
    PenaltyConfig,
    dump_limits,
    limit_line,
    penalties_text,
)
from protocol.session_config import SESSION_KEYWORDS, dump_session, session_line

if TYPE_CHECKING:
    from protocol.sshd_match import ConnectionInfo

DEFAULT_PORT = 22
LOG_LEVELS = ("QUIET", "FATAL", "ERROR", "INFO", "VERBOSE", "DEBUG", "DEBUG1", "DEBUG2",
              "DEBUG3")
#: the logging level of sshd's verbose() lines (between logging.DEBUG and INFO): shown
#: from LogLevel VERBOSE on, as in sshd
VERBOSE = 15

#: keywords pysshd implements, in the order ``-T`` prints them (sshd's order)
SUPPORTED = (
    "Port", "ListenAddress", "AddressFamily", "LoginGraceTime", "MaxAuthTries",
    "PubkeyAuthentication", "PasswordAuthentication", "PidFile", "TrustedUserCAKeys",
    "RevokedKeys", "LogLevel",
    "AuthorizedKeysFile", "HostKey", "AcceptEnv",
    "Ciphers", "MACs", "HostKeyAgent", "KexAlgorithms", "CASignatureAlgorithms",
    "HostKeyAlgorithms", "PubkeyAcceptedAlgorithms", "HostCertificate",
    # authentication policy (protocol/server_auth.py, protocol/password.py)
    "UsePAM", "PermitRootLogin", "KbdInteractiveAuthentication", "StrictModes",
    "PermitEmptyPasswords", "Banner", "ForceCommand", "AuthorizedPrincipalsFile",
    "AuthorizedKeysCommand", "AuthorizedKeysCommandUser", "AuthorizedPrincipalsCommand",
    "AuthorizedPrincipalsCommandUser", "AllowUsers", "DenyUsers", "AllowGroups",
    "DenyGroups", "AuthenticationMethods", "Match", "Include",
)
#: sshd_config keywords of OpenSSH 9.x/10.x (and Debian's) that pysshd accepts but ignores
KNOWN_UNSUPPORTED = (
    "AddressFamily", "AllowAgentForwarding", "AllowGroups", "AllowStreamLocalForwarding",
    "AllowTcpForwarding", "AllowUsers", "AuthenticationMethods", "AuthorizedKeysCommand",
    "AuthorizedKeysCommandUser", "AuthorizedPrincipalsCommand",
    "AuthorizedPrincipalsCommandUser", "AuthorizedPrincipalsFile", "Banner",
    "CASignatureAlgorithms", "ChallengeResponseAuthentication", "ChannelTimeout",
    "ChrootDirectory", "Ciphers", "ClientAliveCountMax", "ClientAliveInterval", "Compression",
    "DebianBanner", "DenyGroups", "DenyUsers", "DisableForwarding", "ExposeAuthInfo",
    "FingerprintHash", "ForceCommand", "GatewayPorts", "GSSAPIAuthentication",
    "GSSAPICleanupCredentials", "GSSAPIKexAlgorithms", "GSSAPIKeyExchange",
    "GSSAPIStoreCredentialsOnRekey", "GSSAPIStrictAcceptorCheck", "HostbasedAcceptedAlgorithms",
    "HostbasedAcceptedKeyTypes", "HostbasedAuthentication", "HostbasedUsesNameFromPacketOnly",
    "HostCertificate", "HostKeyAgent", "HostKeyAlgorithms", "IgnoreRhosts",
    "IgnoreUserKnownHosts", "Include", "IPQoS", "KbdInteractiveAuthentication",
    "KerberosAuthentication", "KerberosGetAFSToken", "KerberosOrLocalPasswd",
    "KerberosTicketCleanup", "KexAlgorithms", "LogVerbose", "MACs", "Match", "MaxSessions",
    "MaxStartups", "ModuliFile", "PermitEmptyPasswords", "PermitListen", "PermitOpen",
    "PermitRootLogin", "PermitTTY", "PermitTunnel", "PermitUserEnvironment", "PermitUserRC",
    "PerSourceMaxStartups", "PerSourceNetBlockSize", "PerSourcePenalties",
    "PerSourcePenaltyExemptList", "PrintLastLog", "PrintMotd", "PubkeyAcceptedAlgorithms",
    "PubkeyAcceptedKeyTypes", "PubkeyAuthOptions", "RDomain", "RefuseConnection", "RekeyLimit",
    "RequiredRSASize", "SecurityKeyProvider", "SetEnv", "SshdAuthPath", "SshdSessionPath",
    "StreamLocalBindMask", "StreamLocalBindUnlink", "StrictModes", "Subsystem",
    "SyslogFacility", "TCPKeepAlive", "KeepAlive", "UnusedConnectionTimeout",
    "UseDNS", "UsePAM", "VersionAddendum", "X11DisplayOffset", "X11Forwarding",
    "X11UseLocalhost", "XAuthLocation", "GSSAPICleanupCreds",
)
#: keywords sshd still recognises only to say they are gone ("Deprecated option X")
DEPRECATED = (
    "UsePrivilegeSeparation", "RSAAuthentication", "RhostsRSAAuthentication",
    "RhostsAuthentication", "UseLogin", "KeyRegenerationInterval", "ServerKeyBits",
    "PAMAuthenticationViaKbdInt", "VerifyReverseMapping", "ReverseMappingCheck",
    "AuthorizedKeysFile2", "CheckMail", "PermitBlacklistedKeys",
)
#: keywords sshd knows but was built without ("Unsupported option X")
BUILT_WITHOUT = (
    "AFSTokenPassing", "KerberosTGTPassing", "GSSAPIUseSessionCredCache",
    "GSSUseSessionCCache",
)
#: keywords sshd ignores without a word (lower case)
IGNORED = ("protocol",)
#: other names sshd accepts for a keyword
ALIASES = {
    "challengeresponseauthentication": "kbdinteractiveauthentication",
    "skeyauthentication": "kbdinteractiveauthentication",
    "dsaauthentication": "pubkeyauthentication", "hostdsakey": "hostkey",
    "keepalive": "tcpkeepalive", "hostbasedacceptedkeytypes": "hostbasedacceptedalgorithms",
    "gssapicleanupcreds": "gssapicleanupcredentials",
}
#: keywords not allowed inside a Match block (servconf.c's SSHCFG_GLOBAL ones; Subsystem
#: is allowed since OpenSSH 9.4, whose behaviour pysshd follows)
GLOBAL_ONLY = frozenset(k.lower() for k in (
    "AddressFamily", "AFSTokenPassing", "CheckMail", "Ciphers", "Compression", "DebianBanner",
    "DSAAuthentication", "FingerprintHash", "GSSAPICleanupCredentials", "GSSAPICleanupCreds",
    "GSSAPIKexAlgorithms", "GSSAPIKeyExchange", "GSSAPIStoreCredentialsOnRekey",
    "GSSAPIStrictAcceptorCheck", "GSSAPIUseSessionCredCache", "GSSUseSessionCCache",
    "HostCertificate", "HostDSAKey", "HostKey", "HostKeyAgent", "HostKeyAlgorithms",
    "IgnoreUserKnownHosts", "KeepAlive", "KerberosGetAFSToken", "KerberosOrLocalPasswd",
    "KerberosTGTPassing", "KerberosTicketCleanup", "KexAlgorithms", "KeyRegenerationInterval",
    "ListenAddress", "LoginGraceTime", "MACs", "MaxStartups", "ModuliFile",
    "PAMAuthenticationViaKbdInt", "PermitBlacklistedKeys", "PermitUserEnvironment",
    "PerSourceMaxStartups", "PerSourceNetBlockSize", "PerSourcePenalties",
    "PerSourcePenaltyExemptList", "PidFile", "Port", "PrintLastLog", "PrintMotd", "Protocol",
    "ReverseMappingCheck", "RhostsAuthentication", "SecurityKeyProvider", "ServerKeyBits",
    "SshdAuthPath", "SshdSessionPath", "StrictModes", "SyslogFacility",
    "TCPKeepAlive", "UseDNS", "UseLogin", "UsePAM", "UsePrivilegeSeparation",
    "VerifyReverseMapping", "VersionAddendum", "XAuthLocation",
))
#: PermitRootLogin values; -T prints the first name of each meaning
PERMIT_ROOT_LOGIN = {"without-password": "prohibit-password",
                     "prohibit-password": "prohibit-password",
                     "forced-commands-only": "forced-commands-only", "yes": "yes", "no": "no"}
#: AuthenticationMethods names (auth2_methods_valid())
AUTH_METHODS = ("publickey", "password", "keyboard-interactive", "hostbased",
                "gssapi-with-mic", "none")
_SUPPORTED = {k.lower(): k for k in SUPPORTED}
_SUPPORTED.update({k: v.keyword for k, v in _alg.SERVER_ALGORITHM_KEYWORDS.items()})
_SUPPORTED.update(LIMIT_KEYWORDS)  # pre-auth limits: protocol/penalty.py
_UNSUPPORTED = {k.lower(): k for k in KNOWN_UNSUPPORTED if k.lower() not in _SUPPORTED}
_DEPRECATED = {k.lower(): k for k in DEPRECATED}
_BUILT_WITHOUT = {k.lower(): k for k in BUILT_WITHOUT}
_TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ConfigError(SshError):
    """A value sshd would refuse: fatal, worded ``path line N: reason``."""


class BadOptions(SshError):
    """Unknown keywords: each reported, then ``path: terminating, N bad configuration
    options``."""

    def __init__(self, lines: list[str], path: str) -> None:
        super().__init__("\n".join(
            [*lines, f"{path}: terminating, {len(lines)} bad configuration options"]))


class BadCommandLineOption(ConfigError):
    """An unknown keyword in a ``-o`` option: sshd reports it and exits 1."""


@dataclass(frozen=True)
class ServerConfig:
    ports: tuple[int, ...] = (DEFAULT_PORT,)
    #: (address, port or None for every Port); numeric once ``resolve_listeners`` ran
    listen_addresses: tuple[tuple[str, int | None], ...] = ()
    #: AddressFamily: any, inet or inet6
    address_family: str = "any"
    host_keys: tuple[str, ...] = ()
    authorized_keys_files: tuple[str, ...] = (".ssh/authorized_keys", ".ssh/authorized_keys2")
    pubkey_authentication: bool = True
    password_authentication: bool = True
    max_auth_tries: int = 6
    login_grace_time: int = 120
    log_level: str = "INFO"
    pid_file: str = "/run/sshd.pid"
    trusted_user_ca_keys: str | None = None
    revoked_keys: str | None = None
    accept_env: tuple[str, ...] = ()
    # algorithm keywords (protocol/kex/kexinit.py) and host keys (protocol/host_keys.py)
    ciphers: tuple[str, ...] = _alg.SERVER_DEFAULT_CIPHERS
    macs: tuple[str, ...] = _alg.SERVER_DEFAULT_MACS
    kex_algorithms: tuple[str, ...] = _alg.SERVER_DEFAULT_KEX
    host_key_algorithms: tuple[str, ...] = _alg.SERVER_DEFAULT_HOST_KEY_ALGORITHMS
    pubkey_accepted_algorithms: tuple[str, ...] = _alg.SERVER_DEFAULT_PUBKEY_ALGORITHMS
    ca_signature_algorithms: tuple[str, ...] = _alg.SERVER_DEFAULT_CA_SIGNATURE_ALGORITHMS
    host_certificates: tuple[str, ...] = ()
    host_key_agent: str | None = None
    # authentication policy (protocol/server_auth.py)
    use_pam: bool = False
    permit_root_login: str = "prohibit-password"
    kbd_interactive_authentication: bool = True
    strict_modes: bool = True
    permit_empty_passwords: bool = False
    banner: str | None = None
    force_command: str | None = None
    authorized_principals_file: str | None = None
    authorized_keys_command: str | None = None
    authorized_keys_command_user: str | None = None
    authorized_principals_command: str | None = None
    authorized_principals_command_user: str | None = None
    allow_users: tuple[str, ...] = ()
    deny_users: tuple[str, ...] = ()
    allow_groups: tuple[str, ...] = ()
    deny_groups: tuple[str, ...] = ()
    #: AuthenticationMethods lists, each a tuple of methods; () is "any"
    authentication_methods: tuple[tuple[str, ...], ...] = ()
    # forwarding (protocol/forward_policy.py; None permits: any)
    allow_tcp_forwarding: str = "yes"
    allow_streamlocal_forwarding: str = "yes"
    allow_agent_forwarding: bool = True
    disable_forwarding: bool = False
    gateway_ports: int = 0
    permit_open: tuple[str, ...] | None = None
    permit_listen: tuple[str, ...] | None = None
    # pre-auth limits (protocol/penalty.py, enforced by protocol/listener.py)
    max_startups: MaxStartups = field(default_factory=MaxStartups)
    per_source_penalties: PenaltyConfig = field(default_factory=PenaltyConfig)
    per_source_penalty_exempt_list: str | None = None
    per_source_net_block_size: tuple[int, int] = (32, 128)
    per_source_max_startups: int | None = None
    # sessions (protocol/session_config.py, protocol/server_session.py)
    max_sessions: int = 10
    print_motd: bool = True
    permit_tty: bool = True
    permit_user_rc: bool = True
    permit_user_environment: str = "no"
    subsystems: tuple[tuple[str, str], ...] = ()
    client_alive_interval: int = 0
    client_alive_count_max: int = 3
    #: (line, path, number) from the first Match line on, replayed per connection
    match_lines: tuple[tuple[str, str, int], ...] = field(default=(), compare=False)
    #: warnings met while parsing (unimplemented keywords), to log once at start
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def for_connection(self, ci: ConnectionInfo) -> ServerConfig:
        """This configuration with the Match blocks that ``ci`` matches applied
        (parse_server_match_config()). Raises ConfigError for a Match line sshd refuses
        at that point (a criterion the ``-T`` spec lacks)."""
        if not self.match_lines:
            return self
        b = _Builder()
        b.active = False
        b.connection = ci
        for line, path, number in self.match_lines:
            process_line(b, line, path, number)
        overlay = dict(b.values)
        overlay.update({name: tuple(items) for name, items in b.lists.items() if items})
        if "subsystems" in overlay:
            overlay["subsystems"] = _merge_subsystems(self.subsystems, overlay["subsystems"])
        return replace(self, **overlay)  # type: ignore[arg-type]

    def listeners(self) -> list[tuple[str, int]]:
        """Every (address, port) to bind: sshd's default is all addresses."""
        addresses = self.listen_addresses or _WILDCARDS[self.address_family]
        out: list[tuple[str, int]] = []
        for host, port in addresses:
            for p in (port,) if port is not None else self.ports:
                out.append((host, p))
        return out


#: the addresses sshd listens on without a ListenAddress, by AddressFamily
_WILDCARDS: dict[str, tuple[tuple[str, int | None], ...]] = {
    "any": (("::", None), ("0.0.0.0", None)), "inet": (("0.0.0.0", None),),
    "inet6": (("::", None),)}
ADDRESS_FAMILIES = ("any", "inet", "inet6")


def resolve_listen(addresses: Iterable[tuple[str, int | None]],
                   family: str) -> tuple[tuple[str, int | None], ...]:
    """process_queued_listen_addrs(): each ListenAddress host resolved (getaddrinfo,
    AI_PASSIVE) to its numeric addresses of AddressFamily; fatal as in sshd when a
    host has none ("bad addr or host: ::1 (Address family for hostname not
    supported)")."""
    import socket

    hint = {"inet": socket.AF_INET, "inet6": socket.AF_INET6}.get(family, socket.AF_UNSPEC)
    out: list[tuple[str, int | None]] = []
    for host, port in addresses:
        try:
            infos = socket.getaddrinfo(host, port, hint, socket.SOCK_STREAM, 0,
                                       socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise ConfigError(f"bad addr or host: {host} ({exc.strerror})") from None
        except (UnicodeError, ValueError):
            raise ConfigError(f"bad addr or host: {host} (Name or service not known)") \
                from None
        for info in infos:
            numeric = (str(info[4][0]), port)
            if info[0] in (socket.AF_INET, socket.AF_INET6) and numeric not in out:
                out.append(numeric)
    return tuple(out)


def resolve_listeners(config: ServerConfig) -> ServerConfig:
    """``config`` with its ListenAddress hosts resolved for AddressFamily, as sshd does
    once the file is read (pysshd_main calls it; parse_config itself never looks up a
    name). Raises ConfigError."""
    return replace(config, listen_addresses=resolve_listen(config.listen_addresses,
                                                           config.address_family))


def _merge_subsystems(base: tuple[tuple[str, str], ...],
                      matched: object) -> tuple[tuple[str, str], ...]:
    """servconf_merge_subsystems(): a Subsystem of a matching Match block replaces the
    global one of that name, or is added after them."""
    assert isinstance(matched, tuple)
    merged = dict(base)
    for name, command in matched:
        merged[name] = command
    return tuple(merged.items())


def _subsystem_defined(values: dict[str, object], name: str) -> bool:
    defined = values.get("subsystems", ())
    return isinstance(defined, tuple) and any(item[0] == name for item in defined)


def convtime(text: str) -> int | None:
    """sshd's convtime(): ``90``, ``1m30s``, ``2h``; None if malformed."""
    if not text:
        return None
    total = 0
    for m in re.finditer(r"(\d+)([sSmMhHdDwW]?)|(.)", text):
        if m.group(3) is not None:
            return None
        total += int(m.group(1)) * _TIME_UNITS[m.group(2).lower()]
    return total if total < 2**31 else None


def split_args(text: str) -> list[str] | None:
    """argv_split(): blank-separated words, double quotes group; None if unbalanced."""
    words: list[str] = []
    i = 0
    while i < len(text):
        if text[i] in " \t":
            i += 1
            continue
        if text[i] == '"':
            end = text.find('"', i + 1)
            if end < 0:
                return None
            words.append(text[i + 1 : end])
            i = end + 1
            continue
        j = i
        while j < len(text) and text[j] not in " \t":
            j += 1
        words.append(text[i:j])
        i = j
    return words


def _port(value: str) -> int | None:
    if not value.isdigit() or not 0 < int(value) < 65536:
        return None
    return int(value)


def _listen_address(value: str, fatal: Callable[[str], ConfigError]) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address."""
    m = re.fullmatch(r"\[([^\]]+)\](?::(.*))?", value)
    if m is not None:
        host, port_text = m.group(1), m.group(2)
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    else:
        host, port_text = value, None
    if not host:
        raise fatal("bad address:port usage")
    if port_text is None:
        return host, None
    port = _port(port_text)
    if port is None:
        raise fatal("bad port number")
    return host, port


class _Builder:
    """Mutable state while reading: first values and accumulated lists."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}
        self.ports: list[int] = []
        self.ports_from_cmdline = False
        self.listen: list[tuple[str, int | None]] = []
        self.host_keys: list[str] = []
        self.accept_env: list[str] = []
        self.warnings: list[str] = []
        self.bad: list[str] = []
        self.in_match = False
        #: lines apply (False inside a Match block that does not match)
        self.active = True
        #: None at start-up; the connection when Match blocks are replayed
        self.connection: ConnectionInfo | None = None
        self.cmdline = False
        #: keywords that accumulate over lines (AllowUsers, ...), by field name
        self.lists: dict[str, list[object]] = {}
        self.match_lines: list[tuple[str, str, int]] = []
        self.unimplemented: dict[str, list[str]] = {}
        self.depth = 0  # Include nesting

    def build(self) -> ServerConfig:
        kwargs: dict[str, object] = dict(self.values)
        if self.ports:
            kwargs["ports"] = tuple(self.ports)
        kwargs.update({name: tuple(items) for name, items in self.lists.items()})
        warnings = list(self.warnings)
        if self.unimplemented:
            where = "; ".join(f"{k} ({', '.join(v)})" for k, v in self.unimplemented.items())
            warnings.append(f"pysshd: keywords not implemented yet, ignored: {where}")
        return ServerConfig(listen_addresses=tuple(self.listen),
                            host_keys=tuple(self.host_keys),
                            warnings=tuple(warnings), match_lines=tuple(self.match_lines),
                            **kwargs)  # type: ignore[arg-type]


def _set(b: _Builder, name: str, value: object) -> None:
    """The first value wins; lines of an inactive Match block are only checked."""
    if b.active:
        b.values.setdefault(name, value)


def _extend(b: _Builder, name: str, items: Iterable[object]) -> None:
    """Keywords whose lines accumulate (AcceptEnv, AllowUsers, ...)."""
    items = list(items)
    if b.active:
        b.lists.setdefault(name, []).extend(items)


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


def _listen_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def dump_config(config: ServerConfig) -> str:
    """``-T``: the effective values of the implemented keywords, as sshd prints them."""
    lines = [f"port {p}" for p in config.ports]
    lines.append(f"addressfamily {config.address_family}")
    lines += [f"listenaddress {_listen_text(h, p)}" for h, p in config.listeners()]
    lines += [
        f"logingracetime {config.login_grace_time}",
        f"maxauthtries {config.max_auth_tries}",
        f"pubkeyauthentication {'yes' if config.pubkey_authentication else 'no'}",
        f"passwordauthentication {'yes' if config.password_authentication else 'no'}",
        f"pidfile {config.pid_file}",
        f"trustedusercakeys {config.trusted_user_ca_keys or 'none'}",
        f"revokedkeys {config.revoked_keys or 'none'}",
        f"loglevel {config.log_level}",
        f"authorizedkeysfile {' '.join(config.authorized_keys_files) or 'none'}",
    ]
    lines += [f"ciphers {','.join(config.ciphers)}", f"macs {','.join(config.macs)}",
              f"hostkeyagent {config.host_key_agent or 'none'}",
              f"kexalgorithms {','.join(config.kex_algorithms)}",
              f"casignaturealgorithms {','.join(config.ca_signature_algorithms)}",
              f"hostkeyalgorithms {','.join(config.host_key_algorithms)}",
              f"pubkeyacceptedalgorithms {','.join(config.pubkey_accepted_algorithms)}"]
    lines += [f"hostkey {k}" for k in config.host_keys]
    lines += [f"hostcertificate {c}" for c in config.host_certificates]
    lines += [f"acceptenv {e}" for e in config.accept_env]
    lines += _policy_dump(config)
    lines += dump_policy(policy_of(config))
    lines += dump_session(config)
    limits = dump_limits(config)
    if not any(line.startswith("persourcepenalties ") for line in limits):
        # OpenSSH 9.8+ always prints these (the form is 10.0's)
        limits += [f"persourcepenalties {penalties_text(config.per_source_penalties)}",
                   "persourcepenaltyexemptlist "
                   f"{config.per_source_penalty_exempt_list or 'none'}"]
    lines += limits
    return "\n".join(lines) + "\n"


def dump_for_spec(config: ServerConfig, spec: str | None) -> str:
    """``-T [-C spec]``: sshd always replays the Match blocks in test mode, against
    the spec's connection (or an empty one: then no criterion matches)."""
    from protocol.sshd_match import ConnectionInfo, parse_test_spec

    ci = parse_test_spec(spec) if spec is not None else ConnectionInfo(test=True)
    return dump_config(config.for_connection(ci))


# --- authentication policy keywords -------------------------------------------------

_POLICY = frozenset((
    "usepam", "permitrootlogin", "kbdinteractiveauthentication", "strictmodes",
    "permitemptypasswords", "banner", "forcecommand", "authorizedprincipalsfile",
    "authorizedkeyscommand", "authorizedkeyscommanduser", "authorizedprincipalscommand",
    "authorizedprincipalscommanduser", "allowusers", "denyusers", "allowgroups",
    "denygroups", "authenticationmethods",
))
_FLAGS = {"usepam": "use_pam", "kbdinteractiveauthentication": "kbd_interactive_authentication",
          "strictmodes": "strict_modes", "permitemptypasswords": "permit_empty_passwords"}


def _rest_of_line(rest: str) -> str:
    """ForceCommand and the *Command keywords take the whole line, as written."""
    return rest.strip(" \t")


def _policy_line(b: _Builder, keyword: str, lower: str, rest: str,
                 fatal: Callable[[str], ConfigError]) -> None:
    from protocol.sshd_match import match_user

    args = split_args(rest)
    if args is None:
        raise fatal("invalid quotes")
    value = args[0] if args else ""
    if lower in _FLAGS:
        if value.lower() not in ("yes", "no"):
            raise fatal(f'unsupported option "{value}".')
        _set(b, _FLAGS[lower], value.lower() == "yes")
    elif lower == "permitrootlogin":
        if value.lower() not in PERMIT_ROOT_LOGIN:
            raise fatal(f'unsupported option "{value}".')
        _set(b, "permit_root_login", PERMIT_ROOT_LOGIN[value.lower()])
    elif lower in ("banner", "authorizedprincipalsfile"):
        name = "banner" if lower == "banner" else "authorized_principals_file"
        _set(b, name, None if value.lower() == "none" else value)
    elif lower == "forcecommand":
        _set(b, "force_command", _rest_of_line(rest))
    elif lower in ("authorizedkeyscommand", "authorizedprincipalscommand"):
        command = _rest_of_line(rest)
        if not command.startswith("/") and command.lower() != "none":
            raise fatal(f"{keyword} must be an absolute path")
        name = lower.replace("authorized", "authorized_").replace("command", "_command")
        if name not in b.values and b.active:
            b.values[name] = None if command.lower() == "none" else command
    elif lower in ("authorizedkeyscommanduser", "authorizedprincipalscommanduser"):
        name = lower.replace("authorized", "authorized_").replace("commanduser",
                                                                  "_command_user")
        _set(b, name, value)
    elif lower in ("allowusers", "denyusers"):
        for arg in args:
            if not arg or match_user(None, None, None, arg) == -1:
                raise fatal(f'invalid {keyword} pattern: "{arg}"')
        _extend(b, "allow_users" if lower == "allowusers" else "deny_users", args)
    elif lower in ("allowgroups", "denygroups"):
        for arg in args:
            if not arg:
                raise fatal(f"empty {keyword} pattern")
        _extend(b, "allow_groups" if lower == "allowgroups" else "deny_groups", args)
    elif lower == "authenticationmethods":
        lists: list[tuple[str, ...]] = []
        for arg in args:
            if arg == "any":
                if lists or len(args) > 1:
                    raise fatal(f'"any" must appear alone in {keyword}')
                continue
            methods = tuple(arg.split(","))
            for method in methods:
                if method.split(":", 1)[0] not in AUTH_METHODS[:-1]:
                    raise ConfigError(f'Unknown authentication method "{method}" in list\n'
                                      f"{fatal(f'invalid {keyword} method list.').message}")
            lists.append(methods)
        _set(b, "authentication_methods", tuple(lists))


def _policy_dump(config: ServerConfig) -> list[str]:
    """-T lines of the policy keywords (sshd prints them in several places; tests
    compare them as a set)."""
    def yn(flag: bool) -> str:
        return "yes" if flag else "no"

    # newer sshd prints the current name, prohibit-password (9.2 its alias,
    # without-password)
    root = config.permit_root_login
    lines = [
        f"usepam {yn(config.use_pam)}",
        f"permitrootlogin {root}",
        f"kbdinteractiveauthentication {yn(config.kbd_interactive_authentication)}",
        f"strictmodes {yn(config.strict_modes)}",
        f"permitemptypasswords {yn(config.permit_empty_passwords)}",
        f"banner {config.banner or 'none'}",
        f"forcecommand {config.force_command or 'none'}",
        f"authorizedprincipalsfile {config.authorized_principals_file or 'none'}",
        f"authorizedkeyscommand {config.authorized_keys_command or 'none'}",
        f"authorizedkeyscommanduser {config.authorized_keys_command_user or 'none'}",
        f"authorizedprincipalscommand {config.authorized_principals_command or 'none'}",
        "authorizedprincipalscommanduser "
        f"{config.authorized_principals_command_user or 'none'}",
    ]
    for name, values in (("allowusers", config.allow_users), ("denyusers", config.deny_users),
                         ("allowgroups", config.allow_groups),
                         ("denygroups", config.deny_groups)):
        lines += [f"{name} {v}" for v in values]
    methods = " ".join(",".join(m) for m in config.authentication_methods) or "any"
    lines.append(f"authenticationmethods {methods}")
    return lines
