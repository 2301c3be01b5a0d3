"""Whether a public key may log in as a user: sshd's user_key_allowed().

``KeyAuthorizer.authorize`` asks, in sshd's order: RevokedKeys, each AuthorizedKeysFile
(read with StrictModes checks, plain keys and ``cert-authority`` lines with their
options), TrustedUserCAKeys (the user name as principal, or AuthorizedPrincipalsFile /
AuthorizedPrincipalsCommand lines), then the AuthorizedKeysCommand's output. The answer
is an ``Authorization``: what the accepted key allows the session.
"""

from __future__ import annotations

import base64
import logging
import os
import pwd
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from keytools.authorized_keys import AuthorizedKey, KeyOptions, match_from, parse_file
from keytools.cert_check import CertificateRefused, CertOptions, check_certificate
from keytools.certificate import Certificate
from keytools.errors import InvalidFormat, KrlBadMagic, SshError
from keytools.fingerprint import fingerprint
from keytools.keyfile import read_file
from keytools.public import PublicKey, read_key_token
from protocol.auth_files import command_argv, open_user_file, run_auth_command
from protocol.percent import BadPercent, expand_percent
from protocol.principals import match_principals
from protocol.sshd_config import VERBOSE, ServerConfig

log = logging.getLogger("pyssh.sshd")


@dataclass(frozen=True)
class Authorization:
    """What the accepted key allows the session."""

    user: str
    home: str
    shell: str
    force_command: str | None = None
    permit_pty: bool = True
    environment: tuple[str, ...] = ()
    #: forwarding (read by protocol/forward_server.py): no-port-forwarding,
    #: no-agent-forwarding, permitopen=, permitlisten= and a certificate's extensions
    permit_port_forwarding: bool = True
    permit_agent_forwarding: bool = True
    permit_open: tuple[str, ...] = ()
    permit_listen: tuple[str, ...] = ()
    #: the configuration with this connection's Match blocks applied
    config: ServerConfig | None = None
    #: the forced command came from the key or certificate (not ForceCommand)
    key_forced: bool = False
    #: ~/.ssh/rc may run: no-user-rc / restrict (user-rc undoes it) and a
    #: certificate's permit-user-rc extension (sshd's permit_user_rc key option)
    permit_user_rc: bool = True


def _forwarding(auth: Authorization, entry: KeyOptions | None,
                cert: CertOptions | None) -> Authorization:
    """The forwarding and user-rc fields: a key entry and a certificate must both
    allow (sshauthopt_merge())."""
    port = (entry is None or entry.permit_port_forwarding) \
        and (cert is None or cert.permit_port_forwarding)
    agent = (entry is None or entry.permit_agent_forwarding) \
        and (cert is None or cert.permit_agent_forwarding)
    user_rc = (entry is None or entry.permit_user_rc) \
        and (cert is None or cert.permit_user_rc)
    return replace(auth, permit_port_forwarding=port, permit_agent_forwarding=agent,
                   permit_user_rc=user_rc,
                   permit_open=entry.permit_open if entry is not None else (),
                   permit_listen=entry.permit_listen if entry is not None else ())


