"""The on-board app's over-the-air path: the image comes from a URL instead of a file.

Used by :func:`smpdfu_app.run` (through ``smpdfu_board.prepare``) when the board config sets ``MANIFEST_URL`` (or
``IMAGE_URL``)::

    Wi-Fi -> manifest -> compare versions with the neighbour -> download and
    stream into it (SMPTarget) -> test -> reset -> confirm

The same :class:`smpdfu.updater.Updater` as the file path drives the steps
(its upload step is the download), with the same journal in ``STATUS_PATH``,
so a power cut anywhere resumes safely:

- during the download: the neighbour keeps what it holds for the manifest's
  ``sha256``; the next boot downloads the first 2 KB (the header its first
  request needs), then only the rest, and the neighbour's ``match`` vouches
  for the part not downloaded again (see smpdfu.dfu_smp);
- after it: the journal holds the image hash, so a pending image is just
  booted, a running one confirmed, and a reverted one not tried again.

With a bare ``IMAGE_URL`` (no manifest) the version is known only once
downloaded and the neighbour cannot resume a partial upload after a power cut
of the board (no ``sha``); once an update from a URL is done the app does not
fetch that URL again (change the URL, or use a manifest).

Settings: ``MANIFEST_URL``/``IMAGE_URL``; ``CA_PATH`` (PEM or DER of the
server's CA: required for https on MicroPython, which has no trust store);
``WIFI_SSID``/``WIFI_PASSWORD`` (``network.WLAN``, or CircuitPython's ``wifi.radio``; unset where the
network is already up); ``WIFI_TIMEOUT_MS``, ``HTTP_TIMEOUT_MS``, ``HTTP_RETRIES``;
``NTP_HOST`` (https checks certificate dates: an unset clock is set with
``ntptime`` first).
"""

from binascii import hexlify

from smpdfu import fota_download
from smpdfu.compat import sleep_ms, ticks_diff, ticks_ms
from smpdfu.updater import FAILED, STAGE_DONE, UpdateResult

import smpdfu_app as app
import smpdfu_board as board

# The over-the-air settings' defaults, kept here so that a UART-only board
# does not hold them; added to smpdfu_board's table when this module loads.
board.DEFAULTS.update({
    "CA_PATH": None,
    "WIFI_SSID": None,
    "WIFI_PASSWORD": None,
    "WIFI_TIMEOUT_MS": 20000,
    "HTTP_TIMEOUT_MS": 10000,
    "HTTP_RETRIES": 5,
    "NTP_HOST": None,
})

class WifiError(OSError):
    """Wi-Fi did not come up; the message says why (wrong password, no such network...)."""


def connect_wifi(cfg, log):
    """Join ``WIFI_SSID`` with ``network.WLAN``; nothing to do when no SSID is set."""
    ssid = board.setting(cfg, "WIFI_SSID")
    if not ssid:
        return
    try:
        import network
    except ImportError:  # CircuitPython: wifi.radio
        return _connect_circuitpython(cfg, ssid, log)

    w = network.WLAN(network.STA_IF)
    w.active(True)
    if w.isconnected():
        return
    log("Wi-Fi: joining %r" % ssid)
    w.connect(ssid, board.setting(cfg, "WIFI_PASSWORD") or "")
    # Status numbers differ per port (esp32, cyw43): compare with the names.
    failures = (("STAT_WRONG_PASSWORD", "wrong password for Wi-Fi network %r"),
                ("STAT_NO_AP_FOUND", "no Wi-Fi network named %r in range"),
                ("STAT_CONNECT_FAIL", "could not join Wi-Fi network %r"))
    limit = board.setting(cfg, "WIFI_TIMEOUT_MS")
    t0 = ticks_ms()
    while not w.isconnected():
        st = w.status()
        for name, text in failures:
            code = getattr(network, name, None)
            if code is not None and st == code:
                w.active(False)
                raise WifiError(text % ssid)
        if ticks_diff(ticks_ms(), t0) > limit:
            w.active(False)
            raise WifiError("Wi-Fi network %r: not connected after %d ms (status %s)" % (ssid, limit, st))
        sleep_ms(200)
    log("Wi-Fi: connected, address %s" % w.ifconfig()[0])


def _connect_circuitpython(cfg, ssid, log):
    import wifi

    if wifi.radio.connected:
        return
    log("Wi-Fi: joining %r" % ssid)
    try:
        wifi.radio.connect(ssid, board.setting(cfg, "WIFI_PASSWORD") or "",
                           timeout=board.setting(cfg, "WIFI_TIMEOUT_MS") / 1000)
    except ConnectionError as e:  # "Authentication failure", "No network with that ssid"...
        raise WifiError("could not join Wi-Fi network %r: %s" % (ssid, e))
    log("Wi-Fi: connected, address %s" % wifi.radio.ipv4_address)


def set_clock(cfg, log):
    """Set the clock from NTP when it is unset (a board boots in 2000): TLS checks certificate dates."""
    import time

    if time.gmtime()[0] >= 2024:
        return
    try:
        import ntptime

        host = board.setting(cfg, "NTP_HOST")
        if host:
            ntptime.host = host
        ntptime.settime()
        log("clock set from NTP: %04d-%02d-%02d %02d:%02d UTC" % time.gmtime()[:5])
    except Exception as e:  # noqa: BLE001 - any NTP failure: say what it breaks
        raise OSError("the board's clock is not set (year %d) and NTP failed (%s): https needs the date to check "
                      "the server's certificate" % (time.gmtime()[0], e))


