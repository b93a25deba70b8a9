"""Make real MCUboot images with PyPI ``imgtool`` (host only).

imgtool runs in-process through its click command (no subprocess: it is
quicker, and tests make many images). The payload is deterministic: the same
``size`` and ``seed`` give the same bytes, so the same arguments give a
byte-identical image (without a signing key; ECDSA signatures are random).

    from smpdfu_host.imgtool_image import make_image, image_bytes
    make_image("app.bin", version="1.1.0", size=40960)   # -> "app.bin"
    data = image_bytes("1.0.0", 48 * 1024, seed=1)       # -> bytes

The emulator's factory image and ``make demo`` use this; ``host_tests/imagegen.py``
builds its richer API (keys, trailers, protected TLVs) on top of it.
"""

import os
import random
import shutil
import tempfile

SLOT_SIZE = 0x76000  # nrf52840dk slot0/slot1 partitions
HEADER_SIZE = 0x200


class ImgtoolError(RuntimeError):
    """imgtool exited non-zero; ``code`` is its exit code, ``output`` what it printed."""

    def __init__(self, args, code, output):
        self.args_ = args
        self.code = code
        self.output = output
        RuntimeError.__init__(self, "imgtool %s -> exit %s:\n%s" % (" ".join(args), code, output))


def run_imgtool(*args, check=True):
    """Run ``imgtool ARGS`` in-process; return ``(exit_code, output_text)``.

    With ``check`` (the default) a non-zero exit raises :class:`ImgtoolError`."""
    from click.testing import CliRunner
    from imgtool.main import imgtool

    args = [str(a) for a in args]
    res = CliRunner().invoke(imgtool, args, catch_exceptions=True)
    code = res.exit_code
    out = res.output
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        out += "\n%s: %s" % (type(res.exception).__name__, res.exception)
        code = code or 1
    if check and code != 0:
        raise ImgtoolError(args, code, out)
    return code, out


def payload(size, seed=0):
    """``size`` pseudo-random bytes, the same for the same ``seed``."""
    return random.Random(seed).randbytes(size)


def make_image(path, version="1.1.0", size=40 * 1024, seed=1, slot_size=SLOT_SIZE,
               header_size=HEADER_SIZE, pad_header=True, body=None, extra_args=()):
    """Write an ``imgtool sign`` image to ``path``; return the path (str).

    The firmware body is ``body`` if given, else ``size`` bytes of
    :func:`payload` from ``seed``. ``version``: imgtool syntax
    ``maj.min.rev+build``. ``pad_header``: imgtool prepends ``header_size``
    bytes for the header (else the body must start with them). Without a key
    in ``extra_args`` the image is unsigned (SHA-256 TLV only); ``extra_args``
    go to ``imgtool sign`` as they are (e.g. ``["--align", "4"]``).
    """
    path = str(path)
    src = path + ".raw"
    with open(src, "wb") as f:
        f.write(payload(size, seed) if body is None else body)
    args = ["sign", "-v", version, "-H", header_size, "-S", slot_size]
    if pad_header:
        args.append("--pad-header")
    args += list(extra_args) + [src, path]
    try:
        run_imgtool(*args)
    finally:
        os.remove(src)
    return path


def image_bytes(version="1.0.0", size=48 * 1024, seed=1, slot_size=SLOT_SIZE, extra_args=()):
    """The bytes of a :func:`make_image` image (made in a temporary directory)."""
    d = tempfile.mkdtemp(prefix="smpdfu-img-")
    try:
        path = make_image(os.path.join(d, "app.bin"), version, size, seed, slot_size,
                          extra_args=extra_args)
        with open(path, "rb") as f:
            return f.read()
    finally:
        shutil.rmtree(d, ignore_errors=True)
