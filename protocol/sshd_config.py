"""sshd_config for pysshd: the keywords we implement, and all of OpenSSH's others by name.

Parsing follows servconf.c: the first value of a single-valued keyword wins (so ``-o``
options, read first, override the file), ``Port``/``ListenAddress``/``HostKey``/
``AcceptEnv`` accumulate, a value sshd would refuse is fatal with its words
(``path line N: Badly formatted port number.``), an unknown keyword is counted and
reported as ``path: line N: Bad configuration option: X``. Keywords OpenSSH knows but
pysshd does not implement yet draw one warning each, naming them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from keytools.errors import SshError

DEFAULT_PORT = 22
LOG_LEVELS = ("QUIET", "FATAL", "ERROR", "INFO", "VERBOSE", "DEBUG", "DEBUG1", "DEBUG2",
              "DEBUG3")

#: keywords pysshd implements, in the order ``-T`` prints them (sshd's order)
SUPPORTED = (
    "Port", "ListenAddress", "LoginGraceTime", "MaxAuthTries", "PubkeyAuthentication",
    "PasswordAuthentication", "PidFile", "TrustedUserCAKeys", "RevokedKeys", "LogLevel",
    "AuthorizedKeysFile", "HostKey", "AcceptEnv",
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
    "X11UseLocalhost", "XAuthLocation", "AuthorizedKeysFile2", "KbdInteractiveDevices",
)
#: keywords sshd still recognises only to say they are gone
DEPRECATED = (
    "Protocol", "UsePrivilegeSeparation", "RSAAuthentication", "RhostsRSAAuthentication",
    "UseLogin", "KeyRegenerationInterval", "ServerKeyBits", "DSAAuthentication",
    "SkeyAuthentication", "PAMAuthenticationViaKbdInt", "VerifyReverseMapping",
    "ReverseMappingCheck", "ShowPatchLevel",
)
_SUPPORTED = {k.lower(): k for k in SUPPORTED}
_UNSUPPORTED = {k.lower(): k for k in KNOWN_UNSUPPORTED}
_DEPRECATED = {k.lower(): k for k in DEPRECATED}
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
    #: (address, port or None for every Port)
    listen_addresses: tuple[tuple[str, int | None], ...] = ()
    host_keys: tuple[str, ...] = ()
    authorized_keys_files: tuple[str, ...] = (".ssh/authorized_keys", ".ssh/authorized_keys2")
    pubkey_authentication: bool = True
    password_authentication: bool = False
    max_auth_tries: int = 6
    login_grace_time: int = 120
    log_level: str = "INFO"
    pid_file: str = "/run/sshd.pid"
    trusted_user_ca_keys: str | None = None
    revoked_keys: str | None = None
    accept_env: tuple[str, ...] = ()
    #: warnings met while parsing (unimplemented keywords), to log once at start
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def listeners(self) -> list[tuple[str, int]]:
        """Every (address, port) to bind: sshd's default is all addresses."""
        addresses = self.listen_addresses or (("::", None), ("0.0.0.0", None))
        out: list[tuple[str, int]] = []
        for host, port in addresses:
            for p in (port,) if port is not None else self.ports:
                out.append((host, p))
        return out


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

    def build(self) -> ServerConfig:
        kwargs: dict[str, object] = dict(self.values)
        if self.ports:
            kwargs["ports"] = tuple(self.ports)
        return ServerConfig(listen_addresses=tuple(self.listen), host_keys=tuple(self.host_keys),
                            accept_env=tuple(self.accept_env), warnings=tuple(self.warnings),
                            **kwargs)  # type: ignore[arg-type]


def _set(b: _Builder, name: str, value: object) -> None:
    b.values.setdefault(name, value)


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

    if b.in_match:
        return  # Match blocks are not implemented: their lines never apply
    if lower in _DEPRECATED:
        b.warnings.append(f"{where}: Deprecated option {keyword}")
        return
    if lower in _UNSUPPORTED:
        if lower == "match":
            b.in_match = True
        b.warnings.append(f"{where}: {_UNSUPPORTED[lower]} is not supported by pysshd yet; "
                          "ignored")
        return
    if lower not in _SUPPORTED:
        b.bad.append(f"{path}: line {number}: Bad configuration option: {keyword}")
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
    elif lower == "hostkey":
        b.host_keys.append(value)
    elif lower == "acceptenv":
        for word in args:
            if "=" in word:
                raise fatal(f"Invalid environment name in {keyword}")
        b.accept_env.extend(args)
    elif lower == "authorizedkeysfile":
        _set(b, "authorized_keys_files", () if args == ["none"] else tuple(args))
    elif lower in ("pubkeyauthentication", "passwordauthentication"):
        if value.lower() not in ("yes", "no"):
            raise fatal(f'unsupported option "{value}".')
        on = value.lower() == "yes"
        if lower == "passwordauthentication":
            if on:
                b.warnings.append(f"{where}: PasswordAuthentication is not supported by "
                                  "pysshd yet; only publickey is offered")
            _set(b, "password_authentication", False)
        else:
            _set(b, "pubkey_authentication", on)
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
    for option in options:
        process_line(b, option, "command-line", 0)
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
    lines += [f"hostkey {k}" for k in config.host_keys]
    lines += [f"acceptenv {e}" for e in config.accept_env]
    return "\n".join(lines) + "\n"
