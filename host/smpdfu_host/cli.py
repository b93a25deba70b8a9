"""``smpdfu``: the command line (CPython only).

Follows the conventions of ``smpmgr`` and ``mcumgr``::

    smpdfu --port /dev/ttyACM0 [--baud 115200] [--timeout 3] [--json] [-v] COMMAND
    smpdfu --ble NAME|ADDRESS [--hci usb:0] COMMAND   # over Bluetooth LE (Bumble)
    smpdfu --port PORT image upload app.signed.bin
    smpdfu image info app.signed.bin          # offline: no --port needed
    smpdfu emulate --baud 115200 ...          # the emulated nRF (its own options)

Global options may also follow the command (``smpdfu image list --json``).
Every command prints a readable table, or one JSON document with ``--json``.
Errors print one line ``error: ...`` on stderr (and ``{"ok": false, ...}``
on stdout with ``--json``) and exit with status 1; a traceback only with -v.
Exit status 2 is a usage error, 130 an interrupt.
"""

import argparse
import json
import os
import sys
import time

from smpdfu import __version__, commands, mcuboot, mcuboot_scan
from smpdfu.ble import NotFound
from smpdfu.errors import BadImage, DeviceError, FrameError, ImageError, LinkError, ProtocolError, SMPError, SMPTimeout

from .progress import Progress

DEFAULT_BAUD = 115200
DEFAULT_TIMEOUT = 3.0
ENV_PORT = "SMPDFU_PORT"
ENV_HCI = "SMPDFU_HCI"
DEFAULT_HCI = "usb:0"
BLE_ANY = "any"  # --ble any: the first device advertising the SMP service
# The client's largest packet; the upload asks the server for its own (buf_size).
MAX_PACKET = 4096
# bytes of an upload request besides the data, at most (header, CBOR keys,
# offset, data head, plus the serial frame's length and CRC): --chunk N sets
# the assumed server buffer to N + this, so no chunk carries more than N.
_CHUNK_OVERHEAD = 26

MODE_NAMES = {0: "single application", 1: "swap using scratch", 2: "overwrite only",
              3: "swap without scratch", 4: "DirectXIP", 5: "DirectXIP with revert",
              6: "RAM load", 7: "firmware loader", 8: "RAM load with network core"}

# MCUboot's TLV types (bootutil/image.h, IMAGE_TLV_*), for printing: kept
# here, not in the board-side mcuboot module, where names would cost RAM.
TLV_NAMES = {0x01: "KEYHASH", 0x02: "PUBKEY", 0x10: "SHA256", 0x11: "SHA384", 0x12: "SHA512",
             0x20: "RSA2048_PSS", 0x21: "ECDSA224", 0x22: "ECDSA_SIG", 0x23: "RSA3072_PSS", 0x24: "ED25519",
             0x25: "SIG_PURE", 0x30: "ENC_RSA2048", 0x31: "ENC_KW", 0x32: "ENC_EC256", 0x33: "ENC_X25519",
             0x34: "ENC_X25519_SHA512", 0x40: "DEPENDENCY", 0x50: "SEC_CNT", 0x60: "BOOT_RECORD",
             0x70: "DECOMP_SIZE", 0x71: "DECOMP_SHA", 0x72: "DECOMP_SIGNATURE", 0x74: "UUID_VID", 0x75: "UUID_CID"}


class CLIError(Exception):
    """A failure to report as ``error: <message>`` (exit status ``code``)."""

    def __init__(self, message, code=1):
        Exception.__init__(self, message)
        self.code = code


# ---------------------------------------------------------------- arguments

