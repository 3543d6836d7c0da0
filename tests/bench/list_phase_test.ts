/**
 * bench/list_phase.ts and the warm-up of bench/apiserver_proc.ts (real
 * processes: the benchmark's API server process, real HTTP).
 *
 * @module
 */

import assert from "node:assert/strict";
import { ApiServerProcess } from "../../bench/apiserver.ts";
import { measureListPhase } from "../../bench/list_phase.ts";
import { issueSpec } from "../../bench/scenario.ts";

Deno.test("API server process: its warm-up lists after seeding are not counted as served", async () => {
  const api = ApiServerProcess.start();
  try {
    await api.seed(issueSpec(30));
    const stats = await api.stats();
    assert.equal(stats.lists, 0, JSON.stringify(stats));
    assert.equal(stats.watchRequests, 0);
  } finally {
    await api.stop();
  }
});

for (const compressed of [true, false]) {
  Deno.test(`list phase: each run lists every page until synced and reports its CPU (${compressed ? "gzip" : "uncompressed"})`, async () => {
    const runs = await measureListPhase(30, 2, 7, compressed);
    assert.equal(runs.length, 2);
    for (const run of runs) {
      assert.equal(run.objects, 60, "every Service and EndpointSlice listed");
      assert.ok(run.wallMs > 0, JSON.stringify(run));
      assert.ok(run.processMs > 0 && run.apiServerMs > 0, JSON.stringify(run));
      assert.ok(run.mainThreadMs >= 0 && run.mainThreadWaitMs >= 0, JSON.stringify(run));
      assert.ok(
        Math.abs(run.wallMs - run.mainThreadMs - run.mainThreadWaitMs - run.idleMs) < 1e-6,
        JSON.stringify(run),
      );
    }
  });
}
