"""pykeygen: placeholder until this operation lands."""

from __future__ import annotations

from keytools.cli.output import PROGNAME, Fatal
from keytools.cli.pykeygen import KeygenOptions


def do_sign_op(opts: KeygenOptions) -> int:
    raise Fatal(f"{PROGNAME}: do_sign_op is not implemented yet", 1)
