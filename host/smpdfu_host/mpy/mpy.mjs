// Real MicroPython (the npm WebAssembly build) for smpdfu's tests, driven by node.
//
// Library use (from other .mjs files in this directory):
//
//   import { startMicroPython, copyTreeIn, copyTreeOut, REPO_ROOT } from "./mpy.mjs";
//   const mp = await startMicroPython({ heapsize: 1 << 20 });
//   copyTreeIn(mp, `${REPO_ROOT}/lib`, "/lib");      // `import smpdfu` now works
//   mp.runPython("import smpdfu");
//
// Command line (runs one script, exit status set from the Python outcome, which
// the package's own CLI does not do):
//
//   node host/smpdfu_host/mpy/mpy.mjs [--heapsize N] [--copy HOST:MP]... [--out MP:HOST]...
//                              [--path MPDIR]... script.py [args...]
//
// The repo's lib/ is always copied to /lib and the harness helpers
// (hostserial.py) to /harness (on sys.path). `--copy` copies more host trees in,
// `--out` copies MicroPython-side trees/files back out after the run, `--path`
// prepends a directory to sys.path. sys.argv is [script, args...].
//
// Python sees a module `hostio` (see makeHostio) giving synchronous,
// non-blocking access to host file descriptors (ptys), a clock and a real sleep.
// JavaScript exceptions thrown inside a registered function cannot be caught by
// Python (they unwind through the whole wasm call), so hostio never throws: it
// returns a negative errno instead.

import fs from "node:fs";
import path from "node:path";
import os from "node:os";
import { fileURLToPath, pathToFileURL } from "node:url";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, "..", "..", "..");
export const DEFAULT_HEAPSIZE = 4 * 1024 * 1024;

// ---------------------------------------------------------------- sleeping

const _sleepCell = new Int32Array(new SharedArrayBuffer(4));

/** Block this thread for `ms` milliseconds without spinning the CPU. */
export function sleepMs(ms) {
  ms = Number(ms);
  if (ms > 0) Atomics.wait(_sleepCell, 0, 0, ms);
}

const _t0 = performance.now();

/** Milliseconds since this module loaded, as an integer that fits an i32
 *  (MicroPython's proxy converts JS integers through 32 bits). */
export function nowMs() {
  return Math.floor(performance.now() - _t0);
}

// ---------------------------------------------------------------- hostio

function _errno(e) {
  // node's errors carry a negative errno (e.g. -11 for EAGAIN) in .errno
  if (e && typeof e.errno === "number") return e.errno < 0 ? e.errno : -e.errno;
  return -5; // EIO
}

/** Convert what Python passed (Uint8Array, or a proxied bytes/bytearray/
 *  memoryview) to a Uint8Array. Returns null when it cannot. */
export function toUint8Array(mp, x) {
  if (x instanceof Uint8Array) return x;
  // a str is taken as hex: binascii.hexlify(b).decode() crosses the boundary
  // much faster than a bytes object, which JS can only iterate byte by byte
  if (typeof x === "string") return Buffer.from(x, "hex");
  if (x instanceof mp.PyProxy) {
    try {
      return Uint8Array.from(x);
    } catch (e) {
      return null;
    }
  }
  return null;
}

/**
 * The `hostio` module object for `mp.registerJsModule("hostio", ...)`.
 *
 * Python API (all synchronous; none raises: errors come back as an int -errno):
 *   open(path) -> fd (>= 0) or -errno. Opened O_RDWR|O_NONBLOCK|O_NOCTTY.
 *   read(fd, n, timeout_ms=0) -> Uint8Array proxy (bytes(...) converts it);
 *       empty when nothing arrived within timeout_ms (0: don't wait), or an
 *       int -errno (EIO = -5 when a pty's other side has closed).
 *   read_hex(fd, n, timeout_ms=0) -> the same data as a hex str ("" when
 *       none), or -errno. binascii.unhexlify(...) of it is ~25x faster than
 *       bytes(read(...)), which converts element by element.
 *   write(fd, data) -> count written (all of it: EAGAIN is retried for up to
 *       5 s), or -errno. data: a hex str (binascii.hexlify(b).decode(): the
 *       fast path), a js.Uint8Array, or bytes/bytearray/memoryview (slow,
 *       ~1 ms per 400 bytes).
 *   close(fd) -> 0 or -errno.
 *   now_ms() -> int milliseconds from an arbitrary start.
 *   sleep_ms(ms) -> None; a real blocking sleep (no CPU spinning).
 *   errno_name(code) -> e.g. "EAGAIN" for -11.
 */
