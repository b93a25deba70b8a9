"""Test web servers: nginx (Debian's package) on loopback with our own TLS CA, and a fault proxy.

- :class:`Nginx` serves a directory over HTTP and HTTPS on ephemeral loopback
  ports; Range, If-Range and ETag are nginx's own. ``/chunked/NAME`` serves
  ``NAME`` with a chunked body (a no-op ``sub_filter`` drops Content-Length);
  ``/moved/NAME`` answers 301 to ``/NAME`` and ``/rel/NAME`` 302 with a
  relative Location.
- :func:`make_ca` makes a CA and a server certificate for 127.0.0.1/localhost
  with ``openssl``.
- :class:`FaultProxy` forwards TCP to a server and, per connection, drops it
  after N bytes, resets it, stalls, or trickles the answer.
"""

import os
import shutil
import socket
import subprocess
import threading
import time


def nginx_binary():
    """The nginx executable, or None."""
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_ca(d, name="smpdfu test CA"):
    """Make ``ca.pem`` + ``server.pem``/``server.key`` (127.0.0.1, localhost) in ``d``; return their paths."""
    ca_key, ca = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    key, csr, crt = os.path.join(d, "server.key"), os.path.join(d, "server.csr"), os.path.join(d, "server.pem")
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")

    def run(*args):
        subprocess.run(("openssl",) + args, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
        "-keyout", ca_key, "-out", ca, "-subj", "/CN=" + name,
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "30",
        "-out", crt, "-extfile", ext)
    return ca, crt, key


_CONF = """
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 128; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    types {{ application/octet-stream bin; application/json json; }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        listen 127.0.0.1:{tls_port} ssl;
        ssl_certificate {crt};
        ssl_certificate_key {key};
        root {root};
        location /chunked/ {{
            alias {root}/;
            sub_filter_types *;
            sub_filter 'no-such-text-here' 'no-such-text-here';
        }}
        location ~ ^/moved/(.*)$ {{ return 301 /$1; }}
        location ~ ^/rel/(.*)$ {{ add_header Location ../$1 always; return 302; }}
    }}
}}
"""


class Nginx:
    """nginx serving ``root`` on ``http://127.0.0.1:port`` and ``https://127.0.0.1:tls_port``."""

    def __init__(self, workdir, root):
        self.dir = workdir
        self.root = root
        os.makedirs(os.path.join(workdir, "tmp"), exist_ok=True)
        self.ca, self.crt, self.key = make_ca(workdir)
        self.proc = None
        for _ in range(5):
            self.port, self.tls_port = free_port(), free_port()
            conf = os.path.join(workdir, "nginx.conf")
            with open(conf, "w") as f:
                f.write(_CONF.format(d=workdir, port=self.port, tls_port=self.tls_port, crt=self.crt,
                                     key=self.key, root=root))
            self.proc = subprocess.Popen([nginx_binary(), "-p", workdir, "-e", "stderr", "-c", conf],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if self._wait_up():
                return
            self.proc.kill()
            self.proc.wait()
        raise RuntimeError("nginx did not start: %s" % self.proc.stderr.read().decode(errors="replace"))

    def _wait_up(self):
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10:
            if self.proc.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def url(self, name, tls=False):
        return ("https://127.0.0.1:%d/%s" if tls else "http://127.0.0.1:%d/%s") % (
            self.tls_port if tls else self.port, name)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class FaultProxy:
    """A TCP proxy on ``127.0.0.1:port`` to ``upstream`` with a fault per connection.

    ``faults``: a list consumed one per accepted connection (then no fault):
    ``("drop", n)`` close after n bytes sent to the client, ``("reset", n)``
    the same with a TCP RST, ``("stall", n)`` send n bytes then nothing (the
    client must time out), ``("trickle", piece, pause_s)`` send in small pieces,
    ``None`` no fault. ``down`` counts bytes sent to clients; ``on_accept(i)``
    runs as connection i is accepted (e.g. to change the file).
    """

    def __init__(self, upstream_port, faults=(), on_accept=None):
        self.upstream = ("127.0.0.1", upstream_port)
        self.faults = list(faults)
        self.on_accept = on_accept
        self.down = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._srv = socket.socket()
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(16)
        self.port = self._srv.getsockname()[1]
        self._stop = threading.Event()
        self._threads = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)

    def url(self, name):
        return "http://127.0.0.1:%d/%s" % (self.port, name)

    def _accept(self):
        while not self._stop.is_set():
            try:
                c, _ = self._srv.accept()
            except OSError:
                return
            with self._lock:
                i = self.connections
                self.connections += 1
                fault = self.faults.pop(0) if self.faults else None
            if self.on_accept:
                self.on_accept(i)
            t = threading.Thread(target=self._serve, args=(c, fault), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, c, fault):
        try:
            u = socket.create_connection(self.upstream, 5)
        except OSError:
            c.close()
            return
        up = threading.Thread(target=self._pipe_up, args=(c, u), daemon=True)
        up.start()
        kind = fault[0] if fault else None
        limit = fault[1] if kind in ("drop", "reset", "stall") else None
        sent = 0
        try:
            while not self._stop.is_set():
                data = u.recv(4096)
                if not data:
                    break
                if limit is not None and sent + len(data) >= limit:
                    data = data[:limit - sent]
                    self._send(c, data)
                    sent += len(data)
                    if kind == "stall":
                        self._stop.wait(60)  # the client gives up first
                    elif kind == "reset":
                        import struct

                        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    break
                if kind == "trickle":
                    piece, pause = fault[1], fault[2]
                    for k in range(0, len(data), piece):
                        self._send(c, data[k:k + piece])
                        time.sleep(pause)
                else:
                    self._send(c, data)
                sent += len(data)
        except OSError:
            pass
        finally:
            for s in (c, u):
                try:
                    # shutdown first: close() alone does not end a recv() blocked in
                    # another thread, and the peer would never see the end
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                try:
                    s.close()
                except OSError:
                    pass

    def _send(self, c, data):
        c.sendall(data)
        with self._lock:
            self.down += len(data)

    def _pipe_up(self, c, u):
        try:
            while True:
                data = c.recv(4096)
                if not data:
                    break
                u.sendall(data)
        except OSError:
            pass

    def stop(self):
        self._stop.set()
        self._srv.close()
