"""A TCP proxy that breaks connections on purpose, for the download tests.

:class:`FaultProxy` forwards TCP to a server and, per connection, drops it
after N bytes, resets it, stalls, or trickles the answer.
"""

import socket
import struct
import threading
import time


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
