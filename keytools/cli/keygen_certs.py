"""pykeygen -s (sign certificates with a CA key) and -L (list certificates).

Messages, their order and exit codes are ssh-keygen's: -V and -z are judged first (ssh-keygen
does so while reading its options), then -I, then each -O, then the CA key, then each public
key in turn. One deliberate difference: a certificate signed without -n gets a warning,
because OpenSSH 10.3 and pyssh accept a certificate with no principals nowhere.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, BinaryIO

from keytools.cli.keygen_keys import _identity, _load_private
from keytools.cli.keysources import (
    AgentListFailed,
    AgentUnavailable,
    KeySourceError,
    Signer,
    unavailable,
)
from keytools.cli.output import PROGNAME, Fatal, error
from keytools.cli.pykeygen import KeygenOptions
from keytools.errors import (
    CurveMismatch,
    InvalidFormat,
    KeyNotFound,
    KeyTypeMismatch,
    SshError,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from keytools.private import PrivateKey
    from keytools.public import PublicKey

_U64 = 0xFFFF_FFFF_FFFF_FFFF


# -- -s ------------------------------------------------------------------------------------


def _serial(text: str | None) -> tuple[int, bool]:
    """-z [+]N: the first serial and whether it counts up per key."""
    if text is None:
        return 0, False
    auto = text.startswith("+")
    digits = text[1:] if auto else text
    if not digits or not digits.isascii() or not digits.isdigit() or int(digits) > _U64:
        raise Fatal(f'Invalid serial number "{digits}"')
    return int(digits), auto


#: sshkey_type_from_name(): full names match exactly, plain short names in any case
_KIND_BY_NAME = {
    "ssh-rsa": "RSA", "rsa-sha2-256": "RSA", "rsa-sha2-512": "RSA", "ssh-dss": "DSA",
    "ssh-ed25519": "ED25519", "ecdsa-sha2-nistp256": "ECDSA", "ecdsa-sha2-nistp384": "ECDSA",
    "ecdsa-sha2-nistp521": "ECDSA", "sk-ssh-ed25519@openssh.com": "ED25519-SK",
    "sk-ecdsa-sha2-nistp256@openssh.com": "ECDSA-SK",
    "webauthn-sk-ecdsa-sha2-nistp256@openssh.com": "ECDSA-SK",
}
_SHORT_NAMES = frozenset(_KIND_BY_NAME.values())


def _ca_algorithm(name: str | None, ca: PrivateKey | PublicKey) -> str | None:
    """-t with -s: the CA signature algorithm, which must suit the CA key's type."""
    from keytools.certificate import DEFAULT_CA_ALGORITHMS

    if name is None:
        return DEFAULT_CA_ALGORITHMS.get(ca.key_type)
    kind = _KIND_BY_NAME.get(name)
    if kind is None and name.upper() in _SHORT_NAMES:
        kind = name.upper()
    if kind != _KIND_BY_NAME.get(ca.key_type):
        raise Fatal(f"CA key type {ca.key_type} doesn't match specified {name}")
    return name


def _load_ca_public(path: str, what: str) -> PublicKey:
    from keytools.keyfile import load_public

    try:
        return load_public(path)[0]
    except SshError as exc:
        raise Fatal(f"{what}: {exc}") from None


def _agent_ca(opts: KeygenOptions, path: str) -> tuple[PublicKey, Signer]:
    """-U: the CA's public key from ``path``, signing through the agent that holds it."""
    lookup = opts.sources.agent_signer
    if lookup is None:
        raise Fatal(unavailable("signing with a CA key in an agent (-U)"), 1)
    ca = _load_ca_public(path, f"Cannot load CA public key {path}")
    try:
        return ca, lookup(ca)
    except AgentUnavailable as exc:
        raise Fatal(f"Cannot use public key for CA signature: {exc}") from None
    except AgentListFailed as exc:
        raise Fatal(f"Retrieve agent key list: {exc}") from None
    except KeyNotFound:
        raise Fatal(f"CA key {path} not found in agent") from None


def _token_ca(opts: KeygenOptions, path: str) -> tuple[PublicKey, Signer]:
    """-D: the token key whose public half is in ``path`` (-P is the PIN; without it
    the token asks when it first signs), as ssh-keygen's load_pkcs11_key()."""
    lister = opts.sources.pkcs11_keys
    if lister is None:
        raise Fatal(unavailable("signing with a PKCS#11 CA key (-D)"), 1)
    ca = _load_ca_public(path, f'Couldn\'t load CA public key "{path}"')
    assert opts.pkcs11_provider is not None
    try:
        keys = lister(opts.pkcs11_provider, opts.passphrase)
    except KeySourceError:
        keys = []
    if not keys:
        raise Fatal("cannot read public key from pkcs11")
    found = [k for k in keys if k.key.plain.same_key(ca.plain)]
    if not found:
        raise Fatal(f"No PKCS#11 key matching {opts.ca_key} found")
    return found[-1].key, found[-1].sign


