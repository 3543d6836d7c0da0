/**
 * The agent host: the process the benchmark measures as the agent. It loads
 * the HNS emulator library (one library file in one process is one HNS) and
 * runs the real agent (lib/agent.ts) in it over the real FFI binding and
 * HNS threads, behind the probe (bench/probe.ts). Driven by JSON lines on
 * stdin (bench/jsonl.ts; the bench's side is bench/agent_host.ts).
 *
 * Rules:
 * - It holds as little as possible besides the agent and the emulated HNS:
 *   no record of syncs or writes (each is sent to the bench as an event and
 *   forgotten), no cluster spec except while seeding or verifying, which the
 *   bench does only before or after a measured window; both call the
 *   library synchronously on this thread, so the host starts no HNS threads
 *   of its own.
 * - Before its agent starts it has loaded what the agent's process loads
 *   and little else: the seeding and verifying code is imported on first
 *   use (the bench seeds in a throwaway host and loads the saved state
 *   here, bench/agent_host.ts), so its memory before the start is a bare
 *   agent process's plus the emulated HNS.
 * - Every time it reports is the bench's clock (procstat `now`), comparable
 *   with the bench's API write times.
 * - Before an agent starts, the bench has the host collect garbage and give
 *   free native memory back (`memory {gc}`): a started agent is a fresh
 *   process on a node, so what an earlier agent or a heap snapshot freed is
 *   not counted as the next agent's.
 * - After the first sync of each agent it takes a memory sample (V8 heap,
 *   malloc in use, the emulated HNS's heap, threads): the composition
 *   of memory at about the agent's peak, the first sync's garbage included.
 * - It loads no `node:` built-in (Node compatibility, ~4 MiB RSS, which
 *   the agent's process does not load) unless a diagnostic needs it: the
 *   memory trace (node:v8 for the heap by space, node:inspector for
 *   HNSBENCH_HEAP_PROFILE) and heap snapshots. So its memory samples have
 *   no V8 heap by space without a trace (bench/process_memory.ts).
 *
 * Events: `sync` (each sync, with the HNS call counts when `countsOnSync`),
 * `lb` (each LB write, while `lbWrites`), `listing` (each Enumerate, while
 * `listings`), `ready` (the agent's first programming is done).
 *
 * Commands: `hns`, `reset`, `reserveHeap {bytes}`, `saveState {path}`, `loadState {path}`, `latency {us}`, `latencyModel {baseUs, slopeNs,
 * serial}`, `seed {spec}`, `waitConverged {loadBalancers, endpoints,
 * timeoutMs}`, `waitQuiet {quietMs, timeoutMs}`, `start {options}`, `stop`,
 * `log`, `watch {lbWrites, listings, countsOnSync}`, `memory {gc, trim}`,
 * `peakStart {intervalMs}`, `peakRead {stop}`,
 * `firstSync`, `heapSnapshot {path}`, `verify {spec, expected, label,
 * extras}`, `threadCost {threads}`, `exit`.
 *
 * @module
 */

import { type Agent, startAgent } from "../lib/agent.ts";
import type { Config } from "../lib/config/types.ts";
import { openFfiHcnApi } from "../lib/hns/ffi.ts";
import { opIndex } from "../lib/hns/hcn_threads.ts";
import { KubeClient } from "../lib/kube/client.ts";
import type { SyncReport } from "../lib/proxy/syncer.ts";
import { Emulator, openSyncHcnApi, totalCalls, writeCalls } from "./emulator.ts";
import {
  type BenchAgentOptions,
  benchConfig,
  CountingLogger,
  sleep,
  type SyncRecord,
  waitUntil,
} from "./harness.ts";
import { type JsonLinesServer, type Message, serveJsonLines } from "./jsonl.ts";
import { mallocFree, mallocInUse, mallocTrim } from "./malloc.ts";
import { type ProbedHcnApi, probeHcnApi } from "./probe.ts";
import { loadHeapSpaceStatistics, type ProcessMemory, processMemory } from "./process_memory.ts";
import { AgentPeak, type AgentPeakFigure } from "./memory_peak.ts";
import {
  collectGarbage,
  mainThreadSchedMs,
  now,
  peakRssBytes,
  resetPeakRss,
  rssBytes,
  threadCounts,
} from "./procstat.ts";
import type { ExpectedHns, ScenarioSpec } from "./scenario.ts";

type NodeV8 = typeof import("node:v8");
type NodeInspector = typeof import("node:inspector");

