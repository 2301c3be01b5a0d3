"""pykeygen -F/-R/-H against the real ssh-keygen on copies of the same known_hosts files.

stdout, stderr (OpenSSH ends its log lines with "\\r\\n"; compared without the "\\r"),
exit status and the rewritten files must agree. Hashed output has random salts, so
each ``|1|salt|hash`` is checked by re-hashing the name it stands for with its salt.
"""

from __future__ import annotations

import hmac
import os
import shutil
import sys
from base64 import b64decode
from pathlib import Path

import pytest

from keytools.cli import keygen_hosts
from keytools.cli.pykeygen import main
from tests.helpers import TESTDATA, run

KNOWN_HOSTS = TESTDATA / "hostkeys" / "known_hosts"
PYKEYGEN = [sys.executable, "-m", "keytools.cli.pykeygen"]
BAD_LINES = (37, 38, 39, 41)  # what ssh-keygen -R/-H call invalid in the corpus file
HOSTS = [
    "sisyphus.example.com",
    "prometheus.example.com",
    "SISYPHUS.Example.COM",
    "192.0.2.1",
    "2001:db8::1",
    "foo.example.com",
    "192.0.2.99",
    "2001:1",
    "nothere.example.org",
    "[h.example.com]:2222",
    "[10.0.0.1]:2222",
    "h2",
    "x.example.org",
    "bad.example.org",
    "hashed.example.net",
    "[hashed.example.net]:2022",
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, ssh_keygen: str) -> dict[str, Path]:
    """corpus: the corpus file; good: without its broken lines plus ports, negation and
    hashed entries (hashed by the real ssh-keygen)."""
    base = tmp_path_factory.mktemp("kh")
    corpus = base / "corpus"
    corpus.write_bytes(KNOWN_HOSTS.read_bytes())
    key = (TESTDATA / "hostkeys" / "ed25519_6.pub").read_text().split()[:2]
    key_text = " ".join(key)
    extra = base / "extra"
    extra.write_text(f"hashed.example.net {key_text}\n[hashed.example.net]:2022 {key_text}\n")
    hashed = run([ssh_keygen, "-H", "-f", str(extra)])
    assert hashed.returncode == 0, hashed.stderr
    lines = KNOWN_HOSTS.read_text().splitlines()
    kept = [line for number, line in enumerate(lines, 1) if number not in BAD_LINES]
    kept += [
        f"[h.example.com]:2222 {key_text} port entry",
        f"[10.0.0.1]:2222,h2 {key_text}",
        f"*.example.org,!bad.example.org {key_text}",
        "\t  # indented comment",
        *extra.read_text().splitlines(),
        f"@cert-authority [h.example.com]:* {key_text}",
    ]
    good = base / "good"
    good.write_text("\n".join(kept) + "\n")
    return {"corpus": corpus, "good": good}


def _names(path: Path) -> list[str]:
    """Every clear host name in a file, for matching hashed lines back to names."""
    names = {"hashed.example.net", "[hashed.example.net]:2022"}
    for line in path.read_text().splitlines():
        fields = line.split()
        if fields and not line.lstrip().startswith(("#", "@", "|")):
            names.update(n.lower() for n in fields[0].split(","))
    return sorted(names)


def _rehash(field: str, name: str) -> bool:
    parts = field.split("|")
    if len(parts) != 4 or parts[1] != "1":
        return False
    digest = hmac.digest(b64decode(parts[2]), name.encode(), "sha1")
    return hmac.compare_digest(digest, b64decode(parts[3]))


def _same_hashed_text(ours: str, theirs: str, names: list[str]) -> None:
    """Line by line equal, except that hashed names must hash the same name."""
    ours_lines, theirs_lines = ours.splitlines(), theirs.splitlines()
    assert len(ours_lines) == len(theirs_lines)
    for mine, real in zip(ours_lines, theirs_lines, strict=True):
        if mine == real:
            continue
        m_field, _, m_rest = mine.partition(" ")
        r_field, _, r_rest = real.partition(" ")
        assert m_rest == r_rest, (mine, real)
        name = next(n for n in names if _rehash(r_field, n))
        assert _rehash(m_field, name), (mine, name)


