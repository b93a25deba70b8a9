"""The host "board": the emulated nRF behind a pty (``make demo`` and the tests).

Under MicroPython-on-node (host/smpdfu_host/mpy/demo.mjs) the UART is the harness's
``hostserial.HostSerial`` over the pty, on the MicroPython unix port
(``make footprint``, ``make demo-fota``) ``unixserial.UnixSerial`` (host/smpdfu_host/mpy);
on CPython (tests) it is pyserial.
The harness sets ``UART_PORT`` (the pty path) before the app runs:
``import board_config; board_config.UART_PORT = "/dev/pts/N"``.
"""

NAME = "host (emulated nRF on a pty)"
UART_PORT = None  # set by the harness
BAUDRATE = 115200  # the emulator paces the pty at its own --baud
LED = None
MPY_ARCH = "x64"  # the unix port of `make footprint` (64-bit x86)

IMAGE_PATH = "/update/app.bin"
STATUS_PATH = "/update/status.json"

CONNECT_MS = 5000
TIMEOUT_MS = 3000
RESET_WAIT_MS = 20000
ALLOW_DOWNGRADE = False

# BLE instead (``make demo BLE=1``, on CPython): the harness sets these.
TRANSPORT = "uart"
BLE_TARGET = None  # the emulated nRF's name
BLE_HCI = None  # the Bumble transport spec of its relay (``smpdfu emulate --ble``)


def make_uart(rxbuf=2048):
    """Open ``UART_PORT``: hostserial under node, unixserial on the unix port, pyserial on CPython."""
    if not UART_PORT:
        raise OSError("board 'host': UART_PORT is not set (run it through host/smpdfu_host/mpy/demo.mjs)")
    import sys

    if sys.implementation.name != "micropython":
        from smpdfu.pyserial_uart import PySerialUART

        return PySerialUART(UART_PORT, BAUDRATE)
    try:
        from hostserial import HostSerial  # the WebAssembly build under node (host/smpdfu_host/mpy)
    except ImportError:
        from unixserial import UnixSerial  # the unix port (host/smpdfu_host/mpy, `make footprint`)

        return UnixSerial(UART_PORT, rxbuf)
    return HostSerial(UART_PORT)


def make_ble_adapter():
    """The PC's Bumble central on ``BLE_HCI`` (CPython only)."""
    from smpdfu_host.ble_bumble import BumbleAdapter

    return BumbleAdapter(BLE_HCI)
