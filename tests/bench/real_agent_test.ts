/**
 * bench/real_agent.ts: the real agent process against the fake API server
 * and a seeded emulator, measured from outside.
 *
 * @module
 */

import assert from "node:assert/strict";
import { measureRealAgent } from "../../bench/real_agent.ts";

Deno.test("real agent: the agent process converges and its peak RSS is split from the emulated HNS", async () => {
  const f = await measureRealAgent(20, 60_000);
  assert.equal(f.services, 20);
  assert.ok(f.convergeMs > 0, JSON.stringify(f));
  // The seeded network and local endpoints and the agent's objects live in the emulator's heap.
  assert.ok(f.emulatorHeapMiB > 0 && f.emulatorHeapMiB < f.peakRssMiB, JSON.stringify(f));
  assert.ok(f.rssFileMiB > 0 && f.peakRssWithoutHnsMiB > f.rssFileMiB, JSON.stringify(f));
  assert.ok(f.hnsCalls > 0, JSON.stringify(f));
});
