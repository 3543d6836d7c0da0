/**
 * Scenarios 1–4 and 7 on one generated cluster, the agent in one agent host
 * process (bench/agent_host.ts): cold start (1), endpoint additions one at a
 * time (2), a restart with the cluster unchanged (3), periodic resyncs (4),
 * and kube-proxy's modelled calls for the same work (7). The phases share
 * the converged HNS, as on a node; the restart runs in a fresh host handed
 * that HNS, as a restarted agent is a new process on a node.
 *
 * @module
 */

import { summarizeCalls } from "../lib/demo/calls.ts";
import { AgentHost, type BenchAgent } from "./agent_host.ts";
import { ApiServerProcess } from "./apiserver.ts";
import { coldStart, verifyContent } from "./cold_start.ts";
import {
  type CallCounts,
  callDelta,
  emulatorReserveBytes,
  totalCalls,
  writeCalls,
} from "./emulator.ts";
import { sleep, type SyncRecord, waitUntil, withTimeout } from "./harness.ts";
import { kubeProxyModelCalls } from "./kube_proxy.ts";
import { LatencyTracker } from "./latency.ts";
import { memoryBreakdown } from "./memory_breakdown.ts";
import type { EnumerateSpan } from "./probe.ts";
import {
  cpuDelta,
  liveThreadsCpuMs,
  mainThreadSchedMs,
  mib,
  now,
  otherThreadsCpuMs,
} from "./procstat.ts";
import { type Figure, newResult, percentile, type ScenarioResult } from "./results.ts";
import { expectedHns, issueSpec, nodePortOf, type ScenarioSpec } from "./scenario.ts";
import { prng } from "../tests/prng.ts";
import { OwnershipRecord } from "../lib/proxy/ownership.ts";

/** Parameters of {@link runCluster}. */
export interface ClusterParams {
  /** Number of services. */
  services: number;
  /** Endpoint additions in phase 2 (0 skips phases 2). */
  changes: number;
  /** Resyncs to observe in phase 4 (0 skips phases 3 and 4). */
  resyncs: number;
  /** The restarted agent's `--sync-period`, ms (short, so resyncs come quickly). */
  resyncPeriodMs: number;
  /**
   * The first agent's `--sync-period`, ms (default 10 s): its periodic resyncs run among the
   * incremental changes, whose latency includes them.
   */
  syncPeriodMs?: number;
  /** Give up on convergence after this long, ms. */
  timeoutMs: number;
  /**
   * Summarise a heap snapshot of the agent after the cold start and the
   * restart (seconds at 10,000 services; the memory breakdown is always there).
   */
  heapSnapshot?: boolean;
}

/** hnsproxy's measured calls per scenario, for the side-by-side table. */
type Measured = Partial<Record<"cold" | "incremental" | "restart" | "periodic", CallCounts>>;

