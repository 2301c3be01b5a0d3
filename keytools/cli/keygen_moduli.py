"""pykeygen -M generate / -M screen: DH moduli files, with ssh-keygen's options and words.

The sieve and the tests are keytools.moduli; this module parses -O options, opens the
files as ssh-keygen does (candidates written anew, safe primes appended line by line),
and shows a rich progress bar when stdout is a terminal.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

from keytools.cli.output import Fatal, error
from keytools.cli.pykeygen import KeygenOptions, _strtonum
from keytools.errors import SshError

UINT_MAX = 0xFFFFFFFF
INT_MAX = 0x7FFFFFFF
DEFAULT_MODULI_BITS = 3072


def _strtoul(text: str) -> int:
    """C's strtoul with no error check: leading digits, else 0."""
    text = text.lstrip(" \t")
    digits = len(text) - len(text.lstrip("0123456789"))
    return int(text[:digits]) if digits else 0


def _open(path: str, mode: str, what: str) -> IO[str]:
    try:
        return open(path, mode, encoding="ascii", errors="surrogateescape", buffering=1)
    except OSError as exc:
        raise Fatal(f'Couldn\'t open {what} "{path}": {exc.strerror}') from None


@contextlib.contextmanager
def _progress(description: str) -> Iterator[Callable[[int], Callable[[int], None]] | None]:
    """A rich progress bar on a terminal (NO_COLOR or a pipe: none at all)."""
    if not sys.stdout.isatty() or os.environ.get("NO_COLOR"):
        yield None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        def start(total: int) -> Callable[[int], None]:
            task = bar.add_task(description, total=total)
            return lambda n: bar.advance(task, n)

        yield start


def _generate(opts: KeygenOptions, out_path: str) -> None:
    from keytools.moduli import generate_candidates

    memory = bits = 0
    start: int | None = None
    for opt in opts.options:
        if opt.startswith("memory="):
            memory, err = _strtonum(opt[7:], 1, UINT_MAX)
            if err:
                raise Fatal(f"Memory limit is {err}: {opt[7:]}")
        elif opt.startswith("start="):
            text = opt[6:]
            digits = len(text) - len(text.lstrip("0123456789abcdefABCDEF"))
            if not digits:
                raise Fatal("Invalid start point.")
            start = int(text[:digits], 16)
        elif opt.startswith("bits="):
            bits, err = _strtonum(opt[5:], 1, INT_MAX)
            if err:
                raise Fatal(f"Invalid number: {opt[5:]} ({err})")
        else:
            raise Fatal(f'Option "{opt}" is unsupported for moduli generation')
    out = _open(out_path, "w", "modulus candidate file")
    with out, _progress("Sieving") as bar:
        def progress(total: int, _numbers: int) -> Callable[[int], None]:
            assert bar is not None
            return bar(total)

        try:
            for candidate in generate_candidates(
                bits or DEFAULT_MODULI_BITS, start=start, memory=memory, log=error,
                progress=progress if bar is not None else None,
            ):
                out.write(candidate.text() + "\n")
        except SshError as exc:
            error(str(exc))
            raise Fatal("modulus candidate generation failed") from None
        except OSError as exc:
            raise Fatal(f"modulus candidate generation failed: {exc.strerror}") from None


def _write_checkpoint(path: str, line: int) -> None:
    """moduli.c's write_checkpoint: the line number, replaced atomically."""
    from keytools.known_hosts_edit import make_temp

    try:
        fd, tmp = make_temp(path)
    except SshError as exc:
        error(str(exc))
        return
    try:
        with os.fdopen(fd, "w") as f:
            f.write(f"{line}\n")
        os.rename(tmp, path)
    except OSError as exc:
        error(f"failed to write to checkpoint file '{path}': {exc.strerror}")
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _read_checkpoint(path: str) -> int:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            text = f.readline()
    except OSError:
        return 0
    value = _strtoul(text)
    if not text[:1].isdigit():
        error(f"Failed to load checkpoint from '{path}'")
        return 0
    error(f"Loaded checkpoint from '{path}' line {value}")
    return value


def _screen(opts: KeygenOptions, out_path: str) -> None:
    from keytools.moduli import ScreenStats, screen_candidates, screen_summary

    checkpoint: str | None = None
    generator = trials = start_line = lines = 0
    for opt in opts.options:
        if opt.startswith("lines="):
            lines = _strtoul(opt[6:])
        elif opt.startswith("start-line="):
            start_line = _strtoul(opt[11:])
        elif opt.startswith("checkpoint="):
            checkpoint = opt[11:]
        elif opt.startswith("generator="):
            generator, err = _strtonum(opt[10:], 1, UINT_MAX)
            if err:
                raise Fatal(f"Generator invalid: {opt[10:]} ({err})")
        elif opt.startswith("prime-tests="):
            trials, err = _strtonum(opt[12:], 1, INT_MAX)
            if err:
                raise Fatal(f"Invalid number: {opt[12:]} ({err})")
        else:
            raise Fatal(f'Option "{opt}" is unsupported for moduli screening')
    source: IO[str] = sys.stdin
    if opts.identity_file is not None and opts.identity_file != "-":
        source = _open(opts.identity_file, "r", "modulus candidate file")
    out = _open(out_path, "a", "moduli file")
    if checkpoint is not None:
        start_line = max(start_line, _read_checkpoint(checkpoint))
    began = time.time()
    stats = ScreenStats()
    total = _count_lines(source) if source is not sys.stdin else 0
    with source, out, _progress("Screening") as bar:
        advance = bar(total or 1) if bar is not None and total else None

        def on_line(number: int) -> None:
            if checkpoint is not None:
                _write_checkpoint(checkpoint, number)
            if advance is not None:
                advance(1)

        try:
            for prime in screen_candidates(
                source, trials=trials or 100, generator=generator, start_line=start_line,
                max_lines=lines, stats=stats, on_line=on_line,
            ):
                out.write(prime.text() + "\n")
        except SshError as exc:
            error(str(exc))
            raise Fatal("modulus screening failed") from None
        except OSError as exc:
            raise Fatal(f"modulus screening failed: {exc.strerror}") from None
    if checkpoint is not None:
        with contextlib.suppress(OSError):
            os.unlink(checkpoint)
    error(screen_summary(stats, began))


def _count_lines(f: Any) -> int:
    """The number of lines of a seekable file, for the progress bar (0 if unknown)."""
    try:
        if not sys.stdout.isatty():
            return 0
        count = sum(1 for _ in f)
        f.seek(0)
        return count
    except (OSError, ValueError):
        return 0


def do_moduli(opts: KeygenOptions) -> int:
    if not opts.args:
        raise Fatal("No output file specified")
    if len(opts.args) > 1:
        raise Fatal("Too many output files specified")
    if opts.moduli == "generate":
        _generate(opts, opts.args[0])
    else:
        _screen(opts, opts.args[0])
    return 0
