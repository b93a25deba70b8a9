"""firmware/code.py (the CircuitPython entry point) on CPython.

CircuitPython's ``board``, ``busio`` and ``digitalio`` are stood in for by small
fakes: ``busio.UART`` is a pty-backed object with busio.UART's API (read(n),
readinto(buf), write, in_waiting, reset_input_buffer, deinit), connected to the
emulated nRF. The board config is boards/feather_nrf52840.py, unchanged except
for where its files live.
"""

import fcntl
import os
import runpy
import select
import struct
import sys
import termios
import time
import tty
import types

import pytest

import imagegen
from firmware_helpers import FAST_EMU, FIRMWARE, listing, load_app, load_board, place_image
from smpdfu_host.emulator import Emulator


class FakeBusioUART:
    """``busio.UART`` over a pty: the API CircuitPython documents, nothing more."""

    instances = []
    pty_path = None

    def __init__(self, tx, rx, *, baudrate=9600, bits=8, parity=None, stop=1, timeout=1.0,
                 receiver_buffer_size=64):
        self.tx, self.rx, self.baudrate = tx, rx, baudrate
        self.timeout = timeout
        self.receiver_buffer_size = receiver_buffer_size
        self._fd = os.open(self.pty_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self._fd)
        self.in_waiting_calls = 0
        self.written = 0
        FakeBusioUART.instances.append(self)

    @property
    def in_waiting(self):
        self.in_waiting_calls += 1
        buf = fcntl.ioctl(self._fd, termios.FIONREAD, b"\0\0\0\0")
        return struct.unpack("i", buf)[0]

    def read(self, nbytes=None):
        """Up to ``nbytes`` (all waiting when None); None after ``timeout`` with nothing."""
        end = time.monotonic() + self.timeout
        while True:
            try:
                data = os.read(self._fd, nbytes or 4096)
                if data:
                    return data
            except BlockingIOError:
                pass
            left = end - time.monotonic()
            if left <= 0:
                return None
            select.select([self._fd], [], [], left)

    def readinto(self, buf):
        data = self.read(len(buf))
        if not data:
            return None
        buf[: len(data)] = data
        return len(data)

    def write(self, buf):
        n = 0
        mv = memoryview(buf)
        while n < len(mv):
            try:
                n += os.write(self._fd, mv[n:])
            except BlockingIOError:
                select.select([], [self._fd], [], 1.0)
        self.written += n
        return n

    def reset_input_buffer(self):
        termios.tcflush(self._fd, termios.TCIFLUSH)

    def deinit(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class FakeDigitalInOut:
    def __init__(self, pin):
        self.pin = pin
        self.direction = None
        self.history = []
        FakeDigitalInOut.instances.append(self)

    @property
    def value(self):
        return self.history[-1] if self.history else False

    @value.setter
    def value(self, v):
        self.history.append(bool(v))


@pytest.fixture
def circuitpython(monkeypatch):
    """Install the fake CircuitPython modules; yields them."""
    board = types.ModuleType("board")
    board.TX, board.RX, board.LED = "board.TX", "board.RX", "board.LED"
    busio = types.ModuleType("busio")
    busio.UART = FakeBusioUART
    digitalio = types.ModuleType("digitalio")
    digitalio.DigitalInOut = FakeDigitalInOut
    digitalio.Direction = types.SimpleNamespace(OUTPUT="output", INPUT="input")
    FakeBusioUART.instances = []
    FakeDigitalInOut.instances = []
    for name, mod in (("board", board), ("busio", busio), ("digitalio", digitalio)):
        monkeypatch.setitem(sys.modules, name, mod)
    yield types.SimpleNamespace(board=board, busio=busio, digitalio=digitalio)


def test_code_py_updates_through_busio_uart(tmp_path, circuitpython, monkeypatch):
    emu = Emulator(flash=str(tmp_path / "flash.bin"), **FAST_EMU).start()
    try:
        FakeBusioUART.pty_path = emu.path
        image = imagegen.make_image(tmp_path / "app.bin", version="1.1.0", size=6000)
        cfg = load_board("feather_nrf52840", tmp_path, CONNECT_MS=2000, RESET_WAIT_MS=5000)
        place_image(cfg, image)
        monkeypatch.setitem(sys.modules, "smpdfu_app", load_app())
        ns = runpy.run_path(str(FIRMWARE / "code.py"), run_name="__main__")
        assert "smpdfu_app" in ns
        state = {s["slot"]: s for s in emu.state()}
    finally:
        emu.stop()
    assert state[0]["version"] == "1.1.0" and state[0]["confirmed"] and state[0]["active"]
    # the feather config's pins and baud reached busio.UART; reads went through in_waiting
    (uart,) = FakeBusioUART.instances
    assert (uart.tx, uart.rx, uart.baudrate) == ("board.TX", "board.RX", 115200)
    assert uart.in_waiting_calls > 10 and uart.written > 6000
    assert uart._fd is None, "the app releases the UART"
    # the LED blinked during the upload and stays on after success
    (led,) = FakeDigitalInOut.instances
    assert led.pin == "board.LED" and led.direction == "output"
    assert led.history.count(True) > 5 and led.history[-1] is True
    assert listing(cfg) == ["app.bin.done", "status.json"]


def test_code_py_without_neighbour_reports_and_keeps_image(tmp_path, circuitpython, monkeypatch, capsys):
    master, slave = os.openpty()
    try:
        FakeBusioUART.pty_path = os.ttyname(slave)
        image = imagegen.make_image(tmp_path / "app.bin", version="1.1.0", size=2000)
        cfg = load_board("feather_nrf52840", tmp_path, CONNECT_MS=500)
        place_image(cfg, image)
        monkeypatch.setitem(sys.modules, "smpdfu_app", load_app())
        runpy.run_path(str(FIRMWARE / "code.py"), run_name="__main__")
    finally:
        os.close(master)
        os.close(slave)
    out = capsys.readouterr().out
    assert "no answer from the neighbour" in out
    assert listing(cfg) == ["app.bin", "status.json"]
    (led,) = FakeDigitalInOut.instances
    assert led.history[-1] is False  # blinked the failure, ends off
