"""sshd_config's algorithm keywords in pysshd, judged by the installed sshd.

The +/-/^ list syntax and wildcards follow kex_assemble_names: checked by applying our
``assemble_names`` to sshd's own default and algorithm lists and comparing with what
``sshd -T`` prints for the same line. Refusals (``-t``) carry sshd's exact words and
exit status. pysshd's defaults are its own (stricter: SERVER_DEFAULT_* in
protocol/kex/kexinit.py), shown by ``pysshd -T`` as sshd prints its lists.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest

from protocol.kex.kexinit import (
    OPENSSH_KEY_TYPES,
    SERVER_ALGORITHM_KEYWORDS,
    SERVER_DEFAULT_CA_SIGNATURE_ALGORITHMS,
    SERVER_DEFAULT_CIPHERS,
    SERVER_DEFAULT_HOST_KEY_ALGORITHMS,
    SERVER_DEFAULT_KEX,
    SERVER_DEFAULT_MACS,
    SERVER_DEFAULT_PUBKEY_ALGORITHMS,
    assemble_algorithms,
    assemble_names,
    match_pattern_list,
)
from protocol.sshd_config import ConfigError, dump_config, parse_config
from tests.helpers import run, tool_path
from tests.interop.pysshd import pysshd_env
from tests.interop.sshd import sshd_path

PYSSHD = [sys.executable, "-m", "protocol.sshd_main"]
#: keyword -> (sshd -T name, ssh -Q query for sshd's "all" list)
KEYWORDS = {
    "KexAlgorithms": ("kexalgorithms", "kex"),
    "Ciphers": ("ciphers", "cipher"),
    "MACs": ("macs", "mac"),
    "HostKeyAlgorithms": ("hostkeyalgorithms", "HostKeyAlgorithms"),
    "PubkeyAcceptedAlgorithms": ("pubkeyacceptedalgorithms", "HostKeyAlgorithms"),
    "CASignatureAlgorithms": ("casignaturealgorithms", "HostKeyAlgorithms"),
}


@pytest.fixture(scope="module")
def host_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("policy") / "host"
    made = run([tool_path("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", str(path)])
    assert made.returncode == 0, made.stderr
    return path


def sshd_dump(config: Path) -> dict[str, str]:
    done = run([sshd_path(), "-T", "-f", str(config)])
    assert done.returncode == 0, done.stderr
    return dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)


@functools.cache
def sshd_all(keyword: str) -> tuple[str, ...]:
    """sshd's "all" list for ``keyword``, in the order its wildcards expand."""
    names = run([tool_path("ssh"), "-Q", KEYWORDS[keyword][1]]).stdout.split()
    if keyword == "CASignatureAlgorithms":
        return tuple(n for n in OPENSSH_KEY_TYPES
                     if n in names and "cert" not in n and not n.startswith("webauthn"))
    if KEYWORDS[keyword][1] == "HostKeyAlgorithms":
        return tuple(n for n in OPENSSH_KEY_TYPES if n in names)
    return tuple(names)


SPECS = [
    ("KexAlgorithms", "+diffie-hellman-group14-sha1"),
    ("KexAlgorithms", "-ecdh-sha2-*,diffie-hellman-group1*"),
    ("KexAlgorithms", "^diffie-hellman-group14-sha256,curve25519-sha256"),
    ("KexAlgorithms", "curve25519-sha256,curve25519-sha256,ecdh-sha2-nistp256"),
    ("Ciphers", "-*-ctr"),
    ("Ciphers", "^aes256-gcm@openssh.com"),
    ("Ciphers", "aes256-ctr,chacha20-poly1305@openssh.com"),
    ("MACs", "-umac*,hmac-sha1*"),
    ("MACs", "+hmac-sha2-256"),
    ("HostKeyAlgorithms", "ssh-ed25519*"),
    ("HostKeyAlgorithms", "-*-cert-v01@openssh.com,ecdsa*"),
    ("HostKeyAlgorithms", "^rsa-sha2-256"),
    ("PubkeyAcceptedAlgorithms", "+ssh-rsa"),
    ("PubkeyAcceptedAlgorithms", "rsa-sha2-*,ssh-ed25519"),
    ("CASignatureAlgorithms", "-ecdsa*"),
    ("CASignatureAlgorithms", "ssh-ed25519,rsa-sha2-512"),
]


