"""openssh-key-v1 files: interoperation with ssh-keygen both ways, the exact layout, and
the error each kind of damage gives."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from keytools.errors import (
    InvalidFormat,
    KeyTypeUnknown,
    SshError,
    UnknownCipher,
    WrongPassphrase,
)
from keytools.keyfile import load_private, save_private
from keytools.private import PrivateKey, encode_private_key, generate
from keytools.private.ciphers import CIPHER_NAMES, decrypt, get_cipher
from keytools.private.openssh import (
    decode_openssh_private,
    encode_openssh_private,
    is_openssh_private,
    openssh_public_from_private,
)
from keytools.public import parse_public_line
from keytools.wire import Reader, Writer
from tests.helpers import TESTDATA, private_copy, run

BEGIN = b"-----BEGIN OPENSSH PRIVATE KEY-----\n"
END = b"-----END OPENSSH PRIVATE KEY-----\n"
MAGIC = b"openssh-key-v1\0"
PASS = "correct horse"


@pytest.fixture(scope="module")
def keys() -> dict[str, PrivateKey]:
    return {
        "ed25519": generate("ed25519"),
        "ecdsa256": generate("ecdsa", 256),
        "ecdsa384": generate("ecdsa", 384),
        "ecdsa521": generate("ecdsa", 521),
        "rsa1024": generate("rsa", 1024),
        "rsa2048": generate("rsa", 2048),
    }


KINDS = ["ed25519", "ecdsa256", "ecdsa384", "ecdsa521", "rsa1024", "rsa2048"]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def unarmor(data: bytes) -> bytes:
    lines = data.decode("ascii").splitlines()
    assert lines[0] + "\n" == BEGIN.decode() and lines[-1] + "\n" == END.decode()
    return base64.b64decode("".join(lines[1:-1]))


def armor(blob: bytes) -> bytes:
    text = base64.b64encode(blob).decode("ascii")
    body = "\n".join(text[i : i + 70] for i in range(0, len(text), 70))
    return BEGIN + body.encode("ascii") + b"\n" + END


# -- interoperation -----------------------------------------------------------------------


def _cases() -> list[tuple[str, str]]:
    cases = [(kind, "aes256-ctr") for kind in KINDS]
    cases += [(kind, "none-plain") for kind in KINDS]
    cases += [("ed25519", c) for c in CIPHER_NAMES if c != "aes256-ctr"]
    cases += [("rsa2048", c) for c in ("aes128-cbc", "aes256-gcm@openssh.com",
                                       "chacha20-poly1305@openssh.com", "3des-cbc")]
    cases += [("ecdsa521", c) for c in ("aes192-ctr", "aes128-gcm@openssh.com")]
    return cases


@pytest.mark.parametrize(("kind", "cipher"), _cases())
def test_ssh_keygen_reads_ours(
    kind: str, cipher: str, keys: dict[str, PrivateKey], tmp_path: Path, ssh_keygen: str
) -> None:
    """pyssh writes; ssh-keygen -y prints the same public key and comment, and
    ssh-keygen -p re-protects the file into one pyssh reads back."""
    key = keys[kind]
    path = tmp_path / "key"
    passphrase = "" if cipher == "none-plain" else PASS
    save_private(str(path), key, f"comment {kind}", passphrase,
                 cipher=None if cipher == "none-plain" else cipher, rounds=2)
    assert path.stat().st_mode & 0o777 == 0o600
    proc = run([ssh_keygen, "-y", "-P", passphrase, "-f", path])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == key.public.openssh(f"comment {kind}") + "\n"
    proc = run([ssh_keygen, "-p", "-P", passphrase, "-N", "new passphrase", "-a", "2",
                "-f", path])
    assert proc.returncode == 0, proc.stderr
    again, comment = load_private(str(path), "new passphrase")
    assert again == key and comment == f"comment {kind}"


def _keygen_cases() -> list[tuple[str, str, str]]:
    cases = [("ed25519", "256", c) for c in CIPHER_NAMES]
    cases += [("ecdsa", bits, "aes256-ctr") for bits in ("256", "384", "521")]
    cases += [("ecdsa", "384", c) for c in ("aes128-cbc", "chacha20-poly1305@openssh.com")]
    cases += [("rsa", "1024", c) for c in ("aes256-ctr", "aes256-gcm@openssh.com", "none")]
    return cases


@pytest.mark.parametrize(("ktype", "bits", "cipher"), _keygen_cases())
def test_we_read_ssh_keygens(
    ktype: str, bits: str, cipher: str, tmp_path: Path, ssh_keygen: str
) -> None:
    path = tmp_path / "k"
    proc = run([ssh_keygen, "-t", ktype, "-b", bits, "-N", PASS, "-Z", cipher, "-a", "2",
                "-C", "made by ssh-keygen", "-q", "-f", path])
    assert proc.returncode == 0, proc.stderr
    expected, expected_comment = parse_public_line((tmp_path / "k.pub").read_text())
    key, comment = load_private(str(path), PASS)
    assert key.public == expected
    assert comment == expected_comment == "made by ssh-keygen"
    assert openssh_public_from_private(path.read_bytes()) == expected
    if cipher != "none":  # with -Z none any non-empty passphrase "decrypts"
        with pytest.raises(WrongPassphrase):
            load_private(str(path), "not it")
    with pytest.raises(WrongPassphrase):
        load_private(str(path), None)
    key.public.verify(b"d", key.sign(b"d"))


def test_unencrypted_from_ssh_keygen(tmp_path: Path, ssh_keygen: str) -> None:
    path = tmp_path / "k"
    proc = run([ssh_keygen, "-t", "ed25519", "-N", "", "-C", "", "-q", "-f", path])
    assert proc.returncode == 0, proc.stderr
    key, comment = load_private(str(path), None)
    assert comment == ""
    assert key.public == parse_public_line((tmp_path / "k.pub").read_text())[0]
    # A passphrase given for an unencrypted key is ignored, as by OpenSSH.
    assert load_private(str(path), "anything")[0] == key


def test_same_bytes_as_ssh_keygen_but_check_int(tmp_path: Path) -> None:
    """Re-encoding OpenSSH's own unencrypted files gives the same bytes (the random
    check-int aside): field order, padding, base64 line width, markers."""
    for name in ("ed25519_1", "rsa_n", "ecdsa_n", "ecdsa_sk1", "ed25519_sk1"):
        original = (TESTDATA / "sshkey" / name).read_bytes()
        key, comment = decode_openssh_private(original, None)
        ours = encode_openssh_private(key, comment)
        assert [len(x) for x in ours.split(b"\n")] == [len(x) for x in original.split(b"\n")]
        a, b = bytearray(unarmor(original)), bytearray(unarmor(ours))
        at = a.index(key.public.blob()) + len(key.public.blob()) + 4
        assert a[at : at + 4] == a[at + 4 : at + 8]
        a[at : at + 8] = b[at : at + 8]
        assert a == b, name


# -- layout ---------------------------------------------------------------------------------


def _parse(data: bytes) -> dict[str, object]:
    r = Reader(unarmor(data))
    assert r.raw(len(MAGIC)) == MAGIC
    out: dict[str, object] = {"cipher": r.ascii(), "kdf": r.ascii(), "kdfopts": r.string()}
    out["nkeys"] = r.uint32()
    out["pub"] = r.string()
    out["len"] = r.uint32()
    out["rest"] = r.rest()
    return out


def test_layout_unencrypted(keys: dict[str, PrivateKey]) -> None:
    key = keys["ed25519"]
    data = encode_openssh_private(key, "c")
    assert is_openssh_private(data)
    assert data.startswith(BEGIN) and data.endswith(END)
    assert all(len(line) <= 70 for line in data.split(b"\n"))
    f = _parse(data)
    assert (f["cipher"], f["kdf"], f["kdfopts"], f["nkeys"]) == ("none", "none", b"", 1)
    assert f["pub"] == key.public.blob()
    rest = f["rest"]
    assert isinstance(rest, bytes) and len(rest) == f["len"] and len(rest) % 8 == 0
    r = Reader(rest)
    assert r.uint32() == r.uint32()
    assert r.raw(len(encode_private_key(key))) == encode_private_key(key)
    assert r.string() == b"c"
    pad = r.rest()
    assert pad == bytes(range(1, len(pad) + 1)) and len(pad) < 8


@pytest.mark.parametrize("cipher", CIPHER_NAMES)
def test_layout_encrypted(cipher: str, keys: dict[str, PrivateKey]) -> None:
    import bcrypt

    key = keys["ecdsa256"]
    data = encode_openssh_private(key, "comment", b"pw", cipher, 3)
    f = _parse(data)
    spec = get_cipher(cipher)
    assert (f["cipher"], f["kdf"], f["nkeys"]) == (cipher, "bcrypt", 1)
    kdfopts = f["kdfopts"]
    assert isinstance(kdfopts, bytes)
    kr = Reader(kdfopts)
    salt, rounds = kr.string(), kr.uint32()
    kr.end()
    assert len(salt) == 16 and rounds == 3
    rest = f["rest"]
    assert isinstance(rest, bytes)
    length = f["len"]
    assert isinstance(length, int)
    assert len(rest) == length + spec.auth_len and length % spec.block_size == 0
    kiv = bcrypt.kdf(b"pw", salt, spec.key_len + spec.iv_len, 3, ignore_few_rounds=True)
    plain = decrypt(spec, kiv[: spec.key_len], kiv[spec.key_len :], rest[:length],
                    rest[length:])
    r = Reader(plain)
    assert r.uint32() == r.uint32()
    assert r.raw(len(encode_private_key(key))) == encode_private_key(key)
    assert r.string() == b"comment"
    pad = r.rest()
    assert pad == bytes(range(1, len(pad) + 1)) and len(pad) < spec.block_size


def test_defaults(keys: dict[str, PrivateKey]) -> None:
    f = _parse(encode_openssh_private(keys["ed25519"], "", b"pw"))
    assert (f["cipher"], f["kdf"]) == ("aes256-ctr", "bcrypt")
    kdfopts = f["kdfopts"]
    assert isinstance(kdfopts, bytes)
    assert kdfopts[-4:] == (16).to_bytes(4, "big")


def test_cipher_none_with_passphrase_is_like_ssh_keygen(
    keys: dict[str, PrivateKey], tmp_path: Path, ssh_keygen: str
) -> None:
    """ssh-keygen -Z none -N pw writes KDF bcrypt and no encryption; so do we."""
    path = tmp_path / "k"
    assert run([ssh_keygen, "-t", "ed25519", "-Z", "none", "-N", "pw", "-a", "1", "-q",
                "-f", path]).returncode == 0
    theirs = _parse(path.read_bytes())
    ours = _parse(encode_openssh_private(keys["ed25519"], "", b"pw", "none", 1))
    assert (theirs["cipher"], theirs["kdf"]) == (ours["cipher"], ours["kdf"]) == (
        "none", "bcrypt")
    with pytest.raises(WrongPassphrase):
        load_private(str(path), "")
    load_private(str(path), "any passphrase at all")


def test_comment_bytes_survive(keys: dict[str, PrivateKey]) -> None:
    for comment in ("üñí©ødé", "tab\there", "bad utf8 \udcff"):
        data = encode_openssh_private(keys["ed25519"], comment)
        assert decode_openssh_private(data, None)[1] == comment


# -- damage -------------------------------------------------------------------------------


def build(
    key: PrivateKey,
    *,
    cipher: str = "none",
    kdf: str = "none",
    kdfopts: bytes = b"",
    nkeys: int = 1,
    pub: bytes | None = None,
    checks: tuple[int, int] = (7, 7),
    priv: bytes | None = None,
    comment: bytes = b"c",
    pad: bytes | None = None,
    length: int | None = None,
    tail: bytes = b"",
) -> bytes:
    """An unencrypted openssh-key-v1 file with any field overridden."""
    plain = Writer().uint32(checks[0]).uint32(checks[1])
    plain.raw(priv if priv is not None else encode_private_key(key)).string(comment)
    if pad is None:
        pad = bytes(range(1, (-len(plain)) % 8 + 1))
    body = plain.getvalue() + pad
    w = Writer().raw(MAGIC).string(cipher).string(kdf).string(kdfopts).uint32(nkeys)
    w.string(pub if pub is not None else key.public.blob())
    w.uint32(len(body) if length is None else length).raw(body).raw(tail)
    return armor(w.getvalue())


def test_build_helper_is_faithful(keys: dict[str, PrivateKey]) -> None:
    key = keys["ed25519"]
    assert decode_openssh_private(build(key), None) == (key, "c")


def _damaged(key: PrivateKey, other: PrivateKey) -> list[tuple[str, bytes, type[SshError]]]:
    return [
        ("bad check-int", build(key, checks=(1, 2)), WrongPassphrase),
        ("bad padding", build(key, pad=b"\x01\x03" + bytes(range(3, 7))), InvalidFormat),
        ("zero padding", build(key, pad=bytes(8)), InvalidFormat),
        ("unknown cipher", build(key, cipher="aes512-ctr"), UnknownCipher),
        ("unknown kdf", build(key, kdf="scrypt"), UnknownCipher),
        ("kdf none, cipher set", build(key, cipher="aes256-ctr"), InvalidFormat),
        ("two keys", build(key, nkeys=2), InvalidFormat),
        ("no keys", build(key, nkeys=0), InvalidFormat),
        ("public mismatch", build(key, pub=other.public.blob()), InvalidFormat),
        ("trailing data", build(key, tail=b"\0" * 8), InvalidFormat),
        ("short length", build(key, length=8), InvalidFormat),
        ("odd length", build(key, length=13), InvalidFormat),
        ("unknown key type", build(key, pub=Writer().string("ssh-foo").getvalue()),
         KeyTypeUnknown),
        ("comment with NUL", build(key, comment=b"a\0b"), InvalidFormat),
    ]


def test_damage_gives_openssh_errors(keys: dict[str, PrivateKey], tmp_path: Path,
                                     ssh_keygen: str) -> None:
    key, other = keys["ed25519"], keys["ecdsa256"]
    for label, data, error in _damaged(key, other):
        with pytest.raises(error):
            decode_openssh_private(data, None)
        with pytest.raises(error) as info:
            decode_openssh_private(data, b"passphrase")
        path = _write(tmp_path / "k", data)
        proc = run([ssh_keygen, "-y", "-P", "passphrase", "-f", path])
        assert proc.returncode != 0, label
        if error is not InvalidFormat:
            # OpenSSH retries "invalid format" files as PEM, so its wording for those
            # depends on the OpenSSL version; every other error is reported as is.
            assert proc.stderr.strip() == f'Load key "{path}": {info.value}', label


def test_bad_check_int_wording_matches_ssh_keygen(
    keys: dict[str, PrivateKey], tmp_path: Path, ssh_keygen: str
) -> None:
    """OpenSSH reports a check-int mismatch as a wrong passphrase even without encryption."""
    path = _write(tmp_path / "k", build(keys["ed25519"], checks=(1, 2)))
    proc = run([ssh_keygen, "-y", "-P", "", "-f", path])
    with pytest.raises(WrongPassphrase) as info:
        load_private(str(path), "")
    assert proc.stderr.strip() == f'Load key "{path}": {info.value}'


@pytest.mark.parametrize("cipher", ["aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com"])
def test_aead_tag_failure_is_wrong_passphrase(cipher: str, keys: dict[str, PrivateKey]) -> None:
    data = encode_openssh_private(keys["ed25519"], "c", b"pw", cipher, 1)
    blob = bytearray(unarmor(data))
    blob[-1] ^= 1
    with pytest.raises(WrongPassphrase):
        decode_openssh_private(armor(bytes(blob)), b"pw")
    blob = bytearray(unarmor(data))
    blob[-40] ^= 1
    with pytest.raises(WrongPassphrase):
        decode_openssh_private(armor(bytes(blob)), b"pw")
    with pytest.raises(WrongPassphrase):
        decode_openssh_private(data, b"pW")


@pytest.mark.parametrize("passphrase", [None, b""])
def test_encrypted_without_passphrase(passphrase: bytes | None,
                                      keys: dict[str, PrivateKey]) -> None:
    data = encode_openssh_private(keys["ed25519"], "c", b"pw", "aes256-ctr", 1)
    with pytest.raises(WrongPassphrase):
        decode_openssh_private(data, passphrase)
    # The public half is readable without it.
    assert openssh_public_from_private(data) == keys["ed25519"].public


def test_rounds_limit(keys: dict[str, PrivateKey]) -> None:
    data = encode_openssh_private(keys["ed25519"], "c", b"pw", "aes256-ctr", 5)
    with pytest.raises(InvalidFormat):
        decode_openssh_private(data, b"pw", max_rounds=4)
    assert decode_openssh_private(data, b"pw", max_rounds=5)[1] == "c"


def test_bcrypt_with_zero_rounds_or_empty_salt(keys: dict[str, PrivateKey]) -> None:
    for opts in (Writer().string(b"s" * 16).uint32(0).getvalue(),
                 Writer().string(b"").uint32(4).getvalue(), b"", b"\0\0\0\x10"):
        data = build(keys["ed25519"], kdf="bcrypt", kdfopts=opts)
        with pytest.raises(SshError):
            decode_openssh_private(data, b"pw")


def test_armour_damage(keys: dict[str, PrivateKey], tmp_path: Path, ssh_keygen: str) -> None:
    good = encode_openssh_private(keys["ed25519"], "c")
    bad = {
        "empty": b"",
        "no end marker": good[: -len(END)],
        "no final newline": good[:-1],
        "leading blank line": b"\n" + good,
        "bad base64": good.replace(b"A", b"*", 1),
        "bad magic": armor(b"openssh-key-v2\0" + unarmor(good)[len(MAGIC) :]),
        "short": armor(MAGIC[:10]),
        "just markers": BEGIN + END,
    }
    for label, data in bad.items():
        with pytest.raises(SshError) as info:
            decode_openssh_private(data, None)
        assert isinstance(info.value, InvalidFormat | WrongPassphrase), label
        # ssh-keygen refuses each of these files too.
        path = _write(tmp_path / "k", data)
        assert run([ssh_keygen, "-y", "-P", "", "-f", path]).returncode != 0, label
    # CRLF line ends inside the body are fine (OpenSSH drops \r and \n there).
    crlf = good.replace(b"\n", b"\r\n").replace(b"-----\r\n", b"-----\n")
    assert decode_openssh_private(crlf, None)[0] == keys["ed25519"]
    path = _write(tmp_path / "crlf", crlf)
    assert run([ssh_keygen, "-y", "-f", path]).stdout.startswith("ssh-ed25519 ")
    # Anything after the end marker is ignored.
    assert decode_openssh_private(good + b"junk\n", None)[1] == "c"


@pytest.mark.parametrize("cipher", ["none", "aes256-ctr", "aes128-gcm@openssh.com"])
def test_every_truncation(cipher: str, keys: dict[str, PrivateKey]) -> None:
    passphrase = b"" if cipher == "none" else b"pw"
    blob = unarmor(encode_openssh_private(keys["ecdsa256"], "c", passphrase, cipher, 1))
    for cut in range(len(blob)):
        with pytest.raises(SshError):
            decode_openssh_private(armor(blob[:cut]), passphrase)


def test_corpus_key_with_every_byte_flipped_in_private_section() -> None:
    """Flipping any byte of the unencrypted private section is caught."""
    original = (TESTDATA / "sshkey" / "ed25519_1").read_bytes()
    blob = unarmor(original)
    key, _ = decode_openssh_private(original, None)
    start = blob.index(key.public.blob()) + len(key.public.blob()) + 4
    comment_at = blob.index(b"ED25519 test key #1")
    for i in range(start, len(blob)):
        if comment_at <= i < comment_at + len("ED25519 test key #1"):
            continue  # the comment's text may be anything
        damaged = bytearray(blob)
        damaged[i] ^= 0x40
        with pytest.raises(SshError):
            decode_openssh_private(armor(bytes(damaged)), None)


def test_encrypted_corpus_key_from_a_copy(tmp_path: Path) -> None:
    copy = private_copy("sshkey/ed25519_1_pw", tmp_path)
    passphrase = (TESTDATA / "sshkey" / "pw").read_text().strip()
    key, comment = load_private(str(copy), passphrase)
    assert comment == "ED25519 test key #1"
    assert openssh_public_from_private(copy.read_bytes()) == key.public
