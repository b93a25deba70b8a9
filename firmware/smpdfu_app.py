"""The on-board update app, shared by main.py (MicroPython) and code.py (CircuitPython).

At boot it looks for an MCUboot image at the board's ``IMAGE_PATH`` (default
``/update/app.bin``), checks it, and updates the neighbour over UART (or BLE:
``TRANSPORT = "ble"``, ``BLE_TARGET``) with
:class:`smpdfu.updater.Updater`. The outcome is recorded so that a power cycle
neither redoes the update nor loses it:

- ``STATUS_PATH`` (default ``/update/status.json``) is a small JSON journal:
  the step in progress and the image hash while updating, then the result;
- when done the image is renamed: ``app.bin.done`` (updated or already up to
  date), ``.reverted``, ``.bad`` (failed verification) or ``.failed`` (refused);
  it is *kept* after a transient failure (no answer, timeout) to retry at the
  next boot, which then resumes from what the neighbour reports.

With ``MANIFEST_URL`` (or ``IMAGE_URL``) in the board config the image comes
over HTTP(S) instead, streamed into the neighbour: see ``smpdfu_fota.py``.

The board's settings come from the module ``board_config`` (one of ``boards/*.py``,
deployed as ``/board_config.py``); see docs/boards.md.
"""

import json
import os
import sys

# The update's modules (client, transport, updater, mcuboot) are imported in
# run(), once an image is there: a boot without one costs only this file.

# Settings a board_config may leave out.
DEFAULTS = {
    "NAME": "board",
    "UART_ID": 1,
    "UART_TX": None,
    "UART_RX": None,
    "BAUDRATE": 115200,
    "UART_RXBUF": 2048,
    "LED": None,
    "LED_ACTIVE_LOW": False,
    "IMAGE_PATH": "/update/app.bin",
    "STATUS_PATH": "/update/status.json",
    "CONNECT_MS": 5000,
    "TIMEOUT_MS": 3000,
    "RESET_WAIT_MS": 30000,
    "ALLOW_DOWNGRADE": False,
    "MAX_PACKET": 2048,
    "WINDOW": None,
    "LINE_GAP_MS": 0,
    "TRANSPORT": "uart",  # or "ble": the neighbour over Bluetooth LE
    "BLE_TARGET": None,  # its name or "AA:BB:.." address; None: the first advertising SMP
    "BLE_PAIR": False,  # pair first (a neighbour whose SMP service needs an encrypted link)
    # over the air: the other settings' defaults are smpdfu_fota's own
    "MANIFEST_URL": None,
    "IMAGE_URL": None,
}

_SUFFIX = {"updated": ".done", "up-to-date": ".done", "reverted": ".reverted", "failed": ".failed"}


def setting(cfg, name):
    """``cfg.NAME``, or its default."""
    return getattr(cfg, name, DEFAULTS[name])


# ------------------------------------------------------------ hardware


def open_transport(cfg, hw, uart=None):
    """The SMP transport to the neighbour: over ``uart`` (or the board's UART),
    or over BLE when ``TRANSPORT`` is ``"ble"``: the board's ``make_ble_adapter()``
    if it has one, else the platform's adapter (``ble_mp``, ``ble_cp`` for ``busio``)."""
    if setting(cfg, "TRANSPORT") == "ble":
        import smpdfu_ble_link  # its own module: a UART board holds none of its code or names

        return smpdfu_ble_link.open_ble(cfg, hw)
    from smpdfu.transport import SerialTransport

    if uart is None:
        uart = open_uart(cfg, hw)
    return SerialTransport(uart, max_packet=setting(cfg, "MAX_PACKET"), line_gap_ms=setting(cfg, "LINE_GAP_MS"))


def open_uart(cfg, hw):
    """The UART to the neighbour: ``cfg.make_uart()`` if the board has one,
    else ``machine.UART`` (``hw="machine"``) or ``busio.UART`` (``hw="busio"``)."""
    make = getattr(cfg, "make_uart", None)
    if make is not None:
        return make()
    if hw == "busio":
        import smpdfu_busio  # CircuitPython's hardware: its own module, not held on MicroPython

        return smpdfu_busio.open_uart(cfg)
    from machine import UART, Pin

    kw = {"baudrate": setting(cfg, "BAUDRATE"), "rxbuf": setting(cfg, "UART_RXBUF"), "timeout": 0}
    if setting(cfg, "UART_TX") is not None:
        kw["tx"] = Pin(setting(cfg, "UART_TX"))
        kw["rx"] = Pin(setting(cfg, "UART_RX"))
    return UART(setting(cfg, "UART_ID"), **kw)


