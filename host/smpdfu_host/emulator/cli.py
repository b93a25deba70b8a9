"""``smpdfu emulate``: run an emulated nRF on a pty until SIGINT/SIGTERM.

The first stdout line is ``pty: /dev/pts/N``; then one line per event
(upload progress every 10 %, swaps, resets, confirms). Lines on stdin are
control commands (``drop_rx 1``, ``corrupt_rx 1``, ``drop_tx 1``,
``corrupt_tx 1``, ``delay MS [N]``, ``reset_after_chunks N``, ``reset``,
``log_every MS [TEXT]``, ``stall_rx MS``, ``console TEXT``, ``version``,
``counters``), each answered by an ``ok ...`` line.

With ``--ble`` the device is a Bumble peripheral instead (:mod:`.ble`); the
first line is then ``ble: name=NAME hci=SPEC`` (SPEC: what ``smpdfu --hci``
takes to reach it), ``drop_rx``/``drop_tx`` drop writes/notifications, and
``disconnect`` drops the link.
"""

import argparse
import signal
import sys
import threading

from .device import Emulator, EmulatorConfig


def build_parser(prog="smpdfu emulate"):
    d = EmulatorConfig.defaults
    p = argparse.ArgumentParser(prog=prog, description="Emulated nRF52840: Zephyr MCUmgr SMP "
                                "server + MCUboot slots on a pty (see docs/emulator.md).")
    p.add_argument("--baud", type=int, default=d["baud"], help="UART baud, 8N1 (default 115200)")
    p.add_argument("--flash", help="flash file (persistent state); default: temporary")
    p.add_argument("--slot-size", type=lambda s: int(s, 0), default=d["slot_size"],
                   help="bytes per slot (default 0x76000)")
    p.add_argument("--buf-size", type=int, default=d["buf_size"], help="SMP net_buf size (384)")
    p.add_argument("--buf-count", type=int, default=d["buf_count"], help="SMP net_buf count (4)")
    p.add_argument("--line-bufs", type=int, default=d["line_bufs"], help="UART RX line buffers (2)")
    p.add_argument("--line-buf-size", type=int, default=d["line_buf_size"],
                   help="bytes per RX line buffer (128)")
    # Named after what it imitates: a current server answering as SMP v1 with the
    # legacy rc behaviour, not any one older Zephyr release (3.2.0 differs).
    p.add_argument("--v1-legacy-rc", dest="v1", action="store_true",
                   help="SMP v1 headers, rc-form errors, \"rc\": 0 in upload/erase answers "
                        "(CONFIG_MCUMGR_SMP_LEGACY_RC_BEHAVIOUR); not a model of an older release")
    p.add_argument("--rc-errors", action="store_true", help="rc-form errors to v2 requests too")
    p.add_argument("--flash-speed", type=float, default=d["flash_speed"],
                   help="scale of flash timings, 0 = instant (default 1)")
    p.add_argument("--progressive-erase", action="store_true",
                   help="erase pages as the upload reaches them")
    p.add_argument("--no-image-check", action="store_true", help="no 'match' in upload responses")
    p.add_argument("--no-rx-stall", action="store_true",
                   help="keep decoding received lines during flash operations")
    p.add_argument("--boot-ms", type=int, default=d["boot_ms"], help="boot time after reset (300)")
    p.add_argument("--reset-ms", type=int, default=d["reset_ms"],
                   help="delay between reset response and reset (250)")
    p.add_argument("--log-every", type=int, default=0, metavar="MS",
                   help="interleave a Zephyr log line every MS ms")
    p.add_argument("--no-banner", action="store_true", help="no boot banner on the UART")
    p.add_argument("--factory-version", default=d["factory_version"])
    p.add_argument("--factory-size", type=int, default=d["factory_size"])
    p.add_argument("--factory-image", help="imgtool image for slot 0 of a new flash file")
    p.add_argument("--reset-after-chunks", type=int, default=0, metavar="N",
                   help="fault: reset after the N-th upload chunk")
    p.add_argument("--reset-busy", action="store_true", help="refuse reset (EBUSY) unless force")
    p.add_argument("--quiet", action="store_true", help="print only the pty (or ble) line")
    b = p.add_argument_group("BLE (--ble: a Bumble peripheral instead of a pty; docs/emulator.md)")
    b.add_argument("--ble", action="store_true",
                   help="emulate smp_svr over BLE; first line: 'ble: name=NAME hci=SPEC'")
    b.add_argument("--name", default="nrf-smp", help="advertised name (nrf-smp)")
    b.add_argument("--hci", help="Bumble transport of a real controller for the peripheral "
                   "(default: a virtual link, reached by other processes through hci=SPEC)")
    b.add_argument("--phy", type=int, choices=(1, 2), default=2, help="LE PHY, 1 or 2 Mbit/s (2)")
    b.add_argument("--interval", type=float, default=7.5, metavar="MS", help="connection interval (7.5 ms)")
    b.add_argument("--data-length", type=int, default=251, help="LL data length, 27..251 (251)")
    b.add_argument("--pdus-per-event", type=int, default=0, help="PDUs per connection event (0: as fit)")
    b.add_argument("--mtu", type=int, default=498, help="ATT MTU the peripheral accepts (498)")
    b.add_argument("--no-reassembly", action="store_true",
                   help="no MCUMGR_TRANSPORT_BT_REASSEMBLY: one write per request")
    b.add_argument("--no-timing", action="store_true", help="no air-time pacing")
    b.add_argument("--encrypt", action="store_true",
                   help="MCUMGR_TRANSPORT_BT_PERM_RW_ENCRYPT: the central must pair (Just Works)")
    return p


