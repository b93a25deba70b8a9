"""Feed a dfu_target from an HTTP(S) URL, resuming over dropped connections (NCS's fota_download).

::

    from smpdfu import fota_download
    m = fota_download.fetch_manifest("https://example.com/fw/manifest.json", ca=ca_pem)
    info = fota_download.download(m.url, target, sha=m.sha256, size=m.size, progress=cb, ca=ca_pem)
    target.schedule_update()

:func:`download` calls ``target.init(size, image, sha)``, asks
``target.offset()`` and downloads from there with a ``Range`` request, feeds
``target.write`` and ends with ``target.done(True)``. After a dropped, reset
or stalled connection it reconnects (``retries`` times in a row without
progress, with a growing pause) and asks for ``Range: bytes=<fed>-`` with
``If-Range`` set to the file's ETag (or Last-Modified): a file changed on the
server meanwhile comes back whole and the target starts over from 0 instead
of mixing two images.

Resume across a power cut of the board comes from the target. A
``FileTarget`` keeps its saved progress: ``offset()`` says it at once. An
:class:`SMPTarget` given ``sha`` can only learn where the neighbour stands
from the answer to its first request, which must carry the image header: so
with ``sha`` the download first asks only for the head of the file
(``Range: bytes=0-<len(buf)-1>``), writes it, asks ``target.offset()`` again
and then requests the rest from there (``Range`` with ``If-Range`` set to the
head's ETag). After a power cut mid-download the next run fetches the head
and what the neighbour lacks, not the whole file; the part it did not fetch
is verified by the neighbour (its ``match`` of the slot against ``sha``:
see :mod:`smpdfu.dfu_smp`); a neighbour that gives no ``match`` cannot, and
the file is then downloaded again whole and checked here. Without ``sha`` (a
bare image URL, no manifest) the neighbour cannot tell whose bytes it holds,
so an SMP target starts from 0 after a power cut.

Events go to ``progress(event, value)`` (None: no events):
``"progress"`` (percent, 0-100), ``"finished"`` (the ImageInfo from
``done``), ``"error"`` (the exception, raised right after), ``"cancelled"``.
The callback returns False to cancel the download.

Errors (each named for what happened): :class:`DownloadFailed` (connection
failed, after the retries), :class:`smpdfu.http.HTTPStatus` (server refused
with status N), :class:`smpdfu.errors.BadImage` (invalid image),
:class:`Changed` (changed on the server), :class:`Cancelled`,
:class:`smpdfu.sock.TLSError` (certificate refused).
"""

from binascii import hexlify, unhexlify

from . import http, sock
from .compat import const, sha256, sleep_ms
from .errors import BadImage

_BUF_SIZE = const(2048)
_BACKOFF_MS = const(500)
_BACKOFF_MAX_MS = const(8000)
_MANIFEST_MAX = const(4096)


class DownloadFailed(Exception):
    """The connection failed ``retries`` times in a row; ``cause`` is the last error."""

    def __init__(self, message, cause=None):
        super().__init__(message)
        self.cause = cause


class Changed(Exception):
    """The file on the server is not the one being downloaded any more (size or content differs)."""


class Cancelled(Exception):
    """The progress callback returned False."""


class Manifest:
    """A parsed manifest: ``url`` (absolute), ``size``, ``sha256`` (32 bytes), ``version`` (str)."""

    def __init__(self, url, size, sha, version):
        self.url = url
        self.size = size
        self.sha256 = sha
        self.version = version

    def __repr__(self):
        return "Manifest(%r, size=%d, version=%r)" % (self.url, self.size, self.version)


def parse_manifest(text, base_url):
    """A :class:`Manifest` from JSON ``text`` (``url`` may be relative to ``base_url``); ValueError naming the field."""
    import json

    try:
        d = json.loads(text)
    except ValueError:
        raise ValueError("manifest %s is not JSON" % base_url)
    if not isinstance(d, dict):
        raise ValueError("manifest %s: not a JSON object" % base_url)
    url = d.get("url")
    if not isinstance(url, str) or not url:
        raise ValueError("manifest %s: 'url' is missing or not a string" % base_url)
    size = d.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise ValueError("manifest %s: 'size' must be a positive integer, not %r" % (base_url, size))
    sha = d.get("sha256")
    try:
        sha = unhexlify(sha)
        if len(sha) != 32:
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError("manifest %s: 'sha256' must be 64 hex digits, not %r" % (base_url, d.get("sha256")))
    version = d.get("version")
    if not isinstance(version, str) or not version:
        raise ValueError("manifest %s: 'version' is missing or not a string" % base_url)
    return Manifest(http.join_url(base_url, url), size, sha, version)


