/**
 * Scenario 6: cold start with emulated HNS latency per call, once per
 * `--hns-concurrency` value (each in a fresh agent host), to show what
 * running HNS calls concurrently
 * buys (and so which default the data supports). kube-proxy, which calls
 * HNS one call at a time, is put beside it: its modelled calls times the
 * latency.
 *
 * @module
 */

import { AgentHost } from "./agent_host.ts";
import { ApiServerProcess } from "./apiserver.ts";
import { coldStart, verifyContent } from "./cold_start.ts";
import { type CallCounts, totalCalls } from "./emulator.ts";
import { kubeProxyModelCalls } from "./kube_proxy.ts";
import { newResult, type ScenarioResult } from "./results.ts";
import { expectedHns, issueSpec } from "./scenario.ts";

/** Parameters of {@link runHnsLatency}. */
export interface HnsLatencyParams {
  /** Number of services. */
  services: number;
  /** Emulated latency of every HNS call, µs. */
  latencyUs: number;
  /** `--hns-concurrency` values to compare. */
  concurrencies: number[];
  /** Give up on convergence after this long, ms. */
  timeoutMs: number;
}

/** Run the comparison; see the module notes. */
export async function runHnsLatency(p: HnsLatencyParams): Promise<ScenarioResult[]> {
  const spec = issueSpec(p.services);
  const n = p.services.toLocaleString("en-US");
  const ms = p.latencyUs / 1000;
  const result = newResult(
    `hns-latency-${p.services}-${p.latencyUs}`,
    `6. Cold start with ${ms} ms per HNS call, ${n} services`,
  );
  const started = performance.now();
  const api = ApiServerProcess.start();
  const dir = await Deno.makeTempDir({ prefix: "hnsbench-" });
  const rows: (string | number)[][] = [];
  try {
    const { url } = await api.seed(spec);
    let sequential = NaN;
    for (const c of p.concurrencies) {
      // Each cold start in a fresh host: a new process, no code warmed by the one before.
      const host = await AgentHost.start();
      let convergeMs: number;
      let calls: CallCounts;
      try {
        await host.seed(spec);
        await host.setLatencyMicros(p.latencyUs);
        const label = `${ms} ms/call, concurrency ${c}:`;
        const cold = await coldStart({
          spec,
          api,
          apiUrl: url,
          host,
          stateFile: `${dir}/state-${c}.json`,
          timeoutMs: p.timeoutMs,
          label,
          hnsConcurrency: c,
          verify: false,
        }, result);
        await cold.agent.stop();
        await host.setLatencyMicros(0);
        await verifyContent(host, spec, expectedHns(spec), result, label);
        ({ convergeMs, calls } = cold);
      } finally {
        await host.close();
      }
      if (c === 1) sequential = convergeMs;
      rows.push([
        c,
        Math.round(convergeMs),
        Number.isFinite(sequential) ? `${(sequential / convergeMs).toFixed(2)}x` : "",
        totalCalls(calls),
      ]);
      if (result.failures.length > 0) break;
    }
    // Keep the table and the headline figures; the per-run details stay in the table.
    result.figures = result.figures.filter((f) => / time to converge$| HNS writes$/.test(f.name));
    result.tables = result.tables.filter((t) => !/by C function/.test(t.title));
    result.tables.unshift({
      title: `Cold start at ${ms} ms per HNS call by --hns-concurrency`,
      header: ["concurrency", "time to converge (ms)", "speed-up", "HNS calls"],
      rows,
    });
    if (p.latencyUs > 0) {
      const model = kubeProxyModelCalls(spec).coldStart;
      const kp = totalCalls(model);
      result.figures.push({
        name: `kube-proxy (model): ${kp.toLocaleString("en-US")} calls one at a time`,
        value: kp * ms,
        unit: "ms",
        note: "its modelled cold-start calls × the latency; HNS work itself not included",
      });
    }
  } finally {
    await api.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  result.wallMs = performance.now() - started;
  return [result];
}
