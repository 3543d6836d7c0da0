/**
 * Scenario 1, cold start: the cluster is in the API server, HNS holds only
 * the network and the CNI's local endpoints, and the agent starts. Measured:
 * time until HNS holds exactly the expected objects, HNS calls by C function
 * against the minimum (one create per LB and per remote endpoint), CPU of
 * the agent host process and of its main thread, its peak RSS with and
 * without the emulated HNS, and that the content is right (every LB with
 * its VIP/port and all its backends).
 *
 * @module
 */

import type { AgentHost, AgentPeakFigure, BenchAgent } from "./agent_host.ts";
import type { ApiServerProcess } from "./apiserver.ts";
import { type CallCounts, callDelta, emulatorReserveBytes, writeCalls } from "./emulator.ts";
import { memoryBreakdown } from "./memory_breakdown.ts";
import { pairingNote } from "./memory_peak.ts";
import { cpuDelta, mib } from "./procstat.ts";
import type { ScenarioResult } from "./results.ts";
import { type ExpectedHns, expectedHns, type ScenarioSpec } from "./scenario.ts";

/** Options of {@link coldStart}. */
export interface ColdStartOptions {
  /** The cluster. */
  spec: ScenarioSpec;
  /** The API server process, seeded with `spec`. */
  api: ApiServerProcess;
  /** Base URL of the API server. */
  apiUrl: string;
  /** The agent host, its HNS holding the network and the local endpoints. */
  host: AgentHost;
  /** Ownership record path. */
  stateFile: string;
  /** Give up after this long, ms. */
  timeoutMs: number;
  /** Agent settings. */
  hnsConcurrency?: number;
  /** Agent `--sync-period`, ms. */
  syncPeriodMs?: number;
  /** Prefix of figure names (e.g. `10,000 services:`). */
  label: string;
  /** Read HNS back and check every LB (default true). */
  verify?: boolean;
  /**
   * Hold the figures against the targets at 10,000 services, which are set
   * for 0 ms per HNS call (default true; false under an HNS latency model).
   */
  targets?: boolean;
  /** Add the memory breakdown table after the first sync (default false). */
  breakdown?: boolean;
  /** With the breakdown, also summarise a heap snapshot (slow at 10,000 services). */
  heapSnapshot?: boolean;
}

/** What {@link coldStart} leaves running for the next phases. */
export interface ColdStartOutcome {
  /** The agent, converged. */
  agent: BenchAgent;
  /** HNS calls of the cold start by function. */
  calls: CallCounts;
  /** Time to converge, ms. */
  convergeMs: number;
  /** The agent's peak without the emulated HNS up to convergence (absent: it did not converge). */
  peak?: AgentPeakFigure;
}

/**
 * Run a cold start and add its figures to `result`; the agent is left
 * running. The API server process collects its garbage first. The agent's
 * memory is the host's peak RSS, reset after a GC just before the start,
 * minus what the emulated HNS held at the same moment
 * (bench/memory_peak.ts): its heap grows through the creates, so what it
 * holds at convergence would hide a peak of the agent before them.
 */
