"""Transport ciphers and MACs: how one direction's packets are sealed and opened.

A ``Protection`` turns a plaintext packet (uint32 length || padding length || payload ||
padding) into wire bytes and back. The four shapes SSH uses differ in where the length
sits, so each is its own class: plaintext (before the first NEWKEYS),
chacha20-poly1305@openssh.com (PROTOCOL.chacha20poly1305), AES-GCM (RFC 5647 as OpenSSH
runs it) and AES-CTR with an HMAC, encrypt-and-MAC or encrypt-then-MAC (-etm@openssh.com).
Every primitive comes from ``cryptography``; stateful contexts (CTR keystreams, keyed HMAC
templates, the AESGCM object) are built once per key and reused for every packet.
"""

from __future__ import annotations

import abc
import hmac as _hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keytools.errors import InvalidArgument, MacInvalid
from keytools.wire import Reader, Writer

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers import CipherContext
    from cryptography.hazmat.primitives.hashes import HashAlgorithm

_U64 = 0xFFFFFFFFFFFFFFFF
_ZERO_BLOCK = bytes(64)


@dataclass(frozen=True)
class CipherSpec:
    """A transport cipher's sizes; ``tag_len`` > 0 marks an AEAD (no separate MAC)."""

    name: str
    key_len: int
    iv_len: int
    block_size: int
    tag_len: int = 0

    @property
    def aead(self) -> bool:
        return self.tag_len > 0


@dataclass(frozen=True)
class MacSpec:
    name: str
    hash_name: str
    key_len: int
    mac_len: int
    etm: bool


CIPHERS: dict[str, CipherSpec] = {
    spec.name: spec
    for spec in (
        CipherSpec("chacha20-poly1305@openssh.com", 64, 0, 8, 16),
        CipherSpec("aes128-gcm@openssh.com", 16, 12, 16, 16),
        CipherSpec("aes256-gcm@openssh.com", 32, 12, 16, 16),
        CipherSpec("aes128-ctr", 16, 16, 16),
        CipherSpec("aes192-ctr", 24, 16, 16),
        CipherSpec("aes256-ctr", 32, 16, 16),
    )
}

MACS: dict[str, MacSpec] = {
    spec.name: spec
    for spec in (
        MacSpec("hmac-sha2-256-etm@openssh.com", "sha256", 32, 32, True),
        MacSpec("hmac-sha2-512-etm@openssh.com", "sha512", 64, 64, True),
        MacSpec("hmac-sha1-etm@openssh.com", "sha1", 20, 20, True),
        MacSpec("hmac-sha2-256", "sha256", 32, 32, False),
        MacSpec("hmac-sha2-512", "sha512", 64, 64, False),
        MacSpec("hmac-sha1", "sha1", 20, 20, False),
    )
}


def key_need(cipher: CipherSpec, mac: MacSpec | None) -> int:
    """Bytes of strength the keys need (OpenSSH's kex->dh_need), which sizes DH groups.

    chacha20-poly1305 counts as 32 (its 64-byte key is two 256-bit keys).
    """
    seclen = 32 if cipher.name.startswith("chacha20") else cipher.key_len
    need = max(seclen, cipher.block_size, cipher.iv_len)
    return max(need, mac.key_len) if mac is not None else need


def default_rekey_bytes(block_size: int) -> int:
    """OpenSSH's default data limit per key: 2^(4*block bits) blocks, or 1 GiB for 64-bit blocks."""
    if block_size >= 16:
        return (1 << (block_size * 2)) * block_size
    return 1 << 30


@dataclass(frozen=True)
class ProtectionState:
    """One direction's keys and cipher position, for handing a connection to another
    process (privsep: the network child to the user's process). ``iv`` is the IV the
    next packet starts from for AES-GCM (fixed field || invocation counter) and the
    original IV for AES-CTR, whose position is ``offset`` keystream bytes past it."""

    cipher: str
    mac: str = ""
    key: bytes = b""
    iv: bytes = b""
    mac_key: bytes = b""
    offset: int = 0


