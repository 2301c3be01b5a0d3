"""pykeygen's key life cycle: generate, re-protect, re-comment, show, fingerprint, convert.

Each ``do_*`` mirrors one ssh-keygen operation: the same prompts, messages, stdout and
exit codes. The work itself is done by keytools; this module only talks to the user.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING

from keytools.cli.output import PROGNAME, Exit, Fatal, error, out
from keytools.cli.prompt import confirm_overwrite, read_line, read_passphrase
from keytools.cli.pykeygen import KeygenOptions
from keytools.errors import BadPermissions, FileError, KeyTypeUnknown, SshError, WrongPassphrase
from keytools.public import PublicKey
from keytools.sshdir import default_identity, ensure_user_ssh_dir, user_at_host

if TYPE_CHECKING:
    from collections.abc import Iterator

    from keytools.private import PrivateKey

OPENSSH_ARMOUR = "-----BEGIN OPENSSH PRIVATE KEY-----"


# -- shared steps -------------------------------------------------------------------------


def _identity(opts: KeygenOptions, prompt: str) -> str:
    """The -f file, or ask for it as ssh-keygen's ask_filename() does."""
    if opts.identity_file is not None:
        return opts.identity_file
    default = default_identity(opts.key_type)
    answer = read_line(f"{prompt} ({default}): ")
    if answer is None:
        raise Exit(1)
    opts.identity_file = answer or default
    return opts.identity_file


def _stat_or_fatal(path: str, with_progname: bool = False) -> None:
    try:
        os.stat(path)
    except OSError as exc:
        prefix = f"{PROGNAME}: " if with_progname else ""
        raise Fatal(f"{prefix}{path}: {exc.strerror}") from None


def _report_permissions(exc: BadPermissions) -> None:
    warning = getattr(exc, "warning", "")
    if warning:
        sys.stdout.flush()
        sys.stderr.write(warning if warning.endswith("\n") else warning + "\n")


def _comment_of(path: str, comment: str) -> str | None:
    """OpenSSH has a comment only for keys in its own format (PEM keys have none)."""
    from keytools.keyfile import read_file

    try:
        head = read_file(path)[:64]
    except SshError:
        return None
    return comment if head.lstrip().startswith(OPENSSH_ARMOUR.encode()) else None


def _load_private(
    path: str, passphrase: str | None, ask: str, what: str
) -> tuple[PrivateKey, str | None, str]:
    """Load a private key, asking for its passphrase only if it has one.

    ``what`` is the message prefix for failures (e.g. 'Load key "f"').
    Returns (key, comment or None, passphrase used).
    """
    from keytools.keyfile import load_private

    try:
        key, comment = load_private(path, "")
        return key, _comment_of(path, comment), ""
    except BadPermissions as exc:
        _report_permissions(exc)
        raise Fatal(f"{what}: {exc}") from None
    except WrongPassphrase:
        pass
    except SshError as exc:
        raise Fatal(f"{what}: {exc}") from None
    secret = passphrase if passphrase is not None else read_passphrase(ask)
    try:
        key, comment = load_private(path, secret)
    except SshError as exc:
        raise Fatal(f"{what}: {exc}") from None
    return key, _comment_of(path, comment), secret


def _new_passphrase(opts: KeygenOptions) -> str:
    """-P, else -N, else ask twice until both answers agree (ssh-keygen's behaviour)."""
    if opts.passphrase is not None:
        return opts.passphrase
    if opts.new_passphrase is not None:
        return opts.new_passphrase
    while True:
        first = read_passphrase("Enter passphrase (empty for no passphrase): ")
        second = read_passphrase("Enter same passphrase again: ")
        if first == second:
            return first
        out("Passphrases do not match.  Try again.\n")


def _save_private(
    opts: KeygenOptions, path: str, key: PrivateKey, comment: str, passphrase: str
) -> None:
    from keytools.keyfile import save_private

    try:
        save_private(path, key, comment, passphrase, opts.key_format, opts.cipher, opts.rounds)
    except SshError as exc:
        error(f'Saving key "{path}" failed: {exc}')
        raise Exit(1) from None


# -- operations ---------------------------------------------------------------------------


