"""Key files on disk: reading, atomic writing, permission checks and format detection.

This is OpenSSH's authfile.c for pyssh: ``load_private`` refuses a key file others can
read (sshkey_perm_ok), ``load_public`` looks where sshkey_load_public looks, and every
write goes to a temporary file that is renamed over the target.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from typing import TYPE_CHECKING

from keytools.errors import BadPermissions, FileError, InvalidFormat, SshError
from keytools.wire import MAX_STRING

if TYPE_CHECKING:
    from keytools.private import PrivateKey
    from keytools.public import PublicKey

#: OpenSSH's sshbuf_load_fd refuses files larger than SSHBUF_SIZE_MAX (invalid format).
MAX_KEY_FILE = MAX_STRING
PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644

#: sshkey_perm_ok's warning; format with ``mode`` (st_mode & 0o777) and ``path``.
UNPROTECTED_WARNING = (
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
    "@         WARNING: UNPROTECTED PRIVATE KEY FILE!          @\n"
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
    "Permissions 0{mode:03o} for '{path}' are too open.\n"
    "It is required that your private key files are NOT accessible by others.\n"
    "This private key will be ignored."
)

_CHUNK = 64 * 1024


# -- reading and writing ------------------------------------------------------------------


def _read_fd(fd: int) -> bytes:
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode) and st.st_size > MAX_KEY_FILE:
        raise InvalidFormat()
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = os.read(fd, _CHUNK)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > MAX_KEY_FILE:
            raise InvalidFormat()
        chunks.append(chunk)


def read_file(path: str | os.PathLike[str]) -> bytes:
    """The whole file; FileError worded as strerror(), InvalidFormat past 128 MiB."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise FileError.from_os(exc) from None
    try:
        return _read_fd(fd)
    except OSError as exc:
        raise FileError.from_os(exc) from None
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data`` all at once, or leave it untouched.

    The data goes to a new file (O_EXCL, created with ``mode`` less the umask, as
    OpenSSH's open() would) in the same directory, is fsync'ed and renamed over the
    target; then the directory is fsync'ed. A symlinked target is written through.
    """
    target = os.fspath(path)
    if os.path.islink(target):
        target = os.path.realpath(target)
    directory = os.path.dirname(target) or "."
    tmp = os.path.join(directory, f".{os.path.basename(target)}.{os.urandom(4).hex()}.tmp")
    fd = -1
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, target)
    except OSError as exc:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise FileError.from_os(exc) from None
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass  # some filesystems cannot fsync a directory; the rename is done
    finally:
        os.close(dfd)


# -- permissions --------------------------------------------------------------------------


def _perm_check(st: os.stat_result, path: str) -> None:
    if st.st_uid == os.getuid() and st.st_mode & 0o077:
        warning = UNPROTECTED_WARNING.format(mode=st.st_mode & 0o777, path=path)
        raise BadPermissions(warning=warning)


def check_private_permissions(path: str | os.PathLike[str]) -> None:
    """sshkey_perm_ok: a file of ours that group or others may access is refused."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise FileError.from_os(exc) from None
    _perm_check(st, os.fspath(path))


def read_private_file(path: str | os.PathLike[str]) -> bytes:
    """Open, check permissions on the open file (as OpenSSH), then read it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise FileError.from_os(exc) from None
    try:
        _perm_check(os.fstat(fd), os.fspath(path))
        return _read_fd(fd)
    except OSError as exc:
        raise FileError.from_os(exc) from None
    finally:
        os.close(fd)


# -- private keys -------------------------------------------------------------------------


def _secret(passphrase: str | bytes | None) -> bytes | None:
    if passphrase is None or isinstance(passphrase, bytes):
        return passphrase
    return passphrase.encode("utf-8", "surrogateescape")


def decode_private_file(
    data: bytes, passphrase: str | bytes | None
) -> tuple[PrivateKey, str]:
    """The key and comment in a private key file's contents (any supported format)."""
    from keytools.private.openssh import decode_openssh_private, is_openssh_private
    from keytools.private.pem import decode_pem_private, is_pem_private

    secret = _secret(passphrase)
    if is_openssh_private(data):
        return decode_openssh_private(data, secret)
    if is_pem_private(data):
        return decode_pem_private(data, secret), ""
    raise InvalidFormat()


def load_private(path: str, passphrase: str | None) -> tuple[PrivateKey, str]:
    """The key and comment (PEM keys have none: "") from a private key file.

    ``passphrase`` None or "" on an encrypted key raises WrongPassphrase, so a caller can
    try without one and ask only when needed (OpenSSH's load_identity pattern).
    """
    return decode_private_file(read_private_file(path), passphrase)


def is_encrypted(path_or_data: str | os.PathLike[str] | bytes) -> bool:
    """Whether a private key file (contents or path) needs a passphrase."""
    from keytools.private.openssh import is_encrypted_openssh, is_openssh_private
    from keytools.private.pem import is_encrypted_pem, is_pem_private

    data = path_or_data if isinstance(path_or_data, bytes) else read_file(path_or_data)
    if is_openssh_private(data):
        return is_encrypted_openssh(data)
    return is_pem_private(data) and is_encrypted_pem(data)


def encode_private_file(
    key: PrivateKey,
    comment: str,
    passphrase: str | bytes,
    fmt: str = "openssh",
    cipher: str | None = None,
    rounds: int | None = None,
) -> bytes:
    """A private key file's contents: openssh-key-v1, or "PEM"/"PKCS8" for RSA/ECDSA/DSA.

    Other key types are written as openssh-key-v1 whatever ``fmt`` says, as ssh-keygen
    does (see keytools.private.pem).
    """
    from keytools.private import DsaPrivate, EcdsaPrivate, RsaPrivate
    from keytools.private.openssh import DEFAULT_ROUNDS, encode_openssh_private
    from keytools.private.pem import PEM_FORMATS, encode_pem_private

    secret = _secret(passphrase) or b""
    if fmt.upper() in PEM_FORMATS and isinstance(key, RsaPrivate | EcdsaPrivate | DsaPrivate):
        return encode_pem_private(key, secret, fmt.upper())
    return encode_openssh_private(key, comment, secret, cipher, rounds or DEFAULT_ROUNDS)


def save_private(
    path: str,
    key: PrivateKey,
    comment: str,
    passphrase: str,
    fmt: str = "openssh",
    cipher: str | None = None,
    rounds: int | None = None,
) -> None:
    """Write a private key file (mode 0600) atomically."""
    atomic_write(path, encode_private_file(key, comment, passphrase, fmt, cipher, rounds),
                 PRIVATE_MODE)


# -- public keys --------------------------------------------------------------------------


def save_public(path: str, key: PublicKey, comment: str) -> None:
    """Write ``type base64 comment`` and a newline (mode 0644), as sshkey_save_public.

    OpenSSH always writes the space before the comment, even an empty one.
    """
    atomic_write(path, f"{key.openssh()} {comment}\n".encode("utf-8", "surrogateescape"),
                 PUBLIC_MODE)


def _public_from_text(text: str, name: str) -> tuple[PublicKey, str]:
    """sshkey_try_load_public over a file's text: the first line that parses wins."""
    from keytools.public import read_key_token

    for line in text.split("\n"):
        if not line or line[0] in "#\0\r":
            continue
        if line.startswith("-----BEGIN") or line == "SSH PRIVATE KEY FILE":
            break  # a private key: not a public key file
        stripped = line.lstrip(" \t")
        if not stripped:
            continue
        try:
            key, rest = read_key_token(stripped)
        except SshError:
            continue
        comment = rest.lstrip(" \t").split("\r", 1)[0]
        return key, comment or name
    raise InvalidFormat()


def load_public_file(path: str) -> tuple[PublicKey, str]:
    """The first public key line in ``path`` itself and its comment.

    The comment is the rest of the line after the key, or the file name when there is
    none (as OpenSSH's sshkey_try_load_public).
    """
    text = read_file(path).decode("utf-8", "surrogateescape")
    return _public_from_text(text, path)


def load_public(path: str) -> tuple[PublicKey, str]:
    """sshkey_load_public: ``path`` as a public key file, then ``path.pub``, then the
    public key in an openssh-key-v1 private file's header (comment "")."""
    from keytools.private.openssh import is_openssh_private, openssh_public_from_private

    for candidate in (path, path + ".pub"):
        try:
            return load_public_file(candidate)
        except SshError:
            pass
    try:
        data = read_file(path)
        if is_openssh_private(data):
            return openssh_public_from_private(data), ""
    except SshError:
        pass
    raise FileError(os.strerror(errno.ENOENT), errno.ENOENT)
