"""The known_hosts library: every line form, host patterns, hashed names and lookups.

The corpus file ``hostkeys/known_hosts`` holds plain, address, wildcard, hashed,
@revoked and @cert-authority lines and broken ones; its keys are the ``*.pub`` files
beside it (``ed25519_4`` is the revoked key, ``ecdsa_4`` the CA).
"""

from __future__ import annotations

import hmac
import os
from base64 import b64decode
from pathlib import Path

import pytest

from keytools.hostmatch import (
    extract_salt,
    hash_host,
    host_port,
    match_hashed,
    match_host_field,
)
from keytools.known_hosts import (
    HostKeyStatus,
    LineStatus,
    Marker,
    check_host_key,
    load_host_keys,
    parse_line,
    read_known_hosts,
    scan,
)
from keytools.known_hosts_edit import (
    add_host_key,
    delete_host_lines,
    format_host_entry,
    hash_host_lines,
    remove_host,
)
from keytools.match import match_hostname, match_pattern, match_pattern_list
from keytools.public import PublicKey, parse_public_line
from tests.helpers import TESTDATA, run

HOSTKEYS = TESTDATA / "hostkeys"
KNOWN_HOSTS = HOSTKEYS / "known_hosts"


def key(name: str) -> PublicKey:
    return parse_public_line((HOSTKEYS / f"{name}.pub").read_text())[0]


def rehash_matches(field: str, name: str) -> bool:
    """Recompute HMAC-SHA1(salt, name) with the salt found in a ``|1|`` field."""
    _, _, salt_b64, digest_b64 = field.split("|")
    digest = hmac.digest(b64decode(salt_b64), name.encode(), "sha1")
    return hmac.compare_digest(digest, b64decode(digest_b64))


# -- patterns -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pattern", "expected"),
    [
        ("host.example.com", "*.example.com", True),
        ("example.com", "*.example.com", False),
        ("a.b.example.com", "*.example.com", True),
        ("host1", "host?", True),
        ("host12", "host?", False),
        ("", "*", True),
        ("", "", True),
        ("x", "", False),
        ("abc", "a*b*c", True),
        ("abcabzd", "a*b?d", True),
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "*a*a*a*a*a*a*a*a*c", False),
    ],
)
def test_match_pattern(text: str, pattern: str, expected: bool) -> None:
    assert match_pattern(text, pattern) is expected


def test_pattern_lists_negation_and_case() -> None:
    assert match_pattern_list("a.example.com", "*.example.com,!bad.example.com", True) == 1
    assert match_pattern_list("bad.example.com", "*.example.com,!bad.example.com", True) == -1
    assert match_pattern_list("other.org", "*.example.com,!bad.example.com", True) == 0
    assert match_hostname("HOST.Example.COM", "host.EXAMPLE.com") == 1
    # a negation alone never makes a positive match
    assert match_hostname("x", "!y") == 0
    # a sub-pattern of 1023 or more characters makes the whole list fail, as in C
    assert match_pattern_list("a", "a," + "b" * 1023, False) == 0
    assert match_pattern_list("", "a,", False) == 0


def test_hashed_names() -> None:
    field = hash_host("host.example.com")
    assert field.startswith("|1|") and len(field.split("|")) == 4
    assert rehash_matches(field, "host.example.com")
    assert match_hashed("host.example.com", field) is True
    assert match_hashed("other.example.com", field) is False
    salt = extract_salt(field)
    assert salt is not None and len(salt) == 20
    assert hash_host("host.example.com", salt) == field
    for bad in ("|1|", "|1||x", "|1|c2hvcnQ=|x", "|2|AAAA|AAAA", "|1|!!!!|x"):
        assert match_hashed("h", bad) is None
    # hashed names are compared as given: ssh-keygen -F does not fold them
    assert match_host_field("HOST.example.com", field) is False
    assert match_host_field("HOST.example.com", "host.example.com") is True


def test_host_port() -> None:
    assert host_port("h", 22) == "h"
    assert host_port("h", None) == "h"
    assert host_port("h", 2222) == "[h]:2222"
    assert host_port("::1", 2222) == "[::1]:2222"


# -- parsing ------------------------------------------------------------------------------