def _ca(cfg):
    path = board.setting(cfg, "CA_PATH")
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


class _Source:
    # Where the image comes from: the manifest's facts, or a bare URL's.
    def __init__(self, cfg):
        self.manifest = board.setting(cfg, "MANIFEST_URL")
        self.url = self.manifest or board.setting(cfg, "IMAGE_URL")
        self.sha = self.size = self.version = None

    def load(self, ca, timeout_ms, retries, log):
        if self.manifest:
            m = fota_download.fetch_manifest(self.manifest, ca=ca, timeout_ms=timeout_ms, retries=retries)
            self.url, self.sha, self.size, self.version = m.url, m.sha256, m.size, m.version
            log("manifest %s: version %s, %d bytes at %s" % (self.manifest, m.version, m.size, m.url))

    def key(self):
        # What the journal remembers this image by.
        return hexlify(self.sha).decode() if self.sha else self.url

    def journal_hash(self, status):
        """The image hash an earlier run recorded for this image, or None."""
        if status.get("source") == self.key() and status.get("hash"):
            from binascii import unhexlify

            return unhexlify(status["hash"])
        return None


def run(cfg, hw="machine", log=None, uart=None):
    """One over-the-air update pass (see the module doc); returns the UpdateResult, or None when done before."""
    log = log or print
    status_path = board.setting(cfg, "STATUS_PATH")
    src = _Source(cfg)
    status = board.read_status(status_path)
    if not src.manifest and status.get("source") == src.url and status.get("stage") == STAGE_DONE:
        log("%s was done before (%s): nothing to do" % (src.url, status.get("outcome")))
        return None
    led = board.led(cfg, hw)
    log("smpdfu: %s, update from %s" % (board.setting(cfg, "NAME"), src.url))
    timeout_ms = board.setting(cfg, "HTTP_TIMEOUT_MS")
    retries = board.setting(cfg, "HTTP_RETRIES")
    try:
        connect_wifi(cfg, log)
        ca = _ca(cfg)
        if ca and src.url.startswith("https:"):
            set_clock(cfg, log)
        src.load(ca, timeout_ms, retries, log)
    except Exception as e:  # noqa: BLE001 - no network, no manifest: try again at the next boot
        res = UpdateResult(FAILED, "%s: %s" % (type(e).__name__, e))
        res.error = e
        res.transient = not isinstance(e, ValueError)
        return _finish(cfg, src, res, None, log, led)
    if status.get("source") == src.key() and status.get("outcome") == FAILED and not status.get("transient"):
        log("the image of %s failed before (%s): nothing to do until it changes" % (src.url, status.get("message")))
        return None
    image_hash = src.journal_hash(status)
    previous = (status["stage"], status["hash"]) if image_hash and status.get("stage") else None
    info = None

    def record(stage, hash_hex):
        app.write_status(status_path, {"stage": stage, "hash": hash_hex, "source": src.key(), "url": src.url,
                                       "version": info.version_str})

    own_uart = uart is None
    try:
        transport = board.open_transport(cfg, hw, uart)  # UART, or BLE with TRANSPORT = "ble"
    except Exception as e:  # noqa: BLE001 - any port or radio error: report it, try again later
        res = UpdateResult(FAILED, "cannot open the link to the neighbour: %s" % e)
        res.error = e
        res.transient = True
        return _finish(cfg, src, res, info, log, led)
    updater = _updater(cfg, src, transport, ca, led, log, record, previous)
    info = updater.plan_info(image_hash)
    board.show(cfg, led, None)  # on while working
    try:
        res = updater.run(info)
    finally:
        if own_uart:
            transport.close()
    return _finish(cfg, src, res, info, log, led)


def _updater(cfg, src, transport, ca, led, log, record, previous):
    # The DownloadUpdater over ``transport``, from the board's settings.
    from smpdfu.client import SMPClient
    from smpdfu.fota_update import DownloadUpdater

    client = SMPClient(transport, timeout_ms=board.setting(cfg, "TIMEOUT_MS"))
    opts = {}
    if board.setting(cfg, "WINDOW"):
        opts["window"] = board.setting(cfg, "WINDOW")
    return DownloadUpdater(
        client, src.url, src.sha, src.size, src.version, ca, board.setting(cfg, "HTTP_TIMEOUT_MS"),
        board.setting(cfg, "HTTP_RETRIES"), log=log, progress=app._Progress(led, log), record=record,
        previous=previous, connect_ms=board.setting(cfg, "CONNECT_MS"), reset_wait_ms=board.setting(cfg, "RESET_WAIT_MS"),
        allow_downgrade=board.setting(cfg, "ALLOW_DOWNGRADE"), upload_options=opts)


def _finish(cfg, src, res, info, log, led):
    # The journal gets the outcome; a transient failure keeps the step for the next boot.
    path = board.setting(cfg, "STATUS_PATH")
    from smpdfu.update_report import as_dict, summary

    status = as_dict(res)
    status["source"] = src.key()
    status["url"] = src.url
    if info is not None and info.hash is not None:
        status["hash"] = info.hash_hex()
    if res.transient:
        prev = board.read_status(path)
        status["stage"] = prev.get("stage") if prev.get("source") == src.key() else None
        status["hash"] = prev.get("hash") if status["stage"] else status.get("hash")
    else:
        status["stage"] = STAGE_DONE
    app.write_status(path, status)
    log(("update %s: " % res.outcome) + res.message)
    if res.transient:
        log("the next boot tries again")
    log(summary(res))
    board.show(cfg, led, res)
    return res
