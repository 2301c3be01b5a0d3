"""Transport ciphers against known answers.

chacha20-poly1305@openssh.com is checked against the construction PROTOCOL.chacha20poly1305
describes, built from the ChaCha20 test vectors of RFC 8439 (keystream blocks 0 and 1 of
the all-zero key, the section 2.4.2 encryption, the section 2.6.2 Poly1305 key), and
against libsodium's original-nonce ChaCha20 (through pynacl) for arbitrary sequence
numbers. AES-GCM and CTR+HMAC are compared with the same operations done by hand.
"""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.poly1305 import Poly1305

from keytools.errors import InvalidArgument, MacInvalid
from protocol.ciphers import (
    CIPHERS,
    MACS,
    AesGcm,
    ChaChaPoly,
    CtrHmac,
    chacha_nonce,
    default_rekey_bytes,
    key_need,
    make_protection,
)

# RFC 8439 A.1 test vectors 1 and 2: ChaCha20 keystream, all-zero key and nonce, blocks 0, 1.
ZERO_KEY_BLOCK0 = bytes.fromhex(
    "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
    "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586"
)
ZERO_KEY_BLOCK1 = bytes.fromhex(
    "9f07e7be5551387a98ba977c732d080dcb0f29a048e3656912c6533e32ee7aed"
    "29b721769ce64e43d57133b074d839d531ed1f28510afb45ace10a1f4b794d6f"
)
# RFC 8439 2.4.2: key 00..1f, 96-bit nonce 00000000 0000004a 00000000, counter 1. The first
# nonce word is the high half of the original 64-bit counter (zero), so the 64-bit nonce
# (the SSH sequence number) is 0x0000004a00000000.
SUNSCREEN = (b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip "
             b"for the future, sunscreen would be it.")
SUNSCREEN_CT = bytes.fromhex(
    "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0b"
    "f91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d8"
    "07ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7793736"
    "5af90bbf74a35be6b40b8eedf2785e42874d"
)
# RFC 8439 2.6.2: Poly1305 key from key 80..9f, nonce 00000000 0001020304050607.
POLY_KEY_262 = bytes.fromhex("8ad5a08b905f81cc815040274ab29471a833b637e3fd0da508dbb8e2fdd1a646")


def xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=False))


def test_chacha_nonce_layout() -> None:
    assert chacha_nonce(1, 2) == bytes.fromhex("0100000000000000" "0000000000000002")


def test_chacha_packet_with_zero_keys_matches_spec_construction() -> None:
    packet = (28).to_bytes(4, "big") + bytes([4]) + b"hello world, this is ssh" + bytes(3)
    wire = ChaChaPoly(bytes(64)).seal(0, packet)
    # K_1 (length key) block 0 encrypts the length; K_2 block 1 onwards the rest.
    expected_ct = xor(packet[:4], ZERO_KEY_BLOCK0) + xor(packet[4:], ZERO_KEY_BLOCK1)
    # The Poly1305 key is the first 32 bytes of K_2's block 0.
    expected_tag = Poly1305.generate_tag(ZERO_KEY_BLOCK0[:32], expected_ct)
    assert wire == expected_ct + expected_tag
    assert ChaChaPoly(bytes(64)).open(0, wire) == packet[4:]


def test_chacha_payload_encryption_rfc8439_242() -> None:
    seq = 0x0000004A00000000
    key = bytes(range(32)) + bytes(32)  # K_2 is the first half
    wire = ChaChaPoly(key).seal(seq, bytes(4) + SUNSCREEN)
    assert wire[4:-16] == SUNSCREEN_CT


def test_chacha_poly_key_rfc8439_262() -> None:
    seq = 0x0001020304050607
    key = bytes(range(0x80, 0xA0)) + bytes(32)
    wire = ChaChaPoly(key).seal(seq, bytes(16))
    assert wire[-16:] == Poly1305.generate_tag(POLY_KEY_262, wire[:-16])


@pytest.mark.parametrize("seq", [0, 1, 7, 0xFFFFFFFF])
def test_chacha_payload_matches_libsodium(seq: int) -> None:
    """libsodium's original ChaCha20-Poly1305 encrypts from block 1 with a 64-bit nonce,
    like OpenSSH's payload cipher (only its tag covers different data)."""
    from nacl.bindings import crypto_aead_chacha20poly1305_encrypt

    key = os.urandom(64)
    body = os.urandom(200)
    wire = ChaChaPoly(key).seal(seq, (200).to_bytes(4, "big") + body)
    sodium = crypto_aead_chacha20poly1305_encrypt(body, None, seq.to_bytes(8, "big"), key[:32])
    assert wire[4:-16] == sodium[:-16]


