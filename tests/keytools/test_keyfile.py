"""Key files on disk: atomic writes, reads, permission checks and where keys are found."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

import keytools.keyfile as keyfile
from keytools.errors import BadPermissions, FileError, InvalidFormat, WrongPassphrase
from keytools.keyfile import (
    UNPROTECTED_WARNING,
    atomic_write,
    check_private_permissions,
    decode_private_file,
    is_encrypted,
    load_private,
    load_public,
    load_public_file,
    read_file,
    save_private,
    save_public,
)
from keytools.private import generate
from keytools.public import parse_public_line
from tests.helpers import TESTDATA, private_copy, run


def _listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# -- atomic_write -------------------------------------------------------------------------


def test_atomic_write_creates_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "f"
    atomic_write(target, b"one", 0o600)
    assert target.read_bytes() == b"one"
    assert target.stat().st_mode & 0o777 == 0o600
    atomic_write(str(target), b"two", 0o644)
    assert target.read_bytes() == b"two"
    assert target.stat().st_mode & 0o777 == 0o644 & ~_umask()
    assert _listing(tmp_path) == ["f"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_write_onto_a_directory_changes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "d"
    target.mkdir()
    (target / "inside").write_text("x")
    with pytest.raises(FileError) as info:
        atomic_write(target, b"data", 0o600)
    assert str(info.value) == os.strerror(errno.EISDIR)
    assert info.value.errno == errno.EISDIR
    assert _listing(tmp_path) == ["d"]
    assert _listing(target) == ["inside"]


def test_atomic_write_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileError) as info:
        atomic_write(tmp_path / "nope" / "f", b"data", 0o600)
    assert str(info.value) == "No such file or directory"


def test_atomic_write_failure_mid_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"original")

    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("keytools.keyfile.os.write", full)
    with pytest.raises(FileError) as info:
        atomic_write(target, b"new contents", 0o600)
    assert str(info.value) == "No space left on device"
    assert target.read_bytes() == b"original"
    assert _listing(tmp_path) == ["f"]


def test_atomic_write_through_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.write_bytes(b"old")
    link = tmp_path / "link"
    link.symlink_to(real)
    atomic_write(link, b"new", 0o600)
    assert link.is_symlink() and real.read_bytes() == b"new"


# -- read_file ----------------------------------------------------------------------------


def test_read_file_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileError) as info:
        read_file(tmp_path / "missing")
    assert str(info.value) == "No such file or directory"
    assert info.value.errno == errno.ENOENT
    with pytest.raises(FileError) as info:
        read_file(tmp_path)
    assert str(info.value) == "Is a directory"
    big = tmp_path / "big"
    big.write_bytes(b"x" * 100)
    assert read_file(big) == b"x" * 100
    monkeypatch.setattr(keyfile, "MAX_KEY_FILE", 99)
    with pytest.raises(InvalidFormat):
        read_file(big)


# -- permissions --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o755])
def test_unprotected_warning_matches_ssh_keygen(mode: int, tmp_path: Path,
                                                ssh_keygen: str) -> None:
    path = private_copy("sshkey/ed25519_1", tmp_path)
    path.chmod(mode)
    proc = run([ssh_keygen, "-y", "-f", path])
    with pytest.raises(BadPermissions) as info:
        load_private(str(path), None)
    # OpenSSH's log.c ends each stderr line with "\r\n"; the warning's lines are "\n"-joined.
    *warning, last = proc.stderr.replace("\r\n", "\n").rstrip("\n").split("\n")
    assert info.value.warning == "\n".join(warning)
    assert last == f'Load key "{path}": {info.value}'
    assert str(info.value) == "bad permissions"
    with pytest.raises(BadPermissions):
        check_private_permissions(path)
    assert UNPROTECTED_WARNING.format(mode=mode, path=str(path)) == info.value.warning


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700])
def test_private_modes_accepted(mode: int, tmp_path: Path) -> None:
    path = private_copy("sshkey/ed25519_1", tmp_path)
    path.chmod(mode)
    check_private_permissions(path)
    assert load_private(str(path), None)[1] == "ED25519 test key #1"


def test_someone_elses_file_is_not_checked(tmp_path: Path, ssh_keygen: str) -> None:
    """OpenSSH only complains about files owned by the user running it."""
    if os.geteuid() != 0:
        pytest.skip("needs root to give the file away")
    path = private_copy("sshkey/ed25519_1", tmp_path)
    path.chmod(0o644)
    os.chown(path, 1, 1)
    assert run([ssh_keygen, "-y", "-f", path]).returncode == 0
    check_private_permissions(path)
    load_private(str(path), None)


def test_permission_check_on_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileError):
        check_private_permissions(tmp_path / "missing")
    with pytest.raises(FileError) as info:
        load_private(str(tmp_path / "missing"), None)
    assert str(info.value) == "No such file or directory"


# -- load_private -------------------------------------------------------------------------


def test_load_private_detects_formats(tmp_path: Path) -> None:
    key = generate("ecdsa")
    for fmt, comment in (("openssh", "a comment"), ("PEM", ""), ("PKCS8", "")):
        path = tmp_path / fmt
        save_private(str(path), key, "a comment", "", fmt)
        assert load_private(str(path), None) == (key, comment)
        assert decode_private_file(path.read_bytes(), None) == (key, comment)
        assert not is_encrypted(str(path))
        save_private(str(path), key, "a comment", "passphrase", fmt, rounds=1)
        assert is_encrypted(str(path)) and is_encrypted(path.read_bytes())
        with pytest.raises(WrongPassphrase):
            load_private(str(path), None)
        assert load_private(str(path), "passphrase") == (key, comment)


def test_load_private_garbage(tmp_path: Path) -> None:
    for data in (b"", b"hello\n", b"ssh-ed25519 AAAA\n", b"\x00" * 100):
        path = tmp_path / "g"
        path.write_bytes(data)
        path.chmod(0o600)
        with pytest.raises(InvalidFormat):
            load_private(str(path), None)
        assert not is_encrypted(data)


def test_save_private_mode_and_no_leftovers(tmp_path: Path) -> None:
    path = tmp_path / "id"
    save_private(str(path), generate("ed25519"), "c", "", rounds=1)
    assert path.stat().st_mode & 0o777 == 0o600
    assert _listing(tmp_path) == ["id"]


# -- public keys --------------------------------------------------------------------------


def test_save_public_like_ssh_keygen(tmp_path: Path, ssh_keygen: str) -> None:
    for comment in ("user@host", "", "two  words"):
        path = tmp_path / "k"
        for p in (path, tmp_path / "k.pub"):
            p.unlink(missing_ok=True)
        assert run([ssh_keygen, "-t", "ed25519", "-N", "", "-C", comment, "-q", "-f", path]
                   ).returncode == 0
        key, found = load_private(str(path), None)
        assert found == comment
        ours = tmp_path / "ours.pub"
        save_public(str(ours), key.public, comment)
        assert ours.read_bytes() == (tmp_path / "k.pub").read_bytes()
        assert ours.stat().st_mode & 0o777 == 0o644 & ~_umask()


def test_load_public_search_order(tmp_path: Path) -> None:
    key = generate("ed25519")
    other = generate("ed25519")
    private = tmp_path / "id"
    save_private(str(private), key, "private comment", "pw", rounds=1)
    # No .pub: the public key comes from the private file's header, comment "".
    assert load_public(str(private)) == (key.public, "")
    # A .pub beside it wins, with its comment (even if it is another key).
    save_public(str(private) + ".pub", other.public, "pub comment")
    assert load_public(str(private)) == (other.public, "pub comment")
    # The file itself, if it is a public key file, wins over everything.
    assert load_public(str(private) + ".pub") == (other.public, "pub comment")


def test_load_public_not_found(tmp_path: Path) -> None:
    pem = tmp_path / "pem"
    save_private(str(pem), generate("ecdsa"), "", "", "PEM")
    for path in (pem, tmp_path / "missing", tmp_path):
        with pytest.raises(FileError) as info:
            load_public(str(path))
        assert str(info.value) == "No such file or directory"
        assert info.value.errno == errno.ENOENT


def test_load_public_file_lines(tmp_path: Path) -> None:
    key = generate("ed25519")
    line = key.public.openssh()
    path = tmp_path / "k.pub"
    path.write_text(f"# a comment line\n\n   \nnot a key\n{line}   spaced  comment \r\n")
    assert load_public_file(str(path)) == (key.public, "spaced  comment ")
    path.write_text(f"\t{line}\n")
    assert load_public_file(str(path)) == (key.public, str(path))
    path.write_text(f"-----BEGIN OPENSSH PRIVATE KEY-----\n{line} c\n")
    with pytest.raises(InvalidFormat):
        load_public_file(str(path))
    path.write_text("")
    with pytest.raises(InvalidFormat):
        load_public_file(str(path))


@pytest.mark.parametrize("comment_part", ["", " two  words  ", " x"])
def test_load_public_comment_like_ssh_keygen(comment_part: str, tmp_path: Path,
                                             ssh_keygen: str) -> None:
    """ssh-keygen -s writes the comment sshkey_load_public found after the certificate:
    the rest of the line, or the file name when there is none."""
    ca = tmp_path / "ca"
    assert run([ssh_keygen, "-t", "ed25519", "-N", "", "-q", "-f", ca]).returncode == 0
    key = generate("ed25519")
    pub = tmp_path / "user.pub"
    pub.write_text(key.public.openssh() + comment_part + "\n")
    proc = run([ssh_keygen, "-s", ca, "-I", "id", pub])
    assert proc.returncode == 0, proc.stderr
    cert_line = (tmp_path / "user-cert.pub").read_text().rstrip("\n")
    expected = cert_line.split(" ", 2)[2]
    assert load_public(str(pub)) == (key.public, expected)


def test_load_public_corpus(tmp_path: Path) -> None:
    copy = private_copy("sshkey/ed25519_1", tmp_path)
    found, comment = load_public(str(copy))  # no .pub copied: from the header
    expected, _ = parse_public_line((TESTDATA / "sshkey" / "ed25519_1.pub").read_text())
    assert found == expected and comment == ""
    cert, cert_comment = load_public(str(TESTDATA / "sshkey" / "ed25519_1-cert.pub"))
    assert cert.is_certificate and cert.plain == expected
    assert cert_comment
