"""pykeygen: placeholder until this operation lands."""

from __future__ import annotations

from keytools.cli.output import PROGNAME, Fatal
from keytools.cli.pykeygen import KeygenOptions


def do_ca_sign(opts: KeygenOptions) -> int:
    raise Fatal(f"{PROGNAME}: do_ca_sign is not implemented yet", 1)


def do_show_cert(opts: KeygenOptions) -> int:
    raise Fatal(f"{PROGNAME}: do_show_cert is not implemented yet", 1)
