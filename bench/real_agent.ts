/**
 * A cross-check of the agent host's memory figures: the real agent process
 * (`deno run main.ts run`, the agent's V8 flags, `--hns-library` the
 * emulator) against the bench's fake API server, measured from outside.
 * The emulator starts with the node's HNS (saved by a seeding host,
 * `HNSEMU_LOAD_STATE`) and writes its heap as the process exits
 * (`HNSEMU_HEAP_REPORT`); the agent's peak RSS without the emulated HNS is
 * the process's VmHWM after convergence minus that heap (what HNS holds
 * then is what it held at convergence: the cluster does not change).
 * Convergence is read from the agent's own `/metrics` (owned objects, HNS
 * calls settled). Healthz and metrics listen on loopback ports.
 *
 * `deno run -A bench/real_agent.ts [services]` prints the figures as JSON.
 *
 * @module
 */

import { parseExposition } from "../tests/serve/prom.ts";
import { freePort } from "../tests/agent/harness.ts";
import { AgentHost, agentProcess } from "./agent_host.ts";
import { ApiServerProcess } from "./apiserver.ts";
import { emulatorLibrary } from "./emulator.ts";
import { sleep } from "./harness.ts";
import { mib, peakRssBytes, rssByKind } from "./procstat.ts";
import { expectedHns, issueSpec, NETWORK_NAME, NODE_NAME } from "./scenario.ts";

/** What one run of the real agent process measured. */
export interface RealAgentFigures {
  /** Services in the cluster. */
  services: number;
  /** From the process's spawn until HNS held every expected owned object, ms. */
  convergeMs: number;
  /** VmHWM of the agent process after convergence, MiB. */
  peakRssMiB: number;
  /** Of its RSS then, file-backed (the executable's code, shared libraries), MiB. */
  rssFileMiB: number;
  /** The emulated HNS's heap as the process exited (HnsEmuHeapBytes), MiB. */
  emulatorHeapMiB: number;
  /** peakRssMiB − emulatorHeapMiB. */
  peakRssWithoutHnsMiB: number;
  /** HNS calls the agent counted (its own metric). */
  hnsCalls: number;
}

/** Sum of a metric's samples (every label set) in a Prometheus text page. */
function metricSum(page: string, name: string): number {
  let n = 0;
  for (const [sample, value] of parseExposition(page).samples) {
    if (sample === name || sample.startsWith(`${name}{`)) n += value;
  }
  return n;
}

/** Run the real agent process once at `services`; see the module notes. */
export async function measureRealAgent(services: number, timeoutMs = 300_000) {
  const spec = issueSpec(services);
  const expected = expectedHns(spec);
  const library = await emulatorLibrary();
  const dir = await Deno.makeTempDir({ prefix: "hnsbench-real-" });
  const api = ApiServerProcess.start();
  try {
    const seedFile = `${dir}/hns.json`;
    await AgentHost.saveSeed(spec, seedFile);
    const { url } = await api.seed(spec);
    const metricsPort = freePort();
    const heapReport = `${dir}/heap.json`;
    const started = performance.now();
    const agent = agentProcess(new URL("../main.ts", import.meta.url), {
      scriptArgs: [
        "run",
        `--master=${url}`,
        `--hostname-override=${NODE_NAME}`,
        `--network-name=${NETWORK_NAME}`,
        `--hns-library=${library}`,
        `--state-file=${dir}/state.json`,
        `--healthz-bind-address=127.0.0.1:${freePort()}`,
        `--metrics-bind-address=127.0.0.1:${metricsPort}`,
      ],
      env: { HNSEMU_LOAD_STATE: seedFile, HNSEMU_HEAP_REPORT: heapReport },
    });
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...agent.args],
      env: agent.env,
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    try {
      const owned = expected.loadBalancers + expected.remoteEndpoints;
      let calls = -1;
      let settledSince = 0;
      let convergeMs = NaN;
      // Converged: every owned object is there and no HNS call for 500 ms.
      while (performance.now() - started < timeoutMs) {
        await sleep(250);
        let page: string;
        try {
          page = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
        } catch {
          continue; // not listening yet
        }
        const now = metricSum(page, "hnsproxy_hns_calls_total");
        if (metricSum(page, "hnsproxy_owned_objects") !== owned) continue;
        if (Number.isNaN(convergeMs)) convergeMs = performance.now() - started;
        if (now !== calls) {
          calls = now;
          settledSince = performance.now();
        } else if (performance.now() - settledSince >= 500) {
          break;
        }
      }
      if (Number.isNaN(convergeMs)) {
        throw new Error(`the agent did not converge in ${timeoutMs} ms`);
      }
      const peak = peakRssBytes(child.pid);
      const rssFile = rssByKind(child.pid).file;
      child.kill("SIGTERM");
      const status = await child.status;
      if (!status.success) throw new Error(`the agent exited with ${status.code}`);
      const heap = JSON.parse(await Deno.readTextFile(heapReport)) as { heapBytes: number };
      return {
        services,
        convergeMs,
        peakRssMiB: mib(peak),
        rssFileMiB: mib(rssFile),
        emulatorHeapMiB: mib(heap.heapBytes),
        peakRssWithoutHnsMiB: mib(peak - heap.heapBytes),
        hnsCalls: calls,
      } satisfies RealAgentFigures;
    } catch (err) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      throw new Error(`${(err as Error).message}; agent stderr: ${(await stderr).slice(-2000)}`);
    }
  } finally {
    await api.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  const services = Number(Deno.args[0] ?? 10_000);
  console.log(JSON.stringify(await measureRealAgent(services)));
}