export function makeHostio(mp) {
  const rbuf = Buffer.alloc(65536);

  function read(fd, n, timeoutMs) {
    n = Math.max(0, Math.min(Number(n) || 0, rbuf.length));
    const deadline = nowMs() + (Number(timeoutMs) || 0);
    for (;;) {
      try {
        const k = fs.readSync(fd, rbuf, 0, n, null);
        return new Uint8Array(rbuf.subarray(0, k)); // a copy
      } catch (e) {
        if (e.code !== "EAGAIN" && e.code !== "EWOULDBLOCK") return _errno(e);
      }
      if (nowMs() >= deadline) return new Uint8Array(0);
      sleepMs(1);
    }
  }

  return {
    open(p) {
      try {
        const c = fs.constants;
        return fs.openSync(String(p), c.O_RDWR | c.O_NONBLOCK | c.O_NOCTTY);
      } catch (e) {
        return _errno(e);
      }
    },
    read,
    read_hex(fd, n, timeoutMs) {
      const r = read(fd, n, timeoutMs);
      if (typeof r === "number") return r;
      return Buffer.from(r.buffer, r.byteOffset, r.length).toString("hex");
    },
    write(fd, data) {
      const u8 = toUint8Array(mp, data);
      if (u8 === null) return -22; // EINVAL
      let off = 0;
      const deadline = nowMs() + 5000;
      while (off < u8.length) {
        try {
          off += fs.writeSync(fd, u8, off, u8.length - off);
        } catch (e) {
          if (e.code !== "EAGAIN" && e.code !== "EWOULDBLOCK") return _errno(e);
          if (nowMs() >= deadline) return off > 0 ? off : -11;
          sleepMs(1);
        }
      }
      return off;
    },
    close(fd) {
      try {
        fs.closeSync(fd);
        return 0;
      } catch (e) {
        return _errno(e);
      }
    },
    now_ms: nowMs,
    sleep_ms(ms) {
      sleepMs(ms);
    },
    errno_name(code) {
      const n = -Number(code);
      for (const [name, v] of Object.entries(os.constants.errno)) if (v === n) return name;
      return "E?" + n;
    },
  };
}

// ---------------------------------------------------------------- start

/**
 * Load a fresh MicroPython interpreter.
 *   heapsize: initial heap bytes (the heap grows on demand anyway)
 *   stdout/stderr: callbacks getting one line (string, no newline) at a time;
 *                  default: write to process.stdout/stderr
 *   hostio: register the `hostio` module (default true)
 * Returns the package's mp object (runPython, runPythonAsync, FS, globals,
 * registerJsModule, pyimport, PyProxy) plus mp.flush() which emits any
 * unterminated last output line.
 */
export async function startMicroPython({
  heapsize = DEFAULT_HEAPSIZE,
  pystack,
  stdout = (line) => process.stdout.write(line + "\n"),
  stderr = (line) => process.stderr.write(line + "\n"),
  hostio = true,
} = {}) {
  const opts = { heapsize, stdout, stderr, linebuffer: true };
  if (pystack) opts.pystack = pystack;
  const mp = await loadMicroPython(opts);
  const mod = mp._module;
  mp.flush = () => {
    for (const [key, cb] of [["_stdoutBuffer", stdout], ["_stderrBuffer", stderr]]) {
      if (mod[key] && mod[key].length) {
        cb(mod._textDecoder.decode(new Uint8Array(mod[key])));
        mod[key] = [];
      }
    }
  };
  if (hostio) mp.registerJsModule("hostio", makeHostio(mp));
  return mp;
}

// ---------------------------------------------------------------- files

/** mkdir -p inside the MicroPython filesystem. */
export function mkdirs(mp, mpDir) {
  let cur = "";
  for (const part of mpDir.split("/").filter(Boolean)) {
    cur += "/" + part;
    try {
      mp.FS.mkdir(cur);
    } catch (e) {
      // exists already
    }
  }
}

const _SKIP = new Set(["__pycache__", "node_modules", ".git", ".venv"]);

/** Copy a host file or directory tree into the MicroPython filesystem.
 *  Skips __pycache__, node_modules, .git. Returns the number of files copied. */
export function copyTreeIn(mp, hostPath, mpPath) {
  const st = fs.statSync(hostPath);
  if (!st.isDirectory()) {
    mkdirs(mp, path.posix.dirname(mpPath));
    mp.FS.writeFile(mpPath, fs.readFileSync(hostPath));
    return 1;
  }
  mkdirs(mp, mpPath);
  let n = 0;
  for (const ent of fs.readdirSync(hostPath, { withFileTypes: true })) {
    if (_SKIP.has(ent.name)) continue;
    const h = path.join(hostPath, ent.name);
    const m = path.posix.join(mpPath, ent.name);
    if (ent.isDirectory()) n += copyTreeIn(mp, h, m);
    else if (ent.isFile() || ent.isSymbolicLink()) {
      mp.FS.writeFile(m, fs.readFileSync(h));
      n += 1;
    }
  }
  return n;
}

