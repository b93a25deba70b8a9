"""CircuitPython boot.py: let code.py write /update (status file, image renames).

CircuitPython's drive is writable either by the computer (USB) or by code, never
both. Here code gets it unless the board's switch is held during reset: hold it
to copy a new /update/app.bin from the computer, then reset normally to apply it.
"""

import board
import digitalio
import storage

_pin = getattr(board, "SWITCH", None) or getattr(board, "BUTTON", None)
_usb_writes = False
if _pin is not None:
    _sw = digitalio.DigitalInOut(_pin)
    _sw.switch_to_input(pull=digitalio.Pull.UP)
    _usb_writes = not _sw.value  # pressed pulls the pin low
    _sw.deinit()
storage.remount("/", readonly=_usb_writes)