def fetch_manifest(url, ca=None, timeout_ms=10000, retries=5, buf=None):
    """Download and parse the manifest at ``url`` (at most 4 KB); see :func:`parse_manifest`."""
    buf = buf or bytearray(_BUF_SIZE)
    body = bytearray()
    fails = 0
    while True:
        r = None
        try:
            r = http.get(url, buf, 0, None, ca, timeout_ms)
            if r.status != 200:
                raise http.HTTPStatus(r.status, url, r.reason)
            while True:
                mv = r.read()
                if not mv:
                    break
                if len(body) + len(mv) > _MANIFEST_MAX:
                    raise ValueError("manifest %s is larger than %d bytes" % (url, _MANIFEST_MAX))
                body.extend(mv)
            return parse_manifest(bytes(body).decode(), r.url)
        except (sock.NetError, http.HTTPStatus) as e:
            fails = _failed(e, fails, retries, url, 0)
            body = bytearray()
        finally:
            if r is not None:
                r.close()


def _failed(e, fails, retries, url, backoff_ms):
    # Count one failure; re-raise what retrying cannot fix; pause before the next try.
    if isinstance(e, http.HTTPStatus) and e.status < 500:
        raise e
    fails += 1
    if fails > retries:
        raise DownloadFailed("connection failed: %s (%d tries): %s" % (url, fails, e), e)
    sleep_ms(min(backoff_ms << (fails - 1), _BACKOFF_MAX_MS))
    return fails


def _sha_bytes(sha):
    if sha is None or isinstance(sha, (bytes, bytearray)):
        return sha
    return unhexlify(sha)


def download(url, target, sha=None, size=None, progress=None, retries=5, timeout_ms=10000, ca=None,
             image=0, buf=None, backoff_ms=_BACKOFF_MS):
    """Download ``url`` into ``target`` (a dfu_target); return what ``target.done(True)`` returns.

    ``sha``: SHA-256 of the whole file (bytes or hex) -- enables resume into an
    SMP target and is checked; ``size``: the file's size (from a manifest),
    checked against the server's; ``ca``: see :mod:`smpdfu.sock`; ``buf``: the
    one receive buffer (default 2 KB). See the module docstring for events and
    errors.
    """
    buf = buf or bytearray(_BUF_SIZE)
    sha = _sha_bytes(sha)
    d = _Download(url, target, sha, size, progress, retries, timeout_ms, ca, image, buf, backoff_ms)
    try:
        return d.run()
    except Exception as e:
        if isinstance(e, Cancelled):
            d.emit("cancelled", None)
        else:
            d.emit("error", e)
        raise


