"""pykeygen: placeholder until this operation lands."""

from __future__ import annotations

from keytools.cli.output import PROGNAME, Fatal
from keytools.cli.pykeygen import KeygenOptions


def do_gen_krl(opts: KeygenOptions) -> int:
    raise Fatal(f"{PROGNAME}: do_gen_krl is not implemented yet", 1)


def do_check_krl(opts: KeygenOptions) -> int:
    raise Fatal(f"{PROGNAME}: do_check_krl is not implemented yet", 1)
