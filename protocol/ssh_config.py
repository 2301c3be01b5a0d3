"""ssh_config(5) for pyssh: ~/.ssh/config and /etc/ssh/ssh_config, read as ssh's readconf.c.

The first value of a keyword wins (command-line ``-o`` is read first, then the user's
file, then the system one); IdentityFile accumulates. ``Host`` and ``Match`` (all, host,
originalhost, user, localuser, exec, final/canonical on the second reading ssh does when
a file uses them) select blocks, ``Include`` reads files (globs, relative to ~/.ssh or
/etc/ssh) in place. ``finish`` fills in defaults and expands %-tokens, and
``dump`` (protocol/ssh_dump.py) prints the supported keys exactly as ``ssh -G`` does.

Keywords ssh knows but pyssh does not act on are kept and warned about ("Unsupported
option"), never a crash; a keyword ssh does not know is ssh's fatal "Bad configuration
option".
"""

from __future__ import annotations

import glob
import os
import pwd
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from keytools.errors import SshError
from keytools.match import match_hostname, match_pattern, match_pattern_list
from protocol.forward_spec import (
    FORWARD_KEYWORDS,
    apply_forward_keyword,
)

MAX_INCLUDE_DEPTH = 16
SYSTEM_CONFIG = "/etc/ssh/ssh_config"
#: OpenSSH 10's default identities (no DSA, no XMSS).
DEFAULT_IDENTITIES = ("~/.ssh/id_rsa", "~/.ssh/id_ecdsa", "~/.ssh/id_ecdsa_sk",
                      "~/.ssh/id_ed25519", "~/.ssh/id_ed25519_sk")
DEFAULT_USER_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
DEFAULT_GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")

#: The keywords pyssh acts on (lower case -> ssh's spelling).
SUPPORTED = {k.lower(): k for k in (
    "HostName", "Port", "User", "IdentityFile", "IdentitiesOnly", "StrictHostKeyChecking",
    "UserKnownHostsFile", "GlobalKnownHostsFile", "BatchMode", "ConnectTimeout", "LogLevel",
    "Ciphers", "MACs", "KexAlgorithms", "HostKeyAlgorithms", "AddressFamily", "BindAddress",
    "RequestTTY", "ForwardAgent", "StdinNull", "SessionType", "IdentityAgent",
)}
#: Keywords ssh accepts that pyssh ignores (with a warning).
KNOWN_UNSUPPORTED = frozenset(k.lower() for k in (
    "AddKeysToAgent", "CanonicalDomains", "CanonicalizeFallbackLocal", "CanonicalizeHostname",
    "CanonicalizeMaxDots", "CanonicalizePermittedCNAMEs", "CASignatureAlgorithms",
    "CertificateFile", "ChannelTimeout", "CheckHostIP", "ClearAllForwardings", "Compression",
    "ConnectionAttempts", "ControlMaster", "ControlPath", "ControlPersist", "DynamicForward",
    "EnableEscapeCommandline", "EnableSSHKeysign", "EscapeChar", "ExitOnForwardFailure",
    "FingerprintHash", "ForkAfterAuthentication", "ForwardX11", "ForwardX11Timeout",
    "ForwardX11Trusted", "GatewayPorts", "GSSAPIAuthentication", "GSSAPIDelegateCredentials",
    "HashKnownHosts", "HostbasedAcceptedAlgorithms", "HostbasedAuthentication",
    "HostKeyAlias", "IgnoreUnknown", "IPQoS", "KbdInteractiveAuthentication",
    "KbdInteractiveDevices", "KnownHostsCommand", "LocalCommand", "LocalForward", "LogVerbose",
    "NoHostAuthenticationForLocalhost", "NumberOfPasswordPrompts", "ObscureKeystrokeTiming",
    "PasswordAuthentication", "PermitLocalCommand", "PermitRemoteOpen", "PKCS11Provider",
    "PreferredAuthentications", "ProxyCommand", "ProxyJump", "ProxyUseFdpass",
    "PubkeyAcceptedAlgorithms", "PubkeyAcceptedKeyTypes", "PubkeyAuthentication", "RekeyLimit",
    "RemoteCommand", "RemoteForward", "RequiredRSASize", "RevokedHostKeys",
    "SecurityKeyProvider", "SendEnv", "ServerAliveCountMax", "ServerAliveInterval", "SetEnv",
    "StreamLocalBindMask", "StreamLocalBindUnlink", "SyslogFacility", "TCPKeepAlive",
    "Tag", "Tunnel", "TunnelDevice", "UpdateHostKeys", "VerifyHostKeyDNS", "VisualHostKey",
    "XAuthLocation", "Protocol", "UsePrivilegedPort", "UseRoaming", "Cipher",
))
_MULTI = frozenset(("identityfile",))
#: Session keywords protocol/session_options.py reads (and validates).
SESSION_KEYWORDS = ("EscapeChar", "SendEnv", "SetEnv", "ServerAliveInterval",
                    "ServerAliveCountMax", "TCPKeepAlive", "ForkAfterAuthentication",
                    "RequestTTY", "SessionType")
