"""An asyncio loop on a daemon thread, so synchronous code can drive Bumble.

Bumble is asyncio-only; the SMP client and the emulator's worker are plain
threads. :class:`LoopThread` runs one event loop for the life of the object:
:meth:`run` submits a coroutine and waits for its result, :meth:`call` runs a
plain function on the loop without waiting.
"""

import asyncio
import threading


class LoopThread:
    """One asyncio event loop running on its own daemon thread."""

    def __init__(self, name="bumble"):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro, timeout=None):
        """Run ``coro`` on the loop; return its result (raise its exception).

        ``timeout`` in seconds: the coroutine is cancelled and
        ``TimeoutError`` raised when it takes longer.
        """
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except TimeoutError:
            fut.cancel()
            raise

    def call(self, fn, *args):
        """Run ``fn(*args)`` on the loop soon; do not wait."""
        self.loop.call_soon_threadsafe(fn, *args)

    def in_loop(self):
        """True when called from the loop's own thread."""
        return threading.current_thread() is self._thread

    def stop(self):
        """Stop the loop and join its thread."""
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self.loop.is_running():
            self.loop.close()
