"""pyadd's pieces on their own: option parsing, lifetimes, destination constraints, the
OpenSSH 10.1 certificate lifetime, and the constraints each flag sends to an agent.

Whole-command behaviour is compared with the real ssh-add in tests/interop.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agent.interface import Constraints, Identity
from agent.pyadd import CERT_EXPIRY_GRACE, Pyadd, certificate_lifetime
from agent.pyadd_dest import ConstraintError, lookup_host_keys, parse_constraint, tilde_expand
from agent.pyadd_options import Fatal, UsageError, parse_options
from agent.pyadd_time import convtime, fmt_timeframe
from keytools.certificate import Certificate
from keytools.keyfile import load_public
from keytools.private import PrivateKey
from keytools.public import PublicKey
from tests.helpers import TESTDATA, private_copy, run, tool_path

SSHKEY = TESTDATA / "sshkey"


# -- lifetimes --------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    ("0", 0), ("90", 90), ("90s", 90), ("90m", 5400), ("1h30m", 5400), ("1H30M", 5400),
    ("2d", 172800), ("1w", 604800), ("1w2d3h4m5s", 788645), ("10s10", 20),
    ("2147483647", 2**31 - 1),
])
def test_convtime(text: str, seconds: int) -> None:
    assert convtime(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "5x", "-1", "1 h", "h5", "2147483648", "3551w",
                                  "1.5h", "5mm"])
def test_convtime_invalid(text: str) -> None:
    assert convtime(text) is None


@pytest.mark.parametrize(("seconds", "shown"), [
    (0, "00:00:00"), (90, "00:01:30"), (5400, "01:30:00"), (86399, "23:59:59"),
    (86400, "1d00h00m"), (90061, "1d01h01m"), (604800, "01w0d00h"), (788645, "01w2d03h"),
    (2**32 - 1, "7101w3d0"),  # snprintf into 9 bytes cuts it, as OpenSSH's buffer does
])
def test_fmt_timeframe(seconds: int, shown: str) -> None:
    assert fmt_timeframe(seconds) == shown


# -- options ----------------------------------------------------------------------------------


def test_options_bundled_and_separate() -> None:
    o = parse_options(["-cqt90", "-E", "md5", "-H", "kh", "-h", "a", "-hb", "key", "-l"])
    assert (o.confirm, o.quiet, o.lifetime, o.fingerprint_hash) == (True, True, 90, "md5")
    assert (o.hostkey_files, o.destinations, o.args) == (["kh"], ["a", "b"], ["key", "-l"])
    assert parse_options(["--", "-l"]).args == ["-l"]
    assert parse_options(["-e", "/p.so"]).deleting
    assert parse_options(["-m", "3", "-M", "4", "k"]).args == ["k"]  # deprecated, ignored


def test_options_keyring() -> None:
    assert parse_options(["--keyring", "k"]).use_keyring
    o = parse_options(["k", "--keyring"])
    assert o.use_keyring and o.args == ["k"]
    o = parse_options(["--", "--keyring"])
    assert not o.use_keyring and o.args == ["--keyring"]


@pytest.mark.parametrize(("argv", "message", "code"), [
    (["-l", "-L"], "-l flag already specified", 255),
    (["-X", "-x"], "-X flag already specified", 255),
    (["-E", "sha3"], 'Invalid hash algorithm "sha3"', 255),
    (["-t", "forever"], "Invalid lifetime", 1),
])
def test_option_errors(argv: list[str], message: str, code: int) -> None:
    with pytest.raises(Fatal) as caught:
        parse_options(argv)
    assert (str(caught.value), caught.value.code) == (message, code)


@pytest.mark.parametrize(("argv", "message"), [(["-Z"], "unknown option -- Z"),
                                               (["-s"], "option requires an argument -- s"),
                                               (["-q", "-h"], "option requires an argument -- h")])
def test_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_options(argv)


# -- destination constraints --------------------------------------------------------------------


@pytest.fixture
def known_hosts(tmp_path: Path) -> Path:
    salt = os.urandom(20)
    digest = hmac.new(salt, b"hidden", hashlib.sha1).digest()
    hashed = f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"
    ed = (SSHKEY / "ed25519_1.pub").read_text()
    ec = (SSHKEY / "ecdsa_1.pub").read_text()
    rsa = (SSHKEY / "rsa_1.pub").read_text()
    path = tmp_path / "known_hosts"
    path.write_text(f"# comment\nhost1,host2 {ed}@cert-authority *.ca.example {ec}"
                    f"@revoked host1 {rsa}{hashed} {rsa}!bad*,b* {ed}garbage line\n"
                    f"host1\t{ec}")
    return path


def _blob(name: str) -> bytes:
    return load_public(str(SSHKEY / name))[0].blob()


def test_lookup_host_keys(known_hosts: Path, tmp_path: Path) -> None:
    files = [str(known_hosts), str(tmp_path / "missing")]
    found = lookup_host_keys("host1", files)
    assert [(k.key.blob(), k.is_ca) for k in found] == [(_blob("ed25519_1.pub"), False),
                                                        (_blob("ecdsa_1.pub"), False)]
    assert [k.is_ca for k in lookup_host_keys("x.ca.example", files)] == [True]
    assert [k.key.blob() for k in lookup_host_keys("hidden", files)] == [_blob("rsa_1.pub")]
    assert len(lookup_host_keys("HOST2", files)) == 1
    assert lookup_host_keys("bad1", files) == []
    assert len(lookup_host_keys("bee", files)) == 1
    assert lookup_host_keys("nowhere", files) == []


def test_parse_constraint(known_hosts: Path) -> None:
    files = [str(known_hosts)]
    c = parse_constraint("host1", files)
    assert (c.from_hop.hostname, c.to_hop.hostname, c.to_hop.user) == ("", "host1", "")
    assert len(c.to_hop.keys) == 2 and c.from_hop.keys == ()
    c = parse_constraint("host2>alice@x.ca.example", files)
    assert (c.from_hop.hostname, c.to_hop.user, c.to_hop.hostname) == \
        ("host2", "alice", "x.ca.example")
    assert c.to_hop.keys[0].is_ca
    c = parse_constraint("a@b@host1", files)
    assert (c.to_hop.user, c.to_hop.hostname) == ("a@b", "host1")
    c = parse_constraint("carol@", files)
    assert (c.to_hop.user, c.to_hop.hostname, c.to_hop.keys) == ("carol", "", ())


@pytest.mark.parametrize(("spec", "message"), [
    ("", 'Invalid key destination constraint "": does not specify user or host'),
    ("nowhere", 'No host keys found for destination "nowhere"'),
    ("[host1]", 'No host keys found for destination "[host1"'),
    ("u@host1>host2", "Invalid key constraint u@host1: cannot specify user on 'from' host"),
    ("host1>nowhere", 'No host keys found for destination "nowhere"'),
])
def test_parse_constraint_errors(known_hosts: Path, spec: str, message: str) -> None:
    with pytest.raises(ConstraintError) as caught:
        parse_constraint(spec, [str(known_hosts)])
    assert str(caught.value) == message


def test_tilde_expand() -> None:
    import pwd

    home = pwd.getpwuid(os.getuid()).pw_dir.rstrip("/")
    assert tilde_expand("~/.ssh/known_hosts") == f"{home}/.ssh/known_hosts"
    assert tilde_expand("~") == f"{home}/"
    assert tilde_expand("/etc/x") == "/etc/x"
    root = pwd.getpwnam("root").pw_dir.rstrip("/")
    assert tilde_expand("~root/x") == f"{root}/x"
    with pytest.raises(ConstraintError):
        tilde_expand("~no-such-user-here/x")


# -- certificate lifetime (OpenSSH 10.1) ----------------------------------------------------------


def _cert(valid_before: int) -> Certificate:
    cert, _ = load_public(str(SSHKEY / "ed25519_1-cert.pub"))
    assert isinstance(cert, Certificate)
    return dataclasses.replace(cert, valid_before=valid_before)


def test_certificate_lifetime() -> None:
    now = int(time.time())
    assert certificate_lifetime(_cert(2**64 - 1), 0) == 0
    assert certificate_lifetime(_cert(2**64 - 1), 60) == 60
    left = certificate_lifetime(_cert(now + 3600), 0)
    assert left is not None and abs(left - (3600 + CERT_EXPIRY_GRACE)) <= 2
    assert certificate_lifetime(_cert(now + 3600), 60) == 60
    # expired, but within the grace period: what is left of it
    left = certificate_lifetime(_cert(now - 100), 0)
    assert left is not None and abs(left - (CERT_EXPIRY_GRACE - 100)) <= 2
    assert certificate_lifetime(_cert(now - CERT_EXPIRY_GRACE - 10), 0) is None
    assert certificate_lifetime(_cert(2**63), 0) == 2**31 - 1


# -- what each flag sends --------------------------------------------------------------------------


class Recorder:
    """An agent that records what it is asked, for checking the constraints sent."""

    def __init__(self) -> None:
        self.added: list[tuple[PublicKey, str, Constraints]] = []
        self.cards: list[tuple[str, str, Constraints]] = []

    def add(self, key: PrivateKey, comment: str, constraints: Constraints = Constraints()) \
            -> None:  # noqa: B008
        self.added.append((key.public, comment, constraints))

    def add_smartcard(self, provider: str, pin: str,
                      constraints: Constraints = Constraints()) -> None:  # noqa: B008
        self.cards.append((provider, pin, constraints))

    def list(self) -> list[Identity]:
        return []


def _pyadd(argv: list[str], recorder: Recorder, known: Path | None = None) -> Pyadd:
    from agent.pyadd_dest import parse_constraint as parse

    opts = parse_options(argv)
    p = Pyadd(recorder, opts)  # type: ignore[arg-type]
    if known is not None:
        p.destinations = tuple(parse(d, [str(known)]) for d in opts.destinations)
    return p


def test_constraints_sent_with_a_key(tmp_path: Path, known_hosts: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    key = private_copy("sshkey/ed25519_1", tmp_path)
    rec = Recorder()
    p = _pyadd(["-c", "-t", "1h", "-h", "host1", "-h", "host2>bob@host1", "-k", str(key)],
               rec, known_hosts)
    assert p.add_file(str(key)) == 0
    [(public, comment, c)] = rec.added
    assert public.blob() == _blob("ed25519_1.pub")
    from keytools.keyfile import load_private

    assert comment == (load_private(str(key), "")[1] or str(key))
    assert (c.lifetime, c.confirm, len(c.destinations)) == (3600, True, 2)
    assert c.destinations[1].to_hop.user == "bob"
    err = capsys.readouterr().err
    assert err.endswith("Lifetime set to 01:00:00\nThe user must confirm each use of the key\n")


def test_certificate_constraints(tmp_path: Path) -> None:
    """The certificate's key gets a lifetime ending 5 minutes after it expires (-N: not)."""
    ca = tmp_path / "ca"
    key = tmp_path / "k"
    for args in (["-t", "ed25519", "-N", "", "-f", str(ca)],
                 ["-t", "ed25519", "-N", "", "-f", str(key)],
                 ["-s", str(ca), "-I", "cid", "-n", "u", "-V", "-5m:+10m", str(key) + ".pub"]):
        done = run([tool_path("ssh-keygen"), "-q", *args])
        assert done.returncode == 0, done.stderr
    rec = Recorder()
    assert _pyadd([str(key)], rec).add_file(str(key)) == 0
    (_, _, plain), (cert, _, certc) = rec.added
    assert plain.lifetime is None and cert.is_certificate
    assert certc.lifetime is not None and abs(certc.lifetime - 900) <= 5
    rec = Recorder()
    assert _pyadd(["-N", str(key)], rec).add_file(str(key)) == 0
    assert rec.added[1][2].lifetime is None
    rec = Recorder()
    assert _pyadd(["-C", "-t", "60", str(key)], rec).add_file(str(key)) == 0
    assert len(rec.added) == 1 and rec.added[0][2].lifetime == 60


