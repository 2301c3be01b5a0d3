"""keytools.krl against OpenSSH: the corpus KRLs, ssh-keygen's encoder, signatures, errors.

Every expectation comes from the corpus (expected-query.txt, plain.krl.listing, the KRL
files themselves) or from running the real ssh-keygen on the same input.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from keytools.certificate import Certificate
from keytools.errors import (
    FeatureUnsupported,
    InvalidArgument,
    InvalidFormat,
    KeyRevoked,
    KrlBadMagic,
    MessageIncomplete,
    SignatureInvalid,
    SshError,
)
from keytools.keyfile import load_public
from keytools.krl import Krl, SerialSet, encode_krl, load_krl, parse_krl
from keytools.krl.encoder import SERIAL_BITMAP, choose_next_state
from keytools.krl.listing import sanitize
from keytools.krl.spec import KrlSpecError, SpecReader, strtoull
from keytools.private import PrivateKey, generate
from keytools.public import PublicKey
from keytools.wire import Writer
from tests.helpers import TESTDATA, openssh_version, run, tool_path

KRL_DIR = TESTDATA / "krl"
TIMESTAMP = slice(20, 28)  # the generated_date field of the header


def expected_answers() -> list[tuple[str, str, bool]]:
    """(krl file, key file, revoked) from expected-query.txt."""
    rows = []
    for line in (KRL_DIR / "expected-query.txt").read_text().splitlines():
        krl, key, rc = line.split()
        rows.append((krl, key, rc == "rc=1"))
    return rows


def key(name: str) -> PublicKey:
    return load_public(str(KRL_DIR / name))[0]


def without_time(data: bytes) -> bytes:
    return data[:TIMESTAMP.start] + data[TIMESTAMP.stop:]


def keygen_krl(tmp_path: Path, spec: bytes | str, *args: str) -> bytes:
    """ssh-keygen -k's KRL for ``spec`` (with -s ca.pub unless args say otherwise)."""
    spec_path = tmp_path / "in.spec"
    spec_path.write_bytes(spec.encode() if isinstance(spec, str) else spec)
    out = tmp_path / "ref.krl"
    out.unlink(missing_ok=True)
    done = run([tool_path("ssh-keygen"), "-q", "-k", "-f", str(out),
                *(args or ("-s", str(KRL_DIR / "ca.pub"))), str(spec_path)])
    assert done.returncode == 0, done.stderr
    return out.read_bytes()


def our_krl(spec: bytes | str, ca: PublicKey | None, generated: int, wild: bool = False) -> bytes:
    krl = Krl()
    SpecReader(krl, ca, wild).apply(spec.encode() if isinstance(spec, str) else spec, "in.spec")
    krl.generated = generated
    return encode_krl(krl)


# -- the corpus ---------------------------------------------------------------------------


@pytest.mark.parametrize(("krl_name", "key_name", "revoked"), expected_answers())
def test_corpus_answers(krl_name: str, key_name: str, revoked: bool) -> None:
    krl = load_krl(str(KRL_DIR / krl_name))
    assert krl.is_revoked(key(key_name)) is revoked
    if revoked:
        with pytest.raises(KeyRevoked, match="Key is revoked"):
            krl.check_key(key(key_name))


@pytest.mark.parametrize("name", ["plain.krl", "big.krl"])
def test_reencoding_is_byte_identical(name: str) -> None:
    """Reading OpenSSH's KRL and writing it again gives the very same file."""
    data = (KRL_DIR / name).read_bytes()
    assert parse_krl(data).to_bytes() == data


def test_listing_matches_corpus_and_ssh_keygen() -> None:
    krl = load_krl(str(KRL_DIR / "plain.krl"))
    ours = krl.listing().splitlines(keepends=True)
    assert ours[1].startswith("# Generated at ")
    assert "".join(ours[:1] + ours[2:]) == (KRL_DIR / "plain.krl.listing").read_text()
    for name in ("plain.krl", "big.krl"):
        real = run([tool_path("ssh-keygen"), "-Q", "-l", "-f", str(KRL_DIR / name)])
        assert load_krl(str(KRL_DIR / name)).listing() == real.stdout


def test_header_fields() -> None:
    krl = load_krl(str(KRL_DIR / "plain.krl"))
    assert (krl.version, krl.comment, krl.flags) == (7, "test krl", 0)
    assert krl.generated > 0 and krl.signers == ()
    assert len(krl.certs) == 1 and krl.certs[0].ca == key("ca.pub")


