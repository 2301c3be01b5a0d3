"""PKCS#11 tokens as a key source for the agent (ssh-agent's ssh-pkcs11.c for pyssh).

``Pkcs11Backend`` is the KeyRing's SmartcardBackend. ``load_provider(path, pin)`` opens a
provider library with python-pkcs11, logs in to every initialised token and returns a
``Pkcs11Provider`` holding one ``TokenKey`` per RSA or ECDSA key found (from public-key
objects, and from X.509 certificate objects as OpenSSH does). A ``TokenKey`` is a
``PrivateKey`` whose ``sign`` runs on the token, so the key store keeps and uses it like
any other key; its secret never leaves the token, so it cannot be serialised.
python-pkcs11 is imported only here, and only when a provider is loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from keytools.errors import FeatureUnsupported, InvalidArgument, SshError
from keytools.private.base import PrivateKey, signature_blob
from keytools.public import EcdsaPublic, PublicKey, RsaPublic
from keytools.wire import Writer

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes


class Pkcs11Error(SshError):
    """A provider could not be loaded, logged in to, or asked to sign."""

    default_message = "PKCS#11 provider failure"


#: cryptography / asn1crypto curve names -> OpenSSH's.
_CURVE_NAMES = {"secp256r1": "nistp256", "secp384r1": "nistp384", "secp521r1": "nistp521"}
#: EC_PARAMS as the DER OID of each named curve (the form tokens store).
_CURVE_OIDS = {
    bytes.fromhex("06082a8648ce3d030107"): "nistp256",
    bytes.fromhex("06052b81040022"): "nistp384",
    bytes.fromhex("06052b81040023"): "nistp521",
}
_CURVE_HASH = {"nistp256": "sha256", "nistp384": "sha384", "nistp521": "sha512"}

#: SSH RSA signature algorithm -> (hash name, PKCS#11 hash-and-sign mechanism name).
_RSA_ALGORITHMS = {
    "rsa-sha2-512": ("sha512", "SHA512_RSA_PKCS"),
    "rsa-sha2-256": ("sha256", "SHA256_RSA_PKCS"),
    "ssh-rsa": ("sha1", "SHA1_RSA_PKCS"),
}
#: DER DigestInfo prefixes (RFC 8017 section 9.2, note 1) for tokens that only offer
#: raw CKM_RSA_PKCS; the token still does the padding and the private-key operation.
_DIGEST_INFO = {
    "sha1": bytes.fromhex("3021300906052b0e03021a05000414"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


def canonical_provider(path: str) -> str:
    """The provider's real path, as ssh-agent checks it against its allowlist."""
    try:
        return os.path.realpath(path, strict=True)
    except OSError as exc:
        raise Pkcs11Error(f"provider {path}: {exc.strerror or exc}") from None


class _Signer:
    """One token session, shared by that token's keys; PKCS#11 operations on a
    session are stateful, so signing on it is serialised with a lock."""

    def __init__(self, session: Any, mechanisms: frozenset[str]) -> None:
        self.session = session
        self.mechanisms = mechanisms
        self.lock = threading.Lock()
        self.closed = False

    def sign(self, obj: Any, data: bytes, mechanism_name: str) -> bytes:
        import pkcs11

        mechanism = getattr(pkcs11.Mechanism, mechanism_name)
        with self.lock:
            if self.closed:
                raise Pkcs11Error("provider removed")
            try:
                return bytes(obj.sign(data, mechanism=mechanism))
            except pkcs11.exceptions.PKCS11Error as exc:
                raise Pkcs11Error(f"C_Sign failed: {type(exc).__name__}") from None

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            with contextlib.suppress(Exception):  # the token may already be gone
                self.session.close()


def _unsupported() -> NoReturn:
    raise FeatureUnsupported()


