"""smpdfu.http and the manifest parser without a network: URLs, response heads, chunked bodies.

A scripted connection hands out the server's bytes in given pieces, so every
split of a status line, a header or a chunk-size line is exercised.
"""

from smpdfu import http
from smpdfu.fota_download import parse_manifest

from _portable import raises


class ScriptedConn:
    """A connection whose reads return ``data`` in pieces of ``step`` bytes (0 = end of stream)."""

    def __init__(self, data, step):
        self.data = data
        self.pos = 0
        self.step = step
        self.closed = False

    def readinto(self, mv):
        n = min(len(mv), self.step, len(self.data) - self.pos)
        mv[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n

    def close(self):
        self.closed = True


def _body(data, step, bufsize=64):
    r = http.Response(ScriptedConn(data, step), bytearray(bufsize), "http://x/")
    r._head()
    out = bytearray()
    while True:
        mv = r.read()
        if not mv:
            return r, bytes(out)
        out.extend(mv)


def test_split_url():
    assert http.split_url("http://example.com") == ("http", "example.com", 80, "/")
    assert http.split_url("https://h:8443/a/b?q=1") == ("https", "h", 8443, "/a/b?q=1")
    assert http.split_url("http://[::1]:81/x") == ("http", "::1", 81, "/x")
    assert "not an http" in str(raises(ValueError, http.split_url, "ftp://h/x"))
    assert "bad port" in str(raises(ValueError, http.split_url, "http://h:port/x"))
    assert "no host" in str(raises(ValueError, http.split_url, "http:///x"))


def test_join_url():
    base = "https://h:1/fw/x/manifest.json?a=1"
    assert http.join_url(base, "app.bin") == "https://h:1/fw/x/app.bin"
    assert http.join_url(base, "../app.bin") == "https://h:1/fw/app.bin"
    assert http.join_url(base, "../../../a.bin") == "https://h:1/a.bin"
    assert http.join_url(base, "/abs/b.bin") == "https://h:1/abs/b.bin"
    assert http.join_url(base, "//other/c") == "https://other/c"
    assert http.join_url(base, "http://z/d") == "http://z/d"
    assert http.join_url(base, "./e.bin?x=2") == "https://h:1/fw/x/e.bin?x=2"


HEAD_206 = (b"HTTP/1.1 206 Partial Content\r\nServer: t\r\ncontent-length: 5\r\n"
            b"Content-Range: bytes 10-14/15\r\nETag: \"abc-15\"\r\nLast-Modified: Mon\r\n\r\n")


def test_content_length_body_any_split():
    for step in (1, 2, 3, 7, 64):
        r, body = _body(HEAD_206 + b"hello" + b"EXTRA", step)
        assert (r.status, r.start, r.total, r.length, r.validator) == (206, 10, 15, 5, '"abc-15"')
        assert body == b"hello"  # nothing past Content-Length


def test_weak_etag_is_never_a_validator():
    r, _ = _body(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nETag: W/\"w\"\r\nLast-Modified: Tue\r\n\r\n", 5)
    assert r.validator == "Tue" and r.total == 0


CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n"
           b"5;ext=1\r\nhello\r\n1A\r\n" + b"abcdefghijklmnopqrstuvwxyz" + b"\r\n0\r\nX-Trailer: 1\r\n\r\n")


def test_chunked_body_any_split():
    for step in (1, 2, 5, 13, 64):
        r, body = _body(CHUNKED, step)
        assert r.chunked and r.length is None
        assert body == b"hello" + b"abcdefghijklmnopqrstuvwxyz"


def test_broken_responses_are_named():
    e = raises(http.BadResponse, _body, b"SMTP ready\r\n\r\n", 4)
    assert "not an HTTP/1.x status line" in str(e)
    e = raises(http.BadResponse, _body, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", 4)
    assert "closed the connection in the middle of the body" in str(e)
    e = raises(http.BadResponse, _body, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 4)
    assert "bad chunk size" in str(e)
    e = raises(http.BadResponse, _body, b"HTTP/1.1 200 OK\r\nX: " + b"y" * 100 + b"\r\n\r\n", 7)
    assert "longer than the 64-byte buffer" in str(e)
    e = raises(http.BadResponse, _body, b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", 7)
    assert "bad Content-Length" in str(e)


def test_manifest():
    sha = "ab" * 32
    m = parse_manifest('{"url": "../app.bin", "size": 1234, "sha256": "%s", "version": "1.2.3"}' % sha,
                       "https://h/fw/manifest.json")
    assert (m.url, m.size, m.version) == ("https://h/app.bin", 1234, "1.2.3")
    assert m.sha256 == b"\xab" * 32
    good = {"url": "a.bin", "size": 1, "sha256": sha, "version": "1"}
    import json

    for field, bad, text in (("url", None, "'url'"), ("size", 0, "'size'"), ("size", True, "'size'"),
                             ("sha256", "abc", "'sha256'"), ("sha256", "zz" * 32, "'sha256'"),
                             ("version", 3, "'version'")):
        d = dict(good)
        d[field] = bad
        e = raises(ValueError, parse_manifest, json.dumps(d), "http://h/m.json")
        assert text in str(e) and "http://h/m.json" in str(e), str(e)
    assert "not JSON" in str(raises(ValueError, parse_manifest, "{", "http://h/m.json"))
