"""What every key agreement offers the key exchange engine, in either role.

Public values travel as wire-encoded fields (``string`` for (EC)DH points and KEM blobs,
``mpint`` for finite-field DH), exactly as they enter the exchange hash, and the shared
secret K comes back already encoded (mpint, or string for the hybrid KEMs), since that
encoding is what both the exchange hash and the key derivation consume.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import TYPE_CHECKING

from keytools.wire import Reader

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.hashes import HashAlgorithm


class Agreement(abc.ABC):
    """One ephemeral key agreement (used once)."""

    @abc.abstractmethod
    def client_public(self) -> bytes:
        """Generate the client's ephemeral key; its public field."""

    @abc.abstractmethod
    def read_public(self, r: Reader) -> bytes:
        """Read the peer's public field from a message; returns its canonical encoding."""

    @abc.abstractmethod
    def client_shared(self, server_public: bytes) -> bytes:
        """K, from the server's public field."""

    @abc.abstractmethod
    def server_reply(self, client_public: bytes) -> tuple[bytes, bytes]:
        """Generate the server's half: (its public field, K)."""


def hash_algorithm(name: str) -> HashAlgorithm:
    from cryptography.hazmat.primitives import hashes

    factories: dict[str, Callable[[], HashAlgorithm]] = {
        "sha256": hashes.SHA256,
        "sha384": hashes.SHA384,
        "sha512": hashes.SHA512,
    }
    return factories[name]()


def digest(hash_name: str, *parts: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes

    h = hashes.Hash(hash_algorithm(hash_name))
    for part in parts:
        h.update(part)
    return h.finalize()
