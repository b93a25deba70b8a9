"""CircuitPython boot script: update the neighbouring nRF if /update/app.bin is there.

Deployed as /code.py with /lib/smpdfu_app.py, /lib/smpdfu/, /board_config.py
and /boot.py (``make deploy-circuitpython BOARD=... DRIVE=...``, see docs/boards.md).
"""

import smpdfu_app

smpdfu_app.main("busio")