def _add_globals(p, top):
    # On the top parser the defaults are set; on subcommands they are
    # SUPPRESSed so that a later option only overrides when given.
    d = (lambda v: v) if top else (lambda v: argparse.SUPPRESS)
    g = p.add_argument_group("connection and output")
    g.add_argument("-p", "--port", default=d(os.environ.get(ENV_PORT)),
                   help="serial device or pyserial URL (socket://, rfc2217://, loop://); "
                        "default $%s" % ENV_PORT)
    g.add_argument("--ble", metavar="NAME|ADDRESS", default=d(None),
                   help="use Bluetooth LE instead of a serial port: the device's name or address "
                        "('%s': the first one advertising the SMP service)" % BLE_ANY)
    g.add_argument("--hci", default=d(os.environ.get(ENV_HCI, DEFAULT_HCI)),
                   help="Bumble HCI transport of the BLE controller (usb:0, serial:/dev/ttyACM0, "
                        "hci-socket:0, tcp-client:HOST:PORT...); default $%s or %s" % (ENV_HCI, DEFAULT_HCI))
    g.add_argument("--ble-reassembly", choices=("auto", "on", "off"), default=d("auto"),
                   help="does the device reassemble requests split over several writes "
                        "(MCUMGR_TRANSPORT_BT_REASSEMBLY)? auto: yes when its buffer is > 384 bytes")
    g.add_argument("--scan-timeout", type=float, default=d(10.0), metavar="S",
                   help="seconds to look for the BLE device (default 10)")
    g.add_argument("--ble-pair", choices=("auto", "always", "never"), default=d("auto"),
                   help="pair (LE Secure Connections, Just Works): auto = when the device asks for encryption")
    g.add_argument("-b", "--baud", type=int, default=d(DEFAULT_BAUD),
                   help="baud rate (default %d)" % DEFAULT_BAUD)
    g.add_argument("-t", "--timeout", type=float, default=d(DEFAULT_TIMEOUT),
                   help="seconds to wait for each response (default %g)" % DEFAULT_TIMEOUT)
    g.add_argument("--line-gap", type=int, default=d(0), metavar="MS",
                   help="pause between the lines of a frame, for servers with few line buffers")
    g.add_argument("--json", action="store_true", default=d(False),
                   help="print one JSON document (for scripts)")
    g.add_argument("-v", "--verbose", action="store_true", default=d(False),
                   help="more detail; tracebacks on errors")


def _int0(s):
    return int(s, 0)


def build_parser():
    """The argparse parser of ``smpdfu``."""
    top = argparse.ArgumentParser(
        prog="smpdfu",
        description="Update the firmware of a Zephyr/MCUboot device over SMP (MCUmgr) on a serial line "
                    "or Bluetooth LE.")
    _add_globals(top, True)
    top.add_argument("--version", action="version", version="smpdfu %s" % __version__)
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def cmd(parent, name, help, **kw):
        p = parent.add_parser(name, help=help, description=help, **kw)
        _add_globals(p, False)
        return p

    p = cmd(sub, "echo", "send text, print the device's echo")
    p.add_argument("text")
    cmd(sub, "params", "the device's SMP buffer size and count")
    cmd(sub, "info", "OS/application info and bootloader info")
    p = cmd(sub, "reset", "reset the device")
    p.add_argument("--force", action="store_true", help="reset even if the device refuses (EBUSY)")
    p.add_argument("--wait", nargs="?", type=float, const=30.0, default=None, metavar="S",
                   help="wait until the device answers again (up to S seconds, default 30)")

    p = cmd(sub, "update", "upload FILE, test it, reset, wait for the device, confirm it")
    _add_upload_args(p)
    p.add_argument("--no-confirm", action="store_true",
                   help="stop after the test boot (the device reverts at its next reset)")
    p.add_argument("--permanent", action="store_true",
                   help="mark the image permanent instead of test (no confirm step needed)")
    p.add_argument("--boot-timeout", type=float, default=20.0, metavar="S",
                   help="seconds to wait for the device after the reset (default 20)")
    p.add_argument("--allow-downgrade", action="store_true",
                   help="send the image even when the device runs a newer version")

    img = cmd(sub, "image", "image management (state list, upload, test, confirm, erase...)")
    isub = img.add_subparsers(dest="image_command", metavar="IMAGE_COMMAND")
    isub.required = True
    cmd(isub, "list", "the image state list", aliases=["state"])
    p = cmd(isub, "upload", "upload an MCUboot image to the secondary slot")
    _add_upload_args(p)
    p = cmd(isub, "test", "boot the image with HASH once, on the next reset")
    p.add_argument("hash", help="image hash (hex), as `image list` or `image info` show it")
    p = cmd(isub, "confirm", "confirm the running image, or make the image with HASH permanent")
    p.add_argument("hash", nargs="?", help="image hash (hex); none confirms the running image")
    p = cmd(isub, "erase", "erase a slot (default: the device's choice, slot 1)")
    p.add_argument("slot", nargs="?", type=int)
    cmd(isub, "slots", "slot sizes (slot info)")
    p = cmd(isub, "info", "inspect and verify an image file (offline)")
    p.add_argument("file")

    p = cmd(sub, "emulate", "run the emulated nRF (its options follow; try `emulate --help`)",
            add_help=False)
    p.add_argument("emulator_args", nargs=argparse.REMAINDER)
    return top


