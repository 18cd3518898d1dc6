"""`python -m recalign.training train ...`: the entry `accelerate launch -m` runs."""

from __future__ import annotations

import logging
import sys

from recalign.cli.signals import INTERRUPTED_EXIT, interrupted_message, sigterm_as_ctrl_c
from recalign.cli.train import app
from recalign.errors import RecalignError

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sigterm_as_ctrl_c()
    try:
        app()
    except RecalignError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as stop:
        print(interrupted_message(stop), file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT)
