"""PuTTY .ppk files (v2 and v3) against Debian's ``puttygen`` and the real ``ssh-keygen``.

puttygen-made files must decode to the key puttygen reports (``-L``, private-openssh-new);
our files must be read by puttygen and give the public key ``ssh-keygen -y`` derives from
puttygen's OpenSSH export. Where puttygen's output is deterministic (no Argon2 salt) ours
must match it byte for byte. Only the puttygen legs skip when it is not installed.
Argon2 costs are kept tiny wherever the test chooses them.
"""

from __future__ import annotations

import functools
import shutil
import sys
from pathlib import Path

import pytest

from keytools.errors import (
    InvalidArgument,
    InvalidFormat,
    KeyTypeMismatch,
    KeyTypeUnknown,
    MacInvalid,
    SshError,
    UnknownCipher,
    WrongPassphrase,
)
from keytools.keyfile import load_private
from keytools.ppk import (
    Argon2Params,
    decode_ppk,
    encode_ppk,
    is_ppk,
    parse_ppk,
    ppk_encrypted,
    ppk_public,
)
from keytools.private import Ed25519Private, PrivateKey, generate
from keytools.public import parse_public_line
from tests.helpers import TESTDATA, private_copy, run, tool_path

PYKEYGEN = [sys.executable, "-m", "keytools.cli.pykeygen"]
PASSPHRASE = "correct horse"
FAST = Argon2Params(memory=8, passes=1)
#: corpus keys: Ed25519 (openssh-key-v1, with comment), P-256, P-521 (PEM), RSA 1024 and 2048
CORPUS = ("sshkey/ed25519_1", "sshkey/ecdsa_n", "sshkey/ecdsa_2", "sshkey/rsa_n", "sshkey/rsa_2")


def _puttygen() -> str:
    path = shutil.which("puttygen")
    if path is None:
        pytest.skip("puttygen not installed (Debian package putty-tools)")
    return path


@functools.cache
def _generated() -> tuple[PrivateKey, ...]:
    return (generate("ed25519"), generate("ecdsa", 256), generate("ecdsa", 384),
            generate("ecdsa", 521))


def _corpus_key(name: str, tmp_path: Path) -> tuple[Path, PrivateKey, str]:
    path = private_copy(name, tmp_path)
    key, comment = load_private(str(path), "")
    return path, key, comment


def _pwfile(tmp_path: Path, secret: str = PASSPHRASE) -> Path:
    path = tmp_path / "pw"
    path.write_text(secret + "\n")
    return path


def _empty(tmp_path: Path) -> Path:
    """A passphrase file holding the empty passphrase (puttygen then writes no encryption)."""
    path = tmp_path / "empty"
    path.write_text("")
    return path


def _public_text(path: Path) -> str:
    """puttygen -L: the OpenSSH public key line with the file's comment."""
    proc = run([_puttygen(), "-L", path])
    assert proc.returncode == 0, proc.stderr
    return str(proc.stdout).strip()


# -------------------------------------------------------------- library only


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("secret", ["", PASSPHRASE])
def test_round_trip(version: int, secret: str) -> None:
    for key in _generated():
        text = encode_ppk(key, "a comment", secret, version, FAST)
        assert is_ppk(text) and is_ppk(text.encode())
        assert ppk_encrypted(text) is bool(secret)
        assert ppk_public(text) == (key.public, "a comment")
        back, comment = decode_ppk(text, secret or None)
        assert comment == "a comment"
        assert back.private_blob() == key.private_blob()


def test_round_trip_rsa_and_corpus(tmp_path: Path) -> None:
    for name in CORPUS:
        _, key, comment = _corpus_key(name, tmp_path)
        for version in (2, 3):
            text = encode_ppk(key, comment, PASSPHRASE.encode(), version, FAST)
            back, found = decode_ppk(text, PASSPHRASE.encode())
            assert (back.private_blob(), found) == (key.private_blob(), comment)


