/**
 * The memory of this process as the bench reports it for the agent: RSS
 * and its file-backed part, the V8 heap of this isolate, and the native
 * heap in use. The one sampling of these figures for the agent host
 * (bench/agent_host_proc.ts) and the bare agent process
 * (bench/bare_agent_proc.ts), so that the two compare figure by figure.
 *
 * Rule: sampling loads no `node:` built-in. Any of them starts Node
 * compatibility (~4 MiB RSS), which `hnsproxy run` does not load, so it
 * would be reported as the agent's. The V8 heap by space needs node:v8
 * (getHeapSpaceStatistics): samples have it only after
 * {@link loadHeapSpaceStatistics}, which the host calls only for a memory
 * trace (HNSBENCH_MEM_TRACE); otherwise `spaces` is empty.
 *
 * @module
 */

import { mallocInUse } from "./malloc.ts";
import { rssByKind, rssBytes } from "./procstat.ts";

/** Memory of this process at one moment, bytes. */
export interface ProcessMemory {
  /** Resident set size. */
  rss: number;
  /** Of it, file-backed: the executable's code and data, shared libraries. */
  rssFile: number;
  /**
   * V8 heap of this isolate (the main thread) by space: used and resident.
   * Empty unless {@link loadHeapSpaceStatistics} was called.
   */
  spaces: { name: string; used: number; physical: number }[];
  /**
   * V8 heap committed (`Deno.memoryUsage().heapTotal`); its resident part
   * (the spaces' `physical` sum) is at most this.
   */
  heapTotal: number;
  /** V8 heap in use. */
  heapUsed: number;
  /** Memory outside the heap that V8 knows JS objects hold (ArrayBuffers and the like). */
  external: number;
  /** Native heap in use (malloc), NaN when unknown. */
  mallocInUse: number;
}

type HeapSpaceStatistics = () => {
  space_name: string;
  space_used_size: number;
  physical_space_size: number;
}[];

let heapSpaceStatistics: HeapSpaceStatistics | undefined;

/**
 * Load node:v8 so that samples from now on have the V8 heap by space.
 * Starts Node compatibility in this process: ~4 MiB RSS more, counted as
 * the agent's from then on.
 */
export async function loadHeapSpaceStatistics(): Promise<void> {
  heapSpaceStatistics ??= (await import("node:v8")).getHeapSpaceStatistics;
}

/** This process's memory now; see {@link ProcessMemory}. */
export function processMemory(): ProcessMemory {
  const spaces = (heapSpaceStatistics?.() ?? [])
    .filter((s) => s.physical_space_size > 0 || s.space_used_size > 0)
    .map((s) => ({ name: s.space_name, used: s.space_used_size, physical: s.physical_space_size }));
  const heap = Deno.memoryUsage();
  return {
    rss: rssBytes(),
    rssFile: rssByKind().file,
    spaces,
    heapTotal: heap.heapTotal,
    heapUsed: heap.heapUsed,
    external: heap.external,
    mallocInUse: mallocInUse(),
  };
}
