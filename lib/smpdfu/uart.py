"""UART adapters: the one place where the serial APIs of the platforms differ.

Every adapter offers the same three methods, which is all the transport uses:

- ``write(buf)``: write all of ``buf`` (bytes, bytearray or memoryview);
- ``read_available()``: the bytes received so far, or None; never blocks;
- ``close()``;

and optionally ``wait_readable(ms)``, which blocks until data may be there
(or ``ms`` passed), so that a client waiting for an answer sleeps instead of
polling (pyserial: ``select`` on the port). The pyserial adapter (CPython
only) lives in :mod:`smpdfu.pyserial_uart`, so boards never load it.

:func:`wrap` picks the adapter for an object by duck typing, so a board's
config can pass a ``machine.UART``, a ``busio.UART``, a pyserial port or its
own object that already has ``read_available``.
"""

from .compat import const, sleep_ms, ticks_diff, ticks_ms

_WRITE_STALL_MS = const(2000)  # a UART that accepts nothing for this long is dead


def _write_all(write, buf):
    # ``write`` may accept only part of ``buf`` (or None on a timeout, as
    # machine.UART and busio.UART do): keep going until all of it is out.
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
                raise OSError("UART write stalled (%d of %d bytes written)" % (done, n))
            else:
                sleep_ms(1)


class MachineUART:
    """MicroPython ``machine.UART`` (or anything with ``any()``/``read(n)``)."""

    def __init__(self, uart):
        self.uart = uart

    def write(self, buf):
        _write_all(self.uart.write, buf)

    def read_available(self):
        n = self.uart.any()
        if not n:
            return None
        return self.uart.read(n)

    def close(self):
        f = getattr(self.uart, "deinit", None)
        if f:
            f()


class BusioUART:
    """CircuitPython ``busio.UART`` (``in_waiting``/``read(n)``)."""

    def __init__(self, uart):
        self.uart = uart

    def write(self, buf):
        _write_all(self.uart.write, buf)

    def read_available(self):
        n = self.uart.in_waiting
        if not n:
            return None
        return self.uart.read(n)

    def close(self):
        f = getattr(self.uart, "deinit", None) or getattr(self.uart, "close", None)
        if f:
            f()


def wrap(obj):
    """The adapter for ``obj``, chosen by the methods it has.

    An object that already has ``read_available`` is returned unchanged; a
    ``str`` is opened with pyserial (device path or URL).
    """
    if hasattr(obj, "read_available"):
        return obj
    if isinstance(obj, str):
        from .pyserial_uart import PySerialUART

        return PySerialUART(obj)
    if hasattr(obj, "any"):
        return MachineUART(obj)
    if hasattr(obj, "in_waiting"):
        # busio.UART and pyserial share this API; pyserial also has
        # ``reset_input_buffer`` *and* ``port``, busio does not have ``port``.
        if hasattr(obj, "port") and hasattr(obj, "timeout"):
            from .pyserial_uart import PySerialUART

            return PySerialUART(obj)
        return BusioUART(obj)
    raise TypeError("cannot use %s as a UART" % type(obj).__name__)
