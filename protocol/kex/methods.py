"""The key exchange methods by name: each one's hash and agreement (None = group exchange)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from keytools.errors import NoKexMatch
from protocol.kex.base import Agreement
from protocol.kex.dh import DhAgreement
from protocol.kex.ecdh import EcdhAgreement, X25519Agreement
from protocol.kex.groups import GROUP14, GROUP16, GROUP18
from protocol.kex.mlkem import MlKemX25519Agreement

GEX_SHA256 = "diffie-hellman-group-exchange-sha256"


@dataclass(frozen=True)
class KexMethod:
    name: str
    hash_name: str
    #: builds the agreement for one run; None for group exchange (the group comes later)
    agreement: Callable[[], Agreement] | None

    @property
    def group_exchange(self) -> bool:
        return self.agreement is None


def _dh(p: int) -> Callable[[], Agreement]:
    return lambda: DhAgreement(p)


METHODS: dict[str, KexMethod] = {
    m.name: m
    for m in (
        KexMethod("mlkem768x25519-sha256", "sha256", MlKemX25519Agreement),
        KexMethod("curve25519-sha256", "sha256", X25519Agreement),
        KexMethod("curve25519-sha256@libssh.org", "sha256", X25519Agreement),
        KexMethod("ecdh-sha2-nistp256", "sha256", lambda: EcdhAgreement("nistp256")),
        KexMethod("ecdh-sha2-nistp384", "sha384", lambda: EcdhAgreement("nistp384")),
        KexMethod("ecdh-sha2-nistp521", "sha512", lambda: EcdhAgreement("nistp521")),
        KexMethod(GEX_SHA256, "sha256", None),
        KexMethod("diffie-hellman-group14-sha256", "sha256", _dh(GROUP14)),
        KexMethod("diffie-hellman-group16-sha512", "sha512", _dh(GROUP16)),
        KexMethod("diffie-hellman-group18-sha512", "sha512", _dh(GROUP18)),
    )
}


def get_method(name: str) -> KexMethod:
    method = METHODS.get(name)
    if method is None:
        raise NoKexMatch(their_offer=name)
    return method
