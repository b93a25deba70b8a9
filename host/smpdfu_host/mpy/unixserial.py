"""A UART over a host pty for the MicroPython unix port (``make footprint``).

The unix port has no ``machine.UART``; this gives the transport what
:mod:`smpdfu.uart` expects (``write``, ``read_available``, ``wait_readable``,
``close``). The pty is put in raw mode with VMIN = VTIME = 0, so a read
returns at once with what is there (b"" when nothing).

    from unixserial import UnixSerial
    uart = UnixSerial("/dev/pts/7")
"""

import select
import termios

from micropython import const

_VTIME = const(5)  # indexes in termios' cc list (Linux)
_VMIN = const(6)


class UnixSerial:
    """Non-blocking pty with the adapter API of :mod:`smpdfu.uart`."""

    def __init__(self, path, chunk=512):
        self._buf = bytearray(chunk)  # what one read takes at most, as a UART's any() would say
        self._mv = memoryview(self._buf)
        self._f = open(path, "r+b")
        fd = self._f.fileno()
        termios.setraw(fd)
        attrs = termios.tcgetattr(fd)
        attrs[6][_VMIN] = 0
        attrs[6][_VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        self._poll = select.poll()
        self._poll.register(self._f, select.POLLIN)

    def write(self, buf):
        self._f.write(buf)  # the pty takes it all (it blocks when full)

    def read_available(self):
        n = self._f.readinto(self._buf)
        return bytes(self._mv[:n]) if n else None

    def wait_readable(self, ms):
        """Block until data is there or ``ms`` milliseconds passed."""
        self._poll.poll(ms)

    def close(self):
        self._f.close()
