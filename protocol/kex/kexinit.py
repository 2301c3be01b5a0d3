"""SSH_MSG_KEXINIT: the algorithm offer, its wire form, and negotiation (RFC 4253 7.1).

The pseudo-algorithms that ride in the kex list (ext-info-c/-s, the strict-kex markers)
are only ever offered in the first KEXINIT and never chosen as a method.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from keytools.errors import (
    InvalidFormat,
    NegotiationFailed,
    NoCipherMatch,
    NoCompressMatch,
    NoHostKeyMatch,
    NoKexMatch,
    NoMacMatch,
    SshError,
)
from keytools.wire import Reader, Writer
from protocol import messages
from protocol.ciphers import CIPHERS

EXT_INFO_CLIENT = "ext-info-c"
EXT_INFO_SERVER = "ext-info-s"
STRICT_CLIENT = "kex-strict-c-v00@openssh.com"
STRICT_SERVER = "kex-strict-s-v00@openssh.com"
MARKERS = frozenset({EXT_INFO_CLIENT, EXT_INFO_SERVER, STRICT_CLIENT, STRICT_SERVER})

# OpenSSH 10's orders, minus what this implementation lacks (sntrup761, umac, sk host keys).
DEFAULT_KEX = (
    "mlkem768x25519-sha256",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group-exchange-sha256",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group14-sha256",
)
DEFAULT_HOST_KEY_ALGORITHMS = (
    "ssh-ed25519-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com",
    "rsa-sha2-256-cert-v01@openssh.com",
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
)
DEFAULT_CIPHERS = (
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
)
DEFAULT_MACS = (
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha2-256",
    "hmac-sha2-512",
    "hmac-sha1-etm@openssh.com",
    "hmac-sha1",
)
#: none first: like ssh's Compression=no, zlib only if the user asks (or the peer insists)
DEFAULT_COMPRESSION = ("none", "zlib@openssh.com")

# pysshd's defaults (issue 7): stricter than sshd's where no common client needs more.
# Post-quantum hybrid first; no SHA-1 kex, no 2048-bit DH (group14, and group exchange,
# which would hand a 2048-bit group to a client asking for one), no NIST-curve kex or host
# keys (all available again with e.g. ``KexAlgorithms +ecdh-sha2-nistp256``), no
# encrypt-and-MAC or SHA-1 MACs, no CBC (pysshd has none), no ssh-rsa SHA-1 signatures.
SERVER_DEFAULT_KEX = (
    "mlkem768x25519-sha256",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
)
SERVER_DEFAULT_HOST_KEY_ALGORITHMS = (
    "ssh-ed25519-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com",
    "rsa-sha2-256-cert-v01@openssh.com",
    "ssh-ed25519",
    "rsa-sha2-512",
    "rsa-sha2-256",
)
SERVER_DEFAULT_CIPHERS = (
    "chacha20-poly1305@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
)
SERVER_DEFAULT_MACS = (
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
)
#: User keys are the client's choice: ECDSA user keys stay accepted (common on tokens).
SERVER_DEFAULT_PUBKEY_ALGORITHMS = (
    "ssh-ed25519-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com",
    "rsa-sha2-256-cert-v01@openssh.com",
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
)
SERVER_DEFAULT_CA_SIGNATURE_ALGORITHMS = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
)


@dataclass(frozen=True)
class Preferences:
    """What this side offers, most preferred first."""

    kex: tuple[str, ...] = DEFAULT_KEX
    host_key: tuple[str, ...] = DEFAULT_HOST_KEY_ALGORITHMS
    ciphers: tuple[str, ...] = DEFAULT_CIPHERS
    macs: tuple[str, ...] = DEFAULT_MACS
    compression: tuple[str, ...] = DEFAULT_COMPRESSION


@dataclass(frozen=True)
class KexInit:
    """One side's KEXINIT; ``payload`` is the exact message (it enters the exchange hash)."""

    cookie: bytes
    kex: tuple[str, ...]
    host_key: tuple[str, ...]
    ciphers_c2s: tuple[str, ...]
    ciphers_s2c: tuple[str, ...]
    macs_c2s: tuple[str, ...]
    macs_s2c: tuple[str, ...]
    compression_c2s: tuple[str, ...]
    compression_s2c: tuple[str, ...]
    languages_c2s: tuple[str, ...] = ()
    languages_s2c: tuple[str, ...] = ()
    first_kex_follows: bool = False
    payload: bytes = field(default=b"", compare=False, repr=False)

    @classmethod
    def build(
        cls, prefs: Preferences, host_key: tuple[str, ...] | None = None,
        extra_kex: tuple[str, ...] = (),
    ) -> KexInit:
        """Our offer; ``extra_kex`` appends the first-kex markers."""
        hk = prefs.host_key if host_key is None else host_key
        draft = cls(
            os.urandom(16), prefs.kex + extra_kex, hk, prefs.ciphers, prefs.ciphers,
            prefs.macs, prefs.macs, prefs.compression, prefs.compression,
        )
        return cls.parse(draft.encode())

    def encode(self) -> bytes:
        w = Writer().byte(messages.KEXINIT).raw(self.cookie)
        for names in (
            self.kex, self.host_key, self.ciphers_c2s, self.ciphers_s2c, self.macs_c2s,
            self.macs_s2c, self.compression_c2s, self.compression_s2c, self.languages_c2s,
            self.languages_s2c,
        ):
            w.name_list(names)
        return w.boolean(self.first_kex_follows).uint32(0).getvalue()

    @classmethod
    def parse(cls, payload: bytes) -> KexInit:
        r = Reader(payload)
        if r.byte() != messages.KEXINIT:
            raise InvalidFormat()
        cookie = r.raw(16)
        lists = [tuple(r.name_list()) for _ in range(10)]
        follows = r.boolean()
        r.uint32()  # reserved; OpenSSH ignores its value and anything after it
        return cls(cookie, lists[0], lists[1], lists[2], lists[3], lists[4], lists[5],
                   lists[6], lists[7], lists[8], lists[9], follows, payload)


