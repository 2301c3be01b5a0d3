"""pyadd: ssh-add for pyssh. Same flags, messages and exit statuses as OpenSSH 10's ssh-add.

It talks to whatever agent SSH_AUTH_SOCK names (pyagent or OpenSSH's ssh-agent) through
``agent.client.AgentClient``. Beyond ssh-add: ``--keyring`` keeps key passphrases in the
OS keyring (``agent.passphrase_store``). FIDO authenticators (-K, -S) are not supported.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from agent.errors import AgentConnectionError, AgentError, AgentSocketError
from agent.interface import Constraints, DestinationConstraint, Hop
from agent.pyadd_keyfile import KeyFileLoader
from agent.pyadd_options import (
    USAGE,
    Fatal,
    Options,
    UsageError,
    err,
    log,
    out,
    parse_options,
)
from agent.pyadd_prompt import read_passphrase
from keytools.errors import FileError, KeyTypeUnknown, SshError

if TYPE_CHECKING:
    from agent.client import AgentClient
    from keytools.certificate import Certificate
    from keytools.private import PrivateKey
    from keytools.public import PublicKey

#: OpenSSH 10's default identities, in the order ssh-add tries them.
DEFAULT_FILES = (".ssh/id_rsa", ".ssh/id_ecdsa", ".ssh/id_ecdsa_sk", ".ssh/id_ed25519",
                 ".ssh/id_ed25519_sk")
#: A certificate's key stays this long after the certificate expires (CERT_EXPIRY_GRACE).
CERT_EXPIRY_GRACE = 5 * 60
FOREVER = 2**64 - 1
INT_MAX = 2**31 - 1


# -- the command --------------------------------------------------------------------------


class Pyadd:
    """One run of pyadd against one agent connection."""

    def __init__(self, agent: AgentClient, opts: Options) -> None:
        self.agent = agent
        self.opts = opts
        self.keys = KeyFileLoader(opts)  # keeps the last passphrase that worked
        self.destinations: tuple[DestinationConstraint, ...] = ()

    def debug(self, level: int, message: str) -> None:
        if self.opts.verbose >= level:
            log(f"debug{level}: {message}")

    def constraints(self, lifetime: int | None = None, certs: tuple[PublicKey, ...] = (),
                    certs_only: bool = False) -> Constraints:
        life = self.opts.lifetime if lifetime is None else lifetime
        return Constraints(lifetime=life or None, confirm=self.opts.confirm,
                           destinations=self.destinations, associated_certs=certs,
                           certs_only=certs_only)

    def report_added(self, what: str, path: str, note: str, lifetime: int) -> None:
        if self.opts.quiet:
            return
        from agent.pyadd_time import fmt_timeframe

        err(f"{what} added: {path} ({note})")
        if lifetime:
            err(f"Lifetime set to {fmt_timeframe(lifetime)}")
        if self.opts.confirm:
            err("The user must confirm each use of the key")

    # -- adding keys from files -----------------------------------------------------------

    def add_file(self, path: str) -> int:
        from keytools.private import SkEcdsaPrivate, SkEd25519Private

        loaded = self.keys.load(path)
        if loaded is None:
            return -1
        filename, key, comment, typed = loaded
        if isinstance(key, SkEcdsaPrivate | SkEd25519Private):
            err(f"Cannot load FIDO key {filename} without provider")
            return -1
        ret = -1
        if not self.opts.cert_only:
            try:
                self.agent.add(key, comment, self.constraints())
                ret = 0
                self.report_added("Identity", filename, comment, self.opts.lifetime)
                if typed is not None:
                    self.keys.remember(filename, typed)
            except (AgentError, AgentConnectionError) as exc:
                err(f'Could not add identity "{filename}": {exc}')
        if self.opts.key_only:
            return ret
        if self._add_certificate(filename, key, comment) and self.opts.cert_only:
            ret = 0
            if typed is not None:
                self.keys.remember(filename, typed)
        return ret

    def _load_certificate(self, certpath: str) -> tuple[PublicKey, str] | None:
        from keytools.keyfile import load_public

        try:
            return load_public(certpath)
        except FileError as exc:
            if exc.errno != errno.ENOENT:
                log(f'Failed to load certificate "{certpath}": {exc}')
        except SshError as exc:
            log(f'Failed to load certificate "{certpath}": {exc}')
        return None

    def _add_certificate(self, filename: str, key: PrivateKey, comment: str) -> bool:
        from agent.certkey import certify
        from keytools.certificate import Certificate

        certpath = f"{filename}-cert.pub"
        loaded = self._load_certificate(certpath)
        if loaded is None:
            return False
        cert = loaded[0]
        if not isinstance(cert, Certificate) or cert.plain.blob() != key.public.blob():
            log(f"Certificate {certpath} does not match private key {filename}")
            return False
        lifetime = self.opts.lifetime
        if not self.opts.no_cert_lifetime:
            coupled = certificate_lifetime(cert, lifetime)
            if coupled is None:
                log(f"Certificate {certpath} has already expired; ignored")
                return False
            lifetime = coupled
        try:
            self.agent.add(certify(key, cert), comment, self.constraints(lifetime))
        except (AgentError, AgentConnectionError) as exc:
            log(f"Certificate {certpath} ({cert.key_id}) add failed: {exc}")
            return False
        self.report_added("Certificate", certpath, cert.key_id, lifetime)
        return True

    # -- removing -------------------------------------------------------------------------

    def delete_one(self, key: PublicKey, comment: str | None, path: str) -> int:
        try:
            self.agent.remove(key)
        except (AgentError, AgentConnectionError) as exc:
            err(f'Could not remove identity "{path}": {exc}')
            return -1
        if not self.opts.quiet:
            err(f"Identity removed: {path} {key.type_label} ({comment or 'no comment'})")
        return 0

    def _wanted(self, key: PublicKey) -> bool:
        o = self.opts
        return ((not o.key_only and not o.cert_only) or (o.key_only and not key.is_certificate)
                or (o.cert_only and key.is_certificate))

    def delete_stdin(self) -> int:
        from keytools.public import read_key_token

        ret = -1
        for lnum, raw in enumerate(sys.stdin.buffer, 1):
            line = raw.decode("utf-8", "surrogateescape").split("\n", 1)[0].lstrip(" \t")
            if not line or line.startswith("#"):
                continue
            try:
                key, rest = read_key_token(line)
            except KeyTypeUnknown:
                log(f"(stdin):{lnum}: invalid key: invalid format")
                continue
            except SshError as exc:
                log(f"(stdin):{lnum}: invalid key: {exc}")
                continue
            if self._wanted(key) and self.delete_one(key, rest.lstrip(" \t"), "(stdin)") == 0:
                ret = 0
        return ret

    def delete_file(self, filename: str) -> int:
        from keytools.keyfile import load_public

        if filename == "-":
            return self.delete_stdin()
        try:
            public, comment = load_public(filename)
        except SshError as exc:
            out(f"Bad key file {filename}: {exc}")
            return -1
        ret = -1
        if self._wanted(public) and self.delete_one(public, comment, filename) == 0:
            ret = 0
        if self.opts.key_only:
            return ret
        certpath = f"{filename}-cert.pub"
        loaded = self._load_certificate(certpath)
        if loaded is None:
            return ret
        cert, cert_comment = loaded
        if cert.plain.blob() != public.plain.blob():
            raise Fatal(f"Certificate {certpath} does not match private key {filename}")
        if self.delete_one(cert, cert_comment, certpath) == 0:
            ret = 0
        return ret

    def delete_all(self) -> int:
        try:
            self.agent.remove_all()
        except (AgentError, AgentConnectionError):
            err("Failed to remove all identities.")
            return -1
        if not self.opts.quiet:
            err("All identities removed.")
        return 0

    # -- other actions --------------------------------------------------------------------

    def list_identities(self, fingerprints: bool) -> int:
        from keytools.fingerprint import fingerprint

        try:
            identities = self.agent.list()
        except (AgentError, AgentConnectionError) as exc:
            err(f"error fetching identities: {exc}")
            return -1
        if not identities:
            out("The agent has no identities.")
            return -1
        for ident in identities:
            key = ident.key
            if fingerprints:
                fp = fingerprint(key, self.opts.fingerprint_hash)
                out(f"{key.bits} {fp} {ident.comment} ({key.type_label})")
            else:
                out(f"{key.openssh()} {ident.comment}")
        return 0

    def lock_agent(self, lock: bool) -> int:
        first = read_passphrase("Enter lock password: ")
        if lock and read_passphrase("Again: ") != first:
            err("Passwords do not match.")
            return -1
        secret = first.encode("utf-8", "surrogateescape")
        try:
            if lock:
                self.agent.lock(secret)
            else:
                self.agent.unlock(secret)
        except (AgentError, AgentConnectionError) as exc:
            err(f"Failed to {'' if lock else 'un'}lock agent: {exc}")
            return -1
        err(f"Agent {'' if lock else 'un'}locked.")
        return 0

    def test_key(self, filename: str) -> int:
        from agent.client import sign_flags
        from keytools.keyfile import load_public
        from keytools.public import RsaPublic
        from keytools.wire import Reader

        try:
            key, _ = load_public(filename)
        except SshError as exc:
            log(f"Couldn't read public key {filename}: {exc}")
            return -1
        algorithm = "rsa-sha2-256" if isinstance(key.plain, RsaPublic) else None
        data = os.urandom(1024)
        try:
            sig = self.agent.sign(key, data, sign_flags(algorithm))
        except (AgentError, AgentConnectionError) as exc:
            log(f"Agent signature failed for {filename}: {exc}")
            return -1
        try:
            if algorithm is not None and Reader(sig).ascii() != algorithm:
                from keytools.errors import SignatureInvalid

                raise SignatureInvalid()
            key.verify(data, sig)
        except SshError as exc:
            log(f"Signature verification failed for {filename}: {exc}")
            return -1
        return 0

    def update_card(self, add: bool, provider: str, certs: list[PublicKey]) -> int:
        pin = read_passphrase("Enter passphrase for PKCS#11: ") if add else ""
        if self.opts.key_only:
            certs = []
        try:
            if add:
                self.agent.add_smartcard(provider, pin, self.constraints(
                    certs=tuple(certs), certs_only=self.opts.cert_only))
            else:
                self.agent.remove_smartcard(provider, pin)
        except (AgentError, AgentConnectionError) as exc:
            err(f'Could not {"add" if add else "remove"} card "{provider}": {exc}')
            return -1
        if not self.opts.quiet:
            err(f"Card {'added' if add else 'removed'}: {provider}")
        return 0

    def query(self) -> int:
        try:
            names = self.agent.query_extensions()
        except (AgentError, AgentConnectionError) as exc:
            err(f"Failed to query agent extensions: {exc}")
            return -1
        for name in names:
            out(name)
        return 0


def certificate_lifetime(cert: Certificate, lifetime: int) -> int | None:
    """OpenSSH 10.1's check_cert_lifetime: the key leaves the agent shortly after its
    certificate expires (None: already expired)."""
    if cert.valid_before == FOREVER:
        return lifetime
    now = int(time.time())
    if now > cert.valid_before + CERT_EXPIRY_GRACE:
        return None
    left = min(CERT_EXPIRY_GRACE + cert.valid_before - now, INT_MAX)
    return left if lifetime <= 0 else min(lifetime, left)


def _home_directory() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        raise Fatal(f"No user found with uid {os.getuid()}", 1, plain=True) from None


def _connect() -> AgentClient:
    from agent.client import AgentClient

    try:
        return AgentClient()
    except AgentSocketError as exc:
        raise Fatal(f"Error connecting to agent: {exc}", 2, plain=True) from None
    except AgentConnectionError:
        raise Fatal("Could not open a connection to your authentication agent.", 2,
                    plain=True) from None


def run(argv: Sequence[str]) -> int:
    agent = _connect()
    try:
        try:
            opts = parse_options(argv)
        except UsageError as exc:
            log(str(exc))
            sys.stderr.write(USAGE)
            return 1
        return _dispatch(Pyadd(agent, opts))
    finally:
        agent.close()


def _dispatch(p: Pyadd) -> int:
    from agent.pyadd_dest import DEFAULT_HOSTKEY_FILES, ConstraintError, parse_constraint

    o = p.opts
    if bool(o.lock_flag) + bool(o.list_flag) + o.delete_all + o.query > 1:
        raise Fatal("Invalid combination of actions")
    if o.lock_flag:
        return 1 if p.lock_agent(o.lock_flag == "x") == -1 else 0
    if o.list_flag:
        return 1 if p.list_identities(o.list_flag == "l") == -1 else 0
    if o.delete_all:
        return 1 if p.delete_all() == -1 else 0
    if o.query:
        return 1 if p.query() == -1 else 0
    if o.sk_provider is not None or o.download:
        err("pyadd: FIDO authenticators are not supported (-K and -S); "
            "pyadd cannot load security-key (sk-*) keys")
        return 1
    files = o.hostkey_files or list(DEFAULT_HOSTKEY_FILES)
    try:
        p.destinations = tuple(parse_constraint(text, files) for text in o.destinations)
    except ConstraintError as exc:
        raise Fatal(str(exc)) from None
    for n, dc in enumerate(p.destinations):
        p.debug(2, f"parse_dest_constraint: constraint {n}: {_hop_text(dc.from_hop, True)} > "
                   f"{_hop_text(dc.to_hop, False)}")
    if o.test:
        if not o.args:
            raise Fatal("no keys to test")
        failed = [p.test_key(name) for name in o.args]
        return 1 if any(failed) else 0
    if o.pkcs11 is not None:
        return _card(p, o.pkcs11)
    ret = 0
    if not o.args:
        home = _home_directory()
        count = 0
        for name in DEFAULT_FILES:
            path = f"{home}/{name}"
            if not os.path.exists(path):
                continue
            if _do_file(p, path) == -1:
                ret = 1
            else:
                count += 1
        return 1 if count == 0 else ret
    for name in o.args:
        if _do_file(p, name) == -1:
            ret = 1
    return ret


def _hop_text(hop: Hop, origin: bool) -> str:
    user = f"{hop.user}@" if hop.user else ""
    name = hop.hostname or ("(ORIGIN)" if origin else "(ANY)")
    return f"{user}{name} ({len(hop.keys)} keys)"


def _do_file(p: Pyadd, path: str) -> int:
    return p.delete_file(path) if p.opts.deleting else p.add_file(path)


def _card(p: Pyadd, provider: str) -> int:
    from keytools.keyfile import load_public

    certs: list[PublicKey] = []
    for name in p.opts.args:
        try:
            certs.append(load_public(name)[0])
        except SshError as exc:
            raise Fatal(f"main: load certificate {name}: {exc}") from None
        p.debug(2, f"{name}: {certs[-1].key_type}")
    p.debug(2, f"main: loaded {len(certs)} certificates")
    return 1 if p.update_card(not p.opts.deleting, provider, certs) == -1 else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: OpenSSH's exit statuses, never a traceback."""
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except Fatal as exc:
        (err if exc.plain else log)(str(exc))
        return exc.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