/** Copy a MicroPython-side file or tree back to the host. Returns file count. */
export function copyTreeOut(mp, mpPath, hostPath) {
  const st = mp.FS.stat(mpPath);
  if (!mp.FS.isDir(st.mode)) {
    fs.mkdirSync(path.dirname(hostPath), { recursive: true });
    fs.writeFileSync(hostPath, mp.FS.readFile(mpPath));
    return 1;
  }
  fs.mkdirSync(hostPath, { recursive: true });
  let n = 0;
  for (const name of mp.FS.readdir(mpPath)) {
    if (name === "." || name === "..") continue;
    n += copyTreeOut(mp, path.posix.join(mpPath, name), path.join(hostPath, name));
  }
  return n;
}

/** Files from this directory that MicroPython code can import (from /harness). */
export const HARNESS_FILES = [path.join(HERE, "hostserial.py")];

/**
 * The usual setup: repo lib/ -> /lib (already on sys.path), harness helpers
 * (hostserial, and the host files in `extra`) -> /harness, appended to sys.path.
 */
export function installRepo(mp, extra = []) {
  const lib = path.join(REPO_ROOT, "lib");
  if (fs.existsSync(lib)) copyTreeIn(mp, lib, "/lib");
  mkdirs(mp, "/harness");
  for (const f of HARNESS_FILES.concat(extra)) {
    if (fs.existsSync(f)) copyTreeIn(mp, f, "/harness/" + path.basename(f));
  }
  mp.runPython("import sys\nif '/harness' not in sys.path: sys.path.append('/harness')\n");
}

/** Python string literal for a JS string (for building small driver code). */
export function pyStr(s) {
  return JSON.stringify(String(s));
}

/** Exit status for a PythonError the way CPython would set it. */
export function exitStatusFor(err, mp) {
  if (err && err.name === "PythonError" && err.type === "SystemExit") {
    // message is a traceback ending "SystemExit: <code>"
    const m = /SystemExit:?\s*(.*)\s*$/.exec(err.message.trim());
    const arg = m ? m[1].trim() : "";
    if (arg === "" || arg === "None") return 0;
    if (/^-?\d+$/.test(arg)) return Number(arg) & 0xff;
    return 1; // sys.exit("message")
  }
  return 1;
}

// ---------------------------------------------------------------- CLI

async function main(argv) {
  let heapsize = DEFAULT_HEAPSIZE;
  const copies = [];
  const outs = [];
  const paths = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--heapsize") heapsize = Number(argv[++i]);
    else if (a === "--copy" || a === "--out") {
      const v = argv[++i];
      const k = v.lastIndexOf(":");
      if (k <= 0) throw new Error(`${a} wants SRC:DST, got ${v}`);
      (a === "--copy" ? copies : outs).push([v.slice(0, k), v.slice(k + 1)]);
    } else if (a === "--path") paths.push(argv[++i]);
    else if (a === "--") {
      i++;
      break;
    } else if (a.startsWith("--")) throw new Error(`unknown option ${a}`);
    else break;
  }
  const script = argv[i];
  if (!script) {
    process.stderr.write("usage: node mpy.mjs [--heapsize N] [--copy HOST:MP] [--out MP:HOST] [--path DIR] script.py [args]\n");
    return 2;
  }
  const mp = await startMicroPython({ heapsize });
  installRepo(mp);
  for (const [h, m] of copies) if (fs.existsSync(h)) copyTreeIn(mp, h, m);
  const code = fs.readFileSync(script, "utf8");
  const args = [script, ...argv.slice(i + 1)];
  let status = 0;
  try {
    mp.runPython(
      "import sys\n" +
        `sys.argv[:] = ${JSON.stringify(args)}\n` +
        paths.map((p) => `sys.path.insert(0, ${pyStr(p)})\n`).join(""),
    );
    mp.runPython(code);
  } catch (e) {
    if (e && e.name === "PythonError") {
      status = exitStatusFor(e, mp);
      mp.flush();
      if (e.type !== "SystemExit") {
        process.stderr.write(e.message.endsWith("\n") ? e.message : e.message + "\n");
      } else {
        const m = /SystemExit:\s*(.+?)\s*$/.exec(e.message);
        if (m && !/^-?\d+$|^None$/.test(m[1])) process.stderr.write(m[1] + "\n");
      }
    } else throw e;
  }
  mp.flush();
  for (const [m, h] of outs) {
    try {
      copyTreeOut(mp, m, h);
    } catch (e) {
      process.stderr.write(`mpy.mjs: cannot copy ${m} out: ${e.message}\n`);
      if (status === 0) status = 1;
    }
  }
  return status;
}

if (process.argv[1] && pathToFileURL(path.resolve(process.argv[1])).href === import.meta.url) {
  main(process.argv.slice(2)).then(
    (st) => {
      process.exitCode = st;
    },
    (e) => {
      process.stderr.write(`mpy.mjs: ${e && e.stack ? e.stack.split("\n")[0] : e}\n`);
      process.exitCode = 2;
    },
  );
}