/** Run the phases; see the module notes. */
export async function runCluster(p: ClusterParams): Promise<ScenarioResult[]> {
  const spec = issueSpec(p.services);
  const n = p.services.toLocaleString("en-US");
  const label = `${n} services:`;
  let host = await AgentHost.start();
  const dir = await Deno.makeTempDir({ prefix: "hnsbench-" });
  const stateFile = `${dir}/state.json`;
  const api = ApiServerProcess.start();
  const results: ScenarioResult[] = [];
  try {
    await host.seed(spec);
    const { url } = await api.seed(spec);

    const cold = newResult(`cold-${p.services}`, `1. Cold start, ${n} services`);
    results.push(cold);
    let t = performance.now();
    // `agent` is the only reference to the running agent: cleared before the
    // restart so that the stopped agent's heap is not counted against the new one.
    let agent: BenchAgent | undefined;
    let coldCalls: CallCounts;
    ({ agent, calls: coldCalls } = await coldStart(
      {
        spec,
        api,
        apiUrl: url,
        host,
        stateFile,
        timeoutMs: p.timeoutMs,
        label,
        syncPeriodMs: p.syncPeriodMs ?? 10_000,
        breakdown: true,
        heapSnapshot: p.heapSnapshot,
      },
      cold,
    ));
    cold.wallMs = performance.now() - t;
    const model = kubeProxyModelCalls(spec);
    if (cold.failures.length > 0) {
      await agent.stop();
      return results;
    }

    const measured: Measured = { cold: coldCalls };
    const extras = new Map<number, number>();
    if (p.changes > 0) {
      const inc = newResult(`incremental-${p.services}`, `2. Incremental change, ${n} services`);
      results.push(inc);
      t = performance.now();
      await incremental(spec, api, host, agent, p.changes, inc, label, extras, measured);
      inc.wallMs = performance.now() - t;
      inc.tables.push(sideBySide("kube-proxy (model) for one endpoint added", [
        ["ClusterIP-only service, LBs re-created", model.incremental],
        ["ClusterIP-only service, LBs modified in place", model.incrementalModify],
        ["NodePort service, LBs re-created", model.incrementalNodePort],
      ]));
    }

    if (p.resyncs > 0) {
      const restart = newResult(`restart-${p.services}`, `3. Restart, ${n} services unchanged`);
      results.push(restart);
      t = performance.now();
      await agent.stop();
      agent = undefined;
      // A restart on a node is a new process over HNS as it was: a fresh host gets the HNS.
      host = await host.handOver();
      // What the changes and the cold agent's resyncs left in the API server's heap.
      await api.collectGarbage();
      const restarted = await restartAgent(
        spec,
        url,
        host,
        stateFile,
        p,
        restart,
        label,
        extras,
      );
      agent = restarted.agent;
      measured.restart = restarted.calls;
      restart.wallMs = performance.now() - t;
      restart.tables.push(sideBySide("kube-proxy (model) restart", [["restart", model.restart]]));

      const resync = newResult(`resync-${p.services}`, `4. Periodic resync, ${n} services`);
      results.push(resync);
      t = performance.now();
      await resyncs(host, agent, p, resync, label, measured);
      resync.wallMs = performance.now() - t;
      resync.tables.push(
        sideBySide("kube-proxy (model) periodic sync", [["periodic", model.periodic]]),
      );
    }

    const kp = newResult(`kube-proxy-${p.services}`, `7. kube-proxy's calls, ${n} services`);
    results.push(kp);
    kp.tables.push(sideBySide(`kube-proxy (model), ${n} services`, [
      ["cold start", model.coldStart],
      ["one endpoint added (ClusterIP service)", model.incremental],
      ["one endpoint added, in-place LB update", model.incrementalModify],
      ["one endpoint added (NodePort service)", model.incrementalNodePort],
      ["periodic sync", model.periodic],
      ["restart, nothing changed", model.restart],
    ]));
    kp.tables.unshift(compare(`hnsproxy (measured) and kube-proxy (model), ${n} services`, [
      ["cold start", measured.cold, model.coldStart],
      ["one endpoint added to a ClusterIP service", measured.incremental, model.incremental],
      ["periodic resync", measured.periodic, model.periodic],
      ["restart, nothing changed", measured.restart, model.restart],
    ]));
    kp.figures.push(
      {
        name: `${label} kube-proxy cold start, HNS calls`,
        value: totalCalls(model.coldStart),
        unit: "calls",
      },
      {
        name: `${label} kube-proxy periodic sync, HNS calls`,
        value: totalCalls(model.periodic),
        unit: "calls",
      },
      {
        name: `${label} kube-proxy restart, HNS writes`,
        value: summarizeCalls(model.restart).writes,
        unit: "calls",
      },
    );
    await agent?.stop();

    // The emulator's own counters at the end: the pages it holds (subtracted from the host's RSS)
    // and what its blocks in use take; its reset frees the blocks and keeps the pages for reuse.
    const hnsEnd = await host.hns();
    await host.reset();
    const freed = hnsEnd.heapInUse - (await host.hns()).heapInUse;
    cold.notes.push(
      `${label} the emulated HNS held ${mib(hnsEnd.heapBytes)} MiB of pages of its own at the ` +
        `end, ${mib(hnsEnd.heapInUse)} MiB of them asked for by its blocks in use; its reset ` +
        `freed ${mib(freed)} MiB of blocks (its pages stay, for reuse)`,
    );
    return results;
  } finally {
    await host.close();
    await api.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** A table of calls per scenario: total, writes, reads. */
function sideBySide(title: string, rows: [string, CallCounts][]) {
  return {
    title,
    header: ["scenario", "HNS calls", "writes", "reads", "by function"],
    rows: rows.map(([name, calls]) => {
      const s = summarizeCalls(calls);
      return [name, s.total, s.writes, s.reads, describeCalls(calls)];
    }),
  };
}

/** hnsproxy's measured calls next to kube-proxy's modelled ones. */
function compare(title: string, rows: [string, CallCounts | undefined, CallCounts][]) {
  return {
    title,
    header: [
      "scenario",
      "hnsproxy calls",
      "hnsproxy writes",
      "kube-proxy calls",
      "kube-proxy writes",
      "calls saved",
    ],
    rows: rows.filter(([, m]) => m !== undefined).map(([name, m, k]) => {
      const a = summarizeCalls(m!);
      const b = summarizeCalls(k);
      const saved = b.total > 0 ? `${((1 - a.total / b.total) * 100).toFixed(1)}%` : "";
      return [name, a.total, a.writes, b.total, b.writes, saved];
    }),
  };
}

/** `HcnCreateEndpoint 1, HcnModifyLoadBalancer 1` — short function names, sorted. */
export function describeCalls(calls: CallCounts): string {
  return Object.entries(calls).sort(([a], [b]) => a.localeCompare(b))
    .map(([fn, c]) => `${fn.replace(/^Hcn/, "")} ${c}`).join(", ");
}

/** Phase 2: add one endpoint to `changes` different services, one at a time. */
async function incremental(
  spec: ScenarioSpec,
  api: ApiServerProcess,
  host: AgentHost,
  agent: BenchAgent,
  changes: number,
  result: ScenarioResult,
  label: string,
  extras: Map<number, number>,
  measured: Measured,
): Promise<void> {
  // A full GC in the host now, at a known time: it lines the host's `--trace-gc` output (ms
  // since its isolate began, HNSBENCH_HOST_V8_FLAGS=--trace-gc) up with the slow changes' write
  // times (on the host's clock), to tell GC pauses among them.
  const hostMemory = await host.memory(true);
  const hostOrigin = hostMemory.at - hostMemory.uptimeMs;
  const minSync = agent.config.minSyncPeriodMs;
  // The forced GC (and the malloc trim with it) is the bench's own doing, which a node never
  // gets: its aftermath (concurrent sweeping, memory given back and faulted in again) settles
  // for as long as changes are spaced before the first one is written.
  const settledAt = now() + minSync;
  result.notes.push(
    `phase 2: a forced GC in the agent host (--trace-gc "testing") at ${
      hostMemory.uptimeMs.toFixed(0)
    } ms of the host's clock (its heap then ${mib(hostMemory.heapUsed)} MiB used); ` +
      `change times (@) below are on that clock; the first change is written ${minSync} ms ` +
      `after it (the bench's GC is not the agent's, and its aftermath is left to settle)`,
  );
  const tracker = await LatencyTracker.attach(spec, host);
  const listsBefore = (await api.stats()).lists;
  const random = prng(7);
  /** Per change, from the API server's write of the slice (the watch event) until programmed. */
  const latencies: number[] = [];
  /** Per change, from the bench's command to the API server process until programmed. */
  const commandLatencies: number[] = [];
  /** When the API server wrote each change's slice (the bench's clock). */
  const eventAts: number[] = [];
  const perChange: { calls: CallCounts; lbs: number; resynced: boolean; syncMs: number }[] = [];
  const chosen = new Set<number>();
  const listings: EnumerateSpan[] = [];
  await host.onListing((span) => listings.push(span));
  const arrivals: Arrival[] = [];
  for (let k = 0; k < changes; k++) {
    let i: number;
    do i = Math.floor(random() * spec.services); while (chosen.has(i));
    chosen.add(i);
    // An isolated change: the runner may run at once (minSyncPeriod since the last sync).
    const last = agent.syncs[agent.syncs.length - 1];
    const freeAt = Math.max((last?.startedAt ?? 0) + minSync + 20, settledAt);
    if (now() < freeAt) await sleep(freeAt - now());
    const before = await host.callCounts();
    const cpuBefore = liveThreadsCpuMs(host.pid);
    const mainBefore = mainThreadSchedMs(host.pid);
    const othersBefore = otherThreadsCpuMs(host.pid);
    const writtenAt = now();
    const done = tracker.track(i, writtenAt, spec.endpointsPerService + 1);
    const written = await api.addEndpointTimed(i);
    extras.set(i, 1);
    const ms = await withTimeout(done, 15_000);
    if (Number.isNaN(ms)) {
      result.failures.push(`${label} change ${k} (service ${i}) not programmed within 15 s`);
      return;
    }
    latencies.push(ms - (written.writtenAt - writtenAt));
    commandLatencies.push(ms);
    eventAts.push(written.writtenAt);
    const mainAfter = mainThreadSchedMs(host.pid);
    arrivals.push({
      writtenAt,
      ms,
      apiTakenMs: written.takenAt - writtenAt,
      apiWrittenMs: written.writtenAt - writtenAt,
      cpuMs: liveThreadsCpuMs(host.pid) - cpuBefore,
      mainCpuMs: mainAfter.cpuMs - mainBefore.cpuMs,
      mainWaitMs: mainAfter.waitMs - mainBefore.waitMs,
      others: [...otherThreadsCpuMs(host.pid)]
        .map(([name, ms]): [string, number] => [name, ms - (othersBefore.get(name) ?? 0)])
        .filter(([, ms]) => ms >= 1)
        .sort((a, b) => b[1] - a[1]),
    });
    await waitUntil(() => agent.syncs.some((s) => s.startedAt > writtenAt), 15_000, "sync end");
    const sync = agent.syncs.find((s) => s.startedAt > writtenAt)!;
    perChange.push({
      calls: callDelta(before, await host.callCounts()),
      lbs: nodePortOf(spec, i) !== undefined ? 2 : 1,
      resynced: sync.resynced,
      syncMs: sync.ms,
    });
  }
  // The API server keeps quiet watches alive with bookmarks, as a real one does: a list now
  // is a relist of a whole resource, which a node never needs between two config syncs.
  const relists = (await api.stats()).lists - listsBefore;
  if (relists > 0) {
    result.failures.push(
      `${label}: the agent listed ${relists} times during the changes: it relisted a resource ` +
        `whose watch the API server kept alive`,
    );
  }
  result.notes.push(`phase 2: API lists during the changes: ${relists}`);
  // Changes that came within minSyncPeriod after a periodic resync started wait for the runner.
  const resyncStarts = agent.syncs.filter((s) => s.resynced).map((s) => s.startedAt);
  const held = eventAts.map((w) => resyncStarts.some((r) => r <= w && w - r < minSync));
  const free = latencies.filter((_, k) => !held[k]);
  const quiet = perChange.filter((c) => !c.resynced);
  const totals = quiet.map((c) => totalCalls(c.calls));
  const writes = perChange.map((c) => writeCalls(c.calls));
  const overMin = perChange.filter((c) => writeCalls(c.calls) > 1 + c.lbs).length;
  const figures: Figure[] = [
    {
      name: `${label} event-to-HNS latency p50`,
      value: percentile(latencies, 50),
      unit: "ms",
      note: `${changes} changes; the API server's write of the slice (its watch event) → ` +
        `last LB of the service written`,
    },
    {
      name: `${label} event-to-HNS latency p99`,
      value: percentile(latencies, 99),
      unit: "ms",
      target: { op: "<", value: 20 },
      note: `--sync-period ${agent.config.syncPeriodMs} ms: periodic resyncs included`,
    },
    { name: `${label} event-to-HNS latency p99.9`, value: percentile(latencies, 99.9), unit: "ms" },
    { name: `${label} event-to-HNS latency max`, value: Math.max(...latencies), unit: "ms" },
    {
      name: `${label} latency p99 from the bench's command`,
      value: percentile(commandLatencies, 99),
      unit: "ms",
      note: "from the bench's command to the API server process (a pipe to another process " +
        `and its event loop: median ${
          percentile(arrivals.map((a) => a.apiWrittenMs), 50).toFixed(1)
        } ms until written) → last LB written`,
    },
    {
      name: `${label} latency p99, changes not held by a resync`,
      value: percentile(free, 99),
      unit: "ms",
      note: `${held.filter(Boolean).length} of ${changes} changes arrived less than ` +
        `minSyncPeriod (${minSync} ms) after a periodic resync began and are left out here`,
    },
    {
      name: `${label} HNS calls per change (median)`,
      value: percentile(totals, 50),
      unit: "calls",
      note: `max ${Math.max(...totals)}; changes whose sync also resynced left out (${
        perChange.length - quiet.length
      })`,
    },
    {
      name: `${label} HNS writes per change (max)`,
      value: Math.max(...writes),
      unit: "calls",
      note:
        `minimum 1 endpoint create + 1 LB update per LB of the service; ${overMin} changes above it`,
    },
    {
      name: `${label} sync duration per change (median)`,
      value: percentile(perChange.map((c) => c.syncMs), 50),
      unit: "ms",
    },
  ];
  result.figures.push(...figures);
  await host.onListing(undefined);
  result.tables.push(slowChanges(arrivals, agent, listings, hostOrigin));
  const examples = new Map<string, number>();
  for (const c of quiet) {
    const key = describeCallsKey(c.calls);
    examples.set(key, (examples.get(key) ?? 0) + 1);
  }
  // The typical change of a ClusterIP-only service, for the side-by-side table.
  const typical = new Map<string, { calls: CallCounts; n: number }>();
  for (const c of quiet.filter((c) => c.lbs === 1)) {
    const key = describeCallsKey(c.calls);
    const t = typical.get(key) ?? { calls: c.calls, n: 0 };
    t.n++;
    typical.set(key, t);
  }
  measured.incremental = [...typical.values()].sort((a, b) => b.n - a.n)[0]?.calls;
  result.tables.push({
    title: `${label} HNS calls of one change (how many changes made exactly these calls)`,
    header: ["calls", "changes"],
    rows: [...examples].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, v]),
  });
  await host.onLbWrite(undefined);
}

