"""pykeygen: placeholder until this operation lands."""

from __future__ import annotations

from keytools.cli.output import PROGNAME, Fatal
from keytools.cli.pykeygen import KeygenOptions


def do_known_hosts(opts: KeygenOptions) -> int:
    raise Fatal(f"{PROGNAME}: do_known_hosts is not implemented yet", 1)


def do_print_resource_record(opts: KeygenOptions) -> int:
    raise Fatal(f"{PROGNAME}: do_print_resource_record is not implemented yet", 1)


def do_gen_all_hostkeys(opts: KeygenOptions) -> int:
    raise Fatal(f"{PROGNAME}: do_gen_all_hostkeys is not implemented yet", 1)
