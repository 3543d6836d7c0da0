/**
 * Large HNS answers (Enumerate listings) are parsed in slices; the outcome
 * must be exactly that of parsing them at once, for any
 * text: surrogate pairs split between two chunks, strings holding `","`,
 * escapes, invalid JSON.
 *
 * @module
 */

import { deepEqual, equal, throws } from "node:assert/strict";
import { forEachInIdArray, parseIdArray } from "../../lib/hns/client.ts";

const GUID = () => crypto.randomUUID().toUpperCase();

Deno.test("parseIdArray: JSON.parse's outcome for listings large and small, valid or not", async () => {
  const big = Array.from({ length: 20_000 }, GUID);
  const texts = [
    "[]",
    JSON.stringify(big),
    JSON.stringify(big.map((id, i) => (i % 997 === 0 ? '","' : i % 1009 === 0 ? "a\\b" : id))),
    JSON.stringify(big.map((id, i) => (i === 15_000 ? '"x","y"' : id))),
    JSON.stringify(big).replace(/","/g, '", "'),
    JSON.stringify(big.map((id, i) => (i === 9000 ? 42 : id))),
  ];
  for (const [i, text] of texts.entries()) {
    deepEqual(await parseIdArray(text), JSON.parse(text), `text ${i}`);
  }
  for (
    const bad of [JSON.stringify(big).slice(0, -1), JSON.stringify(big).replace('","', '",,"')]
  ) {
    throws(() => JSON.parse(bad));
    let failed = false;
    await parseIdArray(bad).catch(() => (failed = true));
    equal(failed, true, "invalid JSON is refused as JSON.parse refuses it");
  }
});

Deno.test("forEachInIdArray: hands over JSON.parse's elements, each once and in order, or refuses as it does", async () => {
  const big = Array.from({ length: 20_000 }, GUID);
  const valid = [
    "[]",
    JSON.stringify(["a", "b"]),
    JSON.stringify(big),
    // Not valid as chunks: the fallback after whole chunks were handed over.
    JSON.stringify(big.map((id, i) => (i === 15_000 ? '"x","y"' : id))),
    JSON.stringify(big).replace(/","/g, '", "'),
  ];
  for (const [i, text] of valid.entries()) {
    const got: unknown[] = [];
    await forEachInIdArray(text, (x) => got.push(x));
    deepEqual(got, JSON.parse(text), `text ${i}`);
  }
  for (const bad of ["{}", "null", JSON.stringify(big).slice(0, -1), "[" + JSON.stringify(big)]) {
    let err: unknown;
    await forEachInIdArray(bad, () => {}).catch((e) => (err = e));
    equal(err instanceof SyntaxError, true, `refused: ${bad.slice(0, 20)}`);
  }
});
