"""keytools.allowed_signers: patterns, times, options, lines, and who may sign.

The command-line comparisons with ssh-keygen are in test_sshsig_cli.py; these check the
library directly, including what the installed OpenSSH cannot show (the 10.3 rule that a
certificate without principals matches nobody).
"""

from __future__ import annotations

import calendar
import time
from pathlib import Path

import pytest

from keytools import allowed_signers as al
from keytools.certificate import HOST_CERT, PLAIN_TO_CERT, USER_CERT, Certificate
from keytools.errors import FileError, InvalidFormat, KeyNotFound
from keytools.private import PrivateKey, generate
from keytools.public import PublicKey, decode_public_blob
from keytools.wire import Writer

DAY = 86400
NOW = 1_700_000_000  # 2023-11-14


# -- patterns -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("s", "pattern", "expected"),
    [
        ("alice", "alice", True),
        ("alice", "alic", False),
        ("alice", "a*", True),
        ("alice", "*e", True),
        ("alice", "a?ice", True),
        ("alice", "a?ce", False),
        ("", "*", True),
        ("", "", True),
        ("a", "", False),
        ("a*b", "a*b", True),
        ("axxb", "a**b", True),
        ("x@example.com", "*@example.com", True),
        ("x@example.org", "*@example.com", False),
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "*a*a*a*a*a*a*a*a*a*a*c", False),
        ("é", "?", False),  # OpenSSH matches bytes: "é" is two
        ("é", "??", True),
    ],
)
def test_match_pattern(s: str, pattern: str, expected: bool) -> None:
    assert al.match_pattern(s, pattern) is expected


@pytest.mark.parametrize(
    ("s", "patterns", "expected"),
    [
        ("alice", "bob,alice", 1),
        ("alice", "bob,carol", 0),
        ("alice", "!alice,*", -1),
        ("alice", "*,!alice", -1),
        ("bob", "!alice,*", 1),
        ("alice", "", 0),
        ("alice", ",alice", 1),
        ("alice", "a" * 1100 + ",alice", 0),  # an over-long sub-pattern fails the whole list
        ("ALICE", "alice", 0),
    ],
)
def test_match_pattern_list(s: str, patterns: str, expected: int) -> None:
    assert al.match_pattern_list(s, patterns) == expected


def test_match_pattern_list_lowercase() -> None:
    assert al.match_pattern_list("alice", "ALICE", dolower=True) == 1


# -- times --------------------------------------------------------------------------------


def _local(*fields: int) -> int:
    padded = (*fields, *([0] * (6 - len(fields))))
    return int(time.mktime((*padded, 0, 0, 0)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20200101", _local(2020, 1, 1)),
        ("202001011230", _local(2020, 1, 1, 12, 30)),
        ("20200101123045", _local(2020, 1, 1, 12, 30, 45)),
        ("20200230", _local(2020, 3, 1)),  # mktime rolls over
        ("20200101Z", calendar.timegm((2020, 1, 1, 0, 0, 0))),
        ("20200101utc", calendar.timegm((2020, 1, 1, 0, 0, 0))),
        ("20200101123045Z", calendar.timegm((2020, 1, 1, 12, 30, 45))),
        ("2020 101", _local(2020, 1, 1)),  # strptime skips spaces before a number
    ],
)
def test_parse_absolute_time(text: str, expected: int) -> None:
    assert al.parse_absolute_time(text) == expected


@pytest.mark.parametrize(
    "text", ["", "2020", "2020010", "202001011", "20201301", "20200132", "2020010125",
             "abcdefgh", "2020-1-1", "00000101", "19691231Z", "Z", "20200101 Z"],
)
def test_parse_absolute_time_refusals(text: str) -> None:
    with pytest.raises(InvalidFormat):
        al.parse_absolute_time(text)


def test_format_absolute_time() -> None:
    assert al.format_absolute_time(_local(2021, 2, 3, 4, 5, 6)) == "2021-02-03T04:05:06"
    assert al.format_absolute_time(2**64 - 1)  # clamps instead of failing


# -- options ------------------------------------------------------------------------------