def test_layout_and_defaults() -> None:
    key = _generated()[0]
    lines = encode_ppk(key, "c", PASSPHRASE).splitlines()
    assert lines[:3] == ["PuTTY-User-Key-File-3: ssh-ed25519", "Encryption: aes256-cbc",
                         "Comment: c"]
    assert "Key-Derivation: Argon2id" in lines
    assert "Argon2-Memory: 8192" in lines and "Argon2-Parallelism: 1" in lines
    salt = next(line for line in lines if line.startswith("Argon2-Salt: "))
    assert len(salt.split(": ")[1]) == 32
    assert lines[-1].startswith("Private-MAC: ") and len(lines[-1]) == 13 + 64
    v2 = encode_ppk(key, "c", PASSPHRASE, 2).splitlines()
    assert v2[0] == "PuTTY-User-Key-File-2: ssh-ed25519"
    assert not any(line.startswith(("Key-Derivation", "Argon2")) for line in v2)
    assert len(v2[-1]) == 13 + 40
    plain = encode_ppk(key, "c").splitlines()
    assert plain[1] == "Encryption: none"
    assert not any(line.startswith("Argon2") for line in plain)


@pytest.mark.parametrize("flavour", ["Argon2id", "Argon2i", "Argon2d"])
def test_argon2_flavours(flavour: str) -> None:
    key = _generated()[1]
    params = Argon2Params(flavour, 16, 2, 2, b"0123456789abcdef")
    text = encode_ppk(key, "", "pw", 3, params)
    assert f"Key-Derivation: {flavour}\n" in text
    assert parse_ppk(text).kdf == params
    assert decode_ppk(text, "pw")[0].private_blob() == key.private_blob()
    assert encode_ppk(key, "", "pw", 3, params) == text  # a fixed salt is reproducible


def test_passphrase_errors() -> None:
    key = _generated()[0]
    for version in (2, 3):
        text = encode_ppk(key, "c", PASSPHRASE, version, FAST)
        for wrong in (None, "", "wrong"):
            with pytest.raises(WrongPassphrase):
                decode_ppk(text, wrong)
        # the MAC covers the comment: editing it looks like a wrong passphrase
        with pytest.raises(WrongPassphrase):
            decode_ppk(text.replace("Comment: c", "Comment: d"), PASSPHRASE)
        plain = encode_ppk(key, "c", "", version)
        assert decode_ppk(plain, "ignored")[1] == "c"
        with pytest.raises(MacInvalid):
            decode_ppk(plain.replace("Comment: c", "Comment: d"))


def test_line_endings_and_trailing_text() -> None:
    key = _generated()[2]
    text = encode_ppk(key, "c", PASSPHRASE, 3, FAST)
    for variant in (text.replace("\n", "\r\n"), text.replace("\n", "\r"), text.rstrip("\n"),
                    text + "trailing junk\n"):
        assert decode_ppk(variant, PASSPHRASE)[0].private_blob() == key.private_blob()


def _replace_line(text: str, prefix: str, new: str) -> str:
    lines = text.split("\n")
    index = next(i for i, line in enumerate(lines) if line.startswith(prefix))
    lines[index] = new
    return "\n".join(lines)


