/**
 * The bench's side of the agent host (bench/agent_host_proc.ts): spawn it
 * with the agent's V8 flags, control its emulated HNS, start and stop the
 * agent in it, and receive its syncs, LB writes and listings as events. The
 * host's CPU and memory are the agent's (plus the emulated HNS, whose heap
 * the emulator counts): read from /proc/<pid> here, and the peak reset here.
 *
 * @module
 */

import { v8FlagsArgument } from "../lib/v8_flags.ts";
import type { MemorySample } from "./agent_host_proc.ts";
import type { BareAgentMemory } from "./bare_agent_proc.ts";
import { type CallCounts, emulatorLibrary } from "./emulator.ts";
import { type BenchAgentOptions, type SyncRecord, withTimeout } from "./harness.ts";
import { JsonLinesChild, type Message } from "./jsonl.ts";
import type { AgentPeakFigure } from "./memory_peak.ts";
import type { EnumerateSpan, LbWrite, LbWriteListener } from "./probe.ts";
import { type CpuTimes, cpuTimes, peakRssBytes, resetPeakRss, rssBytes } from "./procstat.ts";
import type { ExpectedHns, ScenarioSpec } from "./scenario.ts";

export type { MemorySample } from "./agent_host_proc.ts";
export type { BareAgentMemory } from "./bare_agent_proc.ts";
export type { AgentPeakFigure } from "./memory_peak.ts";

/** What the emulated HNS holds and has been asked. */
export interface HnsState {
  /** Calls per C function so far. */
  calls: CallCounts;
  /** Load balancers held. */
  loadBalancers: number;
  /** Endpoints held. */
  endpoints: number;
  /** The emulator's heap: the pages it holds (HnsEmuHeapBytes). */
  heapBytes: number;
  /** Bytes in its blocks in use (HnsEmuHeapInUse). */
  heapInUse: number;
  /** Handles not closed. */
  openHandles: number;
  /** Strings not freed. */
  outstandingStrings: number;
}

/** The agent's settings the bench needs, as the flag parser made them. */
export interface BenchAgentConfig {
  /** `--min-sync-period`, ms. */
  minSyncPeriodMs: number;
  /** `--sync-period`, ms. */
  syncPeriodMs: number;
  /** `--hns-concurrency`. */
  hnsConcurrency: number;
}

/** What the agent logged. */
export interface AgentLog {
  /** Errors logged. */
  errors: number;
  /** Warnings logged. */
  warnings: number;
  /** The first lines. */
  samples: string[];
}

/** The agent running in the host, as the bench sees it. */
export interface BenchAgent {
  /** Its configuration. */
  config: BenchAgentConfig;
  /** When `startAgent` was called (procstat `now`). */
  startedAt: number;
  /** Every sync so far. */
  syncs: SyncRecord[];
  /** Called right after each sync is reported (set by a phase that wants it). */
  onSync?: (sync: SyncRecord) => void;
  /** When the first programming was done, or NaN when not within `timeoutMs`. */
  ready(timeoutMs: number): Promise<number>;
  /** Stop the agent (graceful: HNS is left as it is); resolves with what it logged. */
  stop(): Promise<AgentLog>;
}

/** How to run a process the bench measures as the agent; see {@link agentProcess}. */
export interface AgentProcessOptions {
  /** V8 flags besides the agent's own. */
  v8Flags?: string[];
  /** `deno run` options (e.g. `--cpu-prof`). */
  denoArgs?: string[];
  /** The script's arguments. */
  scriptArgs?: string[];
  /** Environment variables besides the bench's. */
  env?: Record<string, string>;
}

/**
 * The `deno run` arguments (without `run`) and the environment of a process
 * the bench measures as the agent (the agent host, a bare agent process, the
 * real agent process): every permission, the agent's V8 flags, and one
 * malloc arena for every thread (bench/malloc.ts says why).
 */
export function agentProcess(
  script: URL,
  opts: AgentProcessOptions = {},
): { args: string[]; env: Record<string, string> } {
  return {
    args: [
      "-A",
      v8FlagsArgument(...opts.v8Flags ?? []),
      ...opts.denoArgs ?? [],
      script.pathname,
      ...opts.scriptArgs ?? [],
    ],
    env: { MALLOC_ARENA_MAX: "1", ...opts.env },
  };
}

