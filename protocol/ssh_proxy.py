"""ProxyCommand and ProxyJump, as ssh does them (readconf.c parse_jump, ssh.c, sshconnect.c).

ProxyCommand runs ``exec command`` under $SHELL (or /bin/sh) with %h %p %r %n expanded;
SSH then runs over its stdin/stdout (one socketpair end), its stderr is ours. ProxyJump
``[user@]host[:port],...`` becomes the ProxyCommand ssh builds: this same program run as
``pyssh [-l user] [-p port] [-J earlier,hops] [-F file] [-v] -W '[%h]:%p' lasthop``, so
each hop is reached through the one before it. When the connection ends the proxy gets
SIGHUP, as ssh's ssh_kill_proxy_command.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from keytools.errors import SshError

#: How long a proxy may take to exit after SIGHUP before it is killed.
PROXY_EXIT_WAIT = 2.0


class ProxyError(SshError):
    """ProxyCommand/ProxyJump problems, in ssh's words (fatal, exit 255)."""


@dataclass(frozen=True)
class Hop:
    user: str | None
    host: str
    port: int | None

    def text(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{user}{host}{port}"


@dataclass(frozen=True)
class Jump:
    """A ProxyJump value: the hop pyssh connects through directly is the last one; the
    earlier ones (``extra``, as written) are handed to that hop's pyssh as -J."""

    hops: tuple[Hop, ...]
    extra: str | None

    @property
    def last(self) -> Hop:
        return self.hops[-1]

    def text(self) -> str:
        """How ssh -G prints it."""
        return (f"{self.extra}," if self.extra else "") + self.last.text()


def _port(text: str) -> int | None:
    if not text.isdigit() or not 0 < int(text) < 65536:
        return None
    return int(text)


def parse_hop(text: str) -> Hop | None:
    """``ssh://[user@]host[:port]`` or ``[user@]host[:port]`` (host may be [v6]); None if
    malformed (parse_ssh_uri / parse_user_host_port)."""
    if text.startswith("ssh://"):
        text = text[6:].rstrip("/")
    user, at, rest = text.rpartition("@")
    if at and not user:
        return None
    port: int | None = None
    if rest.startswith("["):
        close = rest.find("]")
        if close < 0:
            return None
        host, after = rest[1:close], rest[close + 1:]
        if after:
            if not after.startswith(":"):
                return None
            port = _port(after[1:])
            if port is None:
                return None
    else:
        host, colon, port_text = rest.partition(":")
        if colon:
            port = _port(port_text)
            if port is None:
                return None
    if not host:
        return None
    return Hop(user if at else None, host, port)


def parse_jump(value: str) -> Jump | str | None:
    """A ProxyJump value: a Jump, the string "none", or None when it is malformed."""
    value = value.strip()
    if value.lower() == "none":
        return "none"
    parts = value.split(",")
    hops = tuple(parse_hop(p) for p in parts)
    if not parts or any(h is None for h in hops):
        return None
    good = tuple(h for h in hops if h is not None)
    extra = value[:value.rfind(",")] if len(parts) > 1 else None
    return Jump(good, extra)


def own_command() -> str:
    """How to run this pyssh again from a shell (ssh uses argv[0], else "ssh")."""
    argv0 = sys.argv[0] if sys.argv else ""
    if "/" in argv0 and os.access(argv0, os.X_OK) and not argv0.endswith(".py"):
        return shlex.quote(argv0)
    code = "from protocol.cli import pyssh_main; raise SystemExit(pyssh_main())"
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"


def jump_command(jump: Jump, *, config_file: str | None, verbose: int) -> str:
    """The ProxyCommand ssh.c builds for ProxyJump (still with %h and %p in it)."""
    last = jump.last
    parts = [own_command()]
    if last.user:
        parts += ["-l", shlex.quote(last.user)]
    if last.port:
        parts += ["-p", str(last.port)]
    if jump.extra:
        parts += ["-J", shlex.quote(jump.extra)]
    if config_file is not None:
        parts += ["-F", shlex.quote(config_file)]
    if verbose:
        parts.append("-" + "v" * min(verbose, 3))
    parts += ["-W", "'[%h]:%p'", shlex.quote(last.host)]
    return " ".join(parts)


def check_jump_loop(jump: Jump, host: str, port: int, user: str) -> None:
    last = jump.last
    if last.host == host and (last.port or 22) == port and (last.user or user) == user:
        raise ProxyError(f"jumphost loop via {last.host}")


StreamPair = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def spawn_proxy(command: str) -> tuple[StreamPair, Callable[[], Awaitable[None]]]:
    """Start the (expanded) ProxyCommand; its stdin/stdout as streams, and how to stop it.

    The command's stdin and stdout are one end of a socketpair (ssh uses two pipes; a
    socket is the same to the command and gives the transport a single socket)."""
    import socket

    shell = os.environ.get("SHELL") or "/bin/sh"
    env = dict(os.environ)
    # A pyssh started as "python -c" (ProxyJump) must find this package again.
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    ours, theirs = socket.socketpair()
    try:
        # Plain Popen (no asyncio child watcher): the proxy is waited for in stop().
        proc = subprocess.Popen([shell, "-c", f"exec {command}"], stdin=theirs.fileno(),
                                stdout=theirs.fileno(), env=env)
    except OSError as exc:
        ours.close()
        raise ProxyError(f"Executing proxy command: {exc.strerror or exc}") from None
    finally:
        theirs.close()
    streams = await asyncio.open_connection(sock=ours, limit=1 << 20)

    async def stop() -> None:
        with contextlib.suppress(OSError, RuntimeError):
            streams[1].close()
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGHUP)
            try:
                await asyncio.to_thread(proc.wait, PROXY_EXIT_WAIT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await asyncio.to_thread(proc.wait)

    return streams, stop
