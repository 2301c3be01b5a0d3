"""The public key base class and the registry that maps wire names to key classes."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import ClassVar

from keytools.errors import KeyTypeUnknown
from keytools.wire import Reader, Writer


class PublicKey(abc.ABC):
    """A public key (or certificate) as it travels on the wire.

    Subclasses are frozen dataclasses holding the raw numbers; cryptography objects
    are built only when a signature is verified, so listing keys stays cheap.
    """

    #: sshkey_type() of OpenSSH, printed by ``ssh-keygen -l``: "ED25519", "RSA", ...
    label: ClassVar[str]
    #: True when every field is a byte string, so a decoded blob is already canonical
    #: and can be kept instead of being encoded again (fingerprinting many keys).
    canonical_wire: ClassVar[bool] = False

    @property
    @abc.abstractmethod
    def key_type(self) -> str:
        """The wire name, e.g. ``ssh-ed25519`` or ``ecdsa-sha2-nistp256``."""

    @property
    @abc.abstractmethod
    def bits(self) -> int:
        """OpenSSH's sshkey_size(): modulus bits, curve bits, or 256."""

    @abc.abstractmethod
    def encode_body(self, w: Writer) -> None:
        """Append the type-specific fields that follow the type name."""

    @abc.abstractmethod
    def verify(self, data: bytes, signature: bytes) -> None:
        """Check an SSH signature blob over ``data``; raise SignatureInvalid if wrong."""

    @property
    def plain(self) -> PublicKey:
        """The key without any certificate around it."""
        return self

    @property
    def is_certificate(self) -> bool:
        return False

    @property
    def type_label(self) -> str:
        """OpenSSH's sshkey_type(); certificates add ``-CERT``."""
        return self.label

    def blob(self) -> bytes:
        cached: bytes | None = self.__dict__.get("_blob")
        if cached is None:
            w = Writer().string(self.key_type)
            self.encode_body(w)
            cached = w.getvalue()
            object.__setattr__(self, "_blob", cached)
        return cached

    def keep_blob(self, blob: bytes) -> None:
        """Remember the blob this key was decoded from, if it is canonical by construction."""
        if self.canonical_wire:
            object.__setattr__(self, "_blob", blob)

    def openssh(self, comment: str = "") -> str:
        """The one-line OpenSSH form: ``type base64 [comment]``."""
        from base64 import b64encode

        line = f"{self.key_type} {b64encode(self.blob()).decode('ascii')}"
        return f"{line} {comment}" if comment else line

    def same_key(self, other: PublicKey) -> bool:
        return self.blob() == other.blob()


BodyDecoder = Callable[[str, Reader], PublicKey]
_DECODERS: dict[str, BodyDecoder] = {}


def register(names: tuple[str, ...], decoder: BodyDecoder) -> None:
    for name in names:
        _DECODERS[name] = decoder


def decode_body(key_type: str, r: Reader) -> PublicKey:
    """Decode the fields of ``key_type`` that follow its name in a key blob."""
    decoder = _DECODERS.get(key_type)
    if decoder is None:
        raise KeyTypeUnknown()
    return decoder(key_type, r)


def known_types() -> dict[str, BodyDecoder]:
    """The registered wire names (a live view: membership tests are cheap)."""
    return _DECODERS


def split_signature(signature: bytes) -> tuple[str, Reader]:
    """The algorithm name of a signature blob and a reader over what follows."""
    r = Reader(signature)
    return r.ascii(), r
