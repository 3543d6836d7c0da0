/**
 * One scenario process: `deno run -A bench/run.ts <scenario> '<params JSON>'`.
 * Runs the scenario (the agent and the HNS emulator library in an agent
 * host process, the API server in another; this process only drives and
 * measures them) and prints its results as one line `RESULT <json>` on
 * stdout. bench/main.ts starts one per scenario so that each gets fresh
 * processes, emulator and peak-RSS count.
 *
 * @module
 */

import { runChurn } from "./churn.ts";
import { runCluster } from "./cluster.ts";
import { runHnsLatency } from "./hns_latency.ts";
import { runRealisticHns } from "./realistic_hns.ts";
import type { ScenarioResult } from "./results.ts";

/** The scenarios this entry point runs, by name. */
export const SCENARIOS = {
  cluster: runCluster,
  churn: runChurn,
  latency: runHnsLatency,
  realistic: runRealisticHns,
} as const;

/** `/proc/loadavg`'s three averages, or "" where it does not exist. */
function loadAverage(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join("/");
  } catch {
    return "";
  }
}

/** The line prefix of the results. */
export const RESULT_PREFIX = "RESULT ";

if (import.meta.main) {
  const [name, params] = Deno.args;
  const run = SCENARIOS[name as keyof typeof SCENARIOS] as
    | ((p: unknown) => Promise<ScenarioResult[]>)
    | undefined;
  if (!run) {
    console.error(
      `bench/run.ts: unknown scenario "${name}" (${Object.keys(SCENARIOS).join(", ")})`,
    );
    Deno.exit(2);
  }
  const loadBefore = loadAverage();
  const results = await run(JSON.parse(params ?? "{}"));
  const loadAfter = loadAverage();
  if (loadBefore || loadAfter) {
    for (const r of results) {
      r.notes.push(
        `system load average (1/5/15 min) before the scenario ${loadBefore}, after ${loadAfter} ` +
          "(the after figure includes the scenario's own load; above about 0.5 before it, other " +
          "processes were competing for the CPUs)",
      );
    }
  }
  console.log(RESULT_PREFIX + JSON.stringify(results));
  // Whatever the agent's libraries keep open, the scenario is over.
  Deno.exit(0);
}