# -- the writer against ssh-keygen -------------------------------------------------------


@pytest.mark.parametrize("spec_name", ["spec", "big.spec"])
def test_spec_gives_ssh_keygen_bytes(tmp_path: Path, spec_name: str) -> None:
    spec = (KRL_DIR / spec_name).read_bytes()
    ref = keygen_krl(tmp_path, spec)
    ours = our_krl(spec, key("ca.pub"), int.from_bytes(ref[TIMESTAMP], "big"))
    assert ours == ref


def _random_spec(rng: random.Random) -> str:
    """Serials and ranges in the regimes that make krl.c pick each section type."""
    gaps = rng.choice([(1, 4), (1, 30), (20, 120), (50, 400), (1, 1 << 40)])
    serial = rng.choice([1, 1 << 32, (1 << 63) + 5])
    lines = []
    for _ in range(rng.choice([1, 7, 60, 400])):
        serial += rng.randint(*gaps)
        if rng.random() < 0.2:
            top = serial + rng.choice([1, 2, 47, 48, 49, 63, 64, 65, 150, 300, 5000])
            lines.append(f"serial: {serial}-{top}")
            serial = top
        else:
            lines.append(f"serial: {serial}")
    rng.shuffle(lines)
    return "\n".join(lines) + "\n"


def test_random_specs_give_ssh_keygen_bytes(tmp_path: Path) -> None:
    rng = random.Random(4)
    ca = key("ca.pub")
    for _ in range(25):
        spec = _random_spec(rng)
        ref = keygen_krl(tmp_path, spec)
        assert our_krl(spec, ca, int.from_bytes(ref[TIMESTAMP], "big")) == ref, spec


def test_every_spec_line_form_gives_ssh_keygen_bytes(tmp_path: Path) -> None:
    k = {n: (KRL_DIR / f"k{n}.pub").read_text().strip() for n in range(1, 9)}
    c = {n: (KRL_DIR / f"k{n}-cert.pub").read_text().strip() for n in range(1, 9)}
    spec = (
        "  # comment\n\nserial: 0x10\nSERIAL:\t010-0x20 # octal to hex\nserial: -1\n"
        f"id: some id\nid:x\nkey: {c[1]}\nsha1: {k[2]}\nSHA256: {c[3]}\n"
        "hash: SHA256:SIVOLFfzZc1uSsHYxPzqu1XOOQ8dmACZ+xXkkVMcJmk\n"
        f"{k[4]}\n{c[5]}\n{c[6]} trailing words\n"
    )
    for args, ca, wild in ((("-s", str(KRL_DIR / "ca.pub")), key("ca.pub"), False),
                           (("-s", "none"), None, True)):
        ref = keygen_krl(tmp_path, spec, *args)
        assert our_krl(spec, ca, int.from_bytes(ref[TIMESTAMP], "big"), wild) == ref


def test_dense_serials_stay_readable_by_openssh(tmp_path: Path) -> None:
    """ssh-keygen writes bitmaps wider than its reader's 16384-bit limit for dense
    serials; ours splits them, and ssh-keygen reads ours with the same answers."""
    spec = "".join(f"serial: {s}\n" for s in range(1, 60_000, 2))
    ref = keygen_krl(tmp_path, spec)
    theirs = run([tool_path("ssh-keygen"), "-Q", "-f", str(tmp_path / "ref.krl")])
    ours_path = tmp_path / "ours.krl"
    ours_path.write_bytes(our_krl(spec, key("ca.pub"), 1))
    listed = run([tool_path("ssh-keygen"), "-Q", "-l", "-f", str(ours_path)])
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split("\n")[2:] == parse_krl(ours_path.read_bytes()) \
        .listing().split("\n")[2:]
    if theirs.returncode != 0:  # OpenSSH 9.2/10.0 cannot read its own output here
        assert "bignum is too large" in theirs.stderr
    else:  # a fixed OpenSSH: then the outputs must agree again
        assert without_time(ours_path.read_bytes()) == without_time(ref)


def test_choose_next_state_prefers_bitmap_for_dense_runs() -> None:
    assert choose_next_state(0, 1, False, 0, 2) == (SERIAL_BITMAP, False)
    assert choose_next_state(SERIAL_BITMAP, 1, False, 300, 300)[0] == 0x20  # list
    assert choose_next_state(0, 10_000, True, 0, 0)[0] == 0x21  # range


