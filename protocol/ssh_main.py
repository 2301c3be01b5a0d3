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
import threading
from collections.abc import Collection

from keytools.errors import ConnectionClosed, ConnectionTimeout, SshError
from protocol.agent_keys import KeySource, collect_keys
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

PROGNAME = "ssh"
EXIT_FAILURE = 255
STDIN_CHUNK = 1 << 16


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
        sys.stdout.write(dump(resolved))
        sys.stdout.flush()
        return 0
    for ignored in args.ignored:
        log.debug(f"pyssh: option {ignored} is not supported yet; ignored")
    if resolved.bind_address is not None:
        log.error("pyssh: BindAddress (-b) is not supported yet; ignored")
    if args.forward_agent:
        log.verbose("pyssh: agent forwarding (-A) is not supported yet")
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
    ctx = ConfigContext(host=host.lower(), original_host=host.lower(), local_user=local_user())
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
        config.values.setdefault("forwardagent", ["yes" if args.forward_agent else "no"])
    if args.config_file is not None and args.config_file != "none" \
            and not os.path.exists(args.config_file):
        raise ConfigError(f"Can't open user config file {args.config_file}: "
                          "No such file or directory")
    _read_files(config, args, ctx)
    if ctx.saw_final:  # ssh reads everything again for "Match final" blocks
        ctx.final = True
        _read_files(config, args, ctx)
    return finish(config, host, host.lower()), ctx


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


def _transport_config(r: Resolved, host_keys: tuple[str, ...]) -> object:
    from protocol.ciphers import CIPHERS, MACS
    from protocol.kex import METHODS, Preferences
    from protocol.transport import TransportConfig

    prefs = Preferences()
    return TransportConfig(algorithms=Preferences(
        kex=algorithm_list(r.kex, prefs.kex, METHODS, "KexAlgorithms"),
        ciphers=algorithm_list(r.ciphers, prefs.ciphers, CIPHERS, "cipher"),
        macs=algorithm_list(r.macs, prefs.macs, MACS, "mac"),
        host_key=host_keys, compression=("none",)))


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


def _agent_socket(r: Resolved) -> str | None:
    agent = r.identity_agent
    if agent is None or agent == "SSH_AUTH_SOCK":
        return os.environ.get("SSH_AUTH_SOCK")
    if agent.startswith("$"):
        return os.environ.get(agent[1:])
    return agent


async def session_main(args: SshArgs, r: Resolved, log: Log) -> int:
    from protocol.client import connect
    from protocol.kex.kexinit import DEFAULT_HOST_KEY_ALGORITHMS

    known_files = r.user_known_hosts + r.global_known_hosts
    if not args.no_command:
        _tty_notice(args, log)  # ssh decides (and says so) before connecting
    try:
        from protocol.kex.hostkey import CERT_SUFFIX

        known_host_algs = set(DEFAULT_HOST_KEY_ALGORITHMS) | {
            a.removesuffix(CERT_SUFFIX) for a in DEFAULT_HOST_KEY_ALGORITHMS}
        host_algs = order_host_key_algorithms(known_files, r.hostname, r.port, algorithm_list(
            r.host_key_algorithms, DEFAULT_HOST_KEY_ALGORITHMS, known_host_algs,
            "HostKeyAlgorithms"))
        config = _transport_config(r, host_algs)
        addresses = _addresses(r)
    except ConfigError as exc:
        log.error(exc.message)
        return EXIT_FAILURE
    policy = HostKeyPolicy(hostname=r.hostname, port=r.port, strict=r.strict_host_key_checking,
                           user_files=r.user_known_hosts, global_files=r.global_known_hosts,
                           batch_mode=r.batch_mode, log=log)
    keys = _keys(r, log)
    for signer in keys.signers:
        log.debug(f"Will attempt key: {signer.comment} {signer.key.type_label} "
                  f"{_fingerprint(signer.key)}{' agent' if signer.from_agent else ''}")
    try:
        for n, address in enumerate(addresses, 1):
            log.debug(f"Connecting to {r.hostname} [{address}] port {r.port}.")
            try:
                conn = await connect(
                    address, r.port, username=r.user, known_host_check=policy.check,
                    keys=keys.signers, config=config,  # type: ignore[arg-type]
                    timeout=None if r.connect_timeout is None else float(r.connect_timeout))
                break
            except ConnectFailed as exc:
                if n == len(addresses):
                    _report(exc, r, log)
                    return EXIT_FAILURE
                log.debug(f"connect to address {address} port {r.port}: {exc.reason}")
            except SshError as exc:
                _report(exc, r, log)
                return EXIT_FAILURE
        else:
            return EXIT_FAILURE
        log.verbose(f"Authenticated to {r.hostname} ([{address}]:{r.port}) using "
                    f"\"{conn.auth.method}\".")
        try:
            return await run_remote(conn, args, log)
        except SshError as exc:
            _report(exc, r, log)
            return EXIT_FAILURE
        finally:
            await conn.close()
    finally:
        keys.close()


