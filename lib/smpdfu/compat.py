"""Platform differences, in one place.

Everything in ``smpdfu`` that behaves differently on MicroPython, CircuitPython
and CPython goes through this module, so the rest of the package is plain,
portable Python.
"""

import sys

IMPL = sys.implementation.name
IS_MICROPYTHON = IMPL == "micropython"
IS_CIRCUITPYTHON = IMPL == "circuitpython"
IS_CPYTHON = IMPL == "cpython"

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

import time as _time

if hasattr(_time, "ticks_ms"):  # MicroPython
    ticks_ms = _time.ticks_ms
    ticks_diff = _time.ticks_diff
    ticks_add = _time.ticks_add
    sleep_ms = _time.sleep_ms
elif hasattr(_time, "monotonic_ns"):  # CPython, CircuitPython
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

    def sleep_ms(ms):
        """Sleep ``ms`` milliseconds."""
        _time.sleep(ms / 1000)

else:  # pragma: no cover
    raise ImportError("smpdfu needs time.ticks_ms or time.monotonic_ns")

import gc as _gc


def mem_alloc():
    """Bytes allocated on the heap now, or None where the port cannot tell."""
    f = getattr(_gc, "mem_alloc", None)
    return f() if f else None


def collect():
    """Run the garbage collector."""
    _gc.collect()


def to_bytes_be(value, n):
    """``value`` as ``n`` big-endian bytes (MicroPython lacks keyword args)."""
    return value.to_bytes(n, "big")


import binascii as _binascii

b2a_base64 = _binascii.b2a_base64
# False where binascii is a pure-Python module (it then has a __file__):
# framing then base64-encodes into its own buffer instead.
NATIVE_BINASCII = not hasattr(_binascii, "__file__")


def a2b_base64(data):
    """Decode base64, raising ValueError on bad input on every port.

    Some MicroPython builds (the WebAssembly one) ship a pure-Python binascii
    that raises a plain Exception instead of ValueError.
    """
    try:
        return _binascii.a2b_base64(data)
    except ValueError:
        raise
    except Exception as e:  # noqa: BLE001 - normalising the port's error type
        raise ValueError(str(e))
