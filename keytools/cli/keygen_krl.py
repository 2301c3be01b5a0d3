"""pykeygen -k (generate or update a KRL) and -Q (query one), as ssh-keygen does them.

Messages, stdout and exit codes are ssh-keygen's (do_gen_krl/do_check_krl). One quirk is
kept on purpose: ssh-keygen's fatal() leaves with _exit(), so when stdout is a pipe or a
file, lines it had printed before dying ("Revoking from ...", earlier -Q answers) are
lost; scripts see the same here. On a terminal they appear, and a large build shows a
transient rich progress bar.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from keytools.cli.output import Fatal
from keytools.errors import FileError, SshError

if TYPE_CHECKING:
    # annotations only: under ``python -m keytools.cli.pykeygen`` that module runs as
    # __main__, and importing it here would run it a second time
    from keytools.cli.pykeygen import KeygenOptions
    from keytools.krl import Krl
    from keytools.public import PublicKey

#: Builds from at least this much specification text (about 100,000 serial lines) get
#: a progress bar on a terminal.
PROGRESS_BYTES = 1_000_000


class _Stdout:
    """stdout as ssh-keygen's stdio buffer: written at the end, dropped by a fatal error
    unless stdout is a terminal (where it is line-buffered)."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.pending: list[str] = []

    def write(self, text: str) -> None:
        if self.tty:
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            self.pending.append(text)

    def flush(self) -> None:
        sys.stdout.write("".join(self.pending))
        self.pending.clear()


def _parse_version(raw: str | None) -> int:
    """-z as ssh-keygen parses it (a leading + is accepted and ignored here)."""
    if raw is None:
        return 0
    text = raw[1:] if raw.startswith("+") else raw
    if not text or not text[0].isdigit() or not (text.isascii() and text.isdigit()) or \
            int(text) > (1 << 64) - 1:
        raise Fatal(f'Invalid serial number "{text}"')
    return int(text)


def _load_krl(path: str) -> Krl:
    from keytools.keyfile import read_file
    from keytools.krl import parse_krl

    try:
        data = read_file(path)
    except FileError as exc:
        raise Fatal(f"Unable to load KRL {path}: {exc}") from None
    try:
        return parse_krl(data)
    except SshError as exc:
        raise Fatal(f"Invalid KRL file {path}: {exc}") from None


def _load_public(path: str) -> tuple[PublicKey, str]:
    """sshkey_load_public(); the file itself is tried first without importing the
    private-key modules (load_public's later fallbacks need them)."""
    from keytools.keyfile import load_public, load_public_file

    with contextlib.suppress(SshError):
        return load_public_file(path)
    return load_public(path)


def _load_ca(raw: str) -> PublicKey:
    path = os.path.expanduser(raw)
    try:
        return _load_public(path)[0]
    except SshError as exc:
        raise Fatal(f"Cannot load CA public key {path}: {exc}") from None


def _spec_bytes(args: list[str]) -> int:
    """The combined size of the spec files that can be seen before reading them."""
    total = 0
    for arg in args:
        with contextlib.suppress(OSError):
            total += os.stat(os.path.expanduser(arg)).st_size if arg != "-" else 0
    return total


def _read_spec(arg: str) -> tuple[bytes, str]:
    """A spec file's bytes and the name ssh-keygen gives it ("-" is standard input)."""
    if arg == "-":
        return sys.stdin.buffer.read(), "(standard input)"
    path = os.path.expanduser(arg)
    try:
        with open(path, "rb") as spec:
            return spec.read(), path
    except OSError as exc:
        raise Fatal(f"fopen {path}: {exc.strerror}") from None


@contextlib.contextmanager
def _progress_bar(enabled: bool) -> Iterator[Callable[[str, int], Callable[[int], None]] | None]:
    """A transient rich progress display for a person at a terminal, else None.
    The value makes a task: ``task(description, total)`` returns its advance callback."""
    if not enabled or not sys.stdout.isatty() or "NO_COLOR" in os.environ:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  transient=True) as progress:

        def task(description: str, total: int) -> Callable[[int], None]:
            task_id = progress.add_task(description, total=total)

            def advance(count: int) -> None:
                progress.advance(task_id, count)

            return advance

        yield task