def _add_upload_args(p):
    p.add_argument("file", help="MCUboot image (imgtool sign output), or the http(s):// URL of one "
                   "or of a manifest (.json: url, size, sha256, version), streamed to the device")
    p.add_argument("--ca", metavar="PEM",
                   help="CA certificate that signed the https server's (default: the system's trust store)")
    p.add_argument("-n", "--image", type=int, default=0, help="image number (default 0)")
    p.add_argument("-w", "--window", type=int, default=None,
                   help="requests in flight (default: up to 3, as the device's buffers allow)")
    p.add_argument("-c", "--chunk", type=int, default=None,
                   help="at most N data bytes per request (default: as large as the device's buffer allows)")
    p.add_argument("--buf-size", type=int, default=None,
                   help="the device's SMP buffer size, for devices that cannot report it")
    p.add_argument("--upgrade", action="store_true",
                   help="let the device refuse an image older than the running one")
    p.add_argument("--no-verify", action="store_true",
                   help="send the file even if it fails the local MCUboot check (image upload; "
                        "update never sends an image it cannot check)")
    p.add_argument("--progress", action="store_true",
                   help="draw the progress bar even when stderr is not a terminal")
    p.add_argument("--no-progress", action="store_true", help="no progress output")


# ---------------------------------------------------------------- output

def hexs(b):
    return b.hex() if b is not None else None


def slot_flags(s):
    """Words for the set flags of an ImageSlot: ``"active confirmed"``."""
    words = [w for w, f in (("active", s.active), ("confirmed", s.confirmed),
                            ("pending", s.pending), ("permanent", s.permanent)) if f]
    if not s.bootable:
        words.append("non-bootable")
    return " ".join(words)


def slot_dict(s):
    return {"image": s.image, "slot": s.slot, "version": s.version, "hash": hexs(s.hash),
            "bootable": s.bootable, "pending": s.pending, "confirmed": s.confirmed,
            "active": s.active, "permanent": s.permanent, "flags": slot_flags(s)}


def table(rows, headers):
    """Left-aligned text table (a list of lines)."""
    cols = [headers] + [[("" if c is None else str(c)) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cols) for i in range(len(headers))]
    out = []
    for r in cols:
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return out


def state_lines(slots):
    if not slots:
        return ["(no images)"]
    rows = [(s.image, s.slot, s.version, slot_flags(s), hexs(s.hash)) for s in slots]
    return table(rows, ["image", "slot", "version", "flags", "hash"])


def kv_lines(pairs):
    w = max(len(k) for k, _ in pairs)
    return ["%s  %s" % (k.ljust(w), v) for k, v in pairs]


class Out:
    """Where results go: text lines, or one JSON document."""

    def __init__(self, args, stdout=None, stderr=None):
        self.json = args.json
        self.verbose = args.verbose
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    def result(self, data, lines):
        if self.json:
            d = {"ok": True}
            d.update(data)
            self.stdout.write(json.dumps(d, indent=2) + "\n")
        else:
            for line in lines:
                self.stdout.write(line + "\n")
        self.stdout.flush()

    def note(self, text):
        """A progress note on stderr (never mixed into stdout's JSON)."""
        if self.verbose or not self.json:
            self.stderr.write(text + "\n")
            self.stderr.flush()

    def debug(self, text):
        if self.verbose:
            self.stderr.write(text + "\n")
            self.stderr.flush()


# ---------------------------------------------------------------- image files

def imgtool_version(v):
    """``1.2.3+4`` (imgtool's notation for major.minor.revision+build)."""
    return "%d.%d.%d+%d" % v


def tlv_name(t):
    return TLV_NAMES.get(t, "0x%02x" % t)


