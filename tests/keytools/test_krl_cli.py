"""pykeygen -k / -Q against the real ssh-keygen: same files in, same bytes, stdout, exit.

OpenSSH writes its log lines with CRLF; stderr is compared with that normalised.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.helpers import TESTDATA, run, tool_path

PYKEYGEN = [sys.executable, "-m", "keytools.cli.pykeygen"]
KRL_DIR = TESTDATA / "krl"
KEYS = [f"k{n}.pub" for n in range(1, 9)] + [f"k{n}-cert.pub" for n in range(1, 9)]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A copy of the krl corpus (so both tools see identical relative paths)."""
    for item in KRL_DIR.iterdir():
        shutil.copy(item, tmp_path / item.name)
        (tmp_path / item.name).chmod(0o644)
    return tmp_path


def both(args: list[str], cwd: Path) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    ours = run([*PYKEYGEN, *args], cwd=cwd)
    theirs = run([tool_path("ssh-keygen"), *args], cwd=cwd)
    assert "Traceback" not in ours.stderr
    return ((ours.returncode, ours.stdout, ours.stderr),
            (theirs.returncode, theirs.stdout, theirs.stderr.replace("\r\n", "\n")))


def expected(krl: str) -> dict[str, bool]:
    answers = {}
    for line in (KRL_DIR / "expected-query.txt").read_text().splitlines():
        name, key, rc = line.split()
        if name == krl:
            answers[key] = rc == "rc=1"
    return answers


def answers_of(stdout: str) -> dict[str, bool]:
    """{key file: revoked} from -Q output lines ``file (comment): REVOKED|ok``."""
    out = {}
    for line in stdout.splitlines():
        if line.endswith((": REVOKED", ": ok")):
            out[line.split(" ", 1)[0]] = line.endswith("REVOKED")
    return out


@pytest.mark.parametrize("krl", ["plain.krl", "big.krl"])
def test_query_corpus(work: Path, krl: str) -> None:
    ours, theirs = both(["-Q", "-f", krl, *KEYS], work)
    assert ours == theirs
    assert answers_of(ours[1]) == expected(krl)
    for key, revoked in expected(krl).items():  # the exit status of each pair
        assert run([*PYKEYGEN, "-Q", "-f", krl, key], cwd=work).returncode == int(revoked)


@pytest.mark.parametrize("krl", ["plain.krl", "big.krl"])
def test_listing(work: Path, krl: str) -> None:
    ours, theirs = both(["-Q", "-l", "-f", krl, "k1-cert.pub"], work)
    assert ours == theirs
    lines = ours[1].splitlines(keepends=True)
    if krl == "plain.krl":
        assert "".join(lines[:1] + lines[2:-1]) == (KRL_DIR / "plain.krl.listing").read_text()


@pytest.mark.parametrize("spec", ["spec", "big.spec"])
def test_generate_same_bytes(work: Path, spec: str) -> None:
    args = ["-k", "-s", "ca.pub", "-z", "7", "-C", "test krl", spec]
    ours = run([*PYKEYGEN, "-f", "ours.krl", *args], cwd=work)
    theirs = run([tool_path("ssh-keygen"), "-f", "theirs.krl", *args], cwd=work)
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout) == \
        (0, f"Revoking from {spec}\n")
    a, b = (work / "ours.krl").read_bytes(), (work / "theirs.krl").read_bytes()
    assert a[:20] + a[28:] == b[:20] + b[28:]
    if spec == "spec":  # the corpus KRL was made from this very spec
        assert a[28:] == (KRL_DIR / "plain.krl").read_bytes()[28:]


@pytest.mark.parametrize("spec", ["spec", "big.spec"])
def test_round_trips_through_ssh_keygen(work: Path, spec: str) -> None:
    """Our KRL answered by ssh-keygen, and ssh-keygen's KRL answered by us, as expected."""
    krl_name = "plain.krl" if spec == "spec" else "big.krl"
    for maker, reader, name in ((PYKEYGEN, [tool_path("ssh-keygen")], "ours.krl"),
                                ([tool_path("ssh-keygen")], PYKEYGEN, "theirs.krl")):
        made = run([*maker, "-q", "-k", "-f", name, "-s", "ca.pub", spec], cwd=work)
        assert made.returncode == 0, made.stderr
        asked = run([*reader, "-Q", "-f", name, *KEYS], cwd=work)
        assert asked.returncode == 1
        assert answers_of(asked.stdout) == expected(krl_name)


def test_update_keeps_ssh_keygen_bytes(work: Path) -> None:
    (work / "more.spec").write_text("serial: 1002-1010\nid: newid\nserial: 70000\n")
    for tool, name in ((PYKEYGEN, "a.krl"), ([tool_path("ssh-keygen")], "b.krl")):
        shutil.copy(work / "plain.krl", work / name)
        (work / name).chmod(0o644)
        done = run([*tool, "-k", "-u", "-f", name, "-s", "ca.pub", "-z", "9", "more.spec",
                    "k3-cert.pub", "k4.pub"], cwd=work)
        assert done.returncode == 0, done.stderr
        assert done.stdout == "Revoking from more.spec\nRevoking from k3-cert.pub\n" \
            "Revoking from k4.pub\n"
    # the generation time is kept from the old file, so the whole file is identical
    assert (work / "a.krl").read_bytes() == (work / "b.krl").read_bytes()


