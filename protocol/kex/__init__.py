"""Key exchange: KEXINIT negotiation, the methods, the exchange hash and key derivation,
host key signatures, and the engine that runs a kex (first or rekey) in either role."""

from __future__ import annotations

from protocol.kex.engine import HostKeyVerifier, KexEngine, KexHooks
from protocol.kex.kexinit import Algorithms, KexInit, Preferences, negotiate
from protocol.kex.methods import METHODS, KexMethod

__all__ = [
    "METHODS",
    "Algorithms",
    "HostKeyVerifier",
    "KexEngine",
    "KexHooks",
    "KexInit",
    "KexMethod",
    "Preferences",
    "negotiate",
]
