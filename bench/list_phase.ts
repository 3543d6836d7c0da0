/**
 * The initial lists alone: the cluster watcher (lib/kube/cluster.ts, the
 * agent's selectors and page size) lists the generated cluster's Services
 * and EndpointSlices from the benchmark's API server process
 * (bench/apiserver_proc.ts, seeded and warmed up as in the cluster
 * scenarios) until every list is synced. Per run: wall time, CPU of this
 * process's main thread (the lists' HTTP bodies, their decompression, JSON
 * parsing, conversion into the store), the time it waited for a CPU while
 * runnable and the time it was idle (waiting for the API server), the CPU
 * of this process's live threads and of the API server process. The lists
 * are asked for compressed (gzip, as the agent asks by default) or, with
 * `--identity`, uncompressed (kubeconfig `disable-compression`).
 *
 * The first run is what an agent's start pays (its list code not compiled
 * yet, as at a cold start and at a restart, which is a new process); later
 * runs in the same process show the compiled code's cost. Run with the
 * agent's V8 flags:
 * `deno run -A --v8-flags=--expose-gc,--max-semi-space-size=2,--no-memory-reducer,--heap-growing-percent=30,--max-opt=2 bench/list_phase.ts --services 10000 --runs 3 [--identity]`
 *
 * @module
 */

import { parseArgs } from "node:util";
import { KubeClient } from "../lib/kube/client.ts";
import { watchCluster } from "../lib/kube/cluster.ts";
import { LIST_PAGE_SIZE } from "../lib/kube/reflector.ts";
import { nullLogger } from "../lib/log/types.ts";
import { ApiServerProcess } from "./apiserver.ts";
import { liveThreadsCpuMs, mainThreadSchedMs } from "./procstat.ts";
import { issueSpec, NODE_NAME } from "./scenario.ts";

/** One run's figures, ms. */
export interface ListPhaseRun {
  /** From the watcher's start until every list is synced. */
  wallMs: number;
  /** CPU of this process's main thread. */
  mainThreadMs: number;
  /** Time this process's main thread waited for a CPU while runnable (other load). */
  mainThreadWaitMs: number;
  /** The rest of the wall time: the main thread had nothing to do (waiting for the API server). */
  idleMs: number;
  /** CPU of this process's live threads. */
  processMs: number;
  /** CPU of the API server process's live threads. */
  apiServerMs: number;
  /** Services and EndpointSlices in the store once synced. */
  objects: number;
}

/**
 * Lists the cluster `runs` times, each with a new client and watcher;
 * `compressed` false asks for uncompressed answers.
 */
export async function measureListPhase(
  services: number,
  runs: number,
  pageSize = LIST_PAGE_SIZE,
  compressed = true,
): Promise<ListPhaseRun[]> {
  const api = ApiServerProcess.start();
  const gc = (globalThis as { gc?: () => void }).gc;
  const results: ListPhaseRun[] = [];
  try {
    const { url } = await api.seed(issueSpec(services));
    for (let i = 0; i < runs; i++) {
      gc?.();
      const client = new KubeClient({
        cluster: { name: "bench", server: url, disableCompression: !compressed },
        user: { name: "bench" },
      });
      const main0 = mainThreadSchedMs();
      const process0 = liveThreadsCpuMs();
      const api0 = liveThreadsCpuMs(api.pid);
      const t0 = performance.now();
      const watch = watchCluster({ client, nodeName: NODE_NAME, logger: nullLogger, pageSize });
      await watch.synced;
      const wallMs = performance.now() - t0;
      const main1 = mainThreadSchedMs();
      const mainThreadMs = main1.cpuMs - main0.cpuMs;
      const mainThreadWaitMs = main1.waitMs - main0.waitMs;
      results.push({
        wallMs,
        mainThreadMs,
        mainThreadWaitMs,
        idleMs: wallMs - mainThreadMs - mainThreadWaitMs,
        processMs: liveThreadsCpuMs() - process0,
        apiServerMs: liveThreadsCpuMs(api.pid) - api0,
        objects: watch.store.serviceCount + watch.store.sliceCount,
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
      "page-size": { type: "string", default: String(LIST_PAGE_SIZE) },
      identity: { type: "boolean", default: false },
    },
  });
  const load = () => Deno.loadavg().map((l) => l.toFixed(2)).join(" ");
  const before = load();
  const runs = await measureListPhase(
    Number(values.services),
    Number(values.runs),
    Number(values["page-size"]),
    !values.identity,
  );
  console.log(
    `services ${values.services}, pages of ${values["page-size"]}, ` +
      `${values.identity ? "uncompressed" : "gzip"}; load ${before} -> ${load()}`,
  );
  const columns = ["run", "wall ms", "main thread ms", "its wait ms", "idle ms", "process ms"];
  console.log([...columns, "API server ms"].join("  "));
  runs.forEach((r, i) =>
    console.log(
      [i, r.wallMs, r.mainThreadMs, r.mainThreadWaitMs, r.idleMs, r.processMs, r.apiServerMs]
        .map((v, j) => String(Math.round(v)).padStart((columns[j] ?? "API server ms").length))
        .join("  "),
    )
  );
}

if (import.meta.main) await main();
