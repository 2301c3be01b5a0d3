"""User authentication, server role (RFC 4252, 4256, 8332; PROTOCOL's hostbound method).

``UserAuthServer.run`` answers USERAUTH_REQUESTs until one succeeds, as sshd's auth2.c:
at the first request the user is looked up, the Match blocks for this connection are
applied, allowed_user() decides (AllowUsers/DenyUsers/AllowGroups/DenyGroups) and the
Banner is sent. ``none`` learns the method list; ``publickey`` is the two-step of RFC
4252 section 7; ``password`` goes to protocol/password.py; ``keyboard-interactive``
relays PAM's conversation (protocol/pam_conv.py) or, without PAM, asks one "Password: ".
AuthenticationMethods lists give partial success; PermitRootLogin is checked on success.

Whether a key may log in is ``KeyAuthorizer``'s question, asked as sshd's
user_key_allowed() asks it: RevokedKeys, each AuthorizedKeysFile (StrictModes applied),
TrustedUserCAKeys with AuthorizedPrincipalsFile/Command, then AuthorizedKeysCommand.
An unknown or refused user gets the same FAILURE replies as a bad key or password,
after the same per-user minimum delay. File reads, commands, password hashing and
signature checks run in a worker thread so other connections go on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import time
from dataclasses import replace

from keytools.certificate import Certificate
from keytools.errors import ProtocolError, SignatureInvalid, SshError
from keytools.fingerprint import fingerprint
from keytools.match import match_pattern_list
from keytools.public import PublicKey, decode_public_blob
from keytools.public.base import split_signature
from keytools.wire import Reader, Writer
from protocol import messages
from protocol.auth import CONNECTION_SERVICE, HOSTBOUND_METHOD

# Authorization and the key checks live in protocol/authorized.py; imported from here too
from protocol.authorized import Authorization, KeyAuthorizer, expand_path
from protocol.kex.hostkey import CERT_SUFFIX, key_type, signature_algorithm
from protocol.server_policy import (
    METHOD_ORDER,
    MethodLists,
    allowed_user,
    enabled_methods,
    ensure_minimum_time_since,
    root_allowed,
    user_delay,
)
from protocol.sshd_config import VERBOSE, ConfigError, ServerConfig
from protocol.sshd_match import ConnectionInfo
from protocol.transport import MessageQueue, Transport

__all__ = ["Authorization", "KeyAuthorizer", "TooManyFailures", "UserAuthServer",
           "expand_path", "verify_request_signature"]

log = logging.getLogger("pyssh.sshd")

#: sshd's default PubkeyAcceptedAlgorithms without ssh-rsa (SHA-1) and DSA
DEFAULT_PUBKEY_ALGORITHMS = (
    "ssh-ed25519-cert-v01@openssh.com", "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com", "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "sk-ssh-ed25519-cert-v01@openssh.com", "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com", "rsa-sha2-256-cert-v01@openssh.com",
    "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
    "rsa-sha2-512", "rsa-sha2-256",
)


#: what is checked instead of the password of a login that cannot succeed (sshd's badpw)
BAD_PASSWORD = "\b\n\r\177INCORRECT"


class TooManyFailures(ProtocolError):
    """MaxAuthTries reached: sshd disconnects with these words."""

    default_message = "Too many authentication failures"


def verify_request_signature(key: PublicKey, alg: str, data: bytes, signature: bytes) -> bool:
    """The signature names ``alg``'s signature algorithm and is good over ``data``."""
    try:
        sig_alg, _ = split_signature(signature)
        if sig_alg != signature_algorithm(alg):
            return False
        key.verify(data, signature)
    except (SignatureInvalid, SshError):
        return False
    return True


def _local_endpoint(transport: Transport) -> tuple[str, int] | None:
    """Where the client connected to: ``transport.local_endpoint`` when a relay sets
    it (privilege separation), else the socket's own address; None if unknown."""
    endpoint = getattr(transport, "local_endpoint", None)
    if isinstance(endpoint, tuple):
        return endpoint
    writer = getattr(transport, "_writer", None)
    sockname = writer.get_extra_info("sockname") if writer is not None else None
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        host = str(sockname[0])
        return (host.removeprefix("::ffff:") if "." in host else host), int(sockname[1])
    return None


