"""SSHFP records (pykeygen -r) and host key generation (pykeygen -A) against ssh-keygen."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from keytools.cli.pykeygen import main
from keytools.public import parse_public_line
from keytools.sshfp import sshfp_records
from tests.helpers import TESTDATA, run

PYKEYGEN = [sys.executable, "-m", "keytools.cli.pykeygen"]
KEYS = TESTDATA / "sshkey"
SUPPORTED = ["rsa_1.pub", "rsa_2.pub", "ecdsa_1.pub", "ecdsa_2.pub", "ed25519_1.pub",
             "ed25519_2.pub"]
UNSUPPORTED = ["ecdsa_sk1.pub", "ed25519_sk1.pub", "rsa_1-cert.pub", "ed25519_1-cert.pub"]


def _ours(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _theirs(ssh_keygen: str, args: list[str]) -> tuple[int, str, str]:
    done = run([ssh_keygen, *args])
    return done.returncode, done.stdout, done.stderr.replace("\r\n", "\n")


@pytest.mark.parametrize("name", SUPPORTED + UNSUPPORTED)
@pytest.mark.parametrize("generic", [False, True])
def test_resource_records_match_ssh_keygen(name: str, generic: bool, ssh_keygen: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    args = ["-r", "host.example.com", "-f", str(KEYS / name)] + (["-g"] if generic else [])
    assert _ours(capsys, args) == _theirs(ssh_keygen, args)


def test_records_by_type() -> None:
    for name, algorithm in (("rsa_1.pub", 1), ("ecdsa_1.pub", 3), ("ed25519_1.pub", 4)):
        key = parse_public_line((KEYS / name).read_text())[0]
        records = sshfp_records(key)
        assert [(r.algorithm, r.digest_type, len(r.digest)) for r in records] == \
            [(algorithm, 1, 20), (algorithm, 2, 32)]
        assert records[1].text("h") == f"h IN SSHFP {algorithm} 2 {records[1].digest.hex()}"
        assert records[0].text("h", generic=True) == \
            f"h IN TYPE44 \\# 22 0{algorithm} 01 {records[0].digest.hex()}"


def test_private_key_file_and_errors(tmp_path: Path, ssh_keygen: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    # a private key without its .pub beside it: the public half is read from it
    key = tmp_path / "key"
    key.write_bytes((KEYS / "ed25519_1").read_bytes())
    key.chmod(0o600)
    for args in (["-r", "h", "-f", str(key)],
                 ["-r", "h", "-f", str(tmp_path / "missing")],
                 ["-r", "h", "-f", str(TESTDATA / "hostkeys" / "known_hosts")]):
        assert _ours(capsys, args) == _theirs(ssh_keygen, args), args


def test_default_host_keys(ssh_keygen: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Without -f the machine's /etc/ssh host keys are used, as ssh-keygen does."""
    if os.path.exists("/etc/ssh/ssh_host_dsa_key"):
        pytest.skip("a DSA host key: OpenSSH 10 no longer prints it, 9.x does")
    assert _ours(capsys, ["-r", "h"]) == _theirs(ssh_keygen, ["-r", "h"])


# -- -A -----------------------------------------------------------------------------------


def _layout(prefix: Path) -> dict[str, int]:
    ssh = prefix / "etc" / "ssh"
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in sorted(ssh.iterdir())}


def test_generate_all_host_keys(tmp_path: Path, ssh_keygen: str) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    for prefix in (ours, theirs):
        (prefix / "etc" / "ssh").mkdir(parents=True)
    # an empty key file counts as missing; an existing one is kept
    (ours / "etc/ssh/ssh_host_ed25519_key").touch()
    (theirs / "etc/ssh/ssh_host_ed25519_key").touch()
    mine = run([*PYKEYGEN, "-A", "-f", str(ours)])
    real = run([ssh_keygen, "-A", "-f", str(theirs)])
    assert mine.returncode == real.returncode == 0
    assert mine.stdout == real.stdout.replace("ssh-keygen", "pykeygen") == \
        "pykeygen: generating new host keys: RSA ECDSA ED25519 \n"
    assert _layout(ours) == _layout(theirs)
    for kind, bits in (("rsa", 3072), ("ecdsa", 256), ("ed25519", 256)):
        path = ours / "etc" / "ssh" / f"ssh_host_{kind}_key"
        listed = run([ssh_keygen, "-l", "-f", str(path)])
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.startswith(f"{bits} SHA256:")
        derived = run([ssh_keygen, "-y", "-f", str(path)])
        pub = (ours / "etc" / "ssh" / f"ssh_host_{kind}_key.pub").read_text()
        assert pub.split()[:2] == derived.stdout.split()[:2]
        theirs_pub = (theirs / "etc" / "ssh" / f"ssh_host_{kind}_key.pub").read_text()
        assert pub.split()[2:] == theirs_pub.split()[2:]  # the comment: user@host
    # nothing is missing now: nothing printed, nothing changed
    before = {p: p.read_bytes() for p in (ours / "etc" / "ssh").iterdir()}
    again = run([*PYKEYGEN, "-A", "-f", str(ours)])
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    assert before == {p: p.read_bytes() for p in (ours / "etc" / "ssh").iterdir()}


def test_generate_all_host_keys_without_directory(tmp_path: Path, ssh_keygen: str) -> None:
    mine = run([*PYKEYGEN, "-A", "-f", str(tmp_path / "ours")])
    real = run([ssh_keygen, "-A", "-f", str(tmp_path / "theirs")])
    assert mine.returncode == real.returncode == 0
    assert mine.stdout == real.stdout.replace("ssh-keygen", "pykeygen")
    # each failure names the temporary file it tried (random suffix): compare the shape
    mine_err = [line.rsplit(".", 1)[0] for line in mine.stderr.splitlines()]
    real_err = [line.rsplit(".", 1)[0] for line in real.stderr.replace("\r", "").splitlines()]
    assert mine_err == [line.replace("theirs", "ours") for line in real_err]
    assert len(mine_err) == 3
    assert not (tmp_path / "ours").exists()
