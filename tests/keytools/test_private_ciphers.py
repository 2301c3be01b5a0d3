"""The key-file cipher table and the cipher primitives built on cryptography."""

from __future__ import annotations

import secrets
import shutil

import pytest

from keytools.errors import InvalidArgument, MacInvalid, UnknownCipher
from keytools.private.ciphers import (
    CIPHER_NAMES,
    DEFAULT_CIPHER,
    cipher_by_name,
    decrypt,
    encrypt,
    get_cipher,
)
from tests.helpers import run


def test_names_are_openssh_ciphers() -> None:
    """Every cipher `ssh -Q cipher` lists can protect a key file, and nothing more."""
    ssh = shutil.which("ssh")
    if ssh is None:
        pytest.skip("ssh not installed")
    listed = run([ssh, "-Q", "cipher"]).stdout.split()
    assert set(CIPHER_NAMES) - {"none"} == set(listed)
    assert DEFAULT_CIPHER == "aes256-ctr"


# (block size, key length, IV length, tag length) as OpenSSH's cipher.c/cipher_ivlen().
EXPECTED = {
    "3des-cbc": (8, 24, 8, 0),
    "aes128-cbc": (16, 16, 16, 0),
    "aes192-cbc": (16, 24, 16, 0),
    "aes256-cbc": (16, 32, 16, 0),
    "aes128-ctr": (16, 16, 16, 0),
    "aes192-ctr": (16, 24, 16, 0),
    "aes256-ctr": (16, 32, 16, 0),
    "aes128-gcm@openssh.com": (16, 16, 12, 16),
    "aes256-gcm@openssh.com": (16, 32, 12, 16),
    "chacha20-poly1305@openssh.com": (8, 64, 0, 16),
    "none": (8, 0, 8, 0),
}


@pytest.mark.parametrize("name", CIPHER_NAMES)
def test_parameters(name: str) -> None:
    spec = get_cipher(name)
    assert cipher_by_name(name) is spec
    assert (spec.block_size, spec.key_len, spec.iv_len, spec.auth_len) == EXPECTED[name]


def test_unknown() -> None:
    assert cipher_by_name("aes512-ctr") is None
    assert cipher_by_name("") is None
    with pytest.raises(UnknownCipher) as info:
        get_cipher("blowfish-cbc")
    assert str(info.value) == "key encrypted using unsupported cipher"


@pytest.mark.parametrize("name", CIPHER_NAMES)
def test_round_trip_and_tamper(name: str) -> None:
    spec = get_cipher(name)
    key = secrets.token_bytes(spec.key_len)
    iv = secrets.token_bytes(spec.iv_len)
    data = secrets.token_bytes(spec.block_size * 5)
    sealed = encrypt(spec, key, iv, data)
    assert len(sealed) == len(data) + spec.auth_len
    body, tag = sealed[: len(data)], sealed[len(data) :]
    if name != "none":
        assert body != data
    assert decrypt(spec, key, iv, body, tag) == data
    if spec.auth_len:
        with pytest.raises(MacInvalid):
            decrypt(spec, key, iv, body, bytes(b ^ 1 for b in tag))
        with pytest.raises(MacInvalid):
            decrypt(spec, key, iv, bytes([body[0] ^ 1]) + body[1:], tag)
    with pytest.raises(InvalidArgument):
        encrypt(spec, key, iv, data + b"x")
    with pytest.raises(InvalidArgument):
        decrypt(spec, key + b"x", iv, body, tag)
    with pytest.raises(InvalidArgument):
        decrypt(spec, key, iv, body, tag + b"x")


def test_chacha_uses_first_half_of_key_and_counter_one() -> None:
    """The payload is ChaCha20 under key[:32] from block 1; block 0 makes the Poly1305 key."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
    from cryptography.hazmat.primitives.poly1305 import Poly1305

    spec = get_cipher("chacha20-poly1305@openssh.com")
    key = secrets.token_bytes(64)
    data = bytes(24)
    sealed = encrypt(spec, key, b"", data)
    stream = Cipher(algorithms.ChaCha20(key[:32], bytes(16)), mode=None).encryptor()
    block0 = stream.update(bytes(64))
    block1 = stream.update(bytes(24))
    assert sealed[:24] == block1
    assert sealed[24:] == Poly1305.generate_tag(block0[:32], sealed[:24])
    # The second half of the key (the length key in the transport) is not used here.
    other = key[:32] + secrets.token_bytes(32)
    assert encrypt(spec, other, b"", data) == sealed
