"""The user's ~/.ssh directory and default names, found as OpenSSH finds them.

OpenSSH takes the home directory from the password database, not from $HOME.
"""

from __future__ import annotations

import os
import pwd

_DEFAULT_NAMES = {
    "rsa": "id_rsa",
    "ecdsa": "id_ecdsa",
    "ecdsa-sk": "id_ecdsa_sk",
    "ed25519": "id_ed25519",
    "ed25519-sk": "id_ed25519_sk",
}


def _passwd() -> pwd.struct_passwd:
    return pwd.getpwuid(os.getuid())


def user_ssh_dir() -> str:
    return os.path.join(_passwd().pw_dir, ".ssh")


def user_at_host() -> str:
    """The default key comment: ``user@hostname``."""
    import socket

    return f"{_passwd().pw_name}@{socket.gethostname()}"


def default_identity(key_type: str | None) -> str:
    """The file ssh-keygen offers for a key type (-t), e.g. ~/.ssh/id_ed25519."""
    kind = (key_type or "ed25519").lower()
    if kind.startswith("ecdsa-sha2") or kind == "ecdsa":
        kind = "ecdsa"
    elif kind.startswith("sk-ecdsa"):
        kind = "ecdsa-sk"
    elif kind.startswith("sk-ssh-ed25519"):
        kind = "ed25519-sk"
    elif kind in ("ssh-rsa", "rsa-sha2-256", "rsa-sha2-512"):
        kind = "rsa"
    elif kind == "ssh-ed25519":
        kind = "ed25519"
    return os.path.join(user_ssh_dir(), _DEFAULT_NAMES.get(kind, "id_ed25519"))


def ensure_user_ssh_dir(path: str) -> str | None:
    """Create ~/.ssh (0700) if ``path`` is directly inside it and it is missing.

    Returns the directory when it was created, for the "Created directory" notice.
    """
    directory = user_ssh_dir()
    parent = os.path.dirname(path)
    if not parent or os.path.normpath(parent) != os.path.normpath(directory):
        return None
    if os.path.exists(directory):
        return None
    os.mkdir(directory, 0o700)
    return directory
