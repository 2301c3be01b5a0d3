"""Certificate critical options and extensions: building them for ``ssh-keygen -O`` and
reading them as sshd does (auth-options.c) before a certificate is accepted.

Both sections are lists of ``string name, string data``; a flag has empty data, a value
is wrapped in one more string. ssh-keygen sorts each section by name, then flags before
values, then by value (bytewise), and so does ``build_options``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from keytools.addrmatch import Log, addr_match_cidr_list
from keytools.errors import InvalidArgument, SshError
from keytools.wire import Reader, Writer

Options = tuple[tuple[str, bytes], ...]

X11_FWD, AGENT_FWD, PORT_FWD, PTY, USER_RC, NO_TOUCH, VERIFY = (1 << n for n in range(7))
#: what a user certificate permits unless -O says otherwise (a host certificate: nothing)
DEFAULT_FLAGS = X11_FWD | AGENT_FWD | PORT_FWD | PTY | USER_RC

#: -O word (any case) -> (flag bit, set it?)
_FLAG_WORDS = {
    "no-x11-forwarding": (X11_FWD, False),
    "permit-x11-forwarding": (X11_FWD, True),
    "no-agent-forwarding": (AGENT_FWD, False),
    "permit-agent-forwarding": (AGENT_FWD, True),
    "no-port-forwarding": (PORT_FWD, False),
    "permit-port-forwarding": (PORT_FWD, True),
    "no-pty": (PTY, False),
    "permit-pty": (PTY, True),
    "no-user-rc": (USER_RC, False),
    "permit-user-rc": (USER_RC, True),
    "touch-required": (NO_TOUCH, False),
    "no-touch-required": (NO_TOUCH, True),
    "no-verify-required": (VERIFY, False),
    "verify-required": (VERIFY, True),
}
#: flag bit -> (name in the certificate, critical?), in ssh-keygen's finalise order
_FLAG_NAMES = (
    (VERIFY, "verify-required", True),
    (X11_FWD, "permit-X11-forwarding", False),
    (AGENT_FWD, "permit-agent-forwarding", False),
    (PORT_FWD, "permit-port-forwarding", False),
    (PTY, "permit-pty", False),
    (USER_RC, "permit-user-rc", False),
    (NO_TOUCH, "no-touch-required", False),
)


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def encode_value(value: str | None) -> bytes:
    """The data of one option: empty for a flag, else string(value)."""
    return b"" if value is None else Writer().string(value).getvalue()


def build_options(words: Iterable[str], host: bool = False,
                  log: Log | None = None) -> tuple[Options, Options]:
    """(critical options, extensions) for ``ssh-keygen [-h] -O word...``.

    Raises InvalidArgument with ssh-keygen's message for a bad word; source-address
    diagnostics go to ``log`` first, as ssh-keygen prints them.
    """
    flags = 0 if host else DEFAULT_FLAGS
    command: str | None = None
    source: str | None = None
    custom: list[tuple[bool, str, str | None]] = []
    for word in words:
        lower = word.lower()
        if lower == "clear":
            flags = 0
        elif lower in _FLAG_WORDS:
            bit, on = _FLAG_WORDS[lower]
            flags = flags | bit if on else flags & ~bit
        elif lower.startswith("force-command="):
            value = word[14:]
            if not value:
                raise InvalidArgument("Empty force-command option")
            if command is not None:
                raise InvalidArgument("force-command already specified")
            command = value
        elif lower.startswith("source-address="):
            value = word[15:]
            if not value:
                raise InvalidArgument("Empty source-address option")
            if source is not None:
                raise InvalidArgument("source-address already specified")
            if addr_match_cidr_list(None, value, log) != 0:
                raise InvalidArgument("Invalid source-address list")
            source = value
        elif lower.startswith(("extension:", "critical:")):
            name, eq, value = word.partition(":")[2].partition("=")
            custom.append((lower.startswith("critical:"), name, value if eq else None))
        else:
            raise InvalidArgument(f'Unsupported certificate option "{word}"')
    entries = list(custom)
    if command is not None:
        entries.append((True, "force-command", command))
    if source is not None:
        entries.append((True, "source-address", source))
    entries += [(crit, name, None) for bit, name, crit in _FLAG_NAMES if flags & bit]
    entries.sort(key=lambda e: (e[0], _bytes(e[1]), e[2] is not None, _bytes(e[2] or "")))
    critical = tuple((n, encode_value(v)) for crit, n, v in entries if crit)
    extensions = tuple((n, encode_value(v)) for crit, n, v in entries if not crit)
    return critical, extensions


# -- reading, as sshd does -----------------------------------------------------------------


class CertificateRefused(SshError):
    """A certificate that must not be accepted; the message is OpenSSH's reason."""

    default_message = "Certificate refused"


