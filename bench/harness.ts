/**
 * What the benchmark's processes share about the agent under test: its
 * configuration for a run (through the real flag parser), the logger that
 * counts its warnings and errors, the record of each sync the host observed,
 * and the waiting helpers. The agent itself runs in the agent host process
 * (bench/agent_host_proc.ts).
 *
 * @module
 */

import { parseConfig } from "../lib/config/config.ts";
import type { Config } from "../lib/config/types.ts";
import type { LogFields, Logger } from "../lib/log/types.ts";
import type { SyncReport } from "../lib/proxy/syncer.ts";
import type { CallCounts } from "./emulator.ts";
import { now } from "./procstat.ts";
import { NETWORK_NAME, NODE_NAME } from "./scenario.ts";

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
  /** Ownership record path (kept across a restart). */
  stateFile: string;
  /** `--hns-concurrency` (default: the agent's default). */
  hnsConcurrency?: number;
  /** `--min-sync-period` in ms (default: the agent's default, 1 s). */
  minSyncPeriodMs?: number;
  /** `--sync-period` in ms (default: the agent's default, 30 s). */
  syncPeriodMs?: number;
}

/** One sync the agent ran, as the host saw it. */
export interface SyncRecord {
  /** When the sync started ({@link now}). */
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
  /** HNS calls so far when it ended, when asked for (`countsOnSync`). */
  calls?: CallCounts;
  /** A start's mode (`fast`: ready before the state was built; the next start run builds it). */
  startMode?: SyncReport["startMode"];
}

/** The agent's configuration for a benchmark run against `library`, through the real flag parser. */
export function benchConfig(opts: BenchAgentOptions, library: string): Config {
  const args = [
    `--master=${opts.apiUrl}`,
    `--hostname-override=${NODE_NAME}`,
    `--network-name=${NETWORK_NAME}`,
    `--hns-library=${library}`,
    `--state-file=${opts.stateFile}`,
  ];
  if (opts.hnsConcurrency !== undefined) args.push(`--hns-concurrency=${opts.hnsConcurrency}`);
  if (opts.minSyncPeriodMs !== undefined) args.push(`--min-sync-period=${opts.minSyncPeriodMs}ms`);
  if (opts.syncPeriodMs !== undefined) args.push(`--sync-period=${opts.syncPeriodMs}ms`);
  const { config } = parseConfig(args, {}, (p) => Deno.readTextFileSync(p), {
    hostname: () => NODE_NAME,
  });
  // No servers: the bench reads what it needs through the host, and ports stay free.
  return { ...config, healthzBindAddress: "", metricsBindAddress: "" };
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
 * Poll `done` every `everyMs` until it is true; resolves with the time
 * ({@link now}) of the first true poll, rejects after `timeoutMs`.
 */
export async function waitUntil(
  done: () => boolean,
  timeoutMs: number,
  what: string,
  everyMs = 2,
): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  while (true) {
    if (done()) return now();
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(everyMs);
  }
}
