"""-V validity intervals and the Valid: text, against the real ssh-keygen.

Each form is given to ssh-keygen -s; the interval it wrote must be the one
parse_validity computes, and its -L Valid: line the one format_validity prints, in UTC and
in a zone with summer time (POSIX TZ strings, so no tzdata is needed).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from keytools.cert_validity import (
    FOREVER,
    convtime,
    format_time,
    format_validity,
    parse_absolute_time,
    parse_validity,
)
from keytools.certificate import Certificate
from keytools.errors import InvalidArgument
from keytools.public import parse_public_line
from tests.helpers import TESTDATA, private_copy, run

ZONES = ["UTC0", "EST5EDT,M3.2.0,M11.1.0"]
ABSOLUTE = [
    "20260101:20270101", "20260101Z:20270101Z", "20260101utc:20270101z",
    "202607011230:20270101UTC", "20260701123059:forever", "always:20270101",
    "always:forever", "20260230:20270101", "2026 1 1:20270101", "19991231235959Z:20000101",
    "0x10:0x20", "0x10:0x7fffffffffffffff", "0x1:0xfffffffffffffffe", "0x0:0x3afff44180",
    "20380119031408Z:21060207062816Z",
]
RELATIVE = ["+52w", "+1h30m", "-1d:+1w", "-5m:forever", "always:+1d", "+1s1s:+2D", "-0:+1"]
ERRORS = [
    "bad", "+5x", "+", "2026010:20270101", "20261301:20270101", "20260101246000:20270101",
    "20260101:2027010112", "+1d:-1d", "-1d", ":+1d", "+1d:", "+1d:always", "forever:forever",
    "0x:0x1", "0x1g:0x2", "0X10:0x20", "0x10:0x1ffffffffffffffff", "+2147483648",
    "+1w:+2147483648", "+35791395m", "20260101 :20270101", "19690101:20000101",
    "+1dZ:+2d", "-99999w:+1d",
]


@pytest.fixture
def zone(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    tz: str = request.param
    monkeypatch.setenv("TZ", tz)
    time.tzset()
    yield tz
    monkeypatch.undo()
    time.tzset()


@pytest.fixture(scope="module")
def signing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("validity")
    ca = private_copy("sshkey/ed25519_1", tmp)
    user = tmp / "user.pub"
    user.write_text((TESTDATA / "sshkey" / "ed25519_2.pub").read_text())
    return ca, user


def _their_cert(ssh_keygen: str, signing: tuple[Path, Path], spec: str,
                tz: str) -> tuple[Certificate, str]:
    ca, user = signing
    env = {**os.environ, "TZ": tz}
    done = run([ssh_keygen, "-q", "-s", ca, "-I", "id", "-n", "p", "-V", spec, user], env=env)
    assert done.returncode == 0, done.stderr
    cert_path = user.with_name("user-cert.pub")
    listing = run([ssh_keygen, "-L", "-f", cert_path], env=env)
    valid = next(line for line in listing.stdout.splitlines() if "Valid:" in line)
    cert, _ = parse_public_line(cert_path.read_text())
    assert isinstance(cert, Certificate)
    return cert, valid.split("Valid: ", 1)[1]


@pytest.mark.parametrize("zone", ZONES, indirect=True)
@pytest.mark.parametrize("spec", ABSOLUTE)
def test_absolute_forms_match_ssh_keygen(ssh_keygen: str, signing: tuple[Path, Path],
                                         spec: str, zone: str) -> None:
    cert, valid = _their_cert(ssh_keygen, signing, spec, zone)
    assert parse_validity(spec) == (cert.valid_after, cert.valid_before)
    assert format_validity(cert.valid_after, cert.valid_before) == valid


@pytest.mark.parametrize("zone", ZONES[1:], indirect=True)
@pytest.mark.parametrize("spec", RELATIVE)
def test_relative_forms_match_ssh_keygen(ssh_keygen: str, signing: tuple[Path, Path],
                                         spec: str, zone: str) -> None:
    before = int(time.time())
    cert, valid = _their_cert(ssh_keygen, signing, spec, zone)
    after = int(time.time())
    ours = [parse_validity(spec, now) for now in range(before, after + 1)]
    assert (cert.valid_after, cert.valid_before) in ours
    assert format_validity(cert.valid_after, cert.valid_before) == valid


@pytest.mark.parametrize("spec", ERRORS)
def test_refused_forms_match_ssh_keygen(ssh_keygen: str, signing: tuple[Path, Path],
                                        spec: str) -> None:
    ca, user = signing
    done = run([ssh_keygen, "-q", "-s", ca, "-I", "id", "-V", spec, user])
    with pytest.raises(InvalidArgument) as exc:
        parse_validity(spec)
    assert done.returncode == 255
    assert str(exc.value) == done.stderr.replace("\r\n", "\n").rstrip()


def test_relative_arithmetic() -> None:
    now = 1_800_000_030
    assert parse_validity("+52w", now) == (1_799_999_940, now + 52 * 604800)
    assert parse_validity("-1d:+1w", now) == (now - 86400, now + 604800)
    assert parse_validity("+0:+1", now) == (now, now + 1)
    assert parse_validity("always:forever", now) == (0, FOREVER)
    with pytest.raises(InvalidArgument, match=r"^Certificate time -10s cannot be represented$"):
        parse_validity("-10s:+1d", 5)
    with pytest.raises(InvalidArgument, match=r"^Empty certificate validity interval$"):
        parse_validity("+1m1:+2", now)


def test_convtime() -> None:
    assert convtime("90") == 90
    assert convtime("1h30m") == 5400
    assert convtime("2W") == 2 * 604800
    assert convtime("1s1s") == 2
    assert convtime("2147483647") == 2**31 - 1
    for bad in ("", "5x", "+5", " 5", "5 ", "1h-1", "2147483648", "35791395m", "s", "1ss", "٣"):
        assert convtime(bad) is None, bad


def test_local_dates_are_read_as_standard_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenSSH's mktime() gets tm_isdst = 0: a summer date is read as winter time."""
    monkeypatch.setenv("TZ", "EST5EDT,M3.2.0,M11.1.0")
    time.tzset()
    try:
        assert parse_absolute_time("20260701") == parse_absolute_time("20260701050000Z")
        assert format_time(parse_absolute_time("20260701") or 0) == "2026-07-01T01:00:00"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_format_far_times() -> None:
    assert format_validity(0, FOREVER) == "forever"
    assert format_validity(0, 1).startswith("before ")
    assert format_validity(1, FOREVER).startswith("after ")
    assert format_time(FOREVER - 1) == format_time(2**63 - 1)
