"""RFC4716 / PKCS8 / PEM public-key conversion against the real ``ssh-keygen -e`` and ``-i``."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from keytools.convert import (
    export_pem_public,
    export_pkcs8_public,
    export_public,
    import_pem_public,
    import_pkcs8_public,
    import_public,
    parse_format,
)
from keytools.errors import InvalidArgument, InvalidFormat, SshError
from keytools.public import PublicKey, parse_public_line
from keytools.rfc4716 import (
    default_rfc4716_comment,
    export_rfc4716,
    import_rfc4716,
    is_ssh2_private,
    rfc4716_payload,
)
from tests.helpers import TESTDATA, run, tool_path

SSHKEY = TESTDATA / "sshkey"
REGRESS = TESTDATA / "regress"
FORMATS = ("RFC4716", "PKCS8", "PEM")

CORPUS_FILES = sorted(
    [p for p in SSHKEY.glob("*.pub") if "mldsa" not in p.name and ".param." not in p.name]
    + list(REGRESS.glob("*.pub"))
)
#: key types with a PKCS8/PEM form (a certificate converts as its plain key)
CONVERTIBLE = ("ssh-rsa", "ssh-dss", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
               "ecdsa-sha2-nistp521")


def _key(path: Path) -> PublicKey:
    return parse_public_line(path.read_text())[0]


def _user_host() -> tuple[str, str]:
    return pwd.getpwuid(os.getuid()).pw_name, socket.gethostname()


def _keygen() -> str:
    return tool_path("ssh-keygen")


@pytest.fixture(scope="module")
def fresh_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Keys the corpus lacks: ECDSA P-384, and DSA where the installed OpenSSH makes it."""
    keygen = _keygen()
    work = tmp_path_factory.mktemp("convert-keys")
    out: list[Path] = []
    for kind, bits in (("ecdsa", "384"), ("dsa", "1024")):
        path = work / f"{kind}{bits}"
        proc = run([keygen, "-q", "-t", kind, "-b", bits, "-N", "", "-C", "fresh", "-f", path])
        if proc.returncode != 0:
            assert kind == "dsa", proc.stderr  # OpenSSH 10 dropped DSA
            continue
        out.append(path.with_name(path.name + ".pub"))
    return out


def _all_files(fresh_files: list[Path]) -> list[Path]:
    return CORPUS_FILES + fresh_files


def _expected_import(key: PublicKey, fmt: str) -> str:
    """What ``ssh-keygen -i`` prints for a key converted to ``fmt``."""
    return (key if fmt == "RFC4716" else key.plain).openssh() + "\n"


def test_corpus_is_there() -> None:
    types = {_key(p).plain.key_type for p in CORPUS_FILES}
    assert {"ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp521", "ssh-ed25519"} <= types


# ---------------------------------------------------------------- export


def test_export_rfc4716_byte_identical(fresh_files: list[Path]) -> None:
    keygen = _keygen()
    user, host = _user_host()
    for path in _all_files(fresh_files):
        key = _key(path)
        proc = run([keygen, "-e", "-f", path])
        assert proc.returncode == 0, proc.stderr
        assert export_rfc4716(key, default_rfc4716_comment(key, user, host)) == proc.stdout, path
        assert export_public(key, "ssh2", default_rfc4716_comment(key, user, host)) == proc.stdout


@pytest.mark.parametrize("fmt", ["PKCS8", "PEM"])
def test_export_pkcs8_pem_byte_identical(fmt: str, fresh_files: list[Path]) -> None:
    keygen = _keygen()
    exporter = export_pkcs8_public if fmt == "PKCS8" else export_pem_public
    checked = 0
    for path in _all_files(fresh_files):
        key = _key(path)
        proc = run([keygen, "-e", "-m", fmt, "-f", path])
        if key.plain.key_type in CONVERTIBLE:
            assert proc.returncode == 0, proc.stderr
            assert exporter(key) == proc.stdout, path
            assert export_public(key, fmt.lower(), "") == proc.stdout
            checked += 1
        else:
            assert proc.returncode == 255, path
            with pytest.raises(SshError) as info:
                exporter(key)
            assert str(info.value) == proc.stderr.strip(), path
    assert checked >= 8


def test_default_comment_is_cut_to_60_bytes() -> None:
    key = _key(SSHKEY / "rsa_1-cert.pub")
    comment = default_rfc4716_comment(key, "u" * 40, "h" * 40)
    assert comment == f"1024-bit RSA-CERT, converted by {'u' * 40}@{'h' * 40} from OpenSSH"[:60]
    assert len(comment) == 60
    assert default_rfc4716_comment(key, "me", "box") == (
        "1024-bit RSA-CERT, converted by me@box from OpenSSH"
    )


