// One source for the engine and the audit module: the copies the Python wheel and the
// playground ship are the package's files, byte for byte.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { COPIES } from "../scripts/build.mjs";

test("the wheel's callgate.mjs and the playground's audit.mjs are the package's lib files, byte for byte", () => {
  assert.ok(COPIES.length >= 2);
  for (const [source, copy] of COPIES) {
    assert.ok(readFileSync(copy).equals(readFileSync(source)), `${copy} differs from ${source}: run npm run build in js/`);
  }
});