def _pair(tmp_path: Path, source: Path) -> tuple[Path, Path]:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    for d in (ours, theirs):
        shutil.copyfile(source, d / "known_hosts")
        (d / "known_hosts").chmod(0o640)
    return ours / "known_hosts", theirs / "known_hosts"


def _ours(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _theirs(ssh_keygen: str, args: list[str]) -> tuple[int, str, str]:
    done = run([ssh_keygen, *args])
    err = done.stderr.replace("\r\n", "\n").replace("ssh-keygen", "pykeygen")
    return done.returncode, done.stdout, err


def _compare(capsys: pytest.CaptureFixture[str], ssh_keygen: str, ours_file: Path,
             theirs_file: Path, args: list[str]) -> tuple[tuple[int, str, str], ...]:
    mine = _ours(capsys, [*args, "-f", str(ours_file)])
    real = _theirs(ssh_keygen, [*args, "-f", str(theirs_file)])
    swap = str(theirs_file)
    real = (real[0], real[1].replace(swap, str(ours_file)), real[2].replace(swap,
                                                                            str(ours_file)))
    return mine, real


@pytest.mark.parametrize("which", ["corpus", "good"])
@pytest.mark.parametrize("extra", [[], ["-l"], ["-l", "-E", "md5"], ["-q"], ["-l", "-v"]])
def test_find_host(files: dict[str, Path], which: str, extra: list[str],
                   capsys: pytest.CaptureFixture[str], ssh_keygen: str) -> None:
    path = files[which]
    for host in HOSTS:
        mine = _ours(capsys, ["-F", host, *extra, "-f", str(path)])
        real = _theirs(ssh_keygen, ["-F", host, *extra, "-f", str(path)])
        assert mine[:2] == real[:2], host
        if "-v" not in extra:
            assert mine[2] == real[2], host


def test_find_host_hashed_output(files: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                 ssh_keygen: str) -> None:
    for which in ("corpus", "good"):
        path = files[which]
        names = _names(path)
        for host in HOSTS:
            mine = _ours(capsys, ["-F", host, "-H", "-f", str(path)])
            real = _theirs(ssh_keygen, ["-F", host, "-H", "-f", str(path)])
            assert (mine[0], mine[2]) == (real[0], real[2]), host
            _same_hashed_text(mine[1], real[1], names)


@pytest.mark.parametrize("host", HOSTS)
def test_remove_host(files: dict[str, Path], host: str, tmp_path: Path,
                     capsys: pytest.CaptureFixture[str], ssh_keygen: str) -> None:
    ours, theirs = _pair(tmp_path, files["good"])
    mine, real = _compare(capsys, ssh_keygen, ours, theirs, ["-R", host])
    assert mine == real
    assert ours.read_bytes() == theirs.read_bytes()
    assert os.stat(ours).st_mode == os.stat(theirs).st_mode
    old_ours, old_theirs = Path(f"{ours}.old"), Path(f"{theirs}.old")
    assert old_ours.exists() == old_theirs.exists()
    if old_theirs.exists():
        assert old_ours.read_bytes() == old_theirs.read_bytes() == files["good"].read_bytes()
    assert sorted(p.name for p in ours.parent.iterdir()) == \
        sorted(p.name for p in theirs.parent.iterdir())


def test_invalid_files_are_refused(files: dict[str, Path], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str],
                                   ssh_keygen: str) -> None:
    for args in (["-R", "sisyphus.example.com"], ["-R", "nothere"], ["-H"],
                 ["-R", "prometheus.example.com", "-H"]):
        work = tmp_path / "_".join(args).replace("-", "")
        work.mkdir()
        ours, theirs = _pair(work, files["corpus"])
        mine, real = _compare(capsys, ssh_keygen, ours, theirs, args)
        assert mine == real, args
        assert "is not a valid known_hosts file." in mine[2]
        assert ours.read_bytes() == KNOWN_HOSTS.read_bytes()
        assert sorted(p.name for p in ours.parent.iterdir()) == ["known_hosts"]