/** One change of phase 2: when it was written, its latency, and the CPU time used meanwhile. */
interface Arrival {
  writtenAt: number;
  ms: number;
  /** From the bench's command (`writtenAt`) until the API server process took it. */
  apiTakenMs: number;
  /** From the bench's command until that process had written the slice (its watch event). */
  apiWrittenMs: number;
  /** CPU time the agent host (all its threads) used from the write until programmed. */
  cpuMs: number;
  /** CPU time of the agent host's main thread (the agent's JavaScript) meanwhile. */
  mainCpuMs: number;
  /** Time the main thread waited for a CPU while runnable meanwhile (the machine's load). */
  mainWaitMs: number;
  /** CPU time of the other threads meanwhile, by thread name (1 ms or more), most first. */
  others: [string, number][];
}

/**
 * The slowest changes and the first three after the start (code that runs for
 * the first time), each with what it waited for: the CPU time the agent host
 * process used meanwhile (far below the latency: it waited for a CPU, not for
 * its own work), its main thread's share and the time that thread waited for
 * a CPU, when the API server process took the command and when it had
 * written the slice and queued its watch events (its own delays: the pipe,
 * its event loop, its garbage collection), the time from the command to the
 * start of the run that programmed it (watch delivery and the runner), that
 * run's duration and kind, the runs that were in flight when it arrived, and
 * whether a listing's Enumerate ended within 50 ms before the run (its
 * decoding then ran on this thread).
 */