def test_corpus_lines_parse_with_reasons() -> None:
    lines = read_known_hosts(KNOWN_HOSTS)
    assert [line.number for line in lines] == list(range(1, 43))
    invalid = {line.number: line.error for line in lines if line.status is LineStatus.INVALID}
    # keys parsed: the bad marker, the missing key, the truncated blob, the unknown type
    # and the type/blob mismatch are all reported with their line numbers
    assert sorted(invalid) == [37, 38, 39, 40, 41, 42]
    assert invalid[37] == "invalid marker"
    assert invalid[38] == "truncated before key type"
    assert all(reason for reason in invalid.values())
    markers = {line.number: line.marker for line in lines if line.marker is not Marker.NONE}
    assert markers == {33: Marker.REVOKED, 34: Marker.CERT_AUTHORITY}
    comments = [line.number for line in lines if line.status is LineStatus.COMMENT]
    assert comments == [1, 5, 6, 10, 11, 15, 16, 20, 30, 31, 32, 35, 36]
    entries = [line for line in lines if line.status is LineStatus.ENTRY]
    assert all(line.key is not None for line in entries)
    assert sum(line.hashed for line in entries) == 12
    line3 = next(line for line in entries if line.number == 3)
    assert line3.hosts == "sisyphus.example.com"
    assert line3.comment == "ED25519 #1"
    assert line3.key is not None and line3.key.same_key(key("ed25519_1"))


def test_without_key_parsing_only_type_names_are_checked() -> None:
    lines = list(scan(KNOWN_HOSTS.read_text().splitlines(keepends=True)))
    invalid = [line.number for line in lines if line.status is LineStatus.INVALID]
    # ssh-keygen -H and -R reject exactly these (a bad blob passes without parsing)
    assert invalid == [37, 38, 39, 41]


@pytest.mark.parametrize(
    ("text", "status", "marker"),
    [
        ("", LineStatus.COMMENT, Marker.NONE),
        ("   \t", LineStatus.COMMENT, Marker.NONE),
        ("  # comment", LineStatus.COMMENT, Marker.NONE),
        ("h ssh-ed25519 AAAA", LineStatus.ENTRY, Marker.NONE),
        ("[h]:2222,10.0.0.1 ssh-ed25519 AAAA c", LineStatus.ENTRY, Marker.NONE),
        ("@revoked * ssh-ed25519 AAAA", LineStatus.ENTRY, Marker.REVOKED),
        ("@cert-authority *.x ED25519 AAAA", LineStatus.ENTRY, Marker.CERT_AUTHORITY),
        ("@revoked @revoked * ssh-ed25519 AAAA", LineStatus.INVALID, Marker.NONE),
        ("@cert-authority", LineStatus.INVALID, Marker.NONE),
        ("@ h ssh-ed25519 AAAA", LineStatus.INVALID, Marker.NONE),
        ("h", LineStatus.INVALID, Marker.NONE),
        ("h ssh-ed25519", LineStatus.INVALID, Marker.NONE),
        ("h ssh-ed25519 # no key", LineStatus.INVALID, Marker.NONE),
        ("h x AAAA", LineStatus.INVALID, Marker.NONE),
        ("h 1024 65537 1234", LineStatus.INVALID, Marker.NONE),
    ],
)
def test_line_forms(text: str, status: LineStatus, marker: Marker) -> None:
    line = parse_line(text + "\n", 7)
    assert line is not None
    assert line.number == 7
    assert line.status is status
    assert line.marker is marker
    assert line.text == text


def test_matching_lines_and_nul_bytes() -> None:
    line = parse_line("a.example.com,!b.example.com ssh-ed25519 AAAA\n", 1, "b.example.com")
    assert line is not None and line.status is LineStatus.ENTRY and not line.matched
    assert parse_line("x ssh-ed25519 AAAA\n", 1, "y", want_match=True) is None
    assert parse_line("# c\n", 1, "y", want_match=True) is None
    assert parse_line("@bad y ssh-ed25519 AAAA\n", 1, "y", want_match=True) is None
    bad_hash = parse_line("|1|xx|yy ssh-ed25519 AAAA\n", 1, "y", want_match=True)
    assert bad_hash is not None and bad_hash.status is LineStatus.INVALID
    # C strings end at a NUL byte: so does the line
    cut = parse_line("h ssh-ed25519 AAAA\0junk\n", 1)
    assert cut is not None and cut.text == "h ssh-ed25519 AAAA"
    crlf = parse_line("h ssh-ed25519 AAAA\r\n", 1)
    assert crlf is not None and crlf.text == "h ssh-ed25519 AAAA\r"


