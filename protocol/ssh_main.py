"""``pyssh [user@]host [command]``: read the options, connect through protocol.client,
run the command with stdin/stdout/stderr streamed, and exit with its status.

Exit status is the remote command's, or 255 on a connection, host key or authentication
failure, with ssh's messages ("ssh: connect to host H port P: Connection refused",
"user@host: Permission denied (publickey).", "Host key verification failed.").
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Collection
from typing import TYPE_CHECKING

from keytools.errors import ConnectionClosed, ConnectionTimeout, SshError
from protocol.errors import (
    AuthenticationFailed,
    ConnectFailed,
    DisconnectReceived,
    HostKeyNotVerified,
)
from protocol.hostkey_policy import HostKeyPolicy, order_host_key_algorithms
from protocol.ssh_cli import USAGE, BadArgument, SshArgs, UsageError, parse_args, split_destination
from protocol.ssh_config import (
    SYSTEM_CONFIG,
    ConfigContext,
    ConfigError,
    Resolved,
    SshConfig,
    dump,
    finish,
    home_dir,
    local_user,
    tilde_expand,
)
from protocol.ssh_log import LEVELS, Log

if TYPE_CHECKING:
    from protocol.session_options import SessionPlan

PROGNAME = "ssh"
EXIT_FAILURE = 255


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    log = Log()
    try:
        args = parse_args(argv)
    except BadArgument as exc:
        log.fatal(exc.message)
        return EXIT_FAILURE
    except UsageError as exc:
        if exc.message:
            sys.stderr.write(f"{exc.message}\n")
        sys.stderr.write(USAGE)
        return EXIT_FAILURE
    if args.version:
        from protocol.version import SOFTWARE_VERSION

        sys.stderr.write(f"{SOFTWARE_VERSION} (OpenSSH-compatible client)\n")
        return 0
    try:
        resolved, ctx = configure(args)
    except ConfigError as exc:
        log.fatal(exc.message)
        return EXIT_FAILURE
    log.level = LEVELS.get(resolved.log_level, log.level)
    if args.log_file:
        try:
            log.open_file(args.log_file)
        except OSError as exc:
            log.fatal(f"Couldn't open logfile {args.log_file}: {exc.strerror}")
            return EXIT_FAILURE
    for warning in ctx.warnings:
        log.error(warning)
    for note in ctx.notes:
        log.verbose(note)
    if args.dump_config:
        try:
            text = dump(resolved)
        except ConfigError as exc:
            log.fatal(exc.message)
            return EXIT_FAILURE
        sys.stdout.write(text)
        sys.stdout.flush()
        return 0
    for ignored in args.ignored:
        if ignored in ("-f", "-s") or ignored.startswith("-e "):
            continue  # read by protocol/session_options.flag_values
        log.debug(f"pyssh: option {ignored} is not supported yet; ignored")
    try:
        return asyncio.run(session_main(args, resolved, log))
    except KeyboardInterrupt:
        return EXIT_FAILURE


def configure(args: SshArgs) -> tuple[Resolved, ConfigContext]:
    """Command line, then -F (or ~/.ssh/config and /etc/ssh/ssh_config), then defaults."""
    assert args.destination is not None
    user, host, uri_port = split_destination(args.destination)
    if not host:
        raise ConfigError("Could not resolve hostname : Name or service not known")
    # Host lines see the name as typed (readconf matches them case-sensitively).
    ctx = ConfigContext(host=host, original_host=host.lower(), local_user=local_user())
    config = SshConfig()
    login = args.login or user
    if login is not None:
        config.values["user"] = [login]
    port = args.port or uri_port
    if port is not None:
        config.values["port"] = [port]
    if args.quiet:
        config.values["loglevel"] = ["QUIET"]
    if args.verbose:
        config.values["loglevel"] = [f"DEBUG{min(args.verbose, 3)}"]
    for keyword, value in args.options:
        if keyword == "-o":
            parsed = _split_option(value)
            if parsed is None:
                continue
            keyword, words = parsed
        elif keyword in ("Ciphers", "MACs"):
            _check_flag_algorithms(keyword, value)
            config.values[keyword.lower()] = [value]  # -c/-m win, as -p does
            continue
        elif keyword == "IdentityFile" and not os.path.exists(tilde_expand(value)):
            # -i: ssh.c checks the file at once and drops a missing one.
            sys.stderr.write(f"Warning: Identity file {value} not accessible: "
                             "No such file or directory.\n")
            continue
        else:
            words = [value]
        if keyword.lower() in ("host", "match", "include"):
            raise ConfigError(f"command-line line 0: Directive '{keyword}' is not allowed "
                              "within a command-line option")
        config.apply(keyword, words, "command-line line 0", ctx)
    if args.forward_agent is not None:
        # -A/-a set ssh's forward_agent flag outright (the last of them wins, over any -o
        # ForwardAgent, before or after it); a socket path from -o stays as ssh keeps it.
        config.values["forwardagent"] = ["yes" if args.forward_agent else "no"]
    from protocol.session_options import flag_values  # -t -T -N -n -f -s -e win over -o

    config.values.update(flag_values(args))
    if args.config_file is not None and args.config_file != "none" \
            and not os.path.exists(args.config_file):
        raise ConfigError(f"Can't open user config file {args.config_file}: "
                          "No such file or directory")
    _read_files(config, args, ctx)
    from protocol.ssh_canon import canonicalize  # CanonicalizeHostname

    if canonicalize(config, ctx, host) or ctx.saw_final:
        ctx.final = True  # ssh reads everything again (Match canonical/final hold)
        _read_files(config, args, ctx)
    resolved = finish(config, host, host.lower())
    path = resolved.forward_agent_path
    if path is not None and not os.path.exists(path):
        # ssh.c stats the path once the options are final (even for -G).
        message = f"Cannot forward agent socket path \"{path}\": No such file or directory"
        from protocol.forward_spec import forward_options

        if forward_options(resolved.values).exit_on_forward_failure:
            raise ConfigError(message)
        ctx.warnings.append(message)
    return resolved, ctx


def _read_files(config: SshConfig, args: SshArgs, ctx: ConfigContext) -> None:
    if args.config_file is not None:
        if args.config_file != "none":
            config.read_file(args.config_file, ctx, user_file=True)
        return
    config.read_file(os.path.join(home_dir(), ".ssh", "config"), ctx, user_file=True)
    config.read_file(SYSTEM_CONFIG, ctx, user_file=False)


def _check_flag_algorithms(keyword: str, value: str) -> None:
    from protocol.ciphers import CIPHERS, MACS

    known, what = (CIPHERS, "cipher") if keyword == "Ciphers" else (MACS, "mac")
    names = value[1:] if value[:1] in "+^" else value
    if not names or any(n not in known for n in names.split(",")):
        raise ConfigError(f"Unknown {what} type '{value}'")


def _split_option(text: str) -> tuple[str, list[str]] | None:
    from protocol.ssh_config import split_line

    return split_line(text, "command-line line 0")


# -- connecting -------------------------------------------------------------------------


def algorithm_list(spec: str | None, default: tuple[str, ...], known: Collection[str],
                   what: str) -> tuple[str, ...]:
    """ssh's algorithm list syntax: a list replaces the default, "+list" appends to it,
    "-patterns" removes from it, "^list" puts first; ConfigError on unknown names."""
    from keytools.match import match_pattern_list

    if spec is None:
        return default
    head, body = (spec[0], spec[1:]) if spec[:1] in "+-^" else ("", spec)
    names = tuple(n for n in body.split(",") if n)
    if head == "-":
        return tuple(a for a in default if match_pattern_list(a, body) != 1)
    if not names or any(n not in known for n in names):
        raise ConfigError(f"Bad SSH2 {what} spec '{spec}'.")
    if head == "+":
        return default + tuple(n for n in names if n not in default)
    if head == "^":
        return names + tuple(a for a in default if a not in names)
    return names


#: ssh's default MAC order (myproposal.h KEX_CLIENT_MAC) without the umac MACs pyssh lacks;
#: the transport's own default puts the SHA-1 ETM MAC later.
CLIENT_MACS = ("hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com",
               "hmac-sha1-etm@openssh.com", "hmac-sha2-256", "hmac-sha2-512", "hmac-sha1")


def client_algorithms(r: Resolved) -> dict[str, tuple[str, ...]]:
    """The algorithm lists pyssh uses (and ``-G`` prints), by ssh -G keyword: ssh's
    defaults minus what pyssh lacks (sntrup761, umac, security-key host keys), with the
    Ciphers/MACs/KexAlgorithms/HostKeyAlgorithms specs applied; ConfigError on a bad one.
    PubkeyAcceptedAlgorithms and CASignatureAlgorithms are not configurable in pyssh:
    they are the key types pyssh can verify."""
    from protocol.ciphers import CIPHERS, MACS
    from protocol.kex import METHODS, Preferences
    from protocol.kex.hostkey import CERT_SUFFIX
    from protocol.kex.kexinit import DEFAULT_HOST_KEY_ALGORITHMS

    prefs = Preferences()
    known_host_algs = set(DEFAULT_HOST_KEY_ALGORITHMS) | {
        a.removesuffix(CERT_SUFFIX) for a in DEFAULT_HOST_KEY_ALGORITHMS}
    return {
        "ciphers": algorithm_list(r.ciphers, prefs.ciphers, CIPHERS, "cipher"),
        "hostkeyalgorithms": algorithm_list(r.host_key_algorithms, DEFAULT_HOST_KEY_ALGORITHMS,
                                            known_host_algs, "HostKeyAlgorithms"),
        "kexalgorithms": algorithm_list(r.kex, prefs.kex, METHODS, "KexAlgorithms"),
        "casignaturealgorithms": tuple(a for a in DEFAULT_HOST_KEY_ALGORITHMS
                                       if not a.endswith(CERT_SUFFIX)),
        "macs": algorithm_list(r.macs, CLIENT_MACS, MACS, "mac"),
        "pubkeyacceptedalgorithms": DEFAULT_HOST_KEY_ALGORITHMS,
    }


def _transport_config(algorithms: dict[str, tuple[str, ...]],
                      host_keys: tuple[str, ...]) -> object:
    from protocol.kex import Preferences
    from protocol.transport import TransportConfig

    return TransportConfig(algorithms=Preferences(
        kex=algorithms["kexalgorithms"], ciphers=algorithms["ciphers"],
        macs=algorithms["macs"], host_key=host_keys, compression=("none",)))


def _addresses(r: Resolved) -> list[str]:
    """The addresses to try in turn (of the -4/-6 family), as ssh resolves them first."""
    family = {"inet": socket.AF_INET, "inet6": socket.AF_INET6}.get(r.address_family,
                                                                     socket.AF_UNSPEC)
    try:
        infos = socket.getaddrinfo(r.hostname, r.port, family, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"{PROGNAME}: Could not resolve hostname {r.hostname}: "
                          f"{exc.strerror}") from None
    found: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in found:
            found.append(address)
    return found


async def session_main(args: SshArgs, r: Resolved, log: Log) -> int:
    known_files = r.user_known_hosts + r.global_known_hosts
    plan = _tty_notice(args, r, log)  # ssh decides (and says so) before connecting
    if plan is None:
        return EXIT_FAILURE
    try:
        algorithms = client_algorithms(r)
        host_algs = algorithms["hostkeyalgorithms"]
        if r.host_key_algorithms is None or r.host_key_algorithms[:1] in ("+", "-"):
            # sshconnect2.c: known_hosts order only while HostKeyAlgorithms is the
            # default, or the default with names appended ("+") or removed ("-").
            host_algs = order_host_key_algorithms(known_files, r.hostname, r.port, host_algs)
        config = _transport_config(algorithms, host_algs)
    except ConfigError as exc:
        log.error(exc.message)
        return EXIT_FAILURE
    policy = HostKeyPolicy(hostname=r.hostname, port=r.port, strict=r.strict_host_key_checking,
                           user_files=r.user_known_hosts, global_files=r.global_known_hosts,
                           batch_mode=r.batch_mode, log=log)
    from protocol.ssh_login import forward_agent_target, login

    try:
        conn, address = await login(
            r, log, policy=policy, transport_config=config,
            addresses=lambda: _addresses(r), config_file=args.config_file,
            verbose=args.verbose)
    except SshError as exc:
        _report(exc, r, log)
        return EXIT_FAILURE
    log.verbose(f"Authenticated to {r.hostname} ([{address}]:{r.port}) using "
                f"\"{conn.auth.method}\".")
    try:
        from protocol.forward_client import run_forwarding  # -L -R -D -W -A

        forwarded = await run_forwarding(conn.channels, r.values, log,
                                         agent=forward_agent_target(r))
        if forwarded is not None:
            return forwarded
        return await run_remote(conn, plan, log)
    except SshError as exc:
        _report(exc, r, log)
        return EXIT_FAILURE
    finally:
        await conn.close()


def _report(exc: SshError, r: Resolved, log: Log) -> None:
    """ssh's words for a failed connection."""
    if isinstance(exc, ConnectFailed):
        log.error(f"{PROGNAME}: connect to host {r.hostname} port {r.port}: {exc.reason}")
    elif isinstance(exc, ConnectionTimeout):
        log.error(f"{PROGNAME}: connect to host {r.hostname} port {r.port}: "
                  "Connection timed out")
    elif isinstance(exc, HostKeyNotVerified):
        log.fatal("Host key verification failed.")
    elif isinstance(exc, AuthenticationFailed):
        log.fatal(f"{r.user}@{r.hostname}: Permission denied ({','.join(exc.methods)}).")
    elif isinstance(exc, DisconnectReceived):
        log.info(f"Received disconnect from {r.hostname} port {r.port}:{exc.reason}: "
                 f"{exc.description}")
        log.info(f"Disconnected from {r.hostname} port {r.port}")
    elif isinstance(exc, ConnectionClosed):
        log.fatal(f"Connection closed by {r.hostname} port {r.port}")
    else:
        log.fatal(exc.message)


# -- the session ------------------------------------------------------------------------


async def run_remote(conn: object, plan: SessionPlan, log: Log) -> int:
    """The session (exec, shell, subsystem or none with -N), in protocol/session_client."""
    from protocol.session_client import run_session

    return await run_session(conn, plan, log)


def _tty_notice(args: SshArgs, r: Resolved, log: Log) -> SessionPlan | None:
    """ssh.c's decisions before connecting (pty, -f, -e), with its messages."""
    from protocol.session_options import SessionError, plan_session

    try:
        return plan_session(args, r, log)
    except SessionError as exc:
        if exc.message:
            log.fatal(exc.message)
        return None


def run(argv: list[str] | None = None) -> int:
    """The console script entry point: no traceback ever reaches the user."""
    try:
        return main(argv)
    except SshError as exc:
        sys.stderr.write(f"{PROGNAME}: {exc.message}\r\n")
        return EXIT_FAILURE


__all__ = ["CLIENT_MACS", "algorithm_list", "client_algorithms", "configure", "main", "run"]
