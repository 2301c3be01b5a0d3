"""Certificates in the library: signing, parsing errors, -O options and the acceptance check.

Where OpenSSH decides (option encoding and order, what a certificate carries) the answer
comes from the real ssh-keygen on the same input.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from keytools.cert_check import (
    CertificateRefused,
    check_authority,
    check_certificate,
)
from keytools.cert_options import CertOptions, build_options, read_options
from keytools.certificate import (
    FOREVER,
    HOST_CERT,
    MAX_PRINCIPALS,
    USER_CERT,
    Certificate,
    certify,
    decode_key_checked,
)
from keytools.errors import (
    CertificateInvalidSignKey,
    CertificateUnknownType,
    InvalidArgument,
    InvalidFormat,
    SignatureAlgorithmUnsupported,
    SignatureInvalid,
)
from keytools.keyfile import load_private, load_public
from keytools.private import PrivateKey
from keytools.public import PublicKey, decode_public_blob, parse_public_line
from keytools.wire import Writer
from tests.helpers import TESTDATA, private_copy, run

SSHKEY = TESTDATA / "sshkey"
AUTHOPT = TESTDATA / "authopt"
#: 1999-01-02, inside the authopt certificates' validity (1998-12-31 .. 1999-12-30)
IN_1999 = 915235200


def _ca(name: str, tmp_path: Path) -> PrivateKey:
    return load_private(str(private_copy(f"sshkey/{name}", tmp_path)), "")[0]


def _pub(name: str) -> PublicKey:
    return load_public(str(SSHKEY / f"{name}.pub"))[0]


def _cert_file(path: Path) -> Certificate:
    key, _ = parse_public_line(path.read_text().splitlines()[0])
    assert isinstance(key, Certificate)
    return key


def _user_cert(ca: PrivateKey, **kw: object) -> Certificate:
    fields: dict[str, object] = {"key_id": "id", "principals": ("alice",)}
    fields.update(kw)
    return certify(_pub("ed25519_2"), ca, **fields)  # type: ignore[arg-type]


# -- signing -------------------------------------------------------------------------------


@pytest.mark.parametrize(("ca_name", "algorithm"), [
    ("ed25519_1", "ssh-ed25519"), ("ecdsa_1", "ecdsa-sha2-nistp256"),
    ("ecdsa_2", "ecdsa-sha2-nistp521"), ("rsa_1", "rsa-sha2-512"),
])
@pytest.mark.parametrize("key_name", ["ed25519_2", "rsa_2", "ecdsa_2", "ed25519_sk1", "ecdsa_sk1"])
def test_certify_every_ca_and_key_type(tmp_path: Path, ca_name: str, algorithm: str,
                                       key_name: str) -> None:
    ca, key = _ca(ca_name, tmp_path), _pub(key_name)
    critical, extensions = build_options(["force-command=/bin/true"])
    cert = certify(key, ca, key_id="id \u00e9", cert_type=USER_CERT, principals=("a", "b"),
                   valid_after=10, valid_before=20, critical_options=critical,
                   extensions=extensions, serial=2**64 - 1)
    cert.check_signature()
    assert cert.signature_type == algorithm
    assert cert.key == key and cert.signature_key == ca.public
    assert (cert.key_id, cert.principals, cert.serial) == ("id \u00e9", ("a", "b"), 2**64 - 1)
    assert (cert.valid_after, cert.valid_before) == (10, 20)
    assert cert.critical_options == critical and cert.extensions == extensions
    assert len(cert.nonce) == 32 and cert.reserved == b""
    assert decode_key_checked(cert.blob()) == cert
    assert cert.blob().startswith(cert.signed_data)


def test_certify_rsa_signature_algorithms(tmp_path: Path) -> None:
    ca = _ca("rsa_1", tmp_path)
    for algorithm in ("rsa-sha2-256", "rsa-sha2-512", "ssh-rsa"):
        assert _user_cert(ca, algorithm=algorithm).signature_type == algorithm
    with pytest.raises(InvalidArgument):
        _user_cert(ca, algorithm="rsa")  # ssh-keygen -t rsa: "invalid argument"


def test_certify_refuses_what_openssh_refuses(tmp_path: Path) -> None:
    ca = _ca("ed25519_1", tmp_path)
    with pytest.raises(SignatureAlgorithmUnsupported):
        _user_cert(ca, algorithm="ed25519")  # signs ssh-ed25519, not what was asked
    cert = _user_cert(ca)
    with pytest.raises(InvalidArgument):
        certify(cert, ca, key_id="x")  # a certificate cannot be certified again
    with pytest.raises(CertificateInvalidSignKey):
        certify(_pub("ed25519_2"), cert, key_id="x", signer=lambda d, a: ca.sign(d, a))
    with pytest.raises(InvalidArgument):
        _user_cert(ca, principals=[f"p{i}" for i in range(MAX_PRINCIPALS + 1)])
    assert len(_user_cert(ca, principals=[f"p{i}" for i in range(MAX_PRINCIPALS)]).principals) \
        == MAX_PRINCIPALS


def test_certify_with_an_external_signer(tmp_path: Path) -> None:
    """How an agent-held CA signs: the public key plus a signing function."""
    ca = _ca("ecdsa_1", tmp_path)
    seen: list[str | None] = []

    def signer(data: bytes, algorithm: str | None) -> bytes:
        seen.append(algorithm)
        return ca.sign(data, algorithm)

    cert = certify(_pub("ed25519_2"), ca.public, key_id="x", principals=["a"], signer=signer)
    cert.check_signature()
    assert seen == [None]
    with pytest.raises(SignatureInvalid):
        certify(_pub("ed25519_2"), ca.public, key_id="x", signer=lambda d, a: ca.sign(b"x", a))


# -- parsing -------------------------------------------------------------------------------


def _signed_blob(ca: PrivateKey, *, cert_type: int = USER_CERT, key_id: bytes = b"id",
                 principals: bytes | None = None, ca_blob: bytes | None = None) -> bytes:
    """A certificate blob built field by field (to make ones certify() would not)."""
    key = _pub("ed25519_2")
    w = Writer().string("ssh-ed25519-cert-v01@openssh.com").string(b"\0" * 32)
    key.encode_body(w)
    w.uint64(1).uint32(cert_type).string(key_id)
    w.string(principals if principals is not None else Writer().string("p").getvalue())
    w.uint64(0).uint64(FOREVER).string(b"").string(b"").string(b"")
    w.string(ca_blob if ca_blob is not None else ca.public.blob())
    return w.string(ca.sign(w.getvalue())).getvalue()


def test_parse_errors_are_openssh_words(tmp_path: Path) -> None:
    ca = _ca("ed25519_1", tmp_path)
    with pytest.raises(CertificateUnknownType):
        decode_public_blob(_signed_blob(ca, cert_type=3))
    with pytest.raises(CertificateInvalidSignKey):
        decode_public_blob(_signed_blob(ca, ca_blob=b"\0\0\0\x0bssh-ed25519"))
    cert_as_ca = _user_cert(ca).blob()
    with pytest.raises(CertificateInvalidSignKey):
        decode_public_blob(_signed_blob(ca, ca_blob=cert_as_ca))
    many = b"".join(Writer().string(f"p{i}").getvalue() for i in range(MAX_PRINCIPALS + 1))
    with pytest.raises(InvalidFormat):
        decode_public_blob(_signed_blob(ca, principals=many))
    with pytest.raises(InvalidFormat):
        decode_public_blob(_signed_blob(ca, key_id=b"a\0b"))
    good = _signed_blob(ca)
    for cut in (40, len(good) - 70, len(good) - 1):
        with pytest.raises(InvalidFormat):
            decode_public_blob(good[:cut])


def test_parse_keeps_bytes_openssh_keeps(tmp_path: Path) -> None:
    """Key IDs and principals are C strings, not necessarily UTF-8; an inverted validity
    interval still parses (OpenSSH only refuses such a certificate when it is used)."""
    ca = _ca("ed25519_1", tmp_path)
    cert = decode_key_checked(_signed_blob(ca, key_id=b"\xff\xfe",
                                           principals=Writer().string(b"\xe9").getvalue()))
    assert isinstance(cert, Certificate)
    assert cert.key_id.encode("utf-8", "surrogateescape") == b"\xff\xfe"
    assert cert.principals[0].encode("utf-8", "surrogateescape") == b"\xe9"
    assert decode_public_blob(cert.blob()) == cert
    inverted = _user_cert(ca, valid_after=100, valid_before=50)
    assert decode_key_checked(inverted.blob()) == inverted
    with pytest.raises(CertificateRefused, match="expired"):
        check_authority(inverted, principal="alice", host=False, now=100)


def test_checked_decode_verifies_before_trailing_bytes(tmp_path: Path) -> None:
    blob = _user_cert(_ca("ed25519_1", tmp_path)).blob()
    bad_sig = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(SignatureInvalid):
        decode_key_checked(bad_sig + b"junk")  # OpenSSH checks the signature first
    with pytest.raises(InvalidFormat):
        decode_key_checked(blob + b"junk")


# -- -O options against ssh-keygen --------------------------------------------------------

OPTION_SETS = [
    [],
    ["clear"],
    ["no-pty", "no-x11-forwarding", "permit-x11-forwarding"],
    ["clear", "permit-pty", "no-touch-required", "verify-required"],
    ["force-command=/bin/ls -l", "source-address=10.0.0.0/8,::1/128,192.168.1.1"],
    ["critical:zeta=1", "critical:alpha", "extension:zz@example.com=v", "extension:aa",
     "extension:aa=b", "extension:aa=a", "Force-Command=x", "NO-USER-RC"],
    ["extension:permit-pty", "critical:", "extension:=v", "extension:a=b=c"],
]


def _ssh_keygen_cert(ssh_keygen: str, tmp_path: Path, args: list[str]) -> Certificate:
    ca = private_copy("sshkey/ed25519_1", tmp_path)
    user = tmp_path / "user.pub"
    user.write_text((SSHKEY / "ed25519_2.pub").read_text())
    done = run([ssh_keygen, "-q", "-s", ca, "-I", "id", "-n", "p", *args, user])
    assert done.returncode == 0, done.stderr
    return _cert_file(tmp_path / "user-cert.pub")


@pytest.mark.parametrize("host", [False, True])
@pytest.mark.parametrize("words", OPTION_SETS, ids=lambda w: ",".join(w) or "none")
def test_options_encoded_and_sorted_as_ssh_keygen(ssh_keygen: str, tmp_path: Path,
                                                  words: list[str], host: bool) -> None:
    args = [a for w in words for a in ("-O", w)] + (["-h"] if host else [])
    theirs = _ssh_keygen_cert(ssh_keygen, tmp_path, args)
    assert build_options(words, host) == (theirs.critical_options, theirs.extensions)


@pytest.mark.parametrize("words", [
    ["bogus"], ["force-command="], ["force-command=a", "force-command=b"],
    ["source-address="], ["source-address=1.2.3.4/24"], ["source-address=zz"],
    ["source-address=10.0.0.0/8", "source-address=10.0.0.0/8"], ["source-address=1.2.3.4,"],
    ["source-address=1.2.3.4/+5"], ["source-address=fe80::1%lo"],
])
def test_option_errors_match_ssh_keygen(ssh_keygen: str, tmp_path: Path,
                                        words: list[str]) -> None:
    ca = private_copy("sshkey/ed25519_1", tmp_path)
    args = [a for w in words for a in ("-O", w)]
    done = run([ssh_keygen, "-q", "-s", ca, "-I", "id", *args, SSHKEY / "ed25519_2.pub"])
    assert done.returncode == 255
    logged: list[str] = []
    with pytest.raises(InvalidArgument) as exc:
        build_options(words, log=logged.append)
    assert "\n".join([*logged, str(exc.value)]) == done.stderr.replace("\r\n", "\n").rstrip()


# -- the authopt corpus ---------------------------------------------------------------------

AUTHOPT_FLAGS = {
    "x11fwd": "permit_x11_forwarding", "agentfwd": "permit_agent_forwarding",
    "portfwd": "permit_port_forwarding", "pty": "permit_pty", "user_rc": "permit_user_rc",
}
REFUSED = {"bad_sourceaddr", "unknown_critical", "host"}


def _authopt(name: str) -> Certificate:
    return _cert_file(AUTHOPT / f"{name}.cert")


def _accept(cert: Certificate, **kw: object) -> CertOptions:
    fields: dict[str, object] = {"principal": "user", "host": False,
                                 "ca_keys": [cert.signature_key], "now": IN_1999,
                                 "source_address": "127.0.0.1"}
    fields.update(kw)
    return check_certificate(cert, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", sorted(AUTHOPT.glob("*.cert")), ids=lambda p: p.stem)
def test_authopt_options_match_their_names(path: Path) -> None:
    name = path.stem
    cert = _cert_file(path)
    if name in REFUSED:
        with pytest.raises(CertificateRefused):
            _accept(cert)
        return
    options = _accept(cert)
    if name.startswith(("no_", "only_")) and name != "no_permit":
        which = AUTHOPT_FLAGS[name.split("_", 1)[1]]
        for attr in AUTHOPT_FLAGS.values():
            expected = (attr != which) if name.startswith("no_") else (attr == which)
            assert getattr(options, attr) is expected, attr
    elif name in ("all_permit", "force_command", "sourceaddr"):
        assert all(getattr(options, attr) for attr in AUTHOPT_FLAGS.values())
    elif name == "no_permit":
        assert not any(getattr(options, attr) for attr in AUTHOPT_FLAGS.values())
    assert options.force_command == ("foo" if name == "force_command" else None)
    if name == "sourceaddr":
        assert options.source_address == "127.0.0.1/32,::1/128"


def test_authopt_refusal_reasons() -> None:
    reasons = {}
    for name in sorted(REFUSED):
        with pytest.raises(CertificateRefused) as exc:
            _accept(_authopt(name))
        reasons[name] = str(exc.value)
    assert reasons == {
        "bad_sourceaddr": "Certificate source-address contents invalid",
        "host": "Certificate invalid: not a user certificate",
        "unknown_critical": 'Certificate critical option "blah" is not supported',
    }


def test_authopt_source_address() -> None:
    cert = _authopt("sourceaddr")
    assert _accept(cert, source_address="::1")
    for address in ("10.0.0.1", "127.0.0.2", "not-an-address"):
        with pytest.raises(CertificateRefused, match="not from a permitted source address"):
            _accept(cert, source_address=address)
    with pytest.raises(CertificateRefused, match="no source address"):
        _accept(cert, source_address=None)


# -- the acceptance rules -------------------------------------------------------------------


def test_validity_boundaries(tmp_path: Path) -> None:
    cert = _user_cert(_ca("ed25519_1", tmp_path), valid_after=1000, valid_before=2000)
    check_authority(cert, principal="alice", host=False, now=1000)
    check_authority(cert, principal="alice", host=False, now=1999)
    with pytest.raises(CertificateRefused, match=r"^Certificate invalid: not yet valid$"):
        check_authority(cert, principal="alice", host=False, now=999)
    with pytest.raises(CertificateRefused, match=r"^Certificate invalid: expired$"):
        check_authority(cert, principal="alice", host=False, now=2000)


def test_type_and_principals(tmp_path: Path) -> None:
    ca = _ca("ed25519_1", tmp_path)
    user = _user_cert(ca, principals=("alice", "*"))
    host = _user_cert(ca, cert_type=HOST_CERT, principals=("*.example.com", "h?"))
    with pytest.raises(CertificateRefused, match="not a host certificate"):
        check_authority(user, principal="alice", host=True)
    with pytest.raises(CertificateRefused, match="not a user certificate"):
        check_authority(host, principal="a.example.com", host=False)
    # wildcards are patterns only in host certificates
    check_authority(user, principal="*", host=False)
    with pytest.raises(CertificateRefused, match="name is not a listed principal"):
        check_authority(user, principal="bob", host=False)
    for name in ("a.example.com", "h1"):
        check_authority(host, principal=name, host=True)
    with pytest.raises(CertificateRefused, match="name is not a listed principal"):
        check_authority(host, principal="example.com", host=True)


@pytest.mark.parametrize("cert_type", [USER_CERT, HOST_CERT])
def test_no_principals_matches_nobody(tmp_path: Path, cert_type: int) -> None:
    """OpenSSH 10.3's rule, for user and host certificates, with or without a name."""
    cert = _user_cert(_ca("ed25519_1", tmp_path), principals=(), cert_type=cert_type)
    for name in ("root", "", None):
        with pytest.raises(CertificateRefused, match=r"^Certificate lacks principal list$"):
            check_authority(cert, principal=name, host=cert_type == HOST_CERT)


