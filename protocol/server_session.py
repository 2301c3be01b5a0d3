"""Session channels, server role (RFC 4254 section 6): what a pysshd session does.

A session collects its setup requests (env, pty-req, auth-agent-req@openssh.com), then
one of shell, exec or subsystem starts the child: the user's shell as a login shell
(argv[0] "-bash"), ``shell -c command``, or the subsystem's command. ForceCommand
(sshd_config) or a forced command of the key or certificate replaces what was asked
for, which is kept in SSH_ORIGINAL_COMMAND. With a pty the child gets the slave as its
controlling terminal; without, three pipes. While it runs: window-change, signal and
stdin; when it ends: the rest of its output, exit-status or exit-signal (with the
core-dumped flag), EOF, CLOSE, in that order.

Where sshd's behaviour is the spec: requests after the start are refused, an unknown
subsystem is refused, ForceCommand internal-sftp outside a subsystem says "This
service allows sftp connections only.", PrintMotd prints /etc/motd only for an
interactive login (a pty and no command, no ~/.hushlogin), signals are refused for
forced commands and subsystems, MaxSessions refuses further session channels.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import pwd
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keytools.errors import SshError
from keytools.wire import Reader, Writer
from protocol.channels import EXTENDED_STDERR, Channel, ConnectionLayer
from protocol.forward_server import agent_forwarding_allowed
from protocol.login import become_user
from protocol.server_auth import Authorization
from protocol.server_child import (
    ChildSpec,
    FdReader,
    describe_status,
    spawn,
    wait_status,
    write_all,
)
from protocol.server_keepalive import ClientAlive
from protocol.server_pty import Pty, PtyRequest, open_pty, set_window_size
from protocol.session_config import SessionPolicy
from protocol.session_setup import (
    Plan,
    SessionFacts,
    env_allowed,
    motd,
    plan_session,
    rc_command,
    session_environment,
    user_shell,
)
from protocol.sshd_config import VERBOSE

if TYPE_CHECKING:
    from protocol.sshd_config import ServerConfig

log = logging.getLogger("pyssh.sshd")

#: RFC 4254 section 6.10 signal names (without SIG), as sshd's sig2name() knows them
_SIGNAL_NAMES = {
    signal.SIGABRT: "ABRT", signal.SIGALRM: "ALRM", signal.SIGFPE: "FPE", signal.SIGHUP: "HUP",
    signal.SIGILL: "ILL", signal.SIGINT: "INT", signal.SIGKILL: "KILL", signal.SIGPIPE: "PIPE",
    signal.SIGQUIT: "QUIT", signal.SIGSEGV: "SEGV", signal.SIGTERM: "TERM",
    signal.SIGUSR1: "USR1", signal.SIGUSR2: "USR2",
}
_SIGNAL_NUMBERS = {name: number for number, name in _SIGNAL_NAMES.items()}
MAX_ENV = 256


def _agent_server() -> Callable[..., Any] | None:
    """protocol.agent_forward.serve_forwarded_agent(layer, uid, gid) -> socket path."""
    try:
        from protocol.agent_forward import serve_forwarded_agent
    except ImportError:
        return None
    return serve_forwarded_agent


@dataclass(frozen=True)
class SessionContext:
    """What every session of one authenticated connection shares."""

    layer: ConnectionLayer
    auth: Authorization
    policy: SessionPolicy
    #: SSH_CONNECTION: "client-address client-port server-address server-port"
    connection: str
    sessions: list[ServerSession]
    #: the ServerConfig with this connection's Match blocks (or the policy, for
    #: callers that pass only that): what forwarding decisions read
    config: object = None

    @property
    def address(self) -> tuple[str, int]:
        parts = self.connection.split()
        return parts[0], int(parts[1])


class ServerSession(Channel):
    """One "session" channel opened by the client."""

    def __init__(self, context: SessionContext, local_id: int) -> None:
        super().__init__(context.layer, local_id, "session")
        self.context = context
        self.auth = context.auth
        self.policy = context.policy
        self.connection = context.connection
        self.number = len(context.sessions)
        self.env: dict[str, str] = {}
        self.started = False
        self.pty_request: PtyRequest | None = None
        self.pty: Pty | None = None
        self.agent_socket: str | None = None
        self._agent_pending: Any = None
        self.pid: int | None = None
        self.plan: Plan | None = None
        self.task: asyncio.Task[None] | None = None
        self._eow_sent = False
        try:
            self.pw: pwd.struct_passwd | None = pwd.getpwnam(self.auth.user)
        except KeyError:
            self.pw = None

    # -- requests -----------------------------------------------------------------------

    def on_request(self, name: str, r: Reader) -> bool:
        try:
            return self._request(name, r)
        except SshError as exc:
            log.info("session request %s: %s", name, exc)
            return False
        except OSError as exc:
            log.error("session request %s: %s", name, exc)
            return False

    def _request(self, name: str, r: Reader) -> bool:
        if name == "window-change":
            cols, rows, width, height = r.uint32(), r.uint32(), r.uint32(), r.uint32()
            if self.pty is None or self.pty.master < 0:
                return False
            set_window_size(self.pty.master, cols, rows, width, height)
            return True
        if name == "signal":
            return self._signal(r.ascii())
        if self.started:
            log.debug("session %d: %s request after the session started", self.number, name)
            return False
        if name == "env":
            var = r.string().decode("utf-8", "replace")
            value = r.string().decode("utf-8", "replace")
            if "=" in var or len(self.env) >= MAX_ENV \
                    or not env_allowed(var, self.policy.accept_env):
                log.debug("Ignoring env request %s: disallowed name", var)
                return False
            self.env[var] = value
            return True
        if name == "pty-req":
            return self._pty_request(r)
        if name == "auth-agent-req@openssh.com":
            return self._agent_request()
        if name == "x11-req":
            log.debug("X11 forwarding disabled; not granting x11-req")
            return False
        if name in ("exec", "shell", "subsystem"):
            command = r.string().decode("utf-8", "surrogateescape") if name != "shell" \
                else None
            plan = self._plan(name, command)
            if plan is None:
                return False
            self.started = True
            self.plan = plan
            self.task = asyncio.get_running_loop().create_task(self._run(plan))
            return True
        return False

    def _pty_request(self, r: Reader) -> bool:
        if self.pty_request is not None:
            return False
        if not self.auth.permit_pty or not self.policy.permit_tty:
            log.debug("Allocating a pty not permitted for this connection.")
            return False
        self.pty_request = PtyRequest.parse(r)
        owner = None
        if os.geteuid() == 0 and self.pw is not None:
            owner = (self.pw.pw_uid, _tty_group(self.pw.pw_gid))
        self.pty = open_pty(self.pty_request, owner)
        log.debug("session %d: pty %s allocated", self.number, self.pty.name)
        return True

    def _agent_request(self) -> bool:
        # AllowAgentForwarding and DisableForwarding of this connection's configuration
        # (Match blocks applied), the key's no-agent-forwarding, the certificate's
        # permit-agent-forwarding: protocol/forward_server.py decides
        if not agent_forwarding_allowed(self.auth, self.context.config):
            log.debug("agent forwarding disabled")
            return False
        if self.agent_socket is not None or self._agent_pending is not None:
            return False  # sshd: "agent forwarding already requested"
        serve = _agent_server()
        if serve is None:
            log.debug("agent forwarding is not available in this build")
            return False
        uid = self.pw.pw_uid if self.pw is not None else os.getuid()
        gid = self.pw.pw_gid if self.pw is not None else os.getgid()
        result = serve(self.layer, uid, gid)
        if inspect.isawaitable(result):
            self._agent_pending = result
        else:
            self.agent_socket = str(result)
        return True

    def _signal(self, name: str) -> bool:
        number = _SIGNAL_NUMBERS.get(name)
        if number is None:
            log.error("session_signal_req: unsupported signal \"%s\"", name)
            return False
        if self.pid is None:
            log.error("session_signal_req: no pid for session %d", self.number)
            return False
        if self.plan is not None and (self.plan.forced or self.plan.subsystem):
            log.error("session_signal_req: refusing to send signal %s to %s session", name,
                      "forced-command" if self.plan.forced else "subsystem")
            return False
        try:
            os.killpg(self.pid, number)
        except OSError as exc:
            log.error("session_signal_req: session signal kill(%d, %d): %s", self.pid,
                      number, exc.strerror)
            return False
        return True

    # -- what to run --------------------------------------------------------------------

    @property
    def shell(self) -> str:
        return user_shell(self.pw, self.auth)

    def _plan(self, request: str, command: str | None) -> Plan | None:
        return plan_session(request, command, self.policy, self.auth, self.shell)

    def _environment(self, plan: Plan) -> dict[str, str]:
        facts = SessionFacts(self.pw, self.connection, self.env,
                             self.pty_request.term if self.pty_request is not None else None,
                             self.pty.name if self.pty is not None else None,
                             self.agent_socket)
        return session_environment(plan, self.policy, self.auth, facts)

    def _pre_exec(self) -> Callable[[], None] | None:
        """Root mode: switch to the user in the child. The listener normally did that
        for the whole connection already (then this is not root and nothing is left
        to do); a root login still gets its groups set up."""
        if os.geteuid() != 0 or self.pw is None:
            return None
        pw = self.pw
        return lambda: become_user(pw)

    # -- running ------------------------------------------------------------------------

    async def _run(self, plan: Plan) -> None:
        status: int | None = None
        stdin_w = stdout_r = stderr_r = -1
        child_fds: list[int] = []
        try:
            if self._agent_pending is not None:
                with contextlib.suppress(SshError, OSError):
                    self.agent_socket = str(await self._agent_pending)
                self._agent_pending = None
            host, port = self.context.address
            tty = f" on {self.pty.name.removeprefix('/dev/')}" if self.pty is not None else ""
            log.log(VERBOSE, "Starting session: %s%s for %s from %s port %d id %d",
                    plan.kind, tty, self.auth.user, host, port, self.number)
            if plan.refuse is not None:
                await self.write(plan.refuse[0].encode())  # sshd prints it to stdout
                await self._finish(plan.refuse[1] << 8)
                return
            if self.pty is not None and plan.kind == "shell":
                text = motd(self.policy, self.auth.home, self.pty.master)
                if text:
                    await self.write(text)
            env = self._environment(plan)
            cwd = self.auth.home if os.path.isdir(self.auth.home) else "/"
            if self.pty is not None:
                fds = (self.pty.slave,) * 3
            else:
                in_r, stdin_w = os.pipe()
                stdout_r, out_w = os.pipe()
                stderr_r, err_w = os.pipe()
                child_fds = [in_r, out_w, err_w]
                fds = (in_r, out_w, err_w)
            spec = ChildSpec(plan.executable, plan.argv, env, cwd, fds,
                             controlling_tty=self.pty is not None, pre_exec=self._pre_exec(),
                             before=rc_command(plan, self.policy, self.auth, self.shell, cwd))
            self.pid = spawn(spec)
            for fd in child_fds:
                os.close(fd)
            child_fds = []
            if self.pty is not None:
                self.pty.close_slave()
                status = await self._run_pty(self.pty, self.pid)
            else:
                status = await self._run_pipes(self.pid, stdin_w, stdout_r, stderr_r)
                stdin_w = -1
        except (OSError, SshError) as exc:
            log.error("session: cannot run %s: %s", plan.executable, exc)
            status = 1 << 8
        except asyncio.CancelledError:
            self._hangup()
            raise
        finally:
            for fd in (*child_fds, stdin_w, stdout_r, stderr_r):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            if self.pty is not None:
                self.pty.close()
        await self._finish(status)

    def _hangup(self, reap: bool = True) -> None:
        """The connection ended under a running child: SIGHUP to its process group, as
        closing a pty's master does, and a thread that reaps it when it goes."""
        if self.pid is None:
            return
        with contextlib.suppress(OSError):
            os.killpg(self.pid, signal.SIGHUP)
        if reap:
            threading.Thread(target=_reap, args=(self.pid,), daemon=True).start()

    async def _run_pty(self, pty: Pty, pid: int) -> int:
        exited = asyncio.Event()
        loop = asyncio.get_running_loop()
        pump = loop.create_task(self._pump(FdReader(pty.master), 0, exited))
        feeder = loop.create_task(self._feed(pty.master, tty=True))
        waiter = loop.create_task(wait_status(pid))
        closed = loop.create_task(self.closed.wait())
        try:
            await asyncio.wait((waiter, closed), return_when=asyncio.FIRST_COMPLETED)
            if not waiter.done():  # the client closed the channel: sshd closes the pty
                self._hangup(reap=False)
            status = await waiter
            exited.set()
            await pump
            return status
        finally:
            waiter.cancel()
            closed.cancel()
            pump.cancel()
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await feeder

    async def _run_pipes(self, pid: int, stdin_w: int, stdout_r: int, stderr_r: int) -> int:
        loop = asyncio.get_running_loop()
        os.set_blocking(stdin_w, False)
        feeder = loop.create_task(self._feed(stdin_w, tty=False))
        try:
            await asyncio.gather(self._pump(FdReader(stdout_r), 0),
                                 self._pump(FdReader(stderr_r), EXTENDED_STDERR))
            return await wait_status(pid)
        finally:
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await feeder

    async def _pump(self, source: FdReader, stream: int,
                    stop: asyncio.Event | None = None) -> None:
        """Child output to the channel until end of file (or, once ``stop`` is set,
        until nothing is left to read)."""
        while True:
            try:
                chunk = await source.read(stop)
            except OSError:
                return
            if not chunk:
                return
            try:
                await self.write(chunk, stream)
            except SshError:
                return

    async def _feed(self, fd: int, *, tty: bool) -> None:
        """Channel data to the child's stdin (or the pty master). EOF closes the pipe;
        on a pty it is ignored, as sshd does. A write error sends eow@openssh.com and
        discards what follows."""
        broken = False
        try:
            while True:
                data = await self.read()
                if not data:
                    break
                if broken:
                    continue
                try:
                    await write_all(fd, data)
                except OSError:
                    broken = True
                    if not tty:
                        await self._send_eow()
        except (SshError, ConnectionError):
            pass
        finally:
            if not tty:
                with contextlib.suppress(OSError):
                    os.close(fd)

    async def _send_eow(self) -> None:
        if not self._eow_sent and not self.eof_sent and not self.close_sent:
            self._eow_sent = True
            with contextlib.suppress(SshError):
                await self.request("eow@openssh.com", b"", want_reply=False)

    async def _finish(self, status: int | None) -> None:
        host, port = self.context.address
        log.log(VERBOSE, "Close session: user %s from %s port %d id %d", self.auth.user,
                host, port, self.number)
        if self.error is not None or self.close_sent:
            return
        try:
            if status is not None:
                code, sig, core = describe_status(status)
                if sig is not None:
                    name = _SIGNAL_NAMES.get(signal.Signals(sig), "SIG@openssh.com")
                    await self.request("exit-signal", Writer().string(name).boolean(core)
                                       .string("").string("").getvalue(), want_reply=False)
                elif code is not None:
                    await self.request("exit-status", Writer().uint32(code).getvalue(),
                                       want_reply=False)
            self.send_eof()
            self.close()
        except SshError:
            pass


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _tty_group(default: int) -> int:
    """The "tty" group owns ptys (mode 0620), as sshd's pty_setowner() does."""
    import grp

    try:
        return grp.getgrnam("tty").gr_gid
    except KeyError:
        return default