function slowChanges(
  arrivals: Arrival[],
  agent: BenchAgent,
  spans: readonly EnumerateSpan[],
  hostOrigin: number,
): { title: string; header: string[]; rows: (string | number)[][] } {
  const indexed = arrivals.map((a, k) => ({ ...a, k }));
  const slow = indexed.toSorted((a, b) => b.ms - a.ms).slice(0, 8);
  for (const first of indexed.slice(0, 3)) if (!slow.includes(first)) slow.push(first);
  const f = (x: number) => x.toFixed(1);
  const rows = slow.map((
    { writtenAt, ms, k, cpuMs, mainCpuMs, mainWaitMs, others, apiTakenMs, apiWrittenMs },
  ) => {
    const end = writtenAt + ms;
    const run = agent.syncs.find((s) => s.startedAt > writtenAt && s.startedAt < end);
    const busy = agent.syncs.filter((s) =>
      s.startedAt <= writtenAt && s.startedAt + s.ms > writtenAt
    );
    const decoded = spans.filter((e) => e.endedAt > writtenAt - 50 && e.endedAt < end);
    return [
      `${k} @${(writtenAt - hostOrigin).toFixed(0)}`,
      f(ms),
      f(cpuMs),
      `${f(mainCpuMs)} / ${f(mainWaitMs)}`,
      others.map(([name, ms]) => `${name} ${f(ms)}`).join(", ") || "-",
      `${f(apiTakenMs)} / ${f(apiWrittenMs)}`,
      run ? f(run.startedAt - writtenAt) : "-",
      run ? `${f(run.ms)} ${run.kind}${run.resynced ? " +resync" : ""}` : "-",
      busy.map((s) => `${s.kind}${s.resynced ? "+resync" : ""} ${f(s.ms)}`).join(", ") || "-",
      decoded.map((e) => `${e.kind} ended ${f(e.endedAt - writtenAt)}`).join(", ") || "-",
    ];
  });
  return {
    title: "Slowest changes, then the first three if not among them: what each waited for " +
      "(ms; times relative to the bench's command to the API server process; latency from it)",
    header: [
      "change @write",
      "latency",
      "CPU used",
      "main thread CPU / waited for a CPU",
      "other threads' CPU",
      "API server took / wrote it",
      "run began",
      "its run",
      "runs in flight at the write",
      "listings",
    ],
    rows,
  };
}

