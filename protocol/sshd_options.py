"""ServerConfig: the effective sshd_config values pysshd runs with, sshd's defaults,
and their Match-block replay for one connection.

The data apart from the parser that fills it (protocol/sshd_config.py): most of pysshd
needs only this type.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from protocol.kex import kexinit as _alg
from protocol.penalty import MaxStartups, PenaltyConfig
from protocol.sshd_listen import _WILDCARDS

if TYPE_CHECKING:
    from protocol.sshd_match import ConnectionInfo

DEFAULT_PORT = 22


@dataclass(frozen=True)
class ServerConfig:
    ports: tuple[int, ...] = (DEFAULT_PORT,)
    #: (address, port or None for every Port); numeric once ``resolve_listeners`` ran
    listen_addresses: tuple[tuple[str, int | None], ...] = ()
    #: AddressFamily: any, inet or inet6
    address_family: str = "any"
    host_keys: tuple[str, ...] = ()
    authorized_keys_files: tuple[str, ...] = (".ssh/authorized_keys", ".ssh/authorized_keys2")
    pubkey_authentication: bool = True
    password_authentication: bool = True
    max_auth_tries: int = 6
    login_grace_time: int = 120
    log_level: str = "INFO"
    pid_file: str = "/run/sshd.pid"
    trusted_user_ca_keys: str | None = None
    revoked_keys: str | None = None
    accept_env: tuple[str, ...] = ()
    # algorithm keywords (protocol/kex/kexinit.py) and host keys (protocol/host_keys.py)
    ciphers: tuple[str, ...] = _alg.SERVER_DEFAULT_CIPHERS
    macs: tuple[str, ...] = _alg.SERVER_DEFAULT_MACS
    kex_algorithms: tuple[str, ...] = _alg.SERVER_DEFAULT_KEX
    host_key_algorithms: tuple[str, ...] = _alg.SERVER_DEFAULT_HOST_KEY_ALGORITHMS
    pubkey_accepted_algorithms: tuple[str, ...] = _alg.SERVER_DEFAULT_PUBKEY_ALGORITHMS
    ca_signature_algorithms: tuple[str, ...] = _alg.SERVER_DEFAULT_CA_SIGNATURE_ALGORITHMS
    host_certificates: tuple[str, ...] = ()
    host_key_agent: str | None = None
    # authentication policy (protocol/server_auth.py)
    use_pam: bool = False
    permit_root_login: str = "prohibit-password"
    kbd_interactive_authentication: bool = True
    strict_modes: bool = True
    permit_empty_passwords: bool = False
    banner: str | None = None
    force_command: str | None = None
    authorized_principals_file: str | None = None
    authorized_keys_command: str | None = None
    authorized_keys_command_user: str | None = None
    authorized_principals_command: str | None = None
    authorized_principals_command_user: str | None = None
    allow_users: tuple[str, ...] = ()
    deny_users: tuple[str, ...] = ()
    allow_groups: tuple[str, ...] = ()
    deny_groups: tuple[str, ...] = ()
    #: AuthenticationMethods lists, each a tuple of methods; () is "any"
    authentication_methods: tuple[tuple[str, ...], ...] = ()
    # forwarding (protocol/forward_policy.py; None permits: any)
    allow_tcp_forwarding: str = "yes"
    allow_streamlocal_forwarding: str = "yes"
    allow_agent_forwarding: bool = True
    disable_forwarding: bool = False
    gateway_ports: int = 0
    permit_open: tuple[str, ...] | None = None
    permit_listen: tuple[str, ...] | None = None
    # pre-auth limits (protocol/penalty.py, enforced by protocol/listener.py)
    max_startups: MaxStartups = field(default_factory=MaxStartups)
    per_source_penalties: PenaltyConfig = field(default_factory=PenaltyConfig)
    per_source_penalty_exempt_list: str | None = None
    per_source_net_block_size: tuple[int, int] = (32, 128)
    per_source_max_startups: int | None = None
    # sessions (protocol/session_config.py, protocol/server_session.py)
    max_sessions: int = 10
    print_motd: bool = True
    permit_tty: bool = True
    permit_user_rc: bool = True
    permit_user_environment: str = "no"
    subsystems: tuple[tuple[str, str], ...] = ()
    client_alive_interval: int = 0
    client_alive_count_max: int = 3
    #: (line, path, number) from the first Match line on, replayed per connection
    match_lines: tuple[tuple[str, str, int], ...] = field(default=(), compare=False)
    #: warnings met while parsing (unimplemented keywords), to log once at start
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def for_connection(self, ci: ConnectionInfo) -> ServerConfig:
        """This configuration with the Match blocks that ``ci`` matches applied
        (parse_server_match_config()). Raises ConfigError for a Match line sshd refuses
        at that point (a criterion the ``-T`` spec lacks)."""
        # the parser imports this module: import it when first replaying
        from protocol.sshd_builder import _Builder
        from protocol.sshd_config import process_line

        if not self.match_lines:
            return self
        b = _Builder()
        b.active = False
        b.connection = ci
        for line, path, number in self.match_lines:
            process_line(b, line, path, number)
        overlay = dict(b.values)
        overlay.update({name: tuple(items) for name, items in b.lists.items() if items})
        if "subsystems" in overlay:
            overlay["subsystems"] = _merge_subsystems(self.subsystems, overlay["subsystems"])
        return replace(self, **overlay)  # type: ignore[arg-type]

    def listeners(self) -> list[tuple[str, int]]:
        """Every (address, port) to bind: sshd's default is all addresses."""
        addresses = self.listen_addresses or _WILDCARDS[self.address_family]
        out: list[tuple[str, int]] = []
        for host, port in addresses:
            for p in (port,) if port is not None else self.ports:
                out.append((host, p))
        return out


def _merge_subsystems(base: tuple[tuple[str, str], ...],
                      matched: object) -> tuple[tuple[str, str], ...]:
    """servconf_merge_subsystems(): a Subsystem of a matching Match block replaces the
    global one of that name, or is added after them."""
    assert isinstance(matched, tuple)
    merged = dict(base)
    for name, command in matched:
        merged[name] = command
    return tuple(merged.items())
