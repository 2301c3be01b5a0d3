"""Password checks for pysshd: PAM (UsePAM yes) or the shadow file through libcrypt.

``check_password`` is what sshd's auth_password() asks of the system. Without PAM the
hash comes from /etc/shadow (getspnam; root only) or the passwd entry, and the
password is hashed with the system's crypt() (libxcrypt: yescrypt on Debian, also
sha512-crypt and the rest) through ctypes: Python 3.13 has no crypt module. An unknown
user, a locked account or one without a readable hash is checked against a dummy hash
of the same kind, so every refusal costs the same work and gets the same answer; the
two hashes are compared with hmac.compare_digest. With PAM the ``sshd`` service decides
(pam_authenticate then pam_acct_mgmt, as sshd), through the python-pam package.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hmac
import logging
import os
import pwd
import threading

log = logging.getLogger("pyssh.sshd")

#: sshd's MAX_PASSWORD_LEN
MAX_PASSWORD_LEN = 1024
PAM_SERVICE = "sshd"

_lock = threading.Lock()
_libcrypt: ctypes.CDLL | None = None
_dummy_hash: bytes | None = None


class _CryptData(ctypes.Structure):
    """libxcrypt's struct crypt_data (32 KiB of opaque state), for crypt_r()."""

    _fields_ = [("opaque", ctypes.c_char * 32768)]


def _crypt_lib() -> ctypes.CDLL:
    global _libcrypt
    with _lock:
        if _libcrypt is None:
            name = ctypes.util.find_library("crypt") or "libcrypt.so.1"
            lib = ctypes.CDLL(name, use_errno=True)
            lib.crypt_r.restype = ctypes.c_char_p
            lib.crypt_r.argtypes = [ctypes.c_char_p, ctypes.c_char_p,
                                    ctypes.POINTER(_CryptData)]
            _libcrypt = lib
        return _libcrypt


def crypt(password: bytes, setting: bytes) -> bytes | None:
    """crypt_r(3): the hash of ``password`` with the method and salt of ``setting``;
    None when libcrypt refuses the setting (libxcrypt returns a "*" string then)."""
    lib = _crypt_lib()
    data = _CryptData()
    out = lib.crypt_r(password, setting, ctypes.byref(data))
    if not out or out.startswith(b"*"):
        return None
    return bytes(out)


def _gensalt(prefix: bytes) -> bytes | None:
    lib = _crypt_lib()
    try:
        fn = lib.crypt_gensalt
    except AttributeError:
        return None
    fn.restype = ctypes.c_char_p
    fn.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    out = fn(prefix, 0, None, 0)
    return bytes(out) if out else None


def _dummy() -> bytes:
    """A hash of a random password in the system's preferred method (the root
    account's, else yescrypt, else SHA-512): what unknown users are checked against."""
    global _dummy_hash
    if _dummy_hash is None:
        prefix = b"$y$"
        stored = _stored_hash("root")
        if stored and stored.startswith(b"$") and stored.count(b"$") >= 3:
            prefix = stored[: stored.index(b"$", 1) + 1]
        setting = _gensalt(prefix) or _gensalt(b"$6$") or b"$6$pysshddummysalt$"
        _dummy_hash = crypt(os.urandom(16).hex().encode(), setting) or b"$6$x$"
    return _dummy_hash


def _stored_hash(user: str) -> bytes | None:
    """The user's hash from shadow (when readable) or passwd; None if unknown."""
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return None
    return _shadow_entry(user) or pw.pw_passwd.encode()


def _shadow_entry(user: str) -> bytes | None:
    """Read /etc/shadow directly (root only); None if unreadable or absent."""
    try:
        with open("/etc/shadow", "rb") as f:
            for line in f:
                fields = line.rstrip(b"\n").split(b":")
                if len(fields) > 1 and fields[0] == user.encode("utf-8", "surrogateescape"):
                    return fields[1]
    except OSError:
        return None
    return None


def _usable(stored: bytes | None) -> bool:
    """A hash a password can match: not locked (``!``/``*``), not a placeholder
    (``x`` when shadow is unreadable)."""
    return bool(stored) and stored is not None and stored[:1] not in (b"!", b"*") \
        and stored != b"x"


def shadow_password_ok(user: str, password: str) -> bool:
    """sys_auth_passwd(): the password hashes to the stored hash."""
    secret = password.encode("utf-8", "surrogateescape")
    stored = _stored_hash(user)
    if stored == b"" and not secret:
        return True  # an empty hash takes the empty password (PermitEmptyPasswords decides)
    target = stored if _usable(stored) else _dummy()
    assert target is not None
    got = crypt(secret, target)
    match = got is not None and hmac.compare_digest(got, target)
    return match and _usable(stored)


def pam_password_ok(user: str, password: str, service: str = PAM_SERVICE) -> bool:
    """pam_authenticate + pam_acct_mgmt for ``service`` (python-pam answers the
    password prompt)."""
    try:
        import pam  # type: ignore[import-untyped]
    except ImportError:
        log.error("UsePAM yes but the python-pam package is not installed")
        return False
    try:
        handle = pam.PamAuthenticator()
        ok = bool(handle.authenticate(user, password, service=service, resetcreds=False))
    except (ValueError, OSError) as exc:
        log.debug("pam_authenticate: %s", exc)
        return False
    if not ok:
        log.debug("PAM: %s for %s", handle.reason, user)
    return ok


def check_password(user: str, password: str, *, use_pam: bool = False) -> bool:
    """Does ``password`` log ``user`` in? Same work and answer for an unknown user, a
    locked account and a wrong password."""
    if len(password) > MAX_PASSWORD_LEN or "\0" in password:
        return False
    if use_pam:
        return pam_password_ok(user, password)
    return shadow_password_ok(user, password)
