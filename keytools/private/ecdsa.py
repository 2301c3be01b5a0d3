"""ecdsa-sha2-nistp256/384/521 private keys: curve, public point and private scalar."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keytools.errors import CurveInvalid, CurveMismatch, InvalidEcValue, InvalidFormat
from keytools.private.base import PrivateKey, signature_blob
from keytools.public.ecdsa import CURVES, EcdsaPublic, check_point, curve_object, hash_object
from keytools.wire import Reader, Writer

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

#: Group orders of the NIST curves (public domain parameters, FIPS 186-4 D.1.2).
CURVE_ORDERS = {
    "nistp256": int(
        "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16
    ),
    "nistp384": int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
        "581A0DB248B0A77AECEC196ACCC52973",
        16,
    ),
    "nistp521": int(
        "68647976601306097149819007990813932172694353001433054093944634591855431833976553"
        "94245057746333217197532963996371363321113864768612440380340372808892707005449"
    ),
}

#: cryptography's curve names -> OpenSSH's.
CRYPTOGRAPHY_CURVES = {"secp256r1": "nistp256", "secp384r1": "nistp384", "secp521r1": "nistp521"}


def check_private_scalar(curve: str, d: int) -> None:
    """OpenSSH's sshkey_ec_validate_private: log2(d) > log2(order)/2 and d < order - 1."""
    order = CURVE_ORDERS[curve]
    if d.bit_length() <= order.bit_length() // 2 or d >= order - 1:
        raise InvalidEcValue()


def _point_of(obj: EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return obj.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


@dataclass(frozen=True)
class EcdsaPrivate(PrivateKey):
    curve: str
    point: bytes
    d: int = field(repr=False)
    _cache: dict[str, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        if self.curve not in CURVES:
            raise CurveInvalid()

    @classmethod
    def from_scalar(cls, curve: str, d: int) -> EcdsaPrivate:
        """The key for scalar ``d``, its public point computed (validated as OpenSSH does)."""
        from cryptography.hazmat.primitives.asymmetric import ec

        if curve not in CURVES:
            raise CurveInvalid()
        check_private_scalar(curve, d)
        try:
            obj = ec.derive_private_key(d, curve_object(curve))
        except ValueError:
            raise InvalidEcValue() from None
        key = cls(curve, _point_of(obj), d)
        key._cache["crypto"] = obj
        return key

    @classmethod
    def from_cryptography(cls, obj: EllipticCurvePrivateKey) -> EcdsaPrivate:
        curve = CRYPTOGRAPHY_CURVES.get(obj.curve.name)
        if curve is None:
            raise InvalidFormat()
        return cls.from_scalar(curve, obj.private_numbers().private_value)

    @property
    def public(self) -> EcdsaPublic:
        return self._cached("public", lambda: EcdsaPublic(self.curve, self.point))


    def encode_private_fields(self, w: Writer) -> None:
        w.string(self.curve).string(self.point).mpint(self.d)

    def to_cryptography(self) -> EllipticCurvePrivateKey:
        from cryptography.hazmat.primitives.asymmetric import ec

        return self._cached("crypto", lambda: ec.derive_private_key(self.d,
                                                                    curve_object(self.curve)))

    def sign(self, data: bytes, algorithm: str | None = None) -> bytes:
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        der = self.to_cryptography().sign(data, ec.ECDSA(hash_object(CURVES[self.curve][2])))
        r, s = decode_dss_signature(der)
        return signature_blob(self.key_type, Writer().mpint(r).mpint(s).getvalue())


def decode_ecdsa(key_type: str, r: Reader) -> EcdsaPrivate:
    """string curve, string Q, mpint d; Q must be d*G."""
    expected = key_type.removeprefix("ecdsa-sha2-")
    curve = r.ascii()
    if curve != expected or curve not in CURVES:
        raise CurveMismatch()
    point = r.string()
    check_point(curve, point)
    d = r.mpint()
    key = EcdsaPrivate.from_scalar(curve, d)
    if key.point != point:
        raise InvalidFormat()
    return key