def test_malformed_files() -> None:
    key = _generated()[0]
    text = encode_ppk(key, "c", PASSPHRASE, 3, FAST)
    cases: list[tuple[str, type[SshError]]] = [
        ("", InvalidFormat),
        ("hello", InvalidFormat),
        (text.replace("File-3", "File-1"), InvalidFormat),
        (text.replace("File-3", "File-4"), InvalidFormat),
        (text.replace("ssh-ed25519\n", "ssh-ed448\n", 1), KeyTypeUnknown),
        (text.replace("ssh-ed25519\n", "ecdsa-sha2-nistp256\n", 1), KeyTypeMismatch),
        (text.replace("aes256-cbc", "aes128-cbc"), UnknownCipher),
        (text.replace("Argon2id", "scrypt"), UnknownCipher),
        (text.replace("Argon2-Memory: 8", "Argon2-Memory: 4294967296"), InvalidFormat),
        (text.replace("Argon2-Memory: 8", "Argon2-Memory: 8x"), InvalidFormat),
        (text.replace("Argon2-Memory: 8", "Argon2-Memory: 2000000"), InvalidFormat),
        (text.replace("Argon2-Memory: 8", "Argon2-Memory: 7"), InvalidFormat),
        (text.replace("Argon2-Passes: 1", "Argon2-Passes: 0"), InvalidFormat),
        (_replace_line(text, "Argon2-Salt", "Argon2-Salt: 0011"), InvalidFormat),
        (_replace_line(text, "Argon2-Salt", "Argon2-Salt: 0g"), InvalidFormat),
        (text.replace("Public-Lines: 2", "Public-Lines: 1"), InvalidFormat),
        (text.replace("Public-Lines: 2", "Public-Lines: 99999"), InvalidFormat),
        (text.replace("Comment:", "Comment;"), InvalidFormat),
        (text.replace("Encryption: ", "Encryption:"), InvalidFormat),
        (text[: text.index("Private-MAC")], InvalidFormat),
        (text[: text.index("Private-Lines")], InvalidFormat),
        (text.replace("Private-Lines: 1", "Private-Lines: 0"), InvalidFormat),
    ]
    for bad, error in cases:
        with pytest.raises(error):
            decode_ppk(bad, PASSPHRASE)
    with pytest.raises(InvalidFormat):
        decode_ppk(text, PASSPHRASE, max_passes=0)
    with pytest.raises(InvalidFormat):
        decode_ppk("x" * 400_000, PASSPHRASE)


def test_refused_on_encode(tmp_path: Path) -> None:
    key = _generated()[0]
    for comment in ("a\nb", "a\rb", "a\0b"):
        with pytest.raises(InvalidArgument):
            encode_ppk(key, comment)
    with pytest.raises(InvalidArgument):
        encode_ppk(key, "", version=4)
    with pytest.raises(InvalidArgument):
        encode_ppk(key, "", "pw", 3, Argon2Params(memory=8, passes=0))
    sk, _ = load_private(str(private_copy("sshkey/ed25519_sk1", tmp_path)), "")
    with pytest.raises(KeyTypeUnknown):
        encode_ppk(sk, "")


def test_short_ed25519_private() -> None:
    """PuTTY before 0.75 stored the Ed25519 integer without its high zero bytes."""
    import base64

    from cryptography.hazmat.primitives import hashes, hmac

    from keytools.wire import Writer

    key = Ed25519Private.from_seed(bytes(range(1, 31)) + b"\0\0")
    public = key.public.blob()
    short = Writer().string(key.seed[:30]).getvalue()
    mac = hmac.HMAC(b"", hashes.SHA256())  # v3 unencrypted: an empty MAC key
    mac.update(Writer().string("ssh-ed25519").string("none").string("old").string(public)
               .string(short).getvalue())
    text = "".join([
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: old\n",
        "Public-Lines: 2\n", base64.b64encode(public).decode()[:64], "\n",
        base64.b64encode(public).decode()[64:], "\n",
        "Private-Lines: 1\n", base64.b64encode(short).decode(), "\n",
        f"Private-MAC: {mac.finalize().hex()}\n",
    ])
    back, comment = decode_ppk(text)
    assert (back.private_blob(), comment) == (key.private_blob(), "old")


# -------------------------------------------------------------- against puttygen


