"""nginx (Debian's package) on loopback with a TLS CA of our own: for ``make demo-fota`` and the tests.

- :class:`Nginx` serves a directory over HTTP and HTTPS on ephemeral loopback
  ports; Range, If-Range and ETag are nginx's own. ``/chunked/NAME`` serves
  ``NAME`` with a chunked body (a no-op ``sub_filter`` drops Content-Length);
  ``/moved/NAME`` answers 301 to ``/NAME``, ``/rel/NAME`` 302 with a
  relative Location, ``/loop`` 302 to itself.
- :func:`make_ca` makes a CA and a server certificate for 127.0.0.1/localhost
  with ``openssl``.
"""

import os
import shutil
import socket
import subprocess
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
    log_format sent '$request_uri $status $body_bytes_sent';
    access_log {d}/access.log sent;
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
        location = /loop {{ return 302 /loop; }}
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

    def sent(self):
        """``[(uri, status, body bytes sent)]`` for the requests served so far, from nginx's access log."""
        try:
            with open(os.path.join(self.dir, "access.log")) as f:
                rows = [ln.split() for ln in f]
        except FileNotFoundError:
            return []
        return [(r[0], int(r[1]), int(r[2])) for r in rows if len(r) == 3]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
