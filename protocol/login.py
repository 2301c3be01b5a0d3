"""The identity switch to a logged-in user and the environment of their session.

``become_user`` is sshd's do_setusercontext() without PAM or login classes: the user's
supplementary groups (initgroups), then the primary group, then the uid, and a check
that root cannot be regained. In root mode pysshd calls it once in the session process
right after authentication, before any channel runs, so everything the session code
starts (commands, shells, ptys, forwarded sockets) already runs as the user; it is a
no-op when the process already is that user (unprivileged mode, or a second call).

``login_environment`` is the part of do_setup_env() that does not depend on the
channel: HOME, USER, LOGNAME, SHELL, PATH, MAIL, SSH_CLIENT and SSH_CONNECTION (the
session code adds SSH_TTY, TERM, SSH_ORIGINAL_COMMAND and the client's env requests).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
from dataclasses import dataclass

from keytools.errors import SshError

#: sshd's _PATH_STDPATH as Debian builds it (``--with-default-path``); root gets sbin too
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/games"
SUPERUSER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAIL_DIRECTORY = "/var/mail"
#: the privsep network child's empty chroot, and the users it may run as
CHROOT_DIR = "/run/sshd"
PRIVSEP_USERS = ("sshd", "nobody")

log = logging.getLogger("pyssh.sshd")


class PermissionDropFailed(SshError):
    """setgroups/setgid/setuid failed, or root could be regained afterwards: fatal."""


@dataclass(frozen=True)
class ConnectionInfo:
    """The TCP endpoints of one connection, as SSH_CONNECTION and SSH_CLIENT show them."""

    client_address: str
    client_port: int
    server_address: str
    server_port: int

    @property
    def ssh_connection(self) -> str:
        return (f"{self.client_address} {self.client_port} {self.server_address} "
                f"{self.server_port}")

    @property
    def ssh_client(self) -> str:
        return f"{self.client_address} {self.client_port} {self.server_port}"


def become_user(pw: pwd.struct_passwd) -> None:
    """Switch this process to ``pw`` for good (groups, gid, uid), as sshd does after
    authentication. A no-op when we already are that user and not root."""
    if os.geteuid() != 0:
        if os.getuid() == pw.pw_uid and os.geteuid() == pw.pw_uid:
            return
        raise PermissionDropFailed(f"cannot become user {pw.pw_name}: not running as root")
    try:
        os.initgroups(pw.pw_name, pw.pw_gid)
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    except OSError as exc:
        raise PermissionDropFailed(
            f"permanently_set_uid: {pw.pw_uid}/{pw.pw_gid}: {exc.strerror}") from None
    if pw.pw_uid != 0:
        # permanently_set_uid(): it must not be possible to get root back
        try:
            os.setuid(0)
        except OSError:
            pass
        else:
            raise PermissionDropFailed("permanently_set_uid: was able to restore old [e]uid")
    if os.getuid() != pw.pw_uid or os.geteuid() != pw.pw_uid \
            or os.getgid() != pw.pw_gid or os.getegid() != pw.pw_gid:
        raise PermissionDropFailed(f"permanently_set_uid: failed to become {pw.pw_name}")


def drop_to_unprivileged(pw: pwd.struct_passwd, chroot_dir: str | None) -> None:
    """The pre-auth network child's demotion (privsep_preauth_child()): chroot to an
    empty directory, no supplementary groups, the privsep user's gid and uid."""
    try:
        if chroot_dir is not None:
            os.chroot(chroot_dir)
            os.chdir("/")
        os.setgroups([pw.pw_gid])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    except OSError as exc:
        raise PermissionDropFailed(f"privsep: cannot drop privileges: {exc.strerror}") from None
    try:
        os.setuid(0)
    except OSError:
        return
    raise PermissionDropFailed("privsep: was able to restore root")


def privsep_user() -> pwd.struct_passwd | None:
    for name in PRIVSEP_USERS:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    return None


def prepare_chroot() -> str | None:
    """/run/sshd, created 0755 root if missing; None if it cannot be used."""
    try:
        os.makedirs(CHROOT_DIR, mode=0o755, exist_ok=True)
        st = os.stat(CHROOT_DIR)
    except OSError as exc:
        log.error("Missing privilege separation directory: %s: %s", CHROOT_DIR, exc.strerror)
        return None
    if st.st_uid != 0 or st.st_mode & 0o022:
        log.error("%s must be owned by root and not group or world-writable.", CHROOT_DIR)
        return None
    return CHROOT_DIR



def login_environment(pw: pwd.struct_passwd, connection: ConnectionInfo | None = None
                      ) -> dict[str, str]:
    """The login environment of a session for ``pw`` (without SSH_TTY and the
    client-supplied variables, which the session code adds)."""
    shell = pw.pw_shell or "/bin/sh"
    env = {
        "USER": pw.pw_name,
        "LOGNAME": pw.pw_name,
        "HOME": pw.pw_dir,
        "PATH": SUPERUSER_PATH if pw.pw_uid == 0 else DEFAULT_PATH,
        "MAIL": f"{MAIL_DIRECTORY}/{pw.pw_name}",
        "SHELL": shell,
    }
    tz = os.environ.get("TZ")
    if tz:
        env["TZ"] = tz
    if connection is not None:
        env["SSH_CLIENT"] = connection.ssh_client
        env["SSH_CONNECTION"] = connection.ssh_connection
    return env


def login_directory(pw: pwd.struct_passwd) -> str:
    """The session's working directory: the home directory, or / if it is missing
    (sshd says "Could not chdir to home directory" and goes on)."""
    return pw.pw_dir if pw.pw_dir and os.path.isdir(pw.pw_dir) else "/"
