"""Key passphrases kept in the OS keyring (``pyadd --keyring``), via the ``keyring`` package.

Entries live under the service ``pyssh`` with the key file's absolute path as the user
name, so each key file has its own passphrase. ``keyring`` is imported only when the
store is used; without a usable backend every call raises ``StoreUnavailable`` with a
sentence a user can act on, and pyadd falls back to its normal prompt.
"""

from __future__ import annotations

import os
from typing import Any

SERVICE = "pyssh"


class StoreUnavailable(Exception):
    """No OS keyring can be used (no backend, locked, or it refused the request)."""


def _backend() -> Any:
    try:
        import keyring
        import keyring.errors
    except ImportError:
        raise StoreUnavailable("the Python keyring package is not installed") from None
    try:
        backend = keyring.get_keyring()
    except Exception as exc:  # a broken backend configuration
        raise StoreUnavailable(f"no usable OS keyring ({exc})") from None
    module = type(backend).__module__
    if module.startswith("keyring.backends.fail") or module.startswith("keyring.backends.null"):
        raise StoreUnavailable("no OS keyring backend is available "
                               "(is a Secret Service such as gnome-keyring running?)")
    return backend


def entry_name(path: str) -> str:
    """The keyring user name for a key file: its absolute path."""
    return os.path.abspath(path)


def lookup(path: str) -> str | None:
    """The stored passphrase for the key file at ``path``, or None."""
    backend = _backend()
    try:
        value = backend.get_password(SERVICE, entry_name(path))
    except Exception as exc:  # keyring.errors.KeyringError, D-Bus failures...
        raise StoreUnavailable(f"reading the OS keyring failed: {exc}") from None
    return value if isinstance(value, str) else None


def store(path: str, passphrase: str) -> None:
    """Remember ``passphrase`` for the key file at ``path``."""
    backend = _backend()
    try:
        backend.set_password(SERVICE, entry_name(path), passphrase)
    except Exception as exc:
        raise StoreUnavailable(f"writing to the OS keyring failed: {exc}") from None


def forget(path: str) -> bool:
    """Drop a stored passphrase (one that no longer works); True if one was removed."""
    backend = _backend()
    try:
        backend.delete_password(SERVICE, entry_name(path))
    except Exception:
        return False
    return True
