"""pykeygen -s and -L against the real ssh-keygen on the same files.

stdout must be byte-identical; stderr is compared after the differences that are not
ours to fix: the program name, and OpenSSH's "\\r\\n" at the end of logged lines.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from keytools.certificate import HOST_CERT, Certificate, certify
from keytools.keyfile import load_private
from keytools.public import parse_public_line
from keytools.wire import Writer
from tests.helpers import TESTDATA, private_copy, run

PYKEYGEN = [sys.executable, "-m", "keytools.cli.pykeygen"]
SSHKEY = TESTDATA / "sshkey"
CORPUS_CERTS = sorted(SSHKEY.glob("*-cert.pub")) + sorted((TESTDATA / "authopt").glob("*.cert"))
SUPPORTED = [p for p in CORPUS_CERTS if not p.name.startswith("mldsa44")]


def _err(text: str) -> str:
    return text.replace("\r\n", "\n").replace("ssh-keygen", "pykeygen")


def _both(ssh_keygen: str, args: list[str | Path], cwd: Path | None = None,
          env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], ...]:
    full = {**os.environ, **(env or {})}
    return (run([*PYKEYGEN, *args], cwd=cwd, env=full),
            run([ssh_keygen, *args], cwd=cwd, env=full))


def assert_same(ssh_keygen: str, args: list[str | Path], cwd: Path | None = None,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    ours, theirs = _both(ssh_keygen, args, cwd, env)
    assert "Traceback" not in ours.stderr, ours.stderr
    assert (ours.returncode, ours.stdout, ours.stderr) == (
        theirs.returncode, theirs.stdout, _err(theirs.stderr))
    return ours


def _cert(path: Path) -> Certificate:
    cert, _ = parse_public_line(path.read_text())
    assert isinstance(cert, Certificate)
    return cert


# -- -L ------------------------------------------------------------------------------------


def test_list_every_corpus_certificate(ssh_keygen: str, tmp_path: Path) -> None:
    together = tmp_path / "all-certs"
    together.write_text("".join(p.read_text() for p in CORPUS_CERTS))
    for zone in ("UTC0", "JST-9"):
        assert_same(ssh_keygen, ["-L", "-f", together], env={"TZ": zone})
    for path in SUPPORTED[:3] + SUPPORTED[-2:]:
        assert_same(ssh_keygen, ["-L", "-f", path])
    assert_same(ssh_keygen, ["-L", "-E", "md5", "-f", SUPPORTED[0]])


def test_list_from_stdin(ssh_keygen: str) -> None:
    data = "".join(p.read_text() for p in SUPPORTED[:4])
    ours = run([*PYKEYGEN, "-L", "-f", "-"], input=data)
    theirs = run([ssh_keygen, "-L", "-f", "-"], input=data)
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout)
    assert ours.stdout.startswith("(stdin):1:\n")


def _ca(tmp_path: Path, name: str = "ed25519_1") -> Path:
    return private_copy(f"sshkey/{name}", tmp_path)


def _raw_cert_line(blob: bytes) -> str:
    import base64

    return f"ssh-ed25519-cert-v01@openssh.com {base64.b64encode(blob).decode()} odd\n"


def _odd_certificates(tmp_path: Path) -> dict[str, str]:
    """Lines ssh-keygen -L must complain about, each as one line of text."""
    ca = load_private(str(_ca(tmp_path)), "")[0]
    key, _ = parse_public_line((SSHKEY / "ed25519_2.pub").read_text())
    good = certify(key, ca, key_id="k", principals=["p"])
    blob = good.blob()
    bad_sig = blob[:-1] + bytes([blob[-1] ^ 1])
    w = Writer().string(good.key_type).string(good.nonce)
    key.encode_body(w)
    w.uint64(1).uint32(7).string("k").string(b"").uint64(0).uint64(1)
    w.string(b"").string(b"").string(b"").string(ca.public.blob())
    unknown_type = w.string(ca.sign(w.getvalue())).getvalue()
    ecdsa = (SSHKEY / "ecdsa_1-cert.pub").read_text().split()
    p521 = (TESTDATA / "sshkey" / "ecdsa_2.pub").read_text().split()
    return {
        "blank": "\n",
        "comment": "   # a comment\n",
        "garbage": "garbage line\n",
        "plain": (SSHKEY / "ed25519_2.pub").read_text(),
        "only type": "ssh-ed25519-cert-v01@openssh.com\n",
        "short": "ssh-ed25519-cert-v01@openssh.com AAAA\n",
        "bad base64": "ssh-ed25519-cert-v01@openssh.com AAAA*\n",
        "bad signature": _raw_cert_line(bad_sig),
        "trailing": _raw_cert_line(blob + b"\0"),
        "unknown type": _raw_cert_line(unknown_type),
        "type mismatch": good.openssh().replace("ssh-ed25519-cert", "ssh-rsa-cert") + "\n",
        "curve mismatch": f"ecdsa-sha2-nistp384 {p521[1]}\n",
        "cert curve": f"ecdsa-sha2-nistp384-cert-v01@openssh.com {ecdsa[1]}\n",
        "alias": "rsa-sha2-512-cert-v01@openssh.com "
                 + (SSHKEY / "rsa_1-cert.pub").read_text().split()[1] + "\n",
        "tabs": "\t " + good.openssh("c") + " \r\n",
        "good": good.openssh("comment") + "\n",
    }


def test_list_reports_bad_lines_as_ssh_keygen(ssh_keygen: str, tmp_path: Path) -> None:
    lines = _odd_certificates(tmp_path)
    mixed = tmp_path / "mixed"
    mixed.write_text("".join(lines.values()))
    result = assert_same(ssh_keygen, ["-L", "-f", mixed])
    assert result.returncode == 0
    assert "incorrect signature" in result.stderr
    assert "unknown/unsupported certificate type" in result.stderr
    for name in ("plain", "garbage", "blank"):
        only = tmp_path / name.replace(" ", "_")
        only.write_text(lines[name])
        assert assert_same(ssh_keygen, ["-L", "-f", only]).returncode == 1


def test_list_fatal_option_drops_buffered_output(ssh_keygen: str, tmp_path: Path) -> None:
    """A malformed option stops ssh-keygen with output still in its stdio buffer."""
    ca = load_private(str(_ca(tmp_path)), "")[0]
    key, _ = parse_public_line((SSHKEY / "ed25519_2.pub").read_text())
    fine = certify(key, ca, key_id="k", principals=["p"],
                   critical_options=[("odd", b"\1\2"), ("flag", b""), ("verify-required", b"")],
                   extensions=[("permit-pty", b""), ("x@example.com", b"\0\0\0\1v")])
    corrupt = {
        "extra": [("force-command", Writer().string("ls").getvalue() + b"!")],
        "short": [("source-address", b"\0\0")],
        "nul": [("a\0b", b"")],
    }
    for name, critical in corrupt.items():
        bad = certify(key, ca, key_id="k", principals=["p"], critical_options=critical)
        for count in (0, 9):
            path = tmp_path / f"{name}{count}"
            path.write_text((fine.openssh() + "\n") * count + bad.openssh() + "\n")
            assert assert_same(ssh_keygen, ["-L", "-f", path]).returncode == 255
    flag = certify(key, ca, key_id="k", principals=["p"], extensions=[("permit-pty", b"x")])
    path = tmp_path / "flag"
    path.write_text(flag.openssh() + "\n")
    assert_same(ssh_keygen, ["-L", "-f", path])


def test_list_file_errors(ssh_keygen: str, tmp_path: Path) -> None:
    assert_same(ssh_keygen, ["-L", "-f", tmp_path / "missing"])
    assert_same(ssh_keygen, ["-L", "-f", tmp_path])
    (tmp_path / "empty").write_text("")
    assert_same(ssh_keygen, ["-L", "-f", tmp_path / "empty"])


# -- -s ------------------------------------------------------------------------------------


def _pair(tmp_path: Path, key: str = "ed25519_2") -> tuple[Path, Path]:
    """Two directories holding the same CA keys and public key, one per tool."""
    dirs = []
    for side in ("ours", "theirs"):
        d = tmp_path / side
        d.mkdir()
        for ca in ("ed25519_1", "ecdsa_1", "rsa_1", "ed25519_1_pw"):
            private_copy(f"sshkey/{ca}", d)
        (d / "user.pub").write_text((SSHKEY / f"{key}.pub").read_text())
        (d / "user2.pub").write_text((SSHKEY / "ecdsa_2.pub").read_text())
        dirs.append(d)
    return dirs[0], dirs[1]


SIGNINGS = [
    ["-s", "ed25519_1", "-I", "alice@example", "-n", "alice,bob", "-V", "20260101:20270101Z",
     "-z", "42", "-O", "clear", "-O", "permit-pty", "-O", "force-command=/bin/ls -l"],
    ["-s", "ecdsa_1", "-I", "id", "-n", "root", "-V", "always:20300101", "-O",
     "source-address=10.0.0.0/8,::1", "-O", "critical:zz=1", "-O", "extension:x@y"],
    ["-s", "rsa_1", "-I", "rsa", "-n", "p", "-O", "no-agent-forwarding", "-O", "verify-required"],
    ["-s", "rsa_1", "-t", "rsa-sha2-256", "-I", "rsa256", "-n", "p", "-V", "0x10:0x7fffffff"],
    ["-s", "rsa_1", "-t", "ssh-rsa", "-I", "rsa1", "-n", "p"],
    ["-s", "ed25519_1", "-h", "-I", "host", "-n", "*.example.com,10.0.0.1",
     "-V", "20260101123000:forever", "-O", "no-touch-required"],
    ["-s", "ed25519_1_pw", "-P", (SSHKEY / "pw").read_text().strip(), "-I", "pw", "-n", "p"],
]


@pytest.mark.parametrize("args", SIGNINGS, ids=lambda a: " ".join(a[:4]))
def test_sign_like_ssh_keygen(ssh_keygen: str, tmp_path: Path, args: list[str]) -> None:
    ours_dir, theirs_dir = _pair(tmp_path)
    env = {**os.environ, "TZ": "EST5EDT,M3.2.0,M11.1.0"}
    ours = run([*PYKEYGEN, *args, "user.pub", "user2.pub"], cwd=ours_dir, env=env)
    theirs = run([ssh_keygen, *args, "user.pub", "user2.pub"], cwd=theirs_dir, env=env)
    assert (ours.returncode, ours.stdout, ours.stderr) == (0, "", _err(theirs.stderr))
    for name in ("user-cert.pub", "user2-cert.pub"):
        mine, real = ours_dir / name, theirs_dir / name
        assert mine.stat().st_mode & 0o777 == 0o644
        assert mine.read_text().split()[2:] == real.read_text().split()[2:]  # the comment
        # ssh-keygen reads ours exactly as it reads its own
        listed = [run([ssh_keygen, "-L", "-f", name], cwd=d, env=env) for d in (ours_dir,
                                                                                theirs_dir)]
        assert listed[0].returncode == 0 and listed[0].stdout == listed[1].stdout
        a, b = _cert(mine), _cert(real)
        assert a.nonce != b.nonce
        same = ("cert_type_name", "key", "serial", "cert_type", "key_id", "principals",
                "valid_after", "valid_before", "critical_options", "extensions",
                "reserved", "signature_key")
        assert [getattr(a, f) for f in same] == [getattr(b, f) for f in same]
        assert a.signature_type == b.signature_type
        ours_listing = run([*PYKEYGEN, "-L", "-f", name], cwd=ours_dir, env=env)
        assert ours_listing.stdout == listed[0].stdout


def test_serial_counts_up_and_without_principals_warns(ssh_keygen: str, tmp_path: Path) -> None:
    ours_dir, theirs_dir = _pair(tmp_path)
    args = ["-s", "ed25519_1", "-I", "x", "-z", "+18446744073709551614", "user.pub", "user2.pub"]
    ours = run([*PYKEYGEN, *args], cwd=ours_dir)
    theirs = run([ssh_keygen, *args], cwd=theirs_dir)
    assert ours.returncode == theirs.returncode == 0
    serials = [_cert(d / "user2-cert.pub").serial for d in (ours_dir, theirs_dir)]
    assert serials == [2**64 - 1, 2**64 - 1]
    signed = [line for line in ours.stderr.splitlines() if line.startswith("Signed")]
    assert signed == _err(theirs.stderr).splitlines()
    warnings = [line for line in ours.stderr.splitlines() if not line.startswith("Signed")]
    assert len(warnings) == 2 and all("no principals" in w for w in warnings)
    assert _cert(ours_dir / "user-cert.pub").principals == ()
    quiet = run([*PYKEYGEN, "-q", *args], cwd=ours_dir)
    assert (quiet.returncode, quiet.stderr) == (0, "")


@pytest.mark.parametrize("args", [
    ["-s", "rsa_1", "-t", "rsa", "-I", "x", "user.pub"],
    ["-s", "ecdsa_1", "-t", "ecdsa", "-I", "x", "user.pub"],
    ["-s", "ecdsa_1", "-t", "ed25519", "-I", "x", "user.pub"],
    ["-s", "ed25519_1", "-t", "ssh-ed25519-cert-v01@openssh.com", "-I", "x", "user.pub"],
    ["-s", "ed25519_1", "-I", "x", "missing.pub"],
    ["-s", "ed25519_1", "-I", "x", "-n", "p", "user.pub", "user-cert.pub"],
    ["-s", "ed25519_1", "user.pub"],
    ["-s", "ed25519_1", "-I", "x", "-n", "a,,b", "user.pub"],
    ["-s", "ed25519_1", "-I", "x", "-n", "", "user.pub"],
    ["-s", "ed25519_1", "-I", "x", "-z", "12x", "user.pub"],
    ["-s", "ed25519_1", "-I", "x", "-z", "+x", "user.pub"],
    ["-s", "ed25519_1", "-I", "x", "-z", "18446744073709551616", "user.pub"],
    ["-s", "ed25519_1", "-I", "x", "-V", "+1d:-1d", "user.pub"],
    ["-s", "ed25519_1", "-V", "bad", "user.pub"],
    ["-s", "ed25519_1", "-I", "x", "-O", "source-address=1.2.3.4/33", "user.pub"],
    ["-s", "ed25519_1_pw", "-P", "wrong", "-I", "x", "user.pub"],
    ["-s", "nonexistent", "-I", "x", "user.pub"],
    ["-s", "user.pub", "-I", "x", "user.pub"],
    ["-s", "ed25519_1", "-I", "x"],
])
def test_sign_errors_like_ssh_keygen(ssh_keygen: str, tmp_path: Path, args: list[str]) -> None:
    ours_dir, theirs_dir = _pair(tmp_path)
    for d in (ours_dir, theirs_dir):
        (d / "user.pub").chmod(0o644)
    ours = run([*PYKEYGEN, *args], cwd=ours_dir)
    theirs = run([ssh_keygen, *args], cwd=theirs_dir)
    assert ours.returncode == theirs.returncode
    if "usage" in theirs.stderr:
        return  # the usage text lists pykeygen's own operations
    mine = [line for line in ours.stderr.splitlines() if "no principals" not in line]
    assert mine == _err(theirs.stderr).splitlines()


def test_sign_key_without_pub_suffix_and_askpass(tmp_path: Path) -> None:
    """The output is KEY-cert.pub beside KEY; an encrypted CA asks through SSH_ASKPASS."""
    ca = private_copy("sshkey/ed25519_1_pw", tmp_path)
    key = private_copy("sshkey/ed25519_2", tmp_path)
    (tmp_path / "ed25519_2.pub").write_text((SSHKEY / "ed25519_2.pub").read_text())
    askpass = tmp_path / "askpass"
    askpass.write_text(f"#!/bin/sh\necho '{(SSHKEY / 'pw').read_text().strip()}'\n")
    askpass.chmod(0o755)
    env = {**os.environ, "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force"}
    done = run([*PYKEYGEN, "-s", ca, "-I", "x", "-h", "-n", "h", key], env=env)
    assert done.returncode == 0, done.stderr
    cert = _cert(tmp_path / "ed25519_2-cert.pub")
    assert cert.cert_type == HOST_CERT and cert.extensions == ()
    assert (tmp_path / "ed25519_2-cert.pub").read_text().split()[2:] == \
        (SSHKEY / "ed25519_2.pub").read_text().split()[2:]


def test_agent_and_token_ca_not_yet(tmp_path: Path) -> None:
    ours_dir, _ = _pair(tmp_path)
    for flag in (["-U"], ["-D", "/nonexistent.so"]):
        done = run([*PYKEYGEN, "-s", "ed25519_1", *flag, "-I", "x", "user.pub"], cwd=ours_dir)
        assert done.returncode != 0 and "not implemented yet" in done.stderr


def test_signed_message_escapes_like_ssh_keygen(ssh_keygen: str, tmp_path: Path) -> None:
    """ssh-keygen logs through strnvis(): backslashes doubled, bytes outside ASCII octal."""
    ours_dir, theirs_dir = _pair(tmp_path)
    for key_id in ("a\\b", "h\u00e9llo", "tab\there", "bell\a", 'q"uote'):
        args = ["-s", "ed25519_1", "-I", key_id, "-n", "p\u00fc", "user.pub"]
        ours = run([*PYKEYGEN, *args], cwd=ours_dir)
        theirs = run([ssh_keygen, *args], cwd=theirs_dir)
        assert (ours.returncode, ours.stderr) == (0, _err(theirs.stderr))
        assert _cert(ours_dir / "user-cert.pub").key_id == key_id
