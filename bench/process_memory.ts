/**
 * The memory of this process as the bench reports it for the agent: RSS
 * and its file-backed part, the V8 heap of this isolate by space, and the
 * native heap in use. The one sampling of these figures for the agent host
 * (bench/agent_host_proc.ts) and the bare agent process
 * (bench/bare_agent_proc.ts), so that the two compare figure by figure.
 *
 * @module
 */

import { getHeapSpaceStatistics, getHeapStatistics } from "node:v8";
import { mallocInUse } from "./malloc.ts";
import { rssByKind, rssBytes } from "./procstat.ts";

/** Memory of this process at one moment, bytes. */
export interface ProcessMemory {
  /** Resident set size. */
  rss: number;
  /** Of it, file-backed: the executable's code and data, shared libraries. */
  rssFile: number;
  /** V8 heap of this isolate (the main thread) by space: used and resident. */
  spaces: { name: string; used: number; physical: number }[];
  /** V8 heap resident in all (the spaces' sum). */
  heapPhysical: number;
  /** V8 heap in use. */
  heapUsed: number;
  /** Memory outside the heap that V8 knows JS objects hold (ArrayBuffers and the like). */
  external: number;
  /** Native heap in use (malloc), NaN when unknown. */
  mallocInUse: number;
}

/** This process's memory now; see {@link ProcessMemory}. */
export function processMemory(): ProcessMemory {
  const spaces = getHeapSpaceStatistics()
    .filter((s) => s.physical_space_size > 0 || s.space_used_size > 0)
    .map((s) => ({ name: s.space_name, used: s.space_used_size, physical: s.physical_space_size }));
  const heap = getHeapStatistics();
  return {
    rss: rssBytes(),
    rssFile: rssByKind().file,
    spaces,
    heapPhysical: heap.total_physical_size,
    heapUsed: heap.used_heap_size,
    external: heap.external_memory,
    mallocInUse: mallocInUse(),
  };
}