SUPPORTED.update({k.lower(): k for k in SESSION_KEYWORDS})
KNOWN_UNSUPPORTED = KNOWN_UNSUPPORTED - frozenset(SUPPORTED)
_SESSION_LOWER = frozenset(k.lower() for k in SESSION_KEYWORDS)
_ACCUMULATE = frozenset(("sendenv",))  # every line adds (and "-pattern" removes)
#: Authentication and connection keywords protocol/ssh_login.py acts on.
AUTH_KEYWORDS = ("PasswordAuthentication", "KbdInteractiveAuthentication",
                 "NumberOfPasswordPrompts", "PreferredAuthentications", "PubkeyAuthentication",
                 "KbdInteractiveDevices", "CertificateFile", "AddKeysToAgent", "ProxyCommand",
                 "ProxyJump", "HashKnownHosts", "UpdateHostKeys", "CanonicalizeHostname",
                 "CanonicalDomains", "CanonicalizeMaxDots", "CanonicalizeFallbackLocal")
SUPPORTED.update({k.lower(): k for k in AUTH_KEYWORDS})
KNOWN_UNSUPPORTED = KNOWN_UNSUPPORTED - frozenset(SUPPORTED)
#: Old names ssh still reads as another keyword.
ALIASES = {"challengeresponseauthentication": "kbdinteractiveauthentication",
           "skeyauthentication": "kbdinteractiveauthentication",
           "tisauthentication": "kbdinteractiveauthentication"}
#: Keywords whose argument is the rest of the line, unsplit (a shell command).
RAW_ARGUMENT = frozenset(("proxycommand",))
_PUBKEY = {"yes": "true", "true": "true", "no": "false", "false": "false",
           "unbound": "unbound", "host-bound": "host-bound"}
_UPDATE = {"yes": "true", "true": "true", "no": "false", "false": "false", "ask": "ask"}
_YES_NO = {"yes": "yes", "true": "yes", "no": "no", "false": "no"}
_STRICT = {"yes": "true", "true": "true", "no": "false", "false": "false", "off": "false",
           "ask": "ask", "accept-new": "accept-new"}
LOG_LEVELS = ("QUIET", "FATAL", "ERROR", "INFO", "VERBOSE", "DEBUG", "DEBUG1", "DEBUG2",
              "DEBUG3")


class ConfigError(SshError):
    """A fatal configuration problem, worded as ssh's (e.g. "Bad configuration option")."""


@dataclass
class ConfigContext:
    """What Host/Match lines are matched against while a file is read."""

    host: str  # the host as given (lower case), what Host patterns see
    original_host: str
    local_user: str
    warnings: list[str] = field(default_factory=list)
    #: like warnings, shown only with -v
    notes: list[str] = field(default_factory=list)
    #: the second reading ssh does when a file uses "Match final"
    final: bool = False
    saw_final: bool = False