def test_ca_trust_and_signature(tmp_path: Path) -> None:
    ca, other = _ca("ed25519_1", tmp_path), _ca("ecdsa_1", tmp_path)
    cert = _user_cert(ca)
    assert check_certificate(cert, principal="alice", host=False, ca_keys=[other.public,
                                                                             ca.public])
    with pytest.raises(CertificateRefused, match="untrusted CA"):
        check_certificate(cert, principal="alice", host=False, ca_keys=[other.public])
    with pytest.raises(CertificateRefused, match="Key is not a certificate"):
        check_certificate(ca.public, principal="alice", host=False, ca_keys=None)
    blob = bytearray(cert.blob())
    blob[-5] ^= 1
    tampered = decode_public_blob(bytes(blob))
    with pytest.raises(CertificateRefused, match="signature invalid"):
        check_certificate(tampered, principal="alice", host=False, ca_keys=None)


def test_sha1_signed_certificate_needs_ca_algorithms() -> None:
    """rsa_1_sha1-cert.pub is signed with ssh-rsa, which CASignatureAlgorithms excludes."""
    cert = _cert_file(SSHKEY / "rsa_1_sha1-cert.pub")
    fields = {"principal": "user1", "host": False, "ca_keys": [cert.signature_key],
              "now": IN_1999 + 86400 * 365, "source_address": "10.1.2.3"}
    with pytest.raises(CertificateRefused, match="disallowed algorithm"):
        check_certificate(cert, **fields)  # type: ignore[arg-type]
    options = check_certificate(cert, ca_algorithms=None, **fields)  # type: ignore[arg-type]
    assert options.force_command == "/bin/ls"
    sha512 = _cert_file(SSHKEY / "rsa_1_sha512-cert.pub")
    fields["ca_keys"] = [sha512.signature_key]
    assert check_certificate(sha512, **fields).source_address == "10.0.0.0/8"  # type: ignore[arg-type]