@dataclass(frozen=True, eq=False)
class TokenKey(PrivateKey):
    """A private key that lives on a token: ``sign`` asks the token."""

    public_key: PublicKey
    label: str
    provider: str
    key_id: bytes
    _object: Any = field(repr=False)
    _signer: _Signer = field(repr=False)
    _cache: dict[str, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    @property
    def public(self) -> PublicKey:
        return self.public_key

    @property
    def comment(self) -> str:
        """What ssh-agent lists for it: the object's label, else the provider path."""
        return self.label or self.provider

    def encode_private_fields(self, w: Writer) -> None:
        _unsupported()

    def to_cryptography(self) -> PrivateKeyTypes:
        _unsupported()

    def sign(self, data: bytes, algorithm: str | None = None) -> bytes:
        if isinstance(self.public_key, RsaPublic):
            return self._sign_rsa(data, algorithm or "rsa-sha2-512")
        if isinstance(self.public_key, EcdsaPublic):
            return self._sign_ecdsa(data)
        _unsupported()

    def _sign_rsa(self, data: bytes, algorithm: str) -> bytes:
        plain = algorithm.replace("-cert-v01@openssh.com", "")
        if plain not in _RSA_ALGORITHMS:
            raise InvalidArgument()
        hash_name, mechanism = _RSA_ALGORITHMS[plain]
        if mechanism in self._signer.mechanisms:
            sig = self._signer.sign(self._object, data, mechanism)
        else:
            digest = hashlib.new(hash_name, data).digest()
            sig = self._signer.sign(self._object, _DIGEST_INFO[hash_name] + digest, "RSA_PKCS")
        return signature_blob(plain, sig)

    def _sign_ecdsa(self, data: bytes) -> bytes:
        assert isinstance(self.public_key, EcdsaPublic)
        curve = self.public_key.curve
        digest = hashlib.new(_CURVE_HASH[curve], data).digest()
        raw = self._signer.sign(self._object, digest, "ECDSA")
        half = len(raw) // 2
        if half == 0 or len(raw) % 2:
            raise Pkcs11Error("token returned a malformed ECDSA signature")
        r = int.from_bytes(raw[:half], "big")
        s = int.from_bytes(raw[half:], "big")
        return signature_blob(self.public_key.key_type, Writer().mpint(r).mpint(s).getvalue())


@dataclass
class Pkcs11Provider:
    """A loaded provider: its canonical path, its keys, and the sessions behind them."""

    path: str
    keys: list[TokenKey]
    _signers: list[_Signer] = field(default_factory=list, repr=False)
    _lib: Any = field(default=None, repr=False)

    def close(self) -> None:
        """Close every session and finalize the library (``ssh-add -e``): the keys stop
        signing, and loading the provider again starts afresh, as ssh-agent's helper
        process exiting would."""
        for signer in self._signers:
            signer.close()
        self._signers.clear()
        lib, self._lib = self._lib, None
        if lib is not None:
            with contextlib.suppress(Exception):
                lib.finalize()


class Pkcs11Backend:
    """The ``SmartcardBackend`` the agent's KeyRing loads providers through.

    One ``Pkcs11Provider`` per canonical provider path; loading one twice fails, as in
    ssh-agent, and unloading closes its sessions so its keys stop signing.
    """

    def __init__(self) -> None:
        self._providers: dict[str, Pkcs11Provider] = {}
        self._lock = threading.Lock()

    def load(self, provider: str, pin: str) -> list[tuple[PrivateKey, str]]:
        with self._lock:
            if provider in self._providers:
                raise Pkcs11Error(f"provider {provider} already loaded")
            loaded = load_provider(provider, pin)
            self._providers[loaded.path] = loaded
        return [(key, key.label) for key in loaded.keys]

    def unload(self, provider: str) -> None:
        with self._lock:
            loaded = self._providers.pop(provider, None)
        if loaded is None:
            raise Pkcs11Error(f"provider {provider} not loaded")
        loaded.close()

    def close(self) -> None:
        """Unload everything (the agent is exiting)."""
        with self._lock:
            providers = list(self._providers.values())
            self._providers.clear()
        for loaded in providers:
            loaded.close()


# -- reading keys off a token -------------------------------------------------------------


def _ec_public(params: bytes, point: bytes) -> EcdsaPublic | None:
    curve = _CURVE_OIDS.get(bytes(params))
    if curve is None:
        return None
    raw = bytes(point)
    from keytools.public.ecdsa import CURVES

    if len(raw) != 1 + 2 * CURVES[curve][1]:
        from asn1crypto.core import OctetString  # type: ignore[import-untyped]

        try:
            raw = bytes(OctetString.load(raw).native)
        except (ValueError, TypeError):
            return None
    try:
        from keytools.public.ecdsa import check_point

        check_point(curve, raw)
        return EcdsaPublic(curve, raw)
    except SshError:
        return None


def _public_from_object(obj: Any) -> PublicKey | None:
    from pkcs11 import Attribute, KeyType

    key_type = obj[Attribute.KEY_TYPE]
    try:
        if key_type == KeyType.RSA:
            n = int.from_bytes(bytes(obj[Attribute.MODULUS]), "big")
            e = int.from_bytes(bytes(obj[Attribute.PUBLIC_EXPONENT]), "big")
            return RsaPublic(e, n)
        if key_type == KeyType.EC:
            return _ec_public(obj[Attribute.EC_PARAMS], obj[Attribute.EC_POINT])
    except SshError:
        return None  # e.g. an RSA key below OpenSSH's 1024-bit minimum
    return None


def _public_from_certificate(der: bytes) -> PublicKey | None:
    """The key in an X.509 certificate object (OpenSSH also offers these)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    try:
        pub = x509.load_der_x509_certificate(der).public_key()
        if isinstance(pub, rsa.RSAPublicKey):
            nums = pub.public_numbers()
            return RsaPublic(nums.e, nums.n)
        if isinstance(pub, ec.EllipticCurvePublicKey):
            curve = _CURVE_NAMES.get(pub.curve.name)
            point = pub.public_bytes(serialization.Encoding.X962,
                                     serialization.PublicFormat.UncompressedPoint)
            return EcdsaPublic(curve, point) if curve else None
    except (ValueError, SshError):
        return None
    return None


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value or "")


def _token_keys(session: Any, signer: _Signer, provider: str) -> list[TokenKey]:
    from pkcs11 import Attribute, CertificateType, ObjectClass
    from pkcs11.exceptions import PKCS11Error

    found: list[tuple[PublicKey, str, bytes]] = []
    for obj in list(session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY})):
        pub = _public_from_object(obj)
        if pub is not None:
            found.append((pub, _text(obj[Attribute.LABEL]), bytes(obj[Attribute.ID])))
    try:
        certs = list(session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE,
                                          Attribute.CERTIFICATE_TYPE: CertificateType.X_509}))
    except PKCS11Error:
        certs = []
    for obj in certs:
        pub = _public_from_certificate(bytes(obj[Attribute.VALUE]))
        if pub is not None:
            found.append((pub, _text(obj[Attribute.LABEL]), bytes(obj[Attribute.ID])))

    keys: list[TokenKey] = []
    seen: set[bytes] = set()
    for pub, label, key_id in found:
        blob = pub.blob()
        if blob in seen:
            continue
        private = list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                                            Attribute.ID: key_id}))
        if not private:
            continue
        seen.add(blob)
        keys.append(TokenKey(pub, label, provider, key_id, private[0], signer))
    return keys


def load_provider(path: str, pin: str) -> Pkcs11Provider:
    """Open ``path``, log in to each token with ``pin`` and collect its keys.

    Raises Pkcs11Error when the library cannot be loaded, a PIN is refused, or no
    key is found (ssh-agent then answers SSH_AGENT_FAILURE).
    """
    canonical = canonical_provider(path)
    try:
        import pkcs11
        from pkcs11.exceptions import PKCS11Error
    except ImportError:
        raise Pkcs11Error("python-pkcs11 is not installed") from None
    try:
        lib = pkcs11.lib(canonical)
        slots = list(lib.get_slots(token_present=True))
    except (PKCS11Error, OSError, RuntimeError) as exc:
        raise Pkcs11Error(f"cannot load {canonical}: {type(exc).__name__}") from None
    provider = Pkcs11Provider(canonical, [], _lib=lib)
    try:
        for slot in slots:
            _load_slot(provider, slot, pin)
    except BaseException:
        provider.close()
        raise
    if not provider.keys:
        provider.close()
        raise Pkcs11Error(f"no keys found on {canonical}")
    return provider


def _load_slot(provider: Pkcs11Provider, slot: Any, pin: str) -> None:
    from pkcs11 import TokenFlag
    from pkcs11.exceptions import PinIncorrect, PinLocked, PKCS11Error

    try:
        token = slot.get_token()
        mechanisms = frozenset(m.name for m in slot.get_mechanisms() if hasattr(m, "name"))
    except PKCS11Error:
        return  # an uninitialised or unreadable token: skip it, as OpenSSH does
    try:
        if TokenFlag.LOGIN_REQUIRED in token.flags:
            session = token.open(user_pin=pin or None)
        else:
            session = token.open()
    except (PinIncorrect, PinLocked) as exc:
        raise Pkcs11Error(f"login to token failed: {type(exc).__name__}") from None
    except PKCS11Error:
        return
    signer = _Signer(session, mechanisms)
    provider._signers.append(signer)
    try:
        provider.keys.extend(_token_keys(session, signer, provider.path))
    except PKCS11Error as exc:
        raise Pkcs11Error(f"reading token objects failed: {type(exc).__name__}") from None