def config_from_args(a):
    if a.ble:
        from .ble import BLEConfig

        extra = dict(name=a.name, phy=a.phy, interval_ms=a.interval, data_length=a.data_length,
                     pdus_per_event=a.pdus_per_event, mtu=a.mtu, reassembly=not a.no_reassembly,
                     timing=not a.no_timing, encrypt=a.encrypt)
        kw = _common_config(a)
        if a.buf_size == EmulatorConfig.defaults["buf_size"]:
            kw["buf_size"] = BLEConfig.defaults["buf_size"]  # smp_svr's BT overlay unless asked
        kw.update(extra)
        return BLEConfig(**kw)
    return EmulatorConfig(**_common_config(a))


def _common_config(a):
    return dict(
        baud=a.baud, flash=a.flash, slot_size=a.slot_size, buf_size=a.buf_size,
        buf_count=a.buf_count, line_bufs=a.line_bufs, line_buf_size=a.line_buf_size,
        v1_only=a.v1, rc_errors=a.rc_errors, flash_speed=a.flash_speed,
        progressive_erase=a.progressive_erase, image_check=not a.no_image_check,
        stall_rx_on_flash=not a.no_rx_stall, boot_ms=a.boot_ms, reset_ms=a.reset_ms,
        banner=not a.no_banner, log_every_ms=a.log_every, factory_version=a.factory_version,
        factory_size=a.factory_size, factory_image=a.factory_image,
        reset_after_chunks=a.reset_after_chunks, reset_busy=a.reset_busy)


def make_emulator(a, on_event=None):
    """The emulator the parsed options ``a`` describe (serial on a pty, or BLE)."""
    if a.ble:
        from .ble import BLEEmulator

        return BLEEmulator(config_from_args(a), on_event=on_event, hci=a.hci)
    return Emulator(config_from_args(a), on_event=on_event)


def first_line(a, emu):
    """``pty: /dev/pts/N``, or ``ble: name=NAME hci=SPEC``: how another process reaches ``emu``.

    SPEC is the relay of the virtual link; with ``--hci`` (a real
    controller) other processes use their own controller: ``hci=air``.
    """
    if a.ble:
        return "ble: name=%s hci=%s" % (emu.cfg.name, emu.hci or "air")
    return "pty: %s" % emu.path


def format_event(kind, info):
    if kind == "upload-progress":
        return "upload %3d%% (%d/%d)" % (info["percent"], info["off"], info["size"])
    if kind == "boot":
        return "boot: swap type %s, %s, running %s" % (info["swap_type"], info["action"], info["version"])
    return "%s %s" % (kind, " ".join("%s=%s" % kv for kv in sorted(info.items())))


def main(argv=None):
    """Entry point of ``smpdfu emulate``; returns the exit status."""
    a = build_parser().parse_args(argv)
    out_lock = threading.Lock()

    def say(text):
        with out_lock:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()

    def on_event(kind, info):
        if not a.quiet:
            say(format_event(kind, info))

    emu = make_emulator(a)
    stop = threading.Event()
    emu.start()
    say(first_line(a, emu))
    for kind, info in [(e[1], e[2]) for e in emu.events]:
        on_event(kind, info)
    emu.on_event = on_event

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    def commands():
        for line in sys.stdin:
            try:
                say(emu.command(line.strip()))
            except Exception as e:  # a bad command must not kill the device
                say("error %s" % e)

    if sys.stdin is not None and not sys.stdin.closed:
        threading.Thread(target=commands, daemon=True).start()
    try:
        while not stop.wait(0.2):
            pass
    finally:
        emu.stop()
        if not a.quiet:
            say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