class SshConfig:
    """Options as they are read: the first value of each keyword wins."""

    def __init__(self) -> None:
        self.values: dict[str, list[str]] = {}
        self.identity_files: list[str] = []

    def get(self, key: str, default: str | None = None) -> str | None:
        got = self.values.get(key)
        return got[0] if got else default

    def args(self, key: str) -> list[str] | None:
        return self.values.get(key)

    # -- reading --------------------------------------------------------------------

    def apply(self, keyword: str, args: list[str], where: str, ctx: ConfigContext) -> None:
        """One "keyword args" line (from a file or -o); ConfigError when ssh would die."""
        key = keyword.lower()
        key = ALIASES.get(key, key)
        if not args:
            raise ConfigError(f"{where}: no argument after keyword \"{key}\"")
        if key in FORWARD_KEYWORDS:  # forwarding keywords and -L/-R/-D/-W: forward_spec.py
            apply_forward_keyword(self.values, key, args, where)
            return
        if key in SUPPORTED:
            self._validate(key, args, where)
            if key == "forwardagent":
                _apply_forward_agent(self.values, args[0], where)
            elif key in _ACCUMULATE:
                self.values.setdefault(key, []).extend(args)
            elif key == "certificatefile":
                files = self.values.setdefault(key, [])
                if args[0] not in files:  # ssh ignores a repeated file
                    files.append(args[0])
            elif key in ("proxycommand", "proxyjump"):
                # The first of ProxyCommand and ProxyJump wins; the other is ignored.
                if "proxycommand" not in self.values and "proxyjump" not in self.values:
                    self.values[key] = list(args)
            elif key in _MULTI:
                if args[0] not in self.identity_files:  # ssh ignores a repeated file
                    self.identity_files.append(args[0])
            elif key not in self.values:
                self.values[key] = list(args)
            return
        if key in KNOWN_UNSUPPORTED:
            # Loud for -o (the user asked for it now), quiet (-v) for lines in files.
            target = ctx.warnings if where.startswith("command-line") else ctx.notes
            message = f"{where}: Unsupported option \"{keyword}\""
            if message not in target:
                target.append(message)
            return
        name, _, number = where.rpartition(" line ")
        raise ConfigError(f"{name}: line {number}: Bad configuration option: {key}")

    def _validate(self, key: str, args: list[str], where: str) -> None:
        value = args[0]
        if key == "port":
            if not value.isdigit() or not 0 < int(value) < 65536:
                raise ConfigError(f"{where}: Bad port '{value}'.")
        elif key in ("batchmode", "identitiesonly", "stdinnull"):
            if value.lower() not in _YES_NO:
                raise ConfigError(f"{where}: unsupported option \"{value}\".")
        elif key == "stricthostkeychecking":
            if value.lower() not in _STRICT:
                raise ConfigError(f"{where}: unsupported option \"{value}\".")
        elif key == "loglevel":
            if value.upper() not in LOG_LEVELS:
                raise ConfigError(f"{where}: unsupported log level '{value}'")
        elif key == "connecttimeout" and value.lower() != "none" and not value.isdigit():
            raise ConfigError(f"{where}: invalid time value.")
        elif key == "addkeystoagent":
            from protocol.ssh_login import parse_add_keys

            parse_add_keys(args, where)
        elif key in _AUTH_LOWER:
            _validate_auth(key, value, where)
        elif key in _SESSION_LOWER:
            from protocol.session_options import check_option

            check_option(key, args, where)

    def read_file(self, path: str, ctx: ConfigContext, *, user_file: bool,
                  depth: int = 0) -> None:
        """Read one file; a missing file is no error (as ssh for the default files)."""
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ConfigError(f"Can't open user config file {path}: {exc.strerror}") from None
        try:
            self.read_lines(lines, path, ctx, user_file=user_file, depth=depth)
        except ConfigError as exc:
            if (f"{path} line " not in exc.message and f"{path}: line " not in exc.message) \
                    or "terminating," in exc.message:
                raise
            # readconf.c reports a bad line, then gives up after the file.
            raise ConfigError(f"{exc.message}\r\n{path}: terminating, 1 bad configuration "
                              "options") from None

    def read_lines(self, lines: Iterable[str], path: str, ctx: ConfigContext, *,
                   user_file: bool, depth: int = 0) -> None:
        active = True
        for number, line in enumerate(lines, 1):
            where = f"{path} line {number}"
            parsed = split_line(line, where)
            if parsed is None:
                continue
            keyword, args = parsed
            key = keyword.lower()
            if key == "host":
                active = match_host_block(args, ctx.host)
            elif key == "match":
                active = self._match(args, ctx, where)
            elif not active:
                continue
            elif key == "include":
                self._include(args, ctx, user_file=user_file, depth=depth, where=where)
            else:
                self.apply(keyword, args, where, ctx)

    def _include(self, args: list[str], ctx: ConfigContext, *, user_file: bool, depth: int,
                 where: str) -> None:
        if depth >= MAX_INCLUDE_DEPTH:
            raise ConfigError(f"{where}: Include nesting too deep")
        base = os.path.join(home_dir(), ".ssh") if user_file else "/etc/ssh"
        for pattern in args:
            pattern = os.path.expanduser(pattern) if pattern.startswith("~") else pattern
            if pattern.startswith("~/"):
                pattern = os.path.join(home_dir(), pattern[2:])
            if not os.path.isabs(pattern):
                pattern = os.path.join(base, pattern)
            for path in sorted(glob.glob(pattern)):
                self.read_file(path, ctx, user_file=user_file, depth=depth + 1)

    def _match(self, args: list[str], ctx: ConfigContext, where: str) -> bool:
        """Match criteria, all of which must hold (each may be negated with '!')."""
        result = True
        i = 0
        while i < len(args):
            word = args[i]
            negate = word.startswith("!")
            attr = word[1:].lower() if negate else word.lower()
            i += 1
            if attr in ("all", "canonical", "final"):
                if attr != "all":
                    ctx.saw_final = True
                ok = attr == "all" or ctx.final
                if attr == "all" and (len(args) > 1):
                    raise ConfigError(f"{where}: '{word}' cannot be combined with other "
                                      "Match attributes")
            else:
                if i >= len(args):
                    raise ConfigError(f"{where}: Missing Match criteria for {attr}")
                arg = args[i]
                i += 1
                if attr == "host":
                    subject = self.get("hostname") or ctx.host
                    ok = match_hostname(expand_hostname(subject, ctx.host), arg) == 1
                elif attr == "originalhost":
                    ok = match_hostname(ctx.original_host, arg) == 1
                elif attr == "user":
                    ok = match_pattern_list(self.get("user") or ctx.local_user, arg) == 1
                elif attr == "localuser":
                    ok = match_pattern_list(ctx.local_user, arg) == 1
                elif attr == "exec":
                    ok = self._exec(arg, ctx)
                else:
                    raise ConfigError(f"{where}: Unsupported Match attribute {attr}")
            if ok == negate:
                result = False
        return result


    def _exec(self, command: str, ctx: ConfigContext) -> bool:
        """Match exec: the command (tokens expanded) run by /bin/sh exits 0."""
        import subprocess

        hostname = expand_hostname(self.get("hostname") or ctx.host, ctx.host)
        tokens = {"h": hostname, "n": ctx.original_host, "p": self.get("port") or "22",
                  "r": self.get("user") or ctx.local_user, "u": ctx.local_user,
                  "d": home_dir(), "i": str(os.getuid())}
        try:
            done = subprocess.run(["/bin/sh", "-c", expand_tokens(command, tokens)],
                                  stdin=subprocess.DEVNULL, check=False)
        except OSError:
            return False
        return done.returncode == 0


