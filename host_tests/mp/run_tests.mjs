// Runs portable tests on real MicroPython (WebAssembly build) under node.
//
//   node host_tests/mp/run_tests.mjs [options] [files or dirs...]
//
// Default: every host_tests/portable/test_*.py. Each file runs in a fresh
// interpreter (in a worker thread, so a hung test can be killed): the repo's
// lib/ is at /lib, the harness helpers (_portable, hostserial) at /harness, and
// the test file's directory at /tests (first on sys.path, and the cwd). Every
// top-level function named test_* is called with no arguments, in source order.
//
// Output: one line per test, `PASS file::name`, `SKIP file::name: reason`, or
// `FAIL file::name` followed by the MicroPython traceback and captured output;
// then a closing line `N passed, N failed` (`, N skipped` when there are skips).
// Exit status 1 when any test failed, a module failed to import, or no test
// ran at all; 2 on bad usage.
//
// Options:
//   -k SUBSTR       only tests whose `file::name` contains SUBSTR
//   -s              stream test output instead of showing it only on failure
//   --timeout SEC   per-test limit (default 120, or $MP_TEST_TIMEOUT); the
//                   interpreter is killed and the test counted as failed
//   --heapsize N    initial MicroPython heap in bytes (it grows on demand)

import fs from "node:fs";
import path from "node:path";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { fileURLToPath } from "node:url";
import { REPO_ROOT, DEFAULT_HEAPSIZE, startMicroPython, installRepo, copyTreeIn, pyStr } from "../../host/smpdfu_host/mpy/mpy.mjs";

const SELF = fileURLToPath(import.meta.url);
const DEFAULT_DIR = path.join(REPO_ROOT, "host_tests", "portable");
const PORTABLE_HELPERS = path.join(DEFAULT_DIR, "_portable.py"); // skip / raises / on_micropython

// ------------------------------------------------------------ worker side

const DRIVER = `
import sys, gc
import _runner

def _tb(e):
    import io
    s = io.StringIO()
    sys.print_exception(e, s)
    return s.getvalue()

def _run_module(modname, order, ksub, label):
    try:
        mod = __import__(modname)
    except BaseException as e:
        _runner.report("ERROR", "<import>", _tb(e))
        return
    names = []
    for n in dir(mod):
        if n.startswith("test_"):
            f = getattr(mod, n)
            if callable(f) and not isinstance(f, type):
                names.append(n)
    # MicroPython's dicts are unordered: use the order found in the source
    names.sort(key=lambda n: (order.index(n) if n in order else len(order), n))
    for n in names:
        if ksub and ksub not in label + "::" + n:
            continue
        _runner.report("START", n, "")
        try:
            getattr(mod, n)()
        except BaseException as e:
            if type(e).__name__ == "SkipTest":
                _runner.report("SKIP", n, str(e.args[0]) if e.args else "")
            else:
                _runner.report("FAIL", n, _tb(e))
        else:
            _runner.report("PASS", n, "")
        gc.collect()
`;

async function workerMain({ file, ksub, heapsize, label }) {
  const post = (m) => parentPort.postMessage(m);
  const out = (line) => post({ kind: "out", text: line });
  const mp = await startMicroPython({ heapsize, stdout: out, stderr: out });
  mp.registerJsModule("_runner", {
    report(status, name, detail) {
      mp.flush();
      post({ kind: status, name, detail });
    },
  });
  installRepo(mp, [PORTABLE_HELPERS]);
  copyTreeIn(mp, path.dirname(file), "/tests");
  const src = fs.readFileSync(file, "utf8");
  const order = [...src.matchAll(/^(?:async\s+)?def\s+(test_\w+)\s*\(/gm)].map((m) => m[1]);
  const modname = path.basename(file, ".py");
  try {
    mp.runPython("import sys, os\nsys.path.insert(0, '/tests')\nos.chdir('/tests')\n" + DRIVER);
    mp.runPython(
      `_run_module(${pyStr(modname)}, ${JSON.stringify(order)}, ${pyStr(ksub || "")}, ${pyStr(label)})`,
    );
  } catch (e) {
    mp.flush();
    post({ kind: "CRASH", detail: e && e.name === "PythonError" ? e.message : String(e && e.stack) });
  }
  mp.flush();
  post({ kind: "DONE" });
}

// ------------------------------------------------------------ main side

function usage(msg) {
  if (msg) process.stderr.write(`run_tests.mjs: ${msg}\n`);
  process.stderr.write(
    "usage: node run_tests.mjs [-k SUBSTR] [-s] [--timeout SEC] [--heapsize N] [files or dirs...]\n",
  );
  process.exit(2);
}

function parseArgs(argv) {
  const o = {
    ksub: "",
    stream: false,
    timeout: Number(process.env.MP_TEST_TIMEOUT || 120),
    heapsize: DEFAULT_HEAPSIZE,
    paths: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "-k") o.ksub = argv[++i] ?? usage("-k needs a value");
    else if (a === "-s") o.stream = true;
    else if (a === "--timeout") o.timeout = Number(argv[++i]);
    else if (a === "--heapsize") o.heapsize = Number(argv[++i]);
    else if (a === "-h" || a === "--help") usage();
    else if (a.startsWith("-")) usage(`unknown option ${a}`);
    else o.paths.push(a);
  }
  if (!(o.timeout > 0)) usage("--timeout must be a positive number");
  if (!(o.heapsize > 0)) usage("--heapsize must be a positive number");
  if (o.paths.length === 0) o.paths.push(DEFAULT_DIR);
  return o;
}

