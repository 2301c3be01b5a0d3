"""SSH_MSG_KEXINIT: the algorithm offer, its wire form, and negotiation (RFC 4253 7.1).

The pseudo-algorithms that ride in the kex list (ext-info-c/-s, the strict-kex markers)
are only ever offered in the first KEXINIT and never chosen as a method.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from keytools.errors import (
    InvalidFormat,
    NegotiationFailed,
    NoCipherMatch,
    NoCompressMatch,
    NoHostKeyMatch,
    NoKexMatch,
    NoMacMatch,
)
from keytools.wire import Reader, Writer
from protocol import messages
from protocol.ciphers import CIPHERS

EXT_INFO_CLIENT = "ext-info-c"
EXT_INFO_SERVER = "ext-info-s"
STRICT_CLIENT = "kex-strict-c-v00@openssh.com"
STRICT_SERVER = "kex-strict-s-v00@openssh.com"
MARKERS = frozenset({EXT_INFO_CLIENT, EXT_INFO_SERVER, STRICT_CLIENT, STRICT_SERVER})

# OpenSSH 10's orders, minus what this implementation lacks (sntrup761, umac, sk host keys).
DEFAULT_KEX = (
    "mlkem768x25519-sha256",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group-exchange-sha256",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group14-sha256",
)
DEFAULT_HOST_KEY_ALGORITHMS = (
    "ssh-ed25519-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com",
    "rsa-sha2-256-cert-v01@openssh.com",
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
)
DEFAULT_CIPHERS = (
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
)
DEFAULT_MACS = (
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha2-256",
    "hmac-sha2-512",
    "hmac-sha1-etm@openssh.com",
    "hmac-sha1",
)
#: none first: like ssh's Compression=no, zlib only if the user asks (or the peer insists)
DEFAULT_COMPRESSION = ("none", "zlib@openssh.com")


@dataclass(frozen=True)
class Preferences:
    """What this side offers, most preferred first."""

    kex: tuple[str, ...] = DEFAULT_KEX
    host_key: tuple[str, ...] = DEFAULT_HOST_KEY_ALGORITHMS
    ciphers: tuple[str, ...] = DEFAULT_CIPHERS
    macs: tuple[str, ...] = DEFAULT_MACS
    compression: tuple[str, ...] = DEFAULT_COMPRESSION


@dataclass(frozen=True)
class KexInit:
    """One side's KEXINIT; ``payload`` is the exact message (it enters the exchange hash)."""

    cookie: bytes
    kex: tuple[str, ...]
    host_key: tuple[str, ...]
    ciphers_c2s: tuple[str, ...]
    ciphers_s2c: tuple[str, ...]
    macs_c2s: tuple[str, ...]
    macs_s2c: tuple[str, ...]
    compression_c2s: tuple[str, ...]
    compression_s2c: tuple[str, ...]
    languages_c2s: tuple[str, ...] = ()
    languages_s2c: tuple[str, ...] = ()
    first_kex_follows: bool = False
    payload: bytes = field(default=b"", compare=False, repr=False)

    @classmethod
    def build(
        cls, prefs: Preferences, host_key: tuple[str, ...] | None = None,
        extra_kex: tuple[str, ...] = (),
    ) -> KexInit:
        """Our offer; ``extra_kex`` appends the first-kex markers."""
        hk = prefs.host_key if host_key is None else host_key
        draft = cls(
            os.urandom(16), prefs.kex + extra_kex, hk, prefs.ciphers, prefs.ciphers,
            prefs.macs, prefs.macs, prefs.compression, prefs.compression,
        )
        return cls.parse(draft.encode())

    def encode(self) -> bytes:
        w = Writer().byte(messages.KEXINIT).raw(self.cookie)
        for names in (
            self.kex, self.host_key, self.ciphers_c2s, self.ciphers_s2c, self.macs_c2s,
            self.macs_s2c, self.compression_c2s, self.compression_s2c, self.languages_c2s,
            self.languages_s2c,
        ):
            w.name_list(names)
        return w.boolean(self.first_kex_follows).uint32(0).getvalue()

    @classmethod
    def parse(cls, payload: bytes) -> KexInit:
        r = Reader(payload)
        if r.byte() != messages.KEXINIT:
            raise InvalidFormat()
        cookie = r.raw(16)
        lists = [tuple(r.name_list()) for _ in range(10)]
        follows = r.boolean()
        r.uint32()  # reserved; OpenSSH ignores its value and anything after it
        return cls(cookie, lists[0], lists[1], lists[2], lists[3], lists[4], lists[5],
                   lists[6], lists[7], lists[8], lists[9], follows, payload)


@dataclass(frozen=True)
class Algorithms:
    """The negotiated set; ``mac_*`` is None with an AEAD cipher."""

    kex: str
    host_key: str
    cipher_c2s: str
    cipher_s2c: str
    mac_c2s: str | None
    mac_s2c: str | None
    compression_c2s: str
    compression_s2c: str


def _match(
    client: tuple[str, ...], server: tuple[str, ...], error: type[NegotiationFailed],
    their_offer: tuple[str, ...],
) -> str:
    offered = set(server)
    for name in client:
        if name in offered and name not in MARKERS:
            return name
    raise error(their_offer=",".join(their_offer))


def negotiate(client: KexInit, server: KexInit, *, we_are_client: bool) -> Algorithms:
    """RFC 4253 7.1: for each slot, the client's first choice the server also offers.

    ``we_are_client`` picks which list an error quotes as "their offer".
    """

    def theirs(c: tuple[str, ...], s: tuple[str, ...]) -> tuple[str, ...]:
        return s if we_are_client else c

    kex = _match(client.kex, server.kex, NoKexMatch, theirs(client.kex, server.kex))
    host_key = _match(
        client.host_key, server.host_key, NoHostKeyMatch, theirs(client.host_key, server.host_key)
    )
    enc = [
        _match(c, s, NoCipherMatch, theirs(c, s))
        for c, s in ((client.ciphers_c2s, server.ciphers_c2s),
                     (client.ciphers_s2c, server.ciphers_s2c))
    ]
    macs: list[str | None] = []
    for cipher, c, s in ((enc[0], client.macs_c2s, server.macs_c2s),
                         (enc[1], client.macs_s2c, server.macs_s2c)):
        spec = CIPHERS.get(cipher)
        aead = spec is not None and spec.aead
        macs.append(None if aead else _match(c, s, NoMacMatch, theirs(c, s)))
    comp = [
        _match(c, s, NoCompressMatch, theirs(c, s))
        for c, s in ((client.compression_c2s, server.compression_c2s),
                     (client.compression_s2c, server.compression_s2c))
    ]
    return Algorithms(kex, host_key, enc[0], enc[1], macs[0], macs[1], comp[0], comp[1])


def guess_was_right(client: KexInit, server: KexInit) -> bool:
    """Whether a first_kex_packet_follows guess used the negotiated kex and host key type."""
    return (
        bool(client.kex and server.kex and client.host_key and server.host_key)
        and client.kex[0] == server.kex[0]
        and client.host_key[0] == server.host_key[0]
    )
