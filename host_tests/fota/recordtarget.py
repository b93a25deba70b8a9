"""A test double for the dfu_target contract: writes the image to a file (never in lib/).

Used by the fota_download tests on CPython and on MicroPython until/unless a
real target is wanted: ``init`` resumes (keeps the file) only for the same
``sha`` and ``size``, like an SMP target does; ``done(True)`` verifies the
file with :func:`smpdfu.mcuboot.verify`; ``writes`` counts bytes written, so
a test can tell that no byte was fed twice.
"""

from binascii import hexlify

from smpdfu.mcuboot import verify


class RecordTarget:
    def __init__(self, path, callback=None):
        self.path = path
        self.callback = callback
        self.size = None
        self.written = 0  # bytes written through write() in this process
        self.inits = []
        self.done_calls = []
        self._f = None

    def _meta(self):
        try:
            with open(self.path + ".meta") as f:
                return f.read()
        except OSError:
            return None

    def init(self, size, image=0, sha=None):
        self.inits.append((size, image, sha))
        self.size = size
        key = "%d %s" % (size, hexlify(sha).decode() if sha else "-")
        if self._f:
            self._f.close()
        if sha is None or self._meta() != key:
            open(self.path, "wb").close()
        with open(self.path + ".meta", "w") as f:
            f.write(key)
        self._f = open(self.path, "ab")

    def offset(self):
        self._f.flush()
        with open(self.path, "rb") as f:
            return f.seek(0, 2)

    def write(self, buf):
        self._f.write(buf)
        self.written += len(buf)
        if self.callback:
            self.callback("progress", self.written)

    def done(self, ok):
        self.done_calls.append(ok)
        self._f.close()
        self._f = None
        if not ok:
            return None
        with open(self.path, "rb") as f:
            info = verify(f)
        if self.callback:
            self.callback("done", info)
        return info

    def schedule_update(self, permanent=False):
        pass

    def reset(self):
        pass