_AUTH_LOWER = frozenset(k.lower() for k in AUTH_KEYWORDS)
#: where ForwardAgent's socket path (or $VARIABLE) is kept in ``SshConfig.values``
FORWARD_AGENT_PATH = "forwardagent-path"


def _apply_forward_agent(values: dict[str, list[str]], value: str, where: str) -> None:
    """readconf.c's ForwardAgent: yes/no set the flag; anything else is a socket path
    (or $VARIABLE) that also sets the flag to yes. The flag and the path each keep their
    first value, independently (so "no" then "/path" keeps the flag off and the path)."""
    flag = _YES_NO.get(value.lower())
    if flag is None:
        _check_dollar(value, where)
        values.setdefault(FORWARD_AGENT_PATH, [value])
        flag = "yes"
    values.setdefault("forwardagent", [flag])


def _check_dollar(value: str, where: str) -> None:
    """readconf.c's checks of a socket path that may name environment variables (with
    misc.c's complaint first, as ssh prints it)."""
    import re

    problem = _dollar_problem(value)
    if problem is not None:
        raise ConfigError(f"{problem}\r\n{where}: Invalid environment expansion {value}.")
    if value.startswith("$") and not value.startswith("${") \
            and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value[1:]):
        raise ConfigError(f"{where}: Invalid environment name {value}.")


