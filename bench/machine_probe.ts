/**
 * The machine probes, each a fixed amount of single-threaded JavaScript work
 * timed in a fresh process: the compute probe does work of the agent's kind
 * on data that stays in the caches (parse a JSON list of services, key them
 * in a Map, walk it); the memory probe follows a chain of 2,000,000 objects
 * in a shuffled order, one cache miss per step, over a heap about the size
 * of the agent's at its peak. bench/main.ts runs both before and after each
 * scenario process and prints their times beside the scenario's figures.
 *
 * Why: on the shared 2-core machines the benchmark runs on, the same cold
 * start has taken 1,680–2,960 ms of main-thread CPU within one hour: the CPU
 * time charged for the same work moves with the host's other load, as far
 * as can be told (the guest reports no steal time). A first version of the
 * compute probe took 480–870 ms in that hour. The probes let a missed time
 * target be read against how fast the machine was around it, but only
 * loosely (a second or two is not the scenario's minutes), and they are not
 * targets. In nine cold starts at 10,000 services, each between two runs of
 * both probes (the same day), the main thread's CPU followed the memory
 * probe more closely than the compute probe (correlation 0.85 against 0.75;
 * 0.57 against 0.24 without the slowest round), which fits a cold start
 * that misses the caches as the memory probe does.
 *
 * `deno run bench/machine_probe.ts` prints the two wall times in ms: the
 * compute probe's, then the memory probe's.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { prng } from "../tests/prng.ts";

/** Services in the probe's list. */
const PROBE_SERVICES = 20_000;
/** Rounds timed (after {@link WARMUP_ROUNDS} untimed ones). */
const PROBE_ROUNDS = 10;
const WARMUP_ROUNDS = 3;

/** The JSON text the probe parses: `PROBE_SERVICES` services, the same every run. */
export function probeList(): string {
  const items = [];
  for (let i = 0; i < PROBE_SERVICES; i++) {
    items.push({
      metadata: {
        name: `svc-${i}`,
        namespace: `ns-${i % 50}`,
        uid: `00000000-0000-4000-8000-${i.toString(16).padStart(12, "0")}`,
      },
      spec: {
        clusterIP: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
        ports: [{ name: "http", port: 80 + (i % 7), protocol: "TCP", targetPort: 8080 }],
      },
    });
  }
  return JSON.stringify({ kind: "ServiceList", items });
}

/**
 * One round of the probe's work on `text` (from {@link probeList}): a
 * checksum of what it built, the same for the same text, so the work cannot
 * be optimised away and a test can hold it.
 */
export function probeRound(text: string): number {
  const list = JSON.parse(text) as {
    items: {
      metadata: { name: string; namespace: string };
      spec: { clusterIP: string; ports: { port: number }[] };
    }[];
  };
  const byKey = new Map<string, { ip: string; port: number }>();
  for (const s of list.items) {
    byKey.set(`${s.metadata.namespace}/${s.metadata.name}`, {
      ip: s.spec.clusterIP,
      port: s.spec.ports[0].port,
    });
  }
  let sum = 0;
  for (const [key, v] of byKey) sum = (sum + key.length * v.port + v.ip.length) % 1_000_000_007;
  return sum;
}

/** Run the compute probe in this process: its timed rounds' wall time, ms. */
export function runProbe(): number {
  const text = probeList();
  let sink = 0;
  for (let i = 0; i < WARMUP_ROUNDS; i++) sink += probeRound(text);
  const started = performance.now();
  for (let i = 0; i < PROBE_ROUNDS; i++) sink += probeRound(text);
  const ms = performance.now() - started;
  if (sink < 0) throw new Error("unreachable: checksums are not negative");
  return ms;
}

/** Objects in the memory probe's chain. */
const CHAIN_LENGTH = 2_000_000;
/** Times the memory probe follows the whole chain (after one untimed pass). */
const CHAIN_PASSES = 2;

/** One link of the memory probe's chain. */
export interface ChainLink {
  /** The next link; the last links back to the first. */
  next: ChainLink;
  /** The link's place in creation order. */
  value: number;
}

/**
 * `n` links, each pointing to the next in a shuffled order (the same for
 * the same `n`) that visits every link once and comes back: following it
 * touches memory in no order the caches or the prefetcher can guess.
 * Returns the link creation made first.
 */
export function shuffledChain(n: number): ChainLink {
  const links: ChainLink[] = new Array(n);
  for (let i = 0; i < n; i++) links[i] = { next: undefined!, value: i };
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const random = prng(12345);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  for (let i = 0; i < n; i++) links[order[i]].next = links[order[(i + 1) % n]];
  return links[0];
}

/** Follow `steps` links from `start`: the sum of their values (so the walk is not optimised away) and where it ended. */
export function followChain(start: ChainLink, steps: number): { sum: number; end: ChainLink } {
  let link = start;
  let sum = 0;
  for (let i = 0; i < steps; i++) {
    sum += link.value;
    link = link.next;
  }
  return { sum, end: link };
}

/** Run the memory probe in this process: its timed passes' wall time, ms. */
export function runMemoryProbe(): number {
  const start = shuffledChain(CHAIN_LENGTH);
  let sink = followChain(start, CHAIN_LENGTH).sum;
  const started = performance.now();
  sink += followChain(start, CHAIN_PASSES * CHAIN_LENGTH).sum;
  const ms = performance.now() - started;
  if (sink < 0) throw new Error("unreachable: sums of link values are not negative");
  return ms;
}

/** The two probes' times, ms; each absent when it could not run. */
export interface ProbeTimes {
  /** {@link runProbe}'s. */
  compute?: number;
  /** {@link runMemoryProbe}'s. */
  memory?: number;
}

/**
 * Run both probes in a fresh process (so that no earlier work warmed or
 * filled this one) and return their times; empty when it could not run.
 */
export async function probeMachine(): Promise<ProbeTimes> {
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", fileURLToPath(import.meta.url)],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    if (!out.success) return {};
    const [compute, memory] = new TextDecoder().decode(out.stdout).trim().split(/\s+/).map(Number);
    return {
      compute: Number.isFinite(compute) ? compute : undefined,
      memory: Number.isFinite(memory) ? memory : undefined,
    };
  } catch {
    return {};
  }
}

if (import.meta.main) console.log(`${runProbe().toFixed(0)} ${runMemoryProbe().toFixed(0)}`);