def test_wildcard_ca_and_plain_keys(work: Path) -> None:
    args = ["-k", "-s", "none", "spec", "k5.pub", "k6-cert.pub"]
    assert run([*PYKEYGEN, "-q", "-f", "a.krl", *args], cwd=work).returncode == 0
    assert run([tool_path("ssh-keygen"), "-q", "-f", "b.krl", *args], cwd=work).returncode == 0
    a, b = (work / "a.krl").read_bytes(), (work / "b.krl").read_bytes()
    assert a[28:] == b[28:]
    ours, theirs = both(["-Q", "-l", "-f", "a.krl"], work)
    assert ours[1].split("\n")[2:] == theirs[1].split("\n")[2:]


@pytest.mark.parametrize("args", [
    ["-k", "spec"],
    ["-k", "-f", "x.krl", "spec"],
    ["-k", "-f", "x.krl", "-s", "ca.pub", "missing.spec"],
    ["-k", "-f", "x.krl", "-s", "missing.pub", "spec"],
    ["-k", "-u", "-f", "missing.krl", "-s", "ca.pub", "spec"],
    ["-k", "-u", "-f", "ca.pub", "-s", "ca.pub", "spec"],
    ["-k", "-f", "x.krl", "-z", "x7", "spec"],
    ["-k", "-f", "x.krl", "-s", "ca.pub", "bad.spec"],
    ["-k", "-f", "x.krl", "-s", "ca.pub", "zero.spec"],
    ["-k", "-f", "x.krl", "-s", "ca.pub", "range.spec"],
    ["-k", "-f", "x.krl", "-s", "ca.pub", "hash.spec"],
    ["-k", "-f", "x.krl", "-s", "ca.pub", "shorthash.spec"],
    ["-k", "-f", "x.krl", "-s", "ca.pub", "key.spec"],
    ["-k", "-f", "x.krl", "-s", "ca.pub", "spec", "huge.spec"],
    ["-Q", "k1.pub"],
    ["-Q", "-f", "missing.krl", "k1.pub"],
    ["-Q", "-f", "k1.pub", "k1.pub"],
    ["-Q", "-f", "plain.krl", "k2.pub", "missing.pub"],  # the first answer is lost too
    ["-Q", "-f", "plain.krl"],
], ids=lambda a: "_".join(a))
def test_errors_as_ssh_keygen(work: Path, args: list[str]) -> None:
    (work / "bad.spec").write_text("serial: 12\nserial: 12x\n")
    (work / "zero.spec").write_text("serial: 0\n")
    (work / "range.spec").write_text("serial: 9-3\n")
    (work / "hash.spec").write_text("hash: SHA1:abc\n")
    (work / "shorthash.spec").write_text("hash: SHA256:AAAA\n")
    (work / "key.spec").write_text("key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAAQ\n")
    (work / "huge.spec").write_text("serial: 18446744073709551616\n")
    ours, theirs = both(args, work)
    assert ours == theirs


def _pty_run(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, bytes]:
    """Run with stdout on a pseudo-terminal (a person at a terminal); its bytes and rc."""
    import os
    import pty
    import subprocess

    master, slave = pty.openpty()
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=subprocess.PIPE)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.wait(timeout=120), b"".join(chunks)


@pytest.mark.parametrize("no_color", [False, True])
def test_large_build_progress_only_on_a_terminal(work: Path, no_color: bool) -> None:
    import os

    (work / "many.spec").write_text("".join(f"serial: {100 * s + 7}\n" for s in range(120_000)))
    args = ["-k", "-s", "ca.pub", "many.spec"]
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    if no_color:
        env["NO_COLOR"] = "1"
    rc, shown = _pty_run([*PYKEYGEN, "-f", "tty.krl", *args], work, env)
    assert rc == 0
    if no_color:
        assert shown == b"Revoking from many.spec\r\n"
    else:
        assert b"Revoking from many.spec" in shown and b"\x1b[" in shown  # rich drew a bar
    piped = run([*PYKEYGEN, "-f", "pipe.krl", *args], cwd=work)
    theirs = run([tool_path("ssh-keygen"), "-f", "ref.krl", *args], cwd=work)
    assert piped.stdout == theirs.stdout == "Revoking from many.spec\n"
    ref = (work / "ref.krl").read_bytes()[28:]
    assert (work / "tty.krl").read_bytes()[28:] == (work / "pipe.krl").read_bytes()[28:] == ref


def test_spec_files_are_read_in_turn(work: Path) -> None:
    """The first file's error wins over a later missing file, as in ssh-keygen."""
    (work / "bad.spec").write_text("serial: nope\n")
    ours, theirs = both(["-k", "-f", "x.krl", "-s", "ca.pub", "bad.spec", "missing.spec"], work)
    assert ours == theirs
    assert "bad.spec:1: invalid serial" in ours[2]
