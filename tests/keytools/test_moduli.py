"""pykeygen -M generate / -M screen: moduli(5) files that ssh-keygen and sshd accept.

Small sizes keep this fast: 512-bit candidates are generated, screened by both tools
(the same safe primes must come out), and the primes are checked independently with
``openssl prime``. A real sshd then loads a moduli file written by pykeygen (2048-bit
groups, screened from the system's own moduli file) and uses it for group exchange.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

from keytools.cli.pykeygen import main
from keytools.moduli import (
    MODULI_TESTS_MILLER_RABIN,
    MODULI_TESTS_SIEVE,
    MODULI_TYPE_SAFE,
    MODULI_TYPE_SOPHIE_GERMAIN,
    guess_generator,
    is_probable_prime,
    parse_moduli_line,
    plan_sieve,
    small_primes,
)
from tests.helpers import run

PYKEYGEN = [sys.executable, "-m", "keytools.cli.pykeygen"]
SYSTEM_MODULI = Path("/etc/ssh/moduli")
_SUMMARY = re.compile(r"Found (\d+) safe primes of (\d+) candidates")


@pytest.fixture(scope="module")
def candidates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("moduli") / "candidates"
    done = run([*PYKEYGEN, "-M", "generate", "-O", "bits=512", str(out)])
    assert done.returncode == 0, done.stderr
    messages = done.stderr.splitlines()
    assert len(messages) == 3
    # the sieve covers what ssh-keygen's does for this size (see gen_candidates)
    plan = plan_sieve(512)
    assert messages[0].endswith(f" Sieve next {plan.numbers} plus 511-bit")
    assert re.search(r" Sieved with \d+ small primes in \d+ seconds$", messages[1])
    assert messages[2].endswith(f" Found {len(out.read_text().splitlines())} candidates")
    return out


def test_candidate_file_format(candidates: Path) -> None:
    lines = candidates.read_text().splitlines()
    assert len(lines) > 1000
    for line in lines[:500]:
        stamp, kind, tests, tries, size, gen, q = line.split(" ")
        assert re.fullmatch(r"\d{14}", stamp)
        assert (int(kind), int(tests), int(size), gen) == \
            (MODULI_TYPE_SOPHIE_GERMAIN, MODULI_TESTS_SIEVE, 510, "0")
        assert int(tries) > 0
        assert q == q.upper()
        value = int(q, 16)
        # 511 bits, the top two set (so p = 2q + 1 has 512), odd, no small factor
        assert value.bit_length() == 511 and value >> 509 == 3 and value & 1
        for p in small_primes(2000):
            assert value % p and (2 * value + 1) % p


def _summary(stderr: str) -> tuple[int, int]:
    found = _SUMMARY.search(stderr)
    assert found is not None, stderr
    return int(found.group(1)), int(found.group(2))


def _openssl_prime(n: int) -> bool:
    done = run(["openssl", "prime", "-hex", f"{n:X}"])
    return done.stdout.strip().endswith("is prime")


def test_screening_agrees_with_ssh_keygen(candidates: Path, tmp_path: Path,
                                          ssh_keygen: str) -> None:
    opts = ["-O", "lines=1500"]
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    mine = run([*PYKEYGEN, "-M", "screen", "-f", str(candidates), *opts, str(ours)])
    real = run([ssh_keygen, "-M", "screen", "-f", str(candidates), *opts, str(theirs)])
    assert mine.returncode == real.returncode == 0, mine.stderr
    # ssh-keygen reads our candidate file as its own: same candidates, same primes
    assert _summary(mine.stderr) == _summary(real.stderr)
    ours_lines, theirs_lines = ours.read_text().splitlines(), theirs.read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in ours_lines] == \
        [line.split(" ", 1)[1] for line in theirs_lines]
    for line in ours_lines:
        entry = parse_moduli_line(line)  # what sshd's parse_prime() demands
        assert entry is not None
        assert (entry.kind, entry.tests, entry.tries, entry.size) == \
            (MODULI_TYPE_SAFE, MODULI_TESTS_SIEVE | MODULI_TESTS_MILLER_RABIN, 100, 511)
        assert entry.generator in (2, 3, 5) and entry.generator == guess_generator(entry.modulus)
        p = entry.modulus
        if shutil.which("openssl"):
            assert _openssl_prime(p) and _openssl_prime((p - 1) // 2)
        else:
            assert pow(2, p - 1, p) == 1 and pow(3, (p - 1) // 2 - 1, (p - 1) // 2) == 1


@pytest.mark.parametrize("opts", [["-O", "start-line=5", "-O", "lines=40"],
                                  ["-O", "lines=60", "-O", "generator=5"],
                                  ["-O", "lines=60", "-O", "prime-tests=4"]])
def test_screen_options(candidates: Path, tmp_path: Path, ssh_keygen: str,
                        opts: list[str]) -> None:
    mine = run([*PYKEYGEN, "-M", "screen", "-f", str(candidates), *opts, str(tmp_path / "o")])
    real = run([ssh_keygen, "-M", "screen", "-f", str(candidates), *opts, str(tmp_path / "t")])
    assert mine.returncode == real.returncode == 0
    assert _summary(mine.stderr) == _summary(real.stderr)


def test_screen_from_stdin_appends_and_checkpoints(candidates: Path, tmp_path: Path) -> None:
    out = tmp_path / "moduli"
    out.write_text("# existing\n")
    checkpoint = tmp_path / "cp"
    head = "".join(candidates.read_text().splitlines(keepends=True)[:30])
    done = run([*PYKEYGEN, "-M", "screen", "-O", f"checkpoint={checkpoint}", str(out)],
               input=head)
    assert done.returncode == 0, done.stderr
    assert out.read_text().startswith("# existing\n")
    assert not checkpoint.exists()
    # a checkpoint says where to resume: lines up to it are skipped
    checkpoint.write_text("30\n")
    again = run([*PYKEYGEN, "-M", "screen", "-O", f"checkpoint={checkpoint}",
                 "-f", str(candidates), "-O", "lines=5", str(out)])
    assert f"Loaded checkpoint from '{checkpoint}' line 30" in again.stderr
    assert _summary(again.stderr)[1] <= 5


@pytest.mark.parametrize(
    "args",
    [
        ["-M", "generate", "-O", "bits=100", "OUT"],
        ["-M", "generate", "-O", "bits=x", "OUT"],
        ["-M", "generate", "-O", "foo=1", "OUT"],
        ["-M", "generate", "-O", "memory=3", "OUT"],
        ["-M", "generate", "-O", "memory=0", "OUT"],
        ["-M", "generate", "-O", "start=zz", "OUT"],
        ["-M", "generate"],
        ["-M", "generate", "a", "b"],
        ["-M", "screen", "-f", "MISSING", "OUT"],
        ["-M", "screen", "-f", "CAND", "-O", "generator=0", "OUT"],
        ["-M", "screen", "-f", "CAND", "-O", "prime-tests=2", "OUT"],
        ["-M", "screen", "-f", "CAND", "-O", "bogus", "OUT"],
        ["-M", "bogus", "OUT"],
    ],
)
def test_option_errors(args: list[str], candidates: Path, tmp_path: Path, ssh_keygen: str,
                       capsys: pytest.CaptureFixture[str]) -> None:
    fill = {"OUT": str(tmp_path / "out"), "MISSING": str(tmp_path / "missing"),
            "CAND": str(candidates)}
    argv = [fill.get(a, a) for a in args]
    code = main(argv)
    err = capsys.readouterr().err
    real = run([ssh_keygen, *argv])
    assert code == real.returncode
    theirs = real.stderr.replace("\r\n", "\n")
    if "bits=x" in argv:
        # ssh-keygen prints memory past the option here (opts[i]+12); we print the value
        assert err == "Invalid number: x (invalid)\n" and theirs.startswith("Invalid number: ")
        return
    assert err == theirs


def test_number_theory() -> None:
    primes = small_primes(100)
    assert primes[:5] == [3, 5, 7, 11, 13] and primes[-1] == 97
    assert [n for n in range(60) if is_probable_prime(n, 8)] == [2, *small_primes(60)]
    mersenne = (1 << 127) - 1
    assert is_probable_prime(mersenne, 20)
    assert not is_probable_prime(mersenne * ((1 << 61) - 1), 20)
    assert not is_probable_prime(3215031751, 20)  # a strong pseudoprime to bases 2, 3, 5, 7
    assert parse_moduli_line("# comment") is None
    with pytest.raises(Exception, match="wrong number of fields"):
        parse_moduli_line("20260101000000 2 6 100")


@pytest.mark.skipif(not SYSTEM_MODULI.exists(), reason="no /etc/ssh/moduli")
def test_real_sshd_uses_our_moduli_file(tmp_path: Path) -> None:
    """Screen 2048-bit candidates (q of known groups, plus near misses) and serve them."""
    from tests.interop.sshd import start_sshd

    known = [line.split() for line in SYSTEM_MODULI.read_text().splitlines()
             if not line.startswith("#") and line.split()[4:5] == ["2047"]][:3]
    if len(known) < 3:
        pytest.skip("no 2048-bit groups in /etc/ssh/moduli")
    lines = []
    for fields in known:
        q = (int(fields[6], 16) - 1) // 2
        for candidate in (q, q + 2, q + 6):
            lines.append(f"20260101000000 4 2 1000 2046 0 {candidate:X}\n")
    cand = tmp_path / "candidates"
    cand.write_text("".join(lines))
    moduli = tmp_path / "moduli"
    done = run([*PYKEYGEN, "-M", "screen", "-f", str(cand), "-O", "prime-tests=8",
                str(moduli)])
    assert done.returncode == 0, done.stderr
    ours = [line.split() for line in moduli.read_text().splitlines()]
    assert [(f[1], f[2], f[4], f[5], f[6]) for f in ours] == \
        [("2", "6", "2047", f[5], f[6]) for f in known]
    server = start_sshd(tmp_path / "sshd", f"ModuliFile {moduli}\nLogLevel DEBUG3\n")
    try:
        server.ssh("true", options=["KexAlgorithms=diffie-hellman-group-exchange-sha256"])
    finally:
        server.stop()
    log = server.log_text()
    assert "SSH2_MSG_KEX_DH_GEX_GROUP sent" in log
    assert "no suitable primes" not in log and "could not open" not in log
