"""``pysshd``: sshd's command line over protocol.listener and protocol.server.

``pysshd [-DdeqtTV] [-E log_file] [-f config_file] [-h host_key_file] [-o option]
[-p port]``. Messages and exit statuses are sshd's: 255 for a bad configuration or
command line, 1 when no host key can be loaded.
"""

from __future__ import annotations

import gc
import getopt
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keytools.errors import SshError

if TYPE_CHECKING:
    from protocol.listener import Listener
    from protocol.signer import Signer
    from protocol.sshd_config import ServerConfig

DEFAULT_CONFIG = "/etc/ssh/sshd_config"
#: where syslog(3) sends its messages
SYSLOG_SOCKET = "/dev/log"
USAGE = (
    "usage: pysshd [-46DdeGiqTtV] [-C connection_spec] [-c host_cert_file]\n"
    "            [-E log_file] [-f config_file] [-g login_grace_time]\n"
    "            [-h host_key_file] [-o option] [-p port] [-u len]"
)
VERSION = "pyssh 0.1 (OpenSSH-compatible pysshd)"
_VERBOSE = 15  # = protocol.sshd_config.VERBOSE (this module imports sshd_config lazily)
_LEVELS = {"QUIET": logging.CRITICAL + 10, "FATAL": logging.CRITICAL, "ERROR": logging.ERROR,
           "INFO": logging.INFO, "VERBOSE": _VERBOSE, "DEBUG": logging.DEBUG,
           "DEBUG2": logging.DEBUG, "DEBUG3": logging.DEBUG}


class Usage(SshError):
    """A bad command line: the usage text, exit 255."""


@dataclass
class Options:
    config_file: str = DEFAULT_CONFIG
    foreground: bool = False
    debug: int = 0
    stderr: bool = False
    quiet: bool = False
    test: bool = False
    dump: bool = False
    log_file: str | None = None
    ports: list[int] = field(default_factory=list)
    host_keys: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    connection_spec: str | None = None  # -C, for -T's Match evaluation


def _say(text: str) -> None:
    """A message as sshd's log.c writes it to stderr: each line ends in CR LF."""
    sys.stderr.write("".join(line + "\r\n" for line in text.split("\n")))
    sys.stderr.flush()


def parse_args(argv: list[str]) -> Options:
    try:
        pairs, rest = getopt.getopt(argv, "46C:c:DdE:eGf:g:h:iko:p:qrTtu:V")
    except getopt.GetoptError as exc:
        reason = "option requires an argument" if "requires" in exc.msg else "unknown option"
        raise Usage(f"{reason} -- {exc.opt}\n{VERSION}\n{USAGE}") from None
    if rest:
        raise Usage(f"Extra argument {rest[0]}.")
    opts = Options()
    for flag, value in pairs:
        if flag == "-f":
            opts.config_file = value
        elif flag == "-D":
            opts.foreground = True
        elif flag == "-d":
            opts.debug += 1
            opts.foreground = True
        elif flag == "-e":
            opts.stderr = True
        elif flag == "-E":
            opts.log_file = value
        elif flag == "-q":
            opts.quiet = True
        elif flag == "-t":
            opts.test = True
        elif flag == "-T":
            opts.dump = True
        elif flag == "-p":
            if not value.isdigit() or not 0 < int(value) < 65536:
                raise Usage(f"Bad port number: {value}")
            opts.ports.append(int(value))
        elif flag == "-h":
            opts.host_keys.append(value)
        elif flag == "-C":
            opts.connection_spec = value
        elif flag == "-o":
            opts.options.append(value)
        elif flag == "-g":
            opts.options.append(f"LoginGraceTime {value}")
        elif flag == "-V":
            raise Usage(f"{VERSION}\n{USAGE}")
    return opts


class SshdFormatter(logging.Formatter):
    """sshd's log.c line: "debug1: " before debug lines; through syslog also "error: " /
    "fatal: " and the tag ``pysshd[pid]: `` of the process that logs (a connection
    process logs its own pid, as syslog(3)'s LOG_PID does)."""

    def __init__(self, syslog: bool = False) -> None:
        super().__init__("%(message)s")
        self.syslog = syslog

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno <= logging.DEBUG:
            text = "debug1: " + text
        elif self.syslog and record.levelno >= logging.CRITICAL:
            text = "fatal: " + text
        elif self.syslog and record.levelno >= logging.ERROR:
            text = "error: " + text
        if self.syslog:
            text = f"pysshd[{record.process or os.getpid()}]: {text}"
        return text


