"""The project's exception types.

Each class carries OpenSSH's wording for the matching ssherr code, so a CLI can print
``str(exc)`` and read like the real tool. Every parser in the project raises one of
these (never IndexError, struct.error or a cryptography exception).
"""

from __future__ import annotations


class SshError(Exception):
    """Base of every error the project raises on purpose."""

    default_message = "unexpected internal error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message if message is not None else self.default_message)

    @property
    def message(self) -> str:
        return str(self.args[0])


class MessageIncomplete(SshError):
    """A field runs past the end of its buffer (a short read)."""

    default_message = "incomplete message"


class InvalidFormat(SshError):
    default_message = "invalid format"


class BignumNegative(InvalidFormat):
    default_message = "bignum is negative"


class BignumTooLarge(InvalidFormat):
    default_message = "bignum is too large"


class StringTooLarge(InvalidFormat):
    default_message = "string is too large"


class UnexpectedTrailingData(InvalidFormat):
    default_message = "unexpected bytes remain after decoding"


class KeyTypeUnknown(SshError):
    default_message = "unknown or unsupported key type"


class KeyTypeMismatch(InvalidFormat):
    default_message = "key type does not match"


class CurveInvalid(InvalidFormat):
    default_message = "invalid elliptic curve"


class CurveMismatch(InvalidFormat):
    default_message = "elliptic curve does not match"


class InvalidEcValue(InvalidFormat):
    default_message = "invalid elliptic curve value"


class KeyLength(SshError):
    default_message = "Invalid key length"


class CertificateInvalid(InvalidFormat):
    default_message = "invalid certificate"


class CertificateUnknownType(InvalidFormat):
    default_message = "unknown/unsupported certificate type"


class CertificateInvalidSignKey(InvalidFormat):
    """The CA key inside a certificate is unreadable or itself a certificate."""

    default_message = "invalid certificate signing key"


class SignatureInvalid(SshError):
    default_message = "incorrect signature"


class SignatureAlgorithmUnsupported(SshError):
    default_message = "signature algorithm not supported"


class WrongPassphrase(SshError):
    default_message = "incorrect passphrase supplied to decrypt private key"


class UnknownCipher(SshError):
    default_message = "key encrypted using unsupported cipher"


class BadPermissions(SshError):
    """A private key file readable by others; ``warning`` is the block OpenSSH prints."""

    default_message = "bad permissions"

    def __init__(self, message: str | None = None, warning: str = "") -> None:
        super().__init__(message)
        #: ssh-keygen's multi-line "UNPROTECTED PRIVATE KEY FILE" text (no final newline).
        self.warning = warning


class MacInvalid(SshError):
    default_message = "message authentication code incorrect"


class PassphraseTooShort(SshError):
    default_message = "passphrase is too short (minimum five characters)"


class FeatureUnsupported(SshError):
    default_message = "requested feature not supported"


class InvalidArgument(SshError):
    default_message = "invalid argument"


def is_library_panic(exc: BaseException) -> bool:
    """True for a Rust panic surfacing from cryptography (pyo3's PanicException).

    It derives from BaseException, so parsers that hand hostile bytes to cryptography
    check for it explicitly and turn it into InvalidFormat.
    """
    return type(exc).__name__ == "PanicException"


class FileError(SshError):
    """An operating-system error on a file, worded as strerror()."""

    def __init__(self, message: str | None = None, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno

    @classmethod
    def from_os(cls, exc: OSError) -> FileError:
        return cls(exc.strerror or str(exc), exc.errno)


class KeyNotFound(SshError):
    """No line of a key list (allowed_signers, ...) matched: SSH_ERR_KEY_NOT_FOUND."""

    default_message = "key not found"


class KrlBadMagic(InvalidFormat):
    """A file that does not start with "SSHKRL\\n\\0": SSH_ERR_KRL_BAD_MAGIC."""

    default_message = "KRL file has invalid magic number"


class KeyRevoked(SshError):
    """A key or certificate listed in a KRL: SSH_ERR_KEY_REVOKED."""

    default_message = "Key is revoked"


class ConnectionClosed(SshError):
    """The peer closed the connection: SSH_ERR_CONN_CLOSED."""

    default_message = "Connection closed"


class ConnectionTimeout(SshError):
    """A connection step did not finish in time: SSH_ERR_CONN_TIMEOUT."""

    default_message = "Connection timed out"


class ConnectionCorrupt(SshError):
    """A packet that cannot be framed (bad length or padding): SSH_ERR_CONN_CORRUPT."""

    default_message = "Connection corrupted"


class ProtocolError(SshError):
    """A message the protocol does not allow here: SSH_ERR_PROTOCOL_ERROR."""

    default_message = "Protocol error"


class Disconnected(SshError):
    """The connection was ended by a DISCONNECT message: SSH_ERR_DISCONNECTED."""

    default_message = "disconnected"


class NoProtocolVersion(SshError):
    """The peer's identification string is missing or not SSH-2: SSH_ERR_NO_PROTOCOL_VERSION."""

    default_message = "could not read protocol version"


class DhGexOutOfRange(SshError):
    default_message = "DH GEX group out of range"


class NegotiationFailed(SshError):
    """No algorithm in common; ``their_offer`` is the peer's list (ssh prints it)."""

    def __init__(self, message: str | None = None, their_offer: str = "") -> None:
        super().__init__(message)
        self.their_offer = their_offer


class NoCipherMatch(NegotiationFailed):
    default_message = "no matching cipher found"


class NoMacMatch(NegotiationFailed):
    default_message = "no matching MAC found"


class NoCompressMatch(NegotiationFailed):
    default_message = "no matching compression method found"


class NoKexMatch(NegotiationFailed):
    default_message = "no matching key exchange method found"


class NoHostKeyMatch(NegotiationFailed):
    default_message = "no matching host key type found"
