"""The ``ssh-keygen -L`` description of a certificate (print_cert and show_options).

``listing`` yields the text in the pieces ssh-keygen prints and raises InvalidFormat with
ssh-keygen's fatal() message where it would stop (a malformed option), so a caller can
reproduce how much of the output a real ssh-keygen would have flushed by then.
"""

from __future__ import annotations

from collections.abc import Iterator

from keytools.cert_validity import format_validity
from keytools.certificate import Certificate
from keytools.errors import InvalidFormat, SshError
from keytools.fingerprint import fingerprint
from keytools.wire import Reader

_INDENT = " " * 16
_FLAG_EXTENSIONS = frozenset((
    "permit-X11-forwarding", "permit-agent-forwarding", "permit-port-forwarding",
    "permit-pty", "permit-user-rc", "no-touch-required",
))
_STRING_CRITICAL = frozenset(("force-command", "source-address"))


def _options(options: tuple[tuple[str, bytes], ...], critical: bool) -> Iterator[str]:
    for name, data in options:
        if "\0" in name:
            raise InvalidFormat("show_options: parse option: invalid format")
        yield f"{_INDENT}{name}"
        rest = data
        if not critical and name in _FLAG_EXTENSIONS:
            yield "\n"
        elif critical and name in _STRING_CRITICAL:
            r = Reader(data)
            try:
                value = r.cstring()
            except SshError as exc:
                raise InvalidFormat(f"show_options: parse critical: {exc}") from None
            yield f" {value}\n"
            rest = r.rest()
        elif critical and name == "verify-required":
            yield "\n"
        elif data:
            yield f" UNKNOWN OPTION: {data.hex()} (len {len(data)})\n"
            rest = b""
        else:
            yield " UNKNOWN FLAG OPTION\n"
        if rest:
            raise InvalidFormat("Option corrupt: extra data at end")


def listing(cert: Certificate, hash_name: str = "sha256") -> Iterator[str]:
    """print_cert(): the indented block ``ssh-keygen -L`` prints after ``path:``."""
    key_fp = fingerprint(cert, hash_name)
    ca_fp = fingerprint(cert.signature_key, hash_name)
    yield f"        Type: {cert.key_type} {cert.kind} certificate\n"
    yield f"        Public key: {cert.type_label} {key_fp}\n"
    yield (f"        Signing CA: {cert.signature_key.type_label} {ca_fp} "
           f"(using {cert.signature_type})\n")
    yield f'        Key ID: "{cert.key_id}"\n'
    yield f"        Serial: {cert.serial}\n"
    yield f"        Valid: {format_validity(cert.valid_after, cert.valid_before)}\n"
    yield "        Principals: "
    if cert.principals:
        yield "".join(f"\n{_INDENT}{p}" for p in cert.principals) + "\n"
    else:
        yield "(none)\n"
    yield "        Critical Options: "
    if cert.critical_options:
        yield "\n"
        yield from _options(cert.critical_options, True)
    else:
        yield "(none)\n"
    yield "        Extensions: "
    if cert.extensions:
        yield "\n"
        yield from _options(cert.extensions, False)
    else:
        yield "(none)\n"


def describe(cert: Certificate, hash_name: str = "sha256") -> str:
    """The whole listing as one string (InvalidFormat if an option is malformed)."""
    return "".join(listing(cert, hash_name))