def _hash(name: str) -> HashAlgorithm:
    from cryptography.hazmat.primitives import hashes

    factories: dict[str, Callable[[], HashAlgorithm]] = {
        "sha1": hashes.SHA1,
        "sha256": hashes.SHA256,
        "sha384": hashes.SHA384,
        "sha512": hashes.SHA512,
    }
    return factories[name]()


class Protection(abc.ABC):
    """Encryption and integrity for one direction of one key set."""

    #: padding aligns to this many bytes
    block_size: int = 8
    #: bytes after the packet that authenticate it (MAC or AEAD tag)
    mac_len: int = 0
    #: True when the 4-byte length is outside the aligned, encrypted region (AEAD, -etm)
    length_outside: bool = False
    #: bytes needed before ``packet_length`` can be called
    head_len: int = 4

    @abc.abstractmethod
    def seal(self, seq: int, packet: bytes) -> bytes:
        """Wire bytes for ``packet`` (uint32 length first), MAC or tag appended."""

    @abc.abstractmethod
    def packet_length(self, seq: int, head: bytes | memoryview) -> int:
        """The packet length from the first ``head_len`` wire bytes (called once per packet)."""

    @abc.abstractmethod
    def open(self, seq: int, wire: bytes | memoryview) -> bytes:
        """Check and decrypt one whole packet; returns padding length || payload || padding.

        Raises MacInvalid when the MAC or tag is wrong (checked before decrypting where
        the mode allows).
        """

    @abc.abstractmethod
    def export(self) -> ProtectionState:
        """Keys and position, taken between packets (``restore_protection`` undoes it)."""


class Plaintext(Protection):
    """The "none" cipher of the first key exchange."""

    def seal(self, seq: int, packet: bytes) -> bytes:
        return packet

    def packet_length(self, seq: int, head: bytes | memoryview) -> int:
        return int.from_bytes(head[:4], "big")

    def open(self, seq: int, wire: bytes | memoryview) -> bytes:
        return bytes(wire[4:])

    def export(self) -> ProtectionState:
        return ProtectionState("none")


def chacha_nonce(counter: int, seq: int) -> bytes:
    """cryptography's 16-byte ChaCha20 nonce: 64-bit little-endian block counter, then the
    64-bit nonce, here the sequence number as an SSH uint64 (big-endian)."""
    return counter.to_bytes(8, "little") + seq.to_bytes(8, "big")


class ChaChaPoly(Protection):
    """chacha20-poly1305@openssh.com: K_2 (first 32 bytes) for the payload and the Poly1305
    key, K_1 (last 32) for the length, both with the sequence number as nonce.

    The two ChaCha20 contexts are built once; each packet only resets their nonce."""

    block_size = 8
    mac_len = 16
    length_outside = True
    head_len = 4

    def __init__(self, key: bytes) -> None:
        if len(key) != 64:
            raise InvalidArgument()
        self._key = key
        self._length_key = key[32:]
        self._main = _chacha(key[:32])
        self._length = _chacha(self._length_key)

    def _stream(self, key: bytes, seq: int) -> CipherContext:
        """A fresh keystream for ``key`` at ``seq`` (for one-off uses, e.g. tests)."""
        ctx = _chacha(key)
        ctx.reset_nonce(chacha_nonce(0, seq))
        return ctx

    def _poly_key(self, nonce: bytes) -> bytes:
        """Reset the main stream; the Poly1305 key is its block 0 (the payload starts at
        block 1)."""
        self._main.reset_nonce(nonce)
        return self._main.update(_ZERO_BLOCK)[:32]

    def seal(self, seq: int, packet: bytes) -> bytes:
        from cryptography.hazmat.primitives.poly1305 import Poly1305

        nonce = chacha_nonce(0, seq)
        poly_key = self._poly_key(nonce)
        self._length.reset_nonce(nonce)
        view = memoryview(packet)
        head = self._length.update(view[:4])
        body = self._main.update(view[4:])
        mac = Poly1305(poly_key)
        mac.update(head)
        mac.update(body)
        return b"".join((head, body, mac.finalize()))

    def packet_length(self, seq: int, head: bytes | memoryview) -> int:
        self._length.reset_nonce(chacha_nonce(0, seq))
        return int.from_bytes(self._length.update(head[:4]), "big")

    def open(self, seq: int, wire: bytes | memoryview) -> bytes:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.poly1305 import Poly1305

        poly_key = self._poly_key(chacha_nonce(0, seq))
        view = memoryview(wire)
        try:
            Poly1305.verify_tag(poly_key, view[:-16], bytes(view[-16:]))
        except InvalidSignature:
            raise MacInvalid() from None
        return self._main.update(view[4:-16])

    def export(self) -> ProtectionState:
        # stateless between packets: the nonce is the sequence number
        return ProtectionState("chacha20-poly1305@openssh.com", key=self._key)