def _principals(text: str | None) -> list[str]:
    if text is None:
        return []
    from keytools.certificate import MAX_PRINCIPALS

    names = text.split(",")
    if any(not name for name in names):
        raise Fatal("Empty principal name")
    if len(names) > MAX_PRINCIPALS:
        raise Fatal("Too many certificate principals specified")
    return names


def _vis(message: str) -> str:
    """What OpenSSH's log functions print: strnvis(VIS_SAFE|VIS_OCTAL) of the text."""
    out = []
    for byte in message.encode("utf-8", "surrogateescape")[:1023]:
        if byte == 0x5C:
            out.append("\\\\")
        elif 0x20 <= byte < 0x7F or byte in (0x07, 0x08, 0x09, 0x0A, 0x0D):
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03o}")
    return "".join(out)


def do_ca_sign(opts: KeygenOptions) -> int:
    from keytools.cert_options import build_options
    from keytools.cert_validity import FOREVER, format_validity, parse_validity
    from keytools.certificate import HOST_CERT, USER_CERT, certify
    from keytools.keyfile import load_public, save_public

    try:
        valid = parse_validity(opts.validity) if opts.validity is not None else (0, FOREVER)
    except SshError as exc:
        raise Fatal(str(exc)) from None
    serial, auto_serial = _serial(opts.serial)
    if opts.cert_id is None:
        raise Fatal("Must specify key id (-I) when certifying")
    try:
        critical, extensions = build_options(opts.options, opts.host_cert, error)
    except SshError as exc:
        raise Fatal(str(exc)) from None
    assert opts.ca_key is not None
    ca_path = os.path.expanduser(opts.ca_key)
    ca: PrivateKey | PublicKey
    signer: Signer | None = None
    if opts.pkcs11_provider is not None:
        ca, signer = _token_ca(opts, ca_path)
    elif opts.prefer_agent:
        ca, signer = _agent_ca(opts, ca_path)
    else:
        ca, _, _ = _load_private(ca_path, opts.passphrase, "Enter passphrase: ",
                                 f'Load key "{ca_path}"')
    algorithm = _ca_algorithm(opts.key_type, ca)
    cert_type = HOST_CERT if opts.host_cert else USER_CERT
    for arg in opts.args:
        principals = _principals(opts.principals)
        path = os.path.expanduser(arg)
        try:
            key, comment = load_public(path)
        except SshError as exc:
            raise Fatal(f'load pubkey "{path}": {exc}') from None
        if key.is_certificate:
            raise Fatal(f'do_ca_sign: key "{path}" type {key.type_label} cannot be certified')
        try:
            cert = certify(key, ca, key_id=opts.cert_id, cert_type=cert_type,
                           principals=principals, valid_after=valid[0], valid_before=valid[1],
                           critical_options=critical, extensions=extensions, serial=serial,
                           algorithm=algorithm, signer=signer)
        except SshError as exc:
            how = "" if signer is None or opts.pkcs11_provider is not None else " via agent"
            what = f"{path}{how}" if how else f"key {path}"
            raise Fatal(f"Couldn't certify {what}: {exc}") from None
        out = (path[:-4] if path.endswith(".pub") else path) + "-cert.pub"
        try:
            save_public(out, cert, comment)
        except SshError as exc:
            raise Fatal(f"Unable to save public key to {opts.identity_file or ''}: {exc}") from None
        if not opts.quiet:
            names = f" for {opts.principals}" if opts.principals is not None else ""
            error(_vis(f'Signed {cert.kind} key {out}: id "{cert.key_id}" serial {cert.serial}'
                       f"{names} valid {format_validity(cert.valid_after, cert.valid_before)}"))
            if not principals:
                error(f"{PROGNAME}: warning: {out} has no principals (-n): OpenSSH 10.3 and "
                      "pyssh accept such a certificate nowhere")
        if auto_serial:
            serial = (serial + 1) & _U64
    return 0


# -- -L ------------------------------------------------------------------------------------

#: names sshkey_read() accepts for a key of another name (signature-algorithm aliases)
_ALIASES = {
    "rsa-sha2-256": "ssh-rsa",
    "rsa-sha2-512": "ssh-rsa",
    "rsa-sha2-256-cert-v01@openssh.com": "ssh-rsa-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com": "ssh-rsa-cert-v01@openssh.com",
    "webauthn-sk-ecdsa-sha2-nistp256@openssh.com": "sk-ecdsa-sha2-nistp256@openssh.com",
}
_BLANKS = " \t"


