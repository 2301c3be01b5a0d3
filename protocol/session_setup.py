"""What a session start request runs, and with which environment (sshd's do_exec(),
do_setup_env(), do_rc_files() and do_motd()), as plain functions of the session's facts.

``plan_session`` makes the choice: ForceCommand, then the key's or certificate's forced
command, then what was asked for (the shell as a login shell, ``shell -c command``, or a
Subsystem's command); ``internal-sftp`` becomes OpenSSH's sftp-server binary, and a
forced internal-sftp outside a subsystem is refused with sshd's words.
"""

from __future__ import annotations

import logging
import os
import pwd
import termios
from dataclasses import dataclass

from keytools.match import match_pattern_list
from protocol.login import ConnectionInfo, login_environment
from protocol.server_auth import Authorization
from protocol.session_config import SessionPolicy

log = logging.getLogger("pyssh.sshd")

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/games"
MOTD = "/etc/motd"
MAIL_DIR = "/var/mail"
#: sshd's _PATH_SSH_USER_RC (relative to the home directory) and _PATH_SSH_SYSTEM_RC
USER_RC = ".ssh/rc"
SYSTEM_RC = "/etc/ssh/sshrc"
INTERNAL_SFTP = "internal-sftp"
#: where the OpenSSH sftp-server is found (it serves internal-sftp until pyssh has its own)
SFTP_SERVERS = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
                "/usr/libexec/sftp-server", "/usr/lib/ssh/sftp-server")
#: sshd's read_environment_file() limit on ~/.ssh/environment lines
MAX_USER_ENV = 1000
SFTP_ONLY = "This service allows sftp connections only.\n"


def env_allowed(name: str, accept: tuple[str, ...]) -> bool:
    return any(match_pattern_list(name, pattern) == 1 for pattern in accept)


def is_internal_sftp(command: str) -> bool:
    """sshd's IS_INTERNAL_SFTP(): the word internal-sftp, alone or with arguments."""
    rest = command[len(INTERNAL_SFTP):] if command.startswith(INTERNAL_SFTP) else "x"
    return rest[:1] in ("", " ", "\t")


def sftp_server() -> str:
    """The sftp-server binary that internal-sftp stands for."""
    for path in SFTP_SERVERS:
        if os.access(path, os.X_OK):
            return path
    return SFTP_SERVERS[0]


def user_shell(pw: pwd.struct_passwd | None, auth: Authorization) -> str:
    shell = pw.pw_shell if pw is not None else auth.shell
    return shell or "/bin/sh"


@dataclass(frozen=True)
class Plan:
    """What a start request will run."""

    #: for the "Starting session:" log line: shell, command, subsystem '...', forced-command
    kind: str
    executable: str
    argv: tuple[str, ...]
    #: SSH_ORIGINAL_COMMAND (only when a forced command replaced it)
    original: str | None
    forced: bool
    subsystem: bool
    #: text for stdout and the exit status instead of running anything
    refuse: tuple[str, int] | None = None


def plan_session(request: str, command: str | None, policy: SessionPolicy,
                 auth: Authorization, shell: str) -> Plan | None:
    """do_exec()'s choice for "shell", "exec" or "subsystem" (``command`` is the
    subsystem's name); None refuses the request (an unknown subsystem)."""
    subsystem = request == "subsystem"
    if subsystem:
        assert command is not None
        found = policy.subsystem(command)
        if found is None:
            log.info("subsystem request for %.100s by user %s failed, subsystem not found",
                     command, auth.user)
            return None
        name, command = command, found
        log.debug("subsystem: exec() %s", command)
        kind = f"subsystem '{name}'"
    else:
        kind = "shell" if command is None else "command"
    original = command
    forced_by = None
    if policy.force_command is not None:
        command, forced_by = policy.force_command, "(config)"
    elif auth.force_command is not None:
        command, forced_by = auth.force_command, "(key-option)"
    if forced_by is not None:
        kind = f"forced-command {forced_by} '{command:.900}'"
    else:
        original = None
    forced = forced_by is not None
    if command is not None and is_internal_sftp(command):
        if not subsystem:
            return Plan(kind, "", (), original, forced, False, refuse=(SFTP_ONLY, 1))
        server = sftp_server()
        return Plan(kind, server, (os.path.basename(server), *command.split()[1:]),
                    original, forced, True)
    base = os.path.basename(shell)
    argv = (f"-{base}",) if command is None else (base, "-c", command)
    return Plan(kind, shell, argv, original, forced, subsystem)


