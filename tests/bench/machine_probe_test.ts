/**
 * bench/machine_probe.ts: the probes' work is fixed (the same list and the
 * same checksum, the same chain, every run), and they run in a process of
 * their own.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  followChain,
  probeList,
  probeMachine,
  probeRound,
  shuffledChain,
} from "../../bench/machine_probe.ts";

Deno.test("machine probe: the same list and the same checksum every time", () => {
  const text = probeList();
  assert.equal(text, probeList());
  const list = JSON.parse(text);
  assert.equal(list.items.length, 20_000);
  assert.equal(
    new Set(list.items.map((s: { metadata: { uid: string } }) => s.metadata.uid)).size,
    20_000,
  );
  const sum = probeRound(text);
  assert.equal(probeRound(text), sum);
  // A different list gives a different checksum: the round reads what it parsed.
  list.items[0].spec.ports[0].port += 1;
  assert.notEqual(probeRound(JSON.stringify(list)), sum);
});

Deno.test("machine probe: the memory probe's chain visits every link once and comes back", () => {
  const n = 1000;
  const start = shuffledChain(n);
  const { sum, end } = followChain(start, n);
  assert.equal(end, start, "back at the start after n steps");
  assert.equal(sum, n * (n - 1) / 2, "every value once");
  // Not creation order: a chain in order would not miss the caches.
  assert.notEqual(start.next.value, 1);
  assert.equal(shuffledChain(n).next.value, start.next.value, "the same order every time");
});

Deno.test("machine probe: a fresh process runs both probes and reports their times in ms", async () => {
  const { compute, memory } = await probeMachine();
  assert.ok(compute !== undefined && compute > 0, `compute probe reported ${compute}`);
  assert.ok(memory !== undefined && memory > 0, `memory probe reported ${memory}`);
});