def _dollar_problem(text: str) -> str | None:
    """misc.c vdollar_percent_expand's error for ``text``, or None if it expands."""
    start = text.find("${")
    while start >= 0:
        end = text.find("}", start + 2)
        if end < 0:
            name = text[start + 2:]
            return (f"vdollar_percent_expand: environment variable '{name}' "
                    "missing closing '}'")
        name = text[start + 2:end]
        if name not in os.environ:
            return f"vdollar_percent_expand: env var ${{{name}}} has no value"
        start = text.find("${", end + 1)
    return None


def dollar_expand(text: str) -> str:
    """misc.c's dollar_expand: each ${NAME} becomes the environment variable's value
    (ConfigError when unterminated or unset); a bare $ is kept."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("${", i):
            end = text.find("}", i + 2)
            if end < 0:
                raise ConfigError(f"dollar_expand: unterminated variable in \"{text}\"")
            name = text[i + 2:end]
            got = os.environ.get(name)
            if got is None:
                raise ConfigError(f"env var ${{{name}}} has no value")
            out.append(got or "")
            i = end + 1
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def _validate_auth(key: str, value: str, where: str) -> None:
    """readconf.c's checks of the authentication/connection keywords' values."""
    choices = {"passwordauthentication": _YES_NO, "kbdinteractiveauthentication": _YES_NO,
               "hashknownhosts": _YES_NO, "pubkeyauthentication": _PUBKEY,
               "updatehostkeys": _UPDATE}.get(key)
    if choices is not None and value.lower() not in choices:
        raise ConfigError(f"{where}: unsupported option \"{value}\".")
    if key == "numberofpasswordprompts" and not value.isdigit():
        raise ConfigError(f"{where}: invalid integer value.")
    if key.startswith("canonical"):
        from protocol.ssh_canon import validate

        validate(key, [value], where)
    if key == "proxyjump":
        from protocol.ssh_proxy import parse_jump

        if parse_jump(value) is None:
            raise ConfigError(f"{where}: Invalid ProxyJump \"{value}\"")


def split_line(line: str, where: str) -> tuple[str, list[str]] | None:
    """``Keyword args`` or ``Keyword=args``; None for blank and comment lines."""
    text = line.strip(" \t\r\n")
    if not text or text.startswith("#"):
        return None
    end = 0
    while end < len(text) and text[end] not in " \t=":
        end += 1
    keyword, rest = text[:end], text[end:].lstrip(" \t")
    if rest.startswith("="):
        rest = rest[1:].lstrip(" \t")
    if keyword.lower() in RAW_ARGUMENT and rest:
        return keyword, [rest]  # a shell command: quotes are the shell's business
    return keyword, split_args(rest, where)


def split_args(text: str, where: str) -> list[str]:
    """Words separated by blanks; double or single quotes group, a '#' word ends the line."""
    args: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n or text[i] == "#":
            break
        word: list[str] = []
        while i < n and text[i] not in " \t":
            ch = text[i]
            if ch in "\"'":
                close = text.find(ch, i + 1)
                if close < 0:
                    raise ConfigError(f"{where}: invalid quotes")
                word.append(text[i + 1:close])
                i = close + 1
                continue
            if ch == "\\" and i + 1 < n and text[i + 1] in "\"'\\ ":
                word.append(text[i + 1])
                i += 2
                continue
            word.append(ch)
            i += 1
        args.append("".join(word))
    return args


def match_host_block(patterns: list[str], host: str) -> bool:
    """A Host line applies when a pattern matches and no negated one does (each pattern
    matched case-sensitively, as readconf.c's match_pattern: "Host Foo" is not "foo")."""
    matched = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern[1:] if negated else pattern
        if match_pattern(host, body):
            if negated:
                return False
            matched = True
    return matched


def home_dir() -> str:
    """The home directory as ssh finds it: the password database, not $HOME."""
    return pwd.getpwuid(os.getuid()).pw_dir


def local_user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def expand_hostname(value: str, host: str) -> str:
    """HostName takes %h (the host as given) and %%."""
    return expand_tokens(value, {"h": host})


def expand_tokens(text: str, tokens: dict[str, str]) -> str:
    """percent_expand: each %x from ``tokens``, %% a percent; others are errors."""
    from protocol.percent import BadPercent, expand_percent

    try:
        return expand_percent(text, tokens)
    except BadPercent as exc:
        if not exc.token:
            raise ConfigError(f"percent_expand: invalid format \"{text}\"") from None
        raise ConfigError(f"percent_expand: unknown key %{exc.token}") from None


def tilde_expand(path: str) -> str:
    if path == "~" or path.startswith("~/"):
        return home_dir() + path[1:]
    return os.path.expanduser(path) if path.startswith("~") else path


@dataclass(frozen=True)
class Resolved:
    """The options pyssh connects with, after defaults and %-token expansion."""

    host: str  # as given on the command line
    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...]  # as written (for -G)
    identity_paths: tuple[str, ...]  # expanded (tilde and tokens)
    identities_only: bool
    strict_host_key_checking: str  # true / false / ask / accept-new
    user_known_hosts: tuple[str, ...]
    global_known_hosts: tuple[str, ...]
    batch_mode: bool
    connect_timeout: int | None
    log_level: str
    #: algorithm specs as written (a list, or +list / -patterns / ^list)
    ciphers: str | None
    macs: str | None
    kex: str | None
    host_key_algorithms: str | None
    address_family: str
    bind_address: str | None
    identity_agent: str | None
    #: ForwardAgent's socket path, expanded (~, %-tokens, ${VAR}); "$VAR" kept as written
    forward_agent_path: str | None = None
    #: every supported keyword's raw value(s), first value wins (SendEnv: all lines)
    values: dict[str, list[str]] = field(default_factory=dict, compare=False, repr=False)