function collect(paths) {
  const files = [];
  const walk = (dir) => {
    for (const ent of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(dir, ent.name);
      if (ent.isDirectory()) {
        if (ent.name !== "__pycache__" && ent.name !== "node_modules" && !ent.name.startsWith(".")) walk(p);
      } else if (/^test_.*\.py$/.test(ent.name)) files.push(p);
    }
  };
  for (const p of paths) {
    const abs = path.resolve(p);
    if (!fs.existsSync(abs)) usage(`no such file or directory: ${p}`);
    if (fs.statSync(abs).isDirectory()) walk(abs);
    else files.push(abs);
  }
  return files;
}

function labelFor(file) {
  const rel = path.relative(REPO_ROOT, file);
  return rel.startsWith("..") || path.isAbsolute(rel) ? file : rel;
}

const indent = (text) =>
  text
    .replace(/\s+$/, "")
    .split("\n")
    .map((l) => "    " + l)
    .join("\n") + "\n";

function runFile(file, opts, counts) {
  const label = labelFor(file);
  return new Promise((resolve) => {
    const w = new Worker(SELF, { workerData: { file, ksub: opts.ksub, heapsize: opts.heapsize, label } });
    let captured = [];
    let current = null; // test running now
    let finished = false;
    let timer = null;
    const say = (s) => process.stdout.write(s + "\n");
    const fail = (name, detail) => {
      counts.failed++;
      say(`FAIL ${label}::${name}`);
      if (detail) process.stdout.write(indent(detail));
      if (captured.length) process.stdout.write(indent("---- captured output ----\n" + captured.join("\n")));
      captured = [];
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        fail(current || "<module>", `timed out after ${opts.timeout} s (rest of the file not run)`);
        current = null;
        finish();
      }, opts.timeout * 1000);
    };
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      w.terminate().then(() => resolve(), () => resolve());
    };
    arm();
    w.on("message", (m) => {
      if (finished) return;
      switch (m.kind) {
        case "out":
          if (opts.stream) say(m.text);
          else captured.push(m.text);
          break;
        case "START":
          current = m.name;
          captured = [];
          arm();
          break;
        case "PASS":
          counts.passed++;
          current = null;
          captured = [];
          say(`PASS ${label}::${m.name}`);
          break;
        case "SKIP":
          counts.skipped++;
          current = null;
          captured = [];
          say(`SKIP ${label}::${m.name}: ${m.detail}`);
          break;
        case "FAIL":
        case "ERROR":
          current = null;
          fail(m.name, m.detail);
          break;
        case "CRASH":
          fail(current || "<harness>", "interpreter crashed:\n" + m.detail);
          current = null;
          break;
        case "DONE":
          finish();
          break;
      }
    });
    w.on("error", (e) => {
      if (finished) return;
      fail(current || "<harness>", "worker error: " + (e && e.stack ? e.stack : e));
      finish();
    });
    w.on("exit", () => {
      if (!finished) {
        fail(current || "<harness>", "interpreter exited unexpectedly");
        finish();
      }
    });
  });
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const files = collect(opts.paths);
  const counts = { passed: 0, failed: 0, skipped: 0 };
  const t0 = Date.now();
  for (const f of files) await runFile(f, opts, counts);
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  if (files.length === 0) process.stdout.write("no test files found\n");
  else if (counts.passed + counts.failed + counts.skipped === 0) process.stdout.write("no tests ran\n");
  process.stdout.write(`MicroPython: ${files.length} file(s) in ${secs} s\n`);
  let line = `${counts.passed} passed, ${counts.failed} failed`;
  if (counts.skipped) line += `, ${counts.skipped} skipped`;
  process.stdout.write(line + "\n");
  const ran = counts.passed + counts.failed + counts.skipped;
  process.exitCode = counts.failed > 0 || ran === 0 ? 1 : 0;
}

if (isMainThread) {
  main().catch((e) => {
    process.stderr.write(`run_tests.mjs: ${e && e.stack ? e.stack : e}\n`);
    process.exitCode = 2;
  });
} else {
  workerMain(workerData).catch((e) => {
    parentPort.postMessage({ kind: "CRASH", detail: String(e && e.stack ? e.stack : e) });
    parentPort.postMessage({ kind: "DONE" });
  });
}