def _chacha(key: bytes) -> CipherContext:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

    return Cipher(algorithms.ChaCha20(key, bytes(16)), None).encryptor()


class AesGcm(Protection):
    """aes128/256-gcm@openssh.com: the length is clear and authenticated as AAD; the 12-byte
    IV is a fixed 4-byte field and a 64-bit invocation counter bumped after every packet."""

    block_size = 16
    mac_len = 16
    length_outside = True
    head_len = 4

    def __init__(self, key: bytes, iv: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if len(iv) != 12:
            raise InvalidArgument()
        self._aead = AESGCM(key)
        self._key = key
        self._fixed = iv[:4]
        self._counter = int.from_bytes(iv[4:], "big")

    def _nonce(self) -> bytes:
        nonce = self._fixed + self._counter.to_bytes(8, "big")
        self._counter = (self._counter + 1) & _U64
        return nonce

    def seal(self, seq: int, packet: bytes) -> bytes:
        head = packet[:4]
        return head + self._aead.encrypt(self._nonce(), memoryview(packet)[4:], head)

    def packet_length(self, seq: int, head: bytes | memoryview) -> int:
        return int.from_bytes(head[:4], "big")

    def open(self, seq: int, wire: bytes | memoryview) -> bytes:
        from cryptography.exceptions import InvalidTag

        view = memoryview(wire)
        try:
            return self._aead.decrypt(self._nonce(), view[4:], view[:4])
        except InvalidTag:
            raise MacInvalid() from None

    def export(self) -> ProtectionState:
        iv = self._fixed + self._counter.to_bytes(8, "big")
        return ProtectionState(f"aes{len(self._key) * 8}-gcm@openssh.com", key=self._key, iv=iv)


class CtrHmac(Protection):
    """AES-CTR with an HMAC: encrypt-and-MAC over the plaintext (RFC 4253), or with an
    -etm@openssh.com MAC, a clear length and the MAC over the ciphertext."""

    block_size = 16

    def __init__(self, key: bytes, iv: bytes, mac: MacSpec, mac_key: bytes,
                 offset: int = 0) -> None:
        from cryptography.hazmat.primitives import hmac
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        # One streaming context per key: CTR is its own inverse, so it serves both ways.
        # A context cannot be exported, so a resumed one starts at the right counter
        # block and skips into it (``offset``: keystream bytes already used).
        blocks, skip = divmod(offset, 16)
        counter = (int.from_bytes(iv, "big") + blocks) % (1 << 128)
        self._ctx = Cipher(algorithms.AES(key), modes.CTR(counter.to_bytes(16, "big"))
                           ).encryptor()
        if skip:
            self._ctx.update(bytes(skip))
        self._key = key
        self._iv = iv
        self._mac_spec = mac
        self._mac_key = mac_key
        self._offset = offset
        self._mac = hmac.HMAC(mac_key, _hash(mac.hash_name))
        self.mac_len = mac.mac_len
        self.length_outside = mac.etm
        self.head_len = 4 if mac.etm else 16
        self._first = b""

    def _tag(self, seq: int, *parts: bytes | memoryview) -> bytes:
        h = self._mac.copy()
        h.update(seq.to_bytes(4, "big"))
        for part in parts:
            h.update(part)
        return h.finalize()

    def seal(self, seq: int, packet: bytes) -> bytes:
        if self.length_outside:
            head = packet[:4]
            ct = self._ctx.update(memoryview(packet)[4:])
            self._offset += len(ct)
            return b"".join((head, ct, self._tag(seq, head, ct)))
        self._offset += len(packet)
        return self._ctx.update(packet) + self._tag(seq, packet)

    def packet_length(self, seq: int, head: bytes | memoryview) -> int:
        if self.length_outside:
            return int.from_bytes(head[:4], "big")
        self._first = self._ctx.update(head[:16])
        self._offset += 16
        return int.from_bytes(self._first[:4], "big")

    def open(self, seq: int, wire: bytes | memoryview) -> bytes:
        view = memoryview(wire)
        body, tag = view[: -self.mac_len], view[-self.mac_len :]
        if self.length_outside:
            if not _hmac.compare_digest(self._tag(seq, body), tag):
                raise MacInvalid()
            self._offset += len(body) - 4
            return self._ctx.update(body[4:])
        self._offset += len(body) - 16
        plain = self._first + self._ctx.update(body[16:])
        self._first = b""
        if not _hmac.compare_digest(self._tag(seq, plain), tag):
            raise MacInvalid()
        return plain[4:]

    def export(self) -> ProtectionState:
        if self._first:
            raise InvalidArgument("cipher state exported inside a packet")
        return ProtectionState(f"aes{len(self._key) * 8}-ctr", self._mac_spec.name, self._key,
                               self._iv, self._mac_key, self._offset)


def make_protection(
    cipher: str, mac: str | None, key: bytes, iv: bytes, mac_key: bytes = b""
) -> Protection:
    """The Protection for a negotiated cipher (and MAC, ignored for AEAD ciphers)."""
    spec = CIPHERS.get(cipher)
    if spec is None:
        raise InvalidArgument(f"unknown cipher {cipher}")
    if len(key) != spec.key_len or len(iv) != spec.iv_len:
        raise InvalidArgument()
    if spec.name.startswith("chacha20"):
        return ChaChaPoly(key)
    if spec.aead:
        return AesGcm(key, iv)
    mac_spec = MACS.get(mac or "")
    if mac_spec is None:
        raise InvalidArgument(f"unknown MAC {mac}")
    if len(mac_key) != mac_spec.key_len:
        raise InvalidArgument()
    return CtrHmac(key, iv, mac_spec, mac_key)


def write_protection_state(w: Writer, state: ProtectionState) -> None:
    w.string(state.cipher).string(state.mac).string(state.key).string(state.iv)
    w.string(state.mac_key).uint64(state.offset)


def read_protection_state(r: Reader) -> ProtectionState:
    return ProtectionState(r.ascii(), r.ascii(), r.string(), r.string(), r.string(), r.uint64())


def restore_protection(state: ProtectionState) -> Protection:
    """The Protection ``Protection.export`` described, at the same position."""
    if state.cipher == "none":
        return Plaintext()
    prot = make_protection(state.cipher, state.mac or None, state.key, state.iv, state.mac_key)
    if isinstance(prot, CtrHmac) and state.offset:
        if state.offset < 0 or state.offset >= 1 << 64:
            raise InvalidArgument("bad cipher position")
        spec = MACS[state.mac]
        return CtrHmac(state.key, state.iv, spec, state.mac_key, state.offset)
    return prot
