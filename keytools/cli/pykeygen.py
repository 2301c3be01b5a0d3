"""pykeygen: ssh-keygen's command line, parsed here and carried out by keytools.

Only argument parsing and dispatch live in this module; each operation is a function in
``keytools.cli.keygen_keys`` that calls the library.
"""

from __future__ import annotations

import getopt
import sys
from dataclasses import dataclass, field

from keytools.cli.output import PROGNAME, Exit, Fatal, error

# ssh-keygen's getopt string (OpenSSH 9.x/10.x).
OPTSTRING = "ABHKLQUXceghiklopquvyC:D:E:F:I:M:N:O:P:R:V:Y:Z:a:b:f:m:n:r:s:t:w:z:"

USAGE = """\
usage: pykeygen [-q] [-a rounds] [-b bits] [-C comment] [-f output_keyfile]
                [-m format] [-N new_passphrase] [-t ecdsa | ed25519 | rsa]
                [-Z cipher]
       pykeygen -p [-a rounds] [-f keyfile] [-m format] [-N new_passphrase]
                [-P old_passphrase] [-Z cipher]
       pykeygen -i [-f input_keyfile] [-m key_format]
       pykeygen -e [-f input_keyfile] [-m key_format]
       pykeygen -y [-f input_keyfile]
       pykeygen -c [-a rounds] [-C comment] [-f keyfile] [-P passphrase]
       pykeygen -l [-v] [-E fingerprint_hash] [-f input_keyfile]
       pykeygen -B [-f input_keyfile]
"""

#: flags of ssh-keygen whose operations belong to later work
_NOT_YET = {
    "-A": "host key generation (-A)",
    "-D": "PKCS#11 keys (-D)",
    "-F": "known_hosts search (-F)",
    "-H": "known_hosts hashing (-H)",
    "-K": "FIDO resident keys (-K)",
    "-L": "certificate listing (-L)",
    "-M": "moduli generation (-M)",
    "-Q": "KRL queries (-Q)",
    "-R": "known_hosts removal (-R)",
    "-k": "KRL generation (-k)",
    "-r": "SSHFP records (-r)",
    "-s": "certificate signing (-s)",
    "-Y": "SSH signatures (-Y)",
}


@dataclass
class KeygenOptions:
    """Everything the command line said, before any work is done."""

    quiet: bool = False
    verbose: int = 0
    identity_file: str | None = None
    key_type: str | None = None
    bits: int = 0
    comment: str | None = None
    passphrase: str | None = None  # -P
    new_passphrase: str | None = None  # -N
    fingerprint_hash: str = "sha256"
    key_format: str = "openssh"  # -m on generation / -p / -c: openssh, PEM, PKCS8
    convert_format: str = "RFC4716"  # -m with -e / -i
    cipher: str | None = None
    rounds: int | None = None
    options: list[str] = field(default_factory=list)  # -O
    action: set[str] = field(default_factory=set)
    args: list[str] = field(default_factory=list)


def _strtonum(text: str, low: int, high: int) -> tuple[int, str | None]:
    """OpenSSH's strtonum(): the value, or an error word (invalid/too small/too large)."""
    try:
        value = int(text, 10)
    except ValueError:
        return 0, "invalid"
    if value < low:
        return 0, "too small"
    if value > high:
        return 0, "too large"
    return value, None


def parse_args(argv: list[str]) -> KeygenOptions:
    from keytools.fingerprint import parse_hash_name

    opts = KeygenOptions()
    try:
        pairs, rest = getopt.getopt(argv, OPTSTRING)
    except getopt.GetoptError as exc:
        error(f"{PROGNAME}: {exc.msg}")
        usage()
    for flag, value in pairs:
        if flag in _NOT_YET:
            raise Fatal(f"{PROGNAME}: {_NOT_YET[flag]} is not implemented yet", 1)
        if flag == "-b":
            opts.bits, err = _strtonum(value, 1, 0xFFFFFFFF)
            if err:
                raise Fatal(f"Bits has bad value {value} ({err})")
        elif flag == "-a":
            opts.rounds, err = _strtonum(value, 1, 0x7FFFFFFF)
            if err:
                raise Fatal(f"Invalid number: {value} ({err})")
        elif flag == "-E":
            opts.fingerprint_hash = parse_hash_name(value)
        elif flag == "-m":
            fmt = value.upper()
            if fmt in ("RFC4716", "SSH2"):
                opts.convert_format = "RFC4716"
            elif fmt in ("PKCS8", "PEM"):
                opts.convert_format = opts.key_format = fmt
            else:
                raise Fatal(f'Unsupported conversion format "{value}"')
        elif flag == "-Z":
            from keytools.private.ciphers import cipher_by_name

            if cipher_by_name(value) is None:
                raise Fatal(f"Invalid OpenSSH-format cipher '{value}'")
            opts.cipher = value
        elif flag == "-f":
            opts.identity_file = value
        elif flag == "-t":
            opts.key_type = value
        elif flag == "-C":
            opts.comment = value
        elif flag == "-P":
            opts.passphrase = value
        elif flag == "-N":
            opts.new_passphrase = value
        elif flag == "-O":
            opts.options.append(value)
        elif flag == "-q":
            opts.quiet = True
        elif flag == "-v":
            opts.verbose += 1
        elif flag in ("-i", "-X"):
            opts.action.add("-i")
        elif flag in ("-p", "-c", "-l", "-B", "-y", "-e"):
            opts.action.add(flag)
        # -o (new format is the default), -g, -h, -U, -u, -n, -I, -V, -z, -w: accepted,
        # they only matter to operations that are not implemented yet.
    opts.args = rest
    return opts


def usage() -> None:
    sys.stdout.flush()
    sys.stderr.write(USAGE)
    raise Exit(1)


def run(argv: list[str]) -> int:
    from keytools.cli import keygen_keys as cmd

    opts = parse_args(argv)
    if opts.args:
        error("Too many arguments.")
        usage()
    if "-p" in opts.action and "-c" in opts.action:
        error("Can only have one of -p and -c.")
        usage()
    if opts.action & {"-l", "-B"}:
        return cmd.do_fingerprint(opts)
    if "-p" in opts.action:
        return cmd.do_change_passphrase(opts)
    if "-c" in opts.action:
        return cmd.do_change_comment(opts)
    if "-e" in opts.action:
        return cmd.do_convert_to(opts)
    if "-i" in opts.action:
        return cmd.do_convert_from(opts)
    if "-y" in opts.action:
        return cmd.do_print_public(opts)
    return cmd.do_generate(opts)


def main(argv: list[str] | None = None) -> int:
    """Console entry point; never lets a traceback reach the user."""
    from keytools.errors import SshError

    code: int
    try:
        code = run(sys.argv[1:] if argv is None else argv)
    except Fatal as exc:
        error(str(exc))
        code = exc.code
    except Exit as exc:
        code = exc.code
    except SshError as exc:
        error(str(exc))
        code = 255
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        code = 141
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        code = code or 141
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
