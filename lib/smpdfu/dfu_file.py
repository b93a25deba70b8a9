"""dfu_target backend: a local file, its progress saved as it goes ("download now, update later").

Like nRF Connect SDK's dfu_target_stream with progress saving: the bytes go
to ``path + ".part"``; every ``save_every`` bytes (and at ``done``) the file is
flushed and then a small sidecar ``path + ".progress"`` records how far it is
good, written to a temporary name and renamed over the old one. Only a file
that verified is renamed to ``path``: the app, which updates the neighbour
from ``path`` at boot, never sees half an image. After a power cut,
``init`` with the same size and ``sha`` resumes at the saved offset: bytes
past it (unflushed, half-written or garbage) are overwritten by what is fed
next, and the prefix already on disk is read back once through the image
check, so ``done(True)`` verifies the whole file either way.
"""

import os

from .compat import const
from .dfu_target import DONE, ERROR, PROGRESS, Target, file_sha
from .errors import BadImage
from .mcuboot import ImageVerifier, hexstr

_SAVE_EVERY = const(16384)
_READ_BUF = const(512)


def _read_progress(path):
    # (size, image, sha hex, offset, state) from a sidecar, or None when absent or torn.
    try:
        with open(path) as f:
            parts = f.read().split()
        if len(parts) != 5:
            return None
        return int(parts[0]), int(parts[1]), parts[2], int(parts[3]), parts[4]
    except (OSError, ValueError):
        return None


def _write_progress(path, size, image, sha_hex, off, state):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d %d %s %d %s\n" % (size, image, sha_hex, off, state))
    _replace(tmp, path)


def _replace(src, dst):
    try:
        os.rename(src, dst)
    except OSError:
        # FAT (MicroPython's VfsFat) does not rename over an existing file.
        os.remove(dst)
        os.rename(src, dst)


class FileTarget(Target):
    """A file that receives an image, resumable after a power cut.

    ``save_every``: bytes between progress saves (a save flushes the file);
    ``buf``: a bytearray for reading back the prefix on resume (512 bytes
    allocated when None). After ``done(True)`` the sidecar says ``done``;
    after ``schedule_update`` it says ``test`` or ``permanent``: what the app
    reads to update the neighbour from this file later.
    """

    def __init__(self, path, callback=None, save_every=_SAVE_EVERY, buf=None):
        self.callback = callback
        self.path = path
        self.part_path = path + ".part"
        self.progress_path = path + ".progress"
        self.save_every = save_every
        self._buf = buf
        self._verifier = ImageVerifier()
        self._f = None
        self._size = 0
        self._off = 0
        self.saved = 0

    def init(self, size, image=0, sha=None):
        """Open ``path`` for an image of ``size`` bytes; resume when the sidecar names the same ``sha``."""
        self._close()
        if size <= 0:
            raise ValueError("nothing to write (size %d)" % size)
        self._sha = file_sha(sha)
        self._size = size
        self._image = image
        self._sha_hex = hexstr(self._sha) if self._sha is not None else "-"
        self.info = None
        self._verifier = ImageVerifier(size)
        off = 0
        p = _read_progress(self.progress_path)
        if self._sha is not None and p is not None and p[:3] == (size, image, self._sha_hex) and 0 < p[3] <= size:
            if p[4] == "writing":
                off = self._reread(self.part_path, p[3])
            elif p[3] == size and self._reread(self.path, size) == size:
                # Verified before: it is whole at ``path``; done(True) says so again.
                self._off = self.saved = size
                return
        if off:
            self._f = open(self.part_path, "r+b")
            self._f.seek(off)
            # Bytes past the saved offset are rewritten by what is fed next;
            # where files can be cut (not MicroPython's), cut them now.
            cut = getattr(self._f, "truncate", None)
            if cut is not None:
                cut(off)
        else:
            self._f = open(self.part_path, "wb")
            _write_progress(self.progress_path, size, image, self._sha_hex, 0, "writing")
        self._off = self.saved = off

    def _reread(self, path, off):
        # Feed the image check with the first ``off`` bytes of ``path``; returns how many there were.
        buf = self._buf
        if buf is None:
            buf = self._buf = bytearray(_READ_BUF)
        mv = memoryview(buf)
        got = 0
        try:
            f = open(path, "rb")
        except OSError:
            return 0
        with f:
            while got < off:
                want = off - got
                n = f.readinto(buf if want >= len(buf) else mv[:want])
                if not n:
                    break
                self._verifier.feed(buf if n == len(buf) else mv[:n])
                got += n
        if got < off:  # the file lost what the sidecar promised: start over
            self._verifier = ImageVerifier(self._size)
            return 0
        return got

    def offset(self):
        """Bytes of the image the file holds: feed from here."""
        return self._off

    def write(self, buf):
        """Append ``len(buf)`` bytes; saves progress every ``save_every`` bytes."""
        n = len(buf)
        if self._off + n > self._size:
            raise ValueError("write of %d bytes at offset %d overruns the %d announced" % (n, self._off, self._size))
        if self._f is None:
            raise ValueError("write before init")
        self._f.write(buf)
        self._verifier.feed(buf)
        self._off += n
        if self._off - self.saved >= self.save_every:
            self._save("writing")
        self._event(PROGRESS, self._off)

    def _save(self, state):
        # Data first, then the sidecar: it never promises bytes not on disk.
        self._f.flush()
        _write_progress(self.progress_path, self._size, self._image, self._sha_hex, self._off, state)
        self.saved = self._off

    def done(self, ok=True):
        """``ok``: verify the whole file -> ImageInfo (raises BadImage); False: stop here, resumable."""
        if not ok:
            if self._f is not None:
                self._save("writing")
            self._close()
            return None
        try:
            if self._off < self._size:
                raise BadImage("image incomplete: %d of the %d announced bytes were written" % (self._off, self._size))
            info = self._verifier.finish()
            if self._sha is not None and info.file_sha != self._sha:
                raise BadImage("the image's SHA-256 is %s, not the sha given (%s)"
                               % (hexstr(info.file_sha), self._sha_hex))
            if self._f is not None:  # written now (else it was whole at path already)
                self._f.flush()
                self._close()
                _replace(self.part_path, self.path)
                _write_progress(self.progress_path, self._size, self._image, self._sha_hex, self._size, "done")
                self.saved = self._size
        except Exception as e:
            self._close()
            if isinstance(e, BadImage):
                _write_progress(self.progress_path, self._size, self._image, self._sha_hex, 0, "bad")
            self._event(ERROR, e)
            raise
        self._close()
        self.info = info
        self._event(DONE, info)
        return info

    def schedule_update(self, permanent=False):
        """Record in the sidecar that the verified file should go to the neighbour (the app acts on it)."""
        if self.info is None:
            raise BadImage("no verified image to schedule: done(True) did not succeed")
        _write_progress(self.progress_path, self._size, self._image, self._sha_hex, self._size,
                        "permanent" if permanent else "test")

    def reset(self):
        """Nothing to reboot for a file."""

    def _close(self):
        if self._f is not None:
            self._f.close()
            self._f = None
