"""In-memory UART links for tests (portable): no device behind them, just bytes.

``pipe_pair()`` gives two connected ends with the UART interface the
transport uses (``write`` / ``read_available`` / ``close``): what one end
writes, the other reads.
"""


class Pipe:
    """One direction of an in-memory link: ``write`` appends, ``read_available`` takes.

    ``max_read`` limits how much one ``read_available`` returns, to imitate a
    UART handing data over in small pieces.
    """

    def __init__(self, max_read=0):
        self._buf = bytearray()
        self.max_read = max_read

    def write(self, buf):
        self._buf.extend(buf)
        return len(buf)

    def read_available(self):
        n = len(self._buf)
        if not n:
            return None
        if self.max_read and n > self.max_read:
            n = self.max_read
        data = bytes(self._buf[:n])
        self._buf[:n] = b""
        return data

    def close(self):
        pass


class PipeEnd:
    """One end of a link: reads from one :class:`Pipe`, writes into the other."""

    def __init__(self, rx, tx):
        self.rx = rx
        self.tx = tx

    def write(self, buf):
        return self.tx.write(buf)

    def read_available(self):
        return self.rx.read_available()

    def close(self):
        pass


def pipe_pair(max_read=0):
    """Two connected in-memory UART ends ``(a, b)``: what ``a`` writes ``b`` reads."""
    ab = Pipe(max_read)
    ba = Pipe(max_read)
    return PipeEnd(ba, ab), PipeEnd(ab, ba)