@dataclass(frozen=True)
class Algorithms:
    """The negotiated set; ``mac_*`` is None with an AEAD cipher."""

    kex: str
    host_key: str
    cipher_c2s: str
    cipher_s2c: str
    mac_c2s: str | None
    mac_s2c: str | None
    compression_c2s: str
    compression_s2c: str


def _match(
    client: tuple[str, ...], server: tuple[str, ...], error: type[NegotiationFailed],
    their_offer: tuple[str, ...],
) -> str:
    offered = set(server)
    for name in client:
        if name in offered and name not in MARKERS:
            return name
    raise error(their_offer=",".join(their_offer))


def negotiate(client: KexInit, server: KexInit, *, we_are_client: bool) -> Algorithms:
    """RFC 4253 7.1: for each slot, the client's first choice the server also offers.

    ``we_are_client`` picks which list an error quotes as "their offer".
    """

    def theirs(c: tuple[str, ...], s: tuple[str, ...]) -> tuple[str, ...]:
        return s if we_are_client else c

    kex = _match(client.kex, server.kex, NoKexMatch, theirs(client.kex, server.kex))
    host_key = _match(
        client.host_key, server.host_key, NoHostKeyMatch, theirs(client.host_key, server.host_key)
    )
    enc = [
        _match(c, s, NoCipherMatch, theirs(c, s))
        for c, s in ((client.ciphers_c2s, server.ciphers_c2s),
                     (client.ciphers_s2c, server.ciphers_s2c))
    ]
    macs: list[str | None] = []
    for cipher, c, s in ((enc[0], client.macs_c2s, server.macs_c2s),
                         (enc[1], client.macs_s2c, server.macs_s2c)):
        spec = CIPHERS.get(cipher)
        aead = spec is not None and spec.aead
        macs.append(None if aead else _match(c, s, NoMacMatch, theirs(c, s)))
    comp = [
        _match(c, s, NoCompressMatch, theirs(c, s))
        for c, s in ((client.compression_c2s, server.compression_c2s),
                     (client.compression_s2c, server.compression_s2c))
    ]
    return Algorithms(kex, host_key, enc[0], enc[1], macs[0], macs[1], comp[0], comp[1])


def guess_was_right(client: KexInit, server: KexInit) -> bool:
    """Whether a first_kex_packet_follows guess used the negotiated kex and host key type."""
    return (
        bool(client.kex and server.kex and client.host_key and server.host_key)
        and client.kex[0] == server.kex[0]
        and client.host_key[0] == server.host_key[0]
    )


# -- sshd_config algorithm lists (servconf.c + kex_assemble_names) ------------------------

