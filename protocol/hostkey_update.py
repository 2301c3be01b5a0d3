"""UpdateHostKeys (PROTOCOL 2.5, clientloop.c's client_input_hostkeys).

After authentication the server lists all its host keys (hostkeys-00@openssh.com). Keys
not yet in the first UserKnownHostsFile are proved (hostkeys-prove-00@openssh.com: the
server signs "hostkeys-prove-00@openssh.com", the session id and each key), then added;
keys the file lists for the host that the server no longer has are removed. As ssh, only
when the key used for this connection was found in that file as a plain key (not through
a CA, not in the global files); names are hashed with HashKnownHosts; with
UpdateHostKeys=ask the user confirms.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence

from keytools.errors import SshError
from keytools.public import PublicKey
from keytools.wire import Reader, Writer
from protocol.channels import ConnectionLayer, GlobalReply
from protocol.hostkey_policy import HostKeyPolicy
from protocol.ssh_log import Log

HOSTKEYS = "hostkeys-00@openssh.com"
PROVE = "hostkeys-prove-00@openssh.com"
#: A server listing more keys than this is ignored.
MAX_KEYS = 64


def _fp(key: PublicKey) -> str:
    from keytools.fingerprint import fingerprint

    return fingerprint(key)


def prove_data(session_id: bytes, key: PublicKey) -> bytes:
    """What the server signs to prove it holds ``key``."""
    return Writer().string(PROVE).string(session_id).string(key.blob()).getvalue()


class HostKeyUpdater:
    def __init__(self, layer: ConnectionLayer, policy: HostKeyPolicy, mode: str,
                 allowed: Collection[str], log: Log,
                 confirm: Callable[[str], str] | None = None) -> None:
        self.layer = layer
        self.policy = policy
        self.mode = mode  # "true" or "ask"
        self.allowed = allowed  # the key types HostKeyAlgorithms allows (plain names)
        self.log = log
        self.confirm = confirm
        self.seen = False
        #: the update in progress (tests and callers may await it)
        self.task: asyncio.Task[None] | None = None

    def install(self) -> None:
        self.layer.global_handlers[HOSTKEYS] = self.on_hostkeys

    def on_hostkeys(self, r: Reader) -> GlobalReply:
        if self.seen:
            raise SshError("server already sent hostkeys")
        self.seen = True
        keys: list[PublicKey] = []
        from keytools.public import decode_public_blob

        while r.remaining:
            try:
                key = decode_public_blob(r.string())
            except SshError as exc:
                self.log.debug(f"client_input_hostkeys: parse key: {exc}")
                continue
            if key.is_certificate or any(k.blob() == key.blob() for k in keys):
                continue
            if key.plain.key_type not in self.allowed:
                self.log.debug(f"client_input_hostkeys: {key.type_label} key not permitted "
                               "by HostkeyAlgorithms")
                continue
            keys.append(key)
            if len(keys) > MAX_KEYS:
                return None
        if self.policy.verified != "user":
            self.log.debug("client_input_hostkeys: host key not verified in "
                           "UserKnownHostsFile; skipping UpdateHostkeys")
            return None
        self.task = asyncio.ensure_future(self._update(keys))
        return None

    async def _update(self, keys: list[PublicKey]) -> None:
        from keytools.known_hosts import Marker, load_host_keys

        policy = self.policy
        path = policy.user_files[0]
        try:
            lines = [ln for ln in load_host_keys(path, policy.hostname, policy.port)
                     if ln.marker is Marker.NONE and ln.key is not None]
        except SshError:
            return
        known = {ln.key.blob() for ln in lines if ln.key is not None}
        new = [k for k in keys if k.blob() not in known]
        offered = {k.blob() for k in keys}
        old = [ln for ln in lines if ln.key is not None and ln.key.blob() not in offered]
        if not new and not old:
            self.log.debug("client_input_hostkeys: no new or deprecated keys from server")
            return
        verified: list[PublicKey] = []
        if new:
            data = b"".join(Writer().string(k.blob()).getvalue() for k in new)
            try:
                reply = await self.layer.global_request(PROVE, data, want_reply=True)
            except SshError:
                return
            if reply is None:
                self.log.error("Server failed to confirm ownership of private host keys")
                return
            r = Reader(reply)
            session_id = self.layer.transport.session_id
            try:
                for key in new:
                    signature = r.string()
                    key.verify(prove_data(session_id, key), signature)
                    verified.append(key)
                r.end()
            except SshError:
                self.log.error("server gave bad signature for "
                               f"{new[len(verified)].type_label} key {len(verified)}")
                return
        self._write(path, verified, old)

    def _write(self, path: str, new: list[PublicKey], old: Sequence[object]) -> None:
        from keytools.known_hosts import HostLine, open_lines
        from keytools.known_hosts_edit import format_host_entry, replace_file

        policy = self.policy
        level = self.log.info if self.mode == "ask" else self.log.verbose
        if self.mode == "ask":
            level("The server has updated its host keys.")
            level("These changes were verified by the server's existing trusted key.")
        for key in new:
            level(f"Learned new hostkey: {key.type_label} {_fp(key)}")
        for line in old:
            assert isinstance(line, HostLine) and line.key is not None
            level(f"Deprecating obsolete hostkey: {line.key.type_label} {_fp(line.key)}")
        if self.mode == "ask":
            answer = self.confirm("Accept updated hostkeys? (yes/no): ") if self.confirm \
                else ""
            if answer.strip().lower() != "yes":
                return
        drop = {line.number for line in old if isinstance(line, HostLine)}
        try:
            current = [text.rstrip("\n") for text in open_lines(path)]
        except (SshError, OSError):
            return
        kept = [text for n, text in enumerate(current, 1) if n not in drop]
        for key in new:
            kept += format_host_entry(policy.name, key, hashed=policy.hash_known_hosts)
        try:
            replace_file(path, kept)
        except SshError as exc:
            self.log.error(f"hostfile_replace_entries failed for {path}: {exc}")
