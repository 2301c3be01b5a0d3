"""Private key types: generation, the type+fields codec, validation and signing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from keytools.errors import (
    CurveMismatch,
    FeatureUnsupported,
    InvalidArgument,
    InvalidEcValue,
    InvalidFormat,
    KeyLength,
    KeyTypeUnknown,
    MessageIncomplete,
    SignatureInvalid,
    SshError,
    UnexpectedTrailingData,
)
from keytools.private import (
    DsaPrivate,
    EcdsaPrivate,
    Ed25519Private,
    PrivateKey,
    RsaPrivate,
    SkEcdsaPrivate,
    SkEd25519Private,
    decode_private_blob,
    decode_private_reader,
    encode_private_key,
    generate,
)
from keytools.public import decode_public_blob
from keytools.wire import Reader, Writer
from tests.helpers import run


@pytest.fixture(scope="module")
def rsa1024() -> RsaPrivate:
    key = generate("rsa", 1024)
    assert isinstance(key, RsaPrivate)
    return key


@pytest.fixture(scope="module")
def keys(rsa1024: RsaPrivate) -> dict[str, PrivateKey]:
    return {
        "ed25519": generate("ed25519"),
        "ecdsa256": generate("ecdsa"),
        "ecdsa384": generate("ecdsa", 384),
        "ecdsa521": generate("ecdsa", 521),
        "rsa1024": rsa1024,
    }


KINDS = ["ed25519", "ecdsa256", "ecdsa384", "ecdsa521", "rsa1024"]


# -- generation ---------------------------------------------------------------------------


def test_generate_defaults() -> None:
    ed = generate("ed25519")
    assert isinstance(ed, Ed25519Private)
    assert ed.key_type == "ssh-ed25519" and ed.bits == 256
    ec = generate("ecdsa")
    assert isinstance(ec, EcdsaPrivate)
    assert ec.key_type == "ecdsa-sha2-nistp256"
    assert generate("ecdsa-sha2-nistp384").key_type == "ecdsa-sha2-nistp384"
    assert generate("ECDSA", 521).bits == 521


def test_generate_rsa_default_size(monkeypatch: pytest.MonkeyPatch, rsa1024: RsaPrivate) -> None:
    """-t rsa without -b: 3072 bits, e = 65537 (not generated for real: too slow)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    calls: list[tuple[int, int]] = []

    def fake(public_exponent: int, key_size: int) -> object:
        calls.append((public_exponent, key_size))
        return rsa1024.to_cryptography()

    monkeypatch.setattr(rsa, "generate_private_key", fake)
    generate("rsa")
    generate("ssh-rsa", 2048)
    assert calls == [(65537, 3072), (65537, 2048)]