def test_default_comment_truncation_matches_ssh_keygen(tmp_path: Path) -> None:
    """Under a long host name (a private UTS namespace) ssh-keygen cuts the comment too."""
    keygen = _keygen()
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare for a private host name")
    host = "a-rather-long-host-name-for-the-comment.example.org"
    path = SSHKEY / "ecdsa_1-cert.pub"
    proc = subprocess.run(
        [unshare, "--uts", "sh", "-c", f'hostname "{host}" && exec "$0" -e -f "$1"', keygen,
         str(path)],
        capture_output=True, text=True, check=False, timeout=60,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot set a private host name: {proc.stderr.strip()}")
    key = _key(path)
    user = pwd.getpwuid(os.getuid()).pw_name
    assert export_rfc4716(key, default_rfc4716_comment(key, user, host)) == proc.stdout
    assert len(proc.stdout.splitlines()[1]) == len('Comment: ""') + 60


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("fmt", FORMATS)
def test_ssh_keygen_reads_our_export(fmt: str, fresh_files: list[Path], tmp_path: Path) -> None:
    keygen = _keygen()
    for path in _all_files(fresh_files):
        key = _key(path)
        if fmt != "RFC4716" and key.plain.key_type not in CONVERTIBLE:
            continue
        if fmt == "PEM" and key.plain.key_type != "ssh-rsa":
            continue  # ssh-keygen -i -m PEM reads RSA only
        out = tmp_path / "exported"
        out.write_text(export_public(key, fmt, "converted by pyssh"))
        proc = run([keygen, "-i", "-m", fmt, "-f", out])
        assert proc.returncode == 0, (path, proc.stderr)
        assert proc.stdout == _expected_import(key, fmt), path


@pytest.mark.parametrize("fmt", FORMATS)
def test_we_read_ssh_keygen_export(fmt: str, fresh_files: list[Path], tmp_path: Path) -> None:
    keygen = _keygen()
    for path in _all_files(fresh_files):
        key = _key(path)
        exported = run([keygen, "-e", "-m", fmt, "-f", path])
        if exported.returncode != 0:
            continue
        out = tmp_path / "exported"
        out.write_text(exported.stdout)
        back = run([keygen, "-i", "-m", fmt, "-f", out])
        if fmt == "PEM" and key.plain.key_type != "ssh-rsa":
            assert back.returncode == 255
            with pytest.raises(InvalidFormat) as info:
                import_public(out.read_bytes(), fmt, str(out))
            assert str(info.value) == back.stderr.strip()
            continue
        assert back.returncode == 0, back.stderr
        ours = import_public(out.read_bytes(), fmt, str(out))
        assert ours.openssh() + "\n" == back.stdout == _expected_import(key, fmt), path
        assert import_public(exported.stdout, fmt).same_key(ours)


# ---------------------------------------------------------------- import quirks


def _compare_import(fmt: str, data: bytes, tmp_path: Path, name: str) -> None:
    """Our reader gives ssh-keygen's key, or fails with ssh-keygen's message."""
    keygen = _keygen()
    path = tmp_path / name
    path.write_bytes(data)
    proc = run([keygen, "-i", "-m", fmt, "-f", path], binary=True)
    theirs = (proc.returncode, proc.stdout.decode("latin-1"), proc.stderr.decode("latin-1").strip())
    try:
        ours = (0, import_public(data, fmt, str(path)).openssh() + "\n", "")
    except SshError as exc:
        ours = (255, "", str(exc))
    assert ours == theirs, name


def _rfc4716_cases() -> dict[str, bytes]:
    keygen = _keygen()
    rfc = run([keygen, "-e", "-f", SSHKEY / "rsa_1.pub"], binary=True).stdout
    ed_rfc = run([keygen, "-e", "-f", SSHKEY / "ed25519_1.pub"], binary=True).stdout
    lines = rfc.split(b"\n")
    head, comment, body, end = lines[0], lines[1], lines[2:-2], lines[-2]
    b = b"\n".join(body)

    def join(*parts: bytes) -> bytes:
        return b"\n".join(parts) + b"\n"

    last = body[-1].rstrip(b"=")
    return {
        "plain": rfc,
        "crlf": rfc.replace(b"\n", b"\r\n"),
        "cr": rfc.replace(b"\n", b"\r"),
        "no_final_newline": rfc.rstrip(b"\n"),
        "no_begin": join(comment, b, end),
        "no_end": join(head, comment, b),
        # the unterminated last line is dropped: the one base64 line of an Ed25519 key
        "no_end_unterminated": ed_rfc.rsplit(b"\n", 2)[0],
        "continued_headers": join(head, b'Comment: "a long \\', b'continued comment"',
                                  b"Subject: me\\", b"more", b, end),
        "backslash_base64": join(head, body[0] + b"\\", *body[1:], end),
        "spaces_in_base64": join(head, comment, *(b"  " + ln + b" \t" for ln in body), end),
        "triple_equals": join(head, *body[:-1], last + b"===", end),
        "spaced_padding": join(head, *body[:-1], last + b"= = ", end),
        "data_after_padding": join(head, *body[:-1], body[-1] + b"A", end),
        "slack_bits": join(head, *body[:-1], body[-1][:-3] + b"/w==", end),
        "colon_space_line": join(head, b"foo: bar", b, end),
        "nul_in_line": join(head, body[0] + b"\0zzz", *body[1:], end),
        "latin1_comment": join(head, b'Comment: "\xe9\xff"', b, end),
        "high_byte": join(head, b"\xa0" + body[0], *body[1:], end),
        "vertical_tab": join(head, b"\x0b" + body[0], *body[1:], end),
        "end_first": join(b"---- END x", b"A" * 2000),
        "garbage": b"garbage\n",
        "empty": b"",
        "line_1022": b"A" * 1022 + b"\n",
        "line_1023": b"A" * 1023 + b"\n",
        "line_1023_at_eof": b"A" * 1023,
        "line_1024_at_eof": b"A" * 1024,
        "over_8k_of_base64": join(head, *([b"QUFB" * 250] * 10), end),
        "trailing_bytes": join(
            head, b"AAAAC3NzaC1lZDI1NTE5AAAAIFOG6kY7Rf4UtCFvPwKgo/BztXck2xC4a2WyA34XtIwZAA==", end
        ),
        "unknown_type": join(head, b"AAAAA2FiYw==", end),
        "short_type": join(head, b"AAAABWFi", end),
    }


@pytest.mark.parametrize("name", sorted(_rfc4716_cases()))
def test_rfc4716_import_like_ssh_keygen(name: str, tmp_path: Path) -> None:
    _compare_import("RFC4716", _rfc4716_cases()[name], tmp_path, name)


def test_rfc4716_truncated_rsa_wording(tmp_path: Path) -> None:
    rfc = run([_keygen(), "-e", "-f", SSHKEY / "rsa_1.pub"], binary=True).stdout
    lines = rfc.split(b"\n")
    del lines[-3]  # the last base64 line: 140 characters remain, a truncated key blob
    _compare_import("RFC4716", b"\n".join(lines), tmp_path, "truncated_rsa")


def _pem_cases() -> dict[str, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    keygen = _keygen()

    def export(fmt: str, name: str) -> bytes:
        out: bytes = run([keygen, "-e", "-m", fmt, "-f", SSHKEY / name], binary=True).stdout
        return out

    r8, rpem = export("PKCS8", "rsa_1.pub"), export("PEM", "rsa_1.pub")
    e8 = export("PKCS8", "ecdsa_2.pub")
    ed = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ec_private = (SSHKEY / "ecdsa_1").read_bytes()
    cases: dict[str, bytes] = {"ed25519": ed, "ec_private_only": ec_private, "empty": b"",
                               "garbage": b"garbage"}
    for tag, blk in (("spki", r8), ("pkcs1", rpem)):
        first, rest = blk.split(b"\n", 1)
        good = e8 if tag == "spki" else rpem
        wrong_end = blk.replace(b"END PUBLIC", b"END PRIVATE").replace(b"END RSA PUBLIC",
                                                                         b"END RSA PRIVATE")
        blank_in_data = blk.replace(b"\n", b"\n\n", 2).replace(b"\n\n", b"\n", 1)
        cases.update({
            f"{tag}": blk,
            f"{tag}_text_before": b"hello\n" + blk,
            f"{tag}_after_private": ec_private + blk,
            f"{tag}_after_ed25519": ed + blk,
            f"{tag}_after_bad_der": blk.replace(b"MIG", b"MIH", 1) + good,
            f"{tag}_crlf": blk.replace(b"\n", b"\r\n"),
            f"{tag}_cr": blk.replace(b"\n", b"\r"),
            f"{tag}_no_end": blk[:-25],
            f"{tag}_no_final_newline": blk.rstrip(),
            f"{tag}_indented_begin": b"  " + blk,
            f"{tag}_space_after_marker": blk.replace(b"-----\n", b"----- \n"),
            f"{tag}_text_after_begin": blk.replace(b"KEY-----\n", b"KEY-----xx\n", 1),
            f"{tag}_text_after_end": blk.rstrip() + b"xx\n",
            f"{tag}_joined_begin": blk.replace(b"\n", b"", 1),
            f"{tag}_one_long_line": blk.replace(b"\n", b"").replace(b"-----MI", b"-----\nMI")
            .replace(b"-----END", b"\n-----END") + b"\n",
            f"{tag}_indented_data": blk.replace(b"\nMI", b"\n MI"),
            f"{tag}_space_inside_data": blk.replace(b"MIG", b"MI G", 1),
            f"{tag}_colon_in_data": blk.replace(b"\nMI", b"\nMI:"),
            f"{tag}_encrypted_header": first + b"\nProc-Type: 4,ENCRYPTED\n\n" + rest,
            f"{tag}_comment_header": first + b"\nComment: foo\n\n" + rest,
            f"{tag}_short_header": first + b"\nA: b\n\n" + rest,
            f"{tag}_header_no_blank": first + b"\nComment: foo\n" + rest,
            f"{tag}_blank_first": first + b"\n\n" + rest,
            f"{tag}_blank_in_data": blank_in_data,
            f"{tag}_wrong_end": wrong_end,
            f"{tag}_comment_header_then_good": first + b"\nComment: foo\n\n" + rest + good,
            f"{tag}_wrong_end_then_good": wrong_end + good,
            f"{tag}_nested_begin": first + b"\n" + good + rest,
            f"{tag}_blank_in_data_then_good": blank_in_data + good,
            f"{tag}_other_block_first": b"-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n" + blk,
            f"{tag}_empty_other_block_first": b"-----BEGIN FOO-----\n-AAAA\n-----END FOO-----\n"
            + blk,
            f"{tag}_unterminated_other_first": b"-----BEGIN FOO-----\nAAAA\n" + blk,
            f"{tag}_dash_in_data": blk.replace(b"\nMI", b"\n-MI", 1),
            f"{tag}_byte_order_mark": b"\xef\xbb\xbf" + blk,
            f"{tag}_trailing_der_bytes": blk.replace(b"AQAB\n", b"AQABAAAA\n")
            .replace(b"AAE=\n", b"AAEAAAA=\n"),
            f"{tag}_swapped_label": blk.replace(b"RSA PUBLIC KEY", b"PUBLIC  KEY")
            .replace(b"PUBLIC KEY", b"RSA PUBLIC KEY").replace(b"PUBLIC  KEY", b"PUBLIC KEY"),
        })
    return cases


@pytest.fixture(scope="module")
def pem_cases() -> dict[str, bytes]:
    return _pem_cases()


@pytest.mark.parametrize("fmt", ["PKCS8", "PEM"])
def test_pkcs8_pem_import_like_ssh_keygen(
    fmt: str, pem_cases: dict[str, bytes], tmp_path: Path
) -> None:
    assert len(pem_cases) > 60
    for name, data in pem_cases.items():
        _compare_import(fmt, data, tmp_path, f"{fmt}-{name}")


def test_import_rejects_other_key_types() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    ed = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(SshError, match=r"^do_convert_from_pkcs8: unsupported pubkey type 1087$"):
        import_pkcs8_public(ed)
    k1 = ec.generate_private_key(ec.SECP256K1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(SshError):  # ssh-keygen 9.2 prints an "ssh-unknown" key here
        import_pkcs8_public(k1)
    with pytest.raises(InvalidFormat, match="unrecognised raw private key format"):
        import_pem_public(ed)
    with pytest.raises(InvalidFormat, match=r"^do_convert_from_pkcs8: f\.pem is not a recognised"):
        import_pkcs8_public(b"nothing here", "f.pem")


# ---------------------------------------------------------------- SSH2 private keys


def test_ssh2_private_block_is_reported() -> None:
    text = (REGRESS / "rsa_ssh2.prv").read_text()
    assert is_ssh2_private(text)
    assert is_ssh2_private(text.encode())
    payload = rfc4716_payload(text)
    assert payload.private
    assert payload.blob[:4] == bytes.fromhex("3f6ff9eb")  # ssh.com private key magic
    with pytest.raises(InvalidFormat):
        import_rfc4716(text)
    key = _key(SSHKEY / "ed25519_1.pub")
    public = export_rfc4716(key, "x")
    assert not is_ssh2_private(public)
    assert not rfc4716_payload(public).private
    assert rfc4716_payload(public).blob == key.blob()


# ---------------------------------------------------------------- -m names


@pytest.mark.parametrize("name", ["RFC4716", "rfc4716", "ssh2", "SSH2", "pkcs8", "PEM", "pem"])
def test_parse_format_accepts(name: str) -> None:
    assert parse_format(name) in FORMATS


@pytest.mark.parametrize("name", ["foo", "", "pkcs1", "openssh"])
def test_parse_format_rejects_like_ssh_keygen(name: str) -> None:
    proc = run([_keygen(), "-e", "-m", name, "-f", SSHKEY / "ed25519_1.pub"])
    assert proc.returncode == 255
    with pytest.raises(InvalidArgument) as info:
        parse_format(name)
    assert str(info.value) == proc.stderr.strip()
