/**
 * Large HNS answers (Enumerate listings) are parsed in slices; the outcome
 * must be exactly that of parsing them at once, for any
 * text: surrogate pairs split between two chunks, strings holding `","`,
 * escapes, invalid JSON.
 *
 * @module
 */

import { deepEqual, equal, throws } from "node:assert/strict";
import { parseIdArray } from "../../lib/hns/client.ts";

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