def read_environment_file(path: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """~/.ssh/environment: NAME=value lines, # comments; names filtered by
    PermitUserEnvironment's patterns, as sshd's read_environment_file() does."""
    out: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read(1 << 20).splitlines()
    except OSError:
        return out
    for number, line in enumerate(lines[:MAX_USER_ENV], 1):
        line = line.lstrip(" \t")
        if not line or line.startswith("#"):
            continue
        name, eq, value = line.partition("=")
        if not eq or not name:
            log.info("Bad line %u in %.100s", number, path)
            continue
        if env_allowed(name, allowed):
            out[name] = value
    return out


@dataclass(frozen=True)
class SessionFacts:
    """What the environment depends on besides the policy and the authorization."""

    pw: pwd.struct_passwd | None
    #: SSH_CONNECTION: "client-address client-port server-address server-port"
    connection: str
    #: the client's env requests that AcceptEnv let in
    client_env: dict[str, str]
    term: str | None = None
    tty: str | None = None
    agent_socket: str | None = None


def session_environment(plan: Plan, policy: SessionPolicy, auth: Authorization,
                        facts: SessionFacts) -> dict[str, str]:
    """do_setup_env(): the client's accepted variables, the login environment, TERM,
    the user's own (PermitUserEnvironment), then the SSH_* variables over all."""
    env = dict(facts.client_env)
    parts = facts.connection.split()
    info = ConnectionInfo(parts[0], int(parts[1]), parts[2], int(parts[3])) \
        if len(parts) == 4 else None
    if facts.pw is not None:
        env.update(login_environment(facts.pw, info))
    else:
        env.update({"USER": auth.user, "LOGNAME": auth.user, "HOME": auth.home,
                    "PATH": DEFAULT_PATH, "MAIL": f"{MAIL_DIR}/{auth.user}",
                    "SHELL": user_shell(None, auth)})
    if facts.term is not None:
        env["TERM"] = facts.term
    allowed = policy.permit_user_environment
    if allowed:
        for entry in auth.environment:
            name, _, value = entry.partition("=")
            if env_allowed(name, allowed):
                env[name] = value
        env.update(read_environment_file(os.path.join(auth.home, ".ssh", "environment"),
                                         allowed))
    if info is not None:
        env["SSH_CLIENT"] = info.ssh_client
    env["SSH_CONNECTION"] = facts.connection
    if facts.tty is not None:
        env["SSH_TTY"] = facts.tty
    if plan.original is not None:
        env["SSH_ORIGINAL_COMMAND"] = plan.original
    if facts.agent_socket is not None:
        env["SSH_AUTH_SOCK"] = facts.agent_socket
    return env


def rc_command(plan: Plan, policy: SessionPolicy, auth: Authorization, shell: str,
               cwd: str) -> tuple[str, ...] | None:
    """do_rc_files(): ~/.ssh/rc (PermitUserRC, the key's user-rc, not for subsystems or
    ForceCommand), else /etc/ssh/sshrc, run by the user's shell before the session's
    command. X11 is never forwarded, so nothing is written to its stdin."""
    if plan.refuse is not None or plan.executable != shell:
        return None
    base = os.path.basename(shell)
    if not plan.subsystem and policy.force_command is None and policy.permit_user_rc \
            and auth.permit_user_rc \
            and os.path.exists(os.path.join(cwd, USER_RC)):
        return (base, "-c", f"/bin/sh {USER_RC}")
    if os.path.exists(SYSTEM_RC):
        return (base, "-c", f"/bin/sh {SYSTEM_RC}")
    return None


def motd(policy: SessionPolicy, home: str, pty_master: int | None) -> bytes:
    """/etc/motd for an interactive login, unless ~/.hushlogin exists; newlines as the
    pty's output processing would turn them (ONLCR)."""
    if not policy.print_motd or os.path.exists(os.path.join(home, ".hushlogin")):
        return b""
    try:
        with open(MOTD, "rb") as f:
            text = f.read(1 << 16)
    except OSError:
        return b""
    if pty_master is not None:
        oflag = termios.tcgetattr(pty_master)[1]
        if oflag & termios.OPOST and oflag & termios.ONLCR:
            text = text.replace(b"\n", b"\r\n")
    return text