@pytest.mark.parametrize(("keyword", "value"), SPECS)
def test_list_syntax_matches_sshd(tmp_path: Path, host_key: Path, keyword: str,
                                  value: str) -> None:
    """Our assembly over sshd's default and lists gives what sshd -T prints."""
    name = KEYWORDS[keyword][0]
    plain = tmp_path / "plain"
    plain.write_text(f"HostKey {host_key}\n")
    config = tmp_path / "config"
    config.write_text(f"{keyword} {value}\nHostKey {host_key}\n")
    default = sshd_dump(plain)[name].split(",")
    expected = sshd_dump(config)[name]
    assert ",".join(assemble_names(value, default, sshd_all(keyword))) == expected


def _pysshd(*args: str) -> tuple[int, str, str]:
    done = run([*PYSSHD, *args], env=pysshd_env())
    return done.returncode, done.stdout, done.stderr


REFUSED = [
    "KexAlgorithms foo", "KexAlgorithms +foo", "KexAlgorithms curve*", "KexAlgorithms +",
    "Ciphers foo", "Ciphers aes*", "Ciphers none", "Ciphers aes128-ctr,foo",
    "Ciphers !aes128-ctr", "MACs foo", "MACs +hmac-sha1,bar", "HostKeyAlgorithms foo",
    "HostKeyAlgorithms foo*", "PubkeyAcceptedAlgorithms foo", "CASignatureAlgorithms foo",
    "HostKeyAlgorithms !ssh-rsa", "CASignatureAlgorithms ssh-ed25519-cert-v01@openssh.com",
    "KexAlgorithms",
]


@pytest.mark.parametrize("line", REFUSED)
def test_refusals_have_sshds_words(tmp_path: Path, host_key: Path, line: str) -> None:
    config = tmp_path / "sshd_config"
    config.write_text(f"Port 2222\n{line}\nHostKey {host_key}\n")
    theirs = run([sshd_path(), "-t", "-f", str(config)])
    code, _, err = _pysshd("-t", "-f", str(config))
    assert theirs.returncode != 0
    assert (code, err) == (theirs.returncode, theirs.stderr)


def test_command_line_option_is_checked_too(host_key: Path) -> None:
    theirs = run([sshd_path(), "-t", "-f", "/dev/null", "-h", str(host_key),
                  "-o", "Ciphers=bogus"])
    code, _, err = _pysshd("-t", "-f", "/dev/null", "-h", str(host_key), "-o", "Ciphers=bogus")
    assert (code, err) == (theirs.returncode, theirs.stderr)


