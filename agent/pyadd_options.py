"""pyadd's command line: ssh-add's getopt options (plus ``--keyring``) and how it reports.

ssh-add prints some messages itself (a plain newline) and others through OpenSSH's log
functions, error(), logit() and fatal(), whose lines end in CR LF on stderr; pyadd keeps
the difference so its output is byte-for-byte ssh-add's.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from keytools.errors import SshError

USAGE = """\
usage: pyadd [-CcDdKkLlNQqvXx] [-E fingerprint_hash] [-H hostkey_file]
             [-h destination_constraint] [-S provider] [-t life]
             [--keyring] [file ...]
       pyadd -s pkcs11 [-Cv] [certificate ...]
       pyadd -e pkcs11
       pyadd -T pubkey ...
"""
OPTSTRING = "vkKlLNQCcdDTxXE:e:h:H:M:m:qs:S:t:"
KEYRING_OPTION = "--keyring"
class Fatal(Exception):
    """End the run: OpenSSH's fatal() (logged, exit 255) unless ``plain`` says the
    message is one ssh-add prints itself before exiting with ``code``."""

    def __init__(self, message: str, code: int = 255, plain: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.plain = plain


def err(message: str) -> None:
    """What ssh-add prints with fprintf(stderr): a plain newline."""
    sys.stdout.flush()
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def log(message: str) -> None:
    """OpenSSH's error()/logit()/fatal() on stderr: each line ends in CR LF."""
    sys.stdout.flush()
    sys.stderr.write("".join(line + "\r\n" for line in message.split("\n")))
    sys.stderr.flush()


def out(message: str) -> None:
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


# -- options ------------------------------------------------------------------------------


@dataclass
class Options:
    verbose: int = 0
    key_only: bool = False
    cert_only: bool = False
    download: bool = False
    list_flag: str = ""
    lock_flag: str = ""
    delete_all: bool = False
    deleting: bool = False
    confirm: bool = False
    lifetime: int = 0
    no_cert_lifetime: bool = False
    query: bool = False
    quiet: bool = False
    test: bool = False
    fingerprint_hash: str = "sha256"
    pkcs11: str | None = None
    sk_provider: str | None = None
    hostkey_files: list[str] = field(default_factory=list)
    destinations: list[str] = field(default_factory=list)
    use_keyring: bool = False
    args: list[str] = field(default_factory=list)


class UsageError(Exception):
    pass


def _getopt(argv: Sequence[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """BSD getopt(3) over OPTSTRING: stops at the first operand or ``--``."""
    with_arg = {c for i, c in enumerate(OPTSTRING) if i + 1 < len(OPTSTRING)
                and OPTSTRING[i + 1] == ":"}
    known = set(OPTSTRING.replace(":", ""))
    opts: list[tuple[str, str]] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        j = 1
        while j < len(arg):
            c = arg[j]
            if c not in known:
                raise UsageError(f"unknown option -- {c}")
            if c in with_arg:
                if j + 1 < len(arg):
                    opts.append((c, arg[j + 1:]))
                elif i + 1 < len(argv):
                    i += 1
                    opts.append((c, argv[i]))
                else:
                    raise UsageError(f"option requires an argument -- {c}")
                break
            opts.append((c, ""))
            j += 1
        i += 1
    return opts, list(argv[i:])


def parse_options(argv: Sequence[str]) -> Options:
    """ssh-add's getopt loop; -t, -E and repeated -l/-x fail as ssh-add fails."""
    from agent.pyadd_time import UINT32_MAX, convtime
    from keytools.fingerprint import parse_hash_name

    o = Options()
    o.use_keyring = KEYRING_OPTION in argv[: argv.index("--")] if "--" in argv \
        else KEYRING_OPTION in argv
    argv = [a for a in argv if a != KEYRING_OPTION] if o.use_keyring else list(argv)
    opts, o.args = _getopt(argv)
    for c, value in opts:
        if c == "v":
            o.verbose = min(o.verbose + 1, 3)
        elif c == "N":
            o.no_cert_lifetime = True
        elif c == "E":
            try:
                o.fingerprint_hash = parse_hash_name(value)
            except SshError as exc:
                raise Fatal(str(exc)) from None
        elif c == "H":
            o.hostkey_files.append(value)
        elif c == "h":
            o.destinations.append(value)
        elif c == "k":
            o.key_only = True
        elif c == "C":
            o.cert_only = True
        elif c == "K":
            o.download = True
        elif c in "lL":
            if o.list_flag:
                raise Fatal(f"-{o.list_flag} flag already specified")
            o.list_flag = c
        elif c in "xX":
            if o.lock_flag:
                raise Fatal(f"-{o.lock_flag} flag already specified")
            o.lock_flag = c
        elif c == "c":
            o.confirm = True
        elif c == "d":
            o.deleting = True
        elif c == "D":
            o.delete_all = True
        elif c == "s":
            o.pkcs11 = value
        elif c == "S":
            o.sk_provider = value
        elif c == "e":
            o.deleting = True
            o.pkcs11 = value
        elif c == "t":
            seconds = convtime(value)
            if seconds is None or seconds > UINT32_MAX:
                raise Fatal("Invalid lifetime", 1, plain=True)
            o.lifetime = seconds
        elif c == "q":
            o.quiet = True
        elif c == "T":
            o.test = True
        elif c == "Q":
            o.query = True
        # -m/-M: deprecated (XMSS), ignored as ssh-add does
    return o
