"""``pysshd -T [-C spec]``: the effective configuration, one keyword a line as sshd
prints it, after replaying the Match blocks for the spec's connection.

Output only: apart from the parser, which never needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol.forward_policy import dump_policy, policy_of
from protocol.penalty import dump_limits, penalties_text
from protocol.session_config import dump_session
from protocol.sshd_auth_keywords import _policy_dump

if TYPE_CHECKING:
    from protocol.sshd_options import ServerConfig

def _listen_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def dump_config(config: ServerConfig) -> str:
    """``-T``: the effective values of the implemented keywords, as sshd prints them."""
    lines = [f"port {p}" for p in config.ports]
    lines.append(f"addressfamily {config.address_family}")
    lines += [f"listenaddress {_listen_text(h, p)}" for h, p in config.listeners()]
    lines += [
        f"logingracetime {config.login_grace_time}",
        f"maxauthtries {config.max_auth_tries}",
        f"pubkeyauthentication {'yes' if config.pubkey_authentication else 'no'}",
        f"passwordauthentication {'yes' if config.password_authentication else 'no'}",
        f"pidfile {config.pid_file}",
        f"trustedusercakeys {config.trusted_user_ca_keys or 'none'}",
        f"revokedkeys {config.revoked_keys or 'none'}",
        f"loglevel {config.log_level}",
        f"authorizedkeysfile {' '.join(config.authorized_keys_files) or 'none'}",
    ]
    lines += [f"ciphers {','.join(config.ciphers)}", f"macs {','.join(config.macs)}",
              f"hostkeyagent {config.host_key_agent or 'none'}",
              f"kexalgorithms {','.join(config.kex_algorithms)}",
              f"casignaturealgorithms {','.join(config.ca_signature_algorithms)}",
              f"hostkeyalgorithms {','.join(config.host_key_algorithms)}",
              f"pubkeyacceptedalgorithms {','.join(config.pubkey_accepted_algorithms)}"]
    lines += [f"hostkey {k}" for k in config.host_keys]
    lines += [f"hostcertificate {c}" for c in config.host_certificates]
    lines += [f"acceptenv {e}" for e in config.accept_env]
    lines += _policy_dump(config)
    lines += dump_policy(policy_of(config))
    lines += dump_session(config)
    limits = dump_limits(config)
    if not any(line.startswith("persourcepenalties ") for line in limits):
        # OpenSSH 9.8+ always prints these (the form is 10.0's)
        limits += [f"persourcepenalties {penalties_text(config.per_source_penalties)}",
                   "persourcepenaltyexemptlist "
                   f"{config.per_source_penalty_exempt_list or 'none'}"]
    lines += limits
    return "\n".join(lines) + "\n"


def dump_for_spec(config: ServerConfig, spec: str | None) -> str:
    """``-T [-C spec]``: sshd always replays the Match blocks in test mode, against
    the spec's connection (or an empty one: then no criterion matches)."""
    from protocol.sshd_match import ConnectionInfo, parse_test_spec

    ci = parse_test_spec(spec) if spec is not None else ConnectionInfo(test=True)
    return dump_config(config.for_connection(ci))
