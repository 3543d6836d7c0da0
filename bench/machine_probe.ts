/**
 * The machine probe: a fixed amount of single-threaded JavaScript work of
 * the agent's kind (parse a JSON list of services, key them in a Map, walk
 * it), timed in a fresh process. bench/main.ts runs it before and after each
 * scenario and prints its time beside the scenario's figures.
 *
 * Why: on the shared 2-core machines the benchmark runs on, the same cold
 * start has taken 1,680–2,960 ms of main-thread CPU within one hour: the CPU
 * time charged for the same work moves with the host's other load, as far
 * as can be told (the guest reports no steal time). A first version of this
 * work took 480–870 ms in
 * that hour, so a missed time target can be read against how fast the
 * machine was around it. It reads the machine only loosely (its half second
 * is not the scenario's minutes), and it is not a target.
 *
 * `deno run bench/machine_probe.ts` prints the work's wall time in ms.
 *
 * @module
 */

import { fileURLToPath } from "node:url";

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

/** Run the probe in this process: its timed rounds' wall time, ms. */
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

/**
 * Run the probe in a fresh process (so that no earlier work warmed or
 * filled this one) and return its ms, or undefined when it could not run.
 */
export async function probeMachine(): Promise<number | undefined> {
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", fileURLToPath(import.meta.url)],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    const ms = Number(new TextDecoder().decode(out.stdout).trim());
    return out.success && Number.isFinite(ms) ? ms : undefined;
  } catch {
    return undefined;
  }
}

if (import.meta.main) console.log(runProbe().toFixed(0));