def _setup_logging(opts: Options, level_name: str) -> None:
    """sshd's log_init(): -E appends to a file, -e and -d write to stderr (lines end in
    CR LF), otherwise syslog (/dev/log, facility AUTH), also with -D."""
    level = _LEVELS.get(level_name, logging.INFO)
    if opts.debug:
        level = logging.DEBUG
    if opts.quiet:
        level = _LEVELS["QUIET"]
    handler: logging.Handler
    if opts.log_file is not None or opts.stderr or opts.debug \
            or not os.path.exists(SYSLOG_SOCKET):
        # -E: sshd writes the stderr lines to the file (log_redirect_stderr_to())
        stream: logging.StreamHandler[Any] = logging.StreamHandler(sys.stderr) \
            if opts.log_file is None else logging.FileHandler(opts.log_file)
        stream.terminator = "\r\n"
        stream.setFormatter(SshdFormatter())
        handler = stream
    else:
        from logging.handlers import SysLogHandler

        class SshdSysLog(SysLogHandler):
            def mapPriority(self, levelName: str) -> str:  # logging's name
                return "info" if levelName == "VERBOSE" else super().mapPriority(levelName)

        handler = SshdSysLog(address=SYSLOG_SOCKET, facility=SysLogHandler.LOG_AUTH)
        handler.setFormatter(SshdFormatter(syslog=True))
    logging.addLevelName(_VERBOSE, "VERBOSE")
    root = logging.getLogger("pyssh")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _daemonize() -> None:
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    fd = os.open(os.devnull, os.O_RDWR)
    for n in (0, 1, 2):
        os.dup2(fd, n)
    if fd > 2:
        os.close(fd)


def _serve(config: ServerConfig, keys: list[Signer], pid_file: str | None,
           once: bool = False) -> int:
    """The listener (protocol.listener): one process per connection, privilege
    separation when we are root (protocol.privsep). ``once`` (-d): serve the first
    connection in this process, then exit, as sshd -d does."""
    from protocol.listener import Listener
    from protocol.server import Server

    if os.geteuid() == 0:
        from protocol.privsep import preload

        preload()  # the network child chroots: nothing can be imported after that
    listener = Listener(Server(config, keys), pid_file)
    listener.bind()
    # Every connection is a fork of this process: move what is loaded now out of the
    # collector's reach, so collections in the children do not copy those pages.
    gc.collect()
    gc.freeze()
    if once:
        return _serve_one(listener)
    return listener.run()


def _serve_one(listener: Listener) -> int:
    """sshd -d: accept one connection, close the listening sockets, serve it here."""
    import selectors
    import socket

    selector = selectors.DefaultSelector()
    for listen in listener.sockets:
        selector.register(listen, selectors.EVENT_READ)
    sock: socket.socket | None = None
    try:
        while sock is None:
            for key, _ in selector.select():
                ready = key.fileobj
                assert isinstance(ready, socket.socket)
                try:
                    sock, _peer = ready.accept()
                    break
                except (BlockingIOError, InterruptedError):
                    continue
    finally:
        selector.close()
        for listen in listener.sockets:
            listen.close()
    sock.setblocking(True)
    with sock:
        return listener.server.run_connection(sock)


def main(argv: list[str] | None = None) -> int:
    from protocol.sshd_config import (
        BadCommandLineOption,
        ConfigError,
        parse_config,
        resolve_listeners,
    )

    try:
        opts = parse_args(list(sys.argv[1:] if argv is None else argv))
    except Usage as exc:
        _say(exc.message)
        return 1
    if opts.connection_spec is not None:  # sshd checks -C while reading its options
        from protocol.sshd_match import parse_test_spec

        try:
            parse_test_spec(opts.connection_spec)
        except SshError as exc:
            sys.stderr.write(exc.message + "\n")
            return 1
    try:
        with open(opts.config_file, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except OSError as exc:
        sys.stderr.write(f"{opts.config_file}: {exc.strerror}\n")
        return 1
    try:
        config = parse_config(text, opts.config_file, options=opts.options, ports=opts.ports,
                              host_keys=opts.host_keys)
        config = resolve_listeners(config)  # process_queued_listen_addrs()
    except BadCommandLineOption as exc:
        _say(exc.message)
        return 1
    except SshError as exc:
        _say(exc.message)
        return 255
    for warning in config.warnings:
        if not opts.quiet:
            _say(warning)
    from protocol.server_policy import check_methods

    messages, unsatisfiable = check_methods(config)
    if messages:
        _say("\n".join(messages))
    if unsatisfiable:
        return 255
    if opts.dump:
        from protocol.sshd_config import dump_for_spec

        try:
            sys.stdout.write(dump_for_spec(config, opts.connection_spec))
        except ConfigError as exc:  # a Match line -T cannot decide: fatal, 255
            _say(exc.message)
            return 255
        except SshError as exc:  # a bad -C spec: sshd's fprintf, exit 1
            sys.stderr.write(exc.message + "\n")
            return 1
        return 0
    from protocol.host_keys import load_host_signers

    keys = load_host_signers(config, _say)
    if not keys:
        _say("pysshd: no hostkeys available -- exiting.")
        return 1
    if opts.test:
        return 0
    _setup_logging(opts, config.log_level)
    logging.getLogger("pyssh.sshd").debug("pysshd version %s", VERSION)  # as sshd's first
    if not opts.foreground:
        _daemonize()
    try:
        return _serve(config, keys, None if opts.debug else config.pid_file,
                      once=bool(opts.debug))
    except SshError as exc:
        logging.getLogger("pyssh.sshd").critical("%s", exc.message)
        print(exc.message, file=sys.stderr)
        return 255
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
