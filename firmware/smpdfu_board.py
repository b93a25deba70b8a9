"""The update app's board side: settings, hardware, the image and status files.

:func:`smpdfu_app.run` loads this module before the update (:func:`prepare`:
find and check the image, open the link) and again after it (:func:`finish`:
record the outcome), and unloads it while the update runs: the upload is
where a board's heap peaks, and none of this is needed then.
"""

import json
import os

# Settings a board_config may leave out.
DEFAULTS = {
    "NAME": "board",
    "UART_ID": 1,
    "UART_TX": None,
    "UART_RX": None,
    "BAUDRATE": 115200,
    "UART_RXBUF": 2048,  # at most: a small heap gets less (link_size)
    "LED": None,
    "LED_ACTIVE_LOW": False,
    "IMAGE_PATH": "/update/app.bin",
    "STATUS_PATH": "/update/status.json",
    "CONNECT_MS": 5000,
    "TIMEOUT_MS": 3000,
    "RESET_WAIT_MS": 30000,
    "ALLOW_DOWNGRADE": False,
    "MAX_PACKET": 2048,  # at most: a small heap gets less (link_size)
    "WINDOW": None,
    "LINE_GAP_MS": 0,
    "TRANSPORT": "uart",  # or "ble": the neighbour over Bluetooth LE
    "BLE_TARGET": None,  # its name or "AA:BB:.." address; None: the first advertising SMP
    "BLE_PAIR": False,  # pair first (a neighbour whose SMP service needs an encrypted link)
    # over the air: the other settings' defaults are smpdfu_fota's own
    "MANIFEST_URL": None,
    "IMAGE_URL": None,
}


def setting(cfg, name):
    """``cfg.NAME``, or its default."""
    return getattr(cfg, name, DEFAULTS[name])


# ------------------------------------------------------------ hardware


def _free():
    # The free heap after a collection, or None where the port cannot tell (CPython).
    import gc

    free = getattr(gc, "mem_free", None)
    if free is None:
        return None
    gc.collect()
    return free()


def link_size(cfg, name):
    """The setting ``name`` (``MAX_PACKET``, ``UART_RXBUF``), capped on a small heap.

    The link's and the upload's buffers (frames out and in, the window of
    requests in flight, the read buffer) take about 8 times the packet size:
    they get at most an eighth of the heap free once the update's code is
    loaded, so a small heap (64-128 KB) gets 384-byte packets, which any SMP
    server takes, while a large one keeps the fastest sizes. Where the port
    cannot tell its free heap (CPython): the setting as is.
    """
    n = setting(cfg, name)
    free = _free()
    if free is None:
        return n
    cap = free // 64
    if cap < 384:
        cap = 384
    return n if n < cap else cap


def upload_options(cfg, transport):
    """The upload's options: ``WINDOW`` if set, and its resend ring, made now.

    The ring is the upload's one big buffer: made here, right after the
    link's, it sits with them in the heap still in one piece, not in the
    holes the update's steps leave behind them. It holds up to 3 requests
    (``WINDOW`` if set) within a sixteenth of the free heap: a small heap
    keeps one request in flight, a large one today's speed. Where the port
    cannot tell its free heap (CPython): the engine sizes it.
    """
    w = setting(cfg, "WINDOW")
    opts = {"window": w} if w else {}
    free = _free()
    if free is not None:
        n = transport.max_packet
        if not w:
            w = free // 16 // n
            w = 3 if w > 3 else w or 1
        opts["ring"] = bytearray(w * n)
    return opts


def open_transport(cfg, hw, uart=None):
    """The SMP transport to the neighbour: over ``uart``, else the board's UART
    (``cfg.make_uart()`` if it has one, else ``machine.UART`` for ``hw="machine"``
    or ``busio.UART`` for ``hw="busio"``), or over BLE when ``TRANSPORT`` is
    ``"ble"``: the board's ``make_ble_adapter()`` if it has one, else the
    platform's adapter (``ble_mp``, ``ble_cp`` for ``busio``)."""
    if setting(cfg, "TRANSPORT") == "ble":
        import smpdfu_ble_link  # its own module: a UART board holds none of its code or names

        return smpdfu_ble_link.open_ble(cfg, hw, link_size(cfg, "MAX_PACKET"))
    from smpdfu.transport import SerialTransport

    if uart is None:
        make = getattr(cfg, "make_uart", None)
        if make is not None:
            uart = make(link_size(cfg, "UART_RXBUF"))
        elif hw == "busio":
            import smpdfu_busio  # CircuitPython's hardware: its own module, not held on MicroPython

            uart = smpdfu_busio.open_uart(cfg, link_size(cfg, "UART_RXBUF"))
        else:
            from machine import UART, Pin

            kw = {"baudrate": setting(cfg, "BAUDRATE"), "rxbuf": link_size(cfg, "UART_RXBUF"), "timeout": 0}
            if setting(cfg, "UART_TX") is not None:
                kw["tx"] = Pin(setting(cfg, "UART_TX"))
                kw["rx"] = Pin(setting(cfg, "UART_RX"))
            uart = UART(setting(cfg, "UART_ID"), **kw)
    return SerialTransport(uart, max_packet=link_size(cfg, "MAX_PACKET"), line_gap_ms=setting(cfg, "LINE_GAP_MS"))


def led(cfg, hw):
    """A function setting the board's LED pin high (True) or low, or None without an LED.

    It is a C method (``machine.Pin.value``) or lives in ``smpdfu_busio``:
    the update keeps it without keeping this module.
    """
    pin = setting(cfg, "LED")
    if pin is None:
        return None
    try:
        if hw == "busio":
            import smpdfu_busio

            return smpdfu_busio.led_setter(pin)
        from machine import Pin

        return Pin(pin, Pin.OUT).value
    except Exception as e:  # noqa: BLE001 - an LED is a nicety, never a reason to stop
        print("LED %r unavailable: %s" % (pin, e))
        return None