def _family(name: str) -> str:
    """The key type without its curve: OpenSSH reports a curve change separately."""
    if name.startswith("ecdsa-sha2-nistp"):
        return "ecdsa-cert" if name.endswith("-cert-v01@openssh.com") else "ecdsa"
    return name


def read_key(text: str) -> PublicKey:
    """sshkey_read() of ``type base64 ...`` (leading blanks already skipped), with
    OpenSSH's errors: the CA signature of a certificate is checked here."""
    import binascii

    from keytools.certificate import decode_key_checked
    from keytools.public.base import known_types

    end = next((i for i, c in enumerate(text) if c in _BLANKS), -1)
    if end < 0:
        raise InvalidFormat()
    name = text[:end]
    expected = _ALIASES.get(name, name)
    if expected not in known_types():
        raise InvalidFormat()
    rest = text[end:].lstrip(_BLANKS)
    if not rest:
        raise InvalidFormat()
    token = rest[: next((i for i, c in enumerate(rest) if c in _BLANKS), len(rest))]
    try:
        blob = binascii.a2b_base64(token.translate(str.maketrans("", "", "\n\r\v\f"))
                                   .encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise InvalidFormat() from None
    key = decode_key_checked(blob)
    if _family(key.key_type) != _family(expected):
        raise KeyTypeMismatch()
    if key.key_type != expected:
        raise CurveMismatch()
    return key


class _StdioBuffer:
    """stdout as C stdio buffers it, so a fatal error drops what ssh-keygen would drop.

    ssh-keygen leaves through _exit() on fatal(): output still in the stdio buffer is
    lost. On a terminal that is the unfinished line; elsewhere all but whole blocks.
    """

    def __init__(self) -> None:
        self.pending = bytearray()
        try:
            fd = sys.stdout.fileno()
            self.tty = os.isatty(fd)
            self.block = os.fstat(fd).st_blksize or 4096
        except (AttributeError, OSError, ValueError):
            self.tty, self.block = False, 4096

    def write(self, text: str) -> None:
        self.pending += text.encode("utf-8", "surrogateescape")
        if self.tty:
            cut = self.pending.rfind(b"\n") + 1
        else:
            cut = len(self.pending) // self.block * self.block
        if cut:
            self._emit(bytes(self.pending[:cut]))
            del self.pending[:cut]

    def close(self) -> None:
        if self.pending:
            self._emit(bytes(self.pending))
            self.pending.clear()

    def abandon(self) -> None:
        self.pending.clear()

    @staticmethod
    def _emit(data: bytes) -> None:
        target = getattr(sys.stdout, "buffer", None)
        if target is None:
            sys.stdout.write(data.decode("utf-8", "surrogateescape"))
            return
        sys.stdout.flush()
        target.write(data)
        target.flush()


def _open(path: str) -> BinaryIO | None:
    """The file to list; None for a directory (ssh-keygen reads nothing from it)."""
    if path == "-":
        return sys.stdin.buffer
    try:
        os.stat(path)
    except OSError as exc:
        raise Fatal(f"{PROGNAME}: {path}: {exc.strerror}") from None
    try:
        return open(path, "rb")
    except IsADirectoryError:
        return None
    except OSError as exc:
        raise Fatal(f"fopen {path}: {exc.strerror}") from None


def _lines(stream: BinaryIO) -> Iterator[bytes]:
    """getline() until the end or the first read error (ssh-keygen stops quietly)."""
    while True:
        try:
            line = stream.readline()
        except OSError:
            return
        if not line:
            return
        yield line


def do_show_cert(opts: KeygenOptions) -> int:
    from keytools.cert_listing import listing
    from keytools.certificate import Certificate

    path = _identity(opts, "Enter file in which the key is")
    label = "(stdin)" if path == "-" else path
    stream = _open(path)
    if stream is None:
        return 1
    stdout = _StdioBuffer()
    found = False
    try:
        for number, raw in enumerate(_lines(stream), 1):
            line = raw.decode("utf-8", "surrogateescape").lstrip(_BLANKS)
            if line.startswith("#") or not line:
                continue
            try:
                key = read_key(line)
            except SshError as exc:
                error(f"{label}:{number}: invalid key: {exc}")
                continue
            if not isinstance(key, Certificate):
                error(f"{label}:{number} is not a certificate")
                continue
            found = True
            stdout.write(f"{label}:\n" if path != "-" and number == 1 else f"{label}:{number}:\n")
            try:
                for piece in listing(key, opts.fingerprint_hash):
                    stdout.write(piece)
            except SshError as exc:
                stdout.abandon()
                raise Fatal(str(exc)) from None
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    stdout.close()
    return 0 if found else 1
