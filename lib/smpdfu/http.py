"""A small HTTP/1.1 GET client for downloads: one preallocated buffer, Range, chunked.

::

    r = http.get(url, buf, offset=0, if_range=None, ca=None, timeout_ms=10000, end=None)
    r.status, r.start, r.total, r.validator   # 200/206, first byte, file size, ETag or Last-Modified
    while True:
        mv = r.read()                          # a memoryview into ``buf``; empty at the end
        if not mv:
            break
    r.close()

Redirects (301, 302, 303, 307, 308; at most 5, relative ``Location`` too) are
followed. Any other status than 200/206 raises :class:`HTTPStatus`. Response
bodies are read into ``buf`` (header lines too), so a download needs no other
buffer; nothing holds the whole file.
"""

from . import sock
from .compat import const

_MAX_REDIRECTS = const(5)


class HTTPStatus(Exception):
    """The server answered with a status that is not a success (``status``: the number)."""

    def __init__(self, status, url, reason=""):
        super().__init__("the server refused %s with status %d %s" % (url, status, reason))
        self.status = status


class BadResponse(sock.NetError):
    """The server's answer is not valid HTTP/1.1 (or the body ended early)."""


def split_url(url):
    """``"https://h:8443/p?q"`` -> ``("https", "h", 8443, "/p?q")``; ValueError naming what is wrong."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise ValueError("not an http:// or https:// URL: %r" % url)
    hostport, slash, path = rest.partition("/")
    path = slash + path if slash else "/"
    host, port = hostport, (443 if scheme == "https" else 80)
    if hostport.startswith("["):  # [IPv6]:port
        host, _, p = hostport[1:].partition("]")
        p = p[1:]
    elif ":" in hostport:
        host, _, p = hostport.rpartition(":")
    else:
        p = ""
    if p:
        try:
            port = int(p)
        except ValueError:
            raise ValueError("bad port in URL %r" % url)
    if not host:
        raise ValueError("no host in URL %r" % url)
    return scheme, host, port, path


def join_url(base, ref):
    """``ref`` resolved against ``base`` (absolute, ``//host``, ``/path`` or relative)."""
    if "://" in ref:
        return ref
    scheme, _, rest = base.partition("://")
    if ref.startswith("//"):
        return scheme + ":" + ref
    origin, _, path = rest.partition("/")
    if ref.startswith("/"):
        return scheme + "://" + origin + ref
    path = "/" + path.split("?")[0].split("#")[0]
    ref, q, query = ref.partition("?")
    out = []
    for seg in (path[:path.rfind("/") + 1] + ref).split("/")[1:]:  # RFC 3986 5.2.4: drop . and ..
        if seg == "..":
            if out:
                out.pop()
        elif seg != ".":
            out.append(seg)
    if ref.endswith(("/..", "/.")) or ref in ("..", "."):
        out.append("")
    return scheme + "://" + origin + "/" + "/".join(out) + q + query


class Response:
    """An open response; see the module docstring. Attributes:

    ``status``, ``url`` (after redirects), ``start`` (offset of the first body
    byte in the file), ``total`` (the file's size, None when unknown),
    ``length`` (body bytes, None when chunked/unknown), ``validator`` (strong
    ETag or Last-Modified, None), ``chunked``.
    """

    def __init__(self, conn, buf, url):
        self._conn = conn
        self._buf = buf
        self._mv = memoryview(buf)
        self._lo = self._hi = 0  # buffered bytes: buf[lo:hi]
        self.url = url
        self.status = 0
        self.reason = ""
        self.start = 0
        self.total = None
        self.length = None
        self.validator = None
        self.location = None
        self.chunked = False
        self._left = 0  # body bytes left (Content-Length) or in the current chunk
        self._eof = False
        self._in_chunk = False

    # ------------------------------------------------------------ low level

    def _fill(self):
        # Read more bytes after buf[lo:hi] (moving them to the front first).
        if self._lo:
            n = self._hi - self._lo
            self._mv[:n] = self._mv[self._lo:self._hi]
            self._lo, self._hi = 0, n
        if self._hi == len(self._buf):
            raise BadResponse("a header line is longer than the %d-byte buffer" % len(self._buf))
        n = self._conn.readinto(self._mv[self._hi:])
        if not n:
            raise BadResponse("the server closed the connection in the middle of the response")
        self._hi += n

    def _line(self):
        # The next CRLF-terminated line as str (header lines are short).
        while True:
            i = self._buf.find(b"\n", self._lo, self._hi)
            if i >= 0:
                s = bytes(self._mv[self._lo:i]).decode().rstrip("\r")
                self._lo = i + 1
                return s
            self._fill()

    # ------------------------------------------------------------ head

    def _head(self):
        line = self._line()
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise BadResponse("not an HTTP/1.x status line: %r" % line[:60])
        self.status = int(parts[1])
        self.reason = parts[2] if len(parts) > 2 else ""
        etag = modified = None
        while True:
            line = self._line()
            if not line:
                break
            name, _, value = line.partition(":")
            name = name.strip().lower()
            value = value.strip()
            if name == "content-length":
                self.length = _int(value, "Content-Length")
            elif name == "transfer-encoding":
                self.chunked = "chunked" in value.lower()
            elif name == "content-range":
                self._content_range(value)
            elif name == "etag":
                etag = value
            elif name == "last-modified":
                modified = value
            elif name == "location":
                self.location = value
        # Never validate with a weak ETag (RFC 9110 13.1.5).
        self.validator = etag if etag and not etag.startswith("W/") else modified
        if self.chunked:
            self.length = None
        if self.status == 200:
            self.start = 0
            if self.total is None:
                self.total = self.length
        if not self.chunked:
            self._left = self.length if self.length is not None else -1
            self._eof = self._left == 0

    def _content_range(self, value):
        # "bytes START-END/TOTAL" (206) or "bytes */TOTAL" (416)
        unit, _, spec = value.partition(" ")
        rng, _, total = spec.partition("/")
        if unit != "bytes":
            raise BadResponse("Content-Range in unknown units: %r" % value)
        if total != "*":
            self.total = _int(total, "Content-Range")
        if rng != "*":
            self.start = _int(rng.partition("-")[0], "Content-Range")

    # ------------------------------------------------------------ body

    def read(self):
        """The next body bytes as a memoryview into the buffer (empty at the end)."""
        if self._eof:
            return self._mv[:0]
        if self.chunked and self._left == 0:
            self._next_chunk()
            if self._eof:
                return self._mv[:0]
        if self._lo == self._hi:
            self._lo = self._hi = 0
            want = len(self._buf) if self._left < 0 else min(self._left, len(self._buf))
            n = self._conn.readinto(self._mv[:want])
            if not n:
                if self._left < 0:  # no length: the body ends with the connection
                    self._eof = True
                    return self._mv[:0]
                raise BadResponse("the server closed the connection in the middle of the body")
            self._hi = n
        n = self._hi - self._lo
        if 0 <= self._left < n:
            n = self._left
        mv = self._mv[self._lo:self._lo + n]
        self._lo += n
        if self._left >= 0:
            self._left -= n
            if self._left == 0 and not self.chunked:
                self._eof = True
        return mv

    def _next_chunk(self):
        if self._in_chunk:
            if self._line():  # the CRLF after a chunk's data
                raise BadResponse("chunked body: no CRLF after a chunk")
        size = self._line().partition(";")[0].strip()
        try:
            self._left = int(size, 16)
        except ValueError:
            raise BadResponse("chunked body: bad chunk size %r" % size[:20])
        self._in_chunk = True
        if self._left == 0:
            while self._line():  # trailers
                pass
            self._eof = True

    def close(self):
        """Close the connection (every request uses its own: ``Connection: close``)."""
        self._conn.close()


def _int(s, what):
    try:
        return int(s)
    except ValueError:
        raise BadResponse("bad %s: %r" % (what, s[:40]))


def get(url, buf, offset=0, if_range=None, ca=None, timeout_ms=10000, end=None):
    """GET ``url`` from byte ``offset`` (``Range``; ``If-Range: if_range`` when given); an open :class:`Response`.

    ``end``: the last byte wanted (``Range: bytes=offset-end``); a server that
    ignores Range still sends the whole file (the caller stops reading).

    Raises :class:`HTTPStatus` for a refusal (4xx/5xx, too many redirects),
    :class:`sock.NetError` for a broken connection, :class:`sock.TLSError`,
    ValueError for a bad URL. A 416 (nothing past ``offset``) comes back as a
    Response with ``status`` 416 and ``total``.
    """
    for _ in range(_MAX_REDIRECTS + 1):
        scheme, host, port, path = split_url(url)
        conn = sock.connect(host, port, scheme == "https", ca, timeout_ms)
        r = Response(conn, buf, url)
        try:
            name = "[%s]" % host if ":" in host else host  # an IPv6 address goes in brackets
            hostport = name if port == (443 if scheme == "https" else 80) else "%s:%d" % (name, port)
            req = "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: smpdfu\r\nConnection: close\r\n" % (path, hostport)
            if end is not None:
                req += "Range: bytes=%d-%d\r\n" % (offset, end)
            elif offset:
                req += "Range: bytes=%d-\r\n" % offset
            if offset and if_range:
                req += "If-Range: %s\r\n" % if_range
            conn.write((req + "\r\n").encode())
            r._head()
        except BaseException:
            conn.close()
            raise
        if r.status in (301, 302, 303, 307, 308) and r.location:
            conn.close()
            url = join_url(url, r.location)
            continue
        if r.status in (200, 206, 416):
            return r
        conn.close()
        raise HTTPStatus(r.status, url, r.reason)
    raise HTTPStatus(r.status, url, "(more than %d redirects)" % _MAX_REDIRECTS)