def inspect_image(path):
    """``(ImageInfo or None, header ImageInfo or None, error text or None, file size)``."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            try:
                return mcuboot.verify(f, bytearray(4096), size), None, None, size
            except BadImage as e:
                err = str(e)
            f.seek(0)
            head = f.read(mcuboot.IMAGE_HEADER_SIZE)
        try:
            hdr = mcuboot_scan.parse_header(head)
        except BadImage:
            hdr = None
        return None, hdr, err, size
    except OSError as e:
        raise CLIError("cannot read %s: %s" % (path, e.strerror or e))


def image_info_dict(path, info, hdr, err, size):
    h = info or hdr
    d = {"file": path, "file_size": size, "valid": info is not None}
    if err:
        d["error"] = err
    if h is not None:
        d.update({
            "version": imgtool_version(h.version), "version_state": h.version_str,
            "load_addr": h.load_addr, "header_size": h.header_size, "image_size": h.image_size,
            "protected_tlv_size": h.protected_tlv_size, "flags": h.flags,
            "bootable": mcuboot_scan.bootable(h), "encrypted": mcuboot_scan.encrypted(h)})
    if info is not None:
        d.update({
            "tlv_size": info.tlv_size, "total_size": info.total_size,
            "hash": info.hash_hex(), "file_sha256": mcuboot.hexstr(info.file_sha),
            "hash_verified": info.hash_verified, "signed": mcuboot_scan.signed(info), "padded": info.padded,
            "checked": "hash" if info.hash_verified else "layout only (encrypted: hash not checked)",
            "security_counter": info.security_counter,
            "tlvs": [{"type": t, "name": tlv_name(t), "len": n} for t, n in info.tlvs],
            "protected_tlvs": [{"type": t, "name": tlv_name(t), "len": n}
                               for t, n in info.protected_tlvs]})
    return d


def image_info_lines(d):
    pairs = [("file", "%s (%s bytes)" % (d["file"], "{:,}".format(d["file_size"])))]
    if "version" in d:
        pairs += [
            ("version", "%s (the device lists %s)" % (d["version"], d["version_state"])),
            ("header size", "%d" % d["header_size"]),
            ("image size", "%d" % d["image_size"]),
            ("load address", "0x%x" % d["load_addr"]),
            ("flags", "0x%x%s%s" % (d["flags"], "" if d["bootable"] else " non-bootable",
                                    " encrypted" if d["encrypted"] else ""))]
    if d["valid"]:
        pairs += [("protected TLVs", ", ".join("%s (%d)" % (t["name"], t["len"])
                                               for t in d["protected_tlvs"]) or "none"),
                  ("TLVs", ", ".join("%s (%d)" % (t["name"], t["len"]) for t in d["tlvs"])),
                  ("total size", "%d%s" % (d["total_size"], " + trailer padding" if d["padded"] else "")),
                  ("signed", ("yes (%s; not checked here)" % ", ".join(
                      t["name"] for t in d["tlvs"] if t["name"] in
                      ("RSA2048_PSS", "ECDSA224", "ECDSA_SIG", "RSA3072_PSS", "ED25519", "SIG_PURE")))
                   if d["signed"] else "no")]
        if d["security_counter"] is not None:
            pairs.append(("security counter", "%d" % d["security_counter"]))
        pairs += [("image hash", d["hash"]), ("file sha256", d["file_sha256"]),
                  ("verify", "OK (image hash matches)" if d["hash_verified"] else _NOT_CHECKED)]
    else:
        pairs.append(("verify", "FAILED: %s" % d["error"]))
    return kv_lines(pairs)


_NOT_CHECKED = ("NOT CHECKED: the image is encrypted and its hash covers the plaintext; only the "
                "header and TLV layout were checked here (the device checks the hash after decrypting)")


def load_image(path, out, no_verify=False):
    """Verify ``path`` before anything is sent; returns (ImageInfo or None, size)."""
    info, _hdr, err, size = inspect_image(path)
    if err:
        if not no_verify:
            raise CLIError("bad image %s: %s; nothing sent" % (path, err))
        out.note("warning: %s fails the local check (%s); sending it anyway (--no-verify)" % (path, err))
    elif not info.hash_verified:
        out.note("note: %s: hash %s" % (path, _NOT_CHECKED))
    return info, size


# ---------------------------------------------------------------- device

def connect(args):
    """Open the port (or the BLE link); returns an SMPClient (attribute ``transport`` to close)."""
    if args.ble:
        return connect_ble(args)
    if not args.port:
        raise CLIError("no port: give --port PORT (or set $%s)" % ENV_PORT, 2)
    from smpdfu.client import SMPClient
    from smpdfu.transport import SerialTransport
    from smpdfu.pyserial_uart import PySerialUART
    try:
        import serial
    except ImportError:  # pragma: no cover
        raise CLIError("pyserial is not installed (pip install pyserial)")
    try:
        uart = PySerialUART(args.port, baudrate=args.baud)
    except (serial.SerialException, OSError, ValueError) as e:
        raise CLIError("cannot open port %s: %s" % (args.port, _oserror_text(e)))
    transport = SerialTransport(uart, max_packet=MAX_PACKET, line_gap_ms=args.line_gap)
    transport.fit(MAX_PACKET)  # any request size until the upload sizes it to the server (RAM is no concern here)
    transport.reset()  # drop boot logs and anything stale
    return SMPClient(transport, timeout_ms=int(args.timeout * 1000))


def connect_ble(args):
    """Scan for ``args.ble`` on the ``args.hci`` controller and connect; returns an SMPClient."""
    from smpdfu.ble import BLETransport
    from smpdfu.client import SMPClient

    from .ble_bumble import BumbleAdapter

    target = None if args.ble == BLE_ANY else args.ble
    reassembly = {"auto": None, "on": True, "off": False}[args.ble_reassembly]
    adapter = BumbleAdapter(args.hci, pair={"auto": None, "always": True, "never": False}[args.ble_pair])
    try:
        transport = BLETransport(adapter, target, reassembly, max_packet=MAX_PACKET,
                                 connect_ms=int(args.scan_timeout * 1000))
    except BaseException:
        adapter.close()
        raise
    return SMPClient(transport, timeout_ms=int(args.timeout * 1000))


def _oserror_text(e):
    # pyserial puts its whole sentence in strerror ("could not open port
    # /dev/x: [Errno 2] No such file or directory: '/dev/x'"): use the errno.
    errno = getattr(e, "errno", None)
    if errno == 16 and e.strerror:  # EBUSY from PySerialUART: its own sentence
        return e.strerror
    if isinstance(errno, int) and errno > 0:
        return os.strerror(errno)
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e)


def cmd_echo(c, args, out):
    r = c.echo(args.text)
    out.result({"echo": r}, [r])


def cmd_params(c, args, out):
    p = c.params()
    out.result({"buf_size": p.buf_size, "buf_count": p.buf_count},
               kv_lines([("buf_size", str(p.buf_size)), ("buf_count", str(p.buf_count))]))


def cmd_info(c, args, out):
    d = {}
    pairs = []
    # Each query may be unsupported by a given server: report, don't fail.
    for key, fn in (("os_info", lambda: commands.os_info(c, "a")),
                    ("bootloader", lambda: commands.bootloader_info(c)),
                    ("mode", lambda: commands.bootloader_info(c, "mode"))):
        try:
            v = fn()
        except DeviceError as e:
            d[key] = None
            d[key + "_error"] = "%s: %s" % (type(e).__name__, e)
            pairs.append((key.replace("_", " "), "not supported (%s)" % e))
            continue
        if key == "os_info":
            d[key] = v
            pairs.append(("os info", v))
        elif key == "bootloader":
            d[key] = v.get("bootloader")
            pairs.append(("bootloader", str(d[key])))
        else:
            m = v.get("mode")
            d["mode"] = m
            d["mode_name"] = MODE_NAMES.get(m)
            pairs.append(("mode", "%s (%s)" % (m, MODE_NAMES.get(m, "unknown"))))
            if "no-downgrade" in v:
                d["no_downgrade"] = bool(v["no-downgrade"])
                pairs.append(("no downgrade", "yes" if v["no-downgrade"] else "no"))
    out.result(d, kv_lines(pairs))


def cmd_reset(c, args, out):
    c.reset(force=args.force)
    if args.wait is None:
        out.result({"reset": True}, ["reset requested: the device reboots now and does not answer "
                                     "until it is back (reset --wait waits for it)"])
        return
    t0 = time.monotonic()
    try:
        c.wait_until_ready(max(int(args.wait * 1000), 1))
    except SMPTimeout:
        raise CLIError("the device did not answer within %g s of the reset (MCUboot may still be "
                       "swapping images: try a longer --wait)" % args.wait)
    secs = time.monotonic() - t0
    out.result({"reset": True, "back_after": round(secs, 3)},
               ["reset: the device answers again after %.1f s" % secs])


def cmd_image_list(c, args, out):
    slots = c.image_state()
    out.result({"images": [slot_dict(s) for s in slots]}, state_lines(slots))


def cmd_image_test(c, args, out):
    slots = c.image_test(args.hash_bytes)
    out.result({"images": [slot_dict(s) for s in slots]}, state_lines(slots))


def cmd_image_confirm(c, args, out):
    slots = c.image_confirm(args.hash_bytes)
    out.result({"images": [slot_dict(s) for s in slots]}, state_lines(slots))


def cmd_image_erase(c, args, out):
    commands.image_erase(c, args.slot)
    slot = 1 if args.slot is None else args.slot
    out.result({"erased": slot}, ["slot %d erased" % slot])


def cmd_image_slots(c, args, out):
    images = c.slot_info()
    rows = []
    jimages = []
    for im in images:
        ji = {"image": im.get("image", 0), "slots": [],
              "max_image_size": im.get("max_image_size")}
        for s in im.get("slots", ()):
            ji["slots"].append({"slot": s.get("slot"), "size": s.get("size"),
                                "upload_image_id": s.get("upload_image_id")})
            rows.append((ji["image"], s.get("slot"), s.get("size"),
                         s.get("upload_image_id", ""), ji["max_image_size"] or ""))
        jimages.append(ji)
    out.result({"images": jimages},
               table(rows, ["image", "slot", "size", "upload id", "max image size"]) if rows
               else ["(no slots reported)"])


def _parse_hash(h):
    """An image hash argument: hex of a SHA-256 (or SHA-384/512) image hash, checked locally."""
    try:
        b = bytes.fromhex(h)
    except ValueError:
        raise CLIError("bad hash %r: expected hex digits" % h, 2)
    if not b:
        raise CLIError("empty hash", 2)
    if len(b) not in (32, 48, 64):
        raise CLIError("bad hash %r: an image hash is 64 hex digits (SHA-256), as `image list` "
                       "or `image info` show it; this is %d" % (h, len(h)), 2)
    return b


def upload_options(c, args, out):
    """Keyword options for the upload engine from the command line (buffers, window, upgrade)."""
    buf_size = args.buf_size
    buf_count = None
    if buf_size is None or args.chunk is not None:
        try:
            p = c.params()
            if buf_size is None:
                buf_size = p.buf_size
            buf_count = p.buf_count
            out.debug("device buffers: buf_size %d, buf_count %d" % (p.buf_size, p.buf_count))
        except DeviceError:
            pass  # an old server: the upload falls back to its defaults
    if args.chunk is not None:
        if args.chunk < 32:
            raise CLIError("--chunk must be at least 32 bytes", 2)
        want = args.chunk + _CHUNK_OVERHEAD
        buf_size = want if buf_size is None else min(buf_size, want)
    kw = {}
    if args.window is not None:
        if args.window < 1:
            raise CLIError("--window must be at least 1", 2)
        kw["window"] = args.window
    if buf_size is not None:
        kw["buf_size"] = buf_size
    if buf_count is not None:
        kw["buf_count"] = buf_count
    if args.upgrade:
        kw["upgrade"] = True
    return kw


def _progress(args, out, size):
    mode = "off" if args.no_progress or args.json else ("bar" if args.progress else "auto")
    return Progress(size, stream=out.stderr, mode=mode, label="upload")


def is_url(s):
    """True for an http:// or https:// URL (an image or a manifest to download)."""
    return s.startswith(("http://", "https://"))


