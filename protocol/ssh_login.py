"""pyssh's connection set-up: the transport (TCP from BindAddress, ProxyCommand or
ProxyJump), the keys offered (after the key exchange, with session-bind to the agent),
and user authentication with ssh's options and prompts.

``login`` is what ``ssh_main.session_main`` calls; ``auth_options`` and ``dump_lines``
turn the resolved ssh_config into ``protocol.auth.AuthOptions`` and ``ssh -G`` lines.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from keytools.errors import ConnectionClosed, SshError
from protocol.agent_keys import KeySource, collect_keys, session_binding
from protocol.auth import DEFAULT_PREFERRED, AuthOptions
from protocol.client import Connection, HandshakeTimeout, connect
from protocol.errors import ConnectFailed
from protocol.hostkey_policy import HostKeyPolicy
from protocol.ssh_config import Resolved, expand_tokens, tilde_expand
from protocol.ssh_log import Log

if TYPE_CHECKING:
    from protocol.ssh_proxy import Jump

DEFAULT_USER_KNOWN_HOSTS = "~/.ssh/known_hosts"
#: How the transport words a peer gone before its version line.
_EARLY_CLOSE = ("Connection closed by remote host", "Connection reset by peer", "Broken pipe")


class LoginError(SshError):
    """A failure whose message is ssh's exact text (possibly several lines)."""


def _value(r: Resolved, key: str) -> str | None:
    got = r.values.get(key)
    return got[0] if got else None


def _yes(r: Resolved, key: str, default: bool) -> bool:
    value = _value(r, key)
    if value is None:
        return default
    return value.lower() in ("yes", "true")


def auth_options(r: Resolved) -> AuthOptions:
    preferred = _value(r, "preferredauthentications")
    prompts = _value(r, "numberofpasswordprompts")
    pubkey = (_value(r, "pubkeyauthentication") or "yes").lower()
    return AuthOptions(
        preferred=tuple(preferred.split(",")) if preferred else DEFAULT_PREFERRED,
        pubkey=pubkey not in ("no", "false"),
        hostbound=pubkey != "unbound",
        password=_yes(r, "passwordauthentication", True),
        kbd_interactive=_yes(r, "kbdinteractiveauthentication", True),
        batch_mode=r.batch_mode,
        password_prompts=int(prompts) if prompts is not None else 3,
        kbd_devices=_value(r, "kbdinteractivedevices") or "",
        host=r.hostname,
    )


_ADD_KEYS_MODES = {"yes": "yes", "true": "yes", "no": "no", "false": "no", "ask": "ask",
                   "confirm": "confirm"}


def parse_add_keys(args: list[str], where: str) -> tuple[str, int]:
    """readconf.c's AddKeysToAgent: yes/no/ask/confirm, "confirm <time>" or a bare time
    (yes, with that lifetime); (mode, lifetime in seconds, 0 for none). ConfigError in
    ssh's words."""
    from keytools.cert_validity import convtime
    from protocol.ssh_config import ConfigError

    mode = _ADD_KEYS_MODES.get(args[0].lower())
    extra = args[1] if len(args) > 1 else None
    if mode == "confirm" and extra is not None:
        seconds = convtime(extra)
        if seconds is None or seconds > 2**31 - 1:
            raise ConfigError(f"{where}: invalid time value.")
        return mode, seconds
    if mode is None and extra is None:
        seconds = convtime(args[0])
        if seconds is None or seconds > 2**31 - 1:
            raise ConfigError(f"{where}: unsupported option")
        return "yes", seconds
    if mode is None or extra is not None:
        raise ConfigError(f"{where}: unsupported option")
    return mode, 0


def add_keys_to_agent(r: Resolved) -> tuple[str, int]:
    """AddKeysToAgent as resolved: (no/yes/ask/confirm, lifetime seconds or 0)."""
    args = r.values.get("addkeystoagent")
    return parse_add_keys(args, "") if args else ("no", 0)


def update_host_keys(r: Resolved) -> str:
    """UpdateHostKeys as ssh settles its default: yes only while the user known_hosts
    file is the default one."""
    value = _value(r, "updatehostkeys")
    if value is not None:
        return {"yes": "true", "no": "false"}.get(value.lower(), value.lower())
    files = r.values.get("userknownhostsfile")
    return "true" if not files or files == [DEFAULT_USER_KNOWN_HOSTS] else "false"


def jump(r: Resolved) -> Jump | None:
    value = _value(r, "proxyjump")
    if value is None:
        return None
    from protocol.ssh_proxy import Jump, parse_jump

    parsed = parse_jump(value)
    return parsed if isinstance(parsed, Jump) else None


def proxy_command(r: Resolved) -> str | None:
    """ProxyCommand as written, or None ("none" or unset)."""
    value = _value(r, "proxycommand")
    return None if value is None or value.lower() == "none" else value