def _write_krl(path: str, data: bytes) -> None:
    """Replace the KRL atomically; a device or FIFO (e.g. /dev/stdout) is written to."""
    from keytools.keyfile import atomic_write

    try:
        st: os.stat_result | None = os.stat(path)
    except OSError:
        st = None
    try:
        if st is not None and not stat.S_ISREG(st.st_mode):
            with open(path, "wb") as out:
                out.write(data)
            return
        atomic_write(path, data, stat.S_IMODE(st.st_mode) if st is not None else 0o644)
    except (OSError, SshError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise Fatal(f"write {path}: {reason}") from None


def do_gen_krl(opts: KeygenOptions) -> int:
    from keytools.krl import Krl, encode_krl
    from keytools.krl.spec import KrlSpecError, SpecReader

    version = _parse_version(opts.serial)
    path = opts.identity_file or ""
    if not path:
        raise Fatal("KRL generation requires an output file")
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise Fatal(f'Cannot access KRL "{path}": {exc.strerror}') from None
        if opts.update_krl:
            raise Fatal(f'KRL "{path}" does not exist') from None
    ca: PublicKey | None = None
    wild_ca = False
    if opts.ca_key is not None:
        if opts.ca_key.lower() == "none":
            wild_ca = True
        else:
            ca = _load_ca(opts.ca_key)
    krl = _load_krl(path) if opts.update_krl else Krl()
    if version:
        krl.version = version
    if opts.comment is not None:
        krl.comment = opts.comment
    stdout = _Stdout()
    with _progress_bar(_spec_bytes(opts.args) >= PROGRESS_BYTES) as task:
        reader = SpecReader(krl, ca, wild_ca)
        try:
            for arg in opts.args:  # one at a time: errors come in ssh-keygen's order
                data, name = _read_spec(arg)
                if not opts.quiet:
                    stdout.write(f"Revoking from {name}\n")
                reader.progress = task(f"Revoking from {name}", data.count(b"\n")) \
                    if task is not None else None
                reader.apply(data, name, arg)
        except KrlSpecError as exc:
            raise Fatal(str(exc)) from None
        except SshError as exc:
            raise Fatal(f"Couldn't generate KRL: {exc}") from None
        serials = sum(len(entry.serials.normalized()[0]) for entry in krl.certs) \
            if task is not None else 0
        advance = task("Writing KRL", serials) if task is not None and serials else None
        try:
            data = encode_krl(krl, (), advance)
        except SshError:
            raise Fatal("Couldn't generate KRL") from None
    _write_krl(path, data)
    stdout.flush()
    return 0


def _check_one(krl: Krl, arg: str) -> tuple[str, bool]:
    try:
        key, comment = _load_public(arg)
    except SshError as exc:
        raise Fatal(f"Cannot load public key {arg}: {exc}") from None
    revoked = krl.is_revoked(key)
    shown = f" ({comment})" if comment else ""
    return f"{arg}{shown}: {'REVOKED' if revoked else 'ok'}\n", revoked


def do_check_krl(opts: KeygenOptions) -> int:
    path = opts.identity_file or ""
    if not path:
        raise Fatal("KRL checking requires an input file")
    krl = _load_krl(path)
    stdout = _Stdout()
    if "-l" in opts.action:
        from keytools.krl.listing import krl_listing

        problems: list[str] = []
        stdout.write(krl_listing(krl, problems))
        for problem in problems:
            sys.stderr.write(problem + "\n")
    status = 0
    for arg in opts.args:
        line, revoked = _check_one(krl, arg)
        stdout.write(line)
        if revoked:
            status = 1
    stdout.flush()
    return status