#: Names OpenSSH 9.x/10.x accept in these keywords (pysshd takes an existing sshd_config);
#: the ones pysshd lacks are dropped from the effective list with a warning.
OPENSSH_KEX = (
    "diffie-hellman-group1-sha1", "diffie-hellman-group14-sha1",
    "diffie-hellman-group14-sha256", "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512", "diffie-hellman-group-exchange-sha1",
    "diffie-hellman-group-exchange-sha256", "ecdh-sha2-nistp256", "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521", "curve25519-sha256", "curve25519-sha256@libssh.org",
    "sntrup761x25519-sha512", "sntrup761x25519-sha512@openssh.com", "mlkem768x25519-sha256",
)
OPENSSH_CIPHERS = (
    "3des-cbc", "aes128-cbc", "aes192-cbc", "aes256-cbc", "aes128-ctr", "aes192-ctr",
    "aes256-ctr", "aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
)
OPENSSH_MACS = (
    "hmac-sha1", "hmac-sha1-96", "hmac-sha2-256", "hmac-sha2-512", "hmac-md5", "hmac-md5-96",
    "umac-64@openssh.com", "umac-128@openssh.com", "hmac-sha1-etm@openssh.com",
    "hmac-sha1-96-etm@openssh.com", "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com", "hmac-md5-etm@openssh.com", "hmac-md5-96-etm@openssh.com",
    "umac-64-etm@openssh.com", "umac-128-etm@openssh.com",
)
#: sshkey.c's key implementations, in its order (wildcards expand in this order)
OPENSSH_KEY_TYPES = (
    "ssh-ed25519", "ssh-ed25519-cert-v01@openssh.com", "sk-ssh-ed25519@openssh.com",
    "sk-ssh-ed25519-cert-v01@openssh.com", "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com", "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com", "ecdsa-sha2-nistp521",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "webauthn-sk-ecdsa-sha2-nistp256@openssh.com", "ssh-dss", "ssh-dss-cert-v01@openssh.com",
    "ssh-rsa", "ssh-rsa-cert-v01@openssh.com", "rsa-sha2-256",
    "rsa-sha2-256-cert-v01@openssh.com", "rsa-sha2-512", "rsa-sha2-512-cert-v01@openssh.com",
)
#: what pysshd can verify from a client (ssh-rsa only if configured back in)
_PUBKEY_IMPLEMENTED = frozenset(DEFAULT_HOST_KEY_ALGORITHMS) | {
    "ssh-rsa", "ssh-rsa-cert-v01@openssh.com"}
_CERT = "-cert-v01@openssh.com"


@dataclass(frozen=True)
class AlgorithmKeyword:
    """One sshd_config algorithm keyword: its default, what pysshd implements ("all",
    in the order wildcards expand), what sshd's parser accepts, and its error words."""

    keyword: str
    field: str
    assemble_name: str
    default: tuple[str, ...]
    implemented: tuple[str, ...]
    known: tuple[str, ...]
    bad: str
    key_types: bool = False


SERVER_ALGORITHM_KEYWORDS: dict[str, AlgorithmKeyword] = {
    k.keyword.lower(): k
    for k in (
        AlgorithmKeyword("Ciphers", "ciphers", "ciphers", SERVER_DEFAULT_CIPHERS,
                         DEFAULT_CIPHERS, OPENSSH_CIPHERS, "Bad SSH2 cipher spec '{}'."),
        AlgorithmKeyword("MACs", "macs", "macs", SERVER_DEFAULT_MACS, DEFAULT_MACS,
                         OPENSSH_MACS, "Bad SSH2 mac spec '{}'."),
        AlgorithmKeyword("KexAlgorithms", "kex_algorithms", "kex_algorithms",
                         SERVER_DEFAULT_KEX, DEFAULT_KEX, OPENSSH_KEX,
                         "Bad SSH2 KexAlgorithms '{}'."),
        AlgorithmKeyword("HostKeyAlgorithms", "host_key_algorithms", "hostkeyalgorithms",
                         SERVER_DEFAULT_HOST_KEY_ALGORITHMS,
                         tuple(a for a in OPENSSH_KEY_TYPES
                               if a in DEFAULT_HOST_KEY_ALGORITHMS),
                         OPENSSH_KEY_TYPES, "Bad key types '{}'.", key_types=True),
        AlgorithmKeyword("PubkeyAcceptedAlgorithms", "pubkey_accepted_algorithms",
                         "pubkey_accepted_algos", SERVER_DEFAULT_PUBKEY_ALGORITHMS,
                         tuple(a for a in OPENSSH_KEY_TYPES if a in _PUBKEY_IMPLEMENTED),
                         OPENSSH_KEY_TYPES, "Bad key types '{}'.", key_types=True),
        AlgorithmKeyword("CASignatureAlgorithms", "ca_signature_algorithms",
                         "ca_sign_algorithms", SERVER_DEFAULT_CA_SIGNATURE_ALGORITHMS,
                         tuple(a for a in OPENSSH_KEY_TYPES
                               if a in _PUBKEY_IMPLEMENTED and not a.endswith(_CERT)),
                         OPENSSH_KEY_TYPES, "Bad key types '{}'.", key_types=True),
    )
}
#: the deprecated spelling sshd still takes
SERVER_ALGORITHM_KEYWORDS["pubkeyacceptedkeytypes"] = \
    SERVER_ALGORITHM_KEYWORDS["pubkeyacceptedalgorithms"]


