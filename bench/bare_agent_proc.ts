/**
 * A bare agent process before it starts: it loads what `hnsproxy run`
 * loads (main.ts and the run command's modules, the agent's included), runs
 * a full GC, gives free native memory back, and prints its memory as one
 * JSON line ({@link BareAgentMemory}). The yardstick of the agent host's
 * memory before its agent starts (bench/agent_host.ts `bareAgentMemory`);
 * run with the agent's V8 flags (`v8FlagsArgument()`, which expose `gc`).
 *
 * @module
 */

import "../main.ts";
import "../lib/cli/run.ts";

/** Memory of a bare agent process, bytes. */
export interface BareAgentMemory {
  /** Resident set size. */
  rss: number;
  /** Of it, file-backed (the executable's code and data, shared libraries). */
  rssFile: number;
  /** V8 heap resident. */
  heapPhysical: number;
  /** V8 heap in use. */
  heapUsed: number;
  /** Native heap in use (malloc), NaN when unknown. */
  mallocInUse: number;
}

if (import.meta.main) {
  // The measuring code is loaded only now, as the host loads its own before its sample.
  const { getHeapStatistics } = await import("node:v8");
  const { mallocInUse, mallocTrim } = await import("./malloc.ts");
  const { collectGarbage, rssByKind, rssBytes } = await import("./procstat.ts");
  collectGarbage();
  mallocTrim();
  const heap = getHeapStatistics();
  const sample: BareAgentMemory = {
    rss: rssBytes(),
    rssFile: rssByKind().file,
    heapPhysical: heap.total_physical_size,
    heapUsed: heap.used_heap_size,
    mallocInUse: mallocInUse(),
  };
  console.log(JSON.stringify(sample));
}