def test_pysshd_defaults_are_stricter_than_sshds(tmp_path: Path, host_key: Path) -> None:
    config = tmp_path / "sshd_config"
    config.write_text(f"HostKey {host_key}\n")
    code, out, err = _pysshd("-T", "-f", str(config))
    assert code == 0, err
    ours = dict(line.split(" ", 1) for line in out.splitlines())
    assert ours["kexalgorithms"] == ",".join(SERVER_DEFAULT_KEX)
    assert ours["ciphers"] == ",".join(SERVER_DEFAULT_CIPHERS)
    assert ours["macs"] == ",".join(SERVER_DEFAULT_MACS)
    assert ours["hostkeyalgorithms"] == ",".join(SERVER_DEFAULT_HOST_KEY_ALGORITHMS)
    assert ours["pubkeyacceptedalgorithms"] == ",".join(SERVER_DEFAULT_PUBKEY_ALGORITHMS)
    assert ours["casignaturealgorithms"] == ",".join(SERVER_DEFAULT_CA_SIGNATURE_ALGORITHMS)
    assert ours["hostkeyagent"] == "none"
    assert SERVER_DEFAULT_KEX[0] == "mlkem768x25519-sha256"
    every = [*SERVER_DEFAULT_KEX, *SERVER_DEFAULT_CIPHERS, *SERVER_DEFAULT_MACS,
             *SERVER_DEFAULT_HOST_KEY_ALGORITHMS]
    for banned in ("sha1", "cbc", "nistp", "ssh-rsa", "group14", "group-exchange", "umac"):
        assert not [a for a in every if banned in a], banned
    # Each default is a subset of what sshd accepts (plus what only OpenSSH 9.9+ has).
    theirs = sshd_dump(config)
    for keyword, (name, _) in KEYWORDS.items():
        known = set(sshd_all(keyword)) | {"mlkem768x25519-sha256"}
        assert set(ours[name].split(",")) <= known, keyword
        assert name in theirs


def test_names_pysshd_lacks_are_dropped_with_a_warning(tmp_path: Path, host_key: Path) -> None:
    """An existing sshd_config naming sntrup761 or umac still loads."""
    config = tmp_path / "sshd_config"
    config.write_text(f"KexAlgorithms +sntrup761x25519-sha512\nMACs umac-128-etm@openssh.com,"
                      f"hmac-sha2-256-etm@openssh.com\nHostKey {host_key}\n")
    assert run([sshd_path(), "-t", "-f", str(config)]).returncode == 0
    code, out, err = _pysshd("-T", "-f", str(config))
    assert code == 0
    assert "sntrup761x25519-sha512 not supported by pysshd; ignored" in err
    assert "umac-128-etm@openssh.com not supported by pysshd; ignored" in err
    lists = dict(line.split(" ", 1) for line in out.splitlines())
    assert lists["kexalgorithms"] == ",".join(SERVER_DEFAULT_KEX)
    assert lists["macs"] == "hmac-sha2-256-etm@openssh.com"


def test_first_value_wins_and_config_object(host_key: Path) -> None:
    config = parse_config("Ciphers aes128-ctr\nCiphers aes256-ctr\n"
                          "HostCertificate /a\nHostCertificate /b\nHostKeyAgent /s\n"
                          "PubkeyAcceptedKeyTypes +ssh-rsa\n", "cfg",
                          options=["KexAlgorithms=curve25519-sha256"])
    assert config.ciphers == ("aes128-ctr",)
    assert config.kex_algorithms == ("curve25519-sha256",)
    assert config.host_certificates == ("/a", "/b")
    assert config.host_key_agent == "/s"
    assert config.pubkey_accepted_algorithms[-1] == "ssh-rsa"
    text = dump_config(config)
    assert "ciphers aes128-ctr\n" in text and "hostcertificate /b\n" in text
    with pytest.raises(ConfigError) as info:
        parse_config("Ciphers nope\n", "cfg")
    assert str(info.value) == "cfg line 1: Bad SSH2 cipher spec 'nope'."


@pytest.mark.parametrize(("name", "patterns", "expected"), [
    ("ssh-ed25519", "ssh-ed25519*", 1), ("ssh-ed25519", "!ssh-ed25519,*", -1),
    ("aes128-ctr", "aes???-ctr", 1), ("aes128-ctr", "AES*", 0), ("x", "", 0),
])
def test_match_pattern_list(name: str, patterns: str, expected: int) -> None:
    assert match_pattern_list(name, patterns) == expected


def test_every_keyword_has_a_known_default() -> None:
    for spec in SERVER_ALGORITHM_KEYWORDS.values():
        assert set(spec.default) <= set(spec.implemented), spec.keyword
        names, lacking = assemble_algorithms(spec.keyword, ",".join(spec.default))
        assert (names, lacking) == (spec.default, ())
