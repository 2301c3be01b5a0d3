"""pykeygen: ssh-keygen's command line, parsed here and carried out by keytools.

Only argument parsing and dispatch live in this module; each operation is a function in
``keytools.cli.keygen_keys`` that calls the library.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from keytools.cli.keysources import KeySources
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
       pykeygen -F hostname [-lv] [-f known_hosts_file]
       pykeygen -H [-f known_hosts_file]
       pykeygen -R hostname [-f known_hosts_file]
       pykeygen -r hostname [-g] [-f input_keyfile]
       pykeygen -M generate [-O option] output_file
       pykeygen -M screen [-f input_file] [-O option] output_file
       pykeygen -A [-a rounds] [-f prefix_path]
       pykeygen -s ca_key -I certificate_identity [-h] [-U]
                [-D pkcs11_provider] [-n principals] [-O option]
                [-V validity_interval] [-z serial_number] file ...
       pykeygen -L [-f input_keyfile]
       pykeygen -k -f krl_file [-u] [-s ca_public] [-z version_number]
                file ...
       pykeygen -Q [-l] -f krl_file [file ...]
       pykeygen -Y find-principals -s signature_file -f allowed_signers_file
       pykeygen -Y match-principals -I signer_identity -f allowed_signers_file
       pykeygen -Y check-novalidate -n namespace -s signature_file
       pykeygen -Y sign -f key_file -n namespace file [-O option] ...
       pykeygen -Y verify -f allowed_signers_file -I signer_identity
                -n namespace -s signature_file [-r krl_file] [-O option]
"""

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
    # certificates (-s -I -h -n -V -z -U -D -L)
    ca_key: str | None = None
    cert_id: str | None = None
    host_cert: bool = False
    principals: str | None = None
    validity: str | None = None
    serial: str | None = None
    prefer_agent: bool = False
    pkcs11_provider: str | None = None
    # KRL (-k -u -Q), signatures (-Y), hosts (-F -R -H -r -g -A), moduli (-M), FIDO (-w -K)
    update_krl: bool = False
    sign_op: str | None = None
    hostname: str | None = None  # -F, -R and -r all set it, as in ssh-keygen
    print_generic: bool = False
    moduli: str | None = None
    sk_provider: str | None = None
    revocation_file: str | None = None
    #: an agent and PKCS#11 tokens, when the program running pykeygen can reach them
    sources: KeySources = field(default_factory=KeySources)


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


class _GetoptError(Exception):
    """getopt.GetoptError's message for a bad option."""


def _getopt(args: list[str], shortopts: str) -> tuple[list[tuple[str, str]], list[str]]:
    """getopt.getopt(args, shortopts) with no long options, messages included (the
    getopt module would import gettext at every start)."""
    opts: list[tuple[str, str]] = []
    while args and args[0].startswith("-") and args[0] != "-":
        if args[0] == "--":
            return opts, args[1:]
        if args[0].startswith("--"):
            raise _GetoptError(f"option --{args[0][2:].split('=', 1)[0]} not recognized")
        letters, args = args[0][1:], args[1:]
        while letters:
            opt, letters = letters[0], letters[1:]
            i = shortopts.find(opt) if opt != ":" else -1
            if i < 0:
                raise _GetoptError(f"option -{opt} not recognized")
            value = ""
            if shortopts.startswith(":", i + 1):
                if not letters:
                    if not args:
                        raise _GetoptError(f"option -{opt} requires argument")
                    letters, args = args[0], args[1:]
                value, letters = letters, ""
            opts.append(("-" + opt, value))
    return opts, args


