/**
 * Scenario 1, cold start: the cluster is in the API server, HNS holds only
 * the network and the CNI's local endpoints, and the agent starts. Measured:
 * time until HNS holds exactly the expected objects, HNS calls by C function
 * against the minimum (one create per LB and per remote endpoint), CPU of
 * the process and of its main thread, peak RSS, and that the content is
 * right (every LB with its VIP/port and all its backends).
 *
 * @module
 */

import { createHnsClient } from "../lib/hns/client.ts";
import { openFfiHcnApi } from "../lib/hns/ffi.ts";
import type { ApiServerProcess } from "./apiserver.ts";
import { type CallCounts, callDelta, type Emulator, writeCalls } from "./emulator.ts";
import {
  type BenchAgent,
  converged,
  hnsCounts,
  startBenchAgent,
  waitQuiet,
  waitUntil,
} from "./harness.ts";
import { lbIdentity } from "./probe.ts";
import {
  collectGarbage,
  cpuDelta,
  cpuTimes,
  mib,
  peakRssBytes,
  resetPeakRss,
  rssBytes,
} from "./procstat.ts";
import type { ScenarioResult } from "./results.ts";
import {
  clusterIpOf,
  endpointsOf,
  type ExpectedHns,
  expectedHns,
  nodePortOf,
  type ScenarioSpec,
  SERVICE_PORT,
} from "./scenario.ts";

/** Options of {@link coldStart}. */
export interface ColdStartOptions {
  /** The cluster. */
  spec: ScenarioSpec;
  /** The API server process, seeded with `spec`. */
  api: ApiServerProcess;
  /** Base URL of the API server. */
  apiUrl: string;
  /** The emulator, holding the network and the local endpoints. */
  emulator: Emulator;
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
}

/** What {@link coldStart} leaves running for the next phases. */
export interface ColdStartOutcome {
  /** The agent, converged. */
  agent: BenchAgent;
  /** HNS calls of the cold start by function. */
  calls: CallCounts;
  /** Time to converge, ms. */
  convergeMs: number;
}

/** Run a cold start and add its figures to `result`; the agent is left running. */
export async function coldStart(
  opts: ColdStartOptions,
  result: ScenarioResult,
): Promise<ColdStartOutcome> {
  const { spec, emulator, label } = opts;
  const expected = expectedHns(spec);
  collectGarbage();
  const rssBefore = rssBytes();
  resetPeakRss();
  const before = emulator.callCounts();
  const cpu0 = cpuTimes();
  const agent = await startBenchAgent({
    apiUrl: opts.apiUrl,
    emulator,
    stateFile: opts.stateFile,
    hnsConcurrency: opts.hnsConcurrency,
    syncPeriodMs: opts.syncPeriodMs,
  });
  let convergedAt: number;
  try {
    convergedAt = await waitUntil(
      () => converged(emulator, expected),
      opts.timeoutMs,
      "convergence",
    );
  } catch (err) {
    result.failures.push(
      `${label} did not converge within ${opts.timeoutMs} ms (${hnsCounts(emulator)}; expected ` +
        `${expected.loadBalancers} load balancers, ${expected.endpoints} endpoints): ${
          (err as Error).message
        }; agent log: ${agent.logger.samples.slice(0, 3).join(" | ")}`,
    );
    return { agent, calls: callDelta(before, emulator.callCounts()), convergeMs: NaN };
  }
  const cpu1 = cpuTimes();
  const peak = peakRssBytes();
  const convergeMs = convergedAt - agent.startedAt;
  // Anything the agent does after convergence (it should do nothing) is counted too.
  await waitQuiet(emulator, 300, 30_000);
  const calls = callDelta(before, emulator.callCounts());
  const cpu = cpuDelta(cpu0, cpu1);
  const writes = writeCalls(calls);
  const firstSync = agent.syncs.find((s) => s.kind === "start");

  result.figures.push(
    {
      name: `${label} time to converge`,
      value: convergeMs,
      unit: "ms",
      target: spec.services >= 10_000 ? { op: "<", value: 10_000 } : undefined,
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
      note: "all threads: agent JS, FFI worker threads running the emulated HNS, GC",
    },
    { name: `${label} CPU, main JS thread`, value: cpu.mainThreadMs, unit: "ms" },
    {
      name: `${label} peak RSS`,
      value: mib(peak),
      unit: "MiB",
      target: spec.services >= 10_000 ? { op: "<", value: 300 } : undefined,
      note: `whole bench process incl. the emulated HNS's objects; ${
        mib(rssBefore)
      } MiB before start`,
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
  if (agent.logger.errors > 0) {
    result.notes.push(
      `${label}: the agent logged ${agent.logger.errors} errors, e.g. ${agent.logger.samples[0]}`,
    );
  }
  if (opts.verify !== false) await verifyContent(spec, emulator, expected, result, label);
  return { agent, calls, convergeMs };
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

function sumCalls(calls: CallCounts): number {
  return Object.values(calls).reduce((a, b) => a + b, 0);
}

/**
 * Read HNS back (outside the measured window) and check that every expected
 * LB exists once with all the service's backends, and that every remote
 * endpoint exists. A mismatch is a correctness failure.
 */
export async function verifyContent(
  spec: ScenarioSpec,
  emulator: Emulator,
  expected: ExpectedHns,
  result: ScenarioResult,
  label: string,
  extraBackends: ReadonlyMap<number, number> = new Map(),
): Promise<void> {
  const api = openFfiHcnApi({ library: emulator.library });
  const client = createHnsClient(api, { listConcurrency: 8 });
  try {
    const lbs = await client.listLoadBalancers();
    const endpoints = await client.listEndpoints();
    const ipById = new Map<string, string>();
    for (const ep of endpoints) {
      const ip = ep.IpConfigurations?.[0]?.IpAddress;
      if (ep.ID && ip) ipById.set(ep.ID.toUpperCase(), ip);
    }
    const byIdentity = new Map<string, string[]>();
    for (const lb of lbs) {
      const id = lbIdentity(lb.FrontendVIPs?.[0], lb.PortMappings?.[0]?.ExternalPort ?? 0);
      if (byIdentity.has(id)) {
        result.failures.push(`${label}: two load balancers for ${id}`);
        continue;
      }
      byIdentity.set(
        id,
        (lb.HostComputeEndpoints ?? []).map((e) => ipById.get(e.toUpperCase()) ?? `?${e}`).sort(),
      );
    }
    let bad = 0;
    for (let i = 0; i < spec.services; i++) {
      const want = endpointsOf(spec, i).map((e) => e.ip);
      const ids = [lbIdentity(clusterIpOf(i), SERVICE_PORT)];
      const np = nodePortOf(spec, i);
      if (np !== undefined) ids.push(lbIdentity(undefined, np));
      for (const id of ids) {
        const got = byIdentity.get(id);
        const extra = extraBackends.get(i) ?? 0;
        if (!got || got.length !== want.length + extra || !want.every((ip) => got.includes(ip))) {
          if (bad++ < 3) {
            result.failures.push(
              `${label}: LB ${id} of service ${i} has backends ${JSON.stringify(got)}, want ${
                JSON.stringify(want)
              }${extra ? ` plus ${extra} added` : ""}`,
            );
          }
        }
      }
    }
    if (bad > 3) result.failures.push(`${label}: ${bad} load balancers wrong in all`);
    if (lbs.length !== expected.loadBalancers) {
      result.failures.push(
        `${label}: ${lbs.length} load balancers, want ${expected.loadBalancers}`,
      );
    }
  } finally {
    api.dispose();
  }
}
