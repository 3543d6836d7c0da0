/**
 * bench/machine_probe.ts: the probe's work is fixed (the same list and the
 * same checksum every run), and the probe runs in a process of its own.
 *
 * @module
 */

import assert from "node:assert/strict";
import { probeList, probeMachine, probeRound } from "../../bench/machine_probe.ts";

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

Deno.test("machine probe: a fresh process runs it and reports its time in ms", async () => {
  const ms = await probeMachine();
  assert.ok(ms !== undefined && Number.isFinite(ms) && ms > 0, `probe reported ${ms}`);
});
