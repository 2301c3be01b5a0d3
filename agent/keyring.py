"""The in-memory key store: an ``Agent`` holding decoded private keys with their
constraints (lifetime, confirm, max-signatures, destinations), lock and unlock.

Named for what it is; it has nothing to do with the ``keyring`` package. Thread-safe:
state changes hold one lock, signatures are made outside it so slow RSA signatures on
one connection do not hold up another. ``connection()`` gives each daemon client its own
view with its session-bind@openssh.com state.
"""

from __future__ import annotations

import builtins
import hmac
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from agent.askpass import ask_permission
from agent.errors import AgentError, AgentExtensionFailure, AgentLocked
from agent.interface import Agent, Constraints, DestinationConstraint, Identity, SmartcardBackend
from agent.match import match_pattern_list
from agent.restrict import ConnectionState, Permission, identity_permitted, parse_userauth_request
from agent.signflags import SSH_AGENT_RSA_SHA2_256, SSH_AGENT_RSA_SHA2_512
from keytools.errors import SshError
from keytools.private import PrivateKey, SkEcdsaPrivate, SkEd25519Private
from keytools.public import PublicKey, RsaPublic

#: OpenSSH's DEFAULT_ALLOWED_PROVIDERS for ssh-agent -P.
DEFAULT_ALLOWED_PROVIDERS = "/usr/lib*/*,/usr/local/lib*/*"
#: ssh-agent's lock: bcrypt_pbkdf with one round into 32 bytes, 16-byte salt.
LOCK_ROUNDS = 1
LOCK_SIZE = 32
LOCK_SALT_SIZE = 16
#: Failed unlocks wait 0.1 s more each time, up to 10 s (as ssh-agent).
UNLOCK_DELAY_STEP = 0.1
UNLOCK_MAX_FAILS = 100
#: Extensions this agent answers, as the ``query`` reply lists them.
#: (agent.messages.EXT_SESSION_BIND and EXT_QUERY; spelt out so that a file key's
#: in-process KeyRing does not import the wire messages.)
SUPPORTED_EXTENSIONS = ["session-bind@openssh.com", "query"]


@dataclass(frozen=True)
class ConfirmRequest:
    """What a -c confirmation asks about: the key, and where the signature goes."""

    identity: Identity
    fingerprint: str
    prompt: str
    user: str | None = None
    host: str | None = None
    forward_host: str | None = None


Confirmer = Callable[[ConfirmRequest], bool]


def askpass_confirmer(request: ConfirmRequest) -> bool:
    """Ask through SSH_ASKPASS (SSH_ASKPASS_PROMPT=confirm), as ssh-agent does."""
    return ask_permission(request.prompt)


@dataclass
class _Entry:
    key: PrivateKey
    public: PublicKey
    comment: str
    confirm: bool
    death: float | None
    max_signatures: int | None
    destinations: tuple[DestinationConstraint, ...]
    provider: str | None = None
    signatures: int = 0


def _lock_hash(passphrase: bytes, salt: bytes) -> bytes:
    import bcrypt

    return bytes(bcrypt.kdf(passphrase, salt, LOCK_SIZE, LOCK_ROUNDS, ignore_few_rounds=True))


def _sign_algorithm(key: PrivateKey, flags: int) -> str | None:
    """agent_decode_alg: RSA keys (in files or on tokens) sign SHA-1 unless the flags
    ask for SHA-2."""
    if not isinstance(key.public.plain, RsaPublic):
        return None
    if flags & SSH_AGENT_RSA_SHA2_256:
        return "rsa-sha2-256"
    if flags & SSH_AGENT_RSA_SHA2_512:
        return "rsa-sha2-512"
    return "ssh-rsa"


def _uncertified(key: PrivateKey) -> PrivateKey:
    """The plain key of a CertifiedPrivate, else ``key``. (A CertifiedPrivate exists only
    once agent.certkey is loaded, so a file key's KeyRing need not import it.)"""
    certkey = sys.modules.get("agent.certkey")
    if certkey is not None and isinstance(key, certkey.CertifiedPrivate):
        return cast(PrivateKey, key.key)
    return key


