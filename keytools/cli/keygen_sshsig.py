"""pykeygen -Y: sign files and check SSH signatures, as ssh-keygen's sig_* functions.

stdout carries only the results scripts read (the "Good ..." line, "Could not verify
signature.", principals, the armoured signature from stdin); everything else goes to
stderr in ssh-keygen's words, and the exit codes are ssh-keygen's (0, 1 for usage,
255 for failure, and match-principals' 256+ssherr quirk).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, BinaryIO

from keytools.cli.keysources import AgentUnavailable, Signer, unavailable
from keytools.cli.output import Exit, Fatal, error, out
from keytools.cli.pykeygen import KeygenOptions, usage
from keytools.errors import (
    BadPermissions,
    FileError,
    InvalidArgument,
    KeyNotFound,
    SignatureAlgorithmUnsupported,
    SshError,
    WrongPassphrase,
)

if TYPE_CHECKING:
    from keytools.private import PrivateKey
    from keytools.public import PublicKey

FAILED = 255
#: ssh-keygen returns these negative ssherr codes from main(); the shell sees 256+code.
SSH_ERR_INVALID_FORMAT = -4
SSH_ERR_INVALID_ARGUMENT = -10
SSH_ERR_SYSTEM_ERROR = -24
SSH_ERR_KEY_NOT_FOUND = -46
KRL_MAGIC = b"SSHKRL\n\0"
AGENT_NOT_READY = unavailable("signing with a key held in an agent")


def _exit_code(ssherr: int) -> int:
    return ssherr & 0xFF


def _ssherr(exc: SshError) -> str:
    """What ssh_err() says for this error's code (the second half of error_r lines)."""
    if isinstance(exc, FileError) and exc.errno is not None:
        return os.strerror(exc.errno)
    return type(exc).default_message


def _report(exc: SshError) -> None:
    """Print the library's own log line(s) when they say more than the bare ssherr text."""
    if str(exc) != type(exc).default_message:
        error(str(exc))


# -- options ------------------------------------------------------------------------------


def _process_opts(
    opts: KeygenOptions, hashalg: bool = False, verify_time: bool = False,
    print_pubkey: bool = False,
) -> tuple[str | None, int, bool]:
    """sig_process_opts: (hashalg, verify time, print-pubkey); InvalidArgument if refused."""
    from keytools.allowed_signers import now, parse_absolute_time

    alg: str | None = None
    when = 0
    show = False
    for option in opts.options:
        lower = option.lower()
        if hashalg and lower.startswith("hashalg="):
            alg = option[8:]
        elif verify_time and lower.startswith("verify-time="):
            try:
                when = parse_absolute_time(option[12:])
            except SshError:
                when = 0
            if when == 0:
                error('Invalid "verify-time" option')
                raise InvalidArgument()
        elif print_pubkey and lower == "print-pubkey":
            show = True
        else:
            error(f'Invalid option "{option}"')
            raise InvalidArgument()
    if verify_time and when == 0:
        when = now()
    return alg, when, show


def _too_few(operation: str, missing: str, space: bool = True) -> None:
    error(f"Too few arguments for {operation}:{' ' if space else ''}missing {missing}")
    raise Exit(1)


def do_sign_op(opts: KeygenOptions) -> int:
    """Dispatch -Y by prefix, in ssh-keygen's order, with its argument checks."""
    op = opts.sign_op or ""
    namespace = opts.principals  # -n is the namespace here
    if op.startswith("find-principals"):
        if opts.ca_key is None:
            _too_few("find-principals", "signature file", space=False)
        if opts.identity_file is None:
            _too_few("find-principals", "allowed keys file", space=False)
        return find_principals(opts)
    if op.startswith("match-principals"):
        if opts.identity_file is None:
            _too_few("match-principals", "allowed keys file", space=False)
        if opts.cert_id is None:
            _too_few("match-principals", "principal ID")
        return match_principals(opts)
    if op.startswith("sign"):
        if not namespace:
            _too_few("sign", "namespace")
        if opts.identity_file is None:
            _too_few("sign", "key")
        return sign(opts)
    if op.startswith("check-novalidate"):
        if not namespace:
            _too_few("check-novalidate", "namespace")
        if opts.ca_key is None:
            _too_few("check-novalidate", "signature file")
        return verify(opts, check_signers=False)
    if op.startswith("verify"):
        if not namespace:
            _too_few("verify", "namespace")
        if opts.ca_key is None:
            _too_few("verify", "signature file")
        if opts.identity_file is None:
            _too_few("sign", "allowed keys file")  # sic: ssh-keygen says "sign" here
        if opts.cert_id is None:
            _too_few("verify", "principal identity")
        return verify(opts, check_signers=True)
    error(f'Unsupported operation for -Y: "{op}"')
    usage()
    return 1


