/**
 * `deno task bench` — hnsproxy at scale, against the targets of issue 7.
 *
 * ```sh
 * deno run -A bench/main.ts --quick    # CI smoke check, under 3 minutes
 * deno run -A bench/main.ts --full     # the report: bench/RESULTS.md, README table
 * deno run -A bench/main.ts --full --only=churn,latency --no-write
 * deno run -A bench/main.ts --full --save=/tmp/r.json      # also keep the raw results
 * deno run -A bench/main.ts --render=/tmp/r.json           # the same from saved results
 * ```
 *
 * Each scenario runs in its own process (bench/run.ts), which runs the agent
 * in an agent host process (bench/agent_host.ts) with the agent's V8 flags,
 * `--expose-gc` and `MALLOC_ARENA_MAX=1` (one malloc arena for every thread,
 * see bench/malloc.ts), and the API server in another. Before
 * and after each, bench/machine_probe.ts times two fixed pieces of work, so
 * that a time can be read against how fast the shared machine was then. Exits
 * non-zero only when a scenario crashed or found a
 * correctness failure (not converging, wrong HNS content); missed speed or
 * memory targets are reported, not fatal.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import {
  allMet,
  consoleLines,
  machineInfo,
  resultsMarkdown,
  targetedFigures,
  targetsTable,
  withReadmeTargets,
} from "./report.ts";
import { fmt, meets, newResult, type ScenarioResult, targetText, verdict } from "./results.ts";
import { RESULT_PREFIX } from "./run.ts";
import { probeMachine } from "./machine_probe.ts";
import { v8FlagsArgument } from "../lib/v8_flags.ts";

/** One scenario process to run. */
export interface PlannedRun {
  /** Short name for `--only`. */
  name: string;
  /** Scenario of bench/run.ts. */
  scenario: "cluster" | "churn" | "latency" | "realistic";
  /** Its parameters. */
  params: Record<string, unknown>;
}

/** Quick mode: every scenario, smaller (CI). */
export const QUICK: readonly PlannedRun[] = [
  {
    name: "cluster-1000",
    scenario: "cluster",
    params: { services: 1000, changes: 10, resyncs: 2, resyncPeriodMs: 1500, timeoutMs: 60_000 },
  },
  {
    name: "cold-10000",
    scenario: "cluster",
    params: { services: 10_000, changes: 0, resyncs: 0, resyncPeriodMs: 0, timeoutMs: 120_000 },
  },
  {
    name: "churn",
    scenario: "churn",
    params: { services: 1000, ratePerSecond: 100, durationS: 10, timeoutMs: 60_000 },
  },
  {
    name: "latency",
    scenario: "latency",
    params: { services: 100, latencyUs: 5000, concurrencies: [1, 8], timeoutMs: 120_000 },
  },
  {
    name: "realistic",
    scenario: "realistic",
    params: {
      services: 1000,
      baseUs: 200,
      slopeNs: 20,
      serial: true,
      changedServices: 100,
      hnsConcurrency: 4,
      timeoutMs: 120_000,
    },
  },
];

/** Full mode: the issue's sizes. */
export const FULL: readonly PlannedRun[] = [
  {
    name: "cluster-1000",
    scenario: "cluster",
    params: { services: 1000, changes: 200, resyncs: 3, resyncPeriodMs: 5000, timeoutMs: 120_000 },
  },
  {
    name: "cluster-10000",
    scenario: "cluster",
    params: {
      services: 10_000,
      changes: 200,
      resyncs: 3,
      resyncPeriodMs: 5000,
      timeoutMs: 300_000,
      heapSnapshot: true,
    },
  },
  {
    name: "churn",
    scenario: "churn",
    params: {
      services: 10_000,
      ratePerSecond: 100,
      // Issue 15: the agent's peak RSS after 10 minutes of churn (warm-up included). The
      // warm-up is long enough for the Maps keyed by endpoint to take their one-time step
      // (bench/analysis.md), so that the measured half shows the steady state.
      durationS: 300,
      warmupS: 300,
      timeoutMs: 300_000,
    },
  },
  {
    name: "latency",
    scenario: "latency",
    params: {
      services: 1000,
      latencyUs: 5000,
      concurrencies: [1, 2, 4, 8, 16],
      timeoutMs: 600_000,
    },
  },
  {
    name: "concurrency-0ms",
    scenario: "latency",
    params: { services: 10_000, latencyUs: 0, concurrencies: [1, 2, 4], timeoutMs: 300_000 },
  },
  {
    name: "realistic",
    scenario: "realistic",
    params: {
      services: 10_000,
      baseUs: 200,
      slopeNs: 20,
      serial: true,
      changedServices: 100,
      hnsConcurrency: 4,
      timeoutMs: 900_000,
    },
  },
];

const HERE = fileURLToPath(new URL(".", import.meta.url));
const REPO = fileURLToPath(new URL("..", import.meta.url));

