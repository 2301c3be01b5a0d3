"""ecdsa-sha2-nistp256/384/521 public keys (RFC 5656)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from keytools.errors import CurveInvalid, CurveMismatch, InvalidFormat, SignatureInvalid
from keytools.public.base import PublicKey, register, split_signature
from keytools.wire import Reader, Writer

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.hashes import HashAlgorithm

#: curve name -> (bits, coordinate length in bytes, hash name)
CURVES: dict[str, tuple[int, int, str]] = {
    "nistp256": (256, 32, "sha256"),
    "nistp384": (384, 48, "sha384"),
    "nistp521": (521, 66, "sha512"),
}


def curve_object(curve: str) -> ec.EllipticCurve:
    from cryptography.hazmat.primitives.asymmetric import ec

    factories: dict[str, Callable[[], ec.EllipticCurve]] = {
        "nistp256": ec.SECP256R1,
        "nistp384": ec.SECP384R1,
        "nistp521": ec.SECP521R1,
    }
    return factories[curve]()


def hash_object(name: str) -> HashAlgorithm:
    from cryptography.hazmat.primitives import hashes

    factories: dict[str, Callable[[], HashAlgorithm]] = {
        "sha256": hashes.SHA256,
        "sha384": hashes.SHA384,
        "sha512": hashes.SHA512,
    }
    return factories[name]()


def curve_for_bits(bits: int) -> str | None:
    for name, (b, _, _) in CURVES.items():
        if b == bits:
            return name
    return None


def check_point(curve: str, point: bytes) -> None:
    """Reject anything but a valid uncompressed point on ``curve``."""
    _, clen, _ = CURVES[curve]
    if len(point) != 1 + 2 * clen or point[0] != 4:
        raise InvalidFormat()
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        ec.EllipticCurvePublicKey.from_encoded_point(curve_object(curve), point)
    except ValueError:
        raise InvalidFormat() from None


def verify_ecdsa(curve: str, point: bytes, digest_input: bytes, sig_blob: bytes) -> None:
    """Verify an SSH ECDSA signature body (string of mpint r, mpint s)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    r = Reader(sig_blob)
    sig_r, sig_s = r.mpint(), r.mpint()
    r.end()
    pub = ec.EllipticCurvePublicKey.from_encoded_point(curve_object(curve), point)
    try:
        pub.verify(
            encode_dss_signature(sig_r, sig_s),
            digest_input,
            ec.ECDSA(hash_object(CURVES[curve][2])),
        )
    except (InvalidSignature, ValueError):
        raise SignatureInvalid() from None


@dataclass(frozen=True)
class EcdsaPublic(PublicKey):
    curve: str
    point: bytes
    label: ClassVar[str] = "ECDSA"
    canonical_wire: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.curve not in CURVES:
            raise CurveInvalid()
        check_point(self.curve, self.point)

    @property
    def key_type(self) -> str:
        return f"ecdsa-sha2-{self.curve}"

    @property
    def bits(self) -> int:
        return CURVES[self.curve][0]

    def encode_body(self, w: Writer) -> None:
        w.string(self.curve).string(self.point)

    def verify(self, data: bytes, signature: bytes) -> None:
        alg, r = split_signature(signature)
        if alg != self.key_type:
            raise SignatureInvalid()
        body = r.string()
        r.end()
        verify_ecdsa(self.curve, self.point, data, body)


def decode_curve_and_point(key_type: str, r: Reader) -> tuple[str, bytes]:
    """The curve name and point; the name must be the one the key type implies."""
    curve = r.ascii()
    expected = "nistp256" if key_type.startswith("sk-") else key_type.split("-")[2]
    if curve != expected:
        raise CurveMismatch()
    return curve, r.string()


def _decode(key_type: str, r: Reader) -> PublicKey:
    curve, point = decode_curve_and_point(key_type, r)
    return EcdsaPublic(curve, point)


register(tuple(f"ecdsa-sha2-{c}" for c in CURVES), _decode)