def test_parse_options() -> None:
    opts = al.parse_options(
        'Cert-Authority,namespaces="git,file",valid-after="20200101",valid-before="20300101"'
    )
    assert opts.cert_authority
    assert opts.namespaces == "git,file"
    assert opts.valid_after == _local(2020, 1, 1)
    assert opts.valid_before == _local(2030, 1, 1)
    assert al.parse_options("") == al.SignerOptions()
    assert al.parse_options('namespaces="a\\"b"').namespaces == 'a"b'


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("foo", "unknown key option"),
        ("cert-authorityX", "unknown key option"),
        ("cert-authority,", "unexpected end-of-options"),
        ('namespaces="a",namespaces="b"', 'multiple "namespaces" clauses'),
        ("namespaces=a", "missing start quote"),
        ('namespaces="a', "missing end quote"),
        ('valid-after="2020"', 'invalid "valid-after" time'),
        ('valid-before="x"', 'invalid "valid-before" time'),
        ('valid-after="20200101",valid-after="20200102"', 'multiple "valid-after" clauses'),
        ('valid-after="20300101",valid-before="20200101"',
         '"valid-before" time is before "valid-after"'),
    ],
)
def test_parse_options_refusals(text: str, reason: str) -> None:
    with pytest.raises(InvalidFormat) as info:
        al.parse_options(text)
    assert str(info.value) == reason


# -- lines --------------------------------------------------------------------------------

KEY = generate("ed25519").public
LINE_KEY = KEY.openssh()


def test_parse_line_forms() -> None:
    entry = al.parse_line(f"alice,bob {LINE_KEY} comment\n", "f", 3)
    assert entry is not None
    assert (entry.principals, entry.key) == ("alice,bob", KEY)
    assert (entry.path, entry.line_number) == ("f", 3)
    assert entry.options == al.SignerOptions()
    quoted = al.parse_line(f'"alice smith,bob" namespaces="git" {LINE_KEY}\r\n')
    assert quoted is not None
    assert quoted.principals == "alice smith,bob"
    assert quoted.options.namespaces == "git"
    # a quote only groups a whole field: what follows the closing quote is the next field
    with pytest.raises(InvalidFormat, match="bad options: unknown key option"):
        al.parse_line(f'"alice smith",bob {LINE_KEY}\n')
    assert al.parse_line("\n") is None
    assert al.parse_line("   # comment\n") is None
    assert al.parse_line(f"alice {LINE_KEY}\n", required_principal="bob") is None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("lonely", "invalid line"),
        ('"unterminated ' + LINE_KEY, "invalid line"),
        ("alice\n", "missing key"),
        ("alice ssh-ed25519 notbase64\n", "invalid key"),
        ('alice namespaces="open ' + LINE_KEY, "invalid options"),
        (f"alice foo {LINE_KEY}\n", "bad options: unknown key option"),
        (f"alice {KEY.key_type} AAAA\n", "invalid key"),
    ],
)
def test_parse_line_refusals(line: str, reason: str) -> None:
    with pytest.raises(InvalidFormat) as info:
        al.parse_line(line, "signers", 7)
    assert str(info.value) == f"signers:7: {reason}"


# -- who may sign -------------------------------------------------------------------------


def _certificate(
    key: PublicKey, ca: PrivateKey, principals: tuple[str, ...], cert_type: int = USER_CERT,
    valid: tuple[int, int] = (0, 2**64 - 1),
) -> Certificate:
    draft = Certificate(
        PLAIN_TO_CERT[key.key_type], b"n" * 32, key, 7, cert_type, "id", principals,
        valid[0], valid[1], (), (), b"", ca.public, b"",
    )
    signed = draft.to_be_signed()
    cert = decode_public_blob(signed + Writer().string(ca.sign(signed)).getvalue())
    assert isinstance(cert, Certificate)
    return cert


@pytest.fixture(scope="module")
def ca() -> PrivateKey:
    return generate("ed25519")


@pytest.fixture(scope="module")
def user() -> PrivateKey:
    return generate("ed25519")