def session_opener(layer: ConnectionLayer, auth: Authorization,
                   config: ServerConfig | SessionPolicy | tuple[str, ...], connection: str,
                   sessions: list[ServerSession]) -> Callable[[Reader], Channel | None]:
    """The CHANNEL_OPEN handler for "session" channels of an authenticated user, made
    once per connection after authentication; it also starts the ClientAlive probes.
    ``config`` is the ServerConfig (or, as older callers pass, just AcceptEnv).
    Each channel is added to ``sessions`` so the connection can end their processes."""
    source: object
    if isinstance(config, SessionPolicy):
        policy = source = config
    elif isinstance(config, tuple):
        policy = source = SessionPolicy(accept_env=config)
    else:  # the configuration with this connection's Match blocks, when auth has it
        source = getattr(auth, "config", None) or config
        policy = SessionPolicy.from_config(source)
    context = SessionContext(layer, auth, policy, connection, sessions, source)
    host, port = context.address
    ClientAlive(layer, policy.client_alive_interval, policy.client_alive_count_max,
                f"user {auth.user} {host} port {port}").start()

    def open_session(r: Reader) -> Channel | None:
        r.end()
        live = sum(1 for s in sessions if not s.closed.is_set())
        if live >= policy.max_sessions:
            log.error("no more sessions (MaxSessions %d)", policy.max_sessions)
            return None
        session = ServerSession(context, layer.allocate())
        sessions.append(session)
        return session

    return open_session
