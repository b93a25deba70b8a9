"""Air time of an LE link, so the emulated BLE link is as slow as a real one.

Bumble's virtual controller delivers every packet at once; this model says
when each one would have arrived. Figures from the Core Specification
(Vol 6, Part B, 2.1 and 4.5): an LE data PDU carries a preamble (1 byte on
the 1M PHY, 2 on 2M), a 4-byte access address, a 2-byte header, up to
``data_length`` payload bytes (27 without data length extension, 251 with)
and a 3-byte CRC; a central's PDU and the peripheral's answer are separated
by T_IFS = 150 us. A connection event repeats every ``interval_ms``
(7.5 ms ... 4 s) and carries as many PDU exchanges as fit in it (or
``pdus_per_event`` when a controller schedules fewer).

An ATT PDU goes in an L2CAP frame (4-byte header) fragmented into
``ceil((att + 4) / data_length)`` LL PDUs. Each direction has its own clock
on the same grid of connection events (a central PDU and the peripheral's
answer share an exchange, so data both ways overlaps as on air).
"""

import threading
import time

T_IFS_US = 150
L2CAP_HEADER = 4


def pdu_air_us(payload, phy):
    """Microseconds on air of one LL data PDU with ``payload`` bytes on PHY 1 (1M) or 2 (2M)."""
    if phy == 2:
        return (2 + 4 + 2 + payload + 3) * 4
    return (1 + 4 + 2 + payload + 3) * 8


class LinkTiming:
    """When each ATT PDU of a connection finishes on air; see the module docs.

    ``reserve(direction, att_len)`` books the LL PDUs for one ATT PDU of
    ``att_len`` bytes (opcode and handle included) in ``direction`` ("up":
    central -> peripheral, "down") and returns the ``time.monotonic()`` at
    which its last PDU is received.
    """

    def __init__(self, phy=2, interval_ms=7.5, data_length=251, pdus_per_event=0):
        if phy not in (1, 2):
            raise ValueError("PHY must be 1 (1M) or 2 (2M), not %r" % (phy,))
        if not 27 <= data_length <= 251:
            raise ValueError("data length must be 27..251, not %r" % (data_length,))
        if not 7.5 <= interval_ms <= 4000:
            raise ValueError("connection interval must be 7.5..4000 ms, not %r" % (interval_ms,))
        self.phy = phy
        self.interval = interval_ms / 1000.0
        self.data_length = data_length
        # one exchange: a full data PDU, T_IFS, the empty answer, T_IFS
        exchange_us = pdu_air_us(data_length, phy) + T_IFS_US + pdu_air_us(0, phy) + T_IFS_US
        self.exchange = exchange_us / 1e6
        fit = max(1, int(interval_ms * 1000 // exchange_us))
        self.pdus_per_event = min(fit, pdus_per_event) if pdus_per_event else fit
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._event = {"up": -1, "down": -1}  # index of the event in use
        self._used = {"up": 0, "down": 0}  # PDUs booked in that event

    def reset(self):
        """A new connection: a new anchor point, nothing booked."""
        with self._lock:
            self._t0 = time.monotonic()
            self._event = {"up": -1, "down": -1}
            self._used = {"up": 0, "down": 0}

    def pdus(self, att_len):
        """LL PDUs needed for one ATT PDU of ``att_len`` bytes."""
        return -(-(att_len + L2CAP_HEADER) // self.data_length)

    def ceiling(self, att_payload):
        """Bytes per second of ATT values of ``att_payload`` bytes (+3 for opcode and handle), one way."""
        per_event = self.pdus_per_event / self.pdus(att_payload + 3)
        return att_payload * per_event / self.interval

    def reserve(self, direction, att_len):
        """Book one ATT PDU; return the monotonic time its last LL PDU has arrived."""
        with self._lock:
            now = time.monotonic()
            # the first event that has not started yet, or the current one with room
            first = int((now - self._t0) / self.interval) + 1
            event, used = self._event[direction], self._used[direction]
            if event < first:
                event, used = first, 0
            for _ in range(self.pdus(att_len)):
                if used == self.pdus_per_event:
                    event += 1
                    used = 0
                used += 1
            self._event[direction], self._used[direction] = event, used
            return self._t0 + event * self.interval + used * self.exchange