def test_chacha_rejects_bad_tag_and_bad_ciphertext() -> None:
    key = os.urandom(64)
    wire = ChaChaPoly(key).seal(5, (12).to_bytes(4, "big") + bytes(12))
    for i in (0, 5, len(wire) - 1):
        bad = bytearray(wire)
        bad[i] ^= 1
        with pytest.raises(MacInvalid):
            ChaChaPoly(key).open(5, bytes(bad))
    with pytest.raises(MacInvalid):  # a different sequence number
        ChaChaPoly(key).open(6, wire)


def test_gcm_invocation_counter_increments_and_wraps() -> None:
    key, fixed = os.urandom(16), os.urandom(4)
    iv = fixed + b"\xff" * 8
    gcm = AesGcm(key, iv)
    packets = [(16).to_bytes(4, "big") + os.urandom(16) for _ in range(2)]
    wires = [gcm.seal(0, p) for p in packets]
    ref = AESGCM(key)
    for packet, wire, counter in zip(packets, wires, (b"\xff" * 8, bytes(8)), strict=True):
        assert wire[:4] == packet[:4]  # the length travels in clear, as AAD
        assert ref.decrypt(fixed + counter, wire[4:], packet[:4]) == packet[4:]
    opener = AesGcm(key, iv)
    assert [opener.open(0, w) for w in wires] == [p[4:] for p in packets]
    bad = bytearray(wires[0])
    bad[2] ^= 1  # the length is authenticated
    with pytest.raises(MacInvalid):
        AesGcm(key, iv).open(0, bytes(bad))


@pytest.mark.parametrize("mac", sorted(MACS))
def test_ctr_hmac_matches_manual_construction(mac: str) -> None:
    spec = MACS[mac]
    key, iv, mac_key = os.urandom(16), os.urandom(16), os.urandom(spec.key_len)
    packet = (28).to_bytes(4, "big") + bytes([4]) + os.urandom(27)
    seq = 0x12345678
    wire = CtrHmac(key, iv, spec, mac_key).seal(seq, packet)
    enc = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    algo = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256(), "sha512": hashes.SHA512()}
    h = hmac.HMAC(mac_key, algo[spec.hash_name])
    h.update(seq.to_bytes(4, "big"))
    if spec.etm:  # clear length, MAC over the ciphertext
        ct = enc.update(packet[4:])
        h.update(packet[:4] + ct)
        assert wire == packet[:4] + ct + h.finalize()
    else:  # everything encrypted, MAC over the plaintext
        h.update(packet)
        assert wire == enc.update(packet) + h.finalize()
    opener = CtrHmac(key, iv, spec, mac_key)
    assert opener.packet_length(seq, wire[: opener.head_len]) == 28
    assert opener.open(seq, wire) == packet[4:]
    bad = bytearray(wire)
    bad[-1] ^= 0x80
    opener = CtrHmac(key, iv, spec, mac_key)
    opener.packet_length(seq, bytes(bad[: opener.head_len]))
    with pytest.raises(MacInvalid):
        opener.open(seq, bytes(bad))


def test_ctr_context_is_a_stream_across_packets() -> None:
    """One keystream per key: the second packet continues where the first ended."""
    spec = MACS["hmac-sha2-256-etm@openssh.com"]
    key, iv, mac_key = os.urandom(32), os.urandom(16), os.urandom(32)
    sealer = CtrHmac(key, iv, spec, mac_key)
    p1 = (12).to_bytes(4, "big") + os.urandom(12)
    p2 = (28).to_bytes(4, "big") + os.urandom(28)
    w1, w2 = sealer.seal(0, p1), sealer.seal(1, p2)
    stream = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor().update(bytes(40))
    assert w1[4:16] == xor(p1[4:], stream[:12])
    assert w2[4:32] == xor(p2[4:], stream[12:40])


def test_make_protection_checks_names_and_sizes() -> None:
    with pytest.raises(InvalidArgument):
        make_protection("3des-cbc", None, b"", b"")
    with pytest.raises(InvalidArgument):
        make_protection("aes128-ctr", "hmac-md5", bytes(16), bytes(16), bytes(16))
    with pytest.raises(InvalidArgument):
        make_protection("aes128-ctr", "hmac-sha2-256", bytes(15), bytes(16), bytes(32))
    assert isinstance(make_protection("chacha20-poly1305@openssh.com", None, bytes(64), b""),
                      ChaChaPoly)


def test_sizes_follow_openssh() -> None:
    assert key_need(CIPHERS["chacha20-poly1305@openssh.com"], None) == 32
    assert key_need(CIPHERS["aes128-ctr"], MACS["hmac-sha2-512"]) == 64
    assert default_rekey_bytes(8) == 1 << 30
    assert default_rekey_bytes(16) == (1 << 32) * 16
