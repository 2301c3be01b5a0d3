"""Whether a certificate may be accepted: the checks sshd and ssh make, in their order.

``check_certificate`` is what a server does with a user certificate (TrustedUserCAKeys)
and what a client does with a host certificate (``@cert-authority``): CA signature,
trusted CA, CA signature algorithm, certificate type, validity period, principals,
options, source address. It returns the certificate's options or raises
CertificateRefused whose message is OpenSSH's reason.

Beyond OpenSSH 9.x, and as OpenSSH 10.3 does after CVE-2024-7594: a certificate with no
principals is accepted nowhere, host or user. Wildcards in principals count only in
host certificates.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from keytools.addrmatch import addr_match_cidr_list
from keytools.cert_options import CertificateRefused, CertOptions, read_options
from keytools.certificate import HOST_CERT, USER_CERT, Certificate
from keytools.errors import SshError
from keytools.match import match_pattern, match_pattern_list
from keytools.public import PublicKey

__all__ = ["DEFAULT_CA_SIGNATURE_ALGORITHMS", "CertOptions", "CertificateRefused",
           "check_authority", "check_certificate"]

#: OpenSSH's default CASignatureAlgorithms (ssh-rsa, i.e. SHA-1, is not among them)
DEFAULT_CA_SIGNATURE_ALGORITHMS = (
    "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,"
    "sk-ssh-ed25519@openssh.com,sk-ecdsa-sha2-nistp256@openssh.com,"
    "rsa-sha2-512,rsa-sha2-256"
)


def check_authority(cert: Certificate, *, principal: str | None, host: bool,
                    now: int | float | None = None) -> None:
    """sshkey_cert_check_authority() with OpenSSH 10.3's principal rule.

    ``principal`` None skips the name match (sshd's AuthorizedPrincipals path) but an
    empty principal list is still refused.
    """
    when = time.time() if now is None else now
    if host and cert.cert_type != HOST_CERT:
        raise CertificateRefused("Certificate invalid: not a host certificate")
    if not host and cert.cert_type != USER_CERT:
        raise CertificateRefused("Certificate invalid: not a user certificate")
    if when < cert.valid_after:
        raise CertificateRefused("Certificate invalid: not yet valid")
    if when >= cert.valid_before:
        raise CertificateRefused("Certificate invalid: expired")
    if not cert.principals:
        raise CertificateRefused("Certificate lacks principal list")
    if principal is None:
        return
    if host:
        listed = any(match_pattern(principal, p) for p in cert.principals)
    else:
        listed = principal in cert.principals
    if not listed:
        raise CertificateRefused("Certificate invalid: name is not a listed principal")


def check_certificate(
    cert: PublicKey,
    *,
    principal: str | None,
    host: bool,
    ca_keys: Iterable[PublicKey] | None,
    now: int | float | None = None,
    source_address: str | None = None,
    ca_algorithms: str | None = DEFAULT_CA_SIGNATURE_ALGORITHMS,
) -> CertOptions:
    """Accept ``cert`` for ``principal`` (a user name, or a host name for ``host``) or
    raise CertificateRefused with OpenSSH's reason.

    ``ca_keys``: the trusted CA keys (TrustedUserCAKeys, the @cert-authority keys for
    the host); None means the caller has already matched the CA. ``ca_algorithms``:
    a CASignatureAlgorithms pattern list, None to allow any. ``source_address``: the
    client's address, required when the certificate has a source-address option (a
    certificate restricted to addresses is refused when there is none to check).
    Host certificates may carry no critical options at all.
    """
    if not isinstance(cert, Certificate):
        raise CertificateRefused("Key is not a certificate")
    try:
        cert.check_signature()
    except SshError as exc:
        raise CertificateRefused(f"Certificate signature invalid: {exc}") from None
    if ca_keys is not None:
        ca_blob = cert.signature_key.blob()
        if not any(ca.blob() == ca_blob for ca in ca_keys):
            raise CertificateRefused("Certificate signed by an untrusted CA")
    if ca_algorithms is not None:
        try:
            signature_type = cert.signature_type
        except SshError:
            signature_type = ""
        if match_pattern_list(signature_type, ca_algorithms, False) != 1:
            raise CertificateRefused("Certificate signed with disallowed algorithm")
    check_authority(cert, principal=principal, host=host, now=now)
    if host:
        if cert.critical_options:
            raise CertificateRefused("Certificate contains unsupported critical options")
        return CertOptions()  # ssh reads no extensions from a host certificate
    options = read_options(cert.critical_options, cert.extensions)
    if options.source_address is not None:
        if source_address is None:
            raise CertificateRefused(
                "Certificate restricted by source-address but no source address to check")
        if addr_match_cidr_list(source_address, options.source_address) != 1:
            raise CertificateRefused(
                "Certificate valid but not from a permitted source address "
                f"({source_address})")
    return options
