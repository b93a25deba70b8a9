"""The board's Bumble stack for tests, run by an asyncio loop in a background
thread (the board code under test runs in the test's thread and only sees the
stack through its own API). Its controller is either reached through a Bumble
transport spec (the emulated nRF's relay, ``emu.hci``) or a virtual one on a
LocalLink of its own.
"""

import asyncio
import threading

from bumble.controller import Controller
from bumble.device import Device
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport import open_transport
from bumble.transport.common import AsyncPipeSink


class World:
    """One LocalLink and the loop thread that drives every device on it."""

    def __init__(self):
        self.link = LocalLink()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="bumble-world")
        self._thread.start()
        self.devices = []
        self._transports = []

    def run(self, coro, timeout=30):
        """Run ``coro`` on the world's loop from another thread; return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def submit(self, coro):
        """Start ``coro`` on the world's loop; return the concurrent Future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, fn, *args):
        """Call ``fn(*args)`` in the loop thread (fire and forget)."""
        self.loop.call_soon_threadsafe(fn, *args)

    def new_device(self, name, address, hci=None):
        """A powered-on Bumble Device: on the controller at transport spec ``hci``,
        or (None) on a virtual controller of its own on :attr:`link`."""

        async def make():
            if hci:
                t = await open_transport(hci)
                self._transports.append(t)
                dev = Device.with_hci(name, Address(address), t.source, t.sink)
            else:
                ctrl = Controller(name, link=self.link)
                dev = Device(name=name, address=Address(address), host=Host(ctrl, AsyncPipeSink(ctrl)))
            await dev.power_on()
            return dev

        dev = self.run(make())
        self.devices.append(dev)
        return dev

    def close(self):
        """Cancel what still runs on the loop, stop its thread, close it."""

        async def cancel_all():
            for t in self._transports:
                await t.close()
            me = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.run(cancel_all(), 10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            if not self._thread.is_alive():
                self.loop.close()
