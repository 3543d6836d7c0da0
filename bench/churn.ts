/**
 * Scenario 5, churn: after a cold start, endpoint changes arrive at a fixed
 * rate (an endpoint added to a random service, and once a few seconds of
 * additions are outstanding, alternately the oldest one removed again, so
 * the cluster's size stays level). Measured: latency of every change,
 * backlog (changes written but not yet in HNS) sampled every 100 ms, HNS
 * calls per change, and memory of the agent host process (the agent and the
 * emulated HNS): the agent's heap after a forced GC at the start, middle and
 * end, RSS every second, and the agent's peak RSS without the emulated HNS
 * over the churn, the host's RSS paired with the emulated HNS's heap of the
 * same moment (bench/memory_peak.ts). The bench's own collections inside
 * the churn are left out of that peak and give no free native memory back
 * (a node's agent never does).
 *
 * An optional warm-up churns at the same rate before the measured window.
 * A JS Map's hash table doubles once when it first fills with live and
 * deleted entries while the deleted ones are under half of it (V8's
 * OrderedHashTable), and after that rehashes in place: the agent's maps
 * with tens of thousands of endpoint keys take that one step during the
 * first few thousand changes after a cold start. The warm-up keeps that
 * bounded step out of the growth figure, which then shows whether memory
 * keeps growing with changes; the step itself is reported beside it.
 *
 * @module
 */

import { AgentHost, type MemorySample } from "./agent_host.ts";
import { ApiServerProcess } from "./apiserver.ts";
import { coldStart, verifyContent } from "./cold_start.ts";
import { callDelta, totalCalls, writeCalls } from "./emulator.ts";
import { sleep, waitUntil } from "./harness.ts";
import { LatencyTracker } from "./latency.ts";
import { pairingNote } from "./memory_peak.ts";
import { cpuDelta, mib, now } from "./procstat.ts";
import { newResult, percentile, type ScenarioResult } from "./results.ts";
import { expectedHns, issueSpec } from "./scenario.ts";
import { prng } from "../tests/prng.ts";

/** Parameters of {@link runChurn}. */
export interface ChurnParams {
  /** Number of services. */
  services: number;
  /** Endpoint changes per second. */
  ratePerSecond: number;
  /** How long the churn lasts, seconds. */
  durationS: number;
  /** Give up on convergence after this long, ms. */
  timeoutMs: number;
  /** Agent `--sync-period`, ms (default: the agent's). */
  syncPeriodMs?: number;
  /** Seconds of churn at the same rate before the measured window (default 0). */
  warmupS?: number;
}

/** Where heap snapshots go, if HNSBENCH_HEAP_SNAPSHOTS names a directory (for diffing). */
const SNAPSHOT_DIR = Deno.env.get("HNSBENCH_HEAP_SNAPSHOTS");

/**
 * The agent's heap after a full GC in the host, bytes (`trim`: free native
 * memory given back too, which only the bench ever does); with
 * HNSBENCH_HEAP_SNAPSHOTS set, a heap snapshot `churn-<label>.heapsnapshot` too.
 */
async function heapAfterGc(host: AgentHost, label: string, trim = true): Promise<number> {
  const used = (await host.memory(true, trim)).heapUsed;
  if (SNAPSHOT_DIR) {
    await host.writeHeapSnapshot(`${SNAPSHOT_DIR}/churn-${label}.heapsnapshot`);
  }
  return used;
}

