"""The exchange hash H and the session keys derived from K and H (RFC 4253 7.2)."""

from __future__ import annotations

from dataclasses import dataclass

from keytools.wire import Writer
from protocol.ciphers import CIPHERS, MACS, Protection, make_protection
from protocol.kex.base import digest
from protocol.kex.kexinit import Algorithms


@dataclass(frozen=True)
class HashInputs:
    """Everything of the exchange hash that is known before the method runs."""

    client_version: str
    server_version: str
    client_kexinit: bytes
    server_kexinit: bytes


def exchange_hash(
    hash_name: str, inputs: HashInputs, host_key_blob: bytes, middle: bytes,
    client_public: bytes, server_public: bytes, shared: bytes,
) -> bytes:
    """H = HASH(V_C || V_S || I_C || I_S || K_S || [group exchange fields] || Q_C || Q_S || K).

    ``client_public``, ``server_public`` and ``shared`` are already wire-encoded.
    """
    w = (
        Writer()
        .string(inputs.client_version)
        .string(inputs.server_version)
        .string(inputs.client_kexinit)
        .string(inputs.server_kexinit)
        .string(host_key_blob)
        .raw(middle)
        .raw(client_public)
        .raw(server_public)
        .raw(shared)
    )
    return digest(hash_name, w.getvalue())


def derive(hash_name: str, shared: bytes, h: bytes, letter: bytes, session_id: bytes,
           size: int) -> bytes:
    """HASH(K || H || letter || session_id), extended by HASH(K || H || K1 || ...) to ``size``."""
    if size == 0:
        return b""
    out = digest(hash_name, shared, h, letter, session_id)
    while len(out) < size:
        out += digest(hash_name, shared, h, out)
    return out[:size]


def session_protections(
    hash_name: str, shared: bytes, h: bytes, session_id: bytes, algs: Algorithms
) -> tuple[Protection, Protection]:
    """(client-to-server, server-to-client) protections for the new keys."""

    def one(cipher: str, mac: str | None, iv_letter: bytes, key_letter: bytes,
            mac_letter: bytes) -> Protection:
        spec = CIPHERS[cipher]
        mac_len = MACS[mac].key_len if mac is not None else 0
        return make_protection(
            cipher, mac,
            derive(hash_name, shared, h, key_letter, session_id, spec.key_len),
            derive(hash_name, shared, h, iv_letter, session_id, spec.iv_len),
            derive(hash_name, shared, h, mac_letter, session_id, mac_len),
        )

    c2s = one(algs.cipher_c2s, algs.mac_c2s, b"A", b"C", b"E")
    s2c = one(algs.cipher_s2c, algs.mac_s2c, b"B", b"D", b"F")
    return c2s, s2c
