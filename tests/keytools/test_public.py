"""Public keys and certificates from the OpenSSH corpus, checked against the real ssh-keygen."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from keytools.certificate import HOST_CERT, USER_CERT, Certificate
from keytools.errors import (
    CurveMismatch,
    InvalidFormat,
    KeyLength,
    KeyTypeMismatch,
    KeyTypeUnknown,
    MessageIncomplete,
    SignatureInvalid,
    SshError,
    UnexpectedTrailingData,
)
from keytools.public import (
    EcdsaPublic,
    Ed25519Public,
    PublicKey,
    RsaPublic,
    SkEcdsaPublic,
    SkEd25519Public,
    decode_public_blob,
    parse_public_line,
    read_key_token,
    type_label,
)
from keytools.wire import Reader, Writer
from tests.helpers import TESTDATA, run

MLDSA_REASON = "ML-DSA composite keys (OpenSSH 10.4 experimental) not supported"

_PATTERNS = (
    "sshkey/*.pub",
    "regress/*.pub",
    "hostkeys/*.pub",
    "authopt/*.cert",
    "sshsig/*.pub",
    "krl/*.pub",
)


def _corpus_files() -> list[Path]:
    files = {p for pattern in _PATTERNS for p in TESTDATA.glob(pattern)}
    # sshkey/X.param.pub holds a hex number, not a key file.
    return sorted(p for p in files if ".param." not in p.name)


CORPUS = _corpus_files()
SSH1_KEYS = [p for p in CORPUS if p.name.startswith("rsa1_")]
KEYS = [p for p in CORPUS if p not in SSH1_KEYS]
CERTS = [p for p in KEYS if p.name.endswith(("-cert.pub", ".cert"))]
#: the plain key types cryptography's own OpenSSH parser understands
CRYPTOGRAPHY_KEYS = [
    p for p in KEYS
    if p.read_text().split(" ", 1)[0] in
    ("ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")
]


def _id(p: Path) -> str:
    return f"{p.parent.name}/{p.name}"


def _is_mldsa(path: Path) -> bool:
    return path.name.startswith("mldsa44")


def _first_line(path: Path) -> str:
    return path.read_text().splitlines()[0]


def _load(path: Path) -> tuple[PublicKey, str]:
    if _is_mldsa(path):
        pytest.skip(MLDSA_REASON)
    return parse_public_line(_first_line(path))


def _load_cert(path: Path) -> Certificate:
    key, _ = _load(path)
    assert isinstance(key, Certificate)
    return key


def test_corpus_is_present() -> None:
    assert len(KEYS) > 50, f"conformance corpus not found under {TESTDATA}"
    assert len(CERTS) > 20
    assert len(SSH1_KEYS) == 6


@pytest.mark.parametrize("path", KEYS, ids=_id)
def test_bits_label_and_comment_match_ssh_keygen(path: Path, ssh_keygen: str) -> None:
    key, comment = _load(path)
    proc = run([ssh_keygen, "-l", "-f", path])
    assert proc.returncode == 0, proc.stderr
    fields = proc.stdout.split()
    assert key.bits == int(fields[0])
    assert f"({type_label(key)})" == fields[-1]
    assert (comment or "no comment") == " ".join(fields[2:-1])


@pytest.mark.parametrize("path", KEYS, ids=_id)
def test_line_and_blob_round_trip(path: Path) -> None:
    key, comment = _load(path)
    line = _first_line(path)
    assert key.openssh(comment) == line.rstrip()
    blob = base64.b64decode(line.split()[1])
    assert key.blob() == blob
    again = decode_public_blob(blob)
    assert again == key
    assert again.blob() == blob
    assert key.key_type == line.split()[0]


@pytest.mark.parametrize("path", KEYS, ids=_id)
def test_plain_key_of_certificate(path: Path) -> None:
    key, _ = _load(path)
    if key.is_certificate:
        assert isinstance(key, Certificate)
        assert not key.plain.is_certificate
        assert key.plain is key.key
        assert type_label(key) == f"{key.plain.label}-CERT"
        assert key.bits == key.plain.bits
    else:
        assert key.plain is key
        assert type_label(key) == key.label


@pytest.mark.parametrize("path", CRYPTOGRAPHY_KEYS, ids=_id)
def test_numbers_match_cryptography(path: Path) -> None:
    """cryptography's own OpenSSH parser must see the same key."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_ssh_public_key,
    )

    key, _ = _load(path)
    ref = load_ssh_public_key(_first_line(path).encode())
    if isinstance(key, RsaPublic):
        assert isinstance(ref, rsa.RSAPublicKey)
        assert (ref.public_numbers().e, ref.public_numbers().n) == (key.e, key.n)
    elif isinstance(key, EcdsaPublic):
        assert isinstance(ref, ec.EllipticCurvePublicKey)
        assert ref.curve.key_size == key.bits
        assert ref.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint) == key.point
    else:
        assert isinstance(key, Ed25519Public)
        assert isinstance(ref, ed25519.Ed25519PublicKey)
        assert ref.public_bytes(Encoding.Raw, PublicFormat.Raw) == key.key
    assert ref.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).split()[1] == (
        _first_line(path).split()[1].encode()
    )


