"""Reading and decrypting the key files pyadd adds, as ssh-add's add_file does.

The file is opened and its permissions checked once; then it is tried with an empty
passphrase, then with the last passphrase that worked, then (with ``--keyring``) with
the one stored in the OS keyring, and only then is the user asked, again after each
wrong answer, until an empty one.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from agent.pyadd_options import Options, err, log
from agent.pyadd_prompt import read_passphrase
from keytools.errors import InvalidFormat, SshError, WrongPassphrase

if TYPE_CHECKING:
    from keytools.private import PrivateKey


class KeyFileLoader:
    """Loads key files for one pyadd run, remembering the last passphrase that worked."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.passphrase: str | None = None
        self._keyring_warned = False

    def debug(self, level: int, message: str) -> None:
        if self.opts.verbose >= level:
            log(f"debug{level}: {message}")

    def load(self, path: str) -> tuple[str, PrivateKey, str, str | None] | None:
        """(name to report, key, comment, passphrase to store in the keyring) or None
        after printing why not."""
        loaded = self._read_key_file(path)
        if loaded is None:
            return None
        filename, data = loaded
        decrypted = self._decrypt(filename, data)
        if decrypted is None:
            return None
        key, comment, typed = decrypted
        return filename, key, comment or filename, typed

    def _read_key_file(self, filename: str) -> tuple[str, bytes] | None:
        from keytools.keyfile import MAX_KEY_FILE, UNPROTECTED_WARNING

        if filename == "-":
            data = sys.stdin.buffer.read(MAX_KEY_FILE + 1)
            if len(data) > MAX_KEY_FILE:
                err('Error loading key "(stdin)": invalid format')
                return None
            return "(stdin)", data
        try:
            fd = os.open(filename, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            err(f"{filename}: {exc.strerror}")
            return None
        try:
            st = os.fstat(fd)
            if st.st_uid == os.getuid() and st.st_mode & 0o077:
                log(UNPROTECTED_WARNING.format(mode=st.st_mode & 0o777, path=filename))
                return None
            chunks: list[bytes] = []
            total = 0
            while chunk := os.read(fd, 65536):
                total += len(chunk)
                if total > MAX_KEY_FILE:
                    err(f'Error loading key "{filename}": invalid format')
                    return None
                chunks.append(chunk)
            return filename, b"".join(chunks)
        except OSError as exc:
            err(f'Error loading key "{filename}": {exc.strerror}')
            return None
        finally:
            os.close(fd)

    def _keyring_lookup(self, filename: str) -> str | None:
        from agent import passphrase_store

        try:
            return passphrase_store.lookup(filename)
        except passphrase_store.StoreUnavailable as exc:
            self._keyring_unavailable(str(exc))
            return None

    def _keyring_unavailable(self, reason: str) -> None:
        if not self._keyring_warned:
            err(f"pyadd: cannot use the OS keyring: {reason}")
            self._keyring_warned = True

    def _decrypt(self, filename: str, data: bytes) -> tuple[PrivateKey, str, str | None] | None:
        """The key, its comment, and the passphrase to remember in the OS keyring."""
        from keytools.keyfile import decode_private_file

        keyring = self.opts.use_keyring and filename != "(stdin)"
        attempts: list[str] = [""]
        if self.passphrase is not None:
            attempts.append(self.passphrase)
        for secret in attempts:
            try:
                key, comment = decode_private_file(data, secret)
                return key, comment, None
            except WrongPassphrase:
                continue
            except SshError as exc:
                err(f'Error loading key "{filename}": {_load_error(data, exc)}')
                self.passphrase = None
                return None
        if keyring:
            stored = self._keyring_lookup(filename)
            if stored is not None:
                try:
                    key, comment = decode_private_file(data, stored)
                    self.passphrase = stored
                    return key, comment, None
                except SshError:
                    self.debug(1, f"stored passphrase for {filename} no longer works")
        self.passphrase = None
        note = " (will confirm each use)" if self.opts.confirm else ""
        prompt = f"Enter passphrase for {filename}{note}: "
        while True:
            secret = read_passphrase(prompt)
            if secret == "":
                return None
            try:
                key, comment = decode_private_file(data, secret)
                self.passphrase = secret
                return key, comment, secret if keyring else None
            except WrongPassphrase:
                prompt = f"Bad passphrase, try again for {filename}{note}: "
            except SshError as exc:
                err(f'Error loading key "{filename}": {_load_error(data, exc)}')
                return None

    def remember(self, filename: str, secret: str) -> None:
        from agent import passphrase_store

        try:
            passphrase_store.store(filename, secret)
        except passphrase_store.StoreUnavailable as exc:
            self._keyring_unavailable(str(exc))
            return
        if not self.opts.quiet:
            err(f"Passphrase for {filename} stored in the OS keyring")


def _load_error(data: bytes, exc: SshError) -> str:
    """ssh_err() of a failed parse. What is not openssh-key-v1 goes to OpenSSL's PEM
    reader, and OpenSSH reports its format errors as "error in libcrypto"."""
    from keytools.private.openssh import is_openssh_private

    if isinstance(exc, InvalidFormat) and not is_openssh_private(data):
        return "error in libcrypto"
    return str(exc)