def finish(config: SshConfig, host: str, original_host: str) -> Resolved:
    """Fill in defaults and expand tokens, as ssh.c does after reading the files."""
    hostname = expand_hostname(config.get("hostname") or host, host).lower()
    port = int(config.get("port") or "22")
    luser = local_user()
    user = config.get("user") or luser
    home = home_dir()
    try:
        local_host = socket.gethostname()
    except OSError:
        local_host = "localhost"
    tokens = {"h": hostname, "p": str(port), "r": user, "u": luser, "d": home,
              "n": original_host, "i": str(os.getuid()), "l": local_host,
              "L": local_host.split(".")[0]}
    files = tuple(config.identity_files) or DEFAULT_IDENTITIES
    paths = tuple(expand_tokens(tilde_expand(f), tokens) for f in files if f != "none")
    user_kh = tuple(expand_tokens(tilde_expand(f), tokens)
                    for f in (config.args("userknownhostsfile") or DEFAULT_USER_KNOWN_HOSTS))
    global_kh = tuple(expand_tokens(tilde_expand(f), tokens) for f in
                      (config.args("globalknownhostsfile") or DEFAULT_GLOBAL_KNOWN_HOSTS))
    timeout = config.get("connecttimeout")
    agent = config.get("identityagent")
    fwd_agent = config.get(FORWARD_AGENT_PATH)
    return Resolved(
        host=host, hostname=hostname, port=port, user=user,
        identity_files=files, identity_paths=paths,
        identities_only=_YES_NO[(config.get("identitiesonly") or "no").lower()] == "yes",
        strict_host_key_checking=_STRICT[(config.get("stricthostkeychecking") or "ask").lower()],
        user_known_hosts=user_kh, global_known_hosts=global_kh,
        batch_mode=_YES_NO[(config.get("batchmode") or "no").lower()] == "yes",
        connect_timeout=None if timeout is None or timeout.lower() == "none" else int(timeout),
        log_level=(config.get("loglevel") or "INFO").upper(),
        ciphers=config.get("ciphers"), macs=config.get("macs"),
        kex=config.get("kexalgorithms"), host_key_algorithms=config.get("hostkeyalgorithms"),
        address_family=(config.get("addressfamily") or "any").lower(),
        bind_address=config.get("bindaddress"),
        identity_agent=None if agent is None else expand_tokens(tilde_expand(agent), tokens),
        forward_agent_path=None if fwd_agent is None
        else dollar_expand(expand_tokens(tilde_expand(fwd_agent), tokens)),
        values={k: list(v) for k, v in config.values.items()},
    )


# -G output lives in its own module; these names stay importable from here.
from protocol.ssh_dump import DUMPED_KEYS as DUMPED_KEYS  # noqa: E402
from protocol.ssh_dump import dump as dump  # noqa: E402
