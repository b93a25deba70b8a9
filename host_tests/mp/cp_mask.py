"""Makes the MicroPython unix port lack what CircuitPython lacks (``run_unix.py --circuitpython``).

Run before a test module is imported, so that :mod:`smpdfu.compat` takes its
CircuitPython branches on a real interpreter with a fixed heap:

- ``time`` has no ``ticks_ms``/``ticks_diff``/``ticks_add``/``sleep_ms`` and, as
  on builds without long ints, no ``monotonic_ns``; the clock is
  ``supervisor.ticks_ms()``, which wraps at 2**29 ms. It starts 2 s before the
  wrap here, so the tests' timeouts run across it;
- no native code emitter: ``smpdfu.native`` cannot be imported (CircuitPython
  rejects ``@micropython.viper``), so the portable Python loops run.

What cannot be masked at run time, integer literals beyond a small int, is
checked on the sources by host_tests/test_circuitpython_ints.py.
"""

import sys
import time as _real

_WRAP = 1 << 29
_START = _real.ticks_add(_real.ticks_ms(), -(_WRAP - 2000))


class _Time:
    """CircuitPython's ``time``: monotonic (float seconds), sleep, time."""

    monotonic = staticmethod(_real.time)
    sleep = staticmethod(_real.sleep)
    time = staticmethod(_real.time)
    localtime = staticmethod(_real.localtime)


class _Supervisor:
    @staticmethod
    def ticks_ms():
        return _real.ticks_diff(_real.ticks_ms(), _START) & (_WRAP - 1)


class _NoNative:
    """Stands in for smpdfu.native: every ``from .native import x`` fails."""


sys.modules["time"] = _Time()
sys.modules["supervisor"] = _Supervisor()
sys.modules["smpdfu.native"] = _NoNative()
