# smpdfu developer tasks.  `make test` is what CI runs (via .ci/run).
#
#   make venv      CPython venv in $(VENV) with smpdfu (editable) + dev deps
#   make npm       node deps of real MicroPython under node (host/smpdfu_host/mpy)
#   make test      pytest on CPython, then the portable tests on real MicroPython:
#                  the WebAssembly build (node) and the unix port (fixed heap),
#                  also with CircuitPython's gaps masked
#   make test-py   only pytest            (PYTEST_ARGS="-k cbor -x" ...)
#   make test-mp   only MicroPython tests (MP_ARGS="-k cbor" ...)
#   make footprint .mpy sizes, heap after import, smallest heap for a 1 MB update
#   make bench-mcu client CPU per chunk on the unix port vs a pure-Python CRC pass
#   make fuzz      the long fuzz run: 100k cases per target (FUZZ_ARGS="-n 1000000 client" ...)
#   make clean     remove the venv, node_modules, caches

PYTHON ?= python3
VENV = .venv
VPY = $(VENV)/bin/python
NODE ?= node
NPM ?= npm
MPY_DIR = host/smpdfu_host/mpy
MP_RUNNER = host_tests/mp/run_tests.mjs
UNIX_RUNNER = host_tests/mp/run_unix.py
PYTEST_ARGS ?=
MP_ARGS ?=

VENV_STAMP = $(VENV)/.installed.stamp
NPM_STAMP = $(MPY_DIR)/node_modules/.installed.stamp

.PHONY: all help venv npm test test-py test-mp clean

all: test

help:
	@sed -n '1,/^$$/p' Makefile | sed 's/^# \{0,1\}//'

venv: $(VENV_STAMP)

$(VENV_STAMP): pyproject.toml requirements-dev.txt
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e . -r requirements-dev.txt
	touch $@

npm: $(NPM_STAMP)

$(NPM_STAMP): $(MPY_DIR)/package.json $(MPY_DIR)/package-lock.json
	cd $(MPY_DIR) && $(NPM) ci --no-audit --no-fund
	touch $@

# Both suites always run; the target fails if either fails (pytest's exit
# status 5, "no tests collected", is a failure too).
test: venv npm
	@status=0; \
	echo "== pytest (CPython)"; \
	$(VPY) -m pytest $(PYTEST_ARGS) || status=1; \
	echo "== portable tests on MicroPython ($(MP_RUNNER))"; \
	$(NODE) $(MP_RUNNER) $(MP_ARGS) || status=1; \
	echo "== portable tests on the MicroPython unix port ($(UNIX_RUNNER))"; \
	$(VPY) $(UNIX_RUNNER) $(MP_ARGS) || status=1; \
	echo "== the same, with what CircuitPython lacks masked ($(UNIX_RUNNER) --circuitpython)"; \
	$(VPY) $(UNIX_RUNNER) --circuitpython $(MP_ARGS) || status=1; \
	if [ $$status -ne 0 ]; then echo "make test: FAILED"; fi; \
	exit $$status

test-py: venv
	$(VPY) -m pytest $(PYTEST_ARGS)

test-mp: venv npm
	@status=0; \
	$(NODE) $(MP_RUNNER) $(MP_ARGS) || status=1; \
	$(VPY) $(UNIX_RUNNER) $(MP_ARGS) || status=1; \
	$(VPY) $(UNIX_RUNNER) --circuitpython $(MP_ARGS) || status=1; \
	exit $$status

clean:
	rm -rf $(VENV) $(MPY_DIR)/node_modules .pytest_cache .hypothesis build dist
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name '*.egg-info' -type d -prune -exec rm -rf {} +

# The decoders and the client's answer parsing against hostile input
# (host_tests/fuzzing.py); `make test` runs a short pass (host_tests/test_fuzz.py).
FUZZ_ARGS ?=
.PHONY: fuzz
fuzz: venv
	nice $(VPY) host_tests/fuzzing.py $(FUZZ_ARGS)

# Upload throughput of smpdfu vs smpclient vs mcumgr-toolkit on the emulated
# nRF (a benchmark, not a test).  BENCH_ARGS="--quick" for 1 Mbaud only.
BENCH_ARGS ?=
.PHONY: bench
bench: venv
	$(VPY) host_tests/bench/bench_upload.py $(BENCH_ARGS)

# On the MicroPython unix port (benchmarks, not tests): what the board app
# needs (.mpy bytes, heap after import, smallest heap for a whole 1 MB update,
# per-chunk garbage) and the client's CPU per chunk vs a pure-Python CRC pass.
FOOTPRINT_ARGS ?=
.PHONY: footprint bench-mcu
footprint: venv
	$(VPY) host_tests/bench/footprint.py $(FOOTPRINT_ARGS)

bench-mcu: venv
	$(VPY) host_tests/bench/bench_mcu.py

# ---- the on-board update app (docs/boards.md)
#   make demo                                   the app on real MicroPython updates the emulated nRF
#   make demo BLE=1                             the app over BLE (on CPython + Bumble) updates the emulated nRF
#   make demo-fota                              the same over HTTPS: manifest -> stream -> test -> reset -> confirm
#   make deploy BOARD=pico PORT=/dev/ttyACM0    MicroPython board via mpremote: .mpy for the board (PY=1: .py, LINES=1: keep line numbers, DRYRUN=1: list only)
#   make deploy-circuitpython BOARD=feather_nrf52840 DRIVE=/media/$$USER/CIRCUITPY   (DRYRUN=1 too)
#   make mpy [BOARD=pico]                       compile the app's modules to build/mpy with mpy-cross
BOARD ?= pico
PORT ?= auto
DRIVE ?=
PY ?=
DRYRUN ?=
DEMO_ARGS ?=
.PHONY: demo demo-fota deploy deploy-circuitpython mpy package-json

demo: venv npm
	$(VPY) -m smpdfu_host.$(if $(BLE),demo_ble,demo) $(DEMO_ARGS)

# needs nginx (apt-get install nginx) and the unix port from requirements-dev.txt
demo-fota: venv
	$(VPY) -m smpdfu_host.demo_fota $(DEMO_ARGS)

deploy: venv
	$(VPY) -m smpdfu_host.deploy micropython --board $(BOARD) --port $(PORT) $(if $(PY),--py) $(if $(LINES),--lines) $(if $(DRYRUN),--dry-run)

deploy-circuitpython: venv
	$(VPY) -m smpdfu_host.deploy circuitpython --board $(BOARD) --drive "$(DRIVE)" $(if $(DRYRUN),--dry-run)

mpy: venv
	$(VPY) -m smpdfu_host.deploy mpy --board $(BOARD)

package-json: venv
	$(VPY) -m smpdfu_host.deploy package-json