def do_generate(opts: KeygenOptions) -> int:
    from keytools.fingerprint import fingerprint
    from keytools.keyfile import save_public
    from keytools.private import generate
    from keytools.randomart import randomart

    kind, bits = _resolve_type(opts.key_type, opts.bits)
    name = opts.key_type or "ed25519"
    if not opts.quiet:
        out(f"Generating public/private {name} key pair.\n")
        sys.stdout.flush()
    if kind in ("ecdsa-sk", "ed25519-sk"):
        raise Fatal("Key enrollment failed: requested feature not supported")
    try:
        private = generate(kind, bits)
    except SshError as exc:
        raise Fatal(str(exc)) from None
    path = _identity(opts, "Enter file in which to save the key")
    created = ensure_user_ssh_dir(path)
    if created and not opts.quiet:
        error(f"Created directory '{created}'.")
    if not confirm_overwrite(path):
        raise Exit(1)
    passphrase = _new_passphrase(opts)
    comment = opts.comment if opts.comment is not None else user_at_host()
    _save_private(opts, path, private, comment, passphrase)
    if not opts.quiet:
        out(f"Your identification has been saved in {path}\n")
    public = private.public
    try:
        save_public(path + ".pub", public, comment)
    except SshError as exc:
        raise Fatal(f"Unable to save public key to {path}.pub: {exc}") from None
    if not opts.quiet:
        out(f"Your public key has been saved in {path}.pub\n")
        out("The key fingerprint is:\n")
        out(f"{fingerprint(public, opts.fingerprint_hash)} {comment}\n")
        out("The key's randomart image is:\n")
        out(randomart(public, opts.fingerprint_hash) + "\n")
    return 0


_TYPE_NAMES = {
    "ed25519": "ed25519",
    "ssh-ed25519": "ed25519",
    "rsa": "rsa",
    "ssh-rsa": "rsa",
    "rsa-sha2-256": "rsa",
    "rsa-sha2-512": "rsa",
    "ecdsa": "ecdsa",
    "ecdsa-sha2-nistp256": "ecdsa",
    "ecdsa-sha2-nistp384": "ecdsa",
    "ecdsa-sha2-nistp521": "ecdsa",
    "ecdsa-sk": "ecdsa-sk",
    "sk-ecdsa-sha2-nistp256@openssh.com": "ecdsa-sk",
    "ed25519-sk": "ed25519-sk",
    "sk-ssh-ed25519@openssh.com": "ed25519-sk",
}


def _resolve_type(name: str | None, bits: int) -> tuple[str, int | None]:
    """The key kind and size for -t/-b, with ssh-keygen's defaults and checks."""
    kind = _TYPE_NAMES.get(name or "ed25519")
    if kind is None:
        raise Fatal(f"unknown key type {name}")
    if kind == "ecdsa" and not bits and name and name.startswith("ecdsa-sha2-nistp"):
        bits = int(name.removeprefix("ecdsa-sha2-nistp"))
    if kind == "rsa":
        bits = bits or 3072
        if bits < 1024:
            raise Fatal("Invalid RSA key length: minimum is 1024 bits")
        if bits > 16384:
            raise Fatal("Invalid RSA key length: maximum is 16384 bits")
    elif kind == "ecdsa":
        bits = bits or 256
        if bits not in (256, 384, 521):
            raise Fatal("Invalid ECDSA key length: valid lengths are 256, 384 or 521 bits")
    return kind, bits or None


def do_change_passphrase(opts: KeygenOptions) -> int:
    path = _identity(opts, "Enter file in which the key is")
    _stat_or_fatal(path)
    key, comment, _ = _load_private(
        path, opts.passphrase, "Enter old passphrase: ", f"Failed to load key {path}"
    )
    if comment is not None:
        out(f"Key has comment '{comment}'\n")
    if opts.new_passphrase is not None:
        new = opts.new_passphrase
    else:
        new = read_passphrase("Enter new passphrase (empty for no passphrase): ")
        again = read_passphrase("Enter same passphrase again: ")
        if new != again:
            out("Passphrases do not match.  Try again.\n")
            raise Exit(1)
    _save_private(opts, path, key, comment or "", new)
    out("Your identification has been saved with the new passphrase.\n")
    return 0