# -- sign ---------------------------------------------------------------------------------


def _load_sign_key(opts: KeygenOptions, keypath: str, public: PublicKey) -> PrivateKey | None:
    """load_sign_key: the private key beside a .pub/-cert.pub, asking for its passphrase."""
    from keytools.cli.keygen_keys import _report_permissions
    from keytools.cli.prompt import read_passphrase
    from keytools.keyfile import load_private

    privpath, waspub = keypath, False
    for suffix in ("-cert.pub", ".pub"):
        if len(keypath) > len(suffix) and keypath.endswith(suffix):
            privpath, waspub = keypath[: -len(suffix)], True
            break
    if waspub and not os.path.lexists(privpath):
        if os.environ.get("SSH_AUTH_SOCK") and opts.sources.agent_signer is None:
            raise Fatal(AGENT_NOT_READY)
        raise Fatal(f'No private key found for public key "{keypath}"')
    try:
        key, _ = load_private(privpath, "")
    except WrongPassphrase:
        secret = opts.passphrase
        if secret is None:
            secret = read_passphrase("Enter passphrase: ")
        try:
            key, _ = load_private(privpath, secret)
        except SshError as exc:
            raise Fatal(f'Load key "{privpath}": {exc}') from None
    except BadPermissions as exc:
        _report_permissions(exc)
        raise Fatal(f'No private key found for "{privpath}"') from None
    except SshError:
        raise Fatal(f'No private key found for "{privpath}"') from None
    if not public.plain.same_key(key.public):
        error(f"Public key {keypath} doesn't match private {privpath}")
        return None
    return key


def _agent_signer(opts: KeygenOptions, public: PublicKey) -> Signer | None:
    """sig_sign's agent step: the agent signs if it holds the key (tried whenever
    SSH_AUTH_SOCK is set); -U makes a missing agent or key fatal instead of falling
    back to the private key file."""
    lookup = opts.sources.agent_signer
    if lookup is None:
        if opts.prefer_agent:
            raise Fatal(AGENT_NOT_READY if os.environ.get("SSH_AUTH_SOCK")
                        else "Couldn't get agent socket")
        return None
    try:
        return lookup(public)
    except AgentUnavailable:
        if opts.prefer_agent:
            raise Fatal("Couldn't get agent socket") from None
    except SshError:
        if opts.prefer_agent:
            raise Fatal("Couldn't find key in agent") from None
    return None


def _sign_one(
    opts: KeygenOptions, key: PrivateKey | Signer, public: PublicKey, name: str,
    stream: BinaryIO | None, hashalg: str,
) -> bool:
    """sign_one: hash, sign, and write ``name.sig`` (or the armour to stdout for stdin).
    ``key`` is a private key, or the agent's signer for ``public``."""
    from keytools import sshsig
    from keytools.cli.prompt import confirm_overwrite
    from keytools.keyfile import atomic_write

    if not opts.quiet:
        error("Signing data on standard input" if stream is None else f"Signing file {name}")
    source = sys.stdin.buffer if stream is None else stream
    try:
        if callable(key):
            digest = sshsig.hash_message(source, hashalg)
            try:
                sig = sshsig.sign_digest(public, key, digest, opts.principals or "", hashalg)
            except SshError as exc:  # the agent's words (its errors carry no log lines)
                error(f"Couldn't sign message (signer): {exc}")
                error(f"Signing {name} failed: {exc}")
                return False
        else:
            sig = sshsig.sign(key, source, opts.principals or "", hashalg, public)
    except SignatureAlgorithmUnsupported as exc:
        _report(exc)
        error(f"sshsig_sign_fd: hash_file: {_ssherr(exc)}")
        error(f"Signing {name} failed: {_ssherr(exc)}")
        return False
    except SshError as exc:
        error(f"Signing {name} failed: {_ssherr(exc)}")
        return False
    except OSError as exc:
        error(f"sshsig_sign_fd: hash_file: read: {exc.strerror}")
        return False
    armoured = sig.armored()
    if stream is None:
        out(armoured)
        sys.stdout.flush()
        return True
    target = f"{name}.sig"
    if not confirm_overwrite(target):
        return True
    try:
        atomic_write(target, armoured.encode("ascii"), 0o666)
    except FileError as exc:
        error(f"Cannot open {target}: {exc}")
        return False
    if not opts.quiet:
        error(f"Write signature to {target}")
    return True