def show(cfg, led, res):
    """The LED for ``res``: on while working (None) and after a success; 3 blinks after a revert, 5 after a failure."""
    if led is None:
        return  # no LED: no reason to wait
    on = not setting(cfg, "LED_ACTIVE_LOW")
    if res is None or res.ok:
        led(on)
        return
    from smpdfu.compat import sleep_ms

    for _ in range(3 if res.outcome == "reverted" else 5):
        led(on)
        sleep_ms(150)
        led(not on)
        sleep_ms(150)


# ------------------------------------------------------------ files


def read_status(path):
    """The status file's dict, or {} when missing or unreadable."""
    try:
        with open(path) as f:
            d = json.load(f)
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


# ------------------------------------------------------------ before and after the update


def prepare(cfg, hw, log, uart, record):
    """Everything before the update: returns ``(updater, stream, info, transport)``
    for :func:`smpdfu_app.run`, or what it returns instead: None (no image), the
    over-the-air pass's result, or the result of a run that could not start (a
    bad image, a link that does not open), recorded.

    ``record(stage, hash_hex)``: the journal (the updater's ``record``).
    """
    if setting(cfg, "MANIFEST_URL") or setting(cfg, "IMAGE_URL"):
        import smpdfu_fota  # only boards that update over the air load the HTTP code

        return smpdfu_fota.run(cfg, hw, log, uart)
    path = setting(cfg, "IMAGE_PATH")
    status_path = setting(cfg, "STATUS_PATH")
    try:
        os.stat(path)
    except OSError:  # no image
        last = read_status(status_path)
        log("no update image at %s%s" % (path, "; last update: %s (%s)" % (
            last.get("outcome"), last.get("message")) if last.get("outcome") else ""))
        return None

    import smpdfu_app

    smpdfu_app._load_update_code("transport client mcuboot updater")
    from smpdfu.errors import BadImage
    from smpdfu.mcuboot import verify
    from smpdfu.updater import FAILED, UpdateResult, Updater

    light = led(cfg, hw)
    log("smpdfu: %s, image %s" % (setting(cfg, "NAME"), path))
    f = open(path, "rb")
    try:
        try:
            info = verify(f)
            f.seek(0)
        except (BadImage, OSError) as e:
            f.close()
            res = UpdateResult(FAILED, "bad image %s: %s" % (path, e))
            res.error = e
            return finish(cfg, res, None, log, light, ".bad")
        log("image %s: version %s, %d bytes, hash %s..." % (
            path, info.version_str, info.file_size, info.hash_hex()[:16]))
        status = read_status(status_path)
        previous = None
        if status.get("hash") == info.hash_hex() and status.get("stage"):
            previous = (status["stage"], status["hash"])
        try:
            transport = open_transport(cfg, hw, uart)
        except Exception as e:  # noqa: BLE001 - any port or radio error: report it, keep the image
            f.close()
            res = UpdateResult(FAILED, "cannot open the %s: %s" % (
                "BLE link" if setting(cfg, "TRANSPORT") == "ble" else "UART", e), info.version_str)
            res.error = e
            res.transient = True
            return finish(cfg, res, info, log, light)
        from smpdfu.client import SMPClient

        client = SMPClient(transport, timeout_ms=setting(cfg, "TIMEOUT_MS"))
        updater = Updater(client, log=log, progress=smpdfu_app._Progress(light, log), record=record,
                          previous=previous, connect_ms=setting(cfg, "CONNECT_MS"),
                          reset_wait_ms=setting(cfg, "RESET_WAIT_MS"),
                          allow_downgrade=setting(cfg, "ALLOW_DOWNGRADE"),
                          upload_options=upload_options(cfg, transport))
    except BaseException:
        f.close()
        raise
    show(cfg, light, None)  # on while working
    return updater, f, info, transport


def finish(cfg, res, info, log, led, suffix=None):
    """Record the outcome of a run: the status file first, then the image
    renamed so that the next boot does not take it again (``suffix``; by
    default ``.done`` after a success, else ``.reverted`` or ``.failed``; none
    after a transient failure: the image stays for the next boot); the log
    lines and the LED."""
    from smpdfu.update_report import as_dict, summary

    if suffix is None and not res.transient:
        suffix = ".done" if res.ok else "." + res.outcome
    path = setting(cfg, "IMAGE_PATH")
    status = as_dict(res)
    status["image"] = path
    if info is not None:
        status["hash"] = info.hash_hex()
        status["version"] = info.version_str
    if suffix:
        status["stage"] = "done"
        new = path + suffix
        try:
            try:
                os.remove(new)  # an earlier image's
            except OSError:
                pass
            os.rename(path, new)
            status["image"] = new
        except OSError as e:
            print("warning: cannot rename %s: %s" % (path, e))
    else:
        # Keep the journal's step: the next boot resumes from it.
        prev = read_status(setting(cfg, "STATUS_PATH"))
        status["stage"] = prev.get("stage") if prev.get("hash") == status.get("hash") else None
    import smpdfu_app  # its writer: the one the journal uses while this module is unloaded

    smpdfu_app.write_status(setting(cfg, "STATUS_PATH"), status)
    log(("update %s: " % res.outcome) + res.message)
    if not suffix and res.outcome == "failed":
        log("the image stays at %s: the next boot tries again" % path)
    log(summary(res))
    show(cfg, led, res)
    return res