class BadAlgorithmList(SshError):
    """An algorithm list sshd would refuse; ``located`` says where, as sshd does."""

    def __init__(self, reason: str, *, preamble: str = "", at_line: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.preamble = preamble
        self.at_line = at_line

    def located(self, where: str) -> str:
        text = f"{where}: {self.reason}" if self.at_line else self.reason
        return f"{self.preamble}\n{text}" if self.preamble else text


def _pattern(pattern: str) -> re.Pattern[str]:
    """OpenSSH's match_pattern: ``*`` and ``?`` only, case-sensitive."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                              for c in pattern) + r"\Z", re.DOTALL)


def match_pattern_list(name: str, patterns: str) -> int:
    """match.c: 1 for a positive match, -1 for a negated one (which wins), 0 for none."""
    got = 0
    for pattern in patterns.split(","):
        negated = pattern.startswith("!")
        if negated:
            pattern = pattern[1:]
        if pattern and _pattern(pattern).match(name):
            if negated:
                return -1
            got = 1
    return got


def _tokens(names: str) -> list[str]:
    """The names sshd's validity checks look at: up to the first empty one."""
    out: list[str] = []
    for name in names.split(","):
        if not name:
            break
        out.append(name)
    return out


def _valid(spec: AlgorithmKeyword, names: str) -> tuple[bool, str]:
    """kex_names_valid / ciphers_valid / mac_valid / sshkey_names_valid2(wildcards)."""
    known = set(spec.known) | set(spec.implemented)
    tokens = _tokens(names)
    if not tokens and not spec.key_types:
        return False, ""
    for name in tokens:
        if name in known:
            continue
        if spec.key_types and any(match_pattern_list(k, name) != 0 for k in spec.known):
            continue
        if spec.keyword == "KexAlgorithms":
            return False, f'Unsupported KEX algorithm "{name[:100]}"'
        return False, ""
    return True, ""


def _cat(first: list[str], more: Iterable[str]) -> list[str]:
    """kex_names_cat: append the names not already present."""
    out = list(first)
    for name in more:
        if name not in out:
            out.append(name)
    return out


class _InvalidArgument(SshError):
    """kex_assemble_names' SSH_ERR_INVALID_ARGUMENT: a negated name, or nothing left."""


def assemble_names(value: str, default: Sequence[str],
                   available: Sequence[str]) -> tuple[str, ...]:
    """kex_assemble_names: ``+`` appends to ``default``, ``-`` removes from it, ``^`` puts
    first, anything else replaces it; names may be ``*``/``?`` patterns, expanded in
    ``available``'s order, and only names in ``available`` survive."""
    if not value:
        return tuple(default)
    if value.startswith("-"):
        kept = [n for n in default if match_pattern_list(n, value[1:]) != 1]
        return tuple(kept or default)  # sshd -T shows the default for an emptied list
    if value.startswith("+"):
        names = _cat(list(default), value[1:].split(","))
    elif value.startswith("^"):
        names = _cat(value[1:].split(","), default)
    else:
        names = value.split(",")
    result: list[str] = []
    for pattern in names:
        if pattern.startswith("!"):
            raise _InvalidArgument()
        result = _cat(result, (n for n in available if match_pattern_list(n, pattern) == 1))
    if not result:
        raise _InvalidArgument()
    return tuple(result)


def assemble_algorithms(keyword: str, value: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The effective list for sshd_config's ``keyword`` = ``value``, and the names OpenSSH
    knows that pysshd lacks (dropped; the caller warns). Defaults are pysshd's.

    Raises BadAlgorithmList with sshd's words for what sshd would refuse.
    """
    spec = SERVER_ALGORITHM_KEYWORDS[keyword.lower()]
    if not value.startswith("-"):
        ok, preamble = _valid(spec, value[1:] if value[:1] in "+^" else value)
        if not ok:
            raise BadAlgorithmList(spec.bad.format(value), preamble=preamble)
    try:
        names = assemble_names(value, spec.default, spec.implemented)
    except _InvalidArgument:
        raise BadAlgorithmList(f"assemble_algorithms: {spec.assemble_name}: invalid argument",
                               at_line=False) from None
    asked = value[1:] if value[:1] in "+^" else "" if value.startswith("-") else value
    lacking = tuple(n for n in asked.split(",")
                    if n in spec.known and n not in spec.implemented)
    return names, lacking
