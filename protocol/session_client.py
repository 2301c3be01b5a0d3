"""pyssh's session after authentication, as ssh's ssh.c/clientloop.c run it.

``protocol.session_options.plan_session`` makes ssh's decisions before connecting;
``run_session`` then opens the session channel, sends
pty-req (TERM, window size, the local terminal's modes), env (SendEnv/SetEnv) and
exec/shell/subsystem pipelined as ssh does, puts the local terminal in raw mode, pumps
stdin/stdout/stderr with large reads, handles escapes (``~.`` ``~?`` ...), SIGWINCH,
ServerAliveInterval keepalives, -f, and returns ssh's exit status: the remote one, else
255 (remote killed by a signal, ``~.``, timeout, connection lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from keytools.errors import ConnectionClosed, SshError
from keytools.wire import Reader, Writer
from protocol.channels import EXTENDED_STDERR, ConnectionLayer, SessionChannel
from protocol.escape import (
    NO_ESCAPE,
    Action,
    Escape,
    EscapeFilter,
    echo_text,
    help_text,
    log_level_text,
)
from protocol.session_options import SessionPlan, env_requests
from protocol.ssh_log import DEBUG3, QUIET, Log
from protocol.tty import (
    RawMode,
    encode_modes,
    get_attrs,
    pty_request,
    terminal_type,
    window_change,
    window_size,
)

EXIT_FAILURE = 255
STDIN_CHUNK = 1 << 16
LEVEL_NAMES = ("QUIET", "FATAL", "ERROR", "INFO", "VERBOSE", "DEBUG1", "DEBUG2", "DEBUG3")
#: signals that end the session in order (ssh's signal_handler), unless ignored
QUIT_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM)

#: A hook run on the open session channel before the command starts (e.g. agent
#: forwarding's auth-agent-req@openssh.com, X11).
SessionSetup = Callable[[SessionChannel], Awaitable[None]]


# -- the channel --------------------------------------------------------------------------


class ClientSession(SessionChannel):
    """A session channel that notices eow@openssh.com (stop sending stdin)."""

    def __init__(self, layer: ConnectionLayer, local_id: int) -> None:
        super().__init__(layer, local_id)
        self.eow = False

    def on_request(self, name: str, r: Reader) -> bool:
        if name == "eow@openssh.com":
            self.eow = True
            return True
        return super().on_request(name, r)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _tcp_keepalive(conn: object) -> None:
    from protocol.client import Connection

    assert isinstance(conn, Connection)
    writer = getattr(conn.transport, "_writer", None)
    sock = writer.get_extra_info("socket") if writer is not None else None
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)


def fork_parent_exits() -> None:
    """fork(): the parent exits 0 at once, the child goes on in a new session, with the
    running asyncio loop (asyncio ties it to the pid that started it)."""
    loop = asyncio.get_running_loop()
    sys.stdout.flush()
    sys.stderr.flush()
    if os.fork() != 0:
        os._exit(0)
    asyncio.events._set_running_loop(loop)
    os.setsid()


def daemonize() -> None:
    """daemon(1, 1) as ssh -f does: the child keeps stdout/stderr, stdin is /dev/null."""
    fork_parent_exits()
    fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(fd, 0)
    os.close(fd)


@dataclass(frozen=True)
class _Quit:
    """Why the session loop ended: ``code`` is the exit status (None: the remote's),
    ``message`` what ssh says about it (at INFO)."""

    code: int | None
    message: str | None = None


# -- the session loop -------------------------------------------------------------------


class InteractiveSession:
    def __init__(self, conn: object, plan: SessionPlan, log: Log) -> None:
        from protocol.client import Connection

        assert isinstance(conn, Connection)
        self.conn = conn
        self.plan = plan
        self.log = log
        self.raw = RawMode(0)
        self.channel: ClientSession | None = None
        self.quit: asyncio.Future[_Quit] | None = None
        self.received_signal = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._stdin_task: asyncio.Task[None] | None = None

    # -- helpers ----------------------------------------------------------------------

    def _stop(self, reason: _Quit) -> None:
        if self.quit is not None and not self.quit.done():
            self.quit.set_result(reason)

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.append(task)
        return task

    def _stderr(self, text: str) -> None:
        with contextlib.suppress(OSError):
            _write_all(2, text.encode("utf-8", "surrogateescape"))

    # -- setup ------------------------------------------------------------------------

    async def open(self, setup: Sequence[SessionSetup]) -> bool:
        """Open the channel and send the requests (pipelined); False if the command
        could not be started (ssh's "exec request failed on channel 0")."""
        layer = self.conn.channels
        channel = ClientSession(layer, layer.allocate())
        await layer.open_channel(channel)
        self.channel = channel
        for hook in setup:
            await hook(channel)
        pending: list[Awaitable[bool]] = []
        if self.plan.tty:
            attrs = get_attrs(0)
            request = pty_request(terminal_type(), window_size(0), encode_modes(attrs))
            pending.append(channel.request("pty-req", request))
        for name, value in env_requests(self.plan, dict(os.environ)):
            self.log.debug(f"Sending env {name} = {value}")
            pending.append(channel.request("env", Writer().string(name).string(value)
                                           .getvalue(), want_reply=False))
        if self.plan.session_type == "subsystem":
            kind = "subsystem"
            self.log.debug(f"Sending subsystem: {self.plan.command}")
            start = channel.request(kind, Writer().string(self.plan.command).getvalue())
        elif self.plan.command:
            kind = "exec"
            self.log.debug(f"Sending command: {self.plan.command}")
            start = channel.request(kind, Writer().string(self.plan.command).getvalue())
        else:
            kind = "shell"
            start = channel.request(kind)
        tasks = [asyncio.ensure_future(p) for p in (*pending, start)]
        if self.plan.tty:
            self.raw.enter()  # as client_loop does, before the replies arrive
        results = await asyncio.gather(*tasks)
        if self.plan.tty and not results[0]:
            self.raw.leave()
            self.log.error(f"PTY allocation request failed on channel {channel.local_id}")
        if not results[-1]:
            self.log.error(f"{kind} request failed on channel {channel.local_id}")
            channel.close()
            return False
        return True

    # -- pumps ------------------------------------------------------------------------

    async def _pump_out(self, stream: int, fd: int) -> None:
        assert self.channel is not None
        broken = False
        while chunk := await self.channel.read(stream):
            if broken:
                continue
            try:
                _write_all(fd, chunk)
            except OSError:
                broken = True

    async def _pump_in(self) -> None:
        assert self.channel is not None
        channel = self.channel
        if self.plan.stdin_null:
            channel.send_eof()
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
        escapes = EscapeFilter(self.plan.escape_char if self.plan.tty else NO_ESCAPE)
        try:
            while chunk := await queue.get():
                if channel.eow:
                    continue  # the server wants no more input
                for item in escapes.feed(chunk):
                    if isinstance(item, Escape):
                        await self._escape(item)
                    else:
                        await channel.write(item)
            if not channel.eow:
                channel.send_eof()
        except SshError:
            return  # the command ended (or the channel closed) before reading all input

    def _received_mark(self) -> object:
        """Changes whenever a packet arrives from the server (the transport's incoming
        sequence number and per-key packet count); None if the transport hides them."""
        packets = getattr(self.conn.transport, "_in", None)
        if packets is None:
            return None
        return (getattr(packets, "seq", None), getattr(packets, "packets", None))

    async def _keepalive(self) -> None:
        """ServerAliveInterval as clientloop.c: keepalive@openssh.com only when nothing
        came from the server for a whole interval (any packet re-arms the timer and
        clears the count of unanswered ones); CountMax unanswered: give up."""
        loop = asyncio.get_running_loop()
        interval = float(self.plan.alive_interval)
        step = min(interval, 0.25)
        missed = 0
        mark = self._received_mark()
        due = loop.time() + interval

        async def ask() -> None:
            nonlocal missed
            with contextlib.suppress(SshError):
                await self.conn.channels.global_request("keepalive@openssh.com")
                if mark is None:  # (no packet counter to watch: the reply counts)
                    missed = 0

        while True:
            await asyncio.sleep(max(0.0, min(step, due - loop.time())))
            now = loop.time()
            seen = self._received_mark()
            if seen is not None and seen != mark:  # heard from the server: re-arm
                mark, missed, due = seen, 0, now + interval
                continue
            if now < due:
                continue
            if missed >= self.plan.alive_count_max:
                self._stop(_Quit(EXIT_FAILURE,
                                 f"Timeout, server {self.plan.host} not responding."))
                return
            missed += 1
            due = now + interval
            self._spawn(ask())

    # -- escapes ----------------------------------------------------------------------

    async def _escape(self, event: Escape) -> None:
        assert self.channel is not None
        action = event.action
        self._stderr(echo_text(event))
        if action is Action.DISCONNECT:
            self._stop(_Quit(None))
        elif action is Action.HELP:
            self._stderr(help_text(event.escape_char))
        elif action is Action.LIST:
            self._stderr(self._open_channels())
        elif action is Action.BREAK:
            await self.channel.request("break", Writer().uint32(1000).getvalue(),
                                       want_reply=False)
        elif action is Action.REKEY:
            self._spawn(self._rekey())
        elif action in (Action.LESS_VERBOSE, Action.MORE_VERBOSE):
            if not self.plan.log_to_stderr:
                self._stderr(f"{chr(event.escape_char)}{action.value} [Logging to syslog]\r\n")
                return
            if action is Action.LESS_VERBOSE and self.log.level > QUIET:
                self.log.level -= 1
            if action is Action.MORE_VERBOSE and self.log.level < DEBUG3:
                self.log.level += 1
            self._stderr(log_level_text(event, LEVEL_NAMES[self.log.level]))
        elif action is Action.SUSPEND:
            self._suspend()
        elif action is Action.BACKGROUND:
            await self._background(event)

    async def _rekey(self) -> None:
        with contextlib.suppress(SshError):
            await self.conn.transport.rekey()

    def _open_channels(self) -> str:
        """~#: ssh's channel_open_message, with the fields pyssh has."""
        channels = getattr(self.conn.channels, "_channels", {})  # the layer's open channels
        lines = ["The following connections are open:\r\n"]
        for c in sorted(channels.values(), key=lambda c: c.local_id):
            name = "client-session" if c is self.channel else c.kind
            lines.append(f"  #{c.local_id} {name} (t4 [{c.kind}] r{c.remote_id} "
                         f"i{3 if c.eof_sent else 0}/0 o{3 if c.eof_received else 0}/0 "
                         "e[write]/0 fd 0/1/2 sock -1 cc -1)\r\n")
        return "".join(lines)

    def _suspend(self) -> None:
        """~^Z: restore the terminal, stop ourselves; on SIGCONT go raw again and tell
        the server the (maybe changed) window size."""
        was_raw = self.raw.active
        self.raw.leave()
        os.kill(os.getpid(), signal.SIGTSTP)
        if was_raw:
            self.raw.enter()
        self._window_changed()

    async def _background(self, event: Escape) -> None:
        """~&: the parent exits 0; the child keeps the session with stdin at EOF."""
        assert self.channel is not None
        self.raw.leave()
        self._stderr(f"{chr(event.escape_char)}& [backgrounded]\n")
        fork_parent_exits()
        await self.channel.write(b"\x04")  # ssh's fake EOF for the remote tty
        if self._stdin_task is not None:
            self._stdin_task.cancel()  # the reader thread did not survive the fork

    def _window_changed(self) -> None:
        if self.channel is None or not self.plan.tty or self.channel.close_sent:
            return
        payload = window_change(window_size(0))
        self._spawn(self._request_quietly("window-change", payload))

    async def _request_quietly(self, name: str, payload: bytes) -> None:
        assert self.channel is not None
        with contextlib.suppress(SshError):
            await self.channel.request(name, payload, want_reply=False)

    def _on_signal(self, signum: int) -> None:
        self.received_signal = signum
        self._stop(_Quit(EXIT_FAILURE))

    # -- the loop ---------------------------------------------------------------------

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        installed: list[int] = []
        for signum in QUIT_SIGNALS:
            if signal.getsignal(signum) is signal.SIG_IGN:
                continue  # as ssh (and rsh): an ignored signal stays ignored
            loop.add_signal_handler(signum, self._on_signal, signum)
            installed.append(signum)
        loop.add_signal_handler(signal.SIGWINCH, self._window_changed)
        installed.append(signal.SIGWINCH)
        return installed

    async def _session_done(self) -> None:
        assert self.channel is not None
        await asyncio.gather(self._pump_out(0, 1), self._pump_out(EXTENDED_STDERR, 2))
        await self.channel.wait_closed()
        await self._other_channels_closed()
        self._stop(_Quit(None))

    async def _other_channels_closed(self) -> None:
        """clientloop.c goes on until no channel is open: forwarded connections (and the
        agent's) still open when the session ends are served until they close."""
        layer = self.conn.channels
        while True:
            channels = getattr(layer, "_channels", {})  # the layer's open channels
            waiting = [c for c in list(channels.values())
                       if c is not self.channel and not c.closed.is_set()]
            if not waiting:
                return
            waits = [asyncio.ensure_future(c.closed.wait()) for c in waiting]
            try:
                await asyncio.wait(waits, timeout=0.5, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()

    async def _connection_done(self) -> None:
        await self.conn.transport.wait_closed()
        error = self.conn.transport.error
        if error is not None and not isinstance(error, ConnectionClosed):
            raise error
        self._stop(_Quit(EXIT_FAILURE,
                         f"Connection to {self.plan.host} closed by remote host."))

    async def run(self, setup: Sequence[SessionSetup] = ()) -> int:
        loop = asyncio.get_running_loop()
        self.quit = loop.create_future()
        installed = self._install_signals(loop)
        try:
            if self.plan.session_type == "none":
                self._spawn(self._connection_done())
            elif not await self.open(setup):
                assert self.channel is not None
                with contextlib.suppress(SshError):
                    await self.channel.wait_closed()
                return EXIT_FAILURE
            else:
                self._stdin_task = self._spawn(self._pump_in())
                self._spawn(self._session_done())
            if self.plan.alive_interval > 0:
                self._spawn(self._keepalive())
            reason = await self._wait()
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)
            for task in self._tasks:
                task.cancel()
            self.raw.leave()
        return self._finish(reason)

    async def _wait(self) -> _Quit:
        """The first of: the quit future, or a task failing (the connection broke)."""
        assert self.quit is not None
        while True:
            waiting: set[asyncio.Future[object]] = {self.quit, *self._tasks}  # type: ignore[arg-type]
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if self.quit.done():
                return self.quit.result()
            for task in done:
                if task in self._tasks:
                    self._tasks.remove(task)
                exc = None if task.cancelled() else task.exception()
                if isinstance(exc, ConnectionClosed):
                    return _Quit(EXIT_FAILURE,
                                 f"Connection to {self.plan.host} closed by remote host.")
                if exc is not None:
                    raise exc

    def _finish(self, reason: _Quit) -> int:
        if self.plan.session_type == "none" and self.received_signal == signal.SIGTERM:
            return 0  # -N ended on purpose: no remote status to report
        if self.received_signal:
            self.log.verbose(f"Killed by signal {self.received_signal}.")
            return EXIT_FAILURE
        if reason.message is not None:
            self.log.info(reason.message)
            if reason.code is not None:
                return reason.code
        elif self.plan.tty:
            self.log.info(f"Connection to {self.plan.host} closed.")
        if reason.code is not None:
            return reason.code
        status = self.channel.exit_status if self.channel is not None else None
        return EXIT_FAILURE if status is None else status


async def run_session(conn: object, plan: SessionPlan, log: Log,
                      setup: Sequence[SessionSetup] = ()) -> int:
    """After authentication: -f, TCPKeepAlive, then the session; ssh's exit status."""
    if plan.fork:
        log.debug("forking to background")
        daemonize()
    if plan.tcp_keepalive:
        _tcp_keepalive(conn)
    return await InteractiveSession(conn, plan, log).run(setup)


__all__ = ["ClientSession", "InteractiveSession", "SessionSetup", "daemonize",
           "fork_parent_exits", "run_session"]