function describeCallsKey(calls: CallCounts): string {
  return describeCalls(calls) || "(none)";
}

/** A start run that built the state (not a fast start, which is ready before building it). */
function builtState(s: SyncRecord): boolean {
  return s.kind === "start" && s.startMode !== "fast";
}

/**
 * Phase 3: start the agent again over the same HNS and cluster, in `host`,
 * a fresh host that was handed the HNS the stopped agent left.
 */
async function restartAgent(
  spec: ScenarioSpec,
  url: string,
  host: AgentHost,
  stateFile: string,
  p: ClusterParams,
  result: ScenarioResult,
  label: string,
  extras: ReadonlyMap<number, number>,
): Promise<{ agent: BenchAgent; calls: CallCounts }> {
  // What HNS holds that hnsproxy does not own: all a restart with an intact record reads.
  const owned = (await OwnershipRecord.load(stateFile)).size;
  const held = await host.hns();
  const unowned = held.endpoints + held.loadBalancers - owned;
  // Room for the listings' buffers, so that the pages the emulated HNS holds do not move.
  await host.reserveEmulatorHeap(emulatorReserveBytes(0));
  const idle = await host.memory(true);
  host.resetPeakRss();
  const before = await host.callCounts();
  const cpuBefore = host.cpu();
  const { agent, readyAt } = await host.startAgentReady({
    apiUrl: url,
    stateFile,
    syncPeriodMs: p.resyncPeriodMs,
  }, p.timeoutMs);
  if (Number.isNaN(readyAt)) {
    result.failures.push(`${label} the restarted agent was not ready within ${p.timeoutMs} ms`);
    return { agent, calls: {} };
  }
  // Read as soon as ready is seen: CPU is less noisy than wall time on a shared machine.
  const cpuUntilReady = cpuDelta(cpuBefore, host.cpu());
  // A fast start is ready before it builds its state (the next start run does): the peak and
  // the calls count that build too.
  await waitUntil(() => agent.syncs.some(builtState), p.timeoutMs, "the state built", 10);
  const built = agent.syncs.find(builtState)!;
  const builtAt = built.startedAt + built.ms;
  await host.waitQuiet(300, 30_000);
  const peakRss = host.peakRss();
  const calls = callDelta(before, await host.callCounts());
  // The cluster is unchanged: the emulated HNS holds what it held before the restart.
  const hnsBytes = (await host.hns()).heapBytes;
  result.figures.push(
    {
      name: `${label} HNS writes at restart`,
      value: writeCalls(calls),
      unit: "calls",
      target: { op: "==", value: 0 },
    },
    {
      name: `${label} time until ready`,
      value: readyAt - agent.startedAt,
      unit: "ms",
      target: spec.services >= 10_000 ? { op: "<", value: 1000 } : undefined,
      note: "startAgent → ready: HNS holds what the cluster asks for (a fast start: the " +
        "recorded synced inputs matched; otherwise the state built and programmed)",
    },
    {
      name: `${label} CPU until ready, main JS thread`,
      value: cpuUntilReady.mainThreadMs,
      unit: "ms",
      note:
        `whole process (HNS thread, GC and compiler threads included): ${cpuUntilReady.processMs} ms; /proc/<pid>/stat, 10 ms ticks, read when ready was seen`,
    },
    {
      name: `${label} time until the state is built`,
      value: builtAt - agent.startedAt,
      unit: "ms",
      note: agent.syncs[0]?.startMode === "fast"
        ? "a fast start: after ready, the desired state and the observed cache built from the " +
          "same read of HNS, before the first change's run"
        : "not a fast start: the state was built before ready",
    },
    {
      name: `${label} HNS calls at restart (all reads)`,
      value: totalCalls(calls),
      unit: "calls",
      target: { op: "<=", value: 3 * unowned + 10 },
      note: `3 × the ${unowned} HNS objects hnsproxy does not own + 10; ${owned} owned objects ` +
        "confirmed by the ID listings (intact ownership record)",
    },
    {
      name: `${label} peak RSS during restart`,
      value: mib(peakRss),
      unit: "MiB",
      note:
        `a fresh agent host process incl. the emulated HNS handed over from the first; before ` +
        `the restart: RSS ${mib(idle.rss)} MiB, heap after GC ${mib(idle.heapUsed)} MiB`,
    },
    {
      name: `${label} peak RSS during restart without the emulated HNS`,
      value: mib(peakRss - hnsBytes),
      unit: "MiB",
      target: spec.services >= 10_000 ? { op: "<", value: 150 } : undefined,
      note:
        `the agent host's peak minus the ${
          mib(hnsBytes)
        } MiB the emulated HNS holds (HnsEmuHeapBytes; ${
          hnsBytes === idle.emulatorHeap
            ? "the same before the restart: it held still in its reserve, so the pairing is exact"
            : `${mib(idle.emulatorHeap)} MiB before the restart: an estimate`
        }); ` +
        `${mib(idle.rss - idle.emulatorHeap)} MiB of the fresh host's RSS before the restart was ` +
        "not the emulated HNS (runtime and loaded code)",
    },
  );
  result.tables.push({
    title: `${label} HNS calls at restart by C function`,
    header: ["function", "calls"],
    rows: Object.entries(calls).sort(([a], [b]) => a.localeCompare(b)),
  });
  const expected = expectedHns(spec);
  expected.remoteEndpoints += [...extras.values()].reduce((a, b) => a + b, 0);
  expected.endpoints = expected.localEndpoints + expected.remoteEndpoints;
  await memoryBreakdown(host, result, label, "restart", idle, p.heapSnapshot === true);
  await verifyContent(host, spec, expected, result, label, extras);
  return { agent, calls };
}

