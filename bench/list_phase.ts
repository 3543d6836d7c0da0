/**
 * The initial lists alone: the cluster watcher (lib/kube/cluster.ts, the
 * agent's selectors and page size) lists the generated cluster's Services
 * and EndpointSlices from the benchmark's API server process
 * (bench/apiserver_proc.ts, seeded and warmed up as in the cluster
 * scenarios) until every list is synced. Per run: wall time, CPU of this
 * process's main thread (the lists' HTTP bodies, JSON parsing, conversion
 * into the store), of this process's live threads, and of the API server
 * process.
 *
 * The first run is what an agent's start pays (its list code not compiled
 * yet, as at a cold start and at a restart, which is a new process); later
 * runs in the same process show the compiled code's cost. Run with the
 * agent's V8 flags:
 * `deno run -A --v8-flags=--expose-gc,--max-semi-space-size=4,--no-memory-reducer,--heap-growing-percent=30 bench/list_phase.ts --services 10000 --runs 3`
 *
 * @module
 */

import { parseArgs } from "node:util";
import { KubeClient } from "../lib/kube/client.ts";
import { watchCluster } from "../lib/kube/cluster.ts";
import { nullLogger } from "../lib/log/types.ts";
import { ApiServerProcess } from "./apiserver.ts";
import { cpuTimes, liveThreadsCpuMs } from "./procstat.ts";
import { issueSpec, NODE_NAME } from "./scenario.ts";

/** One run's figures, ms. */
export interface ListPhaseRun {
  /** From the watcher's start until every list is synced. */
  wallMs: number;
  /** CPU of this process's main thread (10 ms ticks). */
  mainThreadMs: number;
  /** CPU of this process's live threads. */
  processMs: number;
  /** CPU of the API server process's live threads. */
  apiServerMs: number;
}

/** Lists the cluster `runs` times, each with a new client and watcher. */
export async function measureListPhase(
  services: number,
  runs: number,
  pageSize = 500,
): Promise<ListPhaseRun[]> {
  const api = ApiServerProcess.start();
  const gc = (globalThis as { gc?: () => void }).gc;
  const results: ListPhaseRun[] = [];
  try {
    const { url } = await api.seed(issueSpec(services));
    for (let i = 0; i < runs; i++) {
      gc?.();
      const client = new KubeClient({
        cluster: { name: "bench", server: url },
        user: { name: "bench" },
      });
      const main0 = cpuTimes().mainThreadMs;
      const process0 = liveThreadsCpuMs();
      const api0 = liveThreadsCpuMs(api.pid);
      const t0 = performance.now();
      const watch = watchCluster({ client, nodeName: NODE_NAME, logger: nullLogger, pageSize });
      await watch.synced;
      results.push({
        wallMs: performance.now() - t0,
        mainThreadMs: cpuTimes().mainThreadMs - main0,
        processMs: liveThreadsCpuMs() - process0,
        apiServerMs: liveThreadsCpuMs(api.pid) - api0,
      });
      await watch.stop();
      client.close();
    }
  } finally {
    await api.stop();
  }
  return results;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      services: { type: "string", default: "10000" },
      runs: { type: "string", default: "3" },
      "page-size": { type: "string", default: "500" },
    },
  });
  const load = () => Deno.loadavg().map((l) => l.toFixed(2)).join(" ");
  const before = load();
  const runs = await measureListPhase(
    Number(values.services),
    Number(values.runs),
    Number(values["page-size"]),
  );
  console.log(
    `services ${values.services}, pages of ${values["page-size"]}; load ${before} -> ${load()}`,
  );
  console.log("run  wall ms  main thread ms  process ms  API server ms");
  runs.forEach((r, i) =>
    console.log(
      [i, r.wallMs, r.mainThreadMs, r.processMs, r.apiServerMs]
        .map((v, j) => String(Math.round(v)).padStart(j === 0 ? 3 : [8, 15, 11, 14][j - 1]))
        .join(" "),
    )
  );
}

if (import.meta.main) await main();
