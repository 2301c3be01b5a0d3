"""pysshd's listener: accept, admit (PerSourcePenalties, MaxStartups), fork per connection.

As sshd's server_accept_loop(): the listener is a small poll loop with no asyncio and
no connection state of its own. Each accepted connection first passes the penalty table
and MaxStartups' random early drop (a dropped client reads "Not allowed at this time"),
then gets its own process, which builds a fresh event loop and serves it
(``Server.run_connection``). Every connection process holds the write end of a startup
pipe: it writes one byte when its user has authenticated, and the listener stops counting
it as a startup; a process that ends before that is reaped, and its exit status (login
grace exceeded, authentication attempted, crash, other) may penalise its source.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import selectors
import signal
import socket
from dataclasses import dataclass

from keytools.errors import SshError
from protocol.penalty import (
    EXIT_CHILD_CRASH,
    EXIT_LOGIN_GRACE,
    PenaltyTable,
    penalty_for_status,
    should_drop,
)
from protocol.server import Server

log = logging.getLogger("pyssh.sshd")

LISTEN_BACKLOG = 128
DROP_MESSAGE = b"Not allowed at this time\r\n"
AUTH_DONE = b"\x01"


@dataclass
class _Child:
    pid: int
    pipe: int | None
    address: str
    ident: str


def _ip(sockaddr: object) -> tuple[str, int]:
    if isinstance(sockaddr, tuple) and len(sockaddr) >= 2:
        host = str(sockaddr[0])
        return host.removeprefix("::ffff:") if "." in host else host, int(sockaddr[1])
    return "UNKNOWN", 0


class Listener:
    """The accept loop of a daemon pysshd."""

    def __init__(self, server: Server, pid_file: str | None = None) -> None:
        self.server = server
        config = server.config
        self.pid_file = pid_file
        self.max_startups = config.max_startups
        self.per_source_max = config.per_source_max_startups
        self.penalties = PenaltyTable(config.per_source_penalties,
                                      config.per_source_penalty_exempt_list,
                                      config.per_source_net_block_size)
        self.sockets: list[socket.socket] = []
        self.children: dict[int, _Child] = {}
        self._pipes: dict[int, int] = {}  # pipe fd -> pid
        self._selector = selectors.DefaultSelector()
        self._stop: int | None = None
        self._sigchld = False
        self._throttling = False
        self._dropped = 0
        self._wake: tuple[int, int] = (-1, -1)

    # -- set-up ---------------------------------------------------------------------

    def bind(self) -> None:
        """Bind every ListenAddress/Port; fatal only if none binds."""
        for host, port in self.server.config.listeners():
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((host, port))
                sock.listen(LISTEN_BACKLOG)
            except OSError as exc:
                sock.close()
                log.error("Bind to port %d on %s failed: %s.", port, host,
                          exc.strerror or exc)
                continue
            sock.setblocking(False)
            self.sockets.append(sock)
            log.info("Server listening on %s port %d.", host, port)
        if not self.sockets:
            raise SshError("Cannot bind any address.")

    def _on_signal(self, signum: int, frame: object) -> None:
        if signum == signal.SIGCHLD:
            self._sigchld = True
        else:
            self._stop = signum

    # -- the loop -------------------------------------------------------------------

    def run(self) -> int:
        """Serve until SIGTERM, SIGINT or SIGHUP; returns the exit status."""
        wake_r, wake_w = self._wake = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        old_wakeup = signal.set_wakeup_fd(wake_w)
        handlers = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        self._selector.register(wake_r, selectors.EVENT_READ, "wake")
        for sock in self.sockets:
            self._selector.register(sock, selectors.EVENT_READ, "listen")
        if self.pid_file is not None:
            with contextlib.suppress(OSError), open(self.pid_file, "w") as f:
                f.write(f"{os.getpid()}\n")
        try:
            while self._stop is None:
                if self._sigchld:
                    self._sigchld = False
                    self._reap()
                for key, _ in self._selector.select():
                    if key.data == "wake":
                        with contextlib.suppress(OSError):
                            os.read(wake_r, 512)
                    elif key.data == "listen":
                        self._accept(key.fileobj)  # type: ignore[arg-type]
                    else:
                        self._startup_pipe(int(key.fd))
            log.info("Received signal %d; terminating.", self._stop)
        finally:
            for sock in self.sockets:
                sock.close()
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            os.close(wake_r)
            os.close(wake_w)
            if self.pid_file is not None:
                with contextlib.suppress(OSError):
                    os.unlink(self.pid_file)
        return 0

    @property
    def startups(self) -> int:
        """Connections not yet authenticated (sshd's children_active)."""
        return len(self.children)

    def _accept(self, listen: socket.socket) -> None:
        while True:
            try:
                sock, peer = listen.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno not in (errno.ECONNABORTED, errno.EAGAIN):
                    log.error("accept: %s", exc.strerror)
                return
            sock.setblocking(True)
            try:
                self._admit(sock, peer)
            finally:
                sock.close()

    def _drop(self, sock: socket.socket, reason: str, level: int) -> None:
        address, port = _ip(sock.getpeername())
        local, local_port = _ip(sock.getsockname())
        log.log(level, "drop connection #%d from [%s]:%d on [%s]:%d %s", self.startups,
                address, port, local, local_port, reason)
        with contextlib.suppress(OSError):
            sock.send(DROP_MESSAGE, socket.MSG_DONTWAIT)

    def _admit(self, sock: socket.socket, peer: object) -> None:
        """drop_connection(), then fork the connection's process."""
        address, _ = _ip(peer)
        reason = self.penalties.check(address)
        if reason is not None:
            self._drop(sock, reason, logging.INFO)
            return
        block = self.penalties.block(address)
        same = sum(1 for c in self.children.values()
                   if self.penalties.block(c.address) == block)  # PerSourceNetBlockSize
        if should_drop(self.startups, self.max_startups) \
                or (self.per_source_max is not None and same >= self.per_source_max):
            if not self._throttling:
                log.error("beginning MaxStartups throttling")
                self._throttling = True
                self._dropped = 0
            self._dropped += 1
            self._drop(sock, "past Maxstartups", logging.INFO)  # sshd: VERBOSE
            return
        if self._throttling and self.startups < self.max_startups.start - 1:
            log.info("exited MaxStartups throttling, %d connections dropped", self._dropped)
            self._throttling = False
        local, _ = _ip(sock.getsockname())
        pipe_r, pipe_w = os.pipe()
        try:
            pid = os.fork()
        except OSError as exc:
            log.error("fork: %s", exc.strerror)
            os.close(pipe_r)
            os.close(pipe_w)
            return
        if pid == 0:
            os.close(pipe_r)
            self._child(sock, pipe_w)
        os.close(pipe_w)
        log.debug("Forked child %d.", pid)
        self.children[pid] = _Child(pid, pipe_r, address,
                                    f"connection from {address} to {local}")
        self._pipes[pipe_r] = pid
        self._selector.register(pipe_r, selectors.EVENT_READ, "pipe")

    def _child(self, sock: socket.socket, pipe_w: int) -> None:
        """In the forked connection process: never returns."""
        status = EXIT_CHILD_CRASH
        try:
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            self._selector.close()
            for listen in self.sockets:
                listen.close()
            for fd in (*self._pipes, *self._wake):
                with contextlib.suppress(OSError):
                    os.close(fd)
            with contextlib.suppress(OSError):
                os.setsid()

            def authenticated() -> None:
                with contextlib.suppress(OSError):
                    os.write(pipe_w, AUTH_DONE)
                    os.close(pipe_w)

            status = self.server.run_connection(sock, authenticated)
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 255
        except BaseException:
            log.exception("connection process failed")
        finally:
            logging.shutdown()
            os._exit(status)

    def _startup_pipe(self, fd: int) -> None:
        pid = self._pipes.get(fd)
        try:
            data = os.read(fd, 16)
        except OSError:
            data = b""
        self._selector.unregister(fd)
        os.close(fd)
        self._pipes.pop(fd, None)
        child = self.children.get(pid) if pid is not None else None
        if child is None:
            return
        child.pipe = None
        if data.startswith(AUTH_DONE):
            log.debug("child %d for %s auth done", child.pid, child.ident)
            del self.children[child.pid]  # no longer a startup, never penalised

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is None:
                continue
            if child.pipe is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(child.pipe)
                with contextlib.suppress(OSError):
                    os.close(child.pipe)
                self._pipes.pop(child.pipe, None)
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == EXIT_LOGIN_GRACE:
                log.info("Timeout before authentication for %s, pid = %d", child.ident, pid)
            elif os.WIFSIGNALED(status):
                log.info("session process %d for %s killed by signal %d", pid, child.ident,
                         os.WTERMSIG(status))
            line = self.penalties.penalise(child.address, penalty_for_status(status))
            if line is not None:
                log.info("%s", line)