def do_change_comment(opts: KeygenOptions) -> int:
    from keytools.keyfile import save_public

    path = _identity(opts, "Enter file in which the key is")
    _stat_or_fatal(path)
    secret = opts.passphrase if opts.passphrase is not None else opts.new_passphrase
    key, comment, passphrase = _load_private(
        path, secret, "Enter passphrase: ", f'Cannot load private key "{path}"'
    )
    if key.key_type != "ssh-ed25519" and opts.key_format != "openssh":
        error("Comments are only supported for keys stored in the new format (-o).")
        raise Exit(1)
    out(f"Old comment: {comment}\n" if comment is not None else "No existing comment\n")
    if opts.comment is not None:
        new_comment = opts.comment
    else:
        answer = read_line("New comment: ")
        if answer is None:
            raise Exit(1)
        new_comment = answer
    if comment is not None and comment == new_comment:
        out("No change to comment\n")
        return 0
    _save_private(opts, path, key, new_comment, passphrase)
    try:
        save_public(path + ".pub", key.public, new_comment)
    except SshError as exc:
        raise Fatal(f"Unable to save public key to {path}.pub: {exc}") from None
    out(f"Comment '{new_comment}' applied\n" if new_comment else "Comment removed\n")
    return 0


def do_print_public(opts: KeygenOptions) -> int:
    path = _identity(opts, "Enter file in which the key is")
    _stat_or_fatal(path)
    key, comment, _ = _load_private(path, opts.passphrase, "Enter passphrase: ",
                                    f'Load key "{path}"')
    out(key.public.openssh(comment or "") + "\n")
    return 0


def _fingerprint_text(opts: KeygenOptions, key: PublicKey, comment: str | None) -> str:
    """One ``-l``/``-B`` result: the size, fingerprint, comment and type, then randomart."""
    from keytools.fingerprint import fingerprint
    from keytools.randomart import randomart

    if "-B" in opts.action:
        from keytools.bubblebabble import bubblebabble

        fp = bubblebabble(key)
    else:
        fp = fingerprint(key, opts.fingerprint_hash)
    label = key.type_label
    shown = comment if comment is not None else "no comment"
    text = f"{key.bits} {fp} {shown} ({label})\n"
    if opts.verbose:
        text += randomart(key, opts.fingerprint_hash) + "\n"
    return text


def _fingerprint_private(opts: KeygenOptions, path: str) -> None:
    from keytools.keyfile import load_private, load_public

    _stat_or_fatal(path)
    key: PublicKey | None = None
    comment: str | None = None
    with contextlib.suppress(SshError):
        key, comment = load_public(path)
    if key is None or not comment:
        comment = None
        try:
            private, found = load_private(path, None)
            comment = _comment_of(path, found)
            key = key or private.public
        except BadPermissions as exc:
            _report_permissions(exc)
        except SshError:
            pass
    if key is None:
        raise Fatal(f"{path} is not a key file.")
    out(_fingerprint_text(opts, key, comment))


def do_fingerprint(opts: KeygenOptions) -> int:
    from keytools.keylist import scan_key_lines

    path = _identity(opts, "Enter file in which the key is")
    if path == "-":
        stream = sys.stdin
        shown = "(stdin)"
    else:
        shown = path
        try:
            stream = open(path, encoding="utf-8", errors="surrogateescape")  # noqa: SIM115
        except OSError as exc:
            raise Fatal(f"{PROGNAME}: {path}: {exc.strerror}") from None
    with stream:
        try:
            first = stream.readline()
        except OSError as exc:
            raise Fatal(f"{PROGNAME}: {path}: {exc.strerror}") from None
        stripped = first.lstrip(" \t")
        if path != "-" and "PRIVATE KEY" in stripped and not stripped.startswith("#"):
            _fingerprint_private(opts, path)
            return 0
        found = False

        def lines() -> Iterator[str]:
            yield first
            yield from stream

        batch: list[str] = []  # one write per thousand keys, not one per key
        for listed in scan_key_lines(lines()):
            batch.append(_fingerprint_text(opts, listed.key, listed.comment))
            found = True
            if len(batch) >= 1000:
                out("".join(batch))
                batch.clear()
        out("".join(batch))
    if not found:
        raise Fatal(f"{shown} is not a public key file.")
    return 0


