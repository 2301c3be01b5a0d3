"""The public key base class and the registry that maps wire names to key classes.

The registry is lazy: it knows which module decodes each wire name and imports that
module (which then registers its decoder) the first time such a key is seen, so a
program that reads Ed25519 keys never imports the RSA, DSA, ECDSA or certificate code.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
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

_CERT = "keytools.certificate"
#: every wire name and the module whose import registers its decoder
_MODULES: dict[str, str] = {
    "ssh-ed25519": "keytools.public.ed25519",
    "ssh-rsa": "keytools.public.rsa",
    "ssh-dss": "keytools.public.dsa",
    "ecdsa-sha2-nistp256": "keytools.public.ecdsa",
    "ecdsa-sha2-nistp384": "keytools.public.ecdsa",
    "ecdsa-sha2-nistp521": "keytools.public.ecdsa",
    "sk-ssh-ed25519@openssh.com": "keytools.public.sk",
    "sk-ecdsa-sha2-nistp256@openssh.com": "keytools.public.sk",
    "ssh-ed25519-cert-v01@openssh.com": _CERT,
    "ssh-rsa-cert-v01@openssh.com": _CERT,
    "ssh-dss-cert-v01@openssh.com": _CERT,
    "ecdsa-sha2-nistp256-cert-v01@openssh.com": _CERT,
    "ecdsa-sha2-nistp384-cert-v01@openssh.com": _CERT,
    "ecdsa-sha2-nistp521-cert-v01@openssh.com": _CERT,
    "sk-ssh-ed25519-cert-v01@openssh.com": _CERT,
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com": _CERT,
}


def register(names: tuple[str, ...], decoder: BodyDecoder) -> None:
    for name in names:
        _DECODERS[name] = decoder
        _MODULES.setdefault(name, decoder.__module__)


def decoder_for(key_type: str) -> BodyDecoder | None:
    """The decoder of ``key_type``, importing its module on first use; None if unknown."""
    decoder = _DECODERS.get(key_type)
    if decoder is None:
        module = _MODULES.get(key_type)
        if module is None:
            return None
        __import__(module)
        decoder = _DECODERS.get(key_type)
    return decoder


def decode_body(key_type: str, r: Reader) -> PublicKey:
    """Decode the fields of ``key_type`` that follow its name in a key blob."""
    decoder = _DECODERS.get(key_type) or decoder_for(key_type)
    if decoder is None:
        raise KeyTypeUnknown()
    return decoder(key_type, r)


def known_types() -> Mapping[str, str]:
    """Every wire name a key blob may start with (membership tests are cheap); the values
    name the modules that decode them, imported only when such a key is decoded."""
    return _MODULES


def split_signature(signature: bytes) -> tuple[str, Reader]:
    """The algorithm name of a signature blob and a reader over what follows."""
    r = Reader(signature)
    return r.ascii(), r
