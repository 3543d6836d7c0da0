/**
 * Scenario 8: a realistic HNS. Real HNS gets slower as it holds more objects
 * and serialises some of its work, which a constant latency per call does not
 * show. Here every call of the emulator takes `base + slope × objects held`
 * (optionally serialised under its lock, so calls never overlap), and the
 * agent goes through a cold start, a change of many services at once and a
 * restart with the cluster unchanged. kube-proxy's modelled calls for the same
 * work are put beside each phase, timed under the same model (kube-proxy
 * calls HNS one call at a time, so overlapping does not help it).
 *
 * kube-proxy's times are estimates: its modelled calls × the model's latency
 * at the mean number of objects HNS holds during the phase. HNS's own work
 * is in the latency; the agent's CPU is not counted for kube-proxy.
 *
 * @module
 */

import { AgentHost } from "./agent_host.ts";
import { ApiServerProcess } from "./apiserver.ts";
import { coldStart, verifyContent } from "./cold_start.ts";
import { type CallCounts, callDelta, totalCalls, writeCalls } from "./emulator.ts";
import { withTimeout } from "./harness.ts";
import { now } from "./procstat.ts";
import { kubeProxyModelCalls } from "./kube_proxy.ts";
import { LatencyTracker } from "./latency.ts";
import { newResult, type ScenarioResult } from "./results.ts";
import { expectedHns, issueSpec, nodePortOf } from "./scenario.ts";

/** Parameters of {@link runRealisticHns}. */
export interface RealisticHnsParams {
  /** Number of services. */
  services: number;
  /** Latency of a call to an empty HNS, µs. */
  baseUs: number;
  /** Added latency per object HNS holds, ns. */
  slopeNs: number;
  /** Whether HNS works one call at a time. */
  serial: boolean;
  /** Services changed at once in the change phase. */
  changedServices: number;
  /** The agent's `--hns-concurrency`. */
  hnsConcurrency: number;
  /** Give up on a phase after this long, ms. */
  timeoutMs: number;
}

/** The model's latency in ms at `objects` objects held. */
function modelMs(p: RealisticHnsParams, objects: number): number {
  return (p.baseUs + (p.slopeNs * objects) / 1000) / 1000;
}

/** kube-proxy's estimated time for `calls` with `objects` objects held on average, ms. */
function kubeProxyMs(p: RealisticHnsParams, calls: CallCounts, objects: number): number {
  return totalCalls(calls) * modelMs(p, objects);
}

