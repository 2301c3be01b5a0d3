"""``ssh-add -h`` destination constraints: parse ``[user@]host`` and ``from>[user@]to``
and look up each host's keys in known_hosts files (OpenSSH's parse_dest_constraint and
load_hostkeys: plain, wildcard, negated and hashed ``|1|`` names; ``@cert-authority``
lines give CA keys, ``@revoked`` lines are skipped).
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterable

from agent.interface import DestinationConstraint, Hop, HopKey
from keytools.errors import SshError

#: ssh_config's default UserKnownHostsFile and GlobalKnownHostsFile.
DEFAULT_HOSTKEY_FILES = (
    "~/.ssh/known_hosts",
    "~/.ssh/known_hosts2",
    "/etc/ssh/ssh_known_hosts",
    "/etc/ssh/ssh_known_hosts2",
)


class ConstraintError(SshError):
    """A -h argument ssh-add would refuse with fatal() (exit status 255)."""


def tilde_expand(path: str) -> str:
    """OpenSSH's tilde_expand_filename: ``~`` and ``~user`` from the password database."""
    if not path.startswith("~"):
        return path
    rest = path[1:]
    user, sep, tail = rest.partition("/")
    try:
        entry = pwd.getpwnam(user) if user else pwd.getpwuid(os.getuid())
    except KeyError:
        raise ConstraintError(f"tilde_expand: No such user {user}") from None
    home = entry.pw_dir
    if not home.endswith("/"):
        home += "/"
    return home + tail.lstrip("/") if sep else home


def lookup_host_keys(host: str, files: Iterable[str]) -> list[HopKey]:
    """Every key for ``host`` in the files, in file and line order (load_hostkeys):
    ``@cert-authority`` lines give CA keys, ``@revoked`` lines are left out, and a file
    that cannot be read is skipped."""
    from keytools.known_hosts import Marker, load_host_keys

    keys: list[HopKey] = []
    for path in files:
        try:
            lines = load_host_keys(tilde_expand(path), host, None)
        except SshError:
            continue
        for line in lines:
            if line.key is None or line.marker is Marker.REVOKED:
                continue
            keys.append(HopKey(line.key, line.marker is Marker.CERT_AUTHORITY))
    return keys


def _clean_hostname(host: str) -> str:
    """ssh-add calls cleanhostname() but ignores its result: of ``[host]`` only the
    closing bracket goes (the name looked up is ``[host``), and so it is here."""
    if host.startswith("[") and host.endswith("]"):
        return host[:-1]
    return host


def parse_hop(text: str, files: Iterable[str]) -> Hop:
    """One ``[user@]host`` end of a constraint, with the host's keys."""
    user: str | None
    if "@" in text:
        user, _, host = text.rpartition("@")
    else:
        user, host = None, text
    host = _clean_hostname(host)
    if not host:
        if user is None:
            raise ConstraintError(
                f'Invalid key destination constraint "{text}": does not specify user or host'
            )
        return Hop(user=user)
    keys = lookup_host_keys(host, files)
    if not keys:
        raise ConstraintError(f'No host keys found for destination "{host}"')
    return Hop(user=user or "", hostname=host, keys=tuple(keys))


def parse_constraint(text: str, files: Iterable[str]) -> DestinationConstraint:
    """``host``, ``user@host`` or ``from>[user@]to`` as ssh-add -h reads it."""
    files = list(files)
    if ">" not in text:
        return DestinationConstraint(Hop(), parse_hop(text, files))
    origin, _, target = text.partition(">")
    from_hop = parse_hop(origin, files)
    to_hop = parse_hop(target, files)
    if from_hop.user:
        raise ConstraintError(
            f"Invalid key constraint {origin}: cannot specify user on 'from' host"
        )
    return DestinationConstraint(from_hop, to_hop)
