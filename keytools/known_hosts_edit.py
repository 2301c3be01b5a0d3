"""Changing known_hosts files: append a host, remove a host, hash every name.

The rewrites work as ssh-keygen's: the new text goes to ``file.XXXXXXXXXX`` in the
same directory (mode of the original, at most 0644), the original is kept as
``file.old`` (a hard link), and the new file is renamed over the original. Nothing
is replaced when a line could not be understood. ``delete_host_lines`` and
``hash_host_lines`` compute the new text without touching a file, so pykeygen can
report exactly what ssh-keygen reports.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from keytools.errors import FileError
from keytools.hostmatch import has_wildcard, hash_host, host_port
from keytools.known_hosts import HostLine, LineStatus, Marker, Source, lines_of, scan
from keytools.match import ascii_lower

if TYPE_CHECKING:
    from keytools.public import PublicKey

_TMP_ALPHABET = string.ascii_letters + string.digits


@dataclass
class Rewrite:
    """The new text of a file and what was noticed on the way (in line order)."""

    lines: list[str] = field(default_factory=list)
    #: lines whose host matched: removed by -R, printed by -F
    found: list[HostLine] = field(default_factory=list)
    invalid: list[HostLine] = field(default_factory=list)
    #: lines left unhashed because their host field holds a wildcard or negation
    wildcard: list[HostLine] = field(default_factory=list)
    #: some names were hashed (the .old file then holds them in clear)
    hashed_names: bool = False


def hashed_forms(line: HostLine) -> list[str] | None:
    """known_hosts_hash() for one entry: one ``|1|...`` line per host name.

    None when the line stays as it is (already hashed, a wildcard, or a marker line).
    Names are folded to lower case; a list stops at its first empty name, as in C.
    """
    if line.hashed or has_wildcard(line.hosts) or line.marker is not Marker.NONE:
        return None
    out: list[str] = []
    for name in line.hosts.split(","):
        if not name:
            break
        out.append(f"{hash_host(ascii_lower(name))} {line.key_text}")
    return out


def hash_host_lines(lines: Iterable[str]) -> Rewrite:
    """``ssh-keygen -H``: every plain host name hashed, everything else kept."""
    result = Rewrite()
    for line in scan(lines):
        if line.status is LineStatus.ENTRY:
            forms = hashed_forms(line)
            if forms is None:
                if has_wildcard(line.hosts):
                    result.wildcard.append(line)
                result.lines.append(line.text)
            else:
                result.lines.extend(forms)
                result.hashed_names = result.hashed_names or bool(forms)
            continue
        if line.status is LineStatus.INVALID:
            result.invalid.append(line)
        result.lines.append(line.text)
    return result


def delete_host_lines(lines: Iterable[str], host: str) -> Rewrite:
    """``ssh-keygen -R host``: drop the host's plain entries (not CA or revoked lines)."""
    result = Rewrite()
    for line in scan(lines, host):
        if line.status is LineStatus.ENTRY and line.matched:
            if line.marker is Marker.NONE:
                result.found.append(line)
                continue
        elif line.status is LineStatus.INVALID:
            result.invalid.append(line)
        result.lines.append(line.text)
    return result


# -- files --------------------------------------------------------------------------------


def _os_error(message: str, exc: OSError) -> FileError:
    return FileError(f"{message}: {exc.strerror}", exc.errno)


def reserve_temp(template: str) -> tuple[int, str]:
    """mkstemp(template + ".XXXXXXXXXX") with mode 0600; the caller closes the descriptor.

    An OSError carries the name that was tried as its filename.
    """
    for _ in range(100):
        name = template + "." + "".join(secrets.choice(_TMP_ALPHABET) for _ in range(10))
        try:
            return os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), name
        except FileExistsError:
            continue
        except OSError as exc:
            exc.filename = name
            raise
    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), template)


def make_temp(path: str) -> tuple[int, str]:
    """reserve_temp, failing with FileError("mkstemp: ...") as ssh-keygen words it."""
    try:
        return reserve_temp(path)
    except OSError as exc:
        raise _os_error("mkstemp", exc) from None


