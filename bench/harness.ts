/**
 * Runs the real agent (lib/agent.ts) in this process against the fake API
 * server process and the HNS emulator library, and watches it: every sync
 * report, the load balancer writes (through the probe), HNS object counts
 * (convergence) and call counters (quiescence).
 *
 * @module
 */

import { type Agent, startAgent } from "../lib/agent.ts";
import { parseConfig } from "../lib/config/config.ts";
import type { Config } from "../lib/config/types.ts";
import { openFfiHcnApi } from "../lib/hns/ffi.ts";
import { KubeClient } from "../lib/kube/client.ts";
import type { LogFields, Logger } from "../lib/log/types.ts";
import type { SyncReport } from "../lib/proxy/syncer.ts";
import { type Emulator, totalCalls } from "./emulator.ts";
import { type ProbedHcnApi, probeHcnApi } from "./probe.ts";
import { type ExpectedHns, NETWORK_NAME, NODE_NAME } from "./scenario.ts";

/** A logger that counts warnings and errors and keeps the first few lines. */
export class CountingLogger implements Logger {
  /** Errors logged. */
  errors = 0;
  /** Warnings logged. */
  warnings = 0;
  /** The first lines of each, for the report. */
  readonly samples: string[] = [];
  readonly #echo: boolean;

  /** `echo`: also print warnings and errors to stderr. */
  constructor(echo = Deno.env.get("BENCH_VERBOSE") === "1") {
    this.#echo = echo;
  }

  #keep(level: string, message: string, fields?: LogFields): void {
    const line = `${level} ${message} ${fields ? JSON.stringify(fields) : ""}`;
    if (this.samples.length < 10) this.samples.push(line);
    if (this.#echo) console.error(line);
  }

  /** Counts and keeps an error line. */
  error(message: string, fields?: LogFields): void {
    this.errors++;
    this.#keep("E", message, fields);
  }

  /** Counts and keeps a warning line. */
  warn(message: string, fields?: LogFields): void {
    this.warnings++;
    this.#keep("W", message, fields);
  }

