"""The process behind a pysshd session: fork/exec, its wait status, non-blocking fds.

pysshd forks the child itself (rather than through asyncio's subprocess support) for
two reasons sshd has too: the child must make the pty slave its controlling terminal
(setsid, then TIOCSCTTY) and, in root mode, switch to the user before exec; and the
parent needs the raw wait status, whose core-dumped bit exit-signal reports. The exit
is awaited with a pidfd, so no thread or SIGCHLD handler is involved.

Between fork and exec the child calls only system calls (plus the ``pre_exec`` hook,
which must do the same), and always ends with ``os._exit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import signal
import termios
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: signals Python or asyncio may have set to SIG_IGN; exec keeps ignored signals ignored
_RESTORE = tuple(getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ", "SIGXFZ", "SIGHUP",
                                                     "SIGINT", "SIGQUIT", "SIGTERM", "SIGCHLD")
                 if hasattr(signal, name))
READ_SIZE = 256 * 1024
#: the pipe buffer asked for on a session's output pipes (Linux's default limit for
#: unprivileged users, /proc/sys/fs/pipe-max-size)
PIPE_SIZE = 1024 * 1024
#: how long output may still trickle in from a pty after the child exited
LINGER = 0.2


@dataclass(frozen=True)
class ChildSpec:
    """What to run: ``executable`` with ``argv`` (argv[0] may be "-bash") in ``env``."""

    executable: str
    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str
    #: the child's stdin, stdout, stderr
    fds: tuple[int, int, int]
    controlling_tty: bool = False
    #: run in the child after setsid, before chdir and exec (root mode: become the user)
    pre_exec: Callable[[], None] | None = None
    #: argv of a command (run with ``executable``) that the child runs and waits for
    #: after chdir, before its exec, with stdin at end of file: ~/.ssh/rc
    before: tuple[str, ...] | None = None


def _child(spec: ChildSpec) -> None:
    """In the forked child: never returns."""
    try:
        os.setsid()
        # via fds above 2 first, so that a source fd among 0..2 is never clobbered
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in spec.fds]
        for target, fd in enumerate(high):
            os.dup2(fd, target)
        os.closerange(3, min(os.sysconf("SC_OPEN_MAX"), 1 << 20))  # close_range(2)
        if spec.controlling_tty:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        with contextlib.suppress(ValueError):  # forked from a thread that is not main
            for sig in _RESTORE:
                signal.signal(sig, signal.SIG_DFL)
        if spec.pre_exec is not None:
            spec.pre_exec()
        try:
            os.chdir(spec.cwd)
        except OSError as exc:
            os.write(2, f"Could not chdir to home directory {spec.cwd}: "
                        f"{exc.strerror}\n".encode())
            os.chdir("/")
        if spec.before is not None:
            _run_before(spec)
        os.execve(spec.executable, list(spec.argv), spec.env)
    except OSError as exc:
        # sshd: perror(shell); exit(1)
        with contextlib.suppress(OSError):
            os.write(2, f"{spec.executable}: {exc.strerror}\n".encode())
    except BaseException as exc:  # nothing may unwind past the fork
        with contextlib.suppress(BaseException):
            os.write(2, f"{exc}\n".encode())
    finally:
        os._exit(1)


def _run_before(spec: ChildSpec) -> None:
    """sshd's do_rc_files(): run the rc command to completion, its stdin empty."""
    assert spec.before is not None
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(read_end, 0)
            os.close(write_end)
            os.execve(spec.executable, list(spec.before), spec.env)
        finally:
            os._exit(127)
    os.close(read_end)
    os.close(write_end)
    os.waitpid(pid, 0)


def _waiter(loop: asyncio.AbstractEventLoop) -> tuple[asyncio.Future[None], Callable[[], None]]:
    """A future and the fd callback that completes it (once)."""
    fut: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not fut.done():
            fut.set_result(None)

    return fut, wake


