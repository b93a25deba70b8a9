"""``python -m smpdfu_host.emulator``: same as ``smpdfu emulate``."""

import sys

from . import main

sys.exit(main(sys.argv[1:]))