/** Run one scenario process; a crash becomes a result with a failure. */
async function runOne(run: PlannedRun): Promise<ScenarioResult[]> {
  const started = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      v8FlagsArgument(),
      `${HERE}run.ts`,
      run.scenario,
      JSON.stringify(run.params),
    ],
    cwd: REPO,
    env: { MALLOC_ARENA_MAX: "1" },
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const line = text.split("\n").find((l) => l.startsWith(RESULT_PREFIX));
  if (out.success && line) return JSON.parse(line.slice(RESULT_PREFIX.length));
  const crashed = newResult(run.name, `${run.name} (crashed)`);
  crashed.wallMs = performance.now() - started;
  crashed.failures.push(
    `scenario process exited with code ${out.code}${line ? "" : " without results"}: ${
      text.trim().split("\n").slice(-5).join(" | ")
    }`,
  );
  return [crashed];
}

/** bench/kube_memory.ts's report (the kube engineer's store bench), or undefined. */
async function kubeMemory(): Promise<string | undefined> {
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", v8FlagsArgument(), `${HERE}kube_memory.ts`],
      cwd: REPO,
      stdout: "piped",
      stderr: "inherit",
    }).output();
    return out.success ? new TextDecoder().decode(out.stdout) : undefined;
  } catch {
    return undefined;
  }
}

/** A run's results as saved with `--save`, enough to render RESULTS.md again. */
interface SavedRun {
  machine: Awaited<ReturnType<typeof machineInfo>>;
  mode: string;
  results: ScenarioResult[];
  kubeMemory?: string;
  commandLine: string;
}

/**
 * Write bench/RESULTS.md, with bench/analysis.md (the hand-written reading of
 * the numbers), and the copy of its targets table in README.md.
 */
async function writeResults(saved: SavedRun): Promise<void> {
  let analysis: string | undefined;
  try {
    analysis = await Deno.readTextFile(`${HERE}analysis.md`);
  } catch {
    analysis = undefined;
  }
  const md = resultsMarkdown(saved.machine, saved.mode, saved.results, {
    analysis,
    kubeMemory: saved.kubeMemory,
    commandLine: saved.commandLine,
  });
  await Deno.writeTextFile(`${HERE}RESULTS.md`, md);
  const readmePath = `${REPO}README.md`;
  const readme = await Deno.readTextFile(readmePath);
  await Deno.writeTextFile(
    readmePath,
    withReadmeTargets(readme, saved.machine, targetsTable(saved.results)),
  );
  // Keep the committed files as `deno fmt --check` (the CI check) wants them.
  await new Deno.Command(Deno.execPath(), {
    args: ["fmt", "-q", `${HERE}RESULTS.md`, readmePath],
    cwd: REPO,
    stdout: "null",
    stderr: "inherit",
  }).output();
  console.log(`\nwrote bench/RESULTS.md and the targets table in README.md`);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean", default: false },
      full: { type: "boolean", default: false },
      only: { type: "string" },
      write: { type: "boolean", default: true },
      "no-write": { type: "boolean", default: false },
      save: { type: "string" },
      render: { type: "string" },
    },
  });
  if (values.render) {
    const saved = JSON.parse(await Deno.readTextFile(values.render)) as SavedRun;
    await writeResults(saved);
    return 0;
  }
  const full = values.full && !values.quick;
  const mode = full ? "full" : "quick";
  const only = values.only?.split(",").map((s) => s.trim()).filter(Boolean);
  const plan = (full ? FULL : QUICK).filter((r) => !only || only.includes(r.name));
  const started = performance.now();
  console.log(`hnsproxy bench, ${mode} mode: ${plan.map((r) => r.name).join(", ")}`);
  const results: ScenarioResult[] = [];
  let probe = await probeMachine();
  for (const run of plan) {
    const rs = await runOne(run);
    const before = probe;
    probe = await probeMachine();
    for (const r of rs) {
      r.machineProbeMs = { before: before.compute, after: probe.compute };
      r.memoryProbeMs = { before: before.memory, after: probe.memory };
      console.log(consoleLines(r).join("\n"));
    }
    results.push(...rs);
  }
  const memory = full && !only ? await kubeMemory() : undefined;
  if (memory) console.log(`\n== Cluster store memory (bench/kube_memory.ts)\n${memory}`);

  const failures = results.flatMap((r) => r.failures);
  console.log(`\n== Targets (${fmt((performance.now() - started) / 1000)} s in all)`);
  for (const f of targetedFigures(results)) {
    console.log(
      `  ${meets(f) ? "met   " : "MISSED"} ${f.name}: ${fmt(f.value, 2)} ${f.unit} (target ${
        targetText(f)
      }) ${meets(f) ? "" : verdict(f)}`,
    );
  }
  console.log(allMet(results) ? "  every target met" : "  some targets missed (not a failure)");

  const saved: SavedRun = {
    machine: await machineInfo(),
    mode,
    results,
    kubeMemory: memory,
    commandLine: `deno run -A bench/main.ts --${mode}${only ? ` --only=${only.join(",")}` : ""}`,
  };
  if (values.save) await Deno.writeTextFile(values.save, JSON.stringify(saved));
  if (full && values.write && !values["no-write"]) await writeResults(saved);
  if (failures.length > 0) {
    console.log(`\n${failures.length} correctness failure(s):`);
    for (const f of failures) console.log(`  - ${f}`);
    return 1;
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main());
