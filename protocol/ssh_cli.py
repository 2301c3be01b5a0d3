"""pyssh's command line, parsed as ssh.c parses it (the same getopt string and rules).

Options may follow the destination (``pyssh host -p 2222 cmd``) as ssh allows; the first
word after the destination that is not an option starts the remote command. ``-p`` and
``-l`` override any Port/User, and ``-o`` lines are read before any configuration file,
so they win over it (the first value of a keyword wins).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from keytools.errors import SshError

#: ssh.c's getopt string (OpenSSH 9.x/10.x).
GETOPT = "1246ab:c:e:fgi:kl:m:no:p:qstvxAB:CD:E:F:GI:J:KL:MNO:P:Q:R:S:TVw:W:XYy"

USAGE = """\
usage: ssh [-46AaCfGgKkMNnqsTtVvXxYy] [-B bind_interface] [-b bind_address]
           [-c cipher_spec] [-D [bind_address:]port] [-E log_file]
           [-e escape_char] [-F configfile] [-I pkcs11] [-i identity_file]
           [-J destination] [-L address] [-l login_name] [-m mac_spec]
           [-O ctl_cmd] [-o option] [-P tag] [-p port] [-R address]
           [-S ctl_path] [-W host:port] [-w local_tun[:remote_tun]]
           destination [command [argument ...]]
       ssh [-Q query_option]
"""


class UsageError(SshError):
    """Bad arguments: the message (if any) then ssh's usage text, exit 255."""


class BadArgument(SshError):
    """A bad option value: ssh's fatal message alone (no usage), exit 255."""


@dataclass
class SshArgs:
    destination: str | None = None
    command: list[str] = field(default_factory=list)
    #: (keyword, value) in command-line order: -o lines and the flags that are options
    options: list[tuple[str, str]] = field(default_factory=list)
    port: str | None = None  # -p (wins over everything)
    login: str | None = None  # -l (wins over everything)
    config_file: str | None = None  # -F
    log_file: str | None = None  # -E
    verbose: int = 0
    quiet: bool = False
    dump_config: bool = False  # -G
    version: bool = False  # -V
    no_command: bool = False  # -N
    stdin_null: bool = False  # -n
    tty: int = 0  # -t count; -T sets -1
    forward_agent: bool | None = None
    #: flags pyssh accepts but does not act on yet (reported with -v)
    ignored: list[str] = field(default_factory=list)


_NOARG = frozenset("1246afgknqstvxACGKMNTVXYy")
_WITHARG = frozenset("bceilmopBDEFIJLOPQRSWw")


def _getopt(argv: list[str], i: int, args: SshArgs) -> tuple[int, bool]:
    """Parse options from argv[i]; return the index of the first operand and whether
    "--" ended the options."""
    while i < len(argv):
        word = argv[i]
        if word == "--":
            return i + 1, True
        if not word.startswith("-") or word == "-":
            return i, False
        j = 1
        while j < len(word):
            flag = word[j]
            j += 1
            if flag in _NOARG:
                _flag(flag, args)
                continue
            if flag not in _WITHARG:
                raise UsageError(f"unknown option -- {flag}")
            if j < len(word):
                value = word[j:]
            else:
                i += 1
                if i >= len(argv):
                    raise UsageError(f"option requires an argument -- {flag}")  # (BSD getopt)
                value = argv[i]
            _option(flag, value, args)
            break
        i += 1
    return i, False


def _flag(flag: str, args: SshArgs) -> None:
    if flag == "4":
        args.options.append(("AddressFamily", "inet"))
    elif flag == "6":
        args.options.append(("AddressFamily", "inet6"))
    elif flag == "v":
        args.verbose += 1
    elif flag == "q":
        args.quiet = True
    elif flag == "G":
        args.dump_config = True
    elif flag == "V":
        args.version = True
    elif flag == "N":
        args.no_command = True
    elif flag == "n":
        args.stdin_null = True
    elif flag == "t":
        args.tty = args.tty + 1 if args.tty >= 0 else 1
    elif flag == "T":
        args.tty = -1
    elif flag == "A":
        args.forward_agent = True
    elif flag == "a":
        args.forward_agent = False
    else:
        args.ignored.append("-" + flag)


def _option(flag: str, value: str, args: SshArgs) -> None:
    if flag == "p":
        if not value.isdigit() or not 0 < int(value) < 65536:
            raise BadArgument(f"Bad port '{value}'")
        args.port = value
    elif flag == "l":
        args.login = value
    elif flag == "i":
        args.options.append(("IdentityFile", value))
    elif flag == "o":
        args.options.append(("-o", value))
    elif flag == "F":
        args.config_file = value
    elif flag == "E":
        args.log_file = value
    elif flag == "c":
        args.options.append(("Ciphers", value))
    elif flag == "m":
        args.options.append(("MACs", value))
    elif flag == "b":
        args.options.append(("BindAddress", value))
    elif flag == "J":
        from protocol.ssh_proxy import parse_jump

        if any(k == "ProxyJump" for k, _ in args.options):
            raise BadArgument("Only a single -J option is permitted "
                              "(use commas to separate multiple jump hops)")
        if parse_jump(value) is None:
            raise BadArgument("Invalid -J argument")
        args.options.append(("ProxyJump", value))
    elif flag in "LRDW":
        _forward_flag(flag, value, args)
    else:
        args.ignored.append(f"-{flag} {value}")


def _forward_flag(flag: str, value: str, args: SshArgs) -> None:
    """-L/-R/-D/-W, checked now as ssh.c does; -W also means ClearAllForwardings,
    ExitOnForwardFailure, no tty and no session."""
    from protocol.forward_spec import BadForward, check_cli_forward

    if flag == "W" and any(k == "-W" for k, _ in args.options):
        raise BadArgument("stdio forward already specified")
    try:
        check_cli_forward(f"-{flag}", value)
    except BadForward as exc:
        raise BadArgument(exc.message) from None
    args.options.append((f"-{flag}", value))
    if flag == "W":
        args.options += [("ClearAllForwardings", "yes"), ("ExitOnForwardFailure", "yes")]
        args.tty = -1
        args.no_command = True


def parse_args(argv: list[str]) -> SshArgs:
    """ssh's argument rules: options, destination, more options, then the command."""
    args = SshArgs()
    i, terminated = _getopt(argv, 0, args)
    while i < len(argv) and args.destination is None:
        args.destination = argv[i]
        i += 1
        if not terminated:
            i, terminated = _getopt(argv, i, args)
    args.command = argv[i:]
    if args.destination is None and not args.version:
        raise UsageError("")
    return args


def split_destination(destination: str) -> tuple[str | None, str, str | None]:
    """(user, host, port) of ``[user@]host`` or ``ssh://[user@]host[:port]``."""
    if destination.startswith("ssh://"):
        rest = destination[6:].rstrip("/")
        user, _, hostport = rest.rpartition("@")
        host, port = hostport, None
        if hostport.startswith("["):
            close = hostport.find("]")
            host = hostport[1:close]
            after = hostport[close + 1:]
            port = after[1:] if after.startswith(":") else None
        elif ":" in hostport:
            host, _, port = hostport.partition(":")
        return user or None, host, port
    user, at, host = destination.rpartition("@")
    return (user if at else None), host, None
