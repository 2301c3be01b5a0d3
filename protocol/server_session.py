"""Session channels, server role: env, exec and shell through pipes (no pty yet).

A command runs as the current user through the user's shell (``shell -c command``),
in the home directory, with a login-like environment plus the ``env`` requests AcceptEnv
allows. A forced command (authorized_keys ``command=`` or a certificate's force-command)
replaces what the client asked for, which is kept in SSH_ORIGINAL_COMMAND. When the
process ends: the rest of its output, exit-status (or exit-signal), EOF, CLOSE.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable

from keytools.errors import SshError
from keytools.match import match_pattern_list
from keytools.wire import Reader, Writer
from protocol.channels import EXTENDED_STDERR, Channel, ConnectionLayer
from protocol.server_auth import Authorization

log = logging.getLogger("pyssh.sshd")

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/games"
_READ = 32 * 1024
#: signal numbers -> RFC 4254 names (without SIG)
_SIGNAL_NAMES = {
    signal.SIGABRT: "ABRT", signal.SIGALRM: "ALRM", signal.SIGFPE: "FPE", signal.SIGHUP: "HUP",
    signal.SIGILL: "ILL", signal.SIGINT: "INT", signal.SIGKILL: "KILL", signal.SIGPIPE: "PIPE",
    signal.SIGQUIT: "QUIT", signal.SIGSEGV: "SEGV", signal.SIGTERM: "TERM",
    signal.SIGUSR1: "USR1", signal.SIGUSR2: "USR2",
}
MAX_ENV = 256


def env_allowed(name: str, accept: tuple[str, ...]) -> bool:
    return any(match_pattern_list(name, pattern) == 1 for pattern in accept)


class ServerSession(Channel):
    """One "session" channel opened by the client."""

    def __init__(self, layer: ConnectionLayer, local_id: int, auth: Authorization,
                 accept_env: tuple[str, ...], connection: str) -> None:
        super().__init__(layer, local_id, "session")
        self.auth = auth
        self.accept_env = accept_env
        self.connection = connection
        self.env: dict[str, str] = {}
        self.started = False
        self.task: asyncio.Task[None] | None = None

    def on_request(self, name: str, r: Reader) -> bool:
        try:
            return self._request(name, r)
        except SshError as exc:
            log.info("session request %s: %s", name, exc)
            return False

    def _request(self, name: str, r: Reader) -> bool:
        if name == "env":
            var = r.string().decode("utf-8", "replace")
            value = r.string().decode("utf-8", "replace")
            if self.started or "=" in var or len(self.env) >= MAX_ENV \
                    or not env_allowed(var, self.accept_env):
                log.debug("Ignoring env request %s: disallowed name", var)
                return False
            self.env[var] = value
            return True
        if name in ("exec", "shell"):
            if self.started:
                return False
            command = r.string().decode("utf-8", "surrogateescape") if name == "exec" else None
            self.started = True
            self.task = asyncio.get_running_loop().create_task(self._run(command))
            return True
        if name == "pty-req":
            return False  # no pty support yet
        return False

    def _environment(self, original: str | None) -> dict[str, str]:
        auth = self.auth
        env = dict(self.env)
        env.update({
            "USER": auth.user, "LOGNAME": auth.user, "HOME": auth.home, "SHELL": auth.shell,
            "PATH": DEFAULT_PATH, "SSH_CONNECTION": self.connection,
            "SSH_CLIENT": " ".join(self.connection.split()[:2] + self.connection.split()[3:]),
        })
        if os.environ.get("TZ"):
            env["TZ"] = os.environ["TZ"]
        # authorized_keys environment= is ignored: PermitUserEnvironment is "no" (sshd's
        # default) until that keyword is implemented.
        if auth.force_command is not None and original is not None:
            env["SSH_ORIGINAL_COMMAND"] = original
        return env

    async def _run(self, command: str | None) -> None:
        auth = self.auth
        original = command
        if auth.force_command is not None:
            command = auth.force_command
        shell = auth.shell
        argv = [shell, "-c", command] if command is not None else [shell]
        status: int | None = None
        try:
            cwd = auth.home if os.path.isdir(auth.home) else "/"
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, cwd=cwd, env=self._environment(original),
                start_new_session=True)
        except OSError as exc:
            log.error("session: cannot run %s: %s", shell, exc)
            await self._finish(127)
            return
        assert proc.stdout is not None and proc.stderr is not None and proc.stdin is not None
        feeder = asyncio.get_running_loop().create_task(self._feed(proc.stdin))
        try:
            await asyncio.gather(self._pump(proc.stdout, 0),
                                 self._pump(proc.stderr, EXTENDED_STDERR))
            status = await proc.wait()
        finally:
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await feeder
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
                status = proc.returncode
        await self._finish(status)

    async def _pump(self, source: asyncio.StreamReader, stream: int) -> None:
        while True:
            chunk = await source.read(_READ)
            if not chunk:
                return
            try:
                await self.write(chunk, stream)
            except SshError:
                return

    async def _feed(self, stdin: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await self.read()
                if not data:
                    break
                stdin.write(data)
                await stdin.drain()
        except (SshError, ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                stdin.close()

    async def _finish(self, status: int | None) -> None:
        if self.error is not None or self.close_sent:
            return
        try:
            if status is not None and status < 0:
                name = _SIGNAL_NAMES.get(signal.Signals(-status), "KILL")
                await self.request("exit-signal", Writer().string(name).boolean(False)
                                   .string("").string("").getvalue(), want_reply=False)
            elif status is not None:
                await self.request("exit-status", Writer().uint32(status).getvalue(),
                                   want_reply=False)
            self.send_eof()
            self.close()
        except SshError:
            pass


def session_opener(layer: ConnectionLayer, auth: Authorization, accept_env: tuple[str, ...],
                   connection: str, sessions: list[ServerSession]
                   ) -> Callable[[Reader], Channel | None]:
    """The CHANNEL_OPEN handler for "session" channels of an authenticated user; each
    channel is also added to ``sessions`` so the connection can end their processes."""

    def open_session(r: Reader) -> Channel | None:
        r.end()
        session = ServerSession(layer, layer._allocate(), auth, accept_env, connection)
        sessions.append(session)
        return session

    return open_session