class Led:
    """The board's LED (or nothing): ``on()``, ``off()``, ``toggle()``, ``blink(n)``."""

    def __init__(self, cfg, hw):
        self._set = None
        self._state = False
        pin = setting(cfg, "LED")
        self._low = setting(cfg, "LED_ACTIVE_LOW")
        if pin is None:
            return
        try:
            if hw == "busio":
                import smpdfu_busio

                self._set = smpdfu_busio.led_setter(pin)
                return
            from machine import Pin

            p = Pin(pin, Pin.OUT)

            def set_(v):
                p.value(1 if v else 0)

            self._set = set_
        except Exception as e:  # noqa: BLE001 - an LED is a nicety, never a reason to stop
            print("LED %r unavailable: %s" % (pin, e))

    def set(self, on):
        self._state = on
        if self._set is not None:
            self._set(on != self._low)

    def on(self):
        self.set(True)

    def off(self):
        self.set(False)

    def toggle(self):
        self.set(not self._state)

    def blink(self, n, ms=150):
        if self._set is None:
            return  # no LED: no reason to wait
        from smpdfu.compat import sleep_ms

        for _ in range(n):
            self.on()
            sleep_ms(ms)
            self.off()
            sleep_ms(ms)


# ------------------------------------------------------------ files


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def read_status(path):
    """The status file's dict, or {} when missing or unreadable."""
    try:
        with open(path) as f:
            d = json.load(f)
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


def write_status(path, status):
    """Write the status file atomically (a temporary file renamed over it).

    A read-only filesystem (CircuitPython without boot.py's remount) only
    prints a warning: the neighbour's own state still prevents a redo.
    """
    tmp = path + ".tmp"
    try:
        d = path.rpartition("/")[0]
        if d and not exists(d):
            os.mkdir(d)
        with open(tmp, "w") as f:
            json.dump(status, f)
        try:
            os.rename(tmp, path)
        except OSError:  # a port that cannot rename over a file
            os.remove(path)
            os.rename(tmp, path)
        return True
    except OSError as e:
        print("warning: cannot write %s: %s" % (path, e))
        return False


def retire_image(path, suffix):
    """Rename the image so the next boot does not take it again; return the new name."""
    new = path + suffix
    try:
        if exists(new):
            os.remove(new)
        os.rename(path, new)
        return new
    except OSError as e:
        print("warning: cannot rename %s: %s" % (path, e))
        return None


# ------------------------------------------------------------ the app


class _Progress:
    # Prints every 10 % and blinks the LED with every chunk.
    def __init__(self, led, log):
        self.led = led
        self.log = log
        self.next = 0

    def __call__(self, done, total):
        self.led.toggle()
        pct = done * 100 // total if total else 100
        if pct >= self.next:
            self.log("  upload %3d%%  %d/%d bytes" % (pct, done, total))
            self.next = pct - pct % 10 + 10


def _load_update_code():
    # Everything the update runs, loaded before any buffer is allocated and
    # with a collection after each module: loading leaves garbage, and code
    # loaded among garbage and buffers leaves the heap in small holes, where
    # the transport's buffers no longer fit.
    import gc

    for name in ("smpdfu.transport", "smpdfu.client", "smpdfu.mcuboot", "smpdfu.updater", "smpdfu.dfu_smp",
                 "smpdfu.upload"):
        gc.collect()
        __import__(name)
    gc.collect()