def sign(opts: KeygenOptions) -> int:
    """sig_sign: -Y sign -f key -n namespace [-O hashalg=...] [file ...]."""
    from keytools import sshsig
    from keytools.keyfile import load_public

    args = opts.args
    if "-" in args and len(args) > 1:
        raise Fatal("Cannot sign mix of paths and standard input")
    try:
        hashalg, _, _ = _process_opts(opts, hashalg=True)
    except InvalidArgument:
        return FAILED
    keypath = opts.identity_file or ""
    try:
        public, _ = load_public(keypath)
    except SshError as exc:
        error(f"Couldn't load public key {keypath}: {_ssherr(exc)}")
        return FAILED
    key: PrivateKey | Signer | None = _agent_signer(opts, public)
    if key is None:
        key = _load_sign_key(opts, keypath, public)
    if key is None:
        return FAILED
    alg = hashalg if hashalg is not None else sshsig.DEFAULT_HASH
    if not args:
        return 0 if _sign_one(opts, key, public, "(stdin)", None, alg) else FAILED
    for name in args:
        if name == "-":
            if not _sign_one(opts, key, public, name, None, alg):
                return FAILED
            continue
        try:
            stream = open(name, "rb")  # noqa: SIM115 - closed right after signing
        except OSError as exc:
            error(f"Cannot open {name} for signing: {exc.strerror}")
            return FAILED
        with stream:
            if not _sign_one(opts, key, public, name, stream, alg):
                return FAILED
    return 0


# -- verify / check-novalidate ------------------------------------------------------------


def _load_signature(path: str, caller: str) -> bytes:
    """sshbuf_load_file + sshsig_dearmor, reporting failures as ssh-keygen does."""
    from keytools import sshsig
    from keytools.keyfile import read_file

    try:
        data = read_file(path)
    except SshError as exc:
        error(f"Couldn't read signature file: {_ssherr(exc)}")
        raise
    try:
        return sshsig.dearmor(data)
    except SshError as exc:
        _report(exc)
        error(f"{caller}: sshsig_armor: {_ssherr(exc)}")
        raise


def _revoked(key: PublicKey, path: str) -> bool:
    """sshkey_check_revoked: True if ``path`` (a KRL or a list of keys) revokes the key,
    or cannot be read; False if the key is not in it."""
    from keytools.keyfile import read_file

    try:
        data = read_file(path)
    except SshError:
        return True
    if data.startswith(KRL_MAGIC):
        return _krl_revokes(key, data)
    return _listed(key, data)


def _krl_revokes(key: PublicKey, data: bytes) -> bool:
    """ssh_krl_file_contains_key: keytools.krl (imported only when a KRL is given) says
    whether the KRL revokes the key, its certificate or its CA; a bad KRL revokes all."""
    from keytools.krl import parse_krl

    try:
        return parse_krl(data).is_revoked(key)
    except SshError:
        return True