# -- the query structure ------------------------------------------------------------------


def test_serial_set_lookups() -> None:
    s = SerialSet()
    s.add(5)
    s.add(10, 20)
    s.add(100, 1_000_000)
    s.add_singles([7, 9, 2**64 - 1])
    s.add_bitmap(5000, 0b1011)  # 5000, 5001, 5003 (inside the wide range anyway)
    s.add_bitmap(2_000_000, 0b101)
    inside = [5, 7, 9, 10, 15, 20, 100, 5002, 1_000_000, 2_000_000, 2_000_002, 2**64 - 1]
    outside = [1, 6, 8, 21, 99, 1_000_001, 2_000_001, 2_000_003, 2**64 - 2]
    assert all(x in s for x in inside)
    assert not any(x in s for x in outside)
    assert s.runs() == [(5, 5), (7, 7), (9, 20), (100, 1_000_000), (2_000_000, 2_000_000),
                        (2_000_002, 2_000_002), (2**64 - 1, 2**64 - 1)]


def test_100k_serials_build_and_query_fast() -> None:
    rng = random.Random(1)
    serials = sorted(rng.sample(range(1, 2_000_001), 100_000))
    ca = key("ca.pub")
    start = time.perf_counter()
    krl = Krl()
    krl.revoke_serials(ca, serials)
    data = krl.to_bytes()
    again = parse_krl(data)
    elapsed = time.perf_counter() - start
    cert = key("k1-cert.pub")
    assert isinstance(cert, Certificate)
    assert again.certs[0].serials.runs() == krl.certs[0].serials.runs()
    assert again.is_revoked(cert) is (cert.serial in set(serials))
    assert elapsed < 5, elapsed  # generous: about 0.1 s on a quiet machine


# -- signatures ---------------------------------------------------------------------------


def _signed(signers: int = 1) -> tuple[Krl, list[PrivateKey], bytes]:
    krl = Krl(version=3, comment="signed")
    krl.revoke_serial(key("ca.pub"), 1001)
    keys = [generate("ed25519") for _ in range(signers)]
    return krl, keys, krl.to_bytes(keys)


def test_signed_krl_round_trip() -> None:
    _, keys, data = _signed(2)
    again = parse_krl(data, trusted=[keys[1].public])
    assert [k.blob() for k in again.signers] == [k.public.blob() for k in keys]
    assert again.is_revoked(key("k1-cert.pub"))
    with pytest.raises(SignatureInvalid):
        parse_krl(data, trusted=[generate("ed25519").public])
    with pytest.raises(InvalidFormat):
        parse_krl(data, allow_signatures=False)  # OpenSSH >= 9.4 behaviour


def test_signed_krl_tampered_or_revoked_signer() -> None:
    krl, keys, data = _signed()
    tampered = bytearray(data)
    tampered[45] ^= 1  # inside the comment
    with pytest.raises(SshError):
        parse_krl(bytes(tampered))
    krl.revoke_key(keys[0].public)
    with pytest.raises(KeyRevoked):
        parse_krl(krl.to_bytes(keys))
    # a section after the signature is refused
    with pytest.raises(InvalidFormat):
        parse_krl(data + Writer().byte(2).string(b"").getvalue())


def test_ssh_keygen_checks_our_signatures(tmp_path: Path) -> None:
    if openssh_version() >= (9, 4):
        pytest.skip("OpenSSH 9.4 and later refuse signed KRLs")
    _, _, data = _signed()
    path = tmp_path / "signed.krl"
    path.write_bytes(data)
    cert = str(KRL_DIR / "k1-cert.pub")
    ok = run([tool_path("ssh-keygen"), "-Q", "-f", str(path), cert])
    assert (ok.returncode, ok.stdout) == (1, f"{cert} (k1): REVOKED\n")
    bad = bytearray(data)
    bad[-5] ^= 1  # inside the signature
    path.write_bytes(bytes(bad))
    refused = run([tool_path("ssh-keygen"), "-Q", "-f", str(path), cert])
    assert refused.returncode == 255 and "Invalid KRL file" in refused.stderr


# -- malformed KRLs -----------------------------------------------------------------------


def _krl_with(section: int, body: bytes) -> bytes:
    header = (KRL_DIR / "plain.krl").read_bytes()[:40]  # magic .. reserved (no comment)
    return header + Writer().string(b"").byte(section).string(body).getvalue()