class UserAuthServer:
    """The server side of ssh-userauth for one connection.

    ``local`` is the (address, port) the client connected to, for Match LocalAddress
    and LocalPort; without it those criteria do not match.
    """

    def __init__(self, transport: Transport, config: ServerConfig, address: str, port: int,
                 host_keys: list[PublicKey], local: tuple[str, int] | None = None) -> None:
        self.transport = transport
        self.base_config = config
        self.config = config
        self.address = address
        self.port = port
        self.local = local if local is not None else _local_endpoint(transport)
        self.host_keys = host_keys
        self.failures = 0
        self.attempts = 0
        self._user_service: tuple[str, str] | None = None
        self._raw_user = b""
        self._pw: pwd.struct_passwd | None = None
        self.valid = False
        self._authorizer: KeyAuthorizer | None = None
        self._lists = MethodLists.from_config(config)
        self._used_keys: set[bytes] = set()
        self._queue: MessageQueue | None = None
        self._pending: bytes | None = None
        self._pubkey_label = ""

    @property
    def methods(self) -> list[str]:
        """authmethods_get(): the enabled methods some AuthenticationMethods list allows
        next."""
        enabled = enabled_methods(self.config)
        return [m for m in METHOD_ORDER if enabled[m] and self._lists.allowed(m)]

    def _label(self) -> str:
        user = self._user_service[0] if self._user_service else "?"
        return user if self.valid else f"invalid user {user}"

    def _failure(self, counted: bool = True, partial: bool = False) -> None:
        """USERAUTH_FAILURE; past MaxAuthTries a disconnect instead, as sshd does."""
        if counted and not partial:
            self.failures += 1
            if self.failures >= self.config.max_auth_tries:
                log.error("maximum authentication attempts exceeded for %s from %s port %d "
                          "ssh2", self._label(), self.address, self.port)
                raise TooManyFailures()
        self.transport.send(Writer().byte(messages.USERAUTH_FAILURE).name_list(self.methods)
                            .boolean(partial).getvalue())

    async def _next(self) -> bytes:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            return pending
        assert self._queue is not None
        payload: bytes = await self._queue.get()
        return payload

    async def run(self) -> Authorization:
        self._queue = self.transport.subscribe([messages.USERAUTH_REQUEST,
                                                messages.USERAUTH_INFO_RESPONSE])
        try:
            while True:
                payload = await self._next()
                r = Reader(payload)
                if r.byte() != messages.USERAUTH_REQUEST:
                    log.debug("userauth: unexpected INFO_RESPONSE ignored")
                    continue
                result = await self._request(r)
                if result is not None:
                    self.transport.send(bytes((messages.USERAUTH_SUCCESS,)))
                    return result
        finally:
            self.transport.unsubscribe([messages.USERAUTH_REQUEST,
                                        messages.USERAUTH_INFO_RESPONSE])

    def _lookup(self, user: str) -> pwd.struct_passwd | None:
        """getpwnam() as root; without root only the current user can log in."""
        try:
            if os.geteuid() == 0:
                return pwd.getpwnam(user)
            pw = pwd.getpwuid(os.getuid())
            return pw if pw.pw_name == user else None
        except KeyError:
            return None

    def _setup_user(self, user: str) -> None:
        """The first request: the user, this connection's Match blocks, allowed_user()
        and the Banner (getpwnamallow() and userauth_banner())."""
        laddr, lport = self.local if self.local is not None else (None, -1)
        ci = ConnectionInfo(user=user, host=self.address, address=self.address,
                            laddress=laddr, lport=lport, test=self.local is None)
        try:
            self.config = self.base_config.for_connection(ci)
        except ConfigError as exc:
            log.error("%s", exc.message)
        self._lists = MethodLists.from_config(self.config)
        pw = self._lookup(user)
        if pw is None:
            log.info("Invalid user %s from %s port %d", user, self.address, self.port)
        elif not allowed_user(self.config, pw, self.address, self.address):
            pw = None
        self._pw = pw
        self.valid = pw is not None
        if pw is not None:
            self._authorizer = KeyAuthorizer(self.config, pw, self.address)
        self._send_banner()

    def _send_banner(self) -> None:
        path = self.config.banner
        if path is None:
            return
        try:
            with open(path, "rb") as f:
                text = f.read(1024 * 1024 + 1)
        except OSError as exc:
            log.debug("Banner %s: %s", path, exc.strerror)
            return
        if not text or len(text) > 1024 * 1024:
            return
        self.transport.send(Writer().byte(messages.USERAUTH_BANNER).string(text).string(b"")
                            .getvalue())

    async def _request(self, r: Reader) -> Authorization | None:
        raw_user = r.string()
        user = raw_user.decode("utf-8", "replace")
        service = r.ascii()
        method = r.ascii()
        if self._user_service is None:
            if service != CONNECTION_SERVICE:
                raise ProtocolError(f"userauth_request: unsupported service {service}")
            self._user_service = (user, service)
            self._raw_user = raw_user
            self._setup_user(user)
        elif self._user_service != (user, service):
            raise ProtocolError("Change of username or service not allowed: "
                                f"({self._user_service[0]},{self._user_service[1]}) -> "
                                f"({user},{service})")
        self.attempts += 1
        if self.attempts >= 1024:
            raise TooManyFailures()
        start = time.monotonic()
        name = "publickey" if method == HOSTBOUND_METHOD else method
        if method == "none":
            self._failure(counted=self.attempts > 1)
            return None
        result: Authorization | None = None
        submethod: str | None = None
        if name in self.methods:
            if name == "publickey":
                outcome = await self._publickey(r, method)
                if outcome == "answered":
                    return None
                result = outcome if isinstance(outcome, Authorization) else None
            elif name == "password":
                result = await self._password(r)
            else:
                outcome2 = await self._kbdint(r)
                if outcome2 == "aborted":
                    return None
                result = outcome2 if isinstance(outcome2, Authorization) else None
                submethod = "pam" if self.config.use_pam else None
        else:
            log.debug("userauth: method %s not enabled or not allowed now", method)
        return await self._finish(result, name, submethod, start)

    async def _finish(self, result: Authorization | None, method: str, submethod: str | None,
                      start: float) -> Authorization | None:
        """userauth_finish(): root check, AuthenticationMethods, log, reply."""
        assert self._user_service is not None
        if result is not None and self._pw is not None and self._pw.pw_uid == 0 \
                and not root_allowed(self.config, method, result.key_forced, self.address,
                                     self.port):
            result = None
        partial = False
        if result is not None and not self._lists.complete(method):
            partial = True
        verb = "Accepted" if result is not None and not partial else \
            "Partial" if partial else "Failed"
        shown = method + (f"/{submethod}" if submethod else "")
        extra = f": {self._pubkey_label}" if method == "publickey" else ""
        if method != "publickey" or result is not None:
            # auth_log(): a success, an invalid user, many failures or a password at
            # INFO; other failures and partial successes are verbose()
            loud = (verb == "Accepted" or not self.valid or method == "password"
                    or self.failures >= self.config.max_auth_tries // 2)
            log.log(logging.INFO if loud else VERBOSE, "%s %s for %s from %s port %d ssh2%s",
                    verb, shown, self._label(), self.address, self.port, extra)
        if result is not None and not partial:
            command = self.config.force_command or result.force_command
            return replace(result, force_command=command, config=self.config)
        if not partial:
            await ensure_minimum_time_since(start, user_delay(self._user_service[0]))
        self._failure(partial=partial)
        return None

    async def _password(self, r: Reader) -> Authorization | None:
        change = r.boolean()
        password = r.string().decode("utf-8", "surrogateescape")
        if change:
            r.string()
        r.end()
        if change:
            log.info("password change not supported")
            return None
        return await self._check_password(password)

    async def _check_password(self, password: str) -> Authorization | None:
        """auth_password(): the check runs even when the answer is already no, so an
        unknown user, root without PermitRootLogin yes and a bad password take alike."""
        from protocol.password import check_password

        assert self._user_service is not None
        pw = self._pw
        ok = pw is not None and (pw.pw_uid != 0 or self.config.permit_root_login == "yes")
        if not password and not self.config.permit_empty_passwords:
            ok = False
        # as sshpam_auth_passwd(): a login that cannot succeed checks a bogus password,
        # so PAM modules never see the real one succeed for it, at the same cost
        good = await asyncio.to_thread(check_password, self._user_service[0],
                                       password if ok else BAD_PASSWORD,
                                       use_pam=self.config.use_pam)
        if not (ok and good) or pw is None:
            return None
        return Authorization(pw.pw_name, pw.pw_dir, pw.pw_shell or "/bin/sh")

    async def _kbdint(self, r: Reader) -> Authorization | str | None:
        """keyboard-interactive with one "Password: " prompt, echo off (RFC 4256)."""
        r.string()  # language tag
        r.string()  # submethods
        r.end()
        if self.config.use_pam:
            return await self._kbdint_pam()
        self.transport.send(Writer().byte(messages.USERAUTH_INFO_REQUEST).string(b"")
                            .string(b"").string(b"").uint32(1).string(b"Password: ")
                            .boolean(False).getvalue())
        payload = await self._next()
        reply = Reader(payload)
        if reply.byte() != messages.USERAUTH_INFO_RESPONSE:
            self._pending = payload  # a new request abandons keyboard-interactive
            return "aborted"
        count = reply.uint32()
        if count != 1:
            raise ProtocolError(f"input_userauth_info_response: wrong number of replies "
                                f"{count}")
        answer = reply.string().decode("utf-8", "surrogateescape")
        reply.end()
        return await self._check_password(answer)

    async def _kbdint_pam(self) -> Authorization | str | None:
        """The PAM conversation relayed as INFO_REQUEST/INFO_RESPONSE rounds."""
        from protocol.pam_conv import pam_kbdint

        loop = asyncio.get_running_loop()
        aborted = False

        async def round_trip(prompts: list[tuple[str, bool]], text: str) -> list[str] | None:
            nonlocal aborted
            w = Writer().byte(messages.USERAUTH_INFO_REQUEST).string(b"") \
                .string(text.encode()).string(b"").uint32(len(prompts))
            for prompt, echo in prompts:
                w.string(prompt.encode()).boolean(echo)
            self.transport.send(w.getvalue())
            payload = await self._next()
            reply = Reader(payload)
            if reply.byte() != messages.USERAUTH_INFO_RESPONSE:
                self._pending = payload
                aborted = True
                return None
            count = reply.uint32()
            if count != len(prompts) or count > 100:
                raise ProtocolError("input_userauth_info_response: wrong number of replies")
            answers = [reply.string().decode("utf-8", "surrogateescape") for _ in range(count)]
            reply.end()
            return answers

        failure: list[SshError] = []

        def ask(prompts: list[tuple[str, bool]], text: str) -> list[str] | None:
            try:
                return asyncio.run_coroutine_threadsafe(round_trip(prompts, text),
                                                        loop).result()
            except SshError as exc:  # re-raised below, outside PAM
                failure.append(exc)
                return None

        pw = self._pw
        good = await asyncio.to_thread(pam_kbdint, pw.pw_name if pw is not None else "NOUSER",
                                       ask)
        if failure:
            raise failure[0]
        if aborted:
            return "aborted"
        if not good or pw is None:
            return None
        return Authorization(pw.pw_name, pw.pw_dir, pw.pw_shell or "/bin/sh")

    async def _publickey(self, r: Reader, method: str) -> Authorization | str | None:
        """None refused, "answered" (PK_OK sent: no failure reply), or the
        authorization."""
        has_signature = r.boolean()
        alg = r.ascii()
        blob = r.string()
        host_blob = r.string() if method == HOSTBOUND_METHOD else None
        signature = r.string() if has_signature else None
        r.end()
        assert self._user_service is not None
        try:
            key = decode_public_blob(blob)
        except SshError as exc:
            log.info("userauth_pubkey: cannot decode key: %s", exc)
            return None
        if alg not in self.config.pubkey_accepted_algorithms or key.key_type != key_type(alg):
            log.info("userauth_pubkey: key type %s not in PubkeyAcceptedAlgorithms", alg)
            return None
        if host_blob is not None and not self._our_host_key(host_blob):
            raise ProtocolError("userauth_pubkey: server host key mismatch")
        if key.blob() in self._used_keys:
            log.info("userauth_pubkey: refusing previously-used %s key", key.type_label)
            return None
        if isinstance(key, Certificate) and not self._ca_signature_allowed(key):
            return None
        authorizer = self._authorizer
        if signature is None:
            # sshd does not look at the keys of an unknown user: the failure, after the
            # same minimum delay, is all the client learns
            allowed = None if authorizer is None else \
                await asyncio.to_thread(authorizer.authorize, key)
            if allowed is None:
                if authorizer is not None:  # sshd's monitor logs a valid user's query
                    self._log_failed_key(key)
                return None
            self.transport.send(Writer().byte(messages.USERAUTH_PK_OK).string(alg).string(blob)
                                .getvalue())
            return "answered"
        w = (Writer().string(self.transport.session_id).byte(messages.USERAUTH_REQUEST)
             .string(self._raw_user).string(self._user_service[1]).string(method)
             .boolean(True).string(alg).string(blob))
        if host_blob is not None:
            w.string(host_blob)
        data = w.getvalue()

        def check() -> Authorization | None:
            if authorizer is None:
                return None
            allowed = authorizer.authorize(key)
            if allowed is None or not verify_request_signature(key, alg, data, signature):
                return None
            return allowed

        result = await asyncio.to_thread(check)
        label = f"{key.type_label} {fingerprint(key)}"
        if result is None:
            self._log_failed_key(key)
            return None
        self._used_keys.add(key.blob())
        if isinstance(key, Certificate):
            label += (f" ID {key.key_id} (serial {key.serial}) CA "
                      f"{key.signature_key.type_label} {fingerprint(key.signature_key)}")
        self._pubkey_label = label
        return result

    def _log_failed_key(self, key: PublicKey) -> None:
        """auth_log()'s failure line: verbose() unless the user is invalid or half of
        MaxAuthTries is used up."""
        loud = not self.valid or self.failures >= self.config.max_auth_tries // 2
        log.log(logging.INFO if loud else VERBOSE, "Failed publickey for %s from %s port %d "
                "ssh2: %s %s", self._label(), self.address, self.port, key.type_label,
                fingerprint(key))

    def _ca_signature_allowed(self, cert: Certificate) -> bool:
        """sshkey_check_cert_sigtype() against CASignatureAlgorithms, checked (as in
        sshd's userauth_pubkey()) before any key file is read, logged in sshd's words."""
        try:
            signature_type: str | None = cert.signature_type
        except SshError:
            signature_type = None
        if signature_type is not None and match_pattern_list(
                signature_type, ",".join(self.config.ca_signature_algorithms), False) == 1:
            return True
        log.info("userauth_pubkey: certificate signature algorithm %s: signature algorithm "
                 "not supported", signature_type or "(null)")
        return False

    def _our_host_key(self, blob: bytes) -> bool:
        kex = self.transport.kex
        if kex is None or kex.algorithms is None:
            return False
        used = getattr(kex, "host_key", None)  # the key (or certificate) kex signed with
        if isinstance(used, PublicKey):
            return used.blob() == blob
        # a relay (privilege separation) knows only the signature algorithm: one of our
        # host keys or certificates of that key type
        wanted = key_type(kex.algorithms.host_key).removesuffix(CERT_SUFFIX)
        return any(k.blob() == blob and k.key_type.removesuffix(CERT_SUFFIX) == wanted
                   for k in self.host_keys)