@pytest.mark.parametrize(
    ("kind", "bits"),
    [("ed25519", 0), ("ecdsa", 256), ("ecdsa", 384), ("ecdsa", 521), ("rsa", 1024),
     ("dsa", 1024)],
)
def test_puttygen_files_read(kind: str, bits: int, tmp_path: Path) -> None:
    """puttygen's v2/v3, plain/encrypted files of one key all give that key."""
    puttygen = _puttygen()
    pw, empty = _pwfile(tmp_path), _empty(tmp_path)
    size = ["-b", str(bits)] if bits else []
    base = tmp_path / "base"  # the key as an OpenSSH file: each .ppk is a conversion
    proc = run([puttygen, "-t", kind, *size, "-C", f"made by puttygen {kind}",
                "-O", "private-openssh-new", "-o", base, "--new-passphrase", empty])
    assert proc.returncode == 0, proc.stderr
    expected = _public_text(base)
    reference = None
    if kind != "dsa":  # OpenSSH 10 has no DSA; puttygen -L is the judge for it
        reference = load_private(str(base), "")[0].private_blob()
    variants: dict[str, tuple[list[str | Path], str | None]] = {
        "v3-plain": (["--new-passphrase", empty], None),
        "v2-plain": (["--new-passphrase", empty, "--ppk-param", "version=2"], None),
        "v2-enc": (["--new-passphrase", pw, "--ppk-param", "version=2"], PASSPHRASE),
        "v3-enc": (["--new-passphrase", pw, "--ppk-param", "memory=64,passes=2"], PASSPHRASE),
    }
    for name, (args, secret) in variants.items():
        path = tmp_path / f"{name}.ppk"
        proc = run([puttygen, base, "-O", "private", "-o", path, *args])
        assert proc.returncode == 0, proc.stderr
        assert path.read_text().startswith(f"PuTTY-User-Key-File-{name[1]}: ")
        key, comment = decode_ppk(path.read_bytes(), secret)
        assert key.public.openssh(comment) == expected == _public_text(path), name
        assert ppk_public(path.read_text()) == (key.public, comment)
        if reference is not None:
            assert key.private_blob() == reference, name


@pytest.mark.parametrize(
    "params", ["kdf=argon2i,memory=64,passes=1", "kdf=argon2d,memory=64,passes=2,parallelism=3"]
)
def test_puttygen_argon2_variants(params: str, tmp_path: Path) -> None:
    puttygen = _puttygen()
    path = tmp_path / "k.ppk"
    proc = run([puttygen, "-t", "ed25519", "-o", path, "--new-passphrase", _pwfile(tmp_path),
                "--ppk-param", params])
    assert proc.returncode == 0, proc.stderr
    kdf = parse_ppk(path.read_text()).kdf
    assert kdf is not None and kdf.flavour.lower() in params
    key, comment = decode_ppk(path.read_text(), PASSPHRASE)
    assert key.public.openssh(comment) == _public_text(path)


def test_puttygen_default_argon2(tmp_path: Path) -> None:
    """A file with puttygen's own time-tuned Argon2id parameters, and its reproduction."""
    puttygen = _puttygen()
    path = tmp_path / "k.ppk"
    proc = run([puttygen, "-t", "ed25519", "-C", "default kdf", "-o", path,
                "--new-passphrase", _pwfile(tmp_path)])
    assert proc.returncode == 0, proc.stderr
    text = path.read_text()
    key, comment = decode_ppk(text, PASSPHRASE)
    assert key.public.openssh(comment) == _public_text(path)
    # Same key, passphrase, salt and Argon2 parameters: byte for byte the same file.
    assert encode_ppk(key, comment, PASSPHRASE, 3, parse_ppk(text).kdf) == text


@pytest.mark.parametrize("name", CORPUS)
def test_puttygen_deterministic_output_matches(name: str, tmp_path: Path) -> None:
    """puttygen converting an OpenSSH key: unencrypted v2/v3 and encrypted v2 are identical."""
    puttygen = _puttygen()
    path, key, comment = _corpus_key(name, tmp_path)
    empty = _empty(tmp_path)
    for version, pwfile, secret in ((3, empty, ""), (2, empty, ""),
                                    (2, _pwfile(tmp_path), PASSPHRASE)):
        out = tmp_path / "out.ppk"
        proc = run([puttygen, path, "-o", out, "--new-passphrase", pwfile,
                    "--ppk-param", f"version={version}"])
        assert proc.returncode == 0, proc.stderr
        theirs = out.read_text()
        # puttygen names PEM keys (no comment) "imported-openssh-key"
        shown = comment if comment or name.endswith("_n") else "imported-openssh-key"
        assert encode_ppk(key, shown, secret, version) == theirs