def dump_lines(r: Resolved) -> dict[str, list[str]]:
    """``ssh -G`` lines of these keywords; ``ssh_config.dump`` puts them in ssh's order."""
    pubkey = (_value(r, "pubkeyauthentication") or "yes").lower()
    add, lifetime = add_keys_to_agent(r)
    add_line = "addkeystoagent " + ({"yes": "true", "no": "false"}.get(add, add)
                                    if lifetime <= 0 else
                                    ("confirm " if add == "confirm" else "") + str(lifetime))
    lines = {
        "hashknownhosts": [f"hashknownhosts {'yes' if _yes(r, 'hashknownhosts', False) else 'no'}"],
        "kbdinteractiveauthentication": [
            f"kbdinteractiveauthentication "
            f"{'yes' if _yes(r, 'kbdinteractiveauthentication', True) else 'no'}"],
        "passwordauthentication": [
            f"passwordauthentication {'yes' if _yes(r, 'passwordauthentication', True) else 'no'}"],
        "pubkeyauthentication": [
            f"pubkeyauthentication {({'yes': 'true', 'no': 'false'}).get(pubkey, pubkey)}"],
        "updatehostkeys": [f"updatehostkeys {update_host_keys(r)}"],
        "numberofpasswordprompts": [
            f"numberofpasswordprompts {_value(r, 'numberofpasswordprompts') or 3}"],
        "certificatefile": [f"certificatefile {f}" for f in r.values.get("certificatefile", [])],
        "addkeystoagent": [add_line],
    }
    from protocol.ssh_canon import dump_lines as canonical_lines

    lines.update(canonical_lines(r.values))
    devices = _value(r, "kbdinteractivedevices")
    if devices is not None:
        lines["kbdinteractivedevices"] = [f"kbdinteractivedevices {devices}"]
    preferred = _value(r, "preferredauthentications")
    if preferred is not None:
        lines["preferredauthentications"] = [f"preferredauthentications {preferred}"]
    command, hops = proxy_command(r), jump(r)
    if command is not None:
        lines["proxy"] = [f"proxycommand {command}"]
    elif hops is not None:
        lines["proxy"] = [f"proxyjump {hops.text()}"]
    return lines


def _tokens(r: Resolved) -> dict[str, str]:
    import socket

    from protocol.ssh_config import home_dir, local_user

    try:
        local_host = socket.gethostname()
    except OSError:
        local_host = "localhost"
    return {"h": r.hostname, "p": str(r.port), "r": r.user, "n": r.host, "u": local_user(),
            "d": home_dir(), "i": str(os.getuid()), "l": local_host,
            "L": local_host.split(".")[0]}


def certificate_paths(r: Resolved) -> tuple[str, ...]:
    tokens = _tokens(r)
    return tuple(expand_tokens(tilde_expand(f), tokens)
                 for f in r.values.get("certificatefile", []))


def agent_socket(r: Resolved) -> str | None:
    """IdentityAgent: a path, SSH_AUTH_SOCK (the default), $VARIABLE, or none."""
    agent = r.identity_agent
    if agent is None or agent == "SSH_AUTH_SOCK":
        return os.environ.get("SSH_AUTH_SOCK")
    if agent == "none":
        return None
    if agent.startswith("$"):
        return os.environ.get(agent[1:].strip("{}"))
    return agent


def forward_agent_target(r: Resolved) -> tuple[bool, str | None]:
    """(forward the agent?, the socket) as ssh.c settles ForwardAgent: a socket path given
    to ForwardAgent (a legacy "$VAR" read now; unset: no forwarding), else the agent
    pyssh itself uses (IdentityAgent, else SSH_AUTH_SOCK). As ssh, nothing is forwarded
    when that agent of pyssh's own cannot be reached, even with a ForwardAgent path."""
    if not _yes(r, "forwardagent", False):
        return False, None
    own = agent_socket(r)
    if own is None or not _agent_present(own):
        return False, None  # ssh.c check_agent_present: no agent of our own, no forwarding
    path = r.forward_agent_path
    if path is not None and path.startswith("$"):
        path = os.environ.get(path[1:])
        if path is None:
            return False, None
    return True, own if path is None else path


def _agent_present(path: str) -> bool:
    import socket

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(path)
    except OSError:
        return False
    return True


def _fingerprint(key: object) -> str:
    from keytools.fingerprint import fingerprint
    from keytools.public import PublicKey

    assert isinstance(key, PublicKey)
    return fingerprint(key)