# -- lookups ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "keyname", "status", "line"),
    [
        ("sisyphus.example.com", "ed25519_1", HostKeyStatus.MATCH, 3),
        ("SISYPHUS.example.com", "rsa_1", HostKeyStatus.MATCH, 4),
        ("sisyphus.example.com", "ecdsa_5", HostKeyStatus.MATCH, 17),  # hashed
        ("sisyphus.example.com", "ed25519_4", HostKeyStatus.REVOKED, 33),
        ("sisyphus.example.com", "ed25519_2", HostKeyStatus.CHANGED, None),
        ("prometheus.example.com", "ecdsa_2", HostKeyStatus.MATCH, 7),
        ("192.0.2.1", "rsa_2", HostKeyStatus.MATCH, 9),
        ("2001:db8::1", "ed25519_6", HostKeyStatus.MATCH, 26),  # hashed address
        ("anything.example.com", "ed25519_3", HostKeyStatus.MATCH, 13),  # wildcard
        ("192.0.2.77", "rsa_3", HostKeyStatus.MATCH, 14),
        ("elsewhere.org", "ed25519_1", HostKeyStatus.NOT_FOUND, None),
    ],
)
def test_check_host_key(host: str, keyname: str, status: HostKeyStatus,
                        line: int | None) -> None:
    result = check_host_key(KNOWN_HOSTS, host, 22, key(keyname))
    assert result.status is status
    if line is not None:
        assert result.line is not None and result.line.number == line
    if status is HostKeyStatus.CHANGED:
        assert result.line is not None and result.line.marker is Marker.NONE


def test_ports_and_negation() -> None:
    k = key("ed25519_1")
    other = key("ed25519_2")
    lines = [
        f"[h.example.com]:2222 {k.openssh()}\n",
        f"*.example.com,!bad.example.com {other.openssh()}\n",
    ]
    assert check_host_key(lines, "h.example.com", 2222, k).status is HostKeyStatus.MATCH
    assert check_host_key(lines, "h.example.com", 22, k).status is HostKeyStatus.CHANGED
    assert check_host_key(lines, "bad.example.com", 22, other).status is \
        HostKeyStatus.NOT_FOUND
    assert [line.number for line in load_host_keys(lines, "h.example.com", 2222)] == [1]


def _make_ca_and_cert(tmp_path: Path, principals: str | None, validity: str = "+1d",
                      host: bool = True) -> tuple[Path, Path, Path]:
    keygen = "ssh-keygen"
    run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "ca")])
    run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "hostkey")])
    args = [keygen, "-q", "-s", str(tmp_path / "ca"), "-I", "id", "-V", validity]
    if host:
        args.append("-h")
    if principals is not None:
        args += ["-n", principals]
    done = run([*args, str(tmp_path / "hostkey.pub")])
    assert done.returncode == 0, done.stderr
    return tmp_path / "ca.pub", tmp_path / "hostkey.pub", tmp_path / "hostkey-cert.pub"


def _load(path: Path) -> PublicKey:
    return parse_public_line(path.read_text())[0]


def test_host_certificates_via_cert_authority(tmp_path: Path) -> None:
    ca, plain, cert_path = _make_ca_and_cert(tmp_path, "h.example.com,*.wild.org")
    ca_key, cert = _load(ca), _load(cert_path)
    lines = [f"@cert-authority *.example.com,*.wild.org {ca_key.openssh()}\n"]
    ok = check_host_key(lines, "h.example.com", 22, cert)
    assert ok.status is HostKeyStatus.CA_MATCH and ok.line is not None
    # wildcard principals count in host certificates
    assert check_host_key(lines, "a.wild.org", 22, cert).status is HostKeyStatus.CA_MATCH
    # a name the certificate does not list: the plain key is looked up instead
    miss = check_host_key(lines, "x.example.com", 22, cert)
    assert miss.status is HostKeyStatus.NOT_FOUND
    assert miss.certificate_problem == "Certificate invalid: name is not a listed principal"
    with_plain = [*lines, f"x.example.com {_load(plain).openssh()}\n"]
    assert check_host_key(with_plain, "x.example.com", 22, cert).status is HostKeyStatus.MATCH
    # a revoked CA revokes every certificate it signed
    revoked = [*lines, f"@revoked * {ca_key.openssh()}\n"]
    assert check_host_key(revoked, "h.example.com", 22, cert).status is HostKeyStatus.REVOKED
    # a CA line for other hosts does not vouch
    assert check_host_key(lines, "h.other.net", 22, cert).status is HostKeyStatus.NOT_FOUND
    # expired
    assert check_host_key(lines, "h.example.com", 22, cert, now=2**40).certificate_problem \
        == "Certificate invalid: expired"


