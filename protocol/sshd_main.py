"""``pysshd``: sshd's command line over protocol.server (unprivileged, current user only).

``pysshd [-DdeqtTV] [-E log_file] [-f config_file] [-h host_key_file] [-o option]
[-p port]``. Messages and exit statuses are sshd's: 255 for a bad configuration or
command line, 1 when no host key can be loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import getopt
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from keytools.errors import SshError

if TYPE_CHECKING:
    from keytools.private import PrivateKey
    from protocol.sshd_config import ServerConfig

DEFAULT_CONFIG = "/etc/ssh/sshd_config"
USAGE = (
    "usage: pysshd [-46DdeGiqTtV] [-C connection_spec] [-c host_cert_file]\n"
    "            [-E log_file] [-f config_file] [-g login_grace_time]\n"
    "            [-h host_key_file] [-o option] [-p port] [-u len]"
)
VERSION = "pyssh 0.1 (OpenSSH-compatible pysshd), unprivileged mode"
_LEVELS = {"QUIET": logging.CRITICAL + 10, "FATAL": logging.CRITICAL, "ERROR": logging.ERROR,
           "INFO": logging.INFO, "VERBOSE": logging.INFO, "DEBUG": logging.DEBUG,
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
        elif flag == "-o":
            opts.options.append(value)
        elif flag == "-g":
            opts.options.append(f"LoginGraceTime {value}")
        elif flag == "-V":
            raise Usage(f"{VERSION}\n{USAGE}")
    return opts


def _setup_logging(opts: Options, level_name: str) -> None:
    level = _LEVELS.get(level_name, logging.INFO)
    if opts.debug:
        level = logging.DEBUG
    if opts.quiet:
        level = _LEVELS["QUIET"]
    handler: logging.Handler
    if opts.log_file is not None:
        handler = logging.FileHandler(opts.log_file)
    elif opts.stderr or opts.debug or not os.path.exists("/dev/log"):
        handler = logging.StreamHandler(sys.stderr)
    else:
        from logging.handlers import SysLogHandler

        handler = SysLogHandler(address="/dev/log", facility=SysLogHandler.LOG_AUTH)
        handler.ident = f"pysshd[{os.getpid()}]: "
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("pyssh")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _load_host_keys(paths: tuple[str, ...]) -> list[PrivateKey]:
    from keytools.keyfile import load_private

    keys: list[PrivateKey] = []
    for path in paths:
        try:
            keys.append(load_private(path, None)[0])
        except SshError as exc:
            _say(f"Unable to load host key \"{path}\": {exc}")
    return keys


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


async def _serve(config: ServerConfig, keys: list[PrivateKey], pid_file: str | None) -> None:
    from protocol.server import Server

    server = Server(config, keys)
    await server.start()
    if pid_file is not None:
        with contextlib.suppress(OSError), open(pid_file, "w") as f:
            f.write(f"{os.getpid()}\n")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        logging.getLogger("pyssh.sshd").info("Received signal; terminating.")
    finally:
        await server.close()
        if pid_file is not None:
            with contextlib.suppress(OSError):
                os.unlink(pid_file)


def main(argv: list[str] | None = None) -> int:
    from protocol.sshd_config import BadCommandLineOption, dump_config, parse_config

    try:
        opts = parse_args(list(sys.argv[1:] if argv is None else argv))
    except Usage as exc:
        _say(exc.message)
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
    except BadCommandLineOption as exc:
        _say(exc.message)
        return 1
    except SshError as exc:
        _say(exc.message)
        return 255
    for warning in config.warnings:
        if not opts.quiet:
            _say(warning)
    if opts.dump:
        sys.stdout.write(dump_config(config))
        return 0
    keys = _load_host_keys(config.host_keys)
    if not keys:
        _say("pysshd: no hostkeys available -- exiting.")
        return 1
    if opts.test:
        return 0
    _setup_logging(opts, config.log_level)
    if not opts.foreground:
        _daemonize()
    try:
        asyncio.run(_serve(config, keys, None if opts.debug else config.pid_file))
    except SshError as exc:
        logging.getLogger("pyssh.sshd").critical("%s", exc.message)
        print(exc.message, file=sys.stderr)
        return 255
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
