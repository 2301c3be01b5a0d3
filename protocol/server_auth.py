"""User authentication, server role (RFC 4252; RFC 8332; PROTOCOL's hostbound method).

``UserAuthServer.run`` answers USERAUTH_REQUESTs until one succeeds: ``none`` learns the
method list, ``publickey`` is the two-step of RFC 4252 section 7 (a query answered with
PK_OK, then the signature over the session identifier). Whether a key may log in is
``KeyAuthorizer``'s question, asked as sshd's user_key_allowed() asks it: RevokedKeys,
then each AuthorizedKeysFile (plain keys and ``cert-authority`` lines), then
TrustedUserCAKeys. An unknown user and a refused key get the same FAILURE reply.
File reads and signature checks run in a worker thread so other connections go on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
from dataclasses import dataclass

from keytools.authorized_keys import AuthorizedKey, KeyOptions, match_from, parse_file
from keytools.cert_check import CertificateRefused, CertOptions, check_certificate
from keytools.certificate import Certificate
from keytools.errors import InvalidFormat, KrlBadMagic, ProtocolError, SignatureInvalid, SshError
from keytools.fingerprint import fingerprint
from keytools.keyfile import read_file
from keytools.match import match_pattern_list
from keytools.public import PublicKey, decode_public_blob, read_key_token
from keytools.public.base import split_signature
from keytools.wire import Reader, Writer
from protocol import messages
from protocol.auth import CONNECTION_SERVICE, HOSTBOUND_METHOD
from protocol.kex.hostkey import CERT_SUFFIX, key_type, signature_algorithm
from protocol.sshd_config import ServerConfig
from protocol.transport import Transport

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


class TooManyFailures(ProtocolError):
    """MaxAuthTries reached: sshd disconnects with these words."""

    default_message = "Too many authentication failures"


@dataclass(frozen=True)
class Authorization:
    """What the accepted key allows the session."""

    user: str
    home: str
    shell: str
    force_command: str | None = None
    permit_pty: bool = True
    environment: tuple[str, ...] = ()


def expand_path(template: str, user: str, home: str, uid: int) -> str | None:
    """AuthorizedKeysFile tokens (%h %u %U %%); relative paths start at the home
    directory. None for an unknown token (sshd refuses the file)."""
    out: list[str] = []
    i = 0
    while i < len(template):
        c = template[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        token = template[i + 1 : i + 2]
        value = {"%": "%", "h": home, "u": user, "U": str(uid)}.get(token)
        if value is None:
            return None
        out.append(value)
        i += 2
    path = "".join(out)
    return path if path.startswith("/") else os.path.join(home, path)


def _merge(entry: KeyOptions, cert: CertOptions | None) -> tuple[str | None, bool] | None:
    """(forced command, pty allowed) from a key entry and a certificate; None if the
    two force different commands (sshauthopt_merge refuses)."""
    command = entry.command
    pty = entry.permit_pty
    if cert is not None:
        if cert.force_command is not None:
            if command is not None and command != cert.force_command:
                return None
            command = cert.force_command
        pty = pty and cert.permit_pty
    return command, pty


class KeyAuthorizer:
    """user_key_allowed() for one user, connecting from ``address``."""

    def __init__(self, config: ServerConfig, pw: pwd.struct_passwd, address: str) -> None:
        self.config = config
        self.pw = pw
        self.address = address

    def _authorization(self, command: str | None, pty: bool,
                       environment: tuple[str, ...] = ()) -> Authorization:
        return Authorization(self.pw.pw_name, self.pw.pw_dir, self.pw.pw_shell or "/bin/sh",
                             command, pty, environment)

    def revoked(self, key: PublicKey) -> bool:
        """sshkey_check_revoked(): a KRL, or failing its magic a list of keys; an
        unreadable file revokes everything."""
        path = self.config.revoked_keys
        if path is None:
            return False
        from keytools.krl import parse_krl

        try:
            data = read_file(path)
            try:
                return parse_krl(data).is_revoked(key)
            except KrlBadMagic:
                pass
            targets = {key.plain.blob()}
            if isinstance(key, Certificate):
                targets.add(key.signature_key.plain.blob())
            for line in data.decode("utf-8", "replace").splitlines():
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                try:
                    listed, _ = read_key_token(line)
                except SshError:
                    continue
                if listed.plain.blob() in targets:
                    return True
            return False
        except SshError as exc:
            log.error("Error checking authentication key %s: %s", path, exc)
            return True

    def authorize(self, key: PublicKey) -> Authorization | None:
        if self.revoked(key):
            log.info("Authentication key %s %s revoked by file %s", key.type_label,
                     fingerprint(key), self.config.revoked_keys)
            return None
        for template in self.config.authorized_keys_files:
            path = expand_path(template, self.pw.pw_name, self.pw.pw_dir, self.pw.pw_uid)
            if path is None:
                continue
            found = self._authorized_keys(path, key)
            if found is not None:
                return found
        if isinstance(key, Certificate) and self.config.trusted_user_ca_keys is not None:
            return self._trusted_ca(key, self.config.trusted_user_ca_keys)
        return None

    def _authorized_keys(self, path: str, key: PublicKey) -> Authorization | None:
        try:
            text = read_file(path).decode("utf-8", "surrogateescape")
        except SshError:
            return None
        for entry in parse_file(text):
            if isinstance(entry, InvalidFormat):
                log.info("%s: %s", path, entry)
                continue
            found = self._entry(path, entry, key)
            if found is not None:
                return found
        return None

    def _entry(self, path: str, entry: AuthorizedKey, key: PublicKey) -> Authorization | None:
        opts = entry.options
        cert_options: CertOptions | None = None
        if isinstance(key, Certificate):
            if not opts.cert_authority or entry.key.blob() != key.signature_key.blob():
                return None
            principal: str | None = self.pw.pw_name
            if opts.principals is not None:
                if not any(match_pattern_list(p, opts.principals) == 1 for p in key.principals):
                    log.info("%s:%d: certificate has no matching principals", path, entry.line)
                    return None
                principal = None
            try:
                cert_options = check_certificate(key, principal=principal, host=False,
                                                 ca_keys=None, source_address=self.address)
            except CertificateRefused as exc:
                log.info("%s:%d: %s", path, entry.line, exc)
                return None
        elif opts.cert_authority or entry.key.blob() != key.blob():
            return None
        if not self._permitted(opts):
            return None
        merged = _merge(opts, cert_options)
        if merged is None:
            log.info("%s:%d: forced commands of key and certificate differ", path, entry.line)
            return None
        log.debug("%s:%d: matching key found", path, entry.line)
        if isinstance(key, Certificate):
            _log_certificate(key, f"{path}:{entry.line}")
        return self._authorization(*merged, opts.environment)

    def _permitted(self, opts: KeyOptions) -> bool:
        """auth_authorise_keyopts(): expiry-time and from= against the client."""
        import time

        if opts.expiry_time is not None and time.time() > opts.expiry_time:
            log.info("Authentication key has expired")
            return False
        if opts.from_patterns is not None and not match_from(self.address, opts.from_patterns):
            log.info("Authentication tried for %s with correct key but not from a permitted "
                     "host (host=%s, ip=%s).", self.pw.pw_name, self.address, self.address)
            return False
        return True

    def _trusted_ca(self, cert: Certificate, path: str) -> Authorization | None:
        try:
            text = read_file(path).decode("utf-8", "replace")
        except SshError as exc:
            log.info("TrustedUserCAKeys %s: %s", path, exc)
            return None
        cas: list[PublicKey] = []
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                try:
                    cas.append(read_key_token(line)[0])
                except SshError:
                    continue
        try:
            options = check_certificate(cert, principal=self.pw.pw_name, host=False,
                                        ca_keys=cas, source_address=self.address)
        except CertificateRefused as exc:
            log.info("%s", exc)
            return None
        _log_certificate(cert, path)
        return self._authorization(options.force_command, options.permit_pty)


def _log_certificate(cert: Certificate, via: str) -> None:
    ca = cert.signature_key
    log.info('Accepted certificate ID "%s" (serial %d) signed by %s CA %s via %s', cert.key_id,
             cert.serial, ca.type_label, fingerprint(ca), via)


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


class UserAuthServer:
    """The server side of ssh-userauth for one connection."""

    def __init__(self, transport: Transport, config: ServerConfig, address: str, port: int,
                 host_keys: list[PublicKey]) -> None:
        self.transport = transport
        self.config = config
        self.address = address
        self.port = port
        self.host_keys = host_keys
        self.failures = 0
        self.attempts = 0
        self._user_service: tuple[str, str] | None = None
        self._raw_user = b""
        self._pw = pwd.getpwuid(os.getuid())
        self._authorizer = KeyAuthorizer(config, self._pw, address)

    @property
    def methods(self) -> list[str]:
        return ["publickey"] if self.config.pubkey_authentication else []

    def _failure(self, counted: bool = True) -> None:
        """USERAUTH_FAILURE; past MaxAuthTries a disconnect instead, as sshd does."""
        if counted:
            self.failures += 1
            if self.failures >= self.config.max_auth_tries:
                log.error("maximum authentication attempts exceeded for %s from %s port %d ssh2",
                          self._user_service[0] if self._user_service else "?",
                          self.address, self.port)
                raise TooManyFailures()
        self.transport.send(Writer().byte(messages.USERAUTH_FAILURE).name_list(self.methods)
                            .boolean(False).getvalue())

    async def run(self) -> Authorization:
        queue = self.transport.subscribe([messages.USERAUTH_REQUEST])
        try:
            while True:
                r = Reader(await queue.get())
                r.byte()
                result = await self._request(r)
                if result is not None:
                    self.transport.send(bytes((messages.USERAUTH_SUCCESS,)))
                    return result
        finally:
            self.transport.unsubscribe([messages.USERAUTH_REQUEST])

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
            if user != self._pw.pw_name:
                log.info("Invalid user %s from %s port %d", user, self.address, self.port)
        elif self._user_service != (user, service):
            raise ProtocolError("Change of username or service not allowed: "
                                f"({self._user_service[0]},{self._user_service[1]}) -> "
                                f"({user},{service})")
        valid = user == self._pw.pw_name
        self.attempts += 1
        if method == "none":
            self._failure(counted=self.attempts > 1)
            return None
        if method in ("publickey", HOSTBOUND_METHOD) and self.config.pubkey_authentication:
            return await self._publickey(r, method, valid)
        log.debug("userauth: unsupported method %s", method)
        self._failure()
        return None

    async def _publickey(self, r: Reader, method: str, valid: bool) -> Authorization | None:
        has_signature = r.boolean()
        alg = r.ascii()
        blob = r.string()
        host_blob = r.string() if method == HOSTBOUND_METHOD else None
        signature = r.string() if has_signature else None
        r.end()
        assert self._user_service is not None
        user = self._user_service[0] if valid else f"invalid user {self._user_service[0]}"
        try:
            key = decode_public_blob(blob)
        except SshError as exc:
            log.info("userauth_pubkey: cannot decode key: %s", exc)
            self._failure()
            return None
        if alg not in DEFAULT_PUBKEY_ALGORITHMS or key.key_type != key_type(alg):
            log.info("userauth_pubkey: key type %s not in PubkeyAcceptedAlgorithms", alg)
            self._failure()
            return None
        if host_blob is not None and not self._our_host_key(host_blob):
            raise ProtocolError("userauth_pubkey: server host key mismatch")
        # An unknown user goes through the same work (against the current user's files)
        # and is refused afterwards, so neither the reply nor its timing tells them apart.
        if signature is None:
            allowed = await asyncio.to_thread(self._authorizer.authorize, key)
            if allowed is None or not valid:
                self._failure()
                return None
            self.transport.send(Writer().byte(messages.USERAUTH_PK_OK).string(alg).string(blob)
                                .getvalue())
            return None
        w = (Writer().string(self.transport.session_id).byte(messages.USERAUTH_REQUEST)
             .string(self._raw_user).string(self._user_service[1]).string(method)
             .boolean(True).string(alg).string(blob))
        if host_blob is not None:
            w.string(host_blob)
        data = w.getvalue()

        def check() -> Authorization | None:
            allowed = self._authorizer.authorize(key)
            if allowed is None or not verify_request_signature(key, alg, data, signature):
                return None
            return allowed

        result = await asyncio.to_thread(check)
        if not valid:
            result = None
        label = f"{key.type_label} {fingerprint(key)}"
        if result is None:
            log.info("Failed publickey for %s from %s port %d ssh2: %s", user, self.address,
                     self.port, label)
            self._failure()
            return None
        if isinstance(key, Certificate):
            label += (f" ID {key.key_id} (serial {key.serial}) CA "
                      f"{key.signature_key.type_label} {fingerprint(key.signature_key)}")
        log.info("Accepted publickey for %s from %s port %d ssh2: %s", user, self.address,
                 self.port, label)
        return result

    def _our_host_key(self, blob: bytes) -> bool:
        kex = self.transport.kex
        if kex is None or kex.algorithms is None:
            return False
        wanted = key_type(kex.algorithms.host_key).removesuffix(CERT_SUFFIX)
        return any(k.blob() == blob and k.key_type == wanted for k in self.host_keys)