def run(cfg, hw="machine", log=None, uart=None):
    """Run one update pass with board settings ``cfg``; return the UpdateResult, or None when there is no image.

    ``uart``: an already open UART (tests); by default one is opened from ``cfg``.
    """
    log = log or print
    if setting(cfg, "MANIFEST_URL") or setting(cfg, "IMAGE_URL"):
        import smpdfu_fota  # only boards that update over the air load the HTTP code

        return smpdfu_fota.run(cfg, hw, log, uart)
    path = setting(cfg, "IMAGE_PATH")
    status_path = setting(cfg, "STATUS_PATH")
    if not exists(path):
        last = read_status(status_path)
        log("no update image at %s%s" % (path, "; last update: %s (%s)" % (
            last.get("outcome"), last.get("message")) if last.get("outcome") else ""))
        return None

    _load_update_code()
    from smpdfu.errors import BadImage
    from smpdfu.mcuboot import verify
    from smpdfu.updater import FAILED, UpdateResult

    led = Led(cfg, hw)
    log("smpdfu: %s, image %s" % (setting(cfg, "NAME"), path))
    f = open(path, "rb")
    try:
        try:
            info = verify(f)
            f.seek(0)
        except (BadImage, OSError) as e:
            res = UpdateResult(FAILED, "bad image %s: %s" % (path, e))
            res.error = e
            return _finish(cfg, res, None, log, led, ".bad")
        log("image %s: version %s, %d bytes, hash %s..." % (
            path, info.version_str, info.file_size, info.hash_hex()[:16]))

        status = read_status(status_path)
        previous = None
        if status.get("hash") == info.hash_hex() and status.get("stage"):
            previous = (status["stage"], status["hash"])

        def record(stage, hash_hex):
            write_status(status_path, {"stage": stage, "hash": hash_hex, "image": path,
                                       "version": info.version_str})

        own_uart = uart is None
        try:
            transport = open_transport(cfg, hw, uart)
        except Exception as e:  # noqa: BLE001 - any port or radio error: report it, keep the image
            res = UpdateResult(FAILED, "cannot open the %s: %s" % (
                "BLE link" if setting(cfg, "TRANSPORT") == "ble" else "UART", e), info.version_str)
            res.error = e
            res.transient = True
            return _finish(cfg, res, info, log, led, None)
        from smpdfu.client import SMPClient
        from smpdfu.updater import Updater

        client = SMPClient(transport, timeout_ms=setting(cfg, "TIMEOUT_MS"))
        opts = {}
        if setting(cfg, "WINDOW"):
            opts["window"] = setting(cfg, "WINDOW")
        updater = Updater(client, log=log, progress=_Progress(led, log), record=record, previous=previous,
                          connect_ms=setting(cfg, "CONNECT_MS"), reset_wait_ms=setting(cfg, "RESET_WAIT_MS"),
                          allow_downgrade=setting(cfg, "ALLOW_DOWNGRADE"), upload_options=opts)
        led.on()
        try:
            res = updater.run(f, info)
        finally:
            if own_uart:
                transport.close()
        return _finish(cfg, res, info, log, led, None if res.transient else _SUFFIX[res.outcome])
    finally:
        f.close()


def _finish(cfg, res, info, log, led, suffix):
    # Record the outcome: status file first, then retire the image.
    from smpdfu.updater import FAILED, REVERTED  # loaded by run() already

    path = setting(cfg, "IMAGE_PATH")
    status = res.to_dict()
    status["image"] = path
    if info is not None:
        status["hash"] = info.hash_hex()
        status["version"] = info.version_str
    if suffix:
        status["stage"] = "done"
    else:
        # Keep the journal's step: the next boot resumes from it.
        prev = read_status(setting(cfg, "STATUS_PATH"))
        status["stage"] = prev.get("stage") if prev.get("hash") == status.get("hash") else None
    if suffix:
        status["image"] = retire_image(path, suffix) or path
    write_status(setting(cfg, "STATUS_PATH"), status)
    log(("update %s: " % res.outcome) + res.message)
    if not suffix and res.outcome == FAILED:
        log("the image stays at %s: the next boot tries again" % path)
    log(res.summary())
    if res.ok:
        led.on()
    else:
        led.blink(3 if res.outcome == REVERTED else 5)
    return res


def main(hw="machine"):
    """Entry point of main.py / code.py: load ``board_config`` and run one pass.

    Never raises: a boot script must not crash the board; errors are printed.
    """
    try:
        import board_config as cfg
    except ImportError:
        print("smpdfu: no board_config.py (copy one of boards/*.py there, see docs/boards.md)")
        return None
    try:
        return run(cfg, hw)
    except Exception as e:  # noqa: BLE001 - report, never crash the boot
        try:
            pe = getattr(sys, "print_exception", None)  # MicroPython
            if pe:
                pe(e)
            else:  # CircuitPython, CPython
                import traceback

                traceback.print_exception(type(e), e, e.__traceback__)
        except Exception:  # noqa: BLE001 - the message below is enough
            pass
        print("smpdfu: update aborted: %s" % e)
        return None
