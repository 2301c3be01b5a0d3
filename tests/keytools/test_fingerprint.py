"""Fingerprints, randomart and bubblebabble against the corpus answers and the real ssh-keygen."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from keytools.bubblebabble import bubblebabble
from keytools.errors import InvalidArgument
from keytools.fingerprint import DIGEST_NAMES, fingerprint, fingerprint_raw, parse_hash_name
from keytools.public import PublicKey, parse_public_line, type_label
from keytools.randomart import randomart
from tests.helpers import TESTDATA, run, tool_path

HASHES = tuple(DIGEST_NAMES)
SSHKEY = TESTDATA / "sshkey"
REGRESS = TESTDATA / "regress"


@dataclass(frozen=True)
class Listed:
    path: Path
    key: PublicKey
    comment: str


def _corpus_pub_files() -> list[Path]:
    """Every OpenSSH public key or certificate file in the corpus we can parse."""
    files: list[Path] = []
    for sub in ("sshkey", "regress", "sshsig", "krl"):
        for path in sorted((TESTDATA / sub).glob("*.pub")):
            if "mldsa" in path.name or ".param." in path.name:
                continue
            files.append(path)
    return files


def _load(path: Path) -> Listed:
    key, comment = parse_public_line(path.read_text())
    return Listed(path, key, comment)


CORPUS = [_load(p) for p in _corpus_pub_files()]


def _fp_cases() -> list[str]:
    return sorted(
        p.name[: -len(".fp")] for p in SSHKEY.glob("*.fp") if not p.name.startswith("mldsa")
    )


def test_corpus_is_there() -> None:
    assert len(CORPUS) > 20
    assert len(_fp_cases()) >= 14


@pytest.mark.parametrize("name", _fp_cases())
def test_sha256_matches_fp_file(name: str) -> None:
    """``X.fp``/``X-cert.fp`` hold the SHA256 fingerprint of ``X.pub``/``X-cert.pub``."""
    key, _ = parse_public_line((SSHKEY / f"{name}.pub").read_text())
    expected = (SSHKEY / f"{name}.fp").read_text().strip()
    assert fingerprint(key) == expected
    assert fingerprint(key, "sha256") == expected


@pytest.mark.parametrize(
    "name",
    sorted(p.name[: -len(".fp.bb")] for p in SSHKEY.glob("*.fp.bb") if "mldsa" not in p.name),
)
def test_bubblebabble_matches_bb_file(name: str) -> None:
    key, _ = parse_public_line((SSHKEY / f"{name}.pub").read_text())
    assert bubblebabble(key) == (SSHKEY / f"{name}.fp.bb").read_text().strip()


def test_regress_answers() -> None:
    key, _ = parse_public_line((REGRESS / "rsa_openssh.pub").read_text())
    assert fingerprint(key, "md5") == (REGRESS / "t4.ok").read_text().strip()
    assert bubblebabble(key) == (REGRESS / "t5.ok").read_text().strip()
    assert fingerprint(key, "sha256") == (REGRESS / "t11.ok").read_text().strip()


def test_certificate_fingerprints_as_plain_key() -> None:
    cert, _ = parse_public_line((SSHKEY / "ed25519_1-cert.pub").read_text())
    plain, _ = parse_public_line((SSHKEY / "ed25519_1.pub").read_text())
    assert cert.is_certificate
    for name in HASHES:
        assert fingerprint_raw(cert, name) == fingerprint_raw(plain, name)
    assert bubblebabble(cert) == bubblebabble(plain)


@pytest.mark.parametrize("name", ["md5", "MD5", "Sha1", "SHA256", "sha384", "sHa512"])
def test_parse_hash_name_accepts(name: str, tmp_path: Path) -> None:
    keygen = tool_path("ssh-keygen")
    assert parse_hash_name(name) == name.lower()
    proc = run([keygen, "-E", name, "-l", "-f", SSHKEY / "ed25519_1.pub"])
    assert proc.returncode == 0
    key, _ = parse_public_line((SSHKEY / "ed25519_1.pub").read_text())
    assert proc.stdout.split()[1] == fingerprint(key, name)


@pytest.mark.parametrize("name", ["foo", "sha224", "", "sha-256", "SHA 256", "md5 "])
def test_parse_hash_name_rejects_like_ssh_keygen(name: str) -> None:
    keygen = tool_path("ssh-keygen")
    proc = run([keygen, "-E", name, "-l", "-f", SSHKEY / "ed25519_1.pub"])
    assert proc.returncode == 255
    with pytest.raises(InvalidArgument) as info:
        parse_hash_name(name)
    assert str(info.value) == proc.stderr.strip()
    with pytest.raises(InvalidArgument):
        fingerprint(CORPUS[0].key, name)


# ---------------------------------------------------------------- against ssh-keygen -l/-lv


def _listing_fields(item: Listed, hash_name: str) -> tuple[str, str, str]:
    """Bits, fingerprint and ``(TYPE)`` of the ``ssh-keygen -l`` line for a key.

    The comment is left out: ssh-keygen 9.2 carries a comment over to a following key
    that has none when it lists a multi-key file.
    """
    return str(item.key.bits), fingerprint(item.key, hash_name), f"({type_label(item.key)})"


def _compare_with_keygen(items: list[Listed], hash_name: str, tmp_path: Path) -> None:
    """One ``ssh-keygen -lv`` run over all keys; each fingerprint line and picture must match."""
    keygen = tool_path("ssh-keygen")
    combined = tmp_path / "keys.pub"
    combined.write_text("".join(item.path.read_text().splitlines()[0] + "\n" for item in items))
    proc = run([keygen, "-lv", "-E", hash_name, "-f", combined])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 12 * len(items)
    for i, item in enumerate(items):
        chunk = lines[12 * i : 12 * (i + 1)]
        fields = chunk[0].split(" ")
        got = (fields[0], fields[1], fields[-1])
        assert got == _listing_fields(item, hash_name), item.path.name
        assert "\n".join(chunk[1:]) == randomart(item.key, hash_name), item.path.name


@pytest.mark.parametrize("hash_name", HASHES)
def test_corpus_against_ssh_keygen(hash_name: str, tmp_path: Path) -> None:
    _compare_with_keygen(CORPUS, hash_name, tmp_path)


def test_corpus_bubblebabble_against_ssh_keygen(tmp_path: Path) -> None:
    keygen = tool_path("ssh-keygen")
    for item in CORPUS:
        proc = run([keygen, "-B", "-f", item.path])
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split()[1] == bubblebabble(item.key), item.path.name


#: (ssh-keygen -t, -b) of the freshly made keys; RSA kept to two sizes (keygen is slow).
FRESH_TYPES = [
    ("ed25519", None),
    ("ecdsa", "256"),
    ("ecdsa", "384"),
    ("ecdsa", "521"),
    ("rsa", "1024"),
    ("rsa", "3072"),
    ("dsa", "1024"),
]


@pytest.fixture(scope="module")
def fresh_keys(tmp_path_factory: pytest.TempPathFactory) -> list[Listed]:
    """Newly generated keys of each type, and certificates of them signed by an Ed25519 CA."""
    keygen = tool_path("ssh-keygen")
    work = tmp_path_factory.mktemp("fresh")
    ca = work / "ca"
    proc = run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", "ca", "-f", ca])
    assert proc.returncode == 0, proc.stderr
    items: list[Listed] = []
    for kind, bits in FRESH_TYPES:
        path = work / f"{kind}{bits or ''}"
        cmd: list[str | Path] = [keygen, "-q", "-t", kind, "-N", "", "-C", f"fresh {kind}",
                                 "-f", path]
        if bits:
            cmd += ["-b", bits]
        proc = run(cmd)
        if proc.returncode != 0:
            assert kind == "dsa", proc.stderr  # OpenSSH 10 dropped DSA
            continue
        pub = path.with_name(path.name + ".pub")
        items.append(_load(pub))
        proc = run([keygen, "-q", "-s", ca, "-I", "id", "-n", "u", pub])
        if proc.returncode == 0:
            items.append(_load(path.with_name(path.name + "-cert.pub")))
        else:
            assert kind == "dsa", proc.stderr
    return items


@pytest.mark.parametrize("hash_name", HASHES)
def test_fresh_keys_against_ssh_keygen(
    fresh_keys: list[Listed], hash_name: str, tmp_path: Path
) -> None:
    labels = {type_label(item.key) for item in fresh_keys}
    assert {"ED25519", "ECDSA", "RSA", "RSA-CERT", "ECDSA-CERT", "ED25519-CERT"} <= labels
    _compare_with_keygen(fresh_keys, hash_name, tmp_path)


def test_randomart_shape() -> None:
    art = randomart(CORPUS[0].key).split("\n")
    assert len(art) == 11
    assert all(len(line) == 19 for line in art)
    assert art[-1] == "+----[SHA256]-----+"
    assert sum(line.count("S") for line in art[1:-1]) <= 1
