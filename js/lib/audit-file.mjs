// audit-file.mjs -- the JSONL file transport of callgate's audit trail (Node.js only): the
// Python JsonlSink's file, line for line, so `callgate audit verify audit.jsonl` checks it and
// a Python writer can go on with the chain (or the other way round).
//
//   import { Audit } from "callgate/audit";
//   import { fileTransport } from "callgate/audit-file";
//   const audit = new Audit(fileTransport("audit.jsonl"));
//
// Append-only; each batch is written, then synced (fsync), before it counts as written; a
// failed batch is cut back (ftruncate) so nothing half-written counts. Rotation by size
// renames audit.jsonl to audit.jsonl.1, .2, ... and the chain goes on across them. On open,
// the chain resumes from its last complete record; bytes a crash left after the last complete
// record stay in place as evidence, closed with a newline, and the start marker vouches for
// exactly them ({"torn": {offset, length, sha256}}: verify reports them as a warning only).
// One writer per file: a lock file (AUDIT.lock) holds the writer's pid.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { hex, sha256 } from "./audit.mjs";

const HEAD = Buffer.from('{"hash":"');
const MID = Buffer.from('","record":');
const BODY_AT = HEAD.length + 64 + MID.length;
const CHUNK = 1 << 20;

/** (body, hash) of a line that is exactly an envelope, else null. */
export function decodeLine(line) {
  if (line.length <= BODY_AT + 1 || !line.subarray(0, HEAD.length).equals(HEAD)) return null;
  if (!line.subarray(BODY_AT - MID.length, BODY_AT).equals(MID) || line[line.length - 1] !== 0x7d) return null;
  const digits = line.subarray(HEAD.length, HEAD.length + 64).toString("latin1");
  if (!/^[0-9a-f]{64}$/.test(digits)) return null;
  return { body: line.subarray(BODY_AT, line.length - 1), hash: Buffer.from(digits, "hex") };
}

/** The files of a JSONL log, oldest first: rotated segments by number, then the active one. */
export function segments(file) {
  const dir = path.dirname(path.resolve(file));
  const name = path.basename(file);
  const rotated = [];
  let entries = [];
  try {
    entries = fs.readdirSync(dir);
  } catch {
    entries = [];
  }
  for (const entry of entries) {
    const m = entry.startsWith(`${name}.`) ? /^(\d+)$/.exec(entry.slice(name.length + 1)) : null;
    if (m) rotated.push([Number(m[1]), path.join(dir, entry)]);
  }
  rotated.sort((a, b) => a[0] - b[0]);
  const files = rotated.map(([, f]) => f);
  if (fs.existsSync(file)) files.push(path.resolve(file));
  return files;
}

