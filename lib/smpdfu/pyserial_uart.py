"""The pyserial adapter (CPython only): its own module so that boards never load it.

See :mod:`smpdfu.uart` for the adapter API. On CPython give
:class:`~smpdfu.transport.SerialTransport` one of these (a plain
``serial.Serial`` works too, but polls instead of waiting in ``select``).
"""

from .compat import sleep_ms
from .uart import UART

_EBUSY = 16  # errno of a port another program holds


class PySerialUART(UART):
    """A pyserial port (CPython only).

    ``port`` is a device path, a pyserial URL (``socket://host:port``,
    ``loop://``, ``rfc2217://...``) or an open ``serial.Serial``. The port's
    read timeout is set to 0 so that reads never block. Writing and
    closing are :class:`~smpdfu.uart.UART`'s.
    """

    def __init__(self, port, baudrate=115200, **kwargs):
        if isinstance(port, str):
            import serial  # lazily: boards have no pyserial

            # Exclusive: a second program on the same port would steal half
            # the answers (two uploads both fail, one with a false mismatch).
            kwargs.setdefault("exclusive", True)
            try:
                port = serial.serial_for_url(port, baudrate=baudrate, timeout=0, **kwargs)
            except serial.SerialException as e:
                if "exclusively lock" in str(e):
                    raise OSError(_EBUSY, "port busy: another program has %s open" % port)
                raise
        else:
            port.timeout = 0
        self.uart = port
        try:
            self._fd = port.fileno()
        except Exception:  # noqa: BLE001 - URL ports (loop://, socket://) may have none
            self._fd = None

    def wait_readable(self, ms):
        """Block until the port has data or ``ms`` milliseconds passed."""
        if self._fd is None or self.uart.in_waiting:
            sleep_ms(1)
            return
        import select

        select.select((self._fd,), (), (), ms / 1000)

    def read_available(self):
        data = self.uart.read(4096)
        return data or None