/** Memory of the host at one moment, bytes (its malloc in use includes the emulated HNS). */
export interface MemorySample extends ProcessMemory {
  /** When ({@link now}). */
  at: number;
  /** The host's own clock then (`performance.now()`, ms since it began, as `--trace-gc`). */
  uptimeMs: number;
  /** Peak RSS since the bench last reset it. */
  peakRss: number;
  /** The pages the emulated HNS holds, off malloc (HnsEmuHeapBytes). */
  emulatorHeap: number;
  /** Threads of the process. */
  threads: number;
  /** Worker threads (the agent's HNS threads). */
  hnsThreads: number;
}

function memorySample(emulator: Emulator): MemorySample {
  const threads = threadCounts();
  return {
    ...processMemory(),
    at: now(),
    uptimeMs: performance.now(),
    peakRss: peakRssBytes(),
    emulatorHeap: emulator.heapBytes(),
    threads: threads.all,
    hnsThreads: threads.workers,
  };
}

/**
 * With env HNSBENCH_MEM_TRACE naming a file, a started agent's memory is
 * sampled every 50 ms for its first 30 s (HNSBENCH_MEM_TRACE_S: that many
 * seconds instead; RSS and peak RSS, V8 heap by space (used, resident), malloc in use and
 * free, the emulated HNS's heap, HNS threads, HNS calls and writes so far)
 * and each info line
 * the agent logs is a marked sample; the samples are written to the file,
 * one JSON line each, when the agent stops. For finding when the peak
 * happens and what it is made of; off by default (it costs the agent's
 * thread a little every 50 ms, and it loads node:v8, and node:inspector
 * with HNSBENCH_HEAP_PROFILE, before the agent starts: Node compatibility,
 * ~4 MiB more RSS in every sample and peak, which a bare agent does not have).
 */
class MemoryTrace {
  readonly #lines: string[] = [];
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #emulator: Emulator;
  readonly #path: string;
  readonly #v8: NodeV8;
  readonly #inspector?: NodeInspector;
  #writes = 0;

