"""The sshd_config keywords of authentication policy (UsePAM, PermitRootLogin,
AllowUsers/DenyUsers, AuthenticationMethods, the AuthorizedKeys/PrincipalsCommand ones,
...): their values checked as servconf.c does, and their ``-T`` lines. server_auth.py
enforces them.

One keyword family per module, as session_config.py and forward_policy.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from protocol.sshd_builder import _Builder, _extend, _set
from protocol.sshd_values import ConfigError, split_args

if TYPE_CHECKING:
    from protocol.sshd_options import ServerConfig

#: PermitRootLogin values; -T prints the first name of each meaning
PERMIT_ROOT_LOGIN = {"without-password": "prohibit-password",
                     "prohibit-password": "prohibit-password",
                     "forced-commands-only": "forced-commands-only", "yes": "yes", "no": "no"}
#: AuthenticationMethods names (auth2_methods_valid())
AUTH_METHODS = ("publickey", "password", "keyboard-interactive", "hostbased",
                "gssapi-with-mic", "none")


_POLICY = frozenset((
    "usepam", "permitrootlogin", "kbdinteractiveauthentication", "strictmodes",
    "permitemptypasswords", "banner", "forcecommand", "authorizedprincipalsfile",
    "authorizedkeyscommand", "authorizedkeyscommanduser", "authorizedprincipalscommand",
    "authorizedprincipalscommanduser", "allowusers", "denyusers", "allowgroups",
    "denygroups", "authenticationmethods",
))
_FLAGS = {"usepam": "use_pam", "kbdinteractiveauthentication": "kbd_interactive_authentication",
          "strictmodes": "strict_modes", "permitemptypasswords": "permit_empty_passwords"}


def _rest_of_line(rest: str) -> str:
    """ForceCommand and the *Command keywords take the whole line, as written."""
    return rest.strip(" \t")


def _policy_line(b: _Builder, keyword: str, lower: str, rest: str,
                 fatal: Callable[[str], ConfigError]) -> None:
    from protocol.sshd_match import match_user

    args = split_args(rest)
    if args is None:
        raise fatal("invalid quotes")
    value = args[0] if args else ""
    if lower in _FLAGS:
        if value.lower() not in ("yes", "no"):
            raise fatal(f'unsupported option "{value}".')
        _set(b, _FLAGS[lower], value.lower() == "yes")
    elif lower == "permitrootlogin":
        if value.lower() not in PERMIT_ROOT_LOGIN:
            raise fatal(f'unsupported option "{value}".')
        _set(b, "permit_root_login", PERMIT_ROOT_LOGIN[value.lower()])
    elif lower in ("banner", "authorizedprincipalsfile"):
        name = "banner" if lower == "banner" else "authorized_principals_file"
        _set(b, name, None if value.lower() == "none" else value)
    elif lower == "forcecommand":
        _set(b, "force_command", _rest_of_line(rest))
    elif lower in ("authorizedkeyscommand", "authorizedprincipalscommand"):
        command = _rest_of_line(rest)
        if not command.startswith("/") and command.lower() != "none":
            raise fatal(f"{keyword} must be an absolute path")
        name = lower.replace("authorized", "authorized_").replace("command", "_command")
        if name not in b.values and b.active:
            b.values[name] = None if command.lower() == "none" else command
    elif lower in ("authorizedkeyscommanduser", "authorizedprincipalscommanduser"):
        name = lower.replace("authorized", "authorized_").replace("commanduser",
                                                                  "_command_user")
        _set(b, name, value)
    elif lower in ("allowusers", "denyusers"):
        for arg in args:
            if not arg or match_user(None, None, None, arg) == -1:
                raise fatal(f'invalid {keyword} pattern: "{arg}"')
        _extend(b, "allow_users" if lower == "allowusers" else "deny_users", args)
    elif lower in ("allowgroups", "denygroups"):
        for arg in args:
            if not arg:
                raise fatal(f"empty {keyword} pattern")
        _extend(b, "allow_groups" if lower == "allowgroups" else "deny_groups", args)
    elif lower == "authenticationmethods":
        lists: list[tuple[str, ...]] = []
        for arg in args:
            if arg == "any":
                if lists or len(args) > 1:
                    raise fatal(f'"any" must appear alone in {keyword}')
                continue
            methods = tuple(arg.split(","))
            for method in methods:
                if method.split(":", 1)[0] not in AUTH_METHODS[:-1]:
                    raise ConfigError(f'Unknown authentication method "{method}" in list\n'
                                      f"{fatal(f'invalid {keyword} method list.').message}")
            lists.append(methods)
        _set(b, "authentication_methods", tuple(lists))


def _policy_dump(config: ServerConfig) -> list[str]:
    """-T lines of the policy keywords (sshd prints them in several places; tests
    compare them as a set)."""
    def yn(flag: bool) -> str:
        return "yes" if flag else "no"

    # newer sshd prints the current name, prohibit-password (9.2 its alias,
    # without-password)
    root = config.permit_root_login
    lines = [
        f"usepam {yn(config.use_pam)}",
        f"permitrootlogin {root}",
        f"kbdinteractiveauthentication {yn(config.kbd_interactive_authentication)}",
        f"strictmodes {yn(config.strict_modes)}",
        f"permitemptypasswords {yn(config.permit_empty_passwords)}",
        f"banner {config.banner or 'none'}",
        f"forcecommand {config.force_command or 'none'}",
        f"authorizedprincipalsfile {config.authorized_principals_file or 'none'}",
        f"authorizedkeyscommand {config.authorized_keys_command or 'none'}",
        f"authorizedkeyscommanduser {config.authorized_keys_command_user or 'none'}",
        f"authorizedprincipalscommand {config.authorized_principals_command or 'none'}",
        "authorizedprincipalscommanduser "
        f"{config.authorized_principals_command_user or 'none'}",
    ]
    for name, values in (("allowusers", config.allow_users), ("denyusers", config.deny_users),
                         ("allowgroups", config.allow_groups),
                         ("denygroups", config.deny_groups)):
        lines += [f"{name} {v}" for v in values]
    methods = " ".join(",".join(m) for m in config.authentication_methods) or "any"
    lines.append(f"authenticationmethods {methods}")
    return lines
