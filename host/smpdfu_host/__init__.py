"""Host-only (CPython) side of smpdfu: command line, emulator, test helpers.

Never deployed to a board.
"""
