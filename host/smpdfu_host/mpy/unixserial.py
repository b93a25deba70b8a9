"""A UART over a host pty for the MicroPython unix port (``make footprint``).

The unix port has no ``machine.UART``; this is one with the API a board's
UART has (``any``, ``read``, ``write``, ``deinit``), so the app wraps it in
:class:`smpdfu.uart.UART` as it does on a board. The pty is put in raw mode with VMIN = VTIME = 0, so a read
returns at once with what is there (b"" when nothing).

It stands in for C code, so it should cost the heap what a C driver would:
``write`` and ``deinit`` are the file's own C methods, and the receive buffer
is on the heap as rp2's ``machine.UART`` makes it, of the ``rxbuf`` the app
asks for (``UART_RXBUF``, capped on a small heap).

    from unixserial import UnixSerial
    uart = UnixSerial("/dev/pts/7")
"""

import termios

from micropython import const

_VTIME = const(5)  # indexes in termios' cc list (Linux)
_VMIN = const(6)


class UnixSerial:
    """Non-blocking pty with ``machine.UART``'s API (``any``, ``read``, ``write``, ``deinit``)."""

    def __init__(self, path, rxbuf=256):
        f = open(path, "r+b")
        fd = f.fileno()
        termios.setraw(fd)
        attrs = termios.tcgetattr(fd)
        attrs[6][_VMIN] = 0
        attrs[6][_VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        self.write = f.write  # the pty takes it all (it blocks when full)
        self.deinit = f.close
        self._read = f.readinto
        self._buf = buf = bytearray(rxbuf)  # the receive buffer, as rp2's machine.UART makes it
        self._mv = memoryview(buf)
        self._n = 0

    def any(self):
        if not self._n:
            self._n = self._read(self._buf) or 0
        return self._n

    def read(self, n):
        k = self._n
        if n < k:  # not all of it: keep the rest at the front
            data = bytes(self._mv[:n])
            self._buf[:k - n] = self._mv[n:k]
            self._n = k - n
            return data
        self._n = 0
        return bytes(self._mv[:k]) if k else None