def load_manifest(args, out):
    """The Manifest at ``args.file`` when it names one (``.json``), else None; sets ``args.ca_data``."""
    from smpdfu import fota_download

    args.ca_data = None
    if args.ca:
        try:
            with open(args.ca, "rb") as f:
                args.ca_data = f.read()
        except OSError as e:
            raise CLIError("cannot read the CA certificate %s: %s" % (args.ca, _oserror_text(e)))
    if args.chunk is not None:
        raise CLIError("--chunk is for files; a download streams with the device's buffer size", 2)
    if not args.file.split("?")[0].endswith(".json"):
        return None
    m = fota_download.fetch_manifest(args.file, ca=args.ca_data, timeout_ms=int(args.timeout * 1000) + 7000)
    out.note("manifest: version %s, %d bytes, %s" % (m.version, m.size, m.url))
    return m


def download_upload(c, args, out):
    """Stream the image at the URL ``args.file`` (or its manifest's) into the device; (ImageInfo, UploadResult)."""
    from smpdfu.fota_update import DownloadUpdater

    m = load_manifest(args, out)
    prog = _progress(args, out, m.size if m else 0)
    # the same download step as `update`, without the steps around it
    u = DownloadUpdater(c, m.url if m else args.file, m.sha256 if m else None, m.size if m else None,
                        m.version if m else None, args.ca_data, log=out.debug, progress=prog,
                        upload_options=upload_options(c, args, out))
    info = u.plan_info()
    try:
        res = u.stream(info, args.image)
    finally:
        prog.finish()
    return info, res


