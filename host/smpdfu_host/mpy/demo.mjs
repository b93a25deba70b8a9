// Runs the on-board update app (firmware/main.py) on real MicroPython (the npm
// WebAssembly build) with the `host` board config, its UART bridged to a pty
// (normally the emulated nRF's, see host/smpdfu_host/demo.py).
//
//   node host/smpdfu_host/mpy/demo.mjs --pty /dev/pts/N --image app.bin [options]
//
// The MicroPython filesystem is laid out as on a board (docs/boards.md):
//   /main.py, /board_config.py (boards/host.py), /lib/smpdfu_app.py, /lib/smpdfu/,
//   /update/app.bin (the --image file), /update/status.json (--status, optional)
// then /main.py runs, exactly as a board runs it at boot.
//
// Options:
//   --pty PATH       the UART (set as board_config.UART_PORT)
//   --image FILE     host file copied to /update/app.bin (omit: no image)
//   --status FILE    host file copied to /update/status.json first (a previous run's)
//   --out DIR        copy /update back to DIR afterwards (status.json, renamed image)
//   --board FILE     board config (default boards/host.py)
//   --set NAME=JSON  override a board setting, e.g. --set CONNECT_MS=1500 (repeatable)
//   --entry FILE     the boot script (default firmware/main.py)
//   --files LIST     a file of "SRC DEST" lines (as `python -m smpdfu_host.deploy files
//                    --board host` prints): install exactly these, as `make deploy`
//                    would; default: the whole lib/ plus the app, board and entry
//
// Exit status: 0 when the script ran to its end (whatever the update's outcome:
// read it from the status file), 1 when Python raised, 2 on bad usage.

import fs from "node:fs";
import path from "node:path";
import { REPO_ROOT, HARNESS_FILES, startMicroPython, installRepo, copyTreeIn, copyTreeOut, mkdirs, pyStr, exitStatusFor } from "./mpy.mjs";

function parseArgs(argv) {
  const o = {
    pty: null,
    image: null,
    status: null,
    out: null,
    board: path.join(REPO_ROOT, "boards", "host.py"),
    entry: path.join(REPO_ROOT, "firmware", "main.py"),
    set: [],
    files: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--pty") o.pty = v();
    else if (a === "--image") o.image = v();
    else if (a === "--status") o.status = v();
    else if (a === "--out") o.out = v();
    else if (a === "--board") o.board = v();
    else if (a === "--entry") o.entry = v();
    else if (a === "--files") o.files = v();
    else if (a === "--set") {
      const s = v();
      const k = s.indexOf("=");
      if (k <= 0) throw new Error(`--set wants NAME=JSON, got ${s}`);
      o.set.push([s.slice(0, k), JSON.parse(s.slice(k + 1))]);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!o.pty) throw new Error("--pty is required");
  return o;
}

// JSON value -> Python literal (true/false/null differ).
function pyLiteral(v) {
  if (v === null) return "None";
  if (v === true) return "True";
  if (v === false) return "False";
  if (typeof v === "string") return pyStr(v);
  if (typeof v === "number") return String(v);
  throw new Error(`unsupported --set value ${JSON.stringify(v)}`);
}

async function main(argv) {
  let o;
  try {
    o = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`demo.mjs: ${e.message}\n`);
    return 2;
  }
  const mp = await startMicroPython();
  if (o.files) {
    // exactly the deployed files; the harness (hostserial) still goes to /harness
    mkdirs(mp, "/harness");
    for (const f of HARNESS_FILES) if (fs.existsSync(f)) copyTreeIn(mp, f, "/harness/" + path.basename(f));
    mp.runPython("import sys\nif '/harness' not in sys.path: sys.path.append('/harness')\n");
    for (const line of fs.readFileSync(o.files, "utf8").split("\n")) {
      const [src, dest] = line.trim().split(/\s+/);
      if (src && dest) copyTreeIn(mp, path.resolve(REPO_ROOT, src), dest);
    }
  } else {
    installRepo(mp); // lib/ -> /lib, hostserial -> /harness
    for (const name of ["smpdfu_app.py", "smpdfu_board.py"]) {
      copyTreeIn(mp, path.join(REPO_ROOT, "firmware", name), "/lib/" + name);
    }
    copyTreeIn(mp, o.board, "/board_config.py");
    copyTreeIn(mp, o.entry, "/main.py");
  }
  mkdirs(mp, "/update");
  if (o.image) copyTreeIn(mp, o.image, "/update/app.bin");
  if (o.status) copyTreeIn(mp, o.status, "/update/status.json");

  let status = 0;
  try {
    let setup = "import board_config\n" + `board_config.UART_PORT = ${pyStr(o.pty)}\n`;
    for (const [k, v] of o.set) setup += `board_config.${k} = ${pyLiteral(v)}\n`;
    mp.runPython(setup);
    // as a board does at boot: run /main.py as __main__
    mp.runPython("exec(open('/main.py').read(), {'__name__': '__main__'})\n");
  } catch (e) {
    if (e && e.name === "PythonError") {
      mp.flush();
      status = exitStatusFor(e, mp);
      if (e.type !== "SystemExit") process.stderr.write(e.message.endsWith("\n") ? e.message : e.message + "\n");
    } else throw e;
  }
  mp.flush();
  if (o.out) copyTreeOut(mp, "/update", o.out);
  return status;
}

main(process.argv.slice(2)).then(
  (st) => {
    process.exitCode = st;
  },
  (e) => {
    process.stderr.write(`demo.mjs: ${e && e.stack ? e.stack : e}\n`);
    process.exitCode = 2;
  },
);
