"""The client's CPU per chunk on a real MicroPython (the unix port): ``make bench-mcu``.

    python host_tests/bench/bench_mcu.py [--chunks 300] [--runs 3]

For 384- and 2048-byte buffers it runs ``mcu_chunk.py`` on the unix port
(fixed heap), once with what compat picks there (viper CRC-16 and base64) and
once with native code masked (the portable loops, as on CircuitPython), and
prints the client's microseconds per chunk, the bytes it allocates per chunk,
and one pure-Python
table CRC-16 pass over a whole packet measured in the same run. The figure
that matters is the ratio: the client and the CRC pass are both Python
bytecode and scale alike from this host to a board, where a pure-Python CRC
runs at about 100 KB/s; the script turns the ratio into milliseconds there,
beside the ~5 ms a 384-byte request spends on the wire at 1 Mbaud.

What the time counts (``mcu_chunk.py``): the upload recorded once against the
emulated device, then replayed through the board's own UART adapter
(``uart.UART``) around C stand-ins for ``machine.UART`` and an
``io.BytesIO`` image (a file on a board): the client, its adapter, the
transport and one C call per UART or file access, as on a board; the device
costs nothing and nothing is subtracted.

A benchmark, not a test: it asserts nothing about time.
"""

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "mp"))
import unixport  # noqa: E402

SCRIPT = os.path.join(HERE, "mcu_chunk.py")
# Serial bytes of one request of this buffer size at 10 bits per byte (8N1):
# base64 (4/3) plus 3 bytes per 127-byte line.
_WIRE = {384: 384 * 4 // 3 + 3 * 5, 2048: 2048 * 4 // 3 + 3 * 23}
# Pure-Python table CRC-16 on ESP32/CircuitPython boards (shared/reference
# performance.md): what turns the ratio into milliseconds on a board.
_BOARD_CRC_BPS = 100000


def measure(mode, buf, chunks):
    """``(us per chunk, bytes per chunk, CRC pass us, data bytes per chunk)`` from one run."""
    env = unixport.path_env([unixport.PORTABLE, unixport.LIB])
    r = subprocess.run(unixport.command(SCRIPT, mode, buf, chunks, heapsize=8 << 20),
                       capture_output=True, text=True, env=env, timeout=300)
    if r.returncode != 0:
        raise SystemExit("mcu_chunk.py %s %d failed:\n%s%s" % (mode, buf, r.stdout, r.stderr))
    us, alloc, crc, data, native = r.stdout.split()
    if mode == "native" and native != "True":
        raise SystemExit("the unix port did not take the native code path")
    return float(us), int(alloc), float(crc), int(data)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chunks", type=int, default=300)
    ap.add_argument("--runs", type=int, default=5, help="fastest of N runs (the machine is shared)")
    a = ap.parse_args(argv)
    print("client CPU per upload chunk on the MicroPython unix port (a recorded upload replayed through")
    print("the board's UART adapter around C stand-ins for the UART and the file: the device costs nothing)")
    print("%-6s %-8s %6s %10s %10s %12s %8s" % ("buffer", "code", "data", "us/chunk", "B/chunk",
                                              "CRC pass us", "ratio"))
    results = {}
    for buf in (384, 2048):
        for mode in ("native", "python"):
            # the fastest of the runs for each figure: the machine is shared
            runs = [measure(mode, buf, a.chunks) for _ in range(a.runs)]
            us = min(r[0] for r in runs)
            crc = min(r[2] for r in runs)
            alloc, data = runs[0][1], runs[0][3]
            print("%-6d %-8s %6d %10.1f %10d %12.1f %8.2f" % (buf, mode, data, us, alloc, crc, us / crc))
            results[(buf, mode)] = us / crc
    print()
    print("ratio = client us per chunk / one pure-Python CRC-16 pass over the packet (goal <= 1).")
    print("Scaled to a board where a pure-Python table CRC-16 runs at ~%d KB/s (as measured on ESP32 and"
          % (_BOARD_CRC_BPS // 1000))
    print("CircuitPython boards), per chunk:")
    for buf in (384, 2048):
        board_crc_ms = buf * 1000.0 / _BOARD_CRC_BPS
        for mode in ("native", "python"):
            ratio = results[(buf, mode)]
            print("  buffer %4d, %-6s: %5.1f ms CPU per chunk (CRC pass %4.1f ms) vs %4.1f ms on the wire at 1 Mbaud"
                  % (buf, mode, ratio * board_crc_ms, board_crc_ms, _WIRE[buf] * 10 / 1000.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
