"""CircuitPython's hardware for the update app (``busio``, ``digitalio``).

Apart from ``smpdfu_board`` so that a MicroPython board does not hold this code
or its names (each name a module uses costs heap once it is loaded). The LED
setter stays in use while the update runs: nothing here refers to
``smpdfu_board``, which is unloaded meanwhile.
"""


def open_uart(cfg, rxbuf):
    """``busio.UART`` on the board's ``UART_TX``/``UART_RX`` pins (names in ``board``), ``rxbuf`` bytes of receive buffer."""
    import board
    import busio

    from smpdfu_board import setting

    return busio.UART(getattr(board, setting(cfg, "UART_TX")), getattr(board, setting(cfg, "UART_RX")),
                      baudrate=setting(cfg, "BAUDRATE"), timeout=0, receiver_buffer_size=rxbuf)


def led_setter(pin):
    """A function setting the LED on ``board.<pin>`` on or off."""
    import board
    import digitalio

    io = digitalio.DigitalInOut(getattr(board, pin))
    io.direction = digitalio.Direction.OUTPUT

    def set_(v):
        io.value = v

    return set_
