"""A ``machine.UART``-like object over a host pty, for MicroPython under node.

Only meaningful inside the WebAssembly MicroPython started by ``mpy.mjs`` (it
needs the JavaScript module ``hostio``). Copied to ``/harness`` there, which is
on ``sys.path``::

    from hostserial import HostSerial
    uart = HostSerial("/dev/pts/7", timeout=1000)
    uart.write(b"hello")
    data = uart.read(5)          # bytes, or None on timeout (like machine.UART)
"""

import binascii

import hostio

_EAGAIN = 11


def _check(ret, what):
    if isinstance(ret, int) and ret < 0:
        raise OSError(-ret, "%s: %s" % (what, hostio.errno_name(ret)))
    return ret


class HostSerial:
    """Non-blocking host fd with ``machine.UART``'s read/write/any API.

    ``timeout`` (ms) bounds how long ``read``/``readinto`` wait for the first
    byte, ``timeout_char`` (ms) for each following byte (as on MicroPython).
    """

    def __init__(self, path, timeout=0, timeout_char=10, rxbuf=4096):
        self._fd = _check(hostio.open(path), "open " + path)
        self.timeout = timeout
        self.timeout_char = timeout_char
        self._rx = bytearray()
        self._rxbuf = rxbuf

    def _pull(self, n, wait_ms):
        # hex crosses the JS boundary far faster than a Uint8Array proxy
        chunk = _check(hostio.read_hex(self._fd, max(n, 1), wait_ms), "read")
        if chunk:
            self._rx.extend(binascii.unhexlify(chunk))
        return len(chunk) // 2

    def any(self):
        """Bytes readable now without waiting."""
        if len(self._rx) < self._rxbuf:
            self._pull(self._rxbuf - len(self._rx), 0)
        return len(self._rx)

    def read(self, n=-1):
        """Up to ``n`` bytes (all waiting when ``n`` < 0), None on timeout."""
        if n is None or n < 0:
            self.any()
            n = len(self._rx)
            if n == 0 and self._pull(self._rxbuf, self.timeout) == 0:
                return None
            n = len(self._rx)
        buf = bytearray(n)
        got = self.readinto(buf)
        if not got:
            return None
        return bytes(buf[:got])

    def readinto(self, buf, nbytes=None):
        """Fill ``buf`` (or its first ``nbytes``); count read or None on timeout."""
        want = len(buf) if nbytes is None else min(nbytes, len(buf))
        if want == 0:
            return 0
        if not self._rx:
            self._pull(want, self.timeout)
        while len(self._rx) < want:
            if self._pull(want - len(self._rx), self.timeout_char) == 0:
                break
        got = min(want, len(self._rx))
        if got == 0:
            return None
        buf[:got] = self._rx[:got]
        self._rx = self._rx[got:]
        return got

    def write(self, data):
        """Write all of ``data``; returns the count."""
        return _check(hostio.write(self._fd, binascii.hexlify(data).decode()), "write")

    def flush(self):
        """Writes are synchronous already."""

    def close(self):
        if self._fd is not None:
            hostio.close(self._fd)
            self._fd = None

    def deinit(self):
        self.close()