def parse_args(argv: list[str]) -> KeygenOptions:
    opts = KeygenOptions()
    try:
        pairs, rest = _getopt(argv, OPTSTRING)
    except _GetoptError as exc:
        error(f"{PROGNAME}: {exc}")
        usage()
    for flag, value in pairs:
        if flag == "-b":
            opts.bits, err = _strtonum(value, 1, 0xFFFFFFFF)
            if err:
                raise Fatal(f"Bits has bad value {value} ({err})")
        elif flag == "-a":
            opts.rounds, err = _strtonum(value, 1, 0x7FFFFFFF)
            if err:
                raise Fatal(f"Invalid number: {value} ({err})")
        elif flag == "-E":
            from keytools.fingerprint import parse_hash_name

            opts.fingerprint_hash = parse_hash_name(value)
        elif flag == "-m":
            fmt = value.upper()
            if fmt in ("RFC4716", "SSH2"):
                opts.convert_format = "RFC4716"
            elif fmt in ("PKCS8", "PEM"):
                opts.convert_format = opts.key_format = fmt
            elif fmt in ("PPK", "PPK3", "PPK2"):  # beyond OpenSSH: PuTTY keys, -e/-i only
                opts.convert_format = "PPK2" if fmt == "PPK2" else "PPK3"
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
        elif flag in ("-p", "-c", "-l", "-B", "-y", "-e", "-L", "-k", "-Q", "-H", "-A", "-K"):
            opts.action.add(flag)
        elif flag in ("-F", "-R"):
            opts.action.add(flag)
            opts.hostname = value
        elif flag == "-r":
            opts.hostname = value
        elif flag == "-s":
            opts.ca_key = value
        elif flag == "-I":
            opts.cert_id = value
        elif flag == "-h":
            opts.host_cert = True
        elif flag == "-n":
            opts.principals = value
        elif flag == "-V":
            opts.validity = value
        elif flag == "-z":
            opts.serial = value
        elif flag == "-U":
            opts.prefer_agent = True
        elif flag == "-D":
            opts.pkcs11_provider = value
        elif flag == "-u":
            opts.update_krl = True
        elif flag == "-Y":
            opts.sign_op = value
        elif flag == "-g":
            opts.print_generic = True
        elif flag == "-M":
            if value not in ("generate", "screen"):
                raise Fatal(f"Unsupported moduli option {value}")
            opts.moduli = value
        elif flag == "-w":
            opts.sk_provider = value
        # -o: no-op, the new format is already the default
    opts.args = rest
    return opts


def usage() -> None:
    sys.stdout.flush()
    sys.stderr.write(USAGE)
    raise Exit(1)


def run(argv: list[str], sources: KeySources | None = None) -> int:
    """Dispatch in ssh-keygen's order of precedence."""
    opts = parse_args(argv)
    if sources is not None:
        opts.sources = sources
    act = opts.action
    if opts.sign_op is not None:
        from keytools.cli import keygen_sshsig

        return keygen_sshsig.do_sign_op(opts)
    if opts.ca_key is not None:
        if not opts.args and "-k" not in act:
            error("Too few arguments.")
            usage()
    elif opts.args and not act & {"-k", "-Q"} and opts.moduli is None:
        error("Too many arguments.")
        usage()
    if "-p" in act and "-c" in act:
        error("Can only have one of -p and -c.")
        usage()
    if "-l" in act and act & {"-R", "-H"}:
        error("Cannot use -l with -H or -R.")
        usage()
    if "-k" in act:
        from keytools.cli import keygen_krl

        return keygen_krl.do_gen_krl(opts)
    if "-Q" in act:
        from keytools.cli import keygen_krl

        return keygen_krl.do_check_krl(opts)
    if opts.ca_key is not None:
        from keytools.cli import keygen_certs

        return keygen_certs.do_ca_sign(opts)
    if "-L" in act:
        from keytools.cli import keygen_certs

        return keygen_certs.do_show_cert(opts)
    if act & {"-F", "-R", "-H"}:
        from keytools.cli import keygen_hosts

        return keygen_hosts.do_known_hosts(opts)
    if opts.pkcs11_provider is not None:
        from keytools.cli import keygen_tokens

        return keygen_tokens.do_download(opts)
    if "-K" in act:
        raise Fatal("Unable to load resident keys: requested feature not supported")
    from keytools.cli import keygen_keys as cmd

    if act & {"-l", "-B"}:
        return cmd.do_fingerprint(opts)
    if "-p" in act:
        return cmd.do_change_passphrase(opts)
    if "-c" in act:
        return cmd.do_change_comment(opts)
    if "-e" in act:
        return cmd.do_convert_to(opts)
    if "-i" in act:
        return cmd.do_convert_from(opts)
    if "-y" in act:
        return cmd.do_print_public(opts)
    if opts.hostname is not None:
        from keytools.cli import keygen_hosts

        return keygen_hosts.do_print_resource_record(opts)
    if opts.moduli is not None:
        from keytools.cli import keygen_moduli

        return keygen_moduli.do_moduli(opts)
    if "-A" in act:
        from keytools.cli import keygen_hosts

        return keygen_hosts.do_gen_all_hostkeys(opts)
    return cmd.do_generate(opts)


def main(argv: list[str] | None = None, sources: KeySources | None = None) -> int:
    """Console entry point; never lets a traceback reach the user. ``sources`` are the
    agent and tokens -U, -D and -Y sign may use (agent.keygen passes them)."""
    from keytools.errors import SshError

    code: int
    try:
        code = run(sys.argv[1:] if argv is None else argv, sources)
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
