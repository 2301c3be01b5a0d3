"""The client's host key decision, as ssh's check_host_key(): known_hosts lookups through
keytools, StrictHostKeyChecking yes/ask/accept-new/no, and OpenSSH's words for every
outcome (the "REMOTE HOST IDENTIFICATION HAS CHANGED!" block, "Permanently added").

``HostKeyPolicy.check`` is the ``known_host_check`` callback of ``protocol.client.connect``;
refusing makes the connection fail with "Host key verification failed.".
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from keytools.errors import SshError
from keytools.hostmatch import host_port
from keytools.known_hosts import HostKeyResult, HostKeyStatus, check_host_key
from keytools.public import PublicKey
from protocol.ssh_log import Log

BANNER = "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@"


@dataclass(frozen=True)
class Lookup:
    """The combined verdict over all files, and the file holding the deciding line."""

    result: HostKeyResult
    path: str | None


def lookup(files: tuple[str, ...], host: str, port: int, key: PublicKey) -> Lookup:
    """Check every known_hosts file: a revocation wins, then a match, then a changed key."""
    best = Lookup(HostKeyResult(HostKeyStatus.NOT_FOUND), None)
    rank = {HostKeyStatus.NOT_FOUND: 0, HostKeyStatus.CHANGED: 1, HostKeyStatus.MATCH: 2,
            HostKeyStatus.CA_MATCH: 2, HostKeyStatus.REVOKED: 3}
    for path in files:
        if not os.path.isfile(path):
            continue
        try:
            result = check_host_key(path, host, port, key)
            if result.status is HostKeyStatus.CHANGED and not _same_type_known(path, host,
                                                                                port, key):
                result = HostKeyResult(HostKeyStatus.NOT_FOUND)
        except SshError:
            continue
        if rank[result.status] > rank[best.result.status]:
            best = Lookup(result, path)
    return best


def _same_type_known(path: str, host: str, port: int, key: PublicKey) -> bool:
    """ssh calls a key "changed" only when a key of the same type is known for the host."""
    from keytools.known_hosts import Marker, load_host_keys

    kind = key.plain.key_type
    return any(line.key is not None and line.marker is Marker.NONE
               and line.key.plain.key_type == kind
               for line in load_host_keys(path, host, port))


def _algorithms_for(key: PublicKey, ca: bool) -> tuple[str, ...]:
    kind = key.plain.key_type
    names = ("rsa-sha2-512", "rsa-sha2-256") if kind == "ssh-rsa" else (kind,)
    return tuple(n + "-cert-v01@openssh.com" for n in names) if ca else names


def order_host_key_algorithms(files: tuple[str, ...], host: str, port: int,
                              offered: tuple[str, ...]) -> tuple[str, ...]:
    """ssh's order_hostkeyalgs: the algorithms of keys already known for the host first,
    so a server with several host keys shows the one known_hosts can vouch for."""
    from keytools.known_hosts import Marker, load_host_keys

    known: list[str] = []
    for path in files:
        if not os.path.isfile(path):
            continue
        try:
            lines = load_host_keys(path, host, port)
        except SshError:
            continue
        for line in lines:
            if line.key is None or line.marker is Marker.REVOKED:
                continue
            for alg in _algorithms_for(line.key, line.marker is Marker.CERT_AUTHORITY):
                if alg in offered and alg not in known:
                    known.append(alg)
    return tuple(known) + tuple(a for a in offered if a not in known)


def _read_line(fd: int, limit: int = 1024) -> str:
    """One line from the terminal (canonical mode: the line arrives whole)."""
    data = b""
    while not data.endswith(b"\n") and len(data) < limit:
        chunk = os.read(fd, limit - len(data))
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace")


class HostKeyPolicy:
    def __init__(self, *, hostname: str, port: int, strict: str, user_files: tuple[str, ...],
                 global_files: tuple[str, ...], batch_mode: bool, log: Log) -> None:
        self.hostname = hostname
        self.port = port
        self.strict = strict  # "true", "false", "ask" or "accept-new" (ssh -G's words)
        self.user_files = user_files
        self.global_files = global_files
        self.batch_mode = batch_mode
        self.log = log
        #: HashKnownHosts: names of new entries are written hashed
        self.hash_known_hosts = False
        #: how the server's key was accepted: "user" (a plain key in the first user
        #: known_hosts file), "ca", "other" (another file), "new" (just added), "no"
        self.verified = "no"

    @property
    def name(self) -> str:
        """How ssh names the host in known_hosts and messages: [host]:port off 22."""
        return host_port(self.hostname, self.port)

    def check(self, host: str, port: int, key: PublicKey) -> bool:
        from keytools.fingerprint import fingerprint

        found = lookup(self.user_files + self.global_files, self.hostname, self.port, key)
        status = found.result.status
        label = key.plain.type_label
        if status in (HostKeyStatus.MATCH, HostKeyStatus.CA_MATCH):
            self.log.debug(f"Host '{self.name}' is known and matches the {label} host key.")
            if status is HostKeyStatus.CA_MATCH or key.is_certificate:
                self.verified = "ca"
            elif self.user_files and found.path == self.user_files[0]:
                self.verified = "user"
            else:
                self.verified = "other"
            return True
        if status in (HostKeyStatus.REVOKED, HostKeyStatus.CHANGED):
            if status is HostKeyStatus.REVOKED:
                self._revoked(label)
            else:
                self._changed(key, found)
            if self.strict != "false":
                return False
            # StrictHostKeyChecking=no: go on, without the methods a MITM could harvest.
            self.log.error("Password authentication is disabled to avoid man-in-the-middle "
                           "attacks.")
            self.log.error("Keyboard-interactive authentication is disabled to avoid "
                           "man-in-the-middle attacks.")
            return True
        if self.strict == "true":
            self.log.error(f"No {label} host key is known for {self.name} and you have "
                           "requested strict checking.")
            return False
        if self.strict == "ask" and not self._ask(label, fingerprint(key)):
            return False
        self._add(key, label)
        self.verified = "new"
        return True

    def _ask(self, label: str, fp: str) -> bool:
        if self.batch_mode:
            return False
        prompt = (f"The authenticity of host '{self.name} ({self.name})' can't be established.\n"
                  f"{label} key fingerprint is {fp}.\n"
                  "This key is not known by any other names.\n"
                  "Are you sure you want to continue connecting (yes/no/[fingerprint])? ")
        try:
            fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            while True:
                os.write(fd, ("\r" + prompt).encode("utf-8"))
                answer = _read_line(fd).strip()
                if answer.lower() == "yes" or answer == fp:
                    return True
                if answer.lower() == "no" or not answer:
                    return False
                prompt = "Please type 'yes', 'no' or the fingerprint: "
        except OSError:
            return False
        finally:
            os.close(fd)

    def _add(self, key: PublicKey, label: str) -> None:
        from keytools.known_hosts_edit import add_host_key

        if not self.user_files:
            return
        path = self.user_files[0]
        try:
            add_host_key(path, self.hostname, self.port, key.plain,
                         hashed=self.hash_known_hosts)
        except SshError:
            self.log.info(f"Failed to add the host to the list of known hosts ({path}).")
            return
        self.log.info(f"Warning: Permanently added '{self.name}' ({label}) to the list of "
                      "known hosts.")

    def _changed(self, key: PublicKey, found: Lookup) -> None:
        from keytools.fingerprint import fingerprint

        label = key.plain.type_label
        line = found.result.line
        user_file = self.user_files[0] if self.user_files else ""
        err = self.log.error
        err(BANNER)
        err("@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @")
        err(BANNER)
        err("IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!")
        err("Someone could be eavesdropping on you right now (man-in-the-middle attack)!")
        err("It is also possible that a host key has just been changed.")
        err(f"The fingerprint for the {label} key sent by the remote host is\n"
            f"{fingerprint(key)}.")
        err("Please contact your system administrator.")
        err(f"Add correct host key in {user_file} to get rid of this message.")
        if line is not None and found.path is not None:
            other = line.key.plain.type_label if line.key is not None else label
            err(f"Offending {other} key in {found.path}:{line.number}")
            err("  remove with:")
            err(f"  ssh-keygen -f \"{found.path}\" -R \"{self.name}\"")
        if self.strict != "false":
            err(f"Host key for {self.name} has changed and you have requested strict "
                "checking.")

    def _revoked(self, label: str) -> None:
        err = self.log.error
        err(BANNER)
        err("@       WARNING: REVOKED HOST KEY DETECTED!               @")
        err(BANNER)
        err(f"The {label} host key for {self.name} is marked as revoked.")
        err("This could mean that a stolen key is being used to")
        err("impersonate this host.")
        if self.strict != "false":
            err(f"{label} host key for {self.name} was revoked and you have requested strict "
                "checking.")