def _certs(sub_type: int, body: bytes) -> bytes:
    ca = key("ca.pub").blob()
    return Writer().string(ca).string(b"").byte(sub_type).string(body).getvalue()


@pytest.mark.parametrize(("data", "error"), [
    (b"", KrlBadMagic),
    (b"SSHKRL\n\0\0\0\0\2" + bytes(40), InvalidFormat),
    (b"SSHKRL\n\0\0\0\0\1", MessageIncomplete),
])
def test_bad_headers(data: bytes, error: type[SshError]) -> None:
    with pytest.raises(error):
        parse_krl(data)


@pytest.mark.parametrize(("section", "body", "error"), [
    (1, _certs(0x20, (0).to_bytes(8, "big")), InvalidArgument),  # serial 0
    (1, _certs(0x20, b"\0" * 7 + b"\1" + b"\0"), MessageIncomplete),
    (1, _certs(0x21, (9).to_bytes(8, "big") + (3).to_bytes(8, "big")), InvalidArgument),
    (1, _certs(0x21, bytes(16) + b"x"), InvalidArgument),
    (1, _certs(0x22, (2**64 - 2).to_bytes(8, "big") + Writer().mpint(0b101).getvalue()),
     InvalidFormat),  # bitmap wraps u64
    (1, _certs(0x22, bytes(8) + Writer().mpint(1 << 16384).getvalue()), InvalidFormat),
    (1, _certs(0x23, Writer().string(b"a\0b").getvalue()), InvalidFormat),
    (1, _certs(0x30, b""), InvalidFormat),
    (1, _certs(0x39, Writer().string(b"x@y").byte(1).string(b"").getvalue()),
     FeatureUnsupported),
    (3, Writer().string(bytes(19)).getvalue(), InvalidFormat),
    (5, Writer().string(bytes(31)).getvalue(), InvalidFormat),
    (6, b"", InvalidFormat),
    (255, Writer().string(b"crit@example.com").byte(1).string(b"").getvalue(),
     FeatureUnsupported),
])
def test_bad_sections(section: int, body: bytes, error: type[SshError]) -> None:
    with pytest.raises(error):
        parse_krl(_krl_with(section, body))


def test_optional_extensions_are_skipped() -> None:
    ext = Writer().string(b"opt@example.com").byte(0).string(b"data").getvalue()
    krl = parse_krl(_krl_with(255, ext) + Writer().byte(1).string(_certs(0x39, ext))
                    .getvalue())
    assert krl.certs == [] and not krl.revoked_keys


def test_ca_entries_need_a_revocation() -> None:
    """A certificates section with only empty subsections adds no CA (as in krl.c)."""
    data = _krl_with(1, _certs(0x20, b""))
    krl = parse_krl(data)
    assert krl.certs == []
    assert len(krl.to_bytes()) == 44  # the header and its empty comment, nothing else


# -- spec files ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [
    ("12", (12, 2, False)), ("0x1f", (31, 4, False)), ("017", (15, 3, False)),
    ("0x", (0, 1, False)), ("09", (0, 1, False)), ("-1", (2**64 - 1, 2, False)),
    ("abc", (0, 0, False)), ("99999999999999999999", (2**64 - 1, 20, True)),
    (" +5-", (5, 3, False)),
])
def test_strtoull(text: str, value: tuple[int, int, bool]) -> None:
    assert strtoull(text) == value


def test_spec_errors_name_file_and_line() -> None:
    reader = SpecReader(Krl(), None)
    with pytest.raises(KrlSpecError, match="requires specification of a CA key"):
        reader.apply(b"serial: 5\n", "f")
    reader = SpecReader(Krl(), key("ca.pub"))
    with pytest.raises(KrlSpecError, match=r'^f:2: invalid serial "5 - 6"$'):
        reader.apply(b"# x\nserial: 5 - 6\n", "f")
    with pytest.raises(KrlSpecError, match=r"^g:1: unsupported hash algorithm$"):
        reader.apply(b"hash: MD5:aa\n", "f", "g")


def test_sanitize_like_asmprintf() -> None:
    assert sanitize(b"ok id", utf8=False) == "ok id"
    assert sanitize("h\u00e9\t\x01".encode(), utf8=False) == "h\\303\\251\\011\\001"
    assert sanitize("h\u00e9\t".encode() + b"\xff", utf8=True) == "h\u00e9\\011\\377"
