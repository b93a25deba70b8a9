"""The docs agree with each other and with the code (issue 9, item 14)."""

import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*path):
    with open(os.path.join(REPO, *path)) as f:
        return f.read()


def test_readme_and_boards_quote_the_same_measured_demo_run():
    readme, boards = _read("README.md"), _read("docs", "boards.md")
    pat = r"demo OK: updated: 1\.0\.0 -> 1\.1\.0, \d+ bytes in [\d.]+ s \([\d.]+ kB/s upload\)"
    lines = re.findall(pat, readme) + re.findall(pat, boards)
    assert len(lines) == 2 and lines[0] == lines[1], lines
    # one story about the erase before the first chunk: the image's pages, not the whole slot
    for text in (readme, boards):
        flat = " ".join(text.split())
        assert "whole 472 KiB" not in flat
        assert "11 flash pages" in flat or "11 pages of 4 KiB" in flat


def test_no_placeholders_and_the_nrf_side_is_documented():
    for name in ("README.md", os.path.join("docs", "boards.md")):
        assert "OWNER" not in _read(name), name
    boards = " ".join(_read("docs", "boards.md").split())
    for fact in ("P1.02 TX", "P1.01 RX", "zephyr,uart-mcumgr = &uart1", "CONFIG_MCUMGR_TRANSPORT_UART=y",
                 "--sysbuild", "zephyr.signed.bin", "Flow control:"):
        assert fact in boards, fact


def test_emulator_doc_names_the_v1_mode_as_the_cli_does():
    from smpdfu_host.emulator.cli import build_parser

    opts = {s for a in build_parser()._actions for s in a.option_strings}
    assert "--v1-legacy-rc" in opts
    assert "`--v1-legacy-rc`" in _read("docs", "emulator.md")