class KeyRing:
    """The agent's keys. Implements ``Agent`` (as one implicit connection) and
    ``ConnectionAgent`` (``connection()`` for the daemon's clients)."""

    def __init__(self, *, lifetime: int | None = None, confirm: Confirmer | None = None,
                 fingerprint_hash: str = "sha256", smartcard: SmartcardBackend | None = None,
                 allowed_providers: str = DEFAULT_ALLOWED_PROVIDERS,
                 clock: Callable[[], float] = time.monotonic,
                 unlock_delay: float = UNLOCK_DELAY_STEP, restrict_websafe: bool = True,
                 allow_remote_pkcs11: bool = False) -> None:
        self.default_lifetime = lifetime
        self.confirmer: Confirmer = confirm or askpass_confirmer
        self.fingerprint_hash = fingerprint_hash
        self.smartcard = smartcard
        self.allowed_providers = allowed_providers
        #: -O no-restrict-websafe / allow-remote-pkcs11; kept for FIDO and forwarded
        #: PKCS#11 adds (FIDO keys are refused outright by this agent).
        self.restrict_websafe = restrict_websafe
        self.allow_remote_pkcs11 = allow_remote_pkcs11
        self._clock = clock
        self._unlock_delay = unlock_delay
        self._entries: dict[bytes, _Entry] = {}
        self._lock = threading.RLock()
        self._unlock_lock = threading.Lock()  # failed unlocks queue, as one agent would
        self._locked_hash: bytes | None = None
        self._lock_salt = b""
        self._fail_count = 0
        self._own = ConnectionState()

    # --- housekeeping ------------------------------------------------------------

    def reap(self) -> float | None:
        """Drop expired keys; the monotonic time of the next expiry, if any."""
        now = self._clock()
        with self._lock:
            for blob in [b for b, e in self._entries.items()
                         if e.death is not None and e.death <= now]:
                del self._entries[blob]
            deaths = [e.death for e in self._entries.values() if e.death is not None]
        return min(deaths) if deaths else None

    @property
    def locked(self) -> bool:
        return self._locked_hash is not None

    def __len__(self) -> int:
        self.reap()
        return len(self._entries)

    def connection(self) -> Agent:
        """A view of this key store for one client connection."""
        return KeyRingConnection(self, ConnectionState())

    def _check_unlocked(self) -> None:
        if self._locked_hash is not None:
            raise AgentLocked()

    # --- operations, for a given connection state ----------------------------------

    def list_for(self, state: ConnectionState) -> builtins.list[Identity]:
        self.reap()
        with self._lock:
            if self._locked_hash is not None:
                return []
            return [Identity(e.public, e.comment) for e in self._entries.values()
                    if identity_permitted(e.destinations, state, None) is not None]

    def sign_for(self, state: ConnectionState, key_blob: bytes, data: bytes,
                 flags: int = 0) -> bytes:
        self.reap()
        with self._lock:
            self._check_unlocked()
            entry = self._entries.get(key_blob)
            if entry is None:
                raise AgentError("key not found")
            permission = Permission()
            user: str | None = None
            if entry.destinations:
                permission, user = self._check_destination(entry, state, data)
            if entry.max_signatures is not None:
                if entry.signatures >= entry.max_signatures:
                    raise AgentError("key has reached its signature limit")
                entry.signatures += 1
        if entry.confirm and not self._confirm(entry, state, permission, user):
            raise AgentError("user refused key")
        try:
            return entry.key.sign(data, _sign_algorithm(entry.key, flags))
        except SshError as exc:
            raise AgentError(str(exc)) from None

    def _check_destination(self, entry: _Entry, state: ConnectionState,
                           data: bytes) -> tuple[Permission, str]:
        if not state.bindings:
            raise AgentError("refusing use of destination-constrained key on an unbound "
                             "connection")
        try:
            request = parse_userauth_request(data, entry.public)
        except SshError:
            raise AgentError("refusing use of destination-constrained key to sign an "
                             "unidentified signature") from None
        permission = identity_permitted(entry.destinations, state, request.user)
        if permission is None:
            raise AgentError("key not permitted for this destination")
        last = state.bindings[-1]
        if not hmac.compare_digest(request.session_id, last.session_id):
            raise AgentError("unexpected session ID on signature request")
        if len(state.bindings) > 1 and request.host_key is None:
            raise AgentError("no hostkey recorded in signature for forwarded connection")
        if request.host_key is not None and request.host_key.blob() != last.host_key.blob():
            raise AgentError("mismatch between hostkey in request and most recently bound "
                             "session")
        return permission, request.user

    def _confirm(self, entry: _Entry, state: ConnectionState, permission: Permission,
                 user: str | None) -> bool:
        from keytools.fingerprint import fingerprint

        fp = fingerprint(entry.public, self.fingerprint_hash)
        prompt = f"Allow use of key {entry.comment}?\nKey fingerprint {fp}."
        host = permission.last_host
        if user is not None:
            where = f' to host "{host}"' if host else " to listed host"
            prompt += f'\npublic key authentication request for user "{user}"{where}'
            if permission.forward_host:
                prompt += f' via "{permission.forward_host}"'
        elif state.bindings:
            bound = fingerprint(state.bindings[-1].host_key, self.fingerprint_hash)
            prompt += f"\nrequest on a connection to host key {bound}"
        request = ConfirmRequest(Identity(entry.public, entry.comment), fp, prompt, user,
                                 host, permission.forward_host)
        try:
            return bool(self.confirmer(request))
        except Exception:  # a broken prompt must deny, never kill the connection
            return False

    def add_for(self, state: ConnectionState, key: PrivateKey, comment: str,
                constraints: Constraints = Constraints(), *,  # noqa: B008
                provider: str | None = None) -> None:
        plain = _uncertified(key)
        if isinstance(plain, SkEd25519Private | SkEcdsaPrivate) or constraints.sk_provider:
            raise AgentError("security-key (FIDO) keys are not supported")
        if constraints.associated_certs and provider is None:
            raise AgentError("associated certificates are for smartcard keys only")
        public = key.public
        blob = public.blob()
        now = self._clock()
        if constraints.lifetime is not None:
            death: float | None = now + constraints.lifetime
        elif self.default_lifetime:
            death = now + self.default_lifetime
        else:
            death = None
        entry = _Entry(key, public, comment, constraints.confirm, death,
                       constraints.max_signatures, constraints.destinations, provider)
        self.reap()
        with self._lock:
            self._check_unlocked()
            old = self._entries.get(blob)
            # A visible existing entry is replaced in place, as ssh-agent updates it.
            if old is not None and identity_permitted(old.destinations, state, None) is None:
                raise AgentError("identity not visible")
            self._entries[blob] = entry

    def remove_for(self, state: ConnectionState, key_blob: bytes) -> None:
        self.reap()
        with self._lock:
            self._check_unlocked()
            entry = self._entries.get(key_blob)
            if entry is None or identity_permitted(entry.destinations, state, None) is None:
                raise AgentError("key not found")
            del self._entries[key_blob]

    def remove_all(self) -> None:
        with self._lock:
            self._check_unlocked()
            self._entries.clear()

    def lock(self, passphrase: bytes) -> None:
        if not passphrase:
            raise AgentError("empty password not supported")  # as ssh-agent
        with self._lock:
            if self._locked_hash is not None:
                raise AgentError("agent already locked")
            self._lock_salt = secrets.token_bytes(LOCK_SALT_SIZE)
            self._locked_hash = _lock_hash(passphrase, self._lock_salt)

    def unlock(self, passphrase: bytes) -> None:
        if not passphrase:
            raise AgentError("empty password not supported")
        with self._unlock_lock:
            with self._lock:
                if self._locked_hash is None:
                    raise AgentError("agent not locked")
                salt, expected = self._lock_salt, self._locked_hash
            if hmac.compare_digest(_lock_hash(passphrase, salt), expected):
                with self._lock:
                    self._locked_hash = None
                    self._fail_count = 0
                return
            with self._lock:
                self._fail_count = min(self._fail_count + 1, UNLOCK_MAX_FAILS)
                delay = self._unlock_delay * self._fail_count
            time.sleep(delay)  # holding _unlock_lock: guesses cannot run in parallel
            raise AgentError("incorrect passphrase")

    def extension_for(self, state: ConnectionState, name: str, contents: bytes) -> bytes:
        with self._lock:
            self._check_unlocked()
        from agent import messages as m

        if name == m.EXT_QUERY:
            return m.encode_query_reply(SUPPORTED_EXTENSIONS)
        if name == m.EXT_SESSION_BIND:
            try:
                bind = m.SessionBind.decode(contents)
            except SshError:
                state.bind_attempted = True
                raise AgentError("malformed session-bind request") from None
            state.bind(bind)
            return b""
        raise AgentError(f"unsupported extension {name}")

    # --- smartcards ------------------------------------------------------------------

    def _canonical_provider(self, provider: str) -> str:
        try:
            return os.path.realpath(provider, strict=True)
        except OSError:
            raise AgentError(f'failed PKCS#11 provider "{provider}"') from None

    def add_smartcard_for(self, state: ConnectionState, provider: str, pin: str,
                          constraints: Constraints = Constraints()) -> None:  # noqa: B008
        with self._lock:
            self._check_unlocked()
        if state.bindings and not self.allow_remote_pkcs11:
            raise AgentError("remote addition of PKCS#11 providers is disabled")
        canonical = self._canonical_provider(provider)
        if match_pattern_list(canonical, self.allowed_providers) != 1:
            raise AgentError(f'refusing PKCS#11 add of "{canonical}": provider not allowed')
        if self.smartcard is None:
            raise AgentError("PKCS#11 support is not available")
        from agent.certkey import CertifiedPrivate
        from keytools.certificate import Certificate

        keys = self.smartcard.load(canonical, pin)
        plain_constraints = Constraints(constraints.lifetime, constraints.confirm, None,
                                        constraints.destinations)
        added = False
        for key, comment in keys:
            comment = comment or canonical
            for cert in constraints.associated_certs:
                if not isinstance(cert, Certificate) or cert.key.blob() != key.public.blob():
                    continue
                self.add_for(state, CertifiedPrivate(key, cert), comment, plain_constraints,
                             provider=canonical)
                added = True
            if not constraints.certs_only and key.public.blob() not in self._entries:
                self.add_for(state, key, comment, plain_constraints, provider=canonical)
                added = True
        if not added:
            raise AgentError("no keys added from the PKCS#11 provider")

    def remove_smartcard(self, provider: str, pin: str) -> None:
        with self._lock:
            self._check_unlocked()
        canonical = self._canonical_provider(provider)
        with self._lock:
            for blob in [b for b, e in self._entries.items() if e.provider == canonical]:
                del self._entries[blob]
        if self.smartcard is None:
            raise AgentError("PKCS#11 support is not available")
        self.smartcard.unload(canonical)

    # --- the Agent interface, as one implicit connection -----------------------------

    def list(self) -> builtins.list[Identity]:
        return self.list_for(self._own)

    def sign(self, key: PublicKey, data: bytes, flags: int = 0) -> bytes:
        return self.sign_for(self._own, key.blob(), data, flags)

    def add(self, key: PrivateKey, comment: str,
            constraints: Constraints = Constraints()) -> None:  # noqa: B008
        self.add_for(self._own, key, comment, constraints)

    def remove(self, key: PublicKey) -> None:
        self.remove_for(self._own, key.blob())

    def extension(self, name: str, contents: bytes) -> bytes:
        return self.extension_for(self._own, name, contents)

    def add_smartcard(self, provider: str, pin: str,
                      constraints: Constraints = Constraints()) -> None:  # noqa: B008
        self.add_smartcard_for(self._own, provider, pin, constraints)