  /** Dropped (echoed with BENCH_VERBOSE=1). */
  info(message: string, fields?: LogFields): void {
    if (this.#echo) console.error(`I ${message} ${fields ? JSON.stringify(fields) : ""}`);
  }

  /** Dropped. */
  debug(): void {}

  /** Debug lines are off. */
  enabled(): boolean {
    return false;
  }

  /** The same logger. */
  with(): Logger {
    return this;
  }
}

/** How to start the agent under test. */
export interface BenchAgentOptions {
  /** Base URL of the fake API server. */
  apiUrl: string;
  /** The emulator (its library is what the agent loads). */
  emulator: Emulator;
  /** Ownership record path (kept across a restart). */
  stateFile: string;
  /** `--hns-concurrency` (default: the agent's default). */
  hnsConcurrency?: number;
  /** `--min-sync-period` in ms (default: the agent's default, 1 s). */
  minSyncPeriodMs?: number;
  /** `--sync-period` in ms (default: the agent's default, 30 s). */
  syncPeriodMs?: number;
}

/** One sync the agent ran, as the harness saw it. */
export interface SyncRecord {
  /** When the sync started (`performance.now()`). */
  startedAt: number;
  /** How long it took, ms. */
  ms: number;
  /** The report's kind (`start`, `full`, `partial`, `idle`, `waiting`). */
  kind: SyncReport["kind"];
  /** Whether the periodic resync ran in it. */
  resynced: boolean;
  /** Plan operations (adoptions included). */
  ops: number;
  /** HNS writes apply made. */
  writes: number;
}

/** A running agent under observation. */
export interface BenchAgent {
  /** The agent. */
  agent: Agent;
  /** Its configuration. */
  config: Config;
  /** The HCN API it was given (the probe over the FFI binding). */
  probe: ProbedHcnApi;
  /** Its logger. */
  logger: CountingLogger;
  /** `performance.now()` just before `startAgent`. */
  startedAt: number;
  /** Every sync so far. */
  syncs: SyncRecord[];
  /** Called right after each sync finishes (set by a phase that wants it). */
  onSync?: (sync: SyncRecord) => void;
  /** Stop the agent (graceful: HNS is left as it is). */
  stop(): Promise<void>;
}

/** The agent's configuration for a benchmark run, through the real flag parser. */
export function benchConfig(opts: BenchAgentOptions): Config {
  const args = [
    `--master=${opts.apiUrl}`,
    `--hostname-override=${NODE_NAME}`,
    `--network-name=${NETWORK_NAME}`,
    `--hns-library=${opts.emulator.library}`,
    `--state-file=${opts.stateFile}`,
  ];
  if (opts.hnsConcurrency !== undefined) args.push(`--hns-concurrency=${opts.hnsConcurrency}`);
  if (opts.minSyncPeriodMs !== undefined) args.push(`--min-sync-period=${opts.minSyncPeriodMs}ms`);
  if (opts.syncPeriodMs !== undefined) args.push(`--sync-period=${opts.syncPeriodMs}ms`);
  const { config } = parseConfig(args, {}, (p) => Deno.readTextFileSync(p), {
    hostname: () => NODE_NAME,
  });
  // No servers: the harness reads health and metrics in process, and ports stay free.
  return { ...config, healthzBindAddress: "", metricsBindAddress: "" };
}

/** Start the agent in this process; see the module notes. */
export async function startBenchAgent(opts: BenchAgentOptions): Promise<BenchAgent> {
  const config = benchConfig(opts);
  const logger = new CountingLogger();
  const probe = probeHcnApi(
    openFfiHcnApi({ library: opts.emulator.library, threads: config.hnsConcurrency }),
  );
  const kubeClient = KubeClient.connect({
    master: opts.apiUrl,
    // An empty environment: never pick up the host's kubeconfig.
    env: { get: () => undefined },
  });
  const startedAt = performance.now();
  const agent = await startAgent(config, {
    logger,
    hcnApi: probe,
    kubeClient,
    serviceHealthChecks: false,
  });
  const syncs: SyncRecord[] = [];
  const bench: BenchAgent = {
    agent,
    config,
    probe,
    logger,
    startedAt,
    syncs,
    async stop() {
      await agent.stop();
      kubeClient.close();
    },
  };
  // Observe every run of the syncer (the runner calls it through the property).
  const syncer = agent.syncer as unknown as { sync: () => Promise<SyncReport> };
  const original = syncer.sync.bind(agent.syncer);
  syncer.sync = async () => {
    const t = performance.now();
    const report = await original();
    // Only a summary: keeping the reports would keep every plan alive and
    // count the harness's memory as the agent's.
    const record: SyncRecord = {
      startedAt: t,
      ms: performance.now() - t,
      kind: report.kind,
      resynced: report.resynced,
      ops: report.plan?.ops.length ?? 0,
      writes: report.result?.writes ?? 0,
    };
    syncs.push(record);
    bench.onSync?.(record);
    return report;
  };
  return bench;
}

/**
 * Start the agent and wait until its first programming is done: the agent,
 * and the `performance.now()` it was ready at (NaN when not within `timeoutMs`).
 */
export async function startBenchAgentReady(
  opts: BenchAgentOptions,
  timeoutMs: number,
): Promise<{ agent: BenchAgent; readyAt: number }> {
  const agent = await startBenchAgent(opts);
  const readyAt = await withTimeout(
    agent.agent.ready.then(() => performance.now()),
    timeoutMs,
  );
  return { agent, readyAt };
}

/** Sleep `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * `promise`'s value, or NaN when it has not settled within `ms`. The timer
 * is cleared either way: a pending timer would keep everything its callback
 * can reach (an agent, say) alive.
 */
export async function withTimeout(promise: Promise<number>, ms: number): Promise<number> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<number>((resolve) => (timer = setTimeout(() => resolve(NaN), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Poll `done` every `everyMs` until it is true; resolves with the
 * `performance.now()` of the first true poll, rejects after `timeoutMs`.
 */
export async function waitUntil(
  done: () => boolean,
  timeoutMs: number,
  what: string,
  everyMs = 2,
): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  while (true) {
    if (done()) return performance.now();
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(everyMs);
  }
}

/** Whether HNS holds exactly the expected objects (counts). */
export function converged(emulator: Emulator, expected: ExpectedHns): boolean {
  return emulator.objectCount("LoadBalancer") === expected.loadBalancers &&
    emulator.objectCount("Endpoint") === expected.endpoints;
}

/** HNS object counts, for failure messages. */
export function hnsCounts(emulator: Emulator): string {
  return `load balancers ${emulator.objectCount("LoadBalancer")}, endpoints ${
    emulator.objectCount("Endpoint")
  }`;
}

/**
 * Wait until no HNS call has been made for `quietMs` (the agent is idle);
 * resolves with the time of the last call seen.
 */
export async function waitQuiet(
  emulator: Emulator,
  quietMs: number,
  timeoutMs: number,
): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  let last = totalCalls(emulator.callCounts());
  let lastChange = performance.now();
  while (performance.now() - lastChange < quietMs) {
    if (performance.now() > deadline) {
      throw new Error(`HNS calls did not stop within ${timeoutMs} ms`);
    }
    await sleep(10);
    const now = totalCalls(emulator.callCounts());
    if (now !== last) {
      last = now;
      lastChange = performance.now();
    }
  }
  return lastChange;
}