@dataclass(frozen=True)
class CertOptions:
    """What an accepted certificate allows and demands (sshd's struct sshauthopt)."""

    permit_x11_forwarding: bool = False
    permit_agent_forwarding: bool = False
    permit_port_forwarding: bool = False
    permit_pty: bool = False
    permit_user_rc: bool = False
    no_touch_required: bool = False
    verify_required: bool = False
    force_command: str | None = None
    source_address: str | None = None
    #: extensions this implementation does not know (ignored, as sshd logs and ignores)
    unknown_extensions: tuple[str, ...] = ()


_EXTENSION_FIELDS = frozenset((
    "permit-X11-forwarding", "permit-agent-forwarding", "permit-port-forwarding",
    "permit-pty", "permit-user-rc", "no-touch-required",
))


def _string_value(name: str, data: bytes) -> str:
    try:
        r = Reader(data)
        value = r.cstring()
    except SshError as exc:
        raise CertificateRefused(f'Unable to parse "{name}" section: {exc}') from None
    if r.remaining:
        raise CertificateRefused(f'Certificate option "{name}" corrupt (extra data)')
    return value


def read_options(critical: Options, extensions: Options) -> CertOptions:
    """sshauthopt_from_cert(): the options of a user certificate, or CertificateRefused.

    Unknown critical options, repeated force-command/source-address, a malformed
    source-address list and flags carrying data are refused; unknown extensions are
    recorded and otherwise ignored. Critical options are read first, as sshd does.
    """
    verify = False
    command: str | None = None
    source: str | None = None
    for name, data in critical:
        if "\0" in name:
            raise CertificateRefused("Unable to parse certificate options")
        if name == "verify-required":
            if data:
                raise CertificateRefused(f'Certificate option "{name}" corrupt (extra data)')
            verify = True
        elif name == "force-command":
            if command is not None:
                raise CertificateRefused("Certificate has multiple force-command options")
            command = _string_value(name, data)
        elif name == "source-address":
            if source is not None:
                raise CertificateRefused("Certificate has multiple source-address options")
            source = _string_value(name, data)
            if addr_match_cidr_list(None, source) == -1:
                raise CertificateRefused("Certificate source-address contents invalid")
        else:
            raise CertificateRefused(f'Certificate critical option "{name}" is not supported')
    permitted: set[str] = set()
    unknown: list[str] = []
    for name, data in extensions:
        if "\0" in name:
            raise CertificateRefused("Unable to parse certificate options")
        if name not in _EXTENSION_FIELDS:
            unknown.append(name)
        elif data:
            raise CertificateRefused(f'Certificate option "{name}" corrupt (extra data)')
        else:
            permitted.add(name)
    return CertOptions(
        permit_x11_forwarding="permit-X11-forwarding" in permitted,
        permit_agent_forwarding="permit-agent-forwarding" in permitted,
        permit_port_forwarding="permit-port-forwarding" in permitted,
        permit_pty="permit-pty" in permitted,
        permit_user_rc="permit-user-rc" in permitted,
        no_touch_required="no-touch-required" in permitted,
        verify_required=verify,
        force_command=command,
        source_address=source,
        unknown_extensions=tuple(unknown),
    )
