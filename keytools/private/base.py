"""The private key base class: what every key type can do with its secret half."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from keytools.wire import Writer

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

    from keytools.public import PublicKey

T = TypeVar("T")


class PrivateKey(abc.ABC):
    """A private key. Subclasses are frozen dataclasses holding the raw numbers.

    The matching cryptography object is built on first use and kept in the instance's
    ``_cache`` field (excluded from comparison and repr), so signing many times does
    not rebuild it, and parsing a key file never imports more than it needs.
    """

    _cache: dict[str, Any]

    @property
    @abc.abstractmethod
    def public(self) -> PublicKey:
        """The public half."""

    @property
    def key_type(self) -> str:
        """The wire name, e.g. ``ssh-ed25519``."""
        return self.public.key_type

    @property
    def bits(self) -> int:
        return self.public.bits

    @abc.abstractmethod
    def encode_private_fields(self, w: Writer) -> None:
        """Append the fields after the type name (openssh-key-v1 / agent ADD_IDENTITY)."""

    @abc.abstractmethod
    def sign(self, data: bytes, algorithm: str | None = None) -> bytes:
        """An SSH signature blob (string algorithm, string signature...) over ``data``."""

    @abc.abstractmethod
    def to_cryptography(self) -> PrivateKeyTypes:
        """The cryptography private key object (cached)."""

    def _cached(self, name: str, build: Callable[[], T]) -> T:
        value: T | None = self._cache.get(name)
        if value is None:
            value = build()
            self._cache[name] = value
        return value

    def private_blob(self) -> bytes:
        """string(type) + fields, as in openssh-key-v1's private section."""
        w = Writer().string(self.key_type)
        self.encode_private_fields(w)
        return w.getvalue()


def signature_blob(algorithm: str, *parts: bytes) -> bytes:
    """string(algorithm) followed by each part as a string."""
    w = Writer().string(algorithm)
    for part in parts:
        w.string(part)
    return w.getvalue()