def _public_or_private(opts: KeygenOptions, path: str) -> PublicKey:
    """-e's input: a public key if the file (or file.pub) has one, else the private key."""
    from keytools.keyfile import load_public

    try:
        return load_public(path)[0]
    except SshError:
        pass
    key, _, _ = _load_private(path, opts.passphrase, "Enter passphrase: ", f'Load key "{path}"')
    return key.public


def _load_ppk(path: str, data: bytes, passphrase: str | None) -> tuple[PrivateKey, str]:
    """A PuTTY key file, asking for its passphrase only if it is encrypted."""
    from keytools.ppk import decode_ppk, ppk_encrypted

    try:
        secret = ""
        if ppk_encrypted(data):
            secret = passphrase if passphrase is not None else read_passphrase(
                "Enter passphrase: ")
        return decode_ppk(data, secret)
    except SshError as exc:
        raise Fatal(f'Load key "{path}": {exc}') from None


def _convert_to_ppk(opts: KeygenOptions, path: str) -> int:
    """-e -m PPK|PPK2: the private key as a PuTTY .ppk (v3 or v2), encrypted with -N.

    The source may be any private key pykeygen reads, or a .ppk itself (to change its
    version or passphrase). A key whose file has no comment gets puttygen's
    "imported-openssh-key"; -C overrides the comment.
    """
    from keytools.keyfile import read_file
    from keytools.ppk import encode_ppk, is_ppk

    data = b""
    with contextlib.suppress(SshError):
        data = read_file(path)
    found: str | None
    if is_ppk(data):
        key, found = _load_ppk(path, data, opts.passphrase)
    else:
        key, found, _ = _load_private(path, opts.passphrase, "Enter passphrase: ",
                                      f'Load key "{path}"')
    comment = opts.comment if opts.comment is not None else found
    version = 2 if opts.convert_format == "PPK2" else 3
    try:
        text = encode_ppk(key, "imported-openssh-key" if comment is None else comment,
                          opts.new_passphrase or "", version)
    except KeyTypeUnknown:
        raise Fatal(f"do_convert_to_ppk: unsupported key type {key.public.type_label}") from None
    except SshError as exc:
        raise Fatal(f"do_convert_to_ppk: {exc}") from None
    out(text)
    return 0


def do_convert_to(opts: KeygenOptions) -> int:
    from keytools import convert

    path = _identity(opts, "Enter file in which the key is")
    _stat_or_fatal(path, with_progname=True)
    if opts.convert_format in ("PPK2", "PPK3"):
        return _convert_to_ppk(opts, path)
    key = _public_or_private(opts, path)
    try:
        if opts.convert_format == "RFC4716":
            user, host = user_at_host().split("@", 1)
            text = convert.export_rfc4716(key, convert.default_rfc4716_comment(key, user, host))
        elif opts.convert_format == "PKCS8":
            text = convert.export_pkcs8_public(key)
        else:
            text = convert.export_pem_public(key)
    except SshError as exc:
        raise Fatal(str(exc)) from None
    out(text)
    return 0


def do_convert_from(opts: KeygenOptions) -> int:
    from keytools import convert
    from keytools.keyfile import read_file

    path = _identity(opts, "Enter file in which the key is")
    _stat_or_fatal(path, with_progname=True)
    try:
        data = read_file(path)
    except FileError as exc:
        raise Fatal(f"{PROGNAME}: {path}: {exc}") from None
    if opts.convert_format in ("PPK2", "PPK3"):
        from keytools.private.openssh import encode_openssh_private

        private, comment = _load_ppk(path, data, opts.passphrase)
        out(encode_openssh_private(private, comment).decode("ascii"))
        return 0
    try:
        if opts.convert_format == "RFC4716":
            text = data.decode("utf-8", "surrogateescape")
            if convert.is_ssh2_private(text):
                from keytools.private.pem import encode_pem_private
                from keytools.private.ssh2 import decode_ssh2_private

                private = decode_ssh2_private(text)
                out(encode_pem_private(private, b"", "PEM").decode("ascii"))
                return 0
            key = convert.import_rfc4716(data)
        elif opts.convert_format == "PKCS8":
            key = convert.import_pkcs8_public(data, path)
        else:
            key = convert.import_pem_public(data)
    except SshError as exc:
        raise Fatal(str(exc)) from None
    out(key.openssh() + "\n")
    return 0
