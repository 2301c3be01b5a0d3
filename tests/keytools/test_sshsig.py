"""keytools.sshsig: the OpenSSH corpus signatures, round trips, and every way a blob is refused."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from keytools import sshsig
from keytools.certificate import USER_CERT, Certificate
from keytools.errors import (
    InvalidFormat,
    KeyTypeUnknown,
    MessageIncomplete,
    SignatureAlgorithmUnsupported,
    SignatureInvalid,
    SshError,
)
from keytools.keyfile import load_private
from keytools.private import PrivateKey, generate
from keytools.public import PublicKey, parse_public_line
from keytools.wire import Reader, Writer
from tests.helpers import TESTDATA, private_copy

SSHSIG = TESTDATA / "sshsig"
SIGNED_DATA = (SSHSIG / "signed-data").read_bytes()
NAMESPACE = (SSHSIG / "namespace").read_text().strip()
CORPUS = sorted(SSHSIG.glob("*.sig"))
MLDSA_REASON = "ML-DSA composite keys (OpenSSH 10.4 experimental) not supported"


def _corpus_public(sig_path: Path) -> PublicKey:
    return parse_public_line((SSHSIG / f"{sig_path.stem}.pub").read_text())[0]


def _parse_or_skip(path: Path) -> tuple[bytes, sshsig.SshSignature]:
    blob = sshsig.dearmor(path.read_bytes())
    try:
        return blob, sshsig.parse_signature(blob)
    except KeyTypeUnknown:
        if "mldsa" in path.name:
            pytest.skip(MLDSA_REASON)
        raise


# -- the corpus ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_corpus_signature_verifies(path: Path) -> None:
    blob, parsed = _parse_or_skip(path)
    sig = sshsig.verify(blob, SIGNED_DATA, NAMESPACE)
    assert sig.public_key.same_key(_corpus_public(path))
    assert sig.namespace == NAMESPACE
    assert sig == parsed
    # the stream form hashes the same bytes
    assert sshsig.verify(blob, io.BytesIO(SIGNED_DATA), NAMESPACE) == sig
    # re-encoding gives back the blob, and our armour gives back OpenSSH's file
    assert sig.blob() == blob
    assert sig.armored() == path.read_text()


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_corpus_signature_rejects_other_data_and_namespace(path: Path) -> None:
    blob, _ = _parse_or_skip(path)
    for data in (b"", SIGNED_DATA + b"\n", SIGNED_DATA[:-1], b"x" + SIGNED_DATA[1:]):
        with pytest.raises(SignatureInvalid, match="Signature verification failed"):
            sshsig.verify(blob, data, NAMESPACE)
    for namespace in ("file", NAMESPACE + "x", NAMESPACE.upper()):
        with pytest.raises(SignatureInvalid, match="namespace does not match"):
            sshsig.verify(blob, SIGNED_DATA, namespace)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_corpus_public_key_and_hash(path: Path) -> None:
    blob, _ = _parse_or_skip(path)
    assert sshsig.get_public_key(blob).same_key(_corpus_public(path))
    assert sshsig.peek_hash_algorithm(blob) in sshsig.HASH_ALGORITHMS


def test_security_key_signatures_are_in_the_corpus() -> None:
    names = {p.name for p in CORPUS}
    assert {"ecdsa_sk.sig", "ed25519_sk.sig", "ecdsa_sk_webauthn.sig"} <= names


# -- signing round trips ------------------------------------------------------------------


def _corpus_private(name: str, tmp_path: Path) -> PrivateKey:
    return load_private(str(private_copy(SSHSIG / name, tmp_path)), "")[0]


@pytest.mark.parametrize("name", ["ed25519", "ecdsa", "rsa"])
@pytest.mark.parametrize("hashalg", sshsig.HASH_ALGORITHMS)
def test_sign_verify_round_trip(name: str, hashalg: str, tmp_path: Path) -> None:
    key = _corpus_private(name, tmp_path)
    sig = sshsig.sign(key, b"message", "file", hashalg)
    assert sig.hash_algorithm == hashalg
    blob = sshsig.dearmor(sig.armored())
    assert sshsig.verify(blob, b"message", "file").public_key.same_key(key.public)
    with pytest.raises(SignatureInvalid):
        sshsig.verify(blob, b"other", "file")
    if name == "rsa":  # RSA signs with the SHA-2 matching the message hash (OpenSSH 10)
        assert Reader(sig.signature).ascii() == sshsig.RSA_SIGN_ALGORITHMS[hashalg]


def test_sign_stream_equals_sign_bytes(tmp_path: Path) -> None:
    key = _corpus_private("ed25519", tmp_path)
    data = bytes(range(256)) * 1000
    assert sshsig.sign(key, io.BytesIO(data), "n") == sshsig.sign(key, data, "n")


def test_sign_refuses_bad_hash_and_empty_namespace(tmp_path: Path) -> None:
    key = generate("ed25519")
    with pytest.raises(SignatureAlgorithmUnsupported, match='unsupported hash algorithm "md5"'):
        sshsig.sign(key, b"m", "file", "md5")
    with pytest.raises(InvalidFormat):
        sshsig.sign(key, b"m", "")
    with pytest.raises(InvalidFormat):
        sshsig.sign(key, b"m", "file", public=generate("ed25519").public)


def _certificate(key: PublicKey, ca: PrivateKey, principals: tuple[str, ...]) -> Certificate:
    """A user certificate made here, signed by ``ca``: enough for signer tests."""
    from keytools.certificate import PLAIN_TO_CERT
    from keytools.public import decode_public_blob

    draft = Certificate(
        PLAIN_TO_CERT[key.key_type], b"n" * 32, key, 1, USER_CERT, "id", principals, 0,
        2**64 - 1, (), (), b"", ca.public, b"",
    )
    signed = draft.to_be_signed()
    blob = signed + Writer().string(ca.sign(signed)).getvalue()
    cert = decode_public_blob(blob)
    assert isinstance(cert, Certificate)
    return cert


def test_certificate_as_signer() -> None:
    ca, key = generate("ed25519"), generate("ed25519")
    cert = _certificate(key.public, ca, ("alice",))
    sig = sshsig.sign(key, b"data", "file", public=cert)
    verified = sshsig.verify(sig.blob(), b"data", "file")
    assert isinstance(verified.public_key, Certificate)
    assert verified.public_key.principals == ("alice",)
    # a certificate whose CA signature is broken is refused when the blob is read
    forged = Certificate(
        cert.cert_type_name, cert.nonce, cert.key, cert.serial, cert.cert_type, cert.key_id,
        ("root",), cert.valid_after, cert.valid_before, cert.critical_options,
        cert.extensions, cert.reserved, cert.signature_key, cert.signature,
    )
    bad = sshsig.SshSignature(forged, "file", "sha512", sig.signature)
    with pytest.raises(SignatureInvalid):
        sshsig.verify(bad.blob(), b"data", "file")
    with pytest.raises(SignatureInvalid):
        sshsig.get_public_key(bad.blob())


# -- refusals -----------------------------------------------------------------------------


def _blob(**changes: object) -> bytes:
    """The corpus ed25519 signature with some fields replaced."""
    sig = sshsig.parse_signature(sshsig.dearmor((SSHSIG / "ed25519.sig").read_bytes()))
    fields = {
        "magic": sshsig.MAGIC, "version": 1, "key": sig.public_key.blob(),
        "namespace": sig.namespace.encode(), "reserved": b"",
        "hashalg": sig.hash_algorithm.encode(), "signature": sig.signature, "tail": b"",
    }
    fields.update(changes)
    w = Writer().raw(fields["magic"]).uint32(fields["version"])  # type: ignore[arg-type]
    for name in ("key", "namespace", "reserved", "hashalg", "signature"):
        w.string(fields[name])  # type: ignore[arg-type]
    return w.raw(fields["tail"]).getvalue()  # type: ignore[arg-type]


def test_unchanged_blob_verifies() -> None:
    assert sshsig.verify(_blob(), SIGNED_DATA, NAMESPACE)


def test_reserved_field_is_ignored_when_not_signed() -> None:
    # the reserved field is not covered by the signature and OpenSSH ignores it
    assert sshsig.verify(_blob(reserved=b"tag"), SIGNED_DATA, NAMESPACE).reserved == b"tag"


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"magic": b"SSHSIX"}, InvalidFormat, "Couldn't verify signature: invalid format"),
        ({"version": 2}, InvalidFormat, "Signature version 2 is larger than supported version 1"),
        ({"tail": b"\0"}, InvalidFormat, "Signature contains trailing data"),
        ({"hashalg": b"sha1"}, SignatureAlgorithmUnsupported, "unsupported hash algorithm"),
        ({"key": b"\0\0\0\x03foo"}, KeyTypeUnknown, "parse signature object"),
        ({"signature": b"garbage"}, SshError, "Signature verification failed"),
    ],
)
def test_refused_blobs(changes: dict[str, object], error: type[SshError], message: str) -> None:
    with pytest.raises(error, match=message):
        sshsig.verify(_blob(**changes), SIGNED_DATA, NAMESPACE)


def test_hash_algorithm_swap_is_refused() -> None:
    # the blob claims sha256 but the signature covers a sha512 message: verification fails
    with pytest.raises(SignatureInvalid):
        sshsig.verify(_blob(hashalg=b"sha256"), SIGNED_DATA, NAMESPACE)
    digest = sshsig.hash_message(SIGNED_DATA, "sha256")
    with pytest.raises(SignatureInvalid, match="hash algorithm mismatch"):
        sshsig.verify_digest(_blob(), digest, "sha256", NAMESPACE)


def test_rsa_ssh_rsa_signature_is_refused(tmp_path: Path) -> None:
    key = _corpus_private("rsa", tmp_path)
    digest = sshsig.hash_message(b"m", "sha512")
    legacy = key.sign(sshsig.signed_data("file", "sha512", digest), "ssh-rsa")
    blob = sshsig.SshSignature(key.public, "file", "sha512", legacy).blob()
    with pytest.raises(SignatureAlgorithmUnsupported, match="unsupported RSA signature algorithm"):
        sshsig.verify(blob, b"m", "file")


def test_truncated_blobs_raise_ssh_errors() -> None:
    blob = _blob()
    for cut in range(len(blob)):
        with pytest.raises(SshError):
            sshsig.verify(blob[:cut], SIGNED_DATA, NAMESPACE)


# -- armour -------------------------------------------------------------------------------


def test_armour_round_trip_and_line_length() -> None:
    blob = bytes(range(256))
    text = sshsig.armor(blob)
    lines = text.splitlines()
    assert lines[0] == sshsig.BEGIN_SIGNATURE and lines[-1] == sshsig.END_SIGNATURE
    assert all(len(line) <= 70 for line in lines[1:-1])
    assert sshsig.dearmor(text) == blob
    assert sshsig.dearmor(text.replace("\n", "\r\n")) == blob  # CRLF files are accepted
    assert sshsig.dearmor(text + "trailing junk after the footer") == blob


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        (b"junk", MessageIncomplete, "missing header"),
        (b"x" * 40, InvalidFormat, "missing header"),
        (b"-----BEGIN SSH SIGNATURE-----AAAA", InvalidFormat, "no header eol"),
        (b"-----BEGIN SSH SIGNATURE-----\nAAAA\n", MessageIncomplete, "missing footer"),
        (b"-----BEGIN SSH SIGNATURE-----\n" + b"A" * 64 + b"\n", InvalidFormat, "missing footer"),
        (b"-----BEGIN SSH SIGNATURE-----\n!!!!\n-----END SSH SIGNATURE-----\n", InvalidFormat,
         "decode base64"),
        (b"-----BEGIN SSH SIGNATURE-----\nAB==\n-----END SSH SIGNATURE-----\n", InvalidFormat,
         "decode base64"),  # stray bits after the last byte
        (b"-----BEGIN SSH SIGNATURE-----\nAA\n-----END SSH SIGNATURE-----\n", InvalidFormat,
         "decode base64"),  # missing padding
    ],
)
def test_dearmor_refusals(text: bytes, error: type[SshError], message: str) -> None:
    with pytest.raises(error, match=message):
        sshsig.dearmor(text)


def test_dearmor_whitespace_inside_base64() -> None:
    blob = b"abcdef"
    body = "YWJj\t ZGVm\r"
    assert sshsig.dearmor(f"{sshsig.BEGIN_SIGNATURE}\n{body}\n{sshsig.END_SIGNATURE}\n") == blob