/** The host process; see the module notes. */
export class AgentHost {
  /** The host's process ID (its /proc entry is the agent's CPU and memory). */
  readonly pid: number;
  /** The emulator library it loaded. */
  readonly library: string;
  readonly #child: JsonLinesChild;
  #agent: (BenchAgent & { readyAt?: number; readyWaiters: (() => void)[] }) | undefined;
  #lbListener: LbWriteListener | undefined;
  #listingListener: ((s: EnumerateSpan) => void) | undefined;
  #countsOnSync = false;

  private constructor(child: JsonLinesChild, library: string) {
    this.#child = child;
    this.pid = child.pid;
    this.library = library;
    child.onEvent = (m) => this.#event(m);
  }

  /**
   * Start a host (the emulator library is built first if need be). For
   * profiling the agent, env HNSBENCH_HOST_V8_FLAGS adds V8 flags (comma
   * separated, e.g. `--trace-gc`) and HNSBENCH_HOST_ARGS `deno run` options
   * (space separated, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`).
   */
  static async start(): Promise<AgentHost> {
    const library = await emulatorLibrary();
    const v8Flags = (Deno.env.get("HNSBENCH_HOST_V8_FLAGS") ?? "").split(",").filter(Boolean);
    const args = (Deno.env.get("HNSBENCH_HOST_ARGS") ?? "").split(" ").filter(Boolean);
    const host = agentProcess(new URL("./agent_host_proc.ts", import.meta.url), {
      v8Flags,
      denoArgs: args,
      env: { HNSPROXY_HNS_LIBRARY: library },
    });
    const child = new JsonLinesChild("agent host", host.args, host.env);
    const agentHost = new AgentHost(child, library);
    // The first answer: the host has loaded everything it will load before an agent.
    await agentHost.hns();
    return agentHost;
  }

  #event(m: Message): void {
    switch (m.ev) {
      case "sync": {
        const { ev: _, ...record } = m;
        const sync = record as unknown as SyncRecord;
        this.#agent?.syncs.push(sync);
        this.#agent?.onSync?.(sync);
        break;
      }
      case "lb":
        this.#lbListener?.(m as unknown as LbWrite);
        break;
      case "listing":
        this.#listingListener?.(m as unknown as EnumerateSpan);
        break;
      case "ready":
        if (this.#agent) {
          this.#agent.readyAt = m.at as number;
          for (const w of this.#agent.readyWaiters.splice(0)) w();
        }
        break;
    }
  }