class KeyRingConnection:
    """One client's view of a KeyRing: the same keys, its own session bindings."""

    def __init__(self, ring: KeyRing, state: ConnectionState) -> None:
        self.ring = ring
        self.state = state

    def list(self) -> builtins.list[Identity]:
        return self.ring.list_for(self.state)

    def sign(self, key: PublicKey, data: bytes, flags: int = 0) -> bytes:
        return self.ring.sign_for(self.state, key.blob(), data, flags)

    def sign_blob(self, key_blob: bytes, data: bytes, flags: int = 0) -> bytes:
        """``sign`` for a key blob straight off the wire (no decoding needed)."""
        return self.ring.sign_for(self.state, key_blob, data, flags)

    def add(self, key: PrivateKey, comment: str,
            constraints: Constraints = Constraints()) -> None:  # noqa: B008
        self.ring.add_for(self.state, key, comment, constraints)

    def remove(self, key: PublicKey) -> None:
        self.ring.remove_for(self.state, key.blob())

    def remove_blob(self, key_blob: bytes) -> None:
        self.ring.remove_for(self.state, key_blob)

    def remove_all(self) -> None:
        self.ring.remove_all()

    def lock(self, passphrase: bytes) -> None:
        self.ring.lock(passphrase)

    def unlock(self, passphrase: bytes) -> None:
        self.ring.unlock(passphrase)

    def extension(self, name: str, contents: bytes) -> bytes:
        return self.ring.extension_for(self.state, name, contents)

    def add_smartcard(self, provider: str, pin: str,
                      constraints: Constraints = Constraints()) -> None:  # noqa: B008
        self.ring.add_smartcard_for(self.state, provider, pin, constraints)

    def remove_smartcard(self, provider: str, pin: str) -> None:
        self.ring.remove_smartcard(provider, pin)


__all__ = ["AgentExtensionFailure", "ConfirmRequest", "Confirmer", "KeyRing",
           "KeyRingConnection", "askpass_confirmer"]