  /** Start tracing; create with {@link MemoryTrace.start}, which loads what it needs. */
  private constructor(path: string, emulator: Emulator, v8: NodeV8, inspector?: NodeInspector) {
    this.#path = path;
    this.#emulator = emulator;
    this.#v8 = v8;
    this.#inspector = inspector;
    this.mark("agent start");
    const until = performance.now() + 1000 * Number(Deno.env.get("HNSBENCH_MEM_TRACE_S") ?? 30);
    this.#timer = setInterval(() => {
      if (performance.now() > until) clearInterval(this.#timer);
      else this.mark("");
      const writes = writeCalls(this.#emulator.callCounts());
      if (Math.floor(writes / 10_000) > Math.floor(this.#writes / 10_000)) {
        this.mark(`${writes} writes`);
      }
      this.#writes = writes;
    }, 50);
  }

  /** Load node:v8 (and node:inspector for HNSBENCH_HEAP_PROFILE), then start tracing. */
  static async start(path: string, emulator: Emulator): Promise<MemoryTrace> {
    await loadHeapSpaceStatistics();
    const v8 = await import("node:v8");
    const inspector = Deno.env.get("HNSBENCH_HEAP_PROFILE")
      ? await import("node:inspector")
      : undefined;
    return new MemoryTrace(path, emulator, v8, inspector);
  }

  /** Take a sample, marked with `what` (empty for a timer's sample). */
  mark(what: string): void {
    if (what) this.#profile(what);
    // HNSBENCH_MEM_SNAPSHOT=<dir>,<mark>,<mark>...: a heap snapshot at each info line beginning with a mark.
    const [dir, ...marks] = (Deno.env.get("HNSBENCH_MEM_SNAPSHOT") ?? "").split(",");
    if (dir && what && marks.some((m) => what.startsWith(m))) {
      this.#v8.writeHeapSnapshot(`${dir}/${Deno.pid}-${what.replaceAll(" ", "_")}.heapsnapshot`);
    }
    // HNSBENCH_MEM_TRACE_GC=1: a full GC first at each mark, so that heapUsed is what is live.
    if (what && Deno.env.get("HNSBENCH_MEM_TRACE_GC") === "1") collectGarbage();
    const counts = this.#emulator.callCounts();
    const heap = this.#v8.getHeapStatistics();
    const spaces: Record<string, number> = {};
    const spacesPhys: Record<string, number> = {};
    for (const s of this.#v8.getHeapSpaceStatistics()) {
      const name = s.space_name.replace("_space", "");
      if (s.space_used_size > 0) spaces[name] = s.space_used_size;
      if (s.physical_space_size > 0) spacesPhys[name] = s.physical_space_size;
    }
    this.#lines.push(JSON.stringify({
      t: Math.round(performance.now()),
      what,
      rss: rssBytes(),
      peak: peakRssBytes(),
      emu: this.#emulator.heapBytes(),
      malloc: mallocInUse(),
      mallocFree: mallocFree(),
      hnsThreads: threadCounts().workers,
      heapUsed: heap.used_heap_size,
      heapPhys: heap.total_physical_size,
      external: heap.external_memory,
      spaces,
      spacesPhys,
      calls: totalCalls(counts),
      writes: writeCalls(counts),
      // The main thread's CPU and its wait for a CPU so far (ms): the start's CPU until ready.
      main: mainThreadSchedMs(),
    }));
  }

  #session?: InstanceType<NodeInspector["Session"]>;

  /**
   * HNSBENCH_HEAP_PROFILE=<path>,<from mark>,<to mark>: a sampling heap
   * profile of everything allocated (collected objects included) between
   * the first info lines that begin with those marks, written to path.
   */
  #profile(what: string): void {
    const [path, from, to] = (Deno.env.get("HNSBENCH_HEAP_PROFILE") ?? "").split(",");
    if (!path || !this.#inspector) return;
    if (!this.#session && what.startsWith(from)) {
      this.#session = new this.#inspector.Session();
      this.#session.connect();
      this.#session.post("HeapProfiler.enable");
      this.#session.post("HeapProfiler.startSampling", {
        samplingInterval: 8192,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true,
      });
    } else if (this.#session && what.startsWith(to)) {
      const session = this.#session;
      session.post("HeapProfiler.stopSampling", (err, r) => {
        if (!err) Deno.writeTextFileSync(`${path}.${Date.now()}`, JSON.stringify(r.profile));
        session.disconnect();
      });
      this.#session = undefined;
      Deno.env.delete("HNSBENCH_HEAP_PROFILE");
    }
  }

  /** Stop sampling and write the samples. */
  close(): void {
    clearInterval(this.#timer);
    Deno.writeTextFileSync(this.#path, this.#lines.join("\n") + "\n", { append: true });
  }
}

/**
 * The agent's peak RSS without the emulated HNS over a window (`peakStart`
 * to `peakRead`): the host's RSS, high-water mark and the emulator's heap
 * read together every `intervalMs` (bench/memory_peak.ts). The bench's own
 * forced collections and heap snapshots in the window are not the agent's:
 * a reading is taken before one and the high-water mark is reset after it.
 */
class PeakWatch {
  readonly #peak = new AgentPeak();
  readonly #emulator: Emulator;
  readonly #timer: ReturnType<typeof setInterval>;

  /** Reset the high-water mark and start reading. */
  constructor(emulator: Emulator, intervalMs: number) {
    this.#emulator = emulator;
    resetPeakRss();
    this.read();
    this.#timer = setInterval(() => this.read(), intervalMs);
  }

  /** Take a reading now; the peak so far. */
  read(): AgentPeakFigure {
    this.#peak.add({ rss: rssBytes(), hwm: peakRssBytes(), emu: this.#emulator.heapBytes() });
    return this.#peak.figure;
  }

  /** Run the bench's own `fn` outside the window: read before it, reset the mark after it. */
  async aside<T>(fn: () => T | Promise<T>): Promise<T> {
    this.read();
    try {
      return await fn();
    } finally {
      resetPeakRss();
      this.read();
    }
  }

  /** Stop reading; the peak. */
  stop(): AgentPeakFigure {
    clearInterval(this.#timer);
    return this.read();
  }
}

/** What the bench asked to be told about. */
interface Watch {
  lbWrites: boolean;
  listings: boolean;
  countsOnSync: boolean;
}

/** The agent while it runs, with what observes it. */
interface Running {
  agent: Agent;
  config: Config;
  probe: ProbedHcnApi;
  kubeClient: KubeClient;
  logger: CountingLogger;
  startedAt: number;
  /** The sample taken right after the first (`start`) sync. */
  firstSync?: MemorySample;
  /** Memory samples over the start, with HNSBENCH_MEM_TRACE. */
  trace?: MemoryTrace;
}

/** Start the agent under observation; see the module notes. */
async function startObserved(
  opts: BenchAgentOptions,
  emulator: Emulator,
  watch: Watch,
  out: JsonLinesServer,
): Promise<Running> {
  const config = benchConfig(opts, emulator.library);
  const logger = new CountingLogger();
  const tracePath = Deno.env.get("HNSBENCH_MEM_TRACE");
  const trace = tracePath ? await MemoryTrace.start(tracePath, emulator) : undefined;
  if (trace) {
    const info = logger.info.bind(logger);
    logger.info = (message, fields) => {
      trace.mark(message);
      info(message, fields);
    };
  }
  const probe = probeHcnApi(
    openFfiHcnApi({ library: emulator.library, threads: config.hnsConcurrency }),
  );
  const kubeClient = KubeClient.connect({
    master: opts.apiUrl,
    // An empty environment: never pick up the host's kubeconfig.
    env: { get: () => undefined },
  });
  setWatch(probe, watch, out);
  const startedAt = now();
  let agent: Agent;
  try {
    agent = await startAgent(config, {
      logger,
      hcnApi: probe,
      kubeClient,
      serviceHealthChecks: false,
    });
  } catch (err) {
    kubeClient.close();
    probe.dispose();
    throw err;
  }
  const running: Running = { agent, config, probe, kubeClient, logger, startedAt, trace };
  // Observe every run of the syncer (the runner calls it through the property).
  const syncer = agent.syncer as unknown as { sync: () => Promise<SyncReport> };
  const original = syncer.sync.bind(agent.syncer);
  syncer.sync = async () => {
    const t = now();
    const report = await original();
    const record: SyncRecord = {
      startedAt: t,
      ms: now() - t,
      kind: report.kind,
      resynced: report.resynced,
      ops: report.plan?.ops.length ?? 0,
      writes: report.result?.writes ?? 0,
      startMode: report.startMode,
    };
    // After a fast start the state is built by the next start run: that is the first sync done.
    if (report.kind === "start" && report.startMode !== "fast" && !running.firstSync) {
      running.trace?.mark("first sync done");
      running.firstSync = memorySample(emulator);
    }
    if (watch.countsOnSync) record.calls = emulator.callCounts();
    out.emit({ ev: "sync", ...record });
    return report;
  };
  agent.ready.then(() => out.emit({ ev: "ready", at: now() }), () => {});
  return running;
}

function setWatch(probe: ProbedHcnApi, watch: Watch, out: JsonLinesServer): void {
  probe.onLbWrite(watch.lbWrites ? (w) => out.emit({ ev: "lb", ...w }) : undefined);
  probe.onEnumerate(watch.listings ? (s) => out.emit({ ev: "listing", ...s }) : undefined);
}

/**
 * Start `threads` HNS threads as the agent's FFI binding does (a worker
 * that loads the library and answers a batch of calls); RSS and malloc in
 * use before and after, for the cost of one thread. Only in a host that
 * runs no agent.
 */
async function threadCost(library: string, threads: number) {
  collectGarbage();
  mallocTrim();
  await sleep(100);
  const before = rssBytes();
  const mallocBefore = mallocInUse();
  const workers: Worker[] = [];
  for (let k = 0; k < threads; k++) {
    const w = new Worker(new URL("../lib/hns/hcn_thread.ts", import.meta.url), {
      type: "module",
    });
    workers.push(w);
    const answered = new Promise((resolve) => (w.onmessage = resolve));
    w.postMessage({ library });
    const batch: unknown[] = [];
    for (let i = 0; i < 50; i++) {
      batch.push(opIndex("hnsCall"), "", "GET", "/globals/version", "");
      batch.push(opIndex("enumerate"), "LoadBalancer", "{}", undefined, undefined);
    }
    w.postMessage(batch);
    await answered;
  }
  await sleep(200);
  return { before, after: rssBytes(), mallocBefore, mallocAfter: mallocInUse(), threads };
}

async function main(): Promise<void> {
  const emulator = await Emulator.open();
  let running: Running | undefined;
  let peak: PeakWatch | undefined;
  const watch: Watch = { lbWrites: false, listings: false, countsOnSync: false };
  const log = () =>
    running
      ? {
        errors: running.logger.errors,
        warnings: running.logger.warnings,
        samples: running.logger.samples,
      }
      : {};

  await serveJsonLines(async (c, out): Promise<Message | void> => {
    switch (c.cmd) {
      case "hns":
        return {
          calls: emulator.callCounts(),
          loadBalancers: emulator.objectCount("LoadBalancer"),
          endpoints: emulator.objectCount("Endpoint"),
          heapBytes: emulator.heapBytes(),
          heapInUse: emulator.heapInUse(),
          ...emulator.leaks(),
        };
      case "reset":
        emulator.reset();
        return;
      case "reserveHeap":
        return { reserved: emulator.reserveHeap(c.bytes as number) };
      case "saveState":
        emulator.saveState(c.path as string);
        return;
      case "loadState":
        emulator.loadState(c.path as string);
        return;
      case "latency":
        emulator.setLatencyMicros(c.us as number);
        return;
      case "latencyModel":
        emulator.setLatencyModel(c.baseUs as number, c.slopeNs as number, c.serial as boolean);
        return;
      case "seed": {
        const { seedNodeHns } = await import("./seed.ts");
        return { networkId: await seedNodeHns(emulator, c.spec as ScenarioSpec) };
      }
      case "waitConverged": {
        const lbs = c.loadBalancers as number;
        const eps = c.endpoints as number;
        try {
          const at = await waitUntil(
            () =>
              emulator.objectCount("LoadBalancer") === lbs &&
              emulator.objectCount("Endpoint") === eps,
            c.timeoutMs as number,
            "convergence",
          );
          return { at };
        } catch (err) {
          throw new Error(
            `${(err as Error).message} (load balancers ${emulator.objectCount("LoadBalancer")}, ` +
              `endpoints ${emulator.objectCount("Endpoint")})`,
          );
        }
      }
      case "waitQuiet": {
        // No HNS call for quietMs: the agent is idle. Answers with the time of the last call seen.
        const deadline = performance.now() + (c.timeoutMs as number);
        let last = totalCalls(emulator.callCounts());
        let lastChange = now();
        while (now() - lastChange < (c.quietMs as number)) {
          if (performance.now() > deadline) {
            throw new Error(`HNS calls did not stop within ${c.timeoutMs} ms`);
          }
          await sleep(10);
          const calls = totalCalls(emulator.callCounts());
          if (calls !== last) {
            last = calls;
            lastChange = now();
          }
        }
        return { at: lastChange };
      }
      case "start": {
        if (running) throw new Error("an agent is already running");
        running = await startObserved(c.options as BenchAgentOptions, emulator, watch, out);
        return {
          startedAt: running.startedAt,
          config: {
            minSyncPeriodMs: running.config.minSyncPeriodMs,
            syncPeriodMs: running.config.syncPeriodMs,
            hnsConcurrency: running.config.hnsConcurrency,
          },
        };
      }
      case "stop": {
        if (!running) return {};
        const r = running;
        const summary = log();
        // Forget the agent first: nothing here keeps it alive once it has stopped.
        running = undefined;
        r.trace?.close();
        await r.agent.stop();
        r.kubeClient.close();
        return summary;
      }
      case "log":
        return log();
      case "watch":
        watch.lbWrites = c.lbWrites === true;
        watch.listings = c.listings === true;
        watch.countsOnSync = c.countsOnSync === true;
        if (running) setWatch(running.probe, watch, out);
        return;
      case "memory": {
        const sample = () => {
          if (c.gc) {
            collectGarbage();
            if (c.trim !== false) mallocTrim();
          }
          return { memory: memorySample(emulator) };
        };
        return c.gc && peak ? await peak.aside(sample) : sample();
      }
      case "peakStart":
        peak?.stop();
        peak = new PeakWatch(emulator, c.intervalMs as number);
        return;
      case "peakRead": {
        if (!peak) throw new Error("no peak window started (peakStart)");
        const figure = c.stop ? peak.stop() : peak.read();
        if (c.stop) peak = undefined;
        return { peak: figure };
      }
      case "firstSync":
        return { memory: running?.firstSync };
      case "heapSnapshot": {
        const write = async () => {
          const started = performance.now();
          const { writeHeapSnapshot } = await import("node:v8");
          writeHeapSnapshot(c.path as string);
          return { ms: performance.now() - started };
        };
        return peak ? await peak.aside(write) : await write();
      }
      case "verify": {
        const { contentFailures } = await import("./verify.ts");
        const api = openSyncHcnApi(emulator.library);
        try {
          const failures = await contentFailures(
            api,
            c.spec as ScenarioSpec,
            c.expected as ExpectedHns,
            c.label as string,
            new Map(c.extras as [number, number][]),
          );
          return { failures };
        } finally {
          api.dispose();
        }
      }
      case "threadCost":
        return await threadCost(emulator.library, c.threads as number);
      case "exit":
        await out.answer(c.id, { ok: true });
        await out.close();
        // The agent's libraries may keep the event loop alive; the bench is done with us.
        Deno.exit(0);
        break;
      default:
        throw new Error(`unknown command ${c.cmd}`);
    }
  });
}

if (import.meta.main) await main();