def do_upload(c, args, out):
    """Upload ``args.file`` through the engine (checked again while it streams); returns (ImageInfo or None, UploadResult)."""
    if is_url(args.file):
        return download_upload(c, args, out)
    info, size = args.image_info, args.image_size
    kw = upload_options(c, args, out)
    prog = _progress(args, out, size)
    sha = info.file_sha if info is not None else None

    def started(off, total):
        # Said when the device answers the first chunk, not only at the end.
        if off >= total:
            out.note("the device already holds all %d bytes (an earlier upload): nothing more sent" % total)
        elif off:
            out.note("resuming at byte %d of %d (the device kept an earlier, interrupted upload)" % (off, total))

    kw["started"] = started
    with open(args.file, "rb") as f:
        try:
            res = c.upload(f, size, image=args.image, sha=sha, progress=prog, verify=info is not None, **kw)
        except ImageError as e:
            if e.name == "INVALID_IMAGE_TOO_LARGE":
                from smpdfu.update_report import slot_text

                raise CLIError("image too large: %s is %d bytes; %s" % (args.file, size, slot_text(c, args.image)))
            raise
        finally:
            prog.finish()
    return info, res



def upload_dict(path, info, res):
    secs = res.elapsed_ms / 1000.0
    d = {"file": path, "size": res.size, "sha": hexs(res.sha), "match": res.match,
         "seconds": round(secs, 3), "rate": round((res.size - res.resumed_from) / secs) if secs > 0 else None,
         "chunks": res.chunks, "chunk_size": res.chunk_size, "window": res.window,
         "retries": res.retries, "resumed_from": res.resumed_from}
    if info is not None:
        d["hash"] = info.hash_hex()
        d["version"] = info.version_str
    return d