def test_certificates_without_principals_match_nobody(tmp_path: Path) -> None:
    ca, _, cert_path = _make_ca_and_cert(tmp_path, None)
    lines = [f"@cert-authority * {_load(ca).openssh()}\n"]
    result = check_host_key(lines, "h.example.com", 22, _load(cert_path))
    assert result.status is HostKeyStatus.NOT_FOUND
    assert result.certificate_problem == "Certificate lacks principal list"


def test_user_certificates_are_not_host_certificates(tmp_path: Path) -> None:
    ca, _, cert_path = _make_ca_and_cert(tmp_path, "h", host=False)
    lines = [f"@cert-authority * {_load(ca).openssh()}\n"]
    result = check_host_key(lines, "h", 22, _load(cert_path))
    assert result.certificate_problem == "Certificate invalid: not a host certificate"


# -- editing ------------------------------------------------------------------------------


def test_add_host_key_plain_hashed_and_port(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    k = key("ed25519_1")
    added = add_host_key(str(path), "Host.Example.com", 22, k)
    assert added == [f"host.example.com {k.openssh()}"]
    path.write_text(path.read_text().rstrip("\n"))  # a last line without its newline
    hashed = add_host_key(str(path), "h", 2222, k, hashed=True, address="10.0.0.1")
    assert len(hashed) == 2
    assert rehash_matches(hashed[0].split()[0], "[h]:2222")
    assert rehash_matches(hashed[1].split()[0], "[10.0.0.1]:2222")
    text = path.read_text()
    assert text.count("\n") == 3 and text.endswith("\n")
    for host, port in (("host.example.com", 22), ("h", 2222), ("10.0.0.1", 2222)):
        assert check_host_key(path, host, port, k).status is HostKeyStatus.MATCH
    assert format_host_entry("H", k, address="1.2.3.4") == [f"h,1.2.3.4 {k.openssh()}"]


def test_remove_host_keeps_markers_and_backup(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_bytes(KNOWN_HOSTS.read_bytes())
    path.chmod(0o640)
    removal = remove_host(str(path), "sisyphus.example.com")
    assert [line.number for line in removal.removed] == [2, 3, 4, 12, 13, 14, 17, 18, 19, 40]
    assert removal.backup == f"{path}.old"
    assert Path(removal.backup).read_bytes() == KNOWN_HOSTS.read_bytes()
    after = path.read_text()
    assert "@revoked sisyphus.example.com" in after  # marker lines stay
    assert "@what" in after  # unreadable lines stay
    assert os.stat(path).st_mode & 0o777 == 0o640 & 0o644
    assert remove_host(str(path), "sisyphus.example.com").backup is None


def test_delete_and_hash_rewrites() -> None:
    source = KNOWN_HOSTS.read_text().splitlines(keepends=True)
    deleted = delete_host_lines(source, "prometheus.example.com")
    assert [line.number for line in deleted.found] == [7, 8, 9, 12, 13, 14, 21, 24, 27, 42]
    assert [line.number for line in deleted.invalid] == [37, 38, 39, 41]
    hashed = hash_host_lines(source)
    assert [line.number for line in hashed.wildcard] == [12, 13, 14]
    assert hashed.hashed_names
    # every name of a comma list gets its own hashed line, in lower case
    new = [text for text in hashed.lines if text.startswith("|1|")]
    names = ["sisyphus.example.com"] * 3 + ["prometheus.example.com", "192.0.2.1",
                                           "2001:db8::1"] * 3
    fresh = new[:12]
    assert all(rehash_matches(text.split()[0], name) for text, name in zip(fresh, names,
                                                                          strict=True))