@pytest.mark.parametrize("path", SSH1_KEYS, ids=_id)
def test_ssh1_keys_are_refused(path: Path, ssh_keygen: str) -> None:
    assert run([ssh_keygen, "-l", "-f", path]).returncode != 0
    with pytest.raises(SshError):
        parse_public_line(_first_line(path))


# --- certificates -------------------------------------------------------------------------


@pytest.mark.parametrize("path", CERTS, ids=_id)
def test_certificate_signature_verifies(path: Path) -> None:
    cert = _load_cert(path)
    cert.check_signature()
    assert not cert.signature_key.is_certificate
    assert cert.to_be_signed() == cert.signed_data
    assert cert.blob().startswith(cert.signed_data)


def _ssh_keygen_listing(ssh_keygen: str, path: Path) -> dict[str, str | list[str]]:
    proc = run([ssh_keygen, "-L", "-f", path])
    assert proc.returncode == 0, proc.stderr
    fields: dict[str, str | list[str]] = {}
    current: list[str] | None = None
    for line in proc.stdout.splitlines():
        m = re.match(r"^\s+([A-Za-z ]+):\s*(.*)$", line)
        if m and not line.startswith(" " * 16):
            name, value = m.group(1), m.group(2)
            if value:
                fields[name] = value
                current = None
            else:
                current = []
                fields[name] = current
        elif current is not None and line.strip():
            current.append(line.strip())
    return fields


@pytest.mark.parametrize("path", CERTS, ids=_id)
def test_certificate_fields_match_ssh_keygen_listing(path: Path, ssh_keygen: str) -> None:
    cert = _load_cert(path)
    listing = _ssh_keygen_listing(ssh_keygen, path)
    kind = {USER_CERT: "user", HOST_CERT: "host"}[cert.cert_type]
    assert listing["Type"] == f"{cert.key_type} {kind} certificate"
    assert listing["Serial"] == str(cert.serial)
    assert listing["Key ID"] == f'"{cert.key_id}"'
    sig_alg = Reader(cert.signature).ascii()
    signing_ca = listing["Signing CA"]
    assert isinstance(signing_ca, str)
    assert signing_ca.startswith(f"{type_label(cert.signature_key)} SHA256:")
    assert signing_ca.endswith(f" (using {sig_alg})")
    principals = listing["Principals"]
    assert (list(cert.principals) or ["(none)"]) == (
        principals if isinstance(principals, list) else [principals]
    )


def _nonce_offset(blob: bytes) -> int:
    """Offset of the first nonce byte: after string(type name) and the nonce's length."""
    name_len = int.from_bytes(blob[:4], "big")
    return 4 + name_len + 4


def _flip(blob: bytes, pos: int, mask: int = 0x01) -> bytes:
    return blob[:pos] + bytes((blob[pos] ^ mask,)) + blob[pos + 1 :]


@pytest.mark.parametrize("path", CERTS, ids=_id)
def test_certificate_with_changed_nonce_fails_signature(path: Path) -> None:
    blob = _load_cert(path).blob()
    tampered = decode_public_blob(_flip(blob, _nonce_offset(blob)))  # still well-formed
    assert isinstance(tampered, Certificate)
    with pytest.raises(SignatureInvalid) as exc:
        tampered.check_signature()
    assert str(exc.value) == "incorrect signature"


@pytest.mark.parametrize("path", CERTS, ids=_id)
def test_certificate_any_flipped_byte_is_detected(path: Path) -> None:
    """Every single-byte change either breaks the format or the CA signature."""
    blob = _load_cert(path).blob()
    for pos in range(len(blob)):
        for mask in (0x01, 0x80):
            mutated = _flip(blob, pos, mask)
            with pytest.raises(SshError):
                key = decode_public_blob(mutated)
                assert isinstance(key, Certificate)
                key.check_signature()


def test_certificate_trailing_signature_data_fails() -> None:
    cert = _load_cert(TESTDATA / "sshkey" / "ed25519_1-cert.pub")
    with pytest.raises(UnexpectedTrailingData):
        decode_public_blob(cert.blob() + b"\0")


# --- malformed input ----------------------------------------------------------------------


def _ed25519_blob(key: bytes = b"\x01" * 32, name: str = "ssh-ed25519") -> bytes:
    return Writer().string(name).string(key).getvalue()


def _line(name: str, blob: bytes, comment: str = "") -> str:
    return f"{name} {base64.b64encode(blob).decode()} {comment}".rstrip()