def expand_path(template: str, user: str, home: str, uid: int) -> str | None:
    """AuthorizedKeysFile tokens (%h %u %U %%); relative paths start at the home
    directory. None for an unknown token (sshd refuses the file)."""
    try:
        path = expand_percent(template, {"h": home, "u": user, "U": str(uid)})
    except BadPercent:
        return None
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

    @property
    def _ca_algorithms(self) -> str:
        """CASignatureAlgorithms (server_auth.py refuses other certificates first, with
        sshd's log line; this keeps the check where the certificate is accepted)."""
        return ",".join(self.config.ca_signature_algorithms)

    def _authorization(self, command: str | None, pty: bool,
                       environment: tuple[str, ...] = ()) -> Authorization:
        return Authorization(self.pw.pw_name, self.pw.pw_dir, self.pw.pw_shell or "/bin/sh",
                             command, pty, environment, key_forced=command is not None)

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
            found = self._trusted_ca(key, self.config.trusted_user_ca_keys)
            if found is not None:
                return found
        return self._keys_command(key)

    def _authorized_keys(self, path: str, key: PublicKey) -> Authorization | None:
        text = open_user_file(path, self.pw, self.config.strict_modes, "authorized keys")
        if text is None:
            return None
        return self._key_lines(path, text, key)

    def _key_lines(self, path: str, text: str, key: PublicKey) -> Authorization | None:
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
                if not _principals_option_match(opts.principals, key.principals):
                    log.info("%s:%d: certificate has no matching principals", path, entry.line)
                    return None
                principal = None
            try:
                cert_options = check_certificate(key, principal=principal, host=False,
                                                 ca_keys=None, source_address=self.address,
                                                 ca_algorithms=self._ca_algorithms)
            except CertificateRefused as exc:
                log.info("%s:%d: %s", path, entry.line, exc)
                return None
            if not _cert_permitted(cert_options):
                return None
        elif opts.cert_authority or entry.key.blob() != key.blob():
            return None
        if not self._permitted(opts):
            return None
        merged = _merge(opts, cert_options)
        if merged is None:
            log.info("%s:%d: forced commands of key and certificate differ", path, entry.line)
            return None
        if isinstance(key, Certificate):
            _log_certificate(key, f"{path}:{entry.line}")
        else:
            log.log(VERBOSE, "Accepted key %s %s found at %s:%d", key.type_label,
                    fingerprint(key), path, entry.line)
        return _forwarding(self._authorization(*merged, opts.environment), opts, cert_options)

    def _permitted(self, opts: KeyOptions) -> bool:
        """auth_authorise_keyopts(): expiry-time and from= against the client. Also
        verify-required and tunnel=, which pysshd cannot honour (no FIDO user
        verification check, no tunnel forwarding): such a line never authorizes, where
        sshd would accept the key (fail closed rather than ignore a restriction)."""
        if opts.verify_required:
            log.info("Authentication key refused: verify-required (FIDO user "
                     "verification) is not supported by pysshd")
            return False
        if opts.tunnel is not None:
            log.info("Authentication key refused: tunnel=\"%s\" (tunnel forwarding) is "
                     "not supported by pysshd", opts.tunnel)
            return False
        if opts.expiry_time is not None and time.time() > opts.expiry_time:
            log.info("Authentication key has expired")
            return False
        if opts.from_patterns is not None and not match_from(self.address, opts.from_patterns):
            log.info("Authentication tried for %s with correct key but not from a permitted "
                     "host (host=%s, ip=%s).", self.pw.pw_name, self.address, self.address)
            return False
        return True

    def _trusted_ca(self, cert: Certificate, path: str) -> Authorization | None:
        """user_cert_trusted_ca(): a listed CA, then the principals file or command
        (when configured) instead of the user name."""
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
        ca_blob = cert.signature_key.blob()
        if not any(ca.blob() == ca_blob for ca in cas):
            log.debug("CA %s %s is not listed in %s", cert.signature_key.type_label,
                      fingerprint(cert.signature_key), path)
            return None
        config = self.config
        use_principals = (config.authorized_principals_file is not None
                          or config.authorized_principals_command is not None)
        principal_options: KeyOptions | None = None
        if use_principals:
            principal_options = self._principals_file(cert)
            if principal_options is None:
                principal_options = self._principals_command(cert)
            if principal_options is None:
                log.error("Certificate does not contain an authorized principal")
                return None
        try:
            options = check_certificate(cert, principal=None if use_principals
                                        else self.pw.pw_name, host=False, ca_keys=cas,
                                        source_address=self.address,
                                        ca_algorithms=self._ca_algorithms)
        except CertificateRefused as exc:
            log.info("%s", exc)
            return None
        if not _cert_permitted(options):
            return None
        entry = principal_options or KeyOptions()
        if not self._permitted(entry):
            return None
        merged = _merge(entry, options)
        if merged is None:
            log.info("forced commands of principals and certificate differ")
            return None
        _log_certificate(cert, path)
        return _forwarding(self._authorization(*merged, entry.environment),
                           principal_options, options)

    def _tokens(self) -> dict[str, str]:
        return {"U": str(self.pw.pw_uid), "u": self.pw.pw_name, "h": self.pw.pw_dir}

    def _principals_file(self, cert: Certificate) -> KeyOptions | None:
        template = self.config.authorized_principals_file
        if template is None:
            return None
        path = expand_path(template, self.pw.pw_name, self.pw.pw_dir, self.pw.pw_uid)
        if path is None:
            return None
        text = open_user_file(path, self.pw, self.config.strict_modes,
                              "authorized principals")
        return None if text is None else match_principals(text, cert, path)

    def _command_user(self, keyword: str, user: str | None) -> pwd.struct_passwd | None:
        if user is None:
            log.error("No user for %s specified, skipping", keyword)
            return None
        try:
            return pwd.getpwnam(user)
        except KeyError:
            log.error("Unable to find user %s", user)
            return None

    def _principals_command(self, cert: Certificate) -> KeyOptions | None:
        command = self.config.authorized_principals_command
        if command is None:
            return None
        runas = self._command_user("AuthorizedPrincipalsCommand",
                                   self.config.authorized_principals_command_user)
        if runas is None:
            return None
        ca = cert.signature_key
        tokens = {**self._tokens(), "t": cert.key_type, "T": cert.key_type,
                  "f": fingerprint(cert), "k": base64.b64encode(cert.blob()).decode(),
                  "F": fingerprint(ca), "K": base64.b64encode(ca.blob()).decode(),
                  "i": cert.key_id, "s": str(cert.serial)}
        argv = command_argv(command, tokens, self.pw.pw_name)
        out = None if argv is None else run_auth_command("AuthorizedPrincipalsCommand", argv,
                                                          runas)
        return None if out is None else match_principals(out, cert, command)

    def _keys_command(self, key: PublicKey) -> Authorization | None:
        """user_key_command_allowed2(): the AuthorizedKeysCommand's output, read as an
        authorized_keys file."""
        command = self.config.authorized_keys_command
        if command is None:
            return None
        runas = self._command_user("AuthorizedKeysCommand",
                                   self.config.authorized_keys_command_user)
        if runas is None:
            return None
        tokens = {**self._tokens(), "t": key.key_type, "f": fingerprint(key),
                  "k": base64.b64encode(key.blob()).decode()}
        argv = command_argv(command, tokens, self.pw.pw_name)
        out = None if argv is None else run_auth_command("AuthorizedKeysCommand", argv, runas)
        return None if out is None else self._key_lines(command, out, key)


def _principals_option_match(option: str, principals: Sequence[str]) -> bool:
    """match_principals_option(): sshd's match_list(), exact names, no wildcards (a
    ``principals="o*"`` line names the principal "o*")."""
    allowed = set(option.split(","))
    return any(name in allowed for principal in principals for name in principal.split(","))


def _cert_permitted(options: CertOptions) -> bool:
    """A certificate's verify-required critical option: refused, as the key option."""
    if options.verify_required:
        log.info("Certificate refused: verify-required (FIDO user verification) is not "
                 "supported by pysshd")
        return False
    return True


def _log_certificate(cert: Certificate, via: str) -> None:
    ca = cert.signature_key
    log.info('Accepted certificate ID "%s" (serial %d) signed by %s CA %s via %s', cert.key_id,
             cert.serial, ca.type_label, fingerprint(ca), via)