def write_fd(fd: int, lines: Iterable[str] | Iterable[bytes] | bytes, *,
             joined: bool = False) -> None:
    """Write ``lines`` (each followed by a newline) to ``fd``, fsync and close it;
    ``joined``: ``lines`` is already the whole text (bytes)."""
    if joined and isinstance(lines, bytes):
        data = lines
    else:
        items = list(lines)
        if items and isinstance(items[0], bytes):
            data = b"\n".join(items) + b"\n"  # type: ignore[arg-type]
        else:
            data = "".join(f"{line}\n" for line in items).encode("utf-8", "surrogateescape")
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except OSError as exc:
        raise _os_error("write", exc) from None
    finally:
        os.close(fd)


def install_with_backup(tmp: str, path: str) -> str:
    """Keep ``path`` as ``path.old`` and rename ``tmp`` over it; returns the .old name.

    The messages are ssh-keygen's fatal() texts for each step that can fail.
    """
    old = f"{path}.old"
    try:
        os.unlink(old)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise _os_error(f"unlink {old[:100]}", exc) from None
    try:
        os.link(path, old)
    except OSError as exc:
        raise _os_error(f"link {path[:100]} to {old[:100]}", exc) from None
    try:
        os.rename(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        with contextlib.suppress(OSError):
            os.unlink(old)
        raise _os_error(f'rename"{tmp}" to "{path}"', exc) from None
    _fsync_dir(os.path.dirname(path) or ".")
    return old


def _fsync_dir(directory: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def replace_file(path: str, lines: Iterable[str]) -> str:
    """Write ``lines`` as the new ``path`` (same mode, at most 0644), keeping .old."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode) & 0o644
    except OSError as exc:
        raise FileError.from_os(exc) from None
    fd, tmp = make_temp(path)
    try:
        os.fchmod(fd, mode)
        write_fd(fd, lines)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return install_with_backup(tmp, path)


# -- the library's editing API ------------------------------------------------------------


def format_host_entry(
    host: str, key: PublicKey, *, hashed: bool = False, address: str | None = None
) -> list[str]:
    """The lines ssh writes for a new host key (write_host_entry): the name in lower case,
    hashed or in clear; an address goes beside the name, or on its own hashed line."""
    name = ascii_lower(host)
    text = key.openssh()
    if hashed:
        lines = [f"{hash_host(name)} {text}"]
        if address is not None:
            lines.append(f"{hash_host(ascii_lower(address))} {text}")
        return lines
    if address is not None:
        return [f"{name},{address} {text}"]
    return [f"{name} {text}"]


def add_host_key(
    path: str | os.PathLike[str],
    host: str,
    port: int | None,
    key: PublicKey,
    *,
    hashed: bool = False,
    address: str | None = None,
) -> list[str]:
    """Append the host's key to ``path`` in one write (O_APPEND); returns the lines added.

    The file is created (0644 less the umask) if missing; a last line without its
    newline gets one first, so the new entry never joins it.
    """
    lines = format_host_entry(host_port(host, port), key, hashed=hashed,
                              address=None if address is None else host_port(address, port))
    data = "".join(f"{line}\n" for line in lines)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise FileError.from_os(exc) from None
    try:
        size = os.fstat(fd).st_size
        if size:
            with open(path, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    data = "\n" + data
        payload = data.encode("utf-8", "surrogateescape")
        written = os.write(fd, payload)
        if written != len(payload):
            raise FileError(os.strerror(errno.EIO), errno.EIO)
        os.fsync(fd)
    except OSError as exc:
        raise FileError.from_os(exc) from None
    finally:
        os.close(fd)
    return lines


@dataclass(frozen=True)
class Removal:
    #: the lines taken out (CA and @revoked lines are never removed)
    removed: tuple[HostLine, ...]
    #: where the previous contents were kept, when the file changed
    backup: str | None


def remove_host(path: str, host: str, port: int | None = 22) -> Removal:
    """Remove every plain entry for ``host`` (``[host]:port`` off port 22) from ``path``.

    As ssh's hostfile_replace_entries(): unreadable lines are kept as they are, and the
    file is rewritten (keeping ``path.old``) only when something was removed.
    """
    rewrite = delete_host_lines(lines_of(path), host_port(host, port))
    if not rewrite.found:
        return Removal((), None)
    backup = replace_file(path, rewrite.lines)
    return Removal(tuple(rewrite.found), backup)


def hash_known_hosts(source: Source) -> Rewrite:
    """The hashed form of a file (see hash_host_lines); nothing is written."""
    return hash_host_lines(lines_of(source))