def test_card_constraints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import agent.pyadd as pyadd_module

    monkeypatch.setattr(pyadd_module, "read_passphrase", lambda prompt: "1234")
    cert, _ = load_public(str(SSHKEY / "ed25519_1-cert.pub"))
    rec = Recorder()
    p = _pyadd(["-C", "-c", "-s", "/x.so"], rec)
    assert p.update_card(True, "/x.so", [cert]) == 0
    [(provider, pin, c)] = rec.cards
    assert (provider, pin, c.confirm, c.certs_only) == ("/x.so", "1234", True, True)
    assert c.associated_certs == (cert,)
    rec = Recorder()
    assert _pyadd(["-k", "-s", "/x.so"], rec).update_card(True, "/x.so", [cert]) == 0
    assert rec.cards[0][2].associated_certs == ()


# -- the keyring store without a backend ----------------------------------------------


def test_passphrase_store_without_backend(tmp_path: Path) -> None:
    """No D-Bus session: every call says why, nothing raises anything else."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DBUS_", "PYTHON_KEYRING", "XDG_"))}
    env["HOME"] = str(tmp_path)
    code = ("from agent import passphrase_store as s\n"
            "for call in (lambda: s.lookup('k'), lambda: s.store('k', 'p'), "
            "lambda: s.forget('k')):\n"
            "    try:\n        call()\n        print('no error')\n"
            "    except s.StoreUnavailable as exc:\n        print('unavailable:', exc)\n")
    done = run([sys.executable, "-c", code], env=env)
    assert done.returncode == 0, done.stderr
    lines: list[Any] = done.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("unavailable: ") for line in lines)
