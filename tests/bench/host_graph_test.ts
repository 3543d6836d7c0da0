/**
 * What the agent host (bench/agent_host_proc.ts) loads before its agent
 * starts, from `deno info --json`: no `node:` built-in and no npm package,
 * as `hnsproxy run` (tests/run_graph_test.ts), so that the memory the bench
 * reports as the agent's has no Node compatibility (~4 MiB) the agent's
 * process has not. The diagnostics that need node:v8 or node:inspector
 * import them dynamically.
 *
 * @module
 */

import assert from "node:assert/strict";
import { denoInfo, staticClosure } from "../module_graph.ts";

const nodeOrNpm = (s: string) => s.startsWith("node:") || s.startsWith("npm:");

for (const entry of ["bench/agent_host_proc.ts", "bench/process_memory.ts"]) {
  Deno.test(`host graph: ${entry} loads no node: built-in and no npm package`, async () => {
    const info = await denoInfo(entry);
    const loaded = staticClosure(info, new URL(`../../${entry}`, import.meta.url).href);
    assert.ok(loaded.size > 1, `${entry}'s graph was read`);
    assert.deepEqual([...loaded].filter(nodeOrNpm), []);
  });
}

Deno.test("host graph: the host's diagnostics still reach node:v8 and node:inspector, lazily", async () => {
  const info = await denoInfo("bench/agent_host_proc.ts");
  const all = new Set(info.modules.map((m) => m.specifier));
  for (const m of ["node:v8", "node:inspector"]) assert.ok(all.has(m), `${m} in the graph`);
});
