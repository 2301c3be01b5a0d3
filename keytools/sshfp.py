"""SSHFP DNS records (RFC 4255, 6594, 7479) for a host key, as ssh-keygen -r prints them.

Key algorithm numbers: RSA 1, ECDSA 3, Ed25519 4 (DSA, 2, went with OpenSSH 10);
digest types: SHA-1 1, SHA-256 2. Certificates and security-key keys have no SSHFP
algorithm, so they give no record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keytools.public import PublicKey

#: DNS_RDATATYPE_SSHFP
RR_TYPE = 44
SSHFP_ALGORITHMS = {
    "ssh-rsa": 1,
    "ecdsa-sha2-nistp256": 3,
    "ecdsa-sha2-nistp384": 3,
    "ecdsa-sha2-nistp521": 3,
    "ssh-ed25519": 4,
}
#: SSHFP digest type -> hash name, in the order ssh-keygen prints them
SSHFP_DIGESTS = {1: "sha1", 2: "sha256"}


@dataclass(frozen=True)
class SshfpRecord:
    algorithm: int
    digest_type: int
    digest: bytes

    def text(self, host: str, generic: bool = False) -> str:
        """The zone-file line (no newline); ``generic`` is RFC 3597's ``TYPE44 \\#`` form."""
        if generic:
            return (f"{host} IN TYPE{RR_TYPE} \\# {2 + len(self.digest)} "
                    f"{self.algorithm:02x} {self.digest_type:02x} {self.digest.hex()}")
        return f"{host} IN SSHFP {self.algorithm} {self.digest_type} {self.digest.hex()}"


def sshfp_records(key: PublicKey) -> list[SshfpRecord]:
    """The SHA-1 and SHA-256 records of a key; empty for a type SSHFP cannot name."""
    from keytools.fingerprint import fingerprint_raw

    algorithm = SSHFP_ALGORITHMS.get(key.key_type)
    if algorithm is None:
        return []
    return [SshfpRecord(algorithm, number, fingerprint_raw(key, name))
            for number, name in SSHFP_DIGESTS.items()]
