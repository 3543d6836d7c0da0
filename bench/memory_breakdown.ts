/**
 * Where the agent's memory is, as tables for a scenario's result: the agent
 * host's RSS right after the agent's first sync (about its peak) split into
 * the emulated HNS (not the agent), the V8 heap of the agent's isolate (by
 * space only with a memory trace, HNSBENCH_MEM_TRACE, which loads node:v8
 * in the host: bench/process_memory.ts), the native heap (malloc) beside it, the HNS threads, the mapped
 * files (the executable's code), and the rest (stacks, the runtime's
 * bookkeeping, free memory malloc has not given back); and,
 * when asked (slow: seconds at 10,000 services), the largest groups of a
 * heap snapshot by constructor.
 *
 * A bare agent process (bench/bare_agent_proc.ts) is measured apart once,
 * as the yardstick of the host's memory before its agent starts.
 *
 * The cost of one HNS thread is measured apart, in a fresh host that starts
 * a few of them and runs no agent; a thread of the agent has served more
 * calls, so it is an estimate. Its native allocations are in malloc in use
 * too, so the threads' row counts only the rest (their V8 heaps, stacks).
 *
 * @module
 */

import { AgentHost, type BareAgentMemory, type MemorySample } from "./agent_host.ts";
import { summarizeHeapSnapshot } from "./heap_summary.ts";
import { mib } from "./procstat.ts";
import type { ScenarioResult } from "./results.ts";

let threadCost: Promise<{ rss: number; malloc: number }> | undefined;
let bareAgent: Promise<BareAgentMemory> | undefined;

/** The RSS of one HNS thread and its malloc part, measured once per process. */
function hnsThreadCost(): Promise<{ rss: number; malloc: number }> {
  return threadCost ??= AgentHost.threadCost(4);
}

/**
 * Add the breakdown of `host`'s memory after the running agent's first sync
 * to `result` (and the heap snapshot's groups with `snapshot`); `idle` is
 * the host's sample before the agent started.
 */
export async function memoryBreakdown(
  host: AgentHost,
  result: ScenarioResult,
  label: string,
  phase: string,
  idle: MemorySample,
  snapshot: boolean,
): Promise<void> {
  const m = await host.firstSyncMemory();
  if (!m) {
    result.notes.push(`${label} ${phase}: no memory sample after the first sync`);
    return;
  }
  const perThread = await hnsThreadCost();
  const bare = await (bareAgent ??= AgentHost.bareAgentMemory());
  // The emulated HNS's blocks are on pages of their own, not in malloc (its README).
  const offHeap = m.mallocInUse;
  // Their malloc is in malloc in use already.
  const threads = m.hnsThreads * Math.max(0, perThread.rss - perThread.malloc);
  const rest = m.rss - m.emulatorHeap - m.heapTotal - offHeap - threads - m.rssFile;
  const rows: (string | number)[][] = [
    [
      "agent host before the agent started, after a GC",
      mib(idle.rss),
      `without the emulated HNS (${mib(idle.emulatorHeap)} MiB) ${
        mib(idle.rss - idle.emulatorHeap)
      } MiB: mapped files ${mib(idle.rssFile)} MiB, V8 heap ${
        mib(idle.heapTotal)
      } MiB committed, malloc ${mib(idle.mallocInUse)} MiB`,
    ],
    [
      "a bare agent process before it starts, after a GC (what the row above compares with)",
      mib(bare.rss),
      `deno run of main.ts and its run command's modules, measured apart: mapped files ` +
      `${mib(bare.rssFile)} MiB, V8 heap ${mib(bare.heapTotal)} MiB committed, malloc ${
        mib(bare.mallocInUse)
      } MiB`,
    ],
    ["agent host RSS", mib(m.rss), `peak so far ${mib(m.peakRss)} MiB`],
    [
      "emulated HNS (not the agent)",
      mib(m.emulatorHeap),
      "HnsEmuHeapBytes: pages of its own, off malloc",
    ],
    ["agent: RSS without the emulated HNS", mib(m.rss - m.emulatorHeap), ""],
    ...m.spaces.map((s) => [
      `V8 heap: ${s.name}`,
      mib(s.physical),
      `${mib(s.used)} MiB used`,
    ]),
    [
      "V8 heap of the agent's isolate, in all",
      mib(m.heapTotal),
      `committed; ${mib(m.heapUsed)} MiB used (garbage of the first sync included)` +
      (m.spaces.length > 0
        ? ""
        : "; by space only with HNSBENCH_MEM_TRACE (it loads node:v8, ~4 MiB)"),
    ],
    [
      "off-heap: malloc in use (the emulated HNS is not in it)",
      mib(offHeap),
      `V8 counts ${mib(m.external)} MiB of it as held by JS objects (ArrayBuffers and the like)`,
    ],
    [
      `HNS threads: ${m.hnsThreads} running`,
      mib(threads),
      `about ${mib(perThread.rss)} MiB each (a thread's isolate, stack and buffers; measured ` +
      `apart), less the ${mib(perThread.malloc)} MiB of it in malloc, counted above`,
    ],
    [
      "mapped files: the deno executable's code and data, shared libraries",
      mib(m.rssFile),
      "RssFile; the same for any process of this runtime",
    ],
    [
      "rest: stacks, V8 and runtime bookkeeping, free memory not returned",
      mib(rest),
      `${m.threads} threads in the process`,
    ],
  ];
  result.tables.push({
    title: `${label} ${phase}: agent memory right after the first sync (MiB)`,
    header: ["part", "MiB", "remark"],
    rows,
  });
  if (!snapshot) return;
  const dir = await Deno.makeTempDir({ prefix: "hnsbench-heap-" });
  try {
    const path = `${dir}/agent.heapsnapshot`;
    const ms = await host.writeHeapSnapshot(path);
    const groups = await summarizeHeapSnapshot(path);
    const total = groups.reduce((n, g) => n + g.selfSize, 0);
    result.tables.push({
      title: `${label} ${phase}: largest groups in the agent's heap (snapshot after convergence, ` +
        `shallow size, ${mib(total)} MiB live in all; taken in ${Math.round(ms)} ms)`,
      header: ["constructor or type", "objects", "MiB", "share"],
      rows: groups.slice(0, 12).map((g) => [
        g.name,
        g.count,
        mib(g.selfSize),
        `${(g.selfSize / total * 100).toFixed(1)}%`,
      ]),
    });
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