export async function coldStart(
  opts: ColdStartOptions,
  result: ScenarioResult,
): Promise<ColdStartOutcome> {
  const { spec, host, label } = opts;
  const expected = expectedHns(spec);
  // What seeding, warm-up lists and any agent before left in the API server's heap is
  // collected now, not while this agent is measured (its collections are not the node's).
  await opts.api.collectGarbage();
  // Room for what the agent creates, so that the pages the emulated HNS holds do not move.
  await host.reserveEmulatorHeap(emulatorReserveBytes(expected.minimumColdWrites));
  const idle = await host.memory(true);
  await host.startPeak();
  const before = await host.callCounts();
  const cpu0 = host.cpu();
  const agent = await host.startAgent({
    apiUrl: opts.apiUrl,
    stateFile: opts.stateFile,
    hnsConcurrency: opts.hnsConcurrency,
    syncPeriodMs: opts.syncPeriodMs,
  });
  let convergedAt: number;
  try {
    convergedAt = await host.waitConverged(expected, opts.timeoutMs);
  } catch (err) {
    const log = await host.log();
    result.failures.push(
      `${label} did not converge within ${opts.timeoutMs} ms (expected ` +
        `${expected.loadBalancers} load balancers, ${expected.endpoints} endpoints): ${
          (err as Error).message
        }; agent log: ${log.samples.slice(0, 3).join(" | ")}`,
    );
    await host.readPeak(true);
    return { agent, calls: callDelta(before, await host.callCounts()), convergeMs: NaN };
  }
  const cpu1 = host.cpu();
  const convergeMs = convergedAt - agent.startedAt;
  // Anything the agent does after convergence (it should do nothing) is counted too,
  // in its calls and in its peak memory.
  await host.waitQuiet(300, 30_000);
  const agentPeak = await host.readPeak(true);
  const peak = agentPeak.hostPeak;
  const hnsAtEnd = (await host.hns()).heapBytes;
  const calls = callDelta(before, await host.callCounts());
  const cpu = cpuDelta(cpu0, cpu1);
  const writes = writeCalls(calls);
  const firstSync = agent.syncs.find((s) => s.kind === "start");
  const targeted = spec.services >= 10_000 && opts.targets !== false;

  result.figures.push(
    {
      name: `${label} time to converge`,
      value: convergeMs,
      unit: "ms",
      // Issue 15: under 3 s at 0 ms per HNS call on 2 cores (issue 7 asked for 10 s).
      target: targeted ? { op: "<", value: 3_000 } : undefined,
      note: "startAgent → HNS holds every expected LB and endpoint",
    },
    {
      name: `${label} HNS writes`,
      value: writes,
      unit: "calls",
      target: { op: "==", value: expected.minimumColdWrites },
      note:
        `minimum = ${expected.loadBalancers} LB creates + ${expected.remoteEndpoints} endpoint creates`,
    },
    { name: `${label} HNS calls (all)`, value: sumCalls(calls), unit: "calls" },
    {
      name: `${label} CPU, whole process`,
      value: cpu.processMs,
      unit: "ms",
      note: "the agent host process, all threads: agent JS, HNS threads running the emulated " +
        "HNS, GC (/proc/<pid>/stat, 10 ms ticks)",
    },
    { name: `${label} CPU, main JS thread`, value: cpu.mainThreadMs, unit: "ms" },
    {
      name: `${label} peak RSS`,
      value: mib(peak),
      unit: "MiB",
      target: targeted ? { op: "<", value: 300 } : undefined,
      note: `the agent host process, the emulated HNS's objects included; ${
        mib(idle.rss)
      } MiB before the agent started`,
    },
    {
      name: `${label} peak RSS without the emulated HNS`,
      value: mib(agentPeak.agent),
      unit: "MiB",
      target: targeted ? { op: "<", value: 150 } : undefined,
      note: `the highest of the agent host's RSS minus what the emulated HNS held on its heap ` +
        `at the same moment (HnsEmuHeapBytes, every 50 ms): ${mib(agentPeak.rss)} − ${
          mib(agentPeak.emu)
        } MiB (the host's peak less what the emulated HNS held at convergence: ${
          mib(peak - hnsAtEnd)
        } MiB); ${pairingNote(agentPeak)}; the host alone held ${
          mib(idle.rss - idle.emulatorHeap)
        } MiB before the agent started (Deno runtime and loaded code)`,
    },
    {
      name: `${label} agent host RSS before the agent started`,
      value: mib(idle.rss),
      unit: "MiB",
      note: `Deno runtime, the agent's loaded code, and the emulated HNS holding the network ` +
        `and ${expected.localEndpoints} CNI endpoints (${
          mib(idle.emulatorHeap)
        } MiB HnsEmuHeapBytes, its reserve for the creates included); after a GC`,
    },
  );
  if (firstSync) {
    result.figures.push({
      name: `${label} first sync (read HNS, plan, apply)`,
      value: firstSync.ms,
      unit: "ms",
    });
  }
  result.tables.push({
    title: `${label} HNS calls by C function`,
    header: ["function", "calls", "per LB", "per remote endpoint"],
    rows: Object.entries(calls).sort(([a], [b]) => a.localeCompare(b)).map(([fn, n]) => [
      fn,
      n,
      round2(n / expected.loadBalancers),
      round2(n / expected.remoteEndpoints),
    ]),
  });
  const log = await host.log();
  if (log.errors > 0) {
    result.notes.push(`${label}: the agent logged ${log.errors} errors, e.g. ${log.samples[0]}`);
  }
  if (opts.breakdown) {
    await memoryBreakdown(host, result, label, "cold start", idle, opts.heapSnapshot === true);
  }
  if (opts.verify !== false) await verifyContent(host, spec, expected, result, label);
  return { agent, calls, convergeMs, peak: agentPeak };
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

function sumCalls(calls: CallCounts): number {
  return Object.values(calls).reduce((a, b) => a + b, 0);
}

/**
 * Read HNS back (in the host, outside the measured window) and check that
 * every expected LB exists once with all the service's backends, and that
 * every remote endpoint exists. A mismatch is a correctness failure.
 */
export async function verifyContent(
  host: AgentHost,
  spec: ScenarioSpec,
  expected: ExpectedHns,
  result: ScenarioResult,
  label: string,
  extraBackends: ReadonlyMap<number, number> = new Map(),
): Promise<void> {
  result.failures.push(...await host.verify(spec, expected, label, extraBackends));
}