def _fingerprint(key: object) -> str:
    from keytools.fingerprint import fingerprint
    from keytools.public import PublicKey

    assert isinstance(key, PublicKey)
    return fingerprint(key)


def _keys(r: Resolved, log: Log) -> KeySource:
    """Missing -i files were dropped already (with ssh's warning); missing configured or
    default files are skipped silently, as ssh does."""
    def ask(prompt: str) -> str | None:
        from keytools.cli.prompt import read_passphrase

        return read_passphrase(prompt)

    return collect_keys(r.identity_paths, identities_only=r.identities_only,
                        agent_socket=_agent_socket(r), explicit=frozenset(), log=log,
                        ask=None if r.batch_mode else ask)


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


async def run_remote(conn: object, args: SshArgs, log: Log) -> int:
    """Exec the command (or start a shell), stream the three streams, return the status."""
    from protocol.channels import EXTENDED_STDERR
    from protocol.client import Connection

    assert isinstance(conn, Connection)
    if args.no_command:
        await conn.transport.wait_closed()
        return 0
    session = await conn.open_session()
    if args.command:
        await session.exec(" ".join(args.command))
    elif not await session.request("shell"):
        log.fatal("shell request failed on channel 0")
        return EXIT_FAILURE

    async def pump_out(stream: int, fd: int) -> None:
        broken = False
        while chunk := await session.read(stream):
            if broken:
                continue
            try:
                _write_all(fd, chunk)
            except OSError:
                broken = True

    feeder = asyncio.create_task(_feed_stdin(session, args.stdin_null))
    try:
        await asyncio.gather(pump_out(0, 1), pump_out(EXTENDED_STDERR, 2))
        await session.wait_closed()
    finally:
        feeder.cancel()
    if session.exit_status is not None:
        return session.exit_status
    return EXIT_FAILURE


def _tty_notice(args: SshArgs, log: Log) -> None:
    """ssh.c's tty decision, for its messages; pyssh never allocates a pty yet."""
    want = args.tty > 0 or (not args.command and args.tty != -1)
    if not os.isatty(0) and args.tty < 2:
        if want:
            log.info("Pseudo-terminal will not be allocated because stdin is not a terminal.")
    elif want:
        log.verbose("pyssh: pseudo-terminals are not supported yet; running without one")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


async def _feed_stdin(session: object, stdin_null: bool) -> None:
    """Copy our stdin to the channel, then send EOF (at once with -n)."""
    from protocol.channels import SessionChannel

    assert isinstance(session, SessionChannel)
    if stdin_null:
        session.send_eof()
        return
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=8)

    def reader() -> None:
        # A daemon thread: a blocking read of a terminal must not keep pyssh alive.
        while True:
            try:
                chunk = os.read(0, STDIN_CHUNK)
            except OSError:
                chunk = b""
            try:
                asyncio.run_coroutine_threadsafe(queue.put(chunk), loop).result()
            except Exception:
                return
            if not chunk:
                return

    threading.Thread(target=reader, name="pyssh-stdin", daemon=True).start()
    try:
        while chunk := await queue.get():
            await session.write(chunk)
        session.send_eof()
    except SshError:
        return  # the command ended (or the channel closed) before reading all its input


def run(argv: list[str] | None = None) -> int:
    """The console script entry point: no traceback ever reaches the user."""
    try:
        return main(argv)
    except SshError as exc:
        sys.stderr.write(f"{PROGNAME}: {exc.message}\r\n")
        return EXIT_FAILURE


__all__ = ["algorithm_list", "configure", "main", "run"]
