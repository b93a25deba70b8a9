"""MicroPython boot script: update the neighbouring nRF if /update/app.bin is there.

Deployed as /main.py with /lib/smpdfu_app.py, /lib/smpdfu/ and /board_config.py
(``make deploy BOARD=... PORT=...``, see docs/boards.md).
"""

import smpdfu_app

smpdfu_app.main("machine")
