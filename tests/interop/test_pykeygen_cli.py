"""pykeygen against the real ssh-keygen: same input, same stdout, same exit status.

Every comparison runs both tools on identical copies of the same files; nothing is
compared with a string typed by hand.
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import pytest

from tests.helpers import TESTDATA, private_copy, run, tool_path

PYKEYGEN = [sys.executable, "-m", "keytools.cli.pykeygen"]
SSHKEY = TESTDATA / "sshkey"
PASSWORD = (SSHKEY / "pw").read_text().strip() if (SSHKEY / "pw").exists() else ""


def keygen() -> str:
    return tool_path("ssh-keygen")


def both(args: list[str], cwd: Path | None = None, input: str | None = None) -> tuple:  # type: ignore[type-arg]
    ours = run([*PYKEYGEN, *args], cwd=cwd, input=input)
    theirs = run([keygen(), *args], cwd=cwd, input=input)
    return ours, theirs


def assert_same(args: list[str], cwd: Path | None = None, input: str | None = None) -> None:
    ours, theirs = both(args, cwd, input)
    assert ours.returncode == theirs.returncode, (ours.stderr, theirs.stderr)
    assert ours.stdout == theirs.stdout
    assert "Traceback" not in ours.stderr


def corpus_pubs() -> list[Path]:
    files = sorted(SSHKEY.glob("*.pub")) + sorted((TESTDATA / "regress").glob("*.pub"))
    return [f for f in files if "mldsa" not in f.name]


# -- -l / -B ------------------------------------------------------------------------------


@pytest.mark.parametrize("pub", corpus_pubs(), ids=lambda p: p.name)
def test_fingerprint_corpus(pub: Path) -> None:
    assert_same(["-l", "-f", str(pub)])
    assert_same(["-B", "-f", str(pub)])


@pytest.mark.parametrize("hash_name", ["md5", "sha1", "sha256", "sha384", "sha512"])
def test_fingerprint_hashes_and_randomart(hash_name: str) -> None:
    for pub in corpus_pubs():
        assert_same(["-l", "-v", "-E", hash_name, "-f", str(pub)])


def test_fingerprint_known_hosts_file() -> None:
    assert_same(["-l", "-f", str(TESTDATA / "hostkeys" / "known_hosts")])


def test_fingerprint_authorized_keys_with_options(tmp_path: Path) -> None:
    lines = []
    for i, pub in enumerate(corpus_pubs()[:6]):
        text = pub.read_text().strip()
        prefix = ['command="echo a b" ', "no-pty,from=\"10.0.0.0/8\" ", "", "restrict "][i % 4]
        lines.append(prefix + text)
    lines += ["# comment", "", "garbage line here", "1024 35 12345 ssh1 key"]
    ak = tmp_path / "authorized_keys"
    ak.write_text("\n".join(lines) + "\n")
    assert_same(["-l", "-f", str(ak)])
    assert_same(["-l", "-f", "-"], input=ak.read_text())


def test_fingerprint_private_files(tmp_path: Path) -> None:
    for name in ["ed25519_1", "ecdsa_1", "rsa_1", "ed25519_1_pw", "rsa_n", "ecdsa_n_pw"]:
        key = private_copy(SSHKEY / name, tmp_path)
        assert_same(["-l", "-f", str(key)])  # no .pub beside it
        pub = SSHKEY / (name.removesuffix("_pw") + ".pub")
        if pub.exists():
            (tmp_path / (name + ".pub")).write_bytes(pub.read_bytes())
            assert_same(["-l", "-f", str(key)])


def test_fingerprint_not_a_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_text("hello world\n")
    ours, theirs = both(["-l", "-f", str(bad)])
    assert ours.returncode == theirs.returncode == 255
    assert ours.stderr.strip() == theirs.stderr.strip()


# -- -y -------------------------------------------------------------------------------------


PRIVATES = ["ed25519_1", "ed25519_2", "ecdsa_1", "ecdsa_2", "ecdsa_n", "rsa_1", "rsa_2", "rsa_n",
            "ed25519_sk1", "ecdsa_sk1"]
ENCRYPTED = ["ed25519_1_pw", "ecdsa_1_pw", "ecdsa_n_pw", "rsa_1_pw", "rsa_n_pw",
             "ed25519_sk1_pw", "ecdsa_sk1_pw"]


@pytest.mark.parametrize("name", PRIVATES)
def test_print_public(name: str, tmp_path: Path) -> None:
    key = private_copy(SSHKEY / name, tmp_path)
    assert_same(["-y", "-f", str(key)])


@pytest.mark.parametrize("name", ENCRYPTED)
def test_print_public_encrypted(name: str, tmp_path: Path) -> None:
    key = private_copy(SSHKEY / name, tmp_path)
    assert_same(["-y", "-P", PASSWORD, "-f", str(key)])
    ours, theirs = both(["-y", "-P", "wrong", "-f", str(key)])
    assert ours.returncode == theirs.returncode == 255
    assert ours.stderr.strip() == theirs.stderr.strip()


# -- generation -----------------------------------------------------------------------------


def _shape(text: str) -> list[str]:
    """Output lines with key-dependent parts (fingerprint, randomart, path) blanked."""
    out = []
    for line in text.splitlines():
        line = re.sub(r"SHA256:[A-Za-z0-9+/]{43}", "FP", line)
        if line.startswith("|") and line.endswith("|"):
            line = "|ART|"
        out.append(line)
    return out


@pytest.mark.parametrize(
    "args",
    [
        ["-t", "ed25519"],
        ["-t", "ecdsa"],
        ["-t", "ecdsa", "-b", "384"],
        ["-t", "ecdsa", "-b", "521"],
        ["-t", "rsa", "-b", "1024"],
        ["-t", "ed25519", "-N", "secret", "-a", "2"],
        ["-t", "ed25519", "-N", "secret", "-a", "2", "-Z", "chacha20-poly1305@openssh.com"],
        ["-t", "ecdsa", "-N", "secret", "-a", "2", "-Z", "aes128-cbc"],
        ["-t", "ecdsa", "-m", "PEM"],
        ["-t", "rsa", "-b", "1024", "-m", "PKCS8", "-N", "secret"],
        ["-t", "ecdsa", "-b", "384", "-m", "PEM", "-N", "secret"],
    ],
    ids=lambda a: " ".join(a),
)
def test_generate_matches_ssh_keygen(args: list[str], tmp_path: Path) -> None:
    ours_dir, theirs_dir = tmp_path / "ours", tmp_path / "theirs"
    ours_dir.mkdir()
    theirs_dir.mkdir()
    full = [*args, "-C", "test comment", "-f", "key"]
    if "-N" not in args:
        full += ["-N", ""]
    ours = run([*PYKEYGEN, *full], cwd=ours_dir)
    theirs = run([keygen(), *full], cwd=theirs_dir)
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    assert _shape(ours.stdout) == _shape(theirs.stdout)
    assert (ours_dir / "key").stat().st_mode & 0o777 == 0o600
    assert (ours_dir / "key.pub").stat().st_mode & 0o777 == 0o644
    # ssh-keygen reads what we wrote, and its fingerprint and randomart are ours.
    pw = args[args.index("-N") + 1] if "-N" in args else ""
    derived = run([keygen(), "-y", "-P", pw, "-f", "key"], cwd=ours_dir)
    assert derived.returncode == 0, derived.stderr
    assert derived.stdout.split()[:2] == (ours_dir / "key.pub").read_text().split()[:2]
    listing = run([keygen(), "-lv", "-f", "key.pub"], cwd=ours_dir).stdout.splitlines()
    fp_line = listing[0].split()[1]
    assert f"{fp_line} test comment" in ours.stdout
    assert "\n".join(listing[1:]) in ours.stdout
    # and we read what ssh-keygen wrote
    again = run([*PYKEYGEN, "-y", "-P", pw, "-f", "key"], cwd=theirs_dir)
    assert again.returncode == 0, again.stderr
    assert again.stdout.split()[:2] == (theirs_dir / "key.pub").read_text().split()[:2]


@pytest.mark.parametrize(
    "args",
    [["-t", "dsa"], ["-t", "foo"], ["-t", "rsa", "-b", "512"], ["-t", "ecdsa", "-b", "123"],
     ["-b", "x"], ["-a", "0"], ["-Z", "nope"], ["-E", "sha3"], ["-m", "weird"],
     ["-t", "ecdsa", "-m", "PEM", "-N", "four"]],
)
def test_generate_bad_arguments(args: list[str], tmp_path: Path) -> None:
    full = [*args, "-f", "k"] + ([] if "-N" in args else ["-N", ""])
    ours = run([*PYKEYGEN, *full], cwd=tmp_path)
    theirs_dir = tmp_path / "t"
    theirs_dir.mkdir()
    theirs = run([keygen(), *full], cwd=theirs_dir)
    if args == ["-t", "dsa"] and theirs.returncode == 0:
        # OpenSSH before 10 still makes DSA keys; like OpenSSH 10 we refuse.
        assert ours.returncode == 255
    else:
        assert ours.returncode == theirs.returncode
        assert ours.stderr.strip() == theirs.stderr.strip().replace("ssh-keygen", "pykeygen")
    assert "Traceback" not in ours.stderr
    assert not (tmp_path / "k").exists()


def test_overwrite_refused_without_answer(tmp_path: Path) -> None:
    (tmp_path / "k").write_text("precious")
    ours = run([*PYKEYGEN, "-t", "ed25519", "-N", "", "-f", "k"], cwd=tmp_path)
    theirs_dir = tmp_path / "t"
    theirs_dir.mkdir()
    (theirs_dir / "k").write_text("precious")
    theirs = run([keygen(), "-t", "ed25519", "-N", "", "-f", "k"], cwd=theirs_dir)
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout)
    assert (tmp_path / "k").read_text() == "precious"
    ours = run([*PYKEYGEN, "-t", "ed25519", "-N", "", "-f", "k"], cwd=tmp_path, input="y\n")
    assert ours.returncode == 0
    assert (tmp_path / "k").read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")


# -- -p / -c ----------------------------------------------------------------------------------


def _twin_keys(tmp_path: Path, args: list[str]) -> tuple[Path, Path]:
    """One ssh-keygen key, copied into two directories."""
    src = tmp_path / "src"
    src.mkdir()
    done = run([keygen(), "-q", *args, "-C", "twin", "-f", str(src / "key")])
    assert done.returncode == 0, done.stderr
    dirs = []
    for name in ("ours", "theirs"):
        d = tmp_path / name
        d.mkdir()
        for f in ("key", "key.pub"):
            (d / f).write_bytes((src / f).read_bytes())
        (d / "key").chmod(0o600)
        dirs.append(d)
    return dirs[0], dirs[1]


@pytest.mark.parametrize(
    "gen,change",
    [
        (["-t", "ed25519", "-N", ""], ["-N", "newpass", "-a", "3"]),
        (["-t", "ecdsa", "-N", "old", "-a", "2"], ["-P", "old", "-N", ""]),
        (["-t", "ecdsa", "-N", "oldpass", "-m", "PEM"], ["-P", "oldpass", "-N", "n2", "-a", "2"]),
        (["-t", "rsa", "-b", "1024", "-N", ""], ["-N", "newpass", "-m", "PKCS8"]),
        (["-t", "ed25519", "-N", "old", "-a", "2"], ["-P", "old", "-N", "x", "-a", "2",
                                                     "-Z", "aes256-gcm@openssh.com"]),
    ],
)
def test_change_passphrase(gen: list[str], change: list[str], tmp_path: Path) -> None:
    ours_dir, theirs_dir = _twin_keys(tmp_path, gen)
    ours = run([*PYKEYGEN, "-p", *change, "-f", "key"], cwd=ours_dir)
    theirs = run([keygen(), "-p", *change, "-f", "key"], cwd=theirs_dir)
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), ours.stderr
    new = change[change.index("-N") + 1]
    check = run([keygen(), "-y", "-P", new, "-f", "key"], cwd=ours_dir)
    assert check.returncode == 0, check.stderr
    assert check.stdout.split()[:2] == (ours_dir / "key.pub").read_text().split()[:2]
    assert (ours_dir / "key").stat().st_mode & 0o777 == 0o600


def test_change_passphrase_wrong_old_keeps_file(tmp_path: Path) -> None:
    ours_dir, theirs_dir = _twin_keys(tmp_path, ["-t", "ed25519", "-N", "old", "-a", "2"])
    before = hashlib.sha256((ours_dir / "key").read_bytes()).hexdigest()
    ours = run([*PYKEYGEN, "-p", "-P", "bad", "-N", "x", "-f", "key"], cwd=ours_dir)
    theirs = run([keygen(), "-p", "-P", "bad", "-N", "x", "-f", "key"], cwd=theirs_dir)
    assert ours.returncode == theirs.returncode == 255
    assert ours.stderr.strip() == theirs.stderr.strip()
    assert hashlib.sha256((ours_dir / "key").read_bytes()).hexdigest() == before


@pytest.mark.parametrize("comment", ["brand new", "", "twin"])
def test_change_comment(comment: str, tmp_path: Path) -> None:
    ours_dir, theirs_dir = _twin_keys(tmp_path, ["-t", "ed25519", "-N", "pw", "-a", "2"])
    args = ["-c", "-P", "pw", "-C", comment, "-f", "key"]
    ours = run([*PYKEYGEN, *args], cwd=ours_dir)
    theirs = run([keygen(), *args], cwd=theirs_dir)
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), ours.stderr
    assert (ours_dir / "key.pub").read_text() == (theirs_dir / "key.pub").read_text()
    assert_same(["-l", "-f", str(ours_dir / "key")])
    y_ours = run([keygen(), "-y", "-P", "pw", "-f", "key"], cwd=ours_dir)
    y_theirs = run([keygen(), "-y", "-P", "pw", "-f", "key"], cwd=theirs_dir)
    assert y_ours.stdout == y_theirs.stdout


# -- -e / -i ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["RFC4716", "PKCS8", "PEM"])
@pytest.mark.parametrize("name", ["rsa_1.pub", "ecdsa_1.pub", "ecdsa_2.pub", "ed25519_1.pub"])
def test_export(fmt: str, name: str) -> None:
    args = ["-e", "-m", fmt, "-f", str(SSHKEY / name)]
    ours, theirs = both(args)
    assert ours.returncode == theirs.returncode
    assert ours.stdout == theirs.stdout
    assert "Traceback" not in ours.stderr


@pytest.mark.parametrize("fmt", ["RFC4716", "PKCS8", "PEM"])
@pytest.mark.parametrize("name", ["rsa_1.pub", "ecdsa_1.pub", "ecdsa_2.pub"])
def test_import_what_ssh_keygen_exports(fmt: str, name: str, tmp_path: Path) -> None:
    exported = run([keygen(), "-e", "-m", fmt, "-f", str(SSHKEY / name)])
    if exported.returncode != 0:
        pytest.skip(f"ssh-keygen cannot export {name} as {fmt}")
    f = tmp_path / "exported"
    f.write_text(exported.stdout)
    assert_same(["-i", "-m", fmt, "-f", str(f)])


def test_import_ssh2_private() -> None:
    assert_same(["-i", "-f", str(TESTDATA / "regress" / "rsa_ssh2.prv")])


# -- bad input ------------------------------------------------------------------------------


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    good = (SSHKEY / "ed25519_1").read_bytes()
    files = {
        "empty": b"",
        "garbage": b"this is not a key\n",
        "truncated": good[: len(good) // 2],
        "corrupt": good.replace(b"AAAA", b"AbAA", 1),
        "binary": bytes(range(256)),
    }
    out = {}
    for name, data in files.items():
        p = tmp_path / name
        p.write_bytes(data)
        p.chmod(0o600)
        out[name] = p
    out["missing"] = tmp_path / "missing"
    out["directory"] = tmp_path
    return out


@pytest.mark.parametrize("op", [["-y"], ["-l"], ["-p", "-N", "x"], ["-c", "-C", "x"], ["-e"],
                                ["-B"]])
def test_bad_input_is_one_line_error(op: list[str], tmp_path: Path) -> None:
    for name, path in _bad_files(tmp_path).items():
        before = path.read_bytes() if path.is_file() else None
        ours = run([*PYKEYGEN, *op, "-f", str(path)])
        theirs = run([keygen(), *op, "-f", str(path)])
        assert ours.returncode != 0, name
        assert (ours.returncode == 0) == (theirs.returncode == 0), name
        assert "Traceback" not in ours.stderr, name
        assert len(ours.stderr.strip().splitlines()) >= 1, name
        if before is not None:
            assert path.read_bytes() == before, name


def test_unprotected_private_key_refused(tmp_path: Path) -> None:
    key = private_copy(SSHKEY / "ed25519_1", tmp_path)
    key.chmod(0o644)
    ours, theirs = both(["-y", "-f", str(key)])
    assert ours.returncode == theirs.returncode == 255
    assert ours.stdout == theirs.stdout == ""
    assert ours.stderr.replace("\r", "") == theirs.stderr.replace("\r", "")


def test_passphrase_read_from_stdin_without_terminal(tmp_path: Path) -> None:
    """No terminal and no askpass: both tools prompt on stderr and read stdin."""
    made = run([keygen(), "-q", "-t", "ed25519", "-N", "secretpw", "-a", "2", "-C", "c",
                "-f", str(tmp_path / "k")])
    assert made.returncode == 0
    ours, theirs = both(["-y", "-f", str(tmp_path / "k")], input="secretpw\n")
    assert ours.returncode == theirs.returncode == 0
    assert ours.stdout == theirs.stdout
    ours, theirs = both(["-y", "-f", str(tmp_path / "k")], input="wrong\n")
    assert ours.returncode == theirs.returncode == 255
    assert ours.stdout == theirs.stdout == ""