def spawn(spec: ChildSpec) -> int:
    """Fork and exec ``spec``; the child's pid (its own session and process group)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        _child(spec)
    return pid


async def wait_status(pid: int) -> int:
    """The raw wait status of child ``pid`` (WIFSIGNALED, WCOREDUMP, ... apply)."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        _, status = await asyncio.to_thread(os.waitpid, pid, 0)
        return status
    loop = asyncio.get_running_loop()
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return status
            ready, wake = _waiter(loop)
            loop.add_reader(pidfd, wake)
            try:
                await ready
            finally:
                loop.remove_reader(pidfd)
    finally:
        os.close(pidfd)


def describe_status(status: int) -> tuple[int | None, int | None, bool]:
    """(exit status, terminating signal, core dumped) of a raw wait status."""
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status), None, False
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status), os.WCOREDUMP(status)
    return None, None, False


class FdReader:
    """Non-blocking reads of a pipe or pty master on the event loop.

    Bulk output costs one read per pipe-full, so a pipe gets a larger buffer where the
    kernel allows (F_SETPIPE_SZ), and reads take up to READ_SIZE at once. The fd stays
    registered with the event loop between reads while the reader keeps up (no
    add/remove per empty read); it is registered through a duplicate that this reader
    owns, so the session closing its fd can never leave a stale registration behind, and
    it is unregistered at end of file, when the consumer falls behind (the fd is ready
    with no read waiting), or when the reader goes away.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        if hasattr(fcntl, "F_SETPIPE_SZ"):
            with contextlib.suppress(OSError):  # not a pipe, or over the user's limit
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        self._ready: asyncio.Future[None] | None = None
        self._watch = _Watch()
        self._finalizer = weakref.finalize(self, self._watch.stop)

    def _wait_ready(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        self._ready = fut = loop.create_future()
        if not self._watch.active:
            ref = weakref.ref(self)

            def on_ready() -> None:
                reader = ref()
                if reader is None:
                    return
                waiter = reader._ready
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
                else:  # nobody is reading: stop watching until somebody is
                    reader._watch.pause()

            self._watch.start(loop, self.fd, on_ready)
        return fut

    def close(self) -> None:
        self._watch.stop()

    async def read(self, stop: asyncio.Event | None = None) -> bytes:
        """The next chunk; b"" at end of file (EIO on a pty master whose slave is
        closed everywhere), or once ``stop`` is set and nothing more arrives within
        LINGER seconds (a background process may keep a pty slave open forever; the
        kernel moves pty output to the master asynchronously, hence the wait)."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    data = os.read(self.fd, READ_SIZE)
                    if not data:
                        self._watch.stop()
                    return data
                except BlockingIOError:
                    pass
                except OSError as exc:
                    self._watch.stop()
                    if exc.errno == errno.EIO:
                        return b""
                    raise
                ready = self._wait_ready(loop)
                if stop is None:
                    await ready
                    continue
                lingering = stop.is_set()
                waiters: list[asyncio.Future[Any]] = [ready]
                stopper: asyncio.Task[bool] | None = None
                if not lingering:
                    stopper = loop.create_task(stop.wait())
                    waiters.append(stopper)
                try:
                    await asyncio.wait(waiters, timeout=LINGER if lingering else None,
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if stopper is not None:
                        stopper.cancel()
                timed_out = not ready.done()
                if lingering and timed_out:
                    self._watch.stop()
                    return b""
        except BaseException:
            self._watch.stop()
            raise
        finally:
            self._ready = None


class _Watch:
    """An event loop registration of a private duplicate of an fd (closed by ``stop``)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd = -1
        self.active = False

    def start(self, loop: asyncio.AbstractEventLoop, fd: int,
              callback: Callable[[], None]) -> None:
        if self._fd < 0:
            self._fd = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 0)
        self._loop = loop
        loop.add_reader(self._fd, callback)
        self.active = True

    def pause(self) -> None:
        if self.active and self._loop is not None:
            self.active = False
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._fd)

    def stop(self) -> None:
        self.pause()
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)


async def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to the non-blocking ``fd``; BrokenPipeError and other
    OSErrors propagate."""
    loop = asyncio.get_running_loop()
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
            view = view[n:]
            continue
        except BlockingIOError:
            pass
        ready, wake = _waiter(loop)
        loop.add_writer(fd, wake)
        try:
            await ready
        finally:
            loop.remove_writer(fd)
