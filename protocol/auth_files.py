"""The files and commands sshd consults to authorise a key: StrictModes and helpers.

``open_user_file`` is auth_openfile(): a regular file, and with StrictModes the file and
every directory up to the user's home (or ``/``) owned by root or the user and not
writable by group or others, else sshd's log line "Authentication refused: bad
ownership or modes for ...". ``run_auth_command`` is misc.c's subprocess() for
AuthorizedKeysCommand/AuthorizedPrincipalsCommand: an absolute, safely owned program,
run as the *CommandUser (when pysshd is root) with an empty environment; its stdout is
the answer, a non-zero exit refuses it.
"""

from __future__ import annotations

import logging
import os
import pwd
import stat
import subprocess
from collections.abc import Mapping

from protocol.percent import BadPercent, expand_percent

log = logging.getLogger("pyssh.sshd")

#: a file of authorized keys or principals larger than this is not read
MAX_FILE = 4 * 1024 * 1024
#: an AuthorizedKeysCommand that runs longer than this is killed (sshd waits forever)
COMMAND_TIMEOUT = 60.0


def _owner_ok(uid: int, owner: int) -> bool:
    """platform_sys_dir_uid(): root owns system directories; otherwise the user."""
    return owner in (0, uid)


def secure_path(name: str, st: os.stat_result, home: str | None, uid: int) -> str | None:
    """auth_secure_path(): None if ``name`` and its directories are safe, else the
    reason in sshd's words."""
    try:
        path = os.path.realpath(name, strict=True)
    except OSError as exc:
        return f"realpath {name} failed: {exc.strerror}"
    homedir = os.path.realpath(home) if home else None
    if not stat.S_ISREG(st.st_mode):
        return f"{path} is not a regular file"
    if not _owner_ok(uid, st.st_uid) or st.st_mode & 0o022:
        return f"bad ownership or modes for file {path}"
    while True:
        path = os.path.dirname(path) or "/"
        try:
            dst = os.stat(path)
        except OSError:
            return f"bad ownership or modes for directory {path}"
        if not _owner_ok(uid, dst.st_uid) or dst.st_mode & 0o022:
            return f"bad ownership or modes for directory {path}"
        if homedir is not None and path == homedir:
            return None
        if path in ("/", "."):
            return None


def open_user_file(path: str, pw: pwd.struct_passwd, strict_modes: bool,
                   file_type: str) -> str | None:
    """The text of an authorized keys/principals file, or None (missing, not a
    regular file, refused by StrictModes: each logged as sshd does)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        log.debug("Could not open %s '%s': %s", file_type, path, exc.strerror)
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            log.info("User %s %s %s is not a regular file", pw.pw_name, file_type, path)
            return None
        if strict_modes:
            reason = secure_path(path, st, pw.pw_dir, pw.pw_uid)
            if reason is not None:
                log.info("Authentication refused: %s", reason)
                return None
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, 65536):
            size += len(chunk)
            if size > MAX_FILE:
                log.info("%s %s is too large; ignored", file_type, path)
                return None
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "surrogateescape")
    except OSError as exc:
        log.debug("Could not read %s '%s': %s", file_type, path, exc.strerror)
        return None
    finally:
        os.close(fd)


def percent_expand(template: str, tokens: Mapping[str, str]) -> str | None:
    """misc.c's percent_expand(): ``%%`` and the given one-letter tokens; None (with
    an error logged) for an unknown token or a lone ``%``."""
    try:
        return expand_percent(template, tokens)
    except BadPercent as exc:
        log.error("percent_expand: unknown key %%%s", exc.token)
        return None


def _safe_program(path: str, runas_uid: int) -> str | None:
    """The program of a *Command: absolute, and (safe_path()) owned by root (or, when
    pysshd is not root, by the user running it) with no group/world write on it or on
    any directory above it."""
    if not path.startswith("/"):
        return f"{path} is not an absolute path"
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"stat(\"{path}\"): {exc.strerror}"
    return secure_path(path, st, None, 0 if os.geteuid() == 0 else runas_uid)


def run_auth_command(tag: str, argv: list[str], runas: pwd.struct_passwd) -> str | None:
    """Run an AuthorizedKeysCommand/AuthorizedPrincipalsCommand; its stdout, or None
    (refused program, failure to run, non-zero exit: logged with sshd's words)."""
    command = " ".join(argv)
    reason = _safe_program(argv[0], runas.pw_uid)
    if reason is not None:
        log.error('Unsafe %s "%s": %s', tag, argv[0], reason)
        return None
    as_root = os.geteuid() == 0
    if not as_root and runas.pw_uid != os.geteuid():
        log.error("%s: can't run as user %s without root privileges", tag, runas.pw_name)
        return None
    log.debug("%s: running command \"%s\" as \"%s\"", tag, command, runas.pw_name)
    try:
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, env={}, cwd="/", timeout=COMMAND_TIMEOUT,
            user=runas.pw_uid if as_root else None, group=runas.pw_gid if as_root else None,
            extra_groups=os.getgrouplist(runas.pw_name, runas.pw_gid) if as_root else None,
            check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        log.error("%s: could not run %s: %s", tag, command, exc)
        return None
    if done.returncode != 0:
        if done.returncode < 0:
            log.error("%s %s exited on signal %d", tag, command, -done.returncode)
        else:
            log.error("%s %s returned status %d", tag, command, done.returncode)
        return None
    return done.stdout.decode("utf-8", "surrogateescape")


def command_argv(command: str, tokens: Mapping[str, str], user: str) -> list[str] | None:
    """The argv of a *Command line: words as argv_split() makes them, tokens expanded
    in the arguments (not the program); with no arguments the user name is the one
    argument, as sshd has always done. None if the line is malformed."""
    from protocol.sshd_config import split_args

    words = split_args(command)
    if not words:
        log.error("AuthorizedKeysCommand \"%s\" contains invalid quotes", command)
        return None
    argv = [words[0]]
    for word in words[1:]:
        expanded = percent_expand(word, tokens)
        if expanded is None:
            return None
        argv.append(expanded)
    if len(argv) == 1:
        argv.append(user)
    return argv