@pytest.mark.parametrize("name", CORPUS)
@pytest.mark.parametrize("version", [2, 3])
def test_our_files_read_by_puttygen(name: str, version: int, tmp_path: Path) -> None:
    """puttygen opens our file, exports it to OpenSSH, and ssh-keygen -y agrees with us."""
    puttygen = _puttygen()
    _, key, _ = _corpus_key(name, tmp_path)
    pw = _pwfile(tmp_path)
    for secret in ("", PASSPHRASE):
        ppk = tmp_path / "ours.ppk"
        kdf = Argon2Params(memory=32, passes=1) if version == 3 else None
        ppk.write_text(encode_ppk(key, "our comment", secret, version, kdf))
        assert _public_text(ppk) == key.public.openssh("our comment")
        out = tmp_path / "out"
        out.unlink(missing_ok=True)
        proc = run([puttygen, ppk, "-O", "private-openssh", "-o", out, "--old-passphrase", pw,
                    "--new-passphrase", _empty(tmp_path)])
        assert proc.returncode == 0, proc.stderr
        derived = run([tool_path("ssh-keygen"), "-y", "-f", out])
        assert derived.returncode == 0, derived.stderr
        assert parse_public_line(derived.stdout)[0] == key.public


def test_puttygen_refuses_wrong_passphrase_like_us(tmp_path: Path) -> None:
    puttygen = _puttygen()
    key = _generated()[0]
    ppk = tmp_path / "k.ppk"
    ppk.write_text(encode_ppk(key, "c", PASSPHRASE, 3, FAST))
    proc = run([puttygen, ppk, "-O", "private-openssh", "-o", tmp_path / "out",
                "--old-passphrase", _pwfile(tmp_path, "wrong")])
    assert proc.returncode != 0
    with pytest.raises(WrongPassphrase):
        decode_ppk(ppk.read_text(), "wrong")


# -------------------------------------------------------------- pykeygen -i / -e


def _cli_source(maker: str, tmp_path: Path) -> Path:
    """An encrypted P-384 .ppk made by puttygen or by this library."""
    ppk = tmp_path / "k.ppk"
    if maker == "puttygen":
        proc = run([_puttygen(), "-t", "ecdsa", "-b", "384", "-C", "cli test", "-o", ppk,
                    "--new-passphrase", _pwfile(tmp_path), "--ppk-param",
                    "memory=64,passes=1"])
        assert proc.returncode == 0, proc.stderr
    else:
        ppk.write_text(encode_ppk(_generated()[2], "cli test", PASSPHRASE, 3, FAST))
    return ppk


