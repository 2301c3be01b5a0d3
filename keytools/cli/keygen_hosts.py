"""pykeygen's host operations: known_hosts (-F/-R/-H), SSHFP records (-r) and -A.

Each function follows ssh-keygen.c's do_known_hosts(), do_print_resource_record() and
do_gen_all_hostkeys(): the same stdout, the same stderr wording, the same exit codes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from keytools.cli.output import PROGNAME, Exit, Fatal, error, out
from keytools.errors import FileError, SshError
from keytools.known_hosts import HostLine, LineStatus, Marker
from keytools.sshdir import user_at_host, user_ssh_dir

if TYPE_CHECKING:
    # annotations only: under ``python -m keytools.cli.pykeygen`` that module runs as
    # __main__, and importing it here would run it a second time
    from keytools.cli.pykeygen import KeygenOptions

#: ssh-keygen -A and -r look here (OpenSSH 10: no DSA)
HOST_KEY_FILES = (
    ("rsa", "RSA", "/etc/ssh/ssh_host_rsa_key"),
    ("ecdsa", "ECDSA", "/etc/ssh/ssh_host_ecdsa_key"),
    ("ed25519", "ED25519", "/etc/ssh/ssh_host_ed25519_key"),
)


# -- known_hosts: -F, -R, -H --------------------------------------------------------------


class _KnownHostsRun:
    """The state of one known_hosts pass (ssh-keygen's struct known_hosts_ctx)."""

    def __init__(self, opts: KeygenOptions, path: str, emit: Callable[[str], None]) -> None:
        self.opts = opts
        self.path = path
        self.host = opts.hostname or ""
        self.emit = emit
        self.find = "-F" in opts.action
        self.delete = "-R" in opts.action
        self.hash = "-H" in opts.action
        self.found = False
        self.invalid = False
        self.has_unhashed = False

    def logit(self, message: str) -> None:
        error(message)

    def hash_line(self, line: HostLine) -> None:
        from keytools.hostmatch import has_wildcard
        from keytools.known_hosts_edit import hashed_forms

        if line.status is LineStatus.ENTRY:
            forms = hashed_forms(line)
            if forms is None:
                self.emit(line.text)
                if has_wildcard(line.hosts) and not self.find:
                    self.logit(f"{self.path}:{line.number}: ignoring host name "
                               f"with wildcard: {line.hosts[:64]}")
                return
            for form in forms:
                self.emit(form)
                self.has_unhashed = True
            return
        if line.status is LineStatus.INVALID:
            self.invalid = True
            self.logit(f"{self.path}:{line.number}: invalid line")
        self.emit(line.text)

    def find_delete(self, line: HostLine) -> None:
        if line.status is LineStatus.ENTRY and line.matched:
            if self.delete:
                if line.marker is not Marker.NONE:
                    self.emit(line.text)  # CA and revocation lines stay
                else:
                    self.found = True
                    if not self.opts.quiet:
                        out(f"# Host {self.host} found: line {line.number}\n")
                return
            if self.find:
                self.found = True
                if not self.opts.quiet:
                    out(f"# Host {self.host} found: line {line.number} {line.marker.label}\n")
                if self.hash:
                    self.hash_line(line)
                elif "-l" in self.opts.action:
                    self.print_fingerprint(line)
                else:
                    self.emit(line.text)
            return
        if self.delete:
            if line.status is LineStatus.INVALID:
                self.invalid = True
                self.logit(f"{self.path}:{line.number}: invalid line")
            self.emit(line.text)

    def print_fingerprint(self, line: HostLine) -> None:
        from keytools.fingerprint import fingerprint
        from keytools.public import type_label
        from keytools.randomart import randomart

        key = line.key
        if key is None:
            return
        if "-B" in self.opts.action:
            from keytools.bubblebabble import bubblebabble

            fp = bubblebabble(key)
        else:
            fp = fingerprint(key, self.opts.fingerprint_hash)
        comment = f" {line.comment}" if line.comment else ""
        out(f"{self.host} {type_label(key)} {fp}{comment}\n")
        if self.opts.verbose:
            out(randomart(key, self.opts.fingerprint_hash) + "\n")


def _default_known_hosts() -> str:
    return os.path.join(user_ssh_dir(), "known_hosts")


def _rewrite_in_place(run: _KnownHostsRun, path: str) -> bytes:
    """-R or -H alone over the whole file (fast paths): the new file's bytes; the
    messages in line order."""
    from keytools.known_hosts_fast import delete_host_file, hash_file

    if run.hash:
        # ssh-keygen -R host -H hashes and never deletes (its callback choice)
        result = hash_file(path)
        run.has_unhashed = result.hashed_names
    else:
        result = delete_host_file(path, run.host)
        run.found = bool(result.found)
        if not run.opts.quiet:
            for line in result.found:
                out(f"# Host {run.host} found: line {line.number}\n")
    notes = [(line.number, f"{path}:{line.number}: invalid line") for line in result.invalid]
    notes += [(line.number, f"{path}:{line.number}: ignoring host name with wildcard: "
               f"{line.hosts[:64]}") for line in result.wildcard]
    for _, message in sorted(notes, key=lambda note: note[0]):
        error(message)
    run.invalid = bool(result.invalid)
    return result.output()


def do_known_hosts(opts: KeygenOptions) -> int:
    from keytools.known_hosts_fast import scan_file

    path = opts.identity_file if opts.identity_file is not None else _default_known_hosts()
    opts.identity_file = path
    try:
        st = os.stat(path)
    except OSError as exc:
        raise Fatal(f"Cannot stat {path}: {exc.strerror}") from None
    act = opts.action
    find, delete, hash_hosts = "-F" in act, "-R" in act, "-H" in act
    inplace = not find and (hash_hosts or delete)
    fd, tmp = -1, ""
    if inplace:
        from keytools.known_hosts_edit import make_temp

        try:
            fd, tmp = make_temp(path)
            os.fchmod(fd, st.st_mode & 0o644)
        except (SshError, OSError) as exc:
            if fd >= 0:
                os.close(fd)
                os.unlink(tmp)
            raise Fatal(str(exc) if isinstance(exc, SshError) else f"fdopen: {exc.strerror}")\
                from None

    def emit(text: str) -> None:
        out(text + "\n")

    run = _KnownHostsRun(opts, path, emit)
    kept = b""
    try:
        if find:
            for line in scan_file(path, opts.hostname, want_match=True,
                                  parse_key="-l" in act):
                run.find_delete(line)
        else:
            kept = _rewrite_in_place(run, path)
    except SshError as exc:
        if inplace:
            os.close(fd)
            os.unlink(tmp)
        raise Fatal(f"do_known_hosts: hostkeys_foreach failed: {exc}") from None
    if inplace:
        from keytools.known_hosts_edit import install_with_backup, write_fd

        try:
            write_fd(fd, kept, joined=True)
        except SshError as exc:
            os.unlink(tmp)
            raise Fatal(str(exc)) from None
    if run.invalid:
        error(f"{path} is not a valid known_hosts file.")
        if inplace:
            error("Not replacing existing known_hosts file because of errors")
            os.unlink(tmp)
        raise Exit(1)
    if delete and not run.found:
        error(f"Host {opts.hostname} not found in {path}")
        if inplace:
            os.unlink(tmp)
    elif inplace:
        try:
            old = install_with_backup(tmp, path)
        except FileError as exc:
            if str(exc).startswith("rename"):
                error(str(exc))
                raise Exit(1) from None
            raise Fatal(str(exc)) from None
        out(f"{path} updated.\n")
        out(f"Original contents retained as {old}\n")
        if run.has_unhashed:
            error(f"WARNING: {old} contains unhashed entries")
            error("Delete this file to ensure privacy of hostnames")
    return 1 if find and not run.found else 0


# -- SSHFP: -r ----------------------------------------------------------------------------


def _print_resource_record(path: str, host: str, generic: bool) -> int:
    """1 when ``path`` held a key (records printed or not), 0 when it does not exist."""
    from keytools.keyfile import load_public
    from keytools.sshfp import sshfp_records

    try:
        os.stat(path)
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise Fatal(f"{path}: {exc.strerror}") from None
    try:
        key, _ = load_public(path)
    except SshError as exc:
        raise Fatal(f'Failed to read v2 public key from "{path}": {exc}') from None
    records = sshfp_records(key)
    for record in records:
        out(record.text(host, generic) + "\n")
    if not records:
        error("export_dns_rr: unsupported algorithm and/or digest_type")
    return 1


def do_print_resource_record(opts: KeygenOptions) -> int:
    host = opts.hostname or ""
    if opts.identity_file is not None:
        if _print_resource_record(opts.identity_file, host, opts.print_generic) == 0:
            raise Fatal(f"{opts.identity_file}: {os.strerror(errno.ENOENT)}")
        return 0
    found = 0
    for _, _, path in HOST_KEY_FILES:
        found += _print_resource_record(path, host, opts.print_generic)
    if found == 0:
        raise Fatal("no keys found.")
    return 0


# -- -A: missing host keys ----------------------------------------------------------------


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.fsync(fd)


class _HostKeyFailed(Exception):
    """One key could not be made; the message is already printed."""


def _make_host_key(opts: KeygenOptions, kind: str, prefix: str, path: str,
                   temps: list[str]) -> None:
    from keytools.keyfile import encode_private_file
    from keytools.known_hosts_edit import reserve_temp
    from keytools.private import generate

    prv_file, pub_file = prefix + path, prefix + path + ".pub"
    try:
        fd, prv_tmp = reserve_temp(prv_file)
    except OSError as exc:
        error(f"Could not save your private key in {exc.filename}: {exc.strerror}")
        raise _HostKeyFailed() from None
    temps.append(prv_tmp)
    try:
        private = generate(kind, 3072 if kind == "rsa" else None)
    except SshError as exc:
        os.close(fd)
        error(f"sshkey_generate failed: {exc}")
        raise _HostKeyFailed() from None
    comment = user_at_host()
    try:
        data = encode_private_file(private, comment, "", opts.key_format, opts.cipher,
                                   opts.rounds)
        _write_all(fd, data)
    except (SshError, OSError) as exc:
        error(f'Saving key "{prv_tmp}" failed: {getattr(exc, "strerror", None) or exc}')
        raise _HostKeyFailed() from None
    finally:
        os.close(fd)
    try:
        fd, pub_tmp = reserve_temp(pub_file)
    except OSError as exc:
        error(f"Could not save your public key in {exc.filename}: {exc.strerror}")
        raise _HostKeyFailed() from None
    temps.append(pub_tmp)
    try:
        os.fchmod(fd, 0o644)
        _write_all(fd, f"{private.public.openssh()} {comment}\n".encode())
    except OSError as exc:
        error(f"Unable to save public key to {prefix}: {exc.strerror}")
        raise _HostKeyFailed() from None
    finally:
        os.close(fd)
    try:
        os.rename(pub_tmp, pub_file)
    except OSError as exc:
        error(f"Unable to move {pub_file} into position: {exc.strerror}")
        raise _HostKeyFailed() from None
    try:
        os.rename(prv_tmp, prv_file)
    except OSError as exc:
        error(f"Unable to move {path} into position: {exc.strerror}")
        raise _HostKeyFailed() from None


def do_gen_all_hostkeys(opts: KeygenOptions) -> int:
    """Make each missing (or empty) host key under ``-f prefix`` + /etc/ssh."""
    prefix = opts.identity_file or ""
    first = False
    for kind, display, path in HOST_KEY_FILES:
        try:
            if os.stat(prefix + path).st_size != 0:
                continue
        except FileNotFoundError:
            pass
        except OSError as exc:
            error(f"Could not stat {path}: {exc.strerror}")
            first = False
            continue
        if not first:
            first = True
            out(f"{PROGNAME}: generating new host keys: ")
        out(f"{display} ")
        sys.stdout.flush()
        temps: list[str] = []
        try:
            _make_host_key(opts, kind, prefix, path, temps)
        except _HostKeyFailed:
            first = False
            for name in temps:
                with contextlib.suppress(OSError):
                    os.unlink(name)
    if first:
        out("\n")
    return 0
