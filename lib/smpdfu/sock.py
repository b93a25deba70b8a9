"""Socket adapters: the one place where the TCP/TLS APIs of the platforms differ.

:func:`connect` returns a connection with the same three methods on every
platform, which is all the HTTP client uses:

- ``write(buf)``: send all of ``buf``;
- ``readinto(mv)``: receive into ``mv``, return how many bytes came (at
  least 1), 0 at the end of the stream; wait at most ``timeout_ms`` for the
  first byte, then raise :class:`Stalled`;
- ``close()``.

MicroPython: ``socket`` + ``tls``/``ssl`` (streams with ``readinto``, no
``recv_into``), a non-blocking socket waited on with ``select.poll`` (the
wrapped TLS socket reports its own buffered bytes to poll). CPython and
CircuitPython (``socketpool``): ``settimeout`` + ``recv_into``.

TLS (``ca``): PEM or DER bytes of the CA certificate that signed the server's
certificate -> the certificate and the host name are checked; None -> the
platform's own trust store where it has one (CPython, CircuitPython), and a
refusal on MicroPython, which has none; False -> no check at all (the
connection is encrypted but anyone may be at the other end).
"""

import errno

from .compat import IS_CIRCUITPYTHON, IS_MICROPYTHON


class NetError(OSError):
    """The connection failed: name resolution, connect, reset, end of stream. Retrying may help."""


class Stalled(NetError):
    """Nothing arrived for ``timeout_ms``."""


class TLSError(Exception):
    """The TLS handshake failed or the server's certificate was refused. Retrying does not help."""


_pool = None


def _socket_module():
    # CircuitPython: a SocketPool on the Wi-Fi radio; elsewhere the socket module.
    global _pool
    if IS_CIRCUITPYTHON:
        if _pool is None:
            import socketpool
            import wifi

            _pool = socketpool.SocketPool(wifi.radio)
        return _pool
    import socket

    return socket


def _der(ca):
    # MicroPython's mbedTLS builds may lack PEM parsing: hand it DER (the first certificate).
    if isinstance(ca, str):
        ca = ca.encode()
    if not ca.startswith(b"-----BEGIN"):
        return ca
    from binascii import a2b_base64

    body = ca.split(b"-----")[2]  # between "-----BEGIN CERTIFICATE-----" and "-----END"
    return a2b_base64(body.replace(b"\r", b"").replace(b"\n", b""))


def _tls_wrap(sock, host, ca):
    # Wrap ``sock``; the certificate check as described in the module docstring.
    if IS_MICROPYTHON:
        try:
            import tls

            ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
            if ca is False:
                ctx.verify_mode = tls.CERT_NONE
            elif ca is None:
                raise TLSError("https://%s: no CA certificate given and MicroPython has no trust store: pass "
                               "ca=<PEM or DER bytes of the server's CA> (or ca=False to skip the check)" % host)
            else:
                ctx.verify_mode = tls.CERT_REQUIRED
                ctx.load_verify_locations(_der(ca))  # positional only
            return ctx.wrap_socket(sock, server_hostname=host)
        except ImportError:  # MicroPython < 1.23: the ssl module only
            import ssl

            if ca is None:
                raise TLSError("https://%s: no CA certificate given (ca=...)" % host)
            if ca is False:
                return ssl.wrap_socket(sock, server_hostname=host)
            return ssl.wrap_socket(sock, server_hostname=host, cert_reqs=ssl.CERT_REQUIRED, cadata=_der(ca))
    import ssl

    if ca is False:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif ca is None:
        ctx = ssl.create_default_context()
    else:
        ctx = ssl.create_default_context()
        if IS_CIRCUITPYTHON:
            ctx.load_verify_locations(cadata=ca if isinstance(ca, str) else ca.decode())
        else:
            ctx.load_verify_locations(cadata=ca if isinstance(ca, str) or ca[:1] != b"-" else ca.decode())
    return ctx.wrap_socket(sock, server_hostname=host)


def _is_tls_error(e):
    # A refused certificate or a failed handshake, told apart from a broken link.
    name = type(e).__name__
    if name in ("SSLError", "SSLCertVerificationError", "TLSError", "ValueError"):
        return True
    s = str(e)
    return "MBEDTLS" in s or "certificate" in s or "CERT" in s


def connect(host, port, tls=False, ca=None, timeout_ms=10000):
    """A connection to ``host:port`` (TLS when ``tls``); raises :class:`NetError` or :class:`TLSError`."""
    sm = _socket_module()
    try:
        ai = sm.getaddrinfo(host, port, 0, sm.SOCK_STREAM)[0]
    except OSError as e:
        raise NetError("cannot resolve %s: %s" % (host, e))
    sock = sm.socket(ai[0], sm.SOCK_STREAM)
    try:
        st = getattr(sock, "settimeout", None)  # missing on some MicroPython ports: then reads are polled only
        if st is not None:
            st(timeout_ms / 1000)
        try:
            sock.connect(ai[-1])
        except OSError as e:
            raise NetError("cannot connect to %s:%d: %s" % (host, port, _reason(e)))
        if tls:
            try:
                sock = _tls_wrap(sock, host, ca)
            except TLSError:
                raise
            except Exception as e:  # noqa: BLE001 - each port raises its own types
                if _is_tls_error(e):
                    raise TLSError("TLS with %s failed: %s%s" % (host, " ".join(str(e).split()) or repr(e),
                                   "" if ca is None else " (is ca the CA that signed the server's certificate?)"))
                raise NetError("TLS with %s: connection lost: %s" % (host, _reason(e)))
        return _Conn(sock, timeout_ms)
    except BaseException:
        sock.close()
        raise


def _reason(e):
    code = e.args[0] if e.args and isinstance(e.args[0], int) else None
    name = errno.errorcode.get(abs(code)) if code is not None else None
    return name or str(e)


class _Conn:
    # One connection; see the module docstring.
    def __init__(self, sock, timeout_ms):
        self.sock = sock
        self.timeout_ms = timeout_ms
        self._poll = None
        if IS_MICROPYTHON:
            import select

            self._poll = select.poll()
            self._poll.register(sock, select.POLLIN)

    def write(self, buf):
        try:
            if IS_MICROPYTHON:
                self.sock.write(buf)  # a blocking stream write sends it all
            else:
                mv = memoryview(buf)
                while mv:
                    mv = mv[self.sock.send(mv):]  # CircuitPython has no sendall
        except OSError as e:
            raise NetError("send failed: %s" % _reason(e))

    def readinto(self, mv):
        if self._poll is None:
            try:
                return self.sock.recv_into(mv, len(mv))
            except OSError as e:
                if type(e).__name__ in ("timeout", "TimeoutError") or (e.args and e.args[0] == errno.ETIMEDOUT):
                    raise Stalled("nothing received for %d ms" % self.timeout_ms)
                raise NetError("receive failed: %s" % _reason(e))
        # MicroPython: a blocking readinto waits to fill all of ``mv``; poll first,
        # then read only what is there.
        try:
            self.sock.setblocking(False)
            while True:
                if not self._poll.poll(self.timeout_ms):
                    raise Stalled("nothing received for %d ms" % self.timeout_ms)
                n = self.sock.readinto(mv)
                if n is not None:
                    return n
        except OSError as e:
            if isinstance(e, NetError):
                raise
            raise NetError("receive failed: %s" % _reason(e))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
