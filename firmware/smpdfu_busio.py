"""CircuitPython's hardware for the update app (``busio``, ``digitalio``).

Apart from ``smpdfu_app`` so that a MicroPython board does not hold this code
or its names (each name a module uses costs heap once it is loaded).
"""

from smpdfu_app import setting


def open_uart(cfg):
    """``busio.UART`` on the board's ``UART_TX``/``UART_RX`` pins (names in ``board``)."""
    import board
    import busio

    return busio.UART(getattr(board, setting(cfg, "UART_TX")), getattr(board, setting(cfg, "UART_RX")),
                      baudrate=setting(cfg, "BAUDRATE"), timeout=0,
                      receiver_buffer_size=setting(cfg, "UART_RXBUF"))


def led_setter(pin):
    """A function setting the LED on ``board.<pin>`` on or off."""
    import board
    import digitalio

    io = digitalio.DigitalInOut(getattr(board, pin))
    io.direction = digitalio.Direction.OUTPUT

    def set_(v):
        io.value = v

    return set_
