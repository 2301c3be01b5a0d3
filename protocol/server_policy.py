"""Who may log in and how: sshd's allowed_user(), auth_root_allowed(), the
AuthenticationMethods lists (auth2.c) and the minimum delay of a failed attempt.

The log lines are sshd's ("User x from y not allowed because listed in DenyUsers",
"ROOT LOGIN REFUSED FROM ...", "Partial publickey for ..."), so log readers and
fail2ban-style filters keep working.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import pwd
import time
from dataclasses import dataclass, field

from keytools.match import match_pattern
from protocol.sshd_config import ServerConfig
from protocol.sshd_match import match_user, user_groups

log = logging.getLogger("pyssh.sshd")

#: the methods pysshd offers, in the order sshd lists them in USERAUTH_FAILURE
METHOD_ORDER = ("publickey", "password", "keyboard-interactive")


def allowed_user(config: ServerConfig, pw: pwd.struct_passwd, host: str, address: str) -> bool:
    """allowed_user(): shell, DenyUsers, AllowUsers, DenyGroups, AllowGroups."""
    name = pw.pw_name
    if not config.use_pam and _locked(name):
        log.info("User %s not allowed because account is locked", name)
        return False
    shell = pw.pw_shell or "/bin/sh"
    try:
        st = os.stat(shell)
    except OSError:
        log.info("User %s not allowed because shell %s does not exist", name, shell)
        return False
    import stat

    if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o111:
        log.info("User %s not allowed because shell %s is not executable", name, shell)
        return False
    for pattern in config.deny_users:
        if match_user(name, host, address, pattern) != 0:
            log.info("User %s from %s not allowed because listed in DenyUsers", name, host)
            return False
    if config.allow_users and not any(match_user(name, host, address, pattern) == 1
                                      for pattern in config.allow_users):
        log.info("User %s from %s not allowed because not listed in AllowUsers", name, host)
        return False
    if config.deny_groups or config.allow_groups:
        groups = user_groups(name)
        if not groups:
            log.info("User %s from %s not allowed because not in any group", name, host)
            return False
        if _any_group(groups, config.deny_groups):
            log.info("User %s from %s not allowed because a group is listed in DenyGroups",
                     name, host)
            return False
        if config.allow_groups and not _any_group(groups, config.allow_groups):
            log.info("User %s from %s not allowed because none of user's groups are listed "
                     "in AllowGroups", name, host)
            return False
    return True


def _any_group(groups: list[str], patterns: tuple[str, ...]) -> bool:
    """ga_match(): one of the groups matches one of the (single) patterns."""
    return any(match_pattern(g, p) for g in groups for p in patterns)


def _locked(user: str) -> bool:
    """platform_locked_account(): a shadow hash starting with ``!`` (usermod -L,
    passwd -l). Only readable as root; otherwise the account counts as unlocked."""
    from protocol.password import _shadow_entry

    stored = _shadow_entry(user)
    return stored is not None and stored.startswith(b"!")


def root_allowed(config: ServerConfig, method: str, forced_command: bool, address: str,
                 port: int) -> bool:
    """auth_root_allowed() for a successful ``method`` as uid 0."""
    mode = config.permit_root_login
    if mode == "yes":
        return True
    if mode == "prohibit-password" and method in ("publickey", "hostbased",
                                                  "gssapi-with-mic"):
        return True
    if mode == "forced-commands-only" and forced_command:
        log.info("Root login accepted for forced command.")
        return True
    log.info("ROOT LOGIN REFUSED FROM %s port %d", address, port)
    return False


@dataclass
class MethodLists:
    """The AuthenticationMethods lists still to complete for one connection."""

    lists: list[list[str]] = field(default_factory=list)
    configured: bool = False

    @classmethod
    def from_config(cls, config: ServerConfig) -> MethodLists:
        return cls([list(m) for m in config.authentication_methods],
                   bool(config.authentication_methods))

    def allowed(self, method: str) -> bool:
        """auth2_method_allowed(): some list starts with ``method``."""
        if not self.configured:
            return True
        return any(lst and lst[0].split(":", 1)[0] == method for lst in self.lists)

    def complete(self, method: str) -> bool:
        """auth2_update_methods_lists(): take ``method`` off the lists that start with
        it; True when one of them is now empty (authentication is complete)."""
        if not self.configured:
            return True
        for lst in self.lists:
            if lst and lst[0].split(":", 1)[0] == method:
                lst.pop(0)
                if not lst:
                    return True
        return False


def enabled_methods(config: ServerConfig) -> dict[str, bool]:
    return {"publickey": config.pubkey_authentication,
            "password": config.password_authentication,
            "keyboard-interactive": config.kbd_interactive_authentication}


def check_methods(config: ServerConfig) -> tuple[list[str], bool]:
    """sshd's start-up check of AuthenticationMethods: a "Disabled method" message for
    each list (in order) that uses a disabled method, until one uses only enabled
    ones; the bool says whether none does (then the messages end with sshd's fatal)."""
    if not config.authentication_methods:
        return [], False
    enabled = enabled_methods(config)
    lines: list[str] = []
    for lst in config.authentication_methods:
        off = [m for m in lst if not enabled.get(m.split(":", 1)[0], False)]
        if not off:
            return lines, False
        lines.append(f'Disabled method "{off[0]}" in AuthenticationMethods list '
                     f'"{",".join(lst)}"')
    lines.append("AuthenticationMethods cannot be satisfied by enabled authentication "
                 "methods")
    return lines, True


_SECRET = os.urandom(32)


def user_delay(user: str) -> float:
    """user_specific_delay(): 5 to ~9 ms, fixed per user name for this process, so
    failures take the same time for a user whether the user exists or not."""
    digest = hmac.new(_SECRET, user.encode("utf-8", "surrogateescape"), hashlib.sha512)
    return 0.005 + int.from_bytes(digest.digest()[:4], "big") / 2**32 * 0.0045


async def ensure_minimum_time_since(start: float, seconds: float) -> None:
    """Wait until ``seconds`` have passed since ``start`` (doubling the floor until it
    exceeds the time already spent, as sshd does, so a slow check does not show)."""
    elapsed = time.monotonic() - start
    while seconds < elapsed:
        seconds *= 2
    await asyncio.sleep(seconds - elapsed)