def upload_lines(d):
    rate = d["rate"]
    lines = ["uploaded %s: %s bytes in %.2f s (%s)" % (
        d["file"], "{:,}".format(d["size"]), d["seconds"],
        ("%.1f kB/s" % (rate / 1000.0)) if rate else "-")]
    if d["resumed_from"]:
        lines.append("resumed from offset %d" % d["resumed_from"])
    if d.get("hash"):
        lines.append("version %s, image hash %s" % (d["version"], d["hash"]))
    lines.append("device hash check: %s" % {True: "match", False: "MISMATCH", None: "not reported"}[d["match"]])
    return lines


def cmd_image_upload(c, args, out):
    info = getattr(args, "image_info", None)  # None for a URL: checked while it streams
    if info is not None:
        for s in c.image_state():
            if s.image == args.image and s.hash == info.hash:
                out.result({"file": args.file, "hash": info.hash_hex(), "slot": s.slot, "sent": 0},
                           ["%s is already on the device (image %d slot %d): nothing sent"
                            % (args.file, s.image, s.slot)])
                return
    info, res = do_upload(c, args, out)
    d = upload_dict(args.file, info, res)
    out.result(d, upload_lines(d))


def cmd_update(c, args, out):
    """The whole update through :class:`smpdfu.updater.Updater`: up-to-date check, upload, test, reset, confirm."""
    from smpdfu.updater import Updater

    if is_url(args.file):
        return update_from_url(c, args, out)
    info = args.image_info
    if args.image != 0:
        raise CLIError("update handles image 0 only; use image upload -n %d, image test, reset" % args.image, 2)
    prog = _progress(args, out, args.image_size)
    u = Updater(c, log=out.note, progress=prog, connect_ms=int(args.timeout * 1000),
                reset_wait_ms=int(args.boot_timeout * 1000), upload_options=upload_options(c, args, out),
                permanent=args.permanent, confirm=not args.no_confirm, allow_downgrade=args.allow_downgrade)
    with open(args.file, "rb") as f:
        try:
            res = u.run(f, info)
        finally:
            prog.finish()
    update_result(c, args, out, u, res, info)


def update_from_url(c, args, out):
    """``update URL``: the same steps, the upload streamed from the download (smpdfu.fota_update)."""
    from smpdfu.fota_update import DownloadUpdater

    if args.image != 0:
        raise CLIError("update handles image 0 only; use image upload -n %d, image test, reset" % args.image, 2)
    m = load_manifest(args, out)
    prog = _progress(args, out, m.size if m else 0)
    u = DownloadUpdater(c, m.url if m else args.file, m.sha256 if m else None, m.size if m else None,
                        m.version if m else None, args.ca_data, log=out.note, progress=prog,
                        connect_ms=int(args.timeout * 1000), reset_wait_ms=int(args.boot_timeout * 1000),
                        upload_options=upload_options(c, args, out), permanent=args.permanent,
                        confirm=not args.no_confirm)
    info = u.plan_info()
    try:
        res = u.run(info)
    finally:
        prog.finish()
    update_result(c, args, out, u, res, info)


def update_result(c, args, out, u, res, info):
    """Print what an Updater run did (a failure is one error line)."""
    if not res.ok:
        hint = "; nothing sent: --allow-downgrade sends it anyway" if "not downgrading" in res.message else ""
        raise CLIError("update %s: %s%s" % (res.outcome, res.message, hint))
    from smpdfu.update_report import as_dict

    steps = as_dict(res)
    if u.upload_result is not None:
        steps["upload"] = upload_dict(args.file, info, u.upload_result)
    slots = c.image_state()
    steps["images"] = [slot_dict(s) for s in slots]
    out.result(steps, state_lines(slots))


def cmd_image_info(args, out):
    info, hdr, err, size = inspect_image(args.file)
    d = image_info_dict(args.file, info, hdr, err, size)
    if err:
        if out.json:
            out.stdout.write(json.dumps(dict({"ok": False}, **d), indent=2) + "\n")
        else:
            for line in image_info_lines(d):
                out.stdout.write(line + "\n")
        out.stdout.flush()
        raise CLIError("bad image %s: %s" % (args.file, err), code=1)
    out.result(d, image_info_lines(d))