/** Run the phases; see the module notes. */
export async function runRealisticHns(p: RealisticHnsParams): Promise<ScenarioResult[]> {
  const spec = issueSpec(p.services);
  const n = p.services.toLocaleString("en-US");
  const model = `${p.baseUs} µs + ${p.slopeNs} ns × objects${p.serial ? ", serialised" : ""}`;
  const result = newResult(
    `realistic-hns-${p.services}`,
    `8. Realistic HNS (${model}), ${n} services`,
  );
  const label = `realistic HNS, ${n} services:`;
  const started = performance.now();
  let host = await AgentHost.start();
  const api = ApiServerProcess.start();
  const dir = await Deno.makeTempDir({ prefix: "hnsbench-" });
  const stateFile = `${dir}/state.json`;
  const expected = expectedHns(spec);
  const atStart = expected.localEndpoints + 1;
  const converged = expected.endpoints + expected.loadBalancers + 1;
  const kp = kubeProxyModelCalls(spec);
  const rows: (string | number)[][] = [];
  const row = (phase: string, ms: number, calls: CallCounts, kpCalls: CallCounts, kpMs: number) =>
    rows.push([
      phase,
      Math.round(ms),
      totalCalls(calls),
      writeCalls(calls),
      Math.round(kpMs),
      totalCalls(kpCalls),
      writeCalls(kpCalls),
      ms > 0 ? `${(kpMs / ms).toFixed(1)}x` : "",
    ]);
  try {
    await host.seed(spec);
    const { url } = await api.seed(spec);
    await host.setLatencyModel(p.baseUs, p.slopeNs, p.serial);

    // Cold start.
    const cold = await coldStart({
      spec,
      api,
      apiUrl: url,
      host,
      stateFile,
      timeoutMs: p.timeoutMs,
      label,
      hnsConcurrency: p.hnsConcurrency,
      verify: false,
      targets: false,
    }, result);
    let agent = cold.agent;
    if (result.failures.length > 0) {
      await agent.stop();
      return [result];
    }
    row(
      "cold start",
      cold.convergeMs,
      cold.calls,
      kp.coldStart,
      kubeProxyMs(p, kp.coldStart, (atStart + converged) / 2),
    );

    // A change of many services at once: one endpoint added to each.
    const changed = Array.from({ length: Math.min(p.changedServices, spec.services) }, (_, k) => k);
    const tracker = await LatencyTracker.attach(spec, host);
    const before = await host.callCounts();
    const writtenAt = now();
    const done = changed.map((i) => tracker.track(i, writtenAt, spec.endpointsPerService + 1));
    await Promise.all(changed.map((i) => api.addEndpoint(i)));
    const changeMs = await withTimeout(
      Promise.all(done).then((ms) => Math.max(...ms)),
      p.timeoutMs,
    );
    await host.onLbWrite(undefined);
    if (Number.isNaN(changeMs)) {
      result.failures.push(`${label} the ${changed.length} changes did not reach HNS in time`);
      await agent.stop();
      return [result];
    }
    await host.waitQuiet(300, p.timeoutMs);
    const changeCalls = callDelta(before, await host.callCounts());
    const withNodePort = changed.filter((i) => nodePortOf(spec, i) !== undefined).length;
    // kube-proxy batches changes that arrive together into one sync: one full read of HNS
    // (its periodic sync's calls) plus each changed service port's own writes.
    const kpChange = { ...kp.periodic };
    addCalls(
      kpChange,
      scaleCalls(minus(kp.incremental, kp.periodic), changed.length - withNodePort),
    );
    addCalls(kpChange, scaleCalls(minus(kp.incrementalNodePort, kp.periodic), withNodePort));
    row(
      `${changed.length} services changed at once`,
      changeMs,
      changeCalls,
      kpChange,
      kubeProxyMs(p, kpChange, converged),
    );

    // Restart with the cluster unchanged since the change: a new process over HNS as it was.
    await agent.stop();
    host = await host.handOver();
    await host.setLatencyModel(p.baseUs, p.slopeNs, p.serial);
    // As before a cold start (cold_start.ts): the API server's garbage is collected first.
    await api.collectGarbage();
    const beforeRestart = await host.callCounts();
    let readyAt: number;
    ({ agent, readyAt } = await host.startAgentReady({
      apiUrl: url,
      stateFile,
      hnsConcurrency: p.hnsConcurrency,
    }, p.timeoutMs));
    if (Number.isNaN(readyAt)) {
      result.failures.push(`${label} the restarted agent was not ready within ${p.timeoutMs} ms`);
    } else {
      await host.waitQuiet(300, p.timeoutMs);
      const restartCalls = callDelta(beforeRestart, await host.callCounts());
      row(
        "restart, nothing changed",
        readyAt - agent.startedAt,
        restartCalls,
        kp.restart,
        kubeProxyMs(p, kp.restart, converged),
      );
      result.figures.push({
        name: `${label} HNS writes at restart`,
        value: writeCalls(restartCalls),
        unit: "calls",
        target: { op: "==", value: 0 },
      });
    }
    row("kube-proxy periodic sync", 0, {}, kp.periodic, kubeProxyMs(p, kp.periodic, converged));
    await agent.stop();
    await host.setLatencyModel(0, 0, false);
    const extras = new Map(changed.map((i) => [i, 1]));
    const after = expectedHns(spec);
    after.remoteEndpoints += changed.length;
    after.endpoints += changed.length;
    await verifyContent(host, spec, after, result, label, extras);

    result.tables.unshift({
      title: `${label} time and HNS calls per phase, hnsproxy measured and kube-proxy estimated`,
      header: [
        "phase",
        "hnsproxy ms",
        "hnsproxy calls",
        "hnsproxy writes",
        "kube-proxy ms (est.)",
        "kube-proxy calls",
        "kube-proxy writes",
        "kube-proxy / hnsproxy",
      ],
      rows,
    });
    result.notes.push(
      `HNS latency model: ${model}; ${modelMs(p, atStart).toFixed(2)} ms per call at start, ` +
        `${modelMs(p, converged).toFixed(2)} ms once converged (${converged} objects). ` +
        `hnsproxy ran with --hns-concurrency ${p.hnsConcurrency}. kube-proxy's times are its ` +
        "modelled calls × the latency at the phase's mean object count, one call at a time.",
    );
  } finally {
    await host.close();
    await api.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  result.wallMs = performance.now() - started;
  return [result];
}

function scaleCalls(calls: CallCounts, k: number): CallCounts {
  return Object.fromEntries(Object.entries(calls).map(([fn, c]) => [fn, c * k]));
}

function minus(a: CallCounts, b: CallCounts): CallCounts {
  return Object.fromEntries(Object.entries(a).map(([fn, c]) => [fn, c - (b[fn] ?? 0)]));
}

function addCalls(into: CallCounts, more: CallCounts): void {
  for (const [fn, c] of Object.entries(more)) into[fn] = (into[fn] ?? 0) + c;
}