def _listed(key: PublicKey, data: bytes) -> bool:
    """sshkey_in_file(key, file, strict_type=0, check_ca=1) over a revoked-keys list."""
    from keytools.allowed_signers import read_key
    from keytools.certificate import Certificate
    from keytools.errors import KeyLength

    wanted = [key.plain]
    if isinstance(key, Certificate):
        wanted.append(key.signature_key.plain)
    for raw in data.split(b"\n"):
        line = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape").lstrip(" \t")
        if not line or line[0] == "#":
            continue
        try:
            listed, _ = read_key(line)
        except KeyLength:
            continue
        except SshError:
            return True  # an unreadable list is an error, and errors refuse the signature
        if any(listed.plain.same_key(w) for w in wanted):
            return True
    return False


def verify(opts: KeygenOptions, check_signers: bool) -> int:
    """sig_verify: -Y verify (allowed_signers, -I, -r) and -Y check-novalidate."""
    from keytools import allowed_signers, sshsig
    from keytools.fingerprint import fingerprint
    from keytools.public import type_label

    namespace = opts.principals or ""
    principal = opts.cert_id if check_signers else None
    sign_key: PublicKey | None = None
    show_key = False
    ok = False
    try:
        _, when, show_key = _process_opts(opts, verify_time=True, print_pubkey=True)
        blob = _load_signature(opts.ca_key or "", "sig_verify")
        try:
            sig = sshsig.verify(blob, sys.stdin.buffer, namespace)
        except SshError as exc:
            error(str(exc))
            raise
        except OSError as exc:
            error(f"sshsig_verify_fd: hash_file: read: {exc.strerror}")
            raise SshError() from None
        sign_key = sig.public_key
        if check_signers and opts.hostname is not None and _revoked(sign_key, opts.hostname):
            raise SshError()
        if check_signers:
            try:
                allowed_signers.check_allowed_keys(
                    opts.identity_file or "", sign_key, principal or "", namespace, when, error
                )
            except FileError as exc:
                error(str(exc))
                raise
        ok = True
    except SshError:
        pass
    if not opts.quiet:
        if ok and sign_key is not None:
            fp = fingerprint(sign_key, opts.fingerprint_hash)
            who = f" for {principal}" if principal is not None else ""
            out(f'Good "{namespace}" signature{who} with {type_label(sign_key)} key {fp}\n')
        else:
            out("Could not verify signature.\n")
    if ok and show_key and sign_key is not None:
        out(sign_key.openssh() + "\n")
    return 0 if ok else FAILED


# -- principals ---------------------------------------------------------------------------


def find_principals(opts: KeygenOptions) -> int:
    """sig_find_principals: the principals allowed_signers grants the signature's key."""
    from keytools import allowed_signers, sshsig

    found: list[str] | None = None
    try:
        _, when, _ = _process_opts(opts, verify_time=True)
        blob = _load_signature(opts.ca_key or "", "sig_find_principals")
        try:
            key = sshsig.get_public_key(blob)
        except SshError as exc:
            _report(exc)
            error(f"sig_find_principals: sshsig_get_pubkey: {_ssherr(exc)}")
            raise
        try:
            found = allowed_signers.find_principals(opts.identity_file or "", key, when, error)
        except KeyNotFound:
            pass
        except SshError as exc:
            _report(exc)
            error(f"sig_find_principals: sshsig_find_principal: {_ssherr(exc)}")
    except SshError:
        pass
    if found is None:
        error("No principal matched.")
        return FAILED
    for name in found:
        out(name + "\n")
    return 0


def match_principals(opts: KeygenOptions) -> int:
    """sig_match_principals: every allowed_signers principals field matching -I."""
    from keytools import allowed_signers

    try:
        _process_opts(opts)
    except InvalidArgument:
        return _exit_code(SSH_ERR_INVALID_ARGUMENT)
    try:
        found = allowed_signers.match_principals(
            opts.identity_file or "", opts.cert_id or "", error
        )
    except SshError as exc:
        if isinstance(exc, FileError):
            error(str(exc))
            code = SSH_ERR_SYSTEM_ERROR
        elif isinstance(exc, KeyNotFound):
            code = SSH_ERR_KEY_NOT_FOUND
        else:
            code = SSH_ERR_INVALID_FORMAT
        error("No principal matched.")
        return _exit_code(code)
    for name in found:
        out(name + "\n")
    return 0
