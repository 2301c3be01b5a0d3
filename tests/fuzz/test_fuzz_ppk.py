"""The PuTTY .ppk reader given arbitrary or damaged input raises only the project's errors.

Encrypted v3 inputs use Argon2 with 8 KiB and one pass, and the reader is told to refuse
more than a little (a mutated Argon2-Memory or -Passes line must not make a case slow).
Files whose MAC is recomputed after the damage reach the key decoders behind the MAC.
"""

from __future__ import annotations

import base64
import contextlib
import functools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keytools.errors import SshError
from keytools.ppk import (
    Argon2Params,
    decode_ppk,
    encode_ppk,
    parse_ppk,
    ppk_encrypted,
    ppk_public,
)
from keytools.private import PrivateKey, generate
from keytools.wire import Writer
from tests.fuzz.test_fuzz_private import mutated

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PASSPHRASE = "fuzz passphrase"
FAST = Argon2Params(memory=8, passes=1)
LIMITS = {"max_memory": 64, "max_passes": 2}
TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp521", "ssh-rsa", "ssh-dss")


@functools.cache
def _keys() -> tuple[PrivateKey, ...]:
    return (generate("ed25519"), generate("ecdsa", 256), generate("ecdsa", 521),
            generate("rsa", 1024))


@functools.cache
def _files() -> tuple[bytes, ...]:
    out = []
    for key in _keys():
        for version in (2, 3):
            out.append(encode_ppk(key, "comment", "", version).encode())
            out.append(encode_ppk(key, "comment", PASSPHRASE, version, FAST).encode())
    return tuple(out)


def _decode(data: bytes | str, passphrase: str | None = PASSPHRASE) -> None:
    """Every entry point: a project error or a result, nothing else."""
    with contextlib.suppress(SshError):
        parse_ppk(data)
    with contextlib.suppress(SshError):
        ppk_public(data)
    with contextlib.suppress(SshError):
        ppk_encrypted(data)
    with contextlib.suppress(SshError):
        key, comment = decode_ppk(data, passphrase, **LIMITS)
        assert isinstance(comment, str)
        assert key.public == ppk_public(data)[0]


def _lines(blob: bytes) -> str:
    text = base64.b64encode(blob).decode()
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return f"{len(lines)}\n" + "".join(f"{line}\n" for line in lines)


def _plain_v3(algorithm: str, comment: bytes, public: bytes, private: bytes) -> bytes:
    """An unencrypted v3 file with a correct MAC (its key is empty) over whatever it holds."""
    from cryptography.hazmat.primitives import hashes, hmac

    mac = hmac.HMAC(b"", hashes.SHA256())
    mac.update(Writer().string(algorithm).string("none").string(comment).string(public)
               .string(private).getvalue())
    return (f"PuTTY-User-Key-File-3: {algorithm}\nEncryption: none\n".encode()
            + b"Comment: " + comment + b"\n"
            + f"Public-Lines: {_lines(public)}Private-Lines: {_lines(private)}".encode()
            + f"Private-MAC: {mac.finalize().hex()}\n".encode())


@FUZZ
@given(st.binary(max_size=2048), st.sampled_from([None, "", PASSPHRASE]))
def test_arbitrary_bytes(data: bytes, passphrase: str | None) -> None:
    _decode(data, passphrase)
    _decode(b"PuTTY-User-Key-File-3: " + data, passphrase)
    _decode(b"PuTTY-User-Key-File-2: ssh-ed25519\nEncryption: none\nComment: " + data,
            passphrase)


@FUZZ
@given(st.data())
def test_mutated_files(data: st.DataObject) -> None:
    damaged = data.draw(mutated(data.draw(st.sampled_from(_files()))))
    _decode(damaged, data.draw(st.sampled_from([PASSPHRASE, None])))
    _decode(damaged.decode("latin-1"))


@FUZZ
@given(
    st.sampled_from(("2", "3")),
    st.sampled_from((*TYPES, "ssh-ed448")),
    st.sampled_from(("none", "aes256-cbc")),
    st.sampled_from(("Argon2id", "Argon2i", "Argon2d", "x")),
    st.lists(st.text(alphabet="0123456789abcdefx- +\r", max_size=12), min_size=4, max_size=4),
    st.binary(max_size=96),
    st.binary(max_size=96),
)
def test_structured_fields(version: str, algorithm: str, encryption: str, flavour: str,
                           numbers: list[str], public: bytes, private: bytes) -> None:
    """Well-formed lines holding odd values: counts, Argon2 numbers, salts and blobs."""
    memory, passes, lanes, salt = numbers
    text = (f"PuTTY-User-Key-File-{version}: {algorithm}\nEncryption: {encryption}\n"
            f"Comment: c\nPublic-Lines: {_lines(public)}"
            f"Key-Derivation: {flavour}\nArgon2-Memory: {memory}\nArgon2-Passes: {passes}\n"
            f"Argon2-Parallelism: {lanes}\nArgon2-Salt: {salt}\n"
            f"Private-Lines: {_lines(private)}Private-MAC: {'0' * 64}\n")
    _decode(text)
    if encryption == "none":
        _decode(text.replace(f"Key-Derivation: {flavour}\n", "", 1))


@FUZZ
@given(st.data())
def test_damaged_behind_the_mac(data: st.DataObject) -> None:
    """Blobs that pass the MAC but are damaged reach the key-type decoders."""
    key = data.draw(st.sampled_from(_keys()))
    ppk = parse_ppk(encode_ppk(key, "c"))
    public, private = ppk.public_blob, ppk.private_data
    if data.draw(st.booleans()):
        public = data.draw(mutated(public))
    else:
        private = data.draw(st.one_of(mutated(private), st.binary(max_size=200)))
    algorithm = data.draw(st.sampled_from((key.key_type, *TYPES)))
    _decode(_plain_v3(algorithm, b"c", public, private))


@FUZZ
@given(
    st.text(max_size=40).filter(lambda s: not set(s) & set("\r\n\0")),
    st.sampled_from((2, 3)),
    st.sampled_from(("", PASSPHRASE)),
    st.integers(0, 3),
)
def test_round_trip(comment: str, version: int, passphrase: str, which: int) -> None:
    key = _keys()[which]
    text = encode_ppk(key, comment, passphrase, version, FAST)
    back, found = decode_ppk(text, passphrase or None, **LIMITS)
    assert found == comment
    assert back.private_blob() == key.private_blob()