@pytest.mark.parametrize("maker", ["pykeygen", "puttygen"])
def test_cli_import_ppk(maker: str, tmp_path: Path) -> None:
    """-i -m PPK prints an unencrypted OpenSSH private key that ssh-keygen -y reads."""
    ppk = _cli_source(maker, tmp_path)
    public, comment = ppk_public(ppk.read_text())
    ours = run([*PYKEYGEN, "-i", "-m", "PPK", "-f", ppk, "-P", PASSPHRASE])
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.startswith("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    converted = tmp_path / "converted"
    converted.write_text(ours.stdout)
    converted.chmod(0o600)
    derived = run([tool_path("ssh-keygen"), "-y", "-f", converted])
    assert derived.returncode == 0, derived.stderr
    assert derived.stdout.strip() == public.openssh(comment)  # same key and comment
    if maker == "puttygen":
        assert derived.stdout.strip() == _public_text(ppk)

    wrong = run([*PYKEYGEN, "-i", "-m", "ppk", "-f", ppk, "-P", "nope"])
    assert wrong.returncode == 255 and wrong.stdout == ""
    assert wrong.stderr == (f'Load key "{ppk}": incorrect passphrase supplied to decrypt '
                            "private key\n")


def test_cli_import_malformed(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.ppk"
    garbage.write_text("PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n")
    bad = run([*PYKEYGEN, "-i", "-m", "PPK", "-f", garbage])
    assert bad.returncode == 255 and bad.stdout == ""
    assert bad.stderr == f'Load key "{garbage}": invalid format\n'


def _export(fmt: str, source: Path, *extra: str) -> str:
    proc = run([*PYKEYGEN, "-e", "-m", fmt, "-f", source, "-P", _corpus_pw(), *extra])
    assert proc.returncode == 0, proc.stderr
    return str(proc.stdout)


@pytest.mark.parametrize(("fmt", "version"), [("PPK", 3), ("PPK2", 2), ("ppk3", 3)])
def test_cli_export_ppk(fmt: str, version: int, tmp_path: Path) -> None:
    """-e -m PPK[2] prints the key as a .ppk; -N encrypts it, -P opens the source."""
    source = private_copy("sshkey/ed25519_1_pw", tmp_path)
    key, comment = load_private(str(source), _corpus_pw())
    plain = _export(fmt, source)
    assert plain.startswith(f"PuTTY-User-Key-File-{version}: ssh-ed25519\n")
    assert "Encryption: none\n" in plain
    assert decode_ppk(plain) == (key, comment)
    assert plain == encode_ppk(key, comment, "", version)  # unencrypted: deterministic

    sealed = _export(fmt, source, "-N", PASSPHRASE, "-C", "new comment")
    assert "Encryption: aes256-cbc\n" in sealed
    assert decode_ppk(sealed, PASSPHRASE) == (key, "new comment")

    # a .ppk is a valid source too: re-export it unencrypted, as the other version
    ppk = tmp_path / "sealed.ppk"
    ppk.write_text(sealed)
    again = run([*PYKEYGEN, "-e", "-m", "PPK2" if version == 3 else "PPK", "-f", ppk,
                 "-P", PASSPHRASE])
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"PuTTY-User-Key-File-{5 - version}: ")
    assert decode_ppk(again.stdout) == (key, "new comment")


@pytest.mark.parametrize("fmt", ["PPK", "PPK2"])
def test_cli_export_read_by_puttygen(fmt: str, tmp_path: Path) -> None:
    """puttygen opens what -e -m PPK[2] -N printed and exports the same key to OpenSSH."""
    puttygen = _puttygen()
    source = private_copy("sshkey/ed25519_1_pw", tmp_path)
    key, comment = load_private(str(source), _corpus_pw())
    ppk = tmp_path / "plain.ppk"
    ppk.write_text(_export(fmt, source))
    assert _public_text(ppk) == key.public.openssh(comment)
    ppk.write_text(_export(fmt, source, "-N", PASSPHRASE, "-C", "new comment"))
    out = tmp_path / "out"
    proc = run([puttygen, ppk, "-O", "private-openssh-new", "-o", out,
                "--old-passphrase", _pwfile(tmp_path), "--new-passphrase", _empty(tmp_path)])
    assert proc.returncode == 0, proc.stderr
    assert load_private(str(out), "") == (key, "new comment")


def test_cli_export_refusals(tmp_path: Path) -> None:
    sk = private_copy("sshkey/ed25519_sk1", tmp_path)
    proc = run([*PYKEYGEN, "-e", "-m", "PPK", "-f", sk])
    assert proc.returncode == 255
    assert proc.stderr == "do_convert_to_ppk: unsupported key type ED25519-SK\n"
    unsupported = run([*PYKEYGEN, "-e", "-m", "PPK4", "-f", sk])
    assert unsupported.returncode == 255
    assert unsupported.stderr == 'Unsupported conversion format "PPK4"\n'


def _corpus_pw() -> str:
    return (TESTDATA / "sshkey" / "pw").read_text().strip()
