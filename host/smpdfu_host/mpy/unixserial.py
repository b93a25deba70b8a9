"""A UART over a host pty for the MicroPython unix port (``make footprint``).

The unix port has no ``machine.UART``; this gives the transport what
:mod:`smpdfu.uart` expects (``write``, ``read_available``, ``wait_readable``,
``close``). The pty is put in raw mode with VMIN = VTIME = 0, so a read
returns at once with what is there (b"" when nothing).

It stands in for C code, so it should cost the heap what a C driver would:
``write``, ``wait_readable`` and ``close`` are the file's and the poll
object's own C methods, only ``read_available`` is Python, and the receive
buffer is the size of a ``machine.UART``'s default ``rxbuf`` (256).

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

    def __init__(self, path, chunk=256):
        f = open(path, "r+b")
        fd = f.fileno()
        termios.setraw(fd)
        attrs = termios.tcgetattr(fd)
        attrs[6][_VMIN] = 0
        attrs[6][_VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        poll = select.poll()
        poll.register(f, select.POLLIN)
        self.write = f.write  # the pty takes it all (it blocks when full)
        self.wait_readable = poll.poll  # (ms): until data is there or ms passed
        self.close = f.close
        self._read = f.readinto
        self._buf = buf = bytearray(chunk)  # what one read takes at most, as a UART's any() would say
        self._mv = memoryview(buf)

    def read_available(self):
        n = self._read(self._buf)
        return bytes(self._mv[:n]) if n else None