DEVICE_COMMANDS = {
    "echo": cmd_echo, "params": cmd_params, "info": cmd_info, "reset": cmd_reset,
    "update": cmd_update,
    ("image", "list"): cmd_image_list, ("image", "state"): cmd_image_list,
    ("image", "upload"): cmd_image_upload, ("image", "test"): cmd_image_test,
    ("image", "confirm"): cmd_image_confirm, ("image", "erase"): cmd_image_erase,
    ("image", "slots"): cmd_image_slots,
}


def _command_words(args):
    if args.command == "image":
        return "image " + args.image_command
    return args.command


def error_message(e, args, words):
    """The one-line message for an exception."""
    if isinstance(e, CLIError):
        return str(e)
    if isinstance(e, SMPTimeout):
        return "device did not answer within %g s (%s)%s" % (
            args.timeout, words, "" if not args.verbose else ": %s" % e)
    if isinstance(e, DeviceError):
        return "%s: %s" % (type(e).__name__, e)
    if isinstance(e, NotFound):
        return "not found: %s" % e
    if isinstance(e, LinkError):
        return "BLE link (%s): %s" % (words, e)
    if isinstance(e, BadImage):
        return "bad image %s: %s" % (getattr(args, "file", "?"), e)
    if type(e).__name__ in ("DownloadFailed", "HTTPStatus", "Changed", "TLSError", "BadResponse", "NetError",
                            "Stalled"):  # smpdfu.fota_download's, http's and sock's
        return "download failed: %s" % e
    if isinstance(e, (FrameError, ProtocolError)):
        return "%s (%s): %s" % (type(e).__name__, words, e)
    if isinstance(e, SMPError):
        return "%s: %s" % (type(e).__name__, e)
    if isinstance(e, OSError):
        if e.filename:
            return "%s: %s" % (e.filename, e.strerror)
        return "I/O error (%s): %s" % (words, _oserror_text(e))
    return "%s: %s" % (type(e).__name__, e)


_VALUE_OPTIONS = ("-p", "--port", "-b", "--baud", "-t", "--timeout", "--line-gap", "--ble", "--hci",
                  "--ble-reassembly", "--ble-pair", "--scan-timeout")


def _command_index(argv):
    # Index of the command word (the first argument that is not a global option).
    skip = False
    for i, a in enumerate(argv):
        if skip:
            skip = False
        elif a in _VALUE_OPTIONS:
            skip = True
        elif not a.startswith("-"):
            return i
    return None


def run(argv=None, stdout=None, stderr=None):
    """Run the CLI; returns the exit status (0 ok, 1 error, 2 usage, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    # `emulate` hands everything after it to the emulator untouched.
    i = _command_index(argv)
    if i is not None and argv[i] == "emulate":
        from .emulator import main as emulator_main
        r = emulator_main(argv[i + 1:])
        return r if isinstance(r, int) else 0
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    out = Out(args, stdout, stderr)
    words = _command_words(args)
    client = None
    try:
        if args.command == "image" and args.image_command == "info":
            cmd_image_info(args, out)
            return 0
        fn = DEVICE_COMMANDS[args.command if args.command != "image" else ("image", args.image_command)]
        if getattr(args, "file", None) is not None and not is_url(args.file):
            # Check the image before the port is even opened: nothing is sent
            # for a bad file.
            # update tests and confirms the image by its hash: never without the check
            args.image_info, args.image_size = load_image(args.file, out, args.no_verify and args.command != "update")
        # Arguments are checked before the port is opened: nothing is sent for a bad one.
        args.hash_bytes = _parse_hash(args.hash) if getattr(args, "hash", None) else None
        client = connect(args)
        fn(client, args, out)
        return 0
    except KeyboardInterrupt:
        stderr.write("error: interrupted\n")
        return 130
    except Exception as e:  # noqa: BLE001 - every failure becomes one line
        if args.verbose:
            import traceback
            traceback.print_exc(file=stderr)
        msg = error_message(e, args, words)
        stderr.write("error: %s\n" % msg)
        stderr.flush()
        if args.json and not (isinstance(e, CLIError) and words == "image info"):
            stdout.write(json.dumps({"ok": False, "error": msg, "type": type(e).__name__,
                                     "command": words}) + "\n")
            stdout.flush()
        return e.code if isinstance(e, CLIError) else 1
    finally:
        if client is not None:
            try:
                client.transport.close()
            except Exception:  # noqa: BLE001
                pass


def main(argv=None):
    """Entry point of the ``smpdfu`` script: runs and exits with the status."""
    sys.exit(run(argv))


if __name__ == "__main__":
    main()