// complete lines of a file from its end: [offset, line bytes] (the first line of the file last)
function* linesBackwards(file) {
  const fd = fs.openSync(file, "r");
  try {
    let end = fs.fstatSync(fd).size;
    let tail = Buffer.alloc(0);
    let tailAt = end; // tail holds the bytes [tailAt, ...)
    while (end > 0) {
      const start = Math.max(0, end - CHUNK);
      const chunk = Buffer.alloc(end - start);
      fs.readSync(fd, chunk, 0, chunk.length, start);
      tail = Buffer.concat([chunk, tail]);
      tailAt = start;
      end = start;
      let lineEnd = tail.length;
      for (;;) {
        const cut = lineEnd > 0 ? tail.lastIndexOf(0x0a, lineEnd - 1) : -1;
        if (cut < 0 && start > 0) break; // this line may begin in the chunk before
        yield [tailAt + cut + 1, tail.subarray(cut + 1, lineEnd)];
        if (cut < 0) break;
        lineEnd = cut;
      }
      tail = tail.subarray(0, lineEnd);
      if (start === 0) break;
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** {seq, hash} of the last complete record of `chain` in the log, or null. */
export function lastRecord(file, chain) {
  for (const f of segments(file).reverse()) {
    for (const [, line] of linesBackwards(f)) {
      const got = decodeLine(line);
      if (got === null) continue;
      let record;
      try {
        record = JSON.parse(got.body.toString("utf8"));
      } catch {
        continue;
      }
      if (record?.chain === chain && Number.isInteger(record.seq)) return { seq: record.seq, hash: new Uint8Array(got.hash) };
    }
  }
  return null;
}

/** [offset, bytes] of what follows the file's last complete envelope line, or null. */
export function tornTail(file) {
  const size = fs.statSync(file).size;
  let after = 0;
  for (const [offset, line] of linesBackwards(file)) {
    if (decodeLine(line) !== null) {
      after = offset + line.length + (offset + line.length < size ? 1 : 0);
      break;
    }
  }
  if (after >= size) return null;
  const fd = fs.openSync(file, "r");
  try {
    const bytes = Buffer.alloc(size - after);
    fs.readSync(fd, bytes, 0, bytes.length, after);
    return [after, bytes];
  } finally {
    fs.closeSync(fd);
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === "EPERM";
  }
}

/**
 * The JSONL file transport. Chain id "main" by default (as the Python JsonlSink).
 * @param {string} file the log's path (its directory must exist: none is created)
 * @param {{maxBytes?: number, fsync?: "batch" | "never"}} [options] maxBytes: rotate once the
 *   active file reaches this size (0: never; default 256 MiB)
 */
export function fileTransport(file, options = {}) {
  const maxBytes = options.maxBytes ?? 256 * 1024 * 1024;
  const sync = (options.fsync ?? "batch") !== "never";
  let fd = -1;
  let size = 0;
  let lock = null;
  let left = null;

  const openActive = () => {
    fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o600);
    size = fs.fstatSync(fd).size;
  };

  const takeLock = () => {
    const name = `${file}.lock`;
    const lfd = fs.openSync(name, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    const held = Number.parseInt(fs.readFileSync(name, "utf8"), 10);
    if (Number.isInteger(held) && held !== process.pid && alive(held)) {
      fs.closeSync(lfd);
      throw new Error(`${name}: another writer (pid ${held}) holds this audit log`);
    }
    fs.ftruncateSync(lfd, 0);
    fs.writeSync(lfd, String(process.pid), 0);
    return lfd;
  };

  const rotate = () => {
    const files = segments(file);
    const numbers = files.slice(0, -1).map((f) => Number(f.slice(f.lastIndexOf(".") + 1)));
    const n = 1 + Math.max(0, ...numbers);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(file, `${file}.${n}`);
    const dir = fs.openSync(path.dirname(path.resolve(file)), "r");
    try {
      fs.fsyncSync(dir);
    } finally {
      fs.closeSync(dir);
    }
    openActive();
  };

  return {
    name: `file ${file}`,
    defaultChain: "main",
    writerMarkers: true,
    path: file,

    async open(chain) {
      if (lock === null) lock = takeLock();
      if (fd >= 0) fs.closeSync(fd);
      const last = lastRecord(file, chain);
      openActive();
      left = null;
      if (size) {
        const found = tornTail(file);
        if (found !== null) left = { offset: found[0], length: found[1].length, sha256: hex(sha256(found[1])) };
        const probe = Buffer.alloc(1);
        const rfd = fs.openSync(file, "r");
        try {
          fs.readSync(rfd, probe, 0, 1, size - 1);
        } finally {
          fs.closeSync(rfd);
        }
        if (probe[0] !== 0x0a) {
          // a torn record: kept, on its own line
          fs.writeSync(fd, "\n");
          size += 1;
          if (sync) fs.fsyncSync(fd);
        }
      }
      return last;
    },

    startDetails() {
      return left !== null ? { torn: left } : {};
    },

    writer() {
      return { host: os.hostname(), pid: process.pid };
    },

    async write(lines) {
      const data = Buffer.from(lines, "utf8");
      const start = size;
      try {
        let at = 0;
        while (at < data.length) at += fs.writeSync(fd, data, at, data.length - at);
        size += data.length;
        if (sync) fs.fsyncSync(fd);
      } catch (e) {
        // nothing of a failed batch may count as written: cut back what did get out
        try {
          fs.ftruncateSync(fd, start);
        } finally {
          size = start;
        }
        throw e;
      }
      if (maxBytes && size >= maxBytes) rotate();
    },

    async close() {
      if (fd >= 0) {
        fs.closeSync(fd);
        fd = -1;
      }
      if (lock !== null) {
        fs.ftruncateSync(lock, 0);
        fs.closeSync(lock);
        lock = null;
      }
    },
  };
}
