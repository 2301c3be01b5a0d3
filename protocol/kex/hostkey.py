"""Host key algorithms: which key type each names, which signature it wants, and the
check of the server's signature over the exchange hash."""

from __future__ import annotations

from keytools.errors import KeyTypeMismatch, SignatureInvalid
from keytools.public import PublicKey, decode_public_blob
from keytools.public.base import split_signature

CERT_SUFFIX = "-cert-v01@openssh.com"
_RSA_SHA2 = ("rsa-sha2-256", "rsa-sha2-512")


def signature_algorithm(host_key_alg: str) -> str:
    """The signature name a host key algorithm uses: the plain name for certificates."""
    return host_key_alg.removesuffix(CERT_SUFFIX)


def key_type(host_key_alg: str) -> str:
    """The key blob type an algorithm names (rsa-sha2-512 -> ssh-rsa, also for certs)."""
    base = signature_algorithm(host_key_alg)
    plain = "ssh-rsa" if base in _RSA_SHA2 else base
    return plain + CERT_SUFFIX if host_key_alg.endswith(CERT_SUFFIX) else plain


def algorithms_for_key(key: PublicKey) -> tuple[str, ...]:
    """Host key algorithms a server can offer for ``key`` (RSA: SHA-2 only, no ssh-rsa)."""
    name = key.key_type
    if name == "ssh-rsa":
        return ("rsa-sha2-512", "rsa-sha2-256")
    if name == "ssh-rsa" + CERT_SUFFIX:
        return tuple(alg + CERT_SUFFIX for alg in ("rsa-sha2-512", "rsa-sha2-256"))
    return (name,)


def verify_host_signature(host_key_alg: str, key_blob: bytes, signature: bytes,
                          h: bytes) -> PublicKey:
    """Decode K_S, check it is the negotiated type and that ``signature`` is over H.

    The signature's own algorithm must be the negotiated one, so an RSA server cannot
    downgrade us to SHA-1 (RsaPublic.verify alone accepts ssh-rsa).
    """
    key = decode_public_blob(key_blob)
    if key.key_type != key_type(host_key_alg):
        raise KeyTypeMismatch()
    sig_alg, _ = split_signature(signature)
    if sig_alg != signature_algorithm(host_key_alg):
        raise SignatureInvalid()
    key.verify(h, signature)
    return key