class _Download:
    # The state of one download (a class, so that no step needs a dozen arguments).
    def __init__(self, url, target, sha, size, progress, retries, timeout_ms, ca, image, buf, backoff_ms):
        self.url = url
        self.target = target
        self.sha = sha
        self.size = size
        self.expected_size = size
        self.cb = progress
        self.retries = retries
        self.timeout_ms = timeout_ms
        self.ca = ca
        self.image = image
        self.buf = buf
        self.backoff_ms = backoff_ms
        self.validator = None
        self.off = 0
        self.stop = 0  # while the head is fetched: where it ends (then the target may say it holds more)
        self.skipped = 0  # bytes the target already held that were not downloaded
        self.hasher = None
        self.pct = -1
        self.fails = 0
        self.restarts = 0

    def emit(self, event, value):
        if self.cb is not None and self.cb(event, value) is False and event == "progress":
            raise Cancelled("download of %s cancelled" % self.url)

    def _get(self, offset, end=None):
        # A response from ``offset``, retrying connection failures; None when one was counted.
        try:
            return http.get(self.url, self.buf, offset, self.validator if offset else None, self.ca,
                            self.timeout_ms, end)
        except (sock.NetError, http.HTTPStatus) as e:
            self.fails = _failed(e, self.fails, self.retries, self.url, self.backoff_ms)
            return None

    def _start(self, size):
        # (Re)start the target for a file of ``size`` bytes; return its offset.
        self.size = size
        self.target.init(size, self.image, self.sha if not self.restarts else None)
        off = self.target.offset()
        if self.restarts and off:
            raise Changed("%s changed on the server and the target kept %d bytes of the old file" % (self.url, off))
        self.off = off
        self.hasher = sha256() if self.sha is not None and off == 0 else None
        return off

    def _changed(self, r):
        # True when response ``r`` is for another file than the one being fed.
        if r.total is not None and self.size is not None and r.total != self.size:
            return True
        return bool(self.validator and r.validator and r.validator != self.validator)

    def run(self):
        r = None
        if self.size is not None:
            self._start(self.size)
        if not self.off and (self.size is None or self.sha is not None):
            r = self._first()
        while True:
            self._fetch(r)
            try:
                return self._finish()
            except BadImage as e:
                from .dfu_smp_rare import Unvouched  # loaded already if e is one

                if not (self.skipped and isinstance(e, Unvouched)):
                    raise
            # The neighbour cannot vouch for the part skipped (no image check on its
            # side): download it all again, checked here this time.
            self.skipped = 0
            self._start(self.size)
            r = None

    def _fetch(self, r):
        # Feed the target up to the file's end, from response ``r`` (None: ask for one).
        try:
            while self.off < self.size:
                if r is None:
                    r = self._get(self.off)
                    if r is None:
                        continue
                r = self._feed(r)
                if self.stop and self.off >= self.stop:
                    self.stop = 0
                    self._skip_held()
        finally:
            if r is not None:
                r.close()

    def _first(self):
        # The first response. It tells the size when none was given; with ``sha`` it is
        # only the head of the file: once the target has it, it can say what it holds.
        end = len(self.buf) - 1 if self.sha is not None else None
        r = None
        while r is None:
            r = self._get(0, end)
        if self.size is None:
            if r.total is None:
                r.close()
                raise DownloadFailed("%s: the server does not tell the file's size (no Content-Length): "
                                     "give size= (a manifest has it)" % self.url)
            self.validator = r.validator
            if self._start(r.total):
                r.close()
                return None
        if end is not None and end + 1 < self.size:
            self.stop = end + 1
        return r

    def _skip_held(self):
        # The head is written: a target that already holds more of this file (the
        # neighbour, an upload of this sha interrupted by a power cut) says so now.
        off = self.target.offset()
        if off > self.off:
            self.skipped = off - self.off
            self.off = off
            self.hasher = None  # bytes not seen here: the target verifies the whole file (see dfu_smp)

    def _feed(self, r):
        # Feed the target from response ``r``; returns None when it is used up (or broke).
        if self.validator is None:
            self.validator = r.validator
        if self._changed(r):
            self._restart(r)
            if r.status != 200:
                r.close()
                return None
            self.validator = r.validator  # the new file, whole: feed it
        if r.status == 416:
            r.close()
            raise Changed("%s: the server has no bytes past %d (size %s)" % (self.url, self.off, r.total))
        skip = self.off - r.start  # a server that ignored Range sends all from 0
        if skip < 0:
            r.close()
            raise http.BadResponse("%s: the server sent bytes from %d, asked from %d" % (self.url, r.start, self.off))
        fed = 0
        try:
            while True:
                mv = r.read()
                if not mv:
                    break
                if skip:
                    k = min(skip, len(mv))
                    skip -= k
                    mv = mv[k:]
                    if not mv:
                        continue
                if self.off + len(mv) > self.size:
                    raise Changed("%s is longer than %d bytes" % (self.url, self.size))
                if self.stop and self.off + len(mv) >= self.stop:
                    mv = mv[:self.stop - self.off]  # the head only (a server may ignore Range)
                self.target.write(mv)
                if self.hasher is not None:
                    self.hasher.update(mv)
                self.off += len(mv)
                fed += len(mv)
                pct = self.off * 100 // self.size
                if pct != self.pct:
                    self.pct = pct
                    self.emit("progress", pct)
                if self.off == self.stop:
                    break
            if self.off < self.size and self.off != self.stop:
                raise http.BadResponse("%s: the body ended at byte %d of %d" % (self.url, self.off, self.size))
        except sock.NetError as e:
            if fed:
                self.fails = 0  # progress: count failures in a row only
            self.fails = _failed(e, self.fails, self.retries, self.url, self.backoff_ms)
        r.close()
        return None

    def _restart(self, r):
        # The file changed on the server: start over from 0, unless the manifest's size rules it out.
        if self.expected_size is not None and r.total is not None and r.total != self.expected_size:
            raise Changed("%s changed on the server: %d bytes, the manifest says %d"
                          % (self.url, r.total, self.expected_size))
        self.restarts += 1
        if self.restarts > self.retries:
            raise Changed("%s keeps changing on the server" % self.url)
        self.target.done(False)
        self.validator = None
        self.stop = 0
        self._start(r.total if r.total is not None else self.size)

    def _finish(self):
        digest = self.hasher.digest() if self.hasher is not None else self.sha  # digest() once: MicroPython
        if digest != self.sha:
            self.target.done(False)
            raise Changed("%s is not the expected file: SHA-256 %s, expected %s" % (
                self.url, hexlify(digest).decode()[:16], hexlify(self.sha).decode()[:16]))
        info = self.target.done(True)
        self.emit("finished", info)
        return info
