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
deployed as ``/board_config.py``); see docs/boards.md. Their defaults, the
hardware and the files are in ``smpdfu_board.py``, loaded before and after the
update but not while it runs: this module is what stays in RAM meanwhile.
"""

import json
import os
import sys


def write_status(path, status):
    """Write the status file atomically (a temporary file renamed over it).

    A read-only filesystem (CircuitPython without boot.py's remount) only
    prints a warning: the neighbour's own state still prevents a redo.
    """
    tmp = path + ".tmp"
    try:
        d = path.rpartition("/")[0]
        if d:
            try:
                os.mkdir(d)
            except OSError:
                pass  # there already (or the open below says what is wrong)
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


class _Progress:
    # Prints every 10 % and toggles the LED (a function taking on/off, or None) with every chunk.
    def __init__(self, led, log):
        self.led = led
        self.lit = False
        self.log = log
        self.next = 0

    def __call__(self, done, total):
        if self.led:
            self.lit = not self.lit
            self.led(self.lit)
        pct = done * 100 // total if total else 100
        if pct >= self.next:
            self.log("  upload %3d%%  %d/%d bytes" % (pct, done, total))
            self.next = pct - pct % 10 + 10


def _load_update_code(names="transport client mcuboot updater dfu_smp upload"):
    # The update's code, loaded before a buffer is allocated and with a
    # collection after each module: loading leaves garbage, and code loaded
    # among garbage and buffers leaves the heap in small holes, where the
    # buffers no longer fit. The board side loads what it needs to start,
    # and run() the upload engine in the room the board side leaves.
    import gc

    for name in names.split():
        gc.collect()
        __import__("smpdfu." + name)
    gc.collect()


def run(cfg, hw="machine", log=None, uart=None):
    """Run one update pass with board settings ``cfg``; return the UpdateResult, or None when there is no image.

    ``uart``: an already open UART (tests); by default one is opened from ``cfg``.
    """
    log = log or print
    import smpdfu_board as board

    path = board.setting(cfg, "IMAGE_PATH")
    status_path = board.setting(cfg, "STATUS_PATH")
    info = None

    def record(stage, hash_hex):
        # The journal: each step, before the neighbour is asked to do it.
        write_status(status_path, {"stage": stage, "hash": hash_hex, "image": path, "version": info.version_str})

    got = board.prepare(cfg, hw, log, uart, record)
    if type(got) is not tuple:
        return got  # no image, the over-the-air pass, or a run that could not start (recorded)
    updater, f, info, transport = got
    got = board = None
    from smpdfu.updater import unload

    unload("smpdfu_board")  # not needed while the update runs
    _load_update_code("dfu_smp upload")  # in its room, below what the update allocates next
    try:
        res = updater.run(f, info)
    finally:
        if uart is None:
            transport.close()
        f.close()
    led = updater.progress.led
    # The link's buffers, the upload's ring and their objects go before the board side comes back.
    updater = transport = f = None
    import smpdfu_board as board

    return board.finish(cfg, res, info, log, led)


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