def test_critical_options_are_judged(tmp_path: Path) -> None:
    ca = _ca("ed25519_1", tmp_path)
    crit, _ = build_options(["verify-required", "force-command=ls"])
    host = _user_cert(ca, cert_type=HOST_CERT, principals=("h",), critical_options=crit)
    with pytest.raises(CertificateRefused, match="unsupported critical options"):
        check_certificate(host, principal="h", host=True, ca_keys=None)
    user = _user_cert(ca, critical_options=crit)
    options = check_certificate(user, principal="alice", host=False, ca_keys=None)
    assert options.verify_required and options.force_command == "ls"
    value = Writer().string("x").getvalue()
    for critical, reason in [
        ((("force-command", value), ("force-command", value)), "multiple force-command"),
        ((("force-command", value + b"!"),), "corrupt"),
        ((("force-command", b"\0\0"),), "Unable to parse"),
        ((("verify-required", b"x"),), "corrupt"),
        ((("permit-pty", b""),), 'critical option "permit-pty" is not supported'),
    ]:
        with pytest.raises(CertificateRefused, match=reason):
            read_options(critical, ())
    assert read_options((), (("force-command", value), ("x@example.com", b"1"))) \
        .unknown_extensions == ("force-command", "x@example.com")
    with pytest.raises(CertificateRefused, match="corrupt"):
        read_options((), (("permit-pty", b"1"),))
