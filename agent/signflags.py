"""SIGN_REQUEST flags and the signature algorithms they ask for, apart from the agent's wire
messages (``agent.messages`` re-exports them) so that in-process signing with a file key
does not import the whole protocol."""

from __future__ import annotations

SSH_AGENT_OLD_SIGNATURE = 1
SSH_AGENT_RSA_SHA2_256 = 2
SSH_AGENT_RSA_SHA2_512 = 4

#: SIGN_REQUEST flags for an RSA signature algorithm name (others: 0).
ALGORITHM_FLAGS = {
    "rsa-sha2-256": SSH_AGENT_RSA_SHA2_256,
    "rsa-sha2-512": SSH_AGENT_RSA_SHA2_512,
    "rsa-sha2-256-cert-v01@openssh.com": SSH_AGENT_RSA_SHA2_256,
    "rsa-sha2-512-cert-v01@openssh.com": SSH_AGENT_RSA_SHA2_512,
}


def sign_flags(algorithm: str | None) -> int:
    """The SIGN_REQUEST flags asking for ``algorithm`` (as OpenSSH's agent_encode_alg)."""
    return ALGORITHM_FLAGS.get(algorithm or "", 0)