def key_provider(r: Resolved, log: Log, sources: list[KeySource]) -> Callable[[Any], Any]:
    """pubkey_prepare, run once the key exchange is done (the agent can be bound)."""
    from protocol.ssh_prompt import read_passphrase

    def provide(transport: object) -> Sequence[object]:
        agent_path = agent_socket(r)
        # The binding is for the agent only (and needs agent.messages): none, none asked.
        binding = session_binding(transport) if agent_path and agent_path != "none" else None
        source = collect_keys(
            r.identity_paths, identities_only=r.identities_only,
            agent_socket=agent_path, explicit=frozenset(), log=log,
            ask=None if r.batch_mode else read_passphrase,
            certificate_paths=certificate_paths(r), binding=binding,
            batch_mode=r.batch_mode, password_prompts=auth_options(r).password_prompts,
            add_keys_to_agent=add_keys_to_agent(r))
        sources.append(source)
        if not auth_options(r).pubkey:
            return []
        for signer in source.signers:
            where = " agent" if signer.from_agent else ""
            log.debug(f"Will attempt key: {signer.comment} {signer.key.type_label} "
                      f"{_fingerprint(signer.key)}{where}")
        return source.signers

    return provide


def _hostkey_updates(r: Resolved, log: Log, policy: HostKeyPolicy,
                     transport_config: object) -> Callable[[Any], None] | None:
    """UpdateHostKeys: the hostkeys-00@openssh.com handler, installed before auth ends."""
    mode = update_host_keys(r)
    if mode not in ("true", "ask") or not policy.user_files:
        return None
    from protocol.hostkey_update import HostKeyUpdater
    from protocol.kex.hostkey import CERT_SUFFIX
    from protocol.ssh_prompt import read_passphrase
    from protocol.transport import TransportConfig

    assert isinstance(transport_config, TransportConfig)
    allowed = {"ssh-rsa" if a.startswith("rsa-sha2-") else a
               for a in transport_config.algorithms.host_key if not a.endswith(CERT_SUFFIX)}

    def install(layer: Any) -> None:
        HostKeyUpdater(layer, policy, mode, allowed, log,
                       confirm=lambda prompt: read_passphrase(prompt, True)).install()

    return install


async def _proxy_streams(r: Resolved, *, config_file: str | None, verbose: int) -> tuple[
        Any, Callable[[], Awaitable[None]]] | None:
    command = proxy_command(r)
    hops = jump(r)
    if command is None and hops is None:
        return None
    from protocol.ssh_proxy import check_jump_loop, jump_command, spawn_proxy

    if command is None and hops is not None:
        check_jump_loop(hops, r.hostname, r.port, r.user)
        command = jump_command(hops, config_file=config_file, verbose=verbose)
    if command is None:
        return None
    tokens = _tokens(r)
    expanded = expand_tokens(command, {k: tokens[k] for k in "hpnr"})
    return await spawn_proxy(expanded)


async def login(r: Resolved, log: Log, *, policy: HostKeyPolicy, transport_config: object,
                addresses: Callable[[], list[str]], config_file: str | None = None,
                verbose: int = 0) -> tuple[Connection, str]:
    """Connect (directly, trying each address in turn, or through the proxy), check the
    host key with ``policy``, authenticate; (connection, address). Raises SshError."""
    from protocol.ssh_prompt import SshAuthUI

    policy.hash_known_hosts = _yes(r, "hashknownhosts", False)
    host_key_check = policy.check

    sources: list[KeySource] = []
    provide = key_provider(r, log, sources)
    ui = SshAuthUI(log)
    options = auth_options(r)
    timeout = None if r.connect_timeout is None else float(r.connect_timeout)

    async def attempt(address: str, **extra: Any) -> Connection:
        try:
            return await connect(
                address, r.port, username=r.user, known_host_check=host_key_check,
                config=transport_config, timeout=timeout,  # type: ignore[arg-type]
                auth_options=options, ui=ui, key_provider=provide,
                setup=_hostkey_updates(r, log, policy, transport_config), **extra)
        except HandshakeTimeout as exc:
            where = "UNKNOWN port 65535" if "streams" in extra else f"{exc.host} port {exc.port}"
            raise LoginError(f"Connection timed out during banner exchange\r\n"
                             f"Connection to {where} timed out") from None
        finally:
            for source in sources:
                source.close()
            sources.clear()

    proxy = await _proxy_streams(r, config_file=config_file, verbose=verbose)
    if proxy is not None:
        from protocol.ssh_proxy import ProxyError

        streams, stop = proxy
        log.debug(f"Executing proxy command for {r.hostname} port {r.port}")
        try:
            return await attempt(r.hostname, streams=streams, on_close=stop), "UNKNOWN"
        except ConnectionClosed as exc:
            # ssh names a proxied peer "UNKNOWN port 65535" (no socket address).
            lines = ["Connection closed by UNKNOWN port 65535"]
            if exc.message in _EARLY_CLOSE:  # before the banner: the proxy went away
                lines.insert(0, "kex_exchange_identification: Connection closed by remote host")
            raise ProxyError("\r\n".join(lines)) from None
    found = addresses()
    for n, address in enumerate(found, 1):
        log.debug(f"Connecting to {r.hostname} [{address}] port {r.port}.")
        try:
            return await attempt(address, local_address=r.bind_address), address
        except ConnectFailed as exc:
            if n == len(found):
                raise
            log.debug(f"connect to address {address} port {r.port}: {exc.reason}")
    raise SshError("no addresses")