/** Phase 4: watch `p.resyncs` periodic resyncs of the idle agent. */
async function resyncs(
  host: AgentHost,
  agent: BenchAgent,
  p: ClusterParams,
  result: ScenarioResult,
  label: string,
  measured: Measured,
): Promise<void> {
  const marks: { counts: CallCounts; ms: number }[] = [];
  await host.countsOnSync(true);
  agent.onSync = (s) => {
    if (s.resynced && s.calls) marks.push({ counts: s.calls, ms: s.ms });
  };
  try {
    await waitUntil(
      () => marks.length > p.resyncs,
      (p.resyncs + 2) * p.resyncPeriodMs + 10_000,
      "periodic resyncs",
      20,
    );
  } catch (err) {
    result.failures.push(`${label} ${(err as Error).message}`);
    return;
  } finally {
    agent.onSync = undefined;
    await host.countsOnSync(false);
  }
  const per = marks.slice(1).map((m, k) => callDelta(marks[k].counts, m.counts));
  const totals = per.map((c) => totalCalls(c));
  measured.periodic = per[totals.indexOf(Math.max(...totals))];
  result.figures.push(
    {
      name: `${label} HNS calls per resync (max)`,
      value: Math.max(...totals),
      unit: "calls",
      target: { op: "<=", value: 5 },
      note: `${per.length} resyncs, --sync-period ${p.resyncPeriodMs} ms, nothing changed`,
    },
    {
      name: `${label} HNS writes per resync (max)`,
      value: Math.max(...per.map((c) => writeCalls(c))),
      unit: "calls",
    },
    {
      name: `${label} resync duration (median)`,
      value: percentile(marks.slice(1).map((m) => m.ms), 50),
      unit: "ms",
    },
  );
  result.tables.push({
    title: `${label} HNS calls of each resync`,
    header: ["resync", "calls"],
    rows: per.map((c, k) => [k + 1, describeCalls(c)]),
  });
}