def _write(tmp_path: Path, *lines: str, name: str = "allowed_signers") -> str:
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def test_plain_key_patterns_namespaces_and_validity(tmp_path: Path, user: PrivateKey) -> None:
    key = user.public.openssh()
    path = _write(
        tmp_path,
        "# people",
        f"!mallory,*@example.com {key}",
        f'carol namespaces="git,file" {key}',
        f'dave valid-after="20200101Z",valid-before="20210101Z" {key}',
    )
    check = al.check_allowed_keys
    check(path, user.public, "x@example.com", "file", NOW)
    with pytest.raises(KeyNotFound):
        check(path, user.public, "mallory", "file", NOW)
    check(path, user.public, "carol", "git", NOW)
    messages: list[str] = []
    with pytest.raises(KeyNotFound):
        check(path, user.public, "carol", "mail", NOW, messages.append)
    assert messages == [f'{path}:3: key is not permitted for use in signature namespace "mail"']
    check(path, user.public, "dave", "file", calendar.timegm((2020, 6, 1, 0, 0, 0)))
    messages.clear()
    with pytest.raises(KeyNotFound):
        check(path, user.public, "dave", "file", NOW, messages.append)
    assert messages[0].startswith(f"{path}:4: key has expired: verify time ")
    with pytest.raises(KeyNotFound):
        check(path, generate("ed25519").public, "carol", "git", NOW)
    assert al.find_principals(path, user.public, NOW) == ["!mallory", "*@example.com"]
    assert al.match_principals(path, "carol") == ["carol"]
    assert al.match_principals(path, "a@example.com") == ["!mallory,*@example.com"]
    with pytest.raises(KeyNotFound):
        al.match_principals(path, "mallory")


def test_bad_lines_are_reported_and_skipped(tmp_path: Path, user: PrivateKey) -> None:
    path = _write(tmp_path, "alice", f"alice bogus {user.public.openssh()}",
                  f"alice {user.public.openssh()}")
    messages: list[str] = []
    al.check_allowed_keys(path, user.public, "alice", "file", NOW, messages.append)
    assert messages == [f"{path}:1: missing key", f"{path}:2: bad options: unknown key option"]
    # match-principals stops at a bad line that names the principal, as ssh-keygen does
    with pytest.raises(InvalidFormat, match="missing key"):
        al.match_principals(path, "alice")


def test_certificates_follow_cert_authority_lines(
    tmp_path: Path, ca: PrivateKey, user: PrivateKey
) -> None:
    cert = _certificate(user.public, ca, ("alice", "bob"))
    ca_line = f'alice,b*,carol cert-authority,namespaces="file" {ca.public.openssh()}'
    path = _write(tmp_path, f"alice {user.public.openssh()}", ca_line)
    al.check_allowed_keys(path, cert, "alice", "file", NOW)
    messages: list[str] = []
    with pytest.raises(KeyNotFound):
        al.check_allowed_keys(path, cert, "carol", "file", NOW, messages.append)
    assert messages == [f"{path}:2: certificate not authorized: "
                        "Certificate invalid: name is not a listed principal"]
    with pytest.raises(KeyNotFound):  # the plain key's line does not accept its certificate
        al.check_allowed_keys(_write(tmp_path, f"alice {user.public.openssh()}", name="plain"),
                              cert, "alice", "file", NOW)
    assert al.find_principals(path, cert, NOW) == ["alice", "bob"]
    # the plain key still matches its own line and not the CA's
    assert al.find_principals(path, user.public, NOW) == ["alice"]


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("empty", "Certificate lacks principal list"),
        ("host", "Certificate invalid: not a user certificate"),
        ("expired", "Certificate invalid: expired"),
        ("future", "Certificate invalid: not yet valid"),
    ],
)
def test_certificates_refused(
    kind: str, reason: str, tmp_path: Path, ca: PrivateKey, user: PrivateKey
) -> None:
    principals: tuple[str, ...] = () if kind == "empty" else ("alice",)
    cert_type = HOST_CERT if kind == "host" else USER_CERT
    valid = {"expired": (0, NOW - DAY), "future": (NOW + DAY, NOW + 2 * DAY)}.get(
        kind, (0, 2**64 - 1)
    )
    cert = _certificate(user.public, ca, principals, cert_type, valid)
    path = _write(tmp_path, f"* cert-authority {ca.public.openssh()}")
    messages: list[str] = []
    with pytest.raises(KeyNotFound):
        al.check_allowed_keys(path, cert, "alice", "file", NOW, messages.append)
    assert messages == [f"{path}:1: certificate not authorized: {reason}"]
    # find-principals: a certificate with no principals matches nobody (OpenSSH 10.3 rule),
    # even behind a wildcard line
    messages.clear()
    with pytest.raises(KeyNotFound):
        al.find_principals(path, cert, NOW, messages.append)
    assert messages == [f"{path}:1: no valid principals found"]


def test_missing_file(tmp_path: Path, user: PrivateKey) -> None:
    missing = str(tmp_path / "nope")
    with pytest.raises(FileError, match=f'Unable to open allowed keys file "{missing}"'):
        al.check_allowed_keys(missing, user.public, "a", "file", NOW)
    with pytest.raises(FileError):
        al.match_principals(missing, "a")