@pytest.mark.parametrize(
    ("kind", "bits", "flags"),
    [
        ("rsa", 512, ["-t", "rsa", "-b", "512"]),
        ("rsa", 1023, ["-t", "rsa", "-b", "1023"]),
        ("rsa", 16385, ["-t", "rsa", "-b", "16385"]),
        ("ecdsa", 200, ["-t", "ecdsa", "-b", "200"]),
        ("ecdsa", 224, ["-t", "ecdsa", "-b", "224"]),
        ("nosuchtype", None, ["-t", "nosuchtype"]),
    ],
)
def test_generate_refusals_match_ssh_keygen(
    kind: str, bits: int | None, flags: list[str], tmp_path: Path, ssh_keygen: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        generate(kind, bits)
    proc = run([ssh_keygen, *flags, "-N", "", "-q", "-f", tmp_path / "k"])
    assert proc.returncode != 0
    assert proc.stderr.strip() == str(info.value)


def test_generate_never_makes_dsa() -> None:
    # OpenSSH 10 no longer knows DSA: "-t dsa" is an unknown key type there.
    with pytest.raises(InvalidArgument) as info:
        generate("dsa")
    assert str(info.value) == "unknown key type dsa"


def test_generate_sk_needs_a_token() -> None:
    with pytest.raises(FeatureUnsupported):
        generate("ed25519-sk")


def test_generate_rsa_sizes(rsa1024: RsaPrivate) -> None:
    assert rsa1024.bits == 1024 and rsa1024.e == 65537


# -- codec --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_codec_round_trip(kind: str, keys: dict[str, PrivateKey]) -> None:
    key = keys[kind]
    blob = encode_private_key(key)
    assert blob == key.private_blob()
    again = decode_private_blob(blob)
    assert again == key
    assert again.public == key.public
    assert decode_public_blob(key.public.blob()) == key.public
    r = Reader(blob + b"tail")
    assert decode_private_reader(r) == key
    assert r.rest() == b"tail"
    with pytest.raises(UnexpectedTrailingData):
        decode_private_blob(blob + b"x")


@pytest.mark.parametrize("kind", KINDS)
def test_every_truncation_is_an_ssh_error(kind: str, keys: dict[str, PrivateKey]) -> None:
    blob = encode_private_key(keys[kind])
    step = max(1, len(blob) // 97)
    for cut in range(0, len(blob), step):
        with pytest.raises(SshError):
            decode_private_blob(blob[:cut])


def test_field_layouts(keys: dict[str, PrivateKey]) -> None:
    """The encodings PROTOCOL.key / the agent protocol give for each type."""
    ed = keys["ed25519"]
    assert isinstance(ed, Ed25519Private)
    r = Reader(encode_private_key(ed))
    assert r.ascii() == "ssh-ed25519"
    assert r.string() == ed.public_key
    assert r.string() == ed.seed + ed.public_key
    r.end()
    ec = keys["ecdsa384"]
    assert isinstance(ec, EcdsaPrivate)
    r = Reader(encode_private_key(ec))
    assert (r.ascii(), r.ascii(), r.string(), r.mpint()) == (
        "ecdsa-sha2-nistp384", "nistp384", ec.point, ec.d)
    r.end()
    rsa = keys["rsa1024"]
    assert isinstance(rsa, RsaPrivate)
    r = Reader(encode_private_key(rsa))
    assert r.ascii() == "ssh-rsa"
    assert [r.mpint() for _ in range(6)] == [rsa.n, rsa.e, rsa.d, rsa.iqmp, rsa.p, rsa.q]
    r.end()
    assert rsa.iqmp == pow(rsa.q, -1, rsa.p)


def test_unknown_type() -> None:
    with pytest.raises(KeyTypeUnknown):
        decode_private_blob(Writer().string("ssh-foo").string(b"x").getvalue())
    with pytest.raises(KeyTypeUnknown):
        decode_private_blob(Writer().string("ssh-ed25519-cert-v01@openssh.com").getvalue())
    with pytest.raises(MessageIncomplete):
        decode_private_blob(b"\0\0")


def _ed25519_blob(pub: bytes, sk: bytes) -> bytes:
    return Writer().string("ssh-ed25519").string(pub).string(sk).getvalue()


def test_ed25519_validation(keys: dict[str, PrivateKey]) -> None:
    ed = keys["ed25519"]
    assert isinstance(ed, Ed25519Private)
    other = generate("ed25519")
    assert isinstance(other, Ed25519Private)
    bad = [
        _ed25519_blob(other.public_key, ed.seed + other.public_key),  # pub not from seed
        _ed25519_blob(ed.public_key, ed.seed + other.public_key),  # two different pubs
        _ed25519_blob(ed.public_key[:31], ed.seed + ed.public_key),
        _ed25519_blob(ed.public_key, ed.seed + ed.public_key + b"x"),
    ]
    for blob in bad:
        with pytest.raises(InvalidFormat):
            decode_private_blob(blob)


def _ecdsa_blob(key_type: str, curve: str, point: bytes, d: int) -> bytes:
    return Writer().string(key_type).string(curve).string(point).mpint(d).getvalue()


def test_ecdsa_validation(keys: dict[str, PrivateKey]) -> None:
    ec = keys["ecdsa256"]
    assert isinstance(ec, EcdsaPrivate)
    other = keys["ecdsa384"]
    assert isinstance(other, EcdsaPrivate)
    t = "ecdsa-sha2-nistp256"
    with pytest.raises(CurveMismatch):
        decode_private_blob(_ecdsa_blob(t, "nistp384", ec.point, ec.d))
    with pytest.raises(InvalidFormat):  # a P-384 point does not decode on P-256
        decode_private_blob(_ecdsa_blob(t, "nistp256", other.point, ec.d))
    with pytest.raises(InvalidFormat):  # Q != d*G
        decode_private_blob(_ecdsa_blob(t, "nistp256", ec.point, ec.d + 1))
    with pytest.raises(InvalidEcValue):  # scalar too small (sshkey_ec_validate_private)
        decode_private_blob(_ecdsa_blob(t, "nistp256", ec.point, 12345))
    with pytest.raises(InvalidEcValue):
        decode_private_blob(_ecdsa_blob(t, "nistp256", ec.point, 2**256 - 1))


def _rsa_blob(n: int, e: int, d: int, iqmp: int, p: int, q: int) -> bytes:
    w = Writer().string("ssh-rsa")
    for v in (n, e, d, iqmp, p, q):
        w.mpint(v)
    return w.getvalue()


def test_rsa_validation(rsa1024: RsaPrivate) -> None:
    k = rsa1024
    with pytest.raises(InvalidFormat):  # n != p*q
        decode_private_blob(_rsa_blob(k.n, k.e, k.d, k.iqmp, k.p, k.q + 2))
    with pytest.raises(InvalidFormat):  # wrong d
        decode_private_blob(_rsa_blob(k.n, k.e, k.d + 2, k.iqmp, k.p, k.q))
    with pytest.raises(InvalidFormat):  # wrong iqmp
        decode_private_blob(_rsa_blob(k.n, k.e, k.d, k.iqmp + 1, k.p, k.q))
    with pytest.raises(InvalidFormat):
        decode_private_blob(_rsa_blob(k.n, k.e, k.d, k.iqmp, 1, k.n))


def small_rsa_pem(tmp_path: Path) -> Path:
    """A 768-bit RSA key (cryptography and ssh-keygen refuse to make one; openssl does)."""
    path = tmp_path / "small.pem"
    proc = run(["openssl", "genrsa", "-out", path, "768"]) if shutil.which("openssl") else None
    if proc is None or proc.returncode != 0:
        pytest.skip("openssl cannot make a 768-bit RSA key here")
    path.chmod(0o600)
    return path


def test_rsa_too_small(tmp_path: Path, ssh_keygen: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    path = small_rsa_pem(tmp_path)
    obj = load_pem_private_key(path.read_bytes(), None)
    assert isinstance(obj, rsa.RSAPrivateKey)
    small = obj.private_numbers()
    blob = _rsa_blob(small.public_numbers.n, 65537, small.d, small.iqmp, small.p, small.q)
    with pytest.raises(KeyLength) as info:
        decode_private_blob(blob)
    proc = run([ssh_keygen, "-y", "-f", path])
    assert proc.stderr.strip() == f'Load key "{path}": {info.value}'


def test_sk_round_trip_and_layout() -> None:
    ed = generate("ed25519")
    ec = generate("ecdsa")
    assert isinstance(ed, Ed25519Private) and isinstance(ec, EcdsaPrivate)
    sk_ed = SkEd25519Private(ed.public_key, "ssh:", 0x01, b"handle", b"")
    sk_ec = SkEcdsaPrivate(ec.point, "ssh:test", 0x05, b"\x01" * 64, b"res")
    for key in (sk_ed, sk_ec):
        assert decode_private_blob(encode_private_key(key)) == key
        with pytest.raises(FeatureUnsupported):
            key.sign(b"x")
        with pytest.raises(FeatureUnsupported):
            key.to_cryptography()
    r = Reader(encode_private_key(sk_ed))
    assert r.ascii() == "sk-ssh-ed25519@openssh.com"
    assert (r.string(), r.text(), r.byte(), r.string(), r.string()) == (
        ed.public_key, "ssh:", 1, b"handle", b"")
    r.end()
    assert sk_ec.public.key_type == "sk-ecdsa-sha2-nistp256@openssh.com"
    assert "handle" not in repr(sk_ed)


def test_secrets_stay_out_of_repr(keys: dict[str, PrivateKey]) -> None:
    ed = keys["ed25519"]
    assert isinstance(ed, Ed25519Private)
    assert repr(ed.seed) not in repr(ed)
    rsa = keys["rsa1024"]
    assert isinstance(rsa, RsaPrivate)
    assert str(rsa.d) not in repr(rsa) and str(rsa.p) not in repr(rsa)


# -- signing ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_sign_verify(kind: str, keys: dict[str, PrivateKey]) -> None:
    key = keys[kind]
    sig = key.sign(b"message")
    key.public.verify(b"message", sig)
    with pytest.raises(SignatureInvalid):
        key.public.verify(b"other message", sig)
    r = Reader(sig)
    assert r.ascii() == (key.key_type if kind != "rsa1024" else "rsa-sha2-512")


@pytest.mark.parametrize("alg", ["ssh-rsa", "rsa-sha2-256", "rsa-sha2-512"])
def test_rsa_algorithms(alg: str, rsa1024: RsaPrivate) -> None:
    sig = rsa1024.sign(b"m", alg)
    r = Reader(sig)
    assert r.ascii() == alg
    assert len(r.string()) == 128
    rsa1024.public.verify(b"m", sig)
    cert_alg = alg + "-cert-v01@openssh.com"
    assert Reader(rsa1024.sign(b"m", cert_alg)).ascii() == alg
    with pytest.raises(InvalidArgument):
        rsa1024.sign(b"m", "rsa-sha2-384")


def test_cryptography_object_is_cached(keys: dict[str, PrivateKey]) -> None:
    for key in keys.values():
        assert key.to_cryptography() is key.to_cryptography()
    ed = keys["ed25519"]
    assert isinstance(ed, Ed25519Private)
    fresh = Ed25519Private(ed.public_key, ed.seed)
    assert fresh == ed and hash(fresh) == hash(ed)
    assert fresh.to_cryptography() is fresh.to_cryptography()


def test_ecdsa_signature_shape(keys: dict[str, PrivateKey]) -> None:
    key = keys["ecdsa521"]
    r = Reader(key.sign(b"m"))
    assert r.ascii() == "ecdsa-sha2-nistp521"
    inner = Reader(r.string())
    inner.mpint()
    inner.mpint()
    inner.end()
    r.end()


# -- DSA (read, re-written and used, never generated) -------------------------------------


@pytest.fixture(scope="module")
def dsa_key() -> DsaPrivate:
    from cryptography.hazmat.primitives.asymmetric import dsa

    from keytools.private import from_cryptography

    key = from_cryptography(dsa.generate_private_key(1024))
    assert isinstance(key, DsaPrivate)
    return key


def test_dsa_codec_and_signature(dsa_key: DsaPrivate) -> None:
    assert decode_private_blob(encode_private_key(dsa_key)) == dsa_key
    sig = dsa_key.sign(b"m")
    r = Reader(sig)
    assert r.ascii() == "ssh-dss"
    assert len(r.string()) == 40
    dsa_key.public.verify(b"m", sig)
    bad = Writer().string("ssh-dss")
    for v in (dsa_key.p, dsa_key.q, dsa_key.g, dsa_key.y, dsa_key.x + 1):
        bad.mpint(v)
    with pytest.raises(InvalidFormat):
        decode_private_blob(bad.getvalue())


def test_dsa_readable_by_ssh_keygen(dsa_key: DsaPrivate, tmp_path: Path, ssh_keygen: str) -> None:
    from keytools.keyfile import save_private

    query = subprocess.run([ssh_keygen.replace("ssh-keygen", "ssh"), "-Q", "key"],
                           capture_output=True, text=True, check=False)
    if "ssh-dss" not in query.stdout.split():
        pytest.skip("the installed OpenSSH has no DSA")
    path = tmp_path / "dsa"
    save_private(str(path), dsa_key, "old dsa", "")
    proc = run([ssh_keygen, "-y", "-f", path])
    assert proc.stdout == dsa_key.public.openssh("old dsa") + "\n", proc.stderr
