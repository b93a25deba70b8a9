"""``python -m smpdfu_host``: the ``smpdfu`` command line (same as the installed script)."""

from .cli import main

main()