def test_parse_line_comment_and_whitespace() -> None:
    blob = _ed25519_blob()
    key, comment = parse_public_line(" \tssh-ed25519\t " + base64.b64encode(blob).decode()
                                     + "  my key  \r\n")
    assert isinstance(key, Ed25519Public)
    assert comment == "my key"
    key, comment = parse_public_line(_line("ssh-ed25519", blob))
    assert comment == ""
    key, rest = read_key_token(_line("ssh-ed25519", blob, "x y"))
    assert rest == " x y"


def test_unknown_type_name() -> None:
    with pytest.raises(KeyTypeUnknown) as exc:
        parse_public_line(_line("ssh-foo", _ed25519_blob(name="ssh-foo")))
    assert str(exc.value) == "unknown or unsupported key type"
    with pytest.raises(KeyTypeUnknown):
        decode_public_blob(_ed25519_blob(name="ssh-foo"))


def test_type_name_must_match_blob() -> None:
    with pytest.raises(KeyTypeMismatch):
        parse_public_line(_line("ssh-rsa", _ed25519_blob()))


@pytest.mark.parametrize("line", ["", "ssh-ed25519", "ssh-ed25519 ", "ssh-ed25519 !!!!",
                                  "ssh-ed25519 AAAA=AAA", "ssh-ed25519 \u00e9\u00e9\u00e9\u00e9"])
def test_missing_or_bad_base64(line: str) -> None:
    with pytest.raises(SshError):
        parse_public_line(line)


def test_truncated_and_trailing_blobs() -> None:
    blob = _ed25519_blob()
    for cut in range(len(blob)):
        with pytest.raises(MessageIncomplete):
            decode_public_blob(blob[:cut])
    with pytest.raises(UnexpectedTrailingData):
        decode_public_blob(blob + b"x")
    # The corpus's broken known_hosts line: a blob cut off inside the type name.
    with pytest.raises(SshError):
        parse_public_line("ssh-ed25519 AAAATgAAAAdz")


def test_ed25519_key_length() -> None:
    with pytest.raises(InvalidFormat):
        decode_public_blob(_ed25519_blob(b"\x01" * 31))
    with pytest.raises(InvalidFormat):
        Ed25519Public(b"\x01" * 33)


def test_rsa_modulus_size_limits() -> None:
    with pytest.raises(KeyLength) as exc:
        decode_public_blob(Writer().string("ssh-rsa").mpint(65537).mpint(2**1000 + 1).getvalue())
    assert str(exc.value) == "Invalid key length"
    with pytest.raises(KeyLength):
        RsaPublic(65537, 2**16384 + 1)
    assert RsaPublic(65537, 2**1023 + 1).bits == 1024


def test_ecdsa_curve_and_point_checks() -> None:
    good = _load(TESTDATA / "sshkey" / "ecdsa_1.pub")[0]
    assert isinstance(good, EcdsaPublic)

    def blob(name: str, curve: str, point: bytes) -> bytes:
        return Writer().string(name).string(curve).string(point).getvalue()

    # OpenSSH's words (checked against ssh-keygen -i in test_convert): any curve name other
    # than the type's is a mismatch; a point that does not decode is "invalid format".
    with pytest.raises(CurveMismatch):
        decode_public_blob(blob("ecdsa-sha2-nistp384", "nistp256", good.point))
    with pytest.raises(CurveMismatch):
        decode_public_blob(blob("ecdsa-sha2-nistp256", "nistp999", good.point))
    bad_point = good.point[:-1] + bytes((good.point[-1] ^ 1,))
    for point in (bad_point, b"\x02" + good.point[1:33], b""):
        with pytest.raises(InvalidFormat):
            decode_public_blob(blob("ecdsa-sha2-nistp256", "nistp256", point))


def test_sk_keys_carry_application() -> None:
    ed = _load(TESTDATA / "sshkey" / "ed25519_sk1.pub")[0]
    ec = _load(TESTDATA / "sshkey" / "ecdsa_sk1.pub")[0]
    assert isinstance(ed, SkEd25519Public)
    assert isinstance(ec, SkEcdsaPublic)
    assert ed.application.startswith("ssh:")
    assert ec.application.startswith("ssh:")


def test_verify_rejects_wrong_algorithm_and_garbage() -> None:
    cert = _load_cert(TESTDATA / "sshkey" / "rsa_1_sha512-cert.pub")
    ca = cert.signature_key
    ca.verify(cert.signed_data, cert.signature)
    with pytest.raises(SignatureInvalid):
        ca.verify(cert.signed_data + b"x", cert.signature)
    with pytest.raises(SshError):
        ca.verify(cert.signed_data, b"garbage")
    # Same RSA signature bytes under a different hash algorithm name.
    alg_len = int.from_bytes(cert.signature[:4], "big")
    relabelled = Writer().string("rsa-sha2-256").raw(cert.signature[4 + alg_len :]).getvalue()
    with pytest.raises(SignatureInvalid):
        ca.verify(cert.signed_data, relabelled)