/** Run the churn; see the module notes. */
export async function runChurn(p: ChurnParams): Promise<ScenarioResult[]> {
  const spec = issueSpec(p.services);
  const n = p.services.toLocaleString("en-US");
  const label = `${n} services, ${p.ratePerSecond}/s for ${p.durationS} s:`;
  const result = newResult(`churn-${p.services}`, `5. Churn, ${n} services`);
  const started = performance.now();
  const host = await AgentHost.start();
  const api = ApiServerProcess.start();
  const dir = await Deno.makeTempDir({ prefix: "hnsbench-" });
  try {
    await host.seed(spec);
    const { url } = await api.seed(spec);
    const setup = newResult("setup", "setup");
    const { agent, peak: coldPeak } = await coldStart({
      spec,
      api,
      apiUrl: url,
      host,
      stateFile: `${dir}/state.json`,
      timeoutMs: p.timeoutMs,
      label: "setup",
      verify: false,
      syncPeriodMs: p.syncPeriodMs,
    }, setup);
    result.failures.push(...setup.failures);
    if (result.failures.length > 0) {
      await agent.stop();
      return [result];
    }
    await host.waitQuiet(300, 30_000);
    const coldHns = (await host.hns()).heapBytes;

    const tracker = await LatencyTracker.attach(spec, host);
    const random = prng(11);
    const counts = new Map<number, number>();
    const outstanding: number[] = [];
    const lag = p.ratePerSecond * 3;
    const warm = p.ratePerSecond * (p.warmupS ?? 0);
    const measured = p.ratePerSecond * p.durationS;
    const total = warm + measured;
    const latencies: number[] = [];
    const interval = 1000 / p.ratePerSecond;
    const backlog: number[] = [];
    const rss: { t: number; bytes: number }[] = [];
    const heapStart = await heapAfterGc(host, "start");
    const heap: number[] = warm > 0 ? [] : [heapStart];
    const memStart: MemorySample = await host.memory();
    let rssStart = host.rss();
    let syncsBefore = agent.syncs.length;
    let before = await host.callCounts();
    // The peak pairs the host's RSS with the emulated HNS's heap of the same moment; the bench's
    // own collections in the window (warm-up's end, middle) are left out of it.
    await host.startPeak();
    const t0 = performance.now();
    let measuredFrom = t0;
    let cpuFrom = host.cpu();
    const backlogTimer = setInterval(() => backlog.push(tracker.backlog), 100);
    const rssTimer = setInterval(
      () => rss.push({ t: performance.now() - t0, bytes: host.rss() }),
      1000,
    );
    let late = 0;
    try {
      for (let k = 0; k < total; k++) {
        const due = t0 + k * interval;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        else if (wait < -interval && k >= warm) late++;
        if (k === warm && warm > 0) {
          heap.push(await heapAfterGc(host, "warm", false));
          rssStart = host.rss();
          syncsBefore = agent.syncs.length;
          before = await host.callCounts();
          measuredFrom = performance.now();
          cpuFrom = host.cpu();
        }
        if (k === warm + Math.floor(measured / 2)) {
          heap.push(await heapAfterGc(host, "middle", false));
        }
        let i: number;
        let delta: number;
        if (outstanding.length >= lag && k % 2 === 1) {
          i = outstanding.shift()!;
          delta = -1;
        } else {
          i = Math.floor(random() * spec.services);
          outstanding.push(i);
          delta = 1;
        }
        const extra = (counts.get(i) ?? 0) + delta;
        counts.set(i, extra);
        const writtenAt = now();
        const tracked = tracker.track(i, writtenAt, spec.endpointsPerService + extra);
        if (k >= warm) void tracked.then((ms) => latencies.push(ms));
        if (delta > 0) await api.addEndpoint(i);
        else await api.removeEndpoint(i);
      }
    } finally {
      clearInterval(rssTimer);
    }
    const endedAt = now();
    const endedAtMono = performance.now();
    const cpu = cpuDelta(cpuFrom, host.cpu());
    const backlogAtEnd = tracker.backlog;
    let drainMs = NaN;
    try {
      drainMs = await waitUntil(() => tracker.backlog === 0, 30_000, "backlog drained", 5) -
        endedAt;
    } catch {
      result.failures.push(`${label} ${tracker.abandon()} changes never reached HNS`);
    }
    clearInterval(backlogTimer);
    await host.waitQuiet(300, 30_000);
    await host.onLbWrite(undefined);
    const churnPeak = await host.readPeak(true);
    const calls = callDelta(before, await host.callCounts());
    heap.push(await heapAfterGc(host, "end", false));
    const memEnd = await host.memory();
    const rssEnd = memEnd.rss;
    const syncs = agent.syncs.slice(syncsBefore);
    const rssPeak = Math.max(rssStart, rssEnd, ...rss.map((s) => s.bytes));
    // Without a warm-up, from the middle: by then the outstanding additions (3 s worth) are in
    // place on both sides. After a warm-up they are from the start of the measured window.
    const from = warm > 0 ? "start" : "middle";
    const heapGrowth = mib(heap[2] - heap[warm > 0 ? 0 : 1]);
    result.figures.push(
      {
        name: `${label} changes made`,
        value: measured,
        unit: "changes",
        note: `at ${(measured / ((endedAtMono - measuredFrom) / 1000)).toFixed(1)}/s achieved; ` +
          `${late} sent late` + (warm > 0 ? `; after ${warm} changes of warm-up` : ""),
      },
      { name: `${label} latency p50`, value: percentile(latencies, 50), unit: "ms" },
      {
        name: `${label} latency p99`,
        value: percentile(latencies, 99),
        unit: "ms",
        note: `minSyncPeriod ${agent.config.minSyncPeriodMs} ms batches changes`,
      },
      { name: `${label} latency max`, value: Math.max(...latencies), unit: "ms" },
      { name: `${label} backlog max`, value: Math.max(0, ...backlog), unit: "changes" },
      {
        name: `${label} backlog at the end`,
        value: backlogAtEnd,
        unit: "changes",
        note: `drained ${Number.isFinite(drainMs) ? Math.round(drainMs) : "never"} ms later`,
      },
      {
        name: `${label} CPU of the agent host's main thread`,
        value: cpu.mainThreadMs / ((endedAtMono - measuredFrom) / 1000),
        unit: "ms/s",
        note: `over the measured window; the whole process ${
          Math.round(cpu.processMs / ((endedAtMono - measuredFrom) / 1000))
        } ms/s (the emulated HNS's calls included)`,
      },
      {
        name: `${label} syncs`,
        value: syncs.length,
        unit: "syncs",
        note: `median ${Math.round(percentile(syncs.map((s) => s.ms), 50))} ms, max ${
          Math.round(Math.max(0, ...syncs.map((s) => s.ms)))
        } ms`,
      },
      {
        name: `${label} HNS calls per change`,
        value: totalCalls(calls) / measured,
        unit: "calls",
      },
      {
        name: `${label} HNS writes per change`,
        value: writeCalls(calls) / measured,
        unit: "calls",
      },
      {
        name: `${label} heap growth after GC, ${from} to end`,
        value: heapGrowth,
        unit: "MiB",
        target: { op: "<", value: 5 },
        note: `heap after GC at start / middle / end: ${heap.map((h) => mib(h)).join(" / ")} MiB`,
      },
    );
    if (warm > 0) {
      result.figures.push({
        name: `${label} heap growth after GC during the ${p.warmupS} s warm-up`,
        value: mib(heap[0] - heapStart),
        unit: "MiB",
        note: `${mib(heapStart)} → ${mib(heap[0])} MiB: the one-time doubling of the hash tables ` +
          "of the maps keyed by endpoint (module notes)",
      });
    }
    result.figures.push(
      {
        name: `${label} RSS growth, start to end`,
        value: mib(rssEnd - rssStart),
        unit: "MiB",
        note: `RSS after a GC ${mib(rssStart)} → ${mib(rssEnd)} MiB, highest 1 s sample ` +
          `${mib(rssPeak)} MiB (the agent host, incl. the emulated HNS); V8 heap committed ${
            mib(memStart.heapTotal)
          } → ` +
          `${mib(memEnd.heapTotal)} MiB, native malloc in use ${mib(memStart.mallocInUse)} → ${
            mib(memEnd.mallocInUse)
          } MiB`,
      },
    );
    result.figures.push({
      name: `${label} peak RSS without the emulated HNS`,
      value: mib(churnPeak.agent),
      unit: "MiB",
      target: spec.services >= 10_000 ? { op: "<", value: 150 } : undefined,
      note: `over the churn (warm-up included), the highest of the agent host's RSS minus what ` +
        `the emulated HNS held at the same moment (HnsEmuHeapBytes, every 50 ms): ` +
        `${mib(churnPeak.rss)} − ${mib(churnPeak.emu)} MiB; the host's own peak ${
          mib(churnPeak.hostPeak)
        } MiB (less the emulated HNS at the end: ${
          mib(churnPeak.hostPeak - memEnd.emulatorHeap)
        } MiB), the emulated HNS ${mib(coldHns)} → ${mib(memEnd.emulatorHeap)} MiB; ${
          pairingNote(churnPeak)
        }`,
    }, {
      name: `${label} peak RSS without the emulated HNS at the cold start before the churn`,
      value: mib(coldPeak?.agent ?? NaN),
      unit: "MiB",
      note: `${mib(coldPeak?.rss ?? NaN)} − ${mib(coldPeak?.emu ?? NaN)} MiB, paired as ` +
        "the churn's; the cold start's own scenario has this figure's target",
    });
    await agent.stop();
    const extras = new Map([...counts].filter(([, c]) => c !== 0));
    const expected = expectedHns(spec);
    // Endpoints removed again are deleted only if no other LB uses them; each is unique here.
    expected.remoteEndpoints += [...extras.values()].reduce((a, b) => a + b, 0);
    expected.endpoints = expected.localEndpoints + expected.remoteEndpoints;
    await verifyContent(host, spec, expected, result, label, extras);
  } finally {
    await host.close();
    await api.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  result.wallMs = performance.now() - started;
  return [result];
}
