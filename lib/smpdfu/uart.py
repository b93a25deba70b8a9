"""UART adapters: the one place where the serial APIs of the platforms differ.

Every adapter offers the same three methods, which is all the transport uses:

- ``write(buf)``: write all of ``buf`` (bytes, bytearray or memoryview);
- ``read_available()``: the bytes received so far, or None; never blocks;
- ``close()``;

and optionally ``wait_readable(ms)``, which blocks until data may be there
(or ``ms`` passed), so that a client waiting for an answer sleeps instead of
polling (pyserial: ``select`` on the port).

:class:`UART` adapts a ``machine.UART`` or a ``busio.UART`` (by duck
typing); :class:`~smpdfu.transport.SerialTransport` wraps what it is given
in it unless the object has ``read_available`` already (the pyserial adapter,
:class:`smpdfu.pyserial_uart.PySerialUART`, CPython only and in its own
module so that boards never load it; a board's own adapter; a test double).
"""

from .compat import const, sleep_ms, ticks_diff, ticks_ms

_WRITE_STALL_MS = const(2000)  # a UART that accepts nothing for this long is dead


class UART:
    """MicroPython ``machine.UART`` (``any()``) or CircuitPython ``busio.UART``
    (``in_waiting``), or anything else with one of them and ``read(n)``."""

    def __init__(self, uart):
        self.uart = uart
        self._any = getattr(uart, "any", None)
        if not (self._any or hasattr(uart, "in_waiting")):
            raise TypeError("not a UART: %s" % type(uart).__name__)

    def write(self, buf):
        # The UART may accept only part of ``buf`` (or return None on a
        # timeout, as machine.UART and busio.UART do): go on until all is out.
        write = self.uart.write
        n = len(buf)
        k = write(buf)
        if k is None or k < n:
            mv = memoryview(buf)
            done = k or 0
            t0 = ticks_ms()
            while done < n:
                k = write(mv[done:])
                if k:
                    done += k
                    t0 = ticks_ms()
                elif ticks_diff(ticks_ms(), t0) > _WRITE_STALL_MS:
                    raise OSError("UART stalled: %d of %d bytes" % (done, n))
                else:
                    sleep_ms(1)

    def read_available(self):
        u = self.uart
        n = self._any() if self._any else u.in_waiting
        return u.read(n) if n else None

    def close(self):
        f = getattr(self.uart, "deinit", None) or getattr(self.uart, "close", None)
        if f:
            f()
