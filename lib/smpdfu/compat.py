"""Platform differences, in one place.

Everything in ``smpdfu`` that behaves differently on MicroPython, CircuitPython
and CPython goes through this module, so the rest of the package is plain,
portable Python.
"""

import sys

IS_MICROPYTHON = sys.implementation.name == "micropython"
# startswith: a str of more than 10 characters would be an object on the heap, a shorter one is a name
IS_CIRCUITPYTHON = sys.implementation.name.startswith("circuit")

try:
    from micropython import const  # noqa: F401  (MicroPython, CircuitPython)
except ImportError:

    def const(value):
        """CPython stand-in for ``micropython.const``."""
        return value


try:
    from hashlib import sha256  # noqa: F401
except ImportError:  # pragma: no cover - ports without a C hashlib
    try:
        from uhashlib import sha256  # noqa: F401  (older MicroPython ports)
    except ImportError:
        # CircuitPython builds without CIRCUITPY_HASHLIB: the pure-Python
        # library from the Adafruit bundle (circup install adafruit_hashlib).
        from adafruit_hashlib import sha256  # noqa: F401

try:  # MicroPython
    from time import sleep_ms, ticks_add, ticks_diff, ticks_ms  # noqa: F401
except ImportError:
    import time as _time

    def sleep_ms(ms):
        """Sleep ``ms`` milliseconds."""
        _time.sleep(ms / 1000)

    # CircuitPython (>= 7) has no time.ticks_ms; supervisor.ticks_ms is its
    # allocation-free clock (time.monotonic_ns needs long ints, which small
    # builds lack, and allocates one per call where they exist).
    _sup = None
    if sys.implementation.name != "cpython":
        try:
            import supervisor as _sup
        except ImportError:
            pass
        if _sup is not None and not hasattr(_sup, "ticks_ms"):
            _sup = None

    if _sup is not None:  # CircuitPython: wraps every 2**29 ms (6.2 days)
        ticks_ms = _sup.ticks_ms
        _PERIOD = const(1 << 29)
        _MASK = const((1 << 29) - 1)
        _HALF = const(1 << 28)

        def ticks_diff(a, b):
            """``a - b`` in milliseconds, across the wrap."""
            d = (a - b) & _MASK
            return d - _PERIOD if d >= _HALF else d

        def ticks_add(a, b):
            """``a + b`` in milliseconds, wrapped like ``ticks_ms``."""
            return (a + b) & _MASK

    else:  # CPython (elsewhere: an AttributeError naming monotonic_ns)
        _T0 = _time.monotonic_ns()

        def ticks_ms():
            """Milliseconds from an arbitrary start, not wrapping."""
            return (_time.monotonic_ns() - _T0) // 1000000

        def ticks_diff(a, b):
            """``a - b`` in milliseconds (ticks here never wrap)."""
            return a - b

        def ticks_add(a, b):
            """``a + b`` in milliseconds."""
            return a + b


import binascii as _binascii

# The framing's per-byte loops (CRC-16, base64 lines into a preallocated
# buffer): viper code where the firmware has a native emitter, else portable
# Python (C binascii's b2a_base64 allocates per line: `make bench-mcu`).
try:
    from .native import crc16_range, frame_lines  # noqa: F401
    NATIVE_CODE = True
except (ImportError, SyntaxError, ValueError):  # CPython / no emitter / .mpy of another arch
    from .b64 import frame_lines  # noqa: F401
    from .crc16 import crc16_range  # noqa: F401
    NATIVE_CODE = False


if hasattr(_binascii, "__file__"):  # a pure-Python binascii (the WebAssembly build)

    def a2b_base64(data):
        """Decode base64, raising ValueError on bad input on every port.

        The WebAssembly build's pure-Python binascii raises a plain
        Exception instead of ValueError.
        """
        try:
            return _binascii.a2b_base64(data)
        except ValueError:
            raise
        except Exception as e:  # noqa: BLE001 - normalising the port's error type
            raise ValueError(str(e))

else:  # C binascii (CPython's binascii.Error is a ValueError): no wrapper call per line
    a2b_base64 = _binascii.a2b_base64