  #call(cmd: string, args?: Record<string, unknown>): Promise<Message> {
    return this.#child.call(cmd, args);
  }

  /** What the emulated HNS holds, its counters and its heap. */
  async hns(): Promise<HnsState> {
    return (await this.#call("hns")) as unknown as HnsState;
  }

  /** HNS calls per C function so far. */
  async callCounts(): Promise<CallCounts> {
    return (await this.hns()).calls;
  }

  /**
   * Give the emulated HNS a reserve of `bytes` (bench/emulator.ts
   * `reserveHeap`), before an agent is measured: while its blocks fit it,
   * the pages it holds do not move, so the host's RSS and high-water mark
   * less them are the agent's exactly. The bytes reserved (0: reserved before).
   */
  async reserveEmulatorHeap(bytes: number): Promise<number> {
    return (await this.#call("reserveHeap", { bytes })).reserved as number;
  }

  /** Forget every HNS object, handle and counter. */
  async reset(): Promise<void> {
    await this.#call("reset");
  }

  /** Write every HNS object to `path`. */
  async saveState(path: string): Promise<void> {
    await this.#call("saveState", { path });
  }

  /** Replace every HNS object with those {@link saveState} wrote to `path`. */
  async loadSavedState(path: string): Promise<void> {
    await this.#call("loadState", { path });
  }

  /**
   * A fresh host holding the same HNS objects, this one closed: what an
   * agent restart on a node is (a new process, HNS as it was). Counters,
   * latency settings and handles are not carried over. Throws if an agent
   * still runs here.
   */
  async handOver(): Promise<AgentHost> {
    if (this.#agent) throw new Error("agent host: stop the agent before handing HNS over");
    const dir = await Deno.makeTempDir({ prefix: "hnsbench-hns-" });
    try {
      const path = `${dir}/hns.json`;
      await this.saveState(path);
      await this.close();
      const next = await AgentHost.start();
      try {
        await next.loadSavedState(path);
      } catch (err) {
        await next.close();
        throw err;
      }
      return next;
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }

  /** Sleep this long in every HCN call. */
  async setLatencyMicros(us: number): Promise<void> {
    await this.#call("latency", { us });
  }

  /** Every HCN call takes `baseUs` + `slopeNs` × objects held; `serial`: one at a time. */
  async setLatencyModel(baseUs: number, slopeNs: number, serial: boolean): Promise<void> {
    await this.#call("latencyModel", { baseUs, slopeNs, serial });
  }

  /**
   * Give the node its HNS before the agent: the network and the CNI's local
   * endpoints, replacing what this host's HNS holds. A throwaway host makes
   * them (JS over the FFI binding, as the CNI would) and this one loads what
   * it saved in C, so this host's heap and touched code stay those of a
   * process that has only loaded the agent; its call counters stay at 0.
   */
  async seed(spec: ScenarioSpec): Promise<void> {
    const dir = await Deno.makeTempDir({ prefix: "hnsbench-seed-" });
    try {
      const path = `${dir}/hns.json`;
      await AgentHost.saveSeed(spec, path);
      await this.loadSavedState(path);
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }

  /**
   * Write the node's HNS before the agent (see {@link seed}) to `path`, as
   * {@link saveState} does, made in a throwaway host: for a host's
   * {@link loadSavedState} or a process's `HNSEMU_LOAD_STATE`.
   */
  static async saveSeed(spec: ScenarioSpec, path: string): Promise<void> {
    const seeder = await AgentHost.start();
    try {
      await seeder.#call("seed", { spec });
      await seeder.saveState(path);
    } finally {
      await seeder.close();
    }
  }

  /** Wait until HNS holds exactly the expected objects; when (procstat `now`). */
  async waitConverged(expected: ExpectedHns, timeoutMs: number): Promise<number> {
    const m = await this.#call("waitConverged", {
      loadBalancers: expected.loadBalancers,
      endpoints: expected.endpoints,
      timeoutMs,
    });
    return m.at as number;
  }

  /** Wait until no HNS call has been made for `quietMs`; the time of the last call. */
  async waitQuiet(quietMs: number, timeoutMs: number): Promise<number> {
    return (await this.#call("waitQuiet", { quietMs, timeoutMs })).at as number;
  }

  /** Read HNS back in the host and check its content; the failures found. */
  async verify(
    spec: ScenarioSpec,
    expected: ExpectedHns,
    label: string,
    extras: ReadonlyMap<number, number> = new Map(),
  ): Promise<string[]> {
    const m = await this.#call("verify", { spec, expected, label, extras: [...extras] });
    return m.failures as string[];
  }

  /**
   * The host's memory now; with `gc`, after a full GC and giving free native
   * memory back (not with `trim` false: a node's agent never gives it back).
   * In a peak window ({@link startPeak}) a GC here is not counted in the peak.
   */
  async memory(gc = false, trim = true): Promise<MemorySample> {
    return (await this.#call("memory", { gc, trim })).memory as MemorySample;
  }

  /**
   * Reset the host's peak RSS and start a peak window: from now, the host
   * reads its RSS, high-water mark and the emulated HNS's heap together
   * every `intervalMs`, for the agent's peak without the emulated HNS
   * (bench/memory_peak.ts); see {@link readPeak}.
   */
  async startPeak(intervalMs = 50): Promise<void> {
    await this.#call("peakStart", { intervalMs });
  }

  /** The agent's peak of the window {@link startPeak} began so far; with `stop`, ending it. */
  async readPeak(stop = false): Promise<AgentPeakFigure> {
    return (await this.#call("peakRead", { stop })).peak as AgentPeakFigure;
  }

  /** The sample taken after the running agent's first sync, if any yet. */
  async firstSyncMemory(): Promise<MemorySample | undefined> {
    return (await this.#call("firstSync")).memory as MemorySample | undefined;
  }

  /** Write a heap snapshot of the host's (the agent's) isolate; how long it took, ms. */
  async writeHeapSnapshot(path: string): Promise<number> {
    return (await this.#call("heapSnapshot", { path })).ms as number;
  }

  /** CPU used so far by the host and by its main thread. */
  cpu(): CpuTimes {
    return cpuTimes(this.pid);
  }

  /** The host's RSS now. */
  rss(): number {
    return rssBytes(this.pid);
  }

  /** The host's peak RSS since the last {@link resetPeakRss}. */
  peakRss(): number {
    return peakRssBytes(this.pid);
  }

  /** Restart the host's peak-RSS accounting at its current RSS. */
  resetPeakRss(): boolean {
    return resetPeakRss(this.pid);
  }

  /** Ask for the HNS call counts with every sync (see {@link SyncRecord.calls}). */
  async countsOnSync(on: boolean): Promise<void> {
    this.#countsOnSync = on;
    await this.#watch();
  }

  /** Set (or clear) the listener of the agent's LB writes; resolves once the host streams them. */
  async onLbWrite(listener: LbWriteListener | undefined): Promise<void> {
    this.#lbListener = listener;
    await this.#watch();
  }

  /** Set (or clear) the listener of the agent's listings. */
  async onListing(listener: ((s: EnumerateSpan) => void) | undefined): Promise<void> {
    this.#listingListener = listener;
    await this.#watch();
  }

  #watch(): Promise<Message> {
    return this.#call("watch", {
      lbWrites: this.#lbListener !== undefined,
      listings: this.#listingListener !== undefined,
      countsOnSync: this.#countsOnSync,
    });
  }

  /** Start the agent in the host. */
  async startAgent(opts: BenchAgentOptions): Promise<BenchAgent> {
    if (this.#agent) throw new Error("agent host: an agent is already running");
    const m = await this.#call("start", { options: opts });
    const agent = {
      config: m.config as BenchAgentConfig,
      startedAt: m.startedAt as number,
      syncs: [] as SyncRecord[],
      readyAt: undefined as number | undefined,
      readyWaiters: [] as (() => void)[],
      onSync: undefined as ((s: SyncRecord) => void) | undefined,
      ready: (timeoutMs: number) =>
        withTimeout(
          new Promise<number>((resolve) => {
            if (agent.readyAt !== undefined) resolve(agent.readyAt);
            else agent.readyWaiters.push(() => resolve(agent.readyAt!));
          }),
          timeoutMs,
        ),
      stop: async () => {
        const log = (await this.#call("stop")) as unknown as AgentLog;
        if (this.#agent === agent) this.#agent = undefined;
        return log;
      },
    };
    this.#agent = agent;
    return agent;
  }

  /** Start the agent and wait for its first programming: the agent and when (NaN: not in time). */
  async startAgentReady(
    opts: BenchAgentOptions,
    timeoutMs: number,
  ): Promise<{ agent: BenchAgent; readyAt: number }> {
    const agent = await this.startAgent(opts);
    return { agent, readyAt: await agent.ready(timeoutMs) };
  }

  /** What the running agent logged so far. */
  async log(): Promise<AgentLog> {
    return (await this.#call("log")) as unknown as AgentLog;
  }

  /**
   * Resident memory of one HNS thread, bytes: measured in a fresh host
   * that starts `threads` of them (each loads the library and answers a
   * batch of calls) and runs no agent; `rss` in all, `malloc` the part of
   * it in malloc (which a process's malloc in use counts too).
   */
  static async threadCost(threads = 4): Promise<{ rss: number; malloc: number }> {
    const host = await AgentHost.start();
    try {
      const m = await host.#call("threadCost", { threads });
      return {
        rss: ((m.after as number) - (m.before as number)) / threads,
        malloc: ((m.mallocAfter as number) - (m.mallocBefore as number)) / threads,
      };
    } finally {
      await host.close();
    }
  }

  /**
   * The memory of a bare agent process before it starts (bench/bare_agent_proc.ts),
   * run as the host is: what the host's memory before its agent starts,
   * less the emulated HNS, compares with.
   */
  static async bareAgentMemory(): Promise<BareAgentMemory> {
    const bare = agentProcess(new URL("./bare_agent_proc.ts", import.meta.url));
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...bare.args],
      env: bare.env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout).trim();
    if (!out.success) {
      throw new Error(
        `bare agent process failed (exit ${out.code}): ${new TextDecoder().decode(out.stderr)}`,
      );
    }
    return JSON.parse(text) as BareAgentMemory;
  }

  /** End the host process (a running agent is not stopped gracefully). */
  close(): Promise<void> {
    return this.#child.stop("exit");
  }
}