def test_hash_in_place(files: dict[str, Path], tmp_path: Path,
                       capsys: pytest.CaptureFixture[str], ssh_keygen: str) -> None:
    ours, theirs = _pair(tmp_path, files["good"])
    mine, real = _compare(capsys, ssh_keygen, ours, theirs, ["-H"])
    assert mine == real
    assert "ignoring host name with wildcard" in mine[2]
    assert "WARNING: " in mine[2] and f"{ours}.old" in mine[1]
    _same_hashed_text(ours.read_text(), theirs.read_text(), _names(files["good"]))
    assert Path(f"{ours}.old").read_bytes() == files["good"].read_bytes()
    assert os.stat(ours).st_mode == os.stat(theirs).st_mode
    # a second pass has nothing left to hash: the file is rewritten the same
    again = _compare(capsys, ssh_keygen, ours, theirs, ["-H"])
    assert again[0] == again[1]
    _same_hashed_text(ours.read_text(), theirs.read_text(), _names(files["good"]))


def test_find_and_remove_together(files: dict[str, Path], tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str], ssh_keygen: str) -> None:
    for n, args in enumerate((["-F", "prometheus.example.com", "-R", "192.0.2.1"],
                              ["-R", "prometheus.example.com", "-H"])):
        work = tmp_path / str(n)
        work.mkdir()
        ours, theirs = _pair(work, files["good"])
        mine, real = _compare(capsys, ssh_keygen, ours, theirs, args)
        assert mine == real, args
        assert ours.read_bytes() == theirs.read_bytes()


def test_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], ssh_keygen: str) -> None:
    missing = str(tmp_path / "missing")
    for args in (["-F", "h", "-f", missing], ["-R", "h", "-f", missing],
                 ["-F", "h", "-f", str(tmp_path)]):
        assert _ours(capsys, args) == _theirs(ssh_keygen, args), args
    # refused before any work; the usage text that follows is pykeygen's own
    for args in (["-l", "-R", "h", "-f", missing], ["-H", "-l", "-f", missing]):
        mine, real = _ours(capsys, args), _theirs(ssh_keygen, args)
        assert mine[:2] == real[:2]
        assert mine[2].splitlines()[0] == real[2].splitlines()[0] == \
            "Cannot use -l with -H or -R."


def test_default_file_is_in_the_password_database_home(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    ssh_dir = tmp_path / "home" / ".ssh"
    ssh_dir.mkdir(parents=True)
    shutil.copyfile(files["good"], ssh_dir / "known_hosts")
    monkeypatch.setattr(keygen_hosts, "user_ssh_dir", lambda: str(ssh_dir))
    code, out, _ = _ours(capsys, ["-F", "sisyphus.example.com"])
    assert code == 0 and "# Host sisyphus.example.com found: line 2 \n" in out
    code, out, err = _ours(capsys, ["-R", "sisyphus.example.com"])
    assert code == 0
    assert out.endswith(f"{ssh_dir}/known_hosts updated.\n"
                        f"Original contents retained as {ssh_dir}/known_hosts.old\n")
    code, out, err = _ours(capsys, ["-F", "nothere"])
    assert (code, out) == (1, "")
    code, out, err = _ours(capsys, ["-R", "nothere"])
    assert (code, err) == (0, f"Host nothere not found in {ssh_dir}/known_hosts\n")


def test_command_line_process(files: dict[str, Path], ssh_keygen: str) -> None:
    """The installed entry point path: a real process, real exit status."""
    args = ["-F", "192.0.2.1", "-l", "-f", str(files["corpus"])]
    mine = run([*PYKEYGEN, *args])
    real = run([ssh_keygen, *args])
    assert (mine.returncode, mine.stdout) == (real.returncode, real.stdout)
