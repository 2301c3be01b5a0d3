"""The signer abstraction: anything with a public key that can sign.

keytools ``PrivateKey`` objects fit as they are (``.public`` and a synchronous
``sign(data, algorithm)``); agent-held keys fit with an ``async def sign``. User
authentication and the server's host key signature both go through ``sign_with``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from keytools.public import PublicKey


@runtime_checkable
class Signer(Protocol):
    @property
    def public(self) -> PublicKey:
        """The public key (or certificate) the server will see."""
        ...

    def sign(self, data: bytes, algorithm: str | None = None) -> bytes | Awaitable[bytes]:
        """An SSH signature blob over ``data`` with the named signature algorithm."""
        ...


@dataclass(frozen=True)
class CertifiedSigner:
    """A private key presented with its certificate: the server sees the certificate,
    the key signs (with the certificate's plain signature algorithm)."""

    key: Signer
    certificate: PublicKey

    @property
    def public(self) -> PublicKey:
        return self.certificate

    def sign(self, data: bytes, algorithm: str | None = None) -> bytes | Awaitable[bytes]:
        return self.key.sign(data, algorithm)


async def sign_with(signer: Signer, data: bytes, algorithm: str) -> bytes:
    """Sign, awaiting the result when the signer is asynchronous (an agent)."""
    result = signer.sign(data, algorithm)
    if inspect.isawaitable(result):
        return await result
    return result
