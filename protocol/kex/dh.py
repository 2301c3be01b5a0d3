"""Finite-field Diffie-Hellman: the fixed RFC 3526 groups and group exchange (RFC 4419).

For the RFC 3526 groups, cryptography (OpenSSL) does all the arithmetic and picks a short
private exponent itself. A group sent by a server in group exchange is arbitrary, and
cryptography insists on proving such a p prime before using it (about 30 s for 8192
bits), so there the two modular exponentiations use Python's built-in ``pow`` with an
OpenSSH-sized private exponent (2 x the needed strength, from ``secrets``).
"""

from __future__ import annotations

import contextlib
import functools
import secrets
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

from keytools.errors import DhGexOutOfRange, InvalidFormat
from keytools.wire import Reader, mpint_bytes
from protocol.kex.base import Agreement
from protocol.kex.groups import GENERATOR, GROUP14, GROUP16, GROUP18

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.dh import DHParameters, DHPrivateKey

#: OpenSSH's DH_GRP_MIN and DH_GRP_MAX for group exchange requests.
GEX_MIN = 2048
GEX_MAX = 8192
FIXED_GROUPS = (GROUP14, GROUP16, GROUP18)


@contextlib.contextmanager
def _ffdh_quietly() -> Iterator[None]:
    """cryptography 48 deprecates its FFDH API with a warning users would see on
    stderr at every such key exchange; the groups stay in the protocol's list."""
    from cryptography.utils import CryptographyDeprecationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        yield


@functools.lru_cache(maxsize=8)
def _parameters(p: int, g: int) -> DHParameters:
    from cryptography.hazmat.primitives.asymmetric import dh

    with _ffdh_quietly():
        return dh.DHParameterNumbers(p, g).parameters()


def public_is_valid(y: int, p: int) -> bool:
    """OpenSSH's dh_pub_is_valid: 1 < y < p-1 and more than one bit set."""
    return 1 < y < p - 1 and y.bit_count() > 1


class DhAgreement(Agreement):
    def __init__(self, p: int, g: int = GENERATOR, exponent_bits: int = 512) -> None:
        self.p = p
        self.g = g
        self._known = g == GENERATOR and p in FIXED_GROUPS
        self._bits = min(exponent_bits, p.bit_length() - 1)
        self._key: DHPrivateKey | None = None
        self._x = 0

    def _public(self) -> bytes:
        if self._known:
            with _ffdh_quietly():
                self._key = _parameters(self.p, self.g).generate_private_key()
                y = self._key.public_key().public_numbers().y
        else:
            self._x = secrets.randbits(self._bits) | (1 << (self._bits - 1))
            y = pow(self.g, self._x, self.p)
        if not public_is_valid(y, self.p):
            raise InvalidFormat("invalid public DH value")
        return mpint_bytes(y)

    def _shared(self, peer_field: bytes) -> bytes:
        y = Reader(peer_field).mpint()
        if self._known:
            from cryptography.hazmat.primitives.asymmetric import dh

            assert self._key is not None
            try:
                with _ffdh_quietly():
                    peer = dh.DHPublicNumbers(
                        y, _parameters(self.p, self.g).parameter_numbers())
                    k = int.from_bytes(self._key.exchange(peer.public_key()), "big")
            except ValueError:
                raise InvalidFormat("invalid public DH value") from None
        else:
            k = pow(y, self._x, self.p)
        return mpint_bytes(k)

    def client_public(self) -> bytes:
        return self._public()

    def read_public(self, r: Reader) -> bytes:
        y = r.mpint()
        if not public_is_valid(y, self.p):
            raise InvalidFormat("invalid public DH value")
        return mpint_bytes(y)

    def client_shared(self, server_public: bytes) -> bytes:
        return self._shared(server_public)

    def server_reply(self, client_public: bytes) -> tuple[bytes, bytes]:
        public = self._public()
        return public, self._shared(client_public)


def estimate_bits(strength_bits: int) -> int:
    """OpenSSH's dh_estimate: a group size for a symmetric strength."""
    if strength_bits <= 112:
        return 2048
    if strength_bits <= 128:
        return 3072
    if strength_bits <= 192:
        return 7680
    return 8192


def exponent_bits(need_bytes: int) -> int:
    """OpenSSH's dh_gen_key sizing: twice the needed strength, at least 512 bits."""
    return 2 * max(need_bytes * 8, 256)


def gex_request(need_bytes: int) -> tuple[int, int, int]:
    """(min, preferred, max) bits the client asks for."""
    return GEX_MIN, min(GEX_MAX, estimate_bits(need_bytes * 8)), GEX_MAX


def check_gex_group(p: int, g: int, minimum: int, maximum: int) -> None:
    """The client's checks on a server's group: size within what it asked for, sane g."""
    if not minimum <= p.bit_length() <= maximum:
        raise DhGexOutOfRange()
    if p % 2 == 0 or not 1 < g < p - 1:
        raise InvalidFormat("invalid DH group")


def choose_gex_group(minimum: int, preferred: int, maximum: int) -> tuple[int, int]:
    """The server's pick among the fixed groups for a GEX request, clamped as sshd does."""
    minimum = max(GEX_MIN, minimum)
    maximum = min(GEX_MAX, maximum)
    preferred = min(GEX_MAX, max(GEX_MIN, preferred))
    if maximum < minimum or preferred < minimum or maximum < preferred:
        raise DhGexOutOfRange()
    fitting = [p for p in FIXED_GROUPS if minimum <= p.bit_length() <= maximum]
    if not fitting:
        raise DhGexOutOfRange()
    at_least = [p for p in fitting if p.bit_length() >= preferred]
    return (at_least[0] if at_least else fitting[-1]), GENERATOR
