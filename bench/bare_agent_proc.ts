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
import type { ProcessMemory } from "./process_memory.ts";

/** Memory of a bare agent process, bytes. */
export type BareAgentMemory = ProcessMemory;

if (import.meta.main) {
  // The measuring code is loaded only now, as the host loads its own before its sample.
  const { mallocTrim } = await import("./malloc.ts");
  const { collectGarbage } = await import("./procstat.ts");
  const { processMemory } = await import("./process_memory.ts");
  collectGarbage();
  mallocTrim();
  console.log(JSON.stringify(processMemory()));
}
