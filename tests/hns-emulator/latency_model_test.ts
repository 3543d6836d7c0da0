/**
 * The emulator's realistic-HNS knobs, through the real FFI binding: the
 * latency model (base + slope × objects held, optionally serialised) and the
 * heap counter the benchmarks subtract to measure the agent alone.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { createHnsClient } from "../../lib/hns/client.ts";
import { openFfiHcnApi } from "../../lib/hns/ffi.ts";
import { buildEmulator, privateCopy } from "./build.ts";

const CONTROL = {
  HnsEmuReset: { parameters: [], result: "void" },
  HnsEmuSetLatencyModel: { parameters: ["u32", "u32", "i32"], result: "void" },
  HnsEmuNextLatencyMicros: { parameters: [], result: "u32" },
  HnsEmuHeapInUse: { parameters: [], result: "i64" },
} as const;

/** A private emulator (its own HNS), its control exports and a typed client over FFI. */
async function withEmulator(
  body: (
    control: Deno.DynamicLibrary<typeof CONTROL>["symbols"],
    client: ReturnType<typeof createHnsClient>,
  ) => Promise<void>,
): Promise<void> {
  const copy = await privateCopy(await buildEmulator());
  const control = Deno.dlopen(copy, CONTROL);
  const api = openFfiHcnApi({ library: copy });
  try {
    control.symbols.HnsEmuReset();
    await body(control.symbols, createHnsClient(api));
  } finally {
    api.dispose();
    control.close();
    await Deno.remove(join(copy, ".."), { recursive: true });
  }
}

const lb = (port: number) => ({
  HostComputeEndpoints: [],
  FrontendVIPs: ["10.96.0.10"],
  PortMappings: [{ Protocol: 6, InternalPort: 80, ExternalPort: port }],
});

Deno.test("emulator: a call's latency grows with the objects HNS holds (base + slope x objects)", async () => {
  await withEmulator(async (control, client) => {
    control.HnsEmuSetLatencyModel(100, 1_000, 0); // 100 µs + 1 µs per object
    assert.equal(control.HnsEmuNextLatencyMicros(), 100);
    const ids: string[] = [];
    for (let port = 1; port <= 25; port++) {
      ids.push((await client.createLoadBalancer(lb(port))).ID!);
    }
    assert.equal(control.HnsEmuNextLatencyMicros(), 125);
    for (const id of ids.slice(0, 10)) await client.deleteLoadBalancer(id);
    assert.equal(control.HnsEmuNextLatencyMicros(), 115);
    control.HnsEmuSetLatencyModel(0, 0, 1);
    assert.equal(control.HnsEmuNextLatencyMicros(), 0);
    control.HnsEmuReset();
    assert.equal(control.HnsEmuNextLatencyMicros(), 0);
  });
});

Deno.test("emulator: serialised latency still answers every concurrent call correctly", async () => {
  await withEmulator(async (control, client) => {
    control.HnsEmuSetLatencyModel(200, 0, 1);
    const results = await Promise.allSettled(
      Array.from({ length: 4 }, () => client.createLoadBalancer(lb(80))),
    );
    // The port rule admits one winner whether calls overlap or queue.
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    assert.equal((await client.listLoadBalancers()).length, 1);
  });
});

Deno.test("emulator: its in-use counter follows the objects it holds and returns to the start", async () => {
  await withEmulator(async (control, client) => {
    const empty = Number(control.HnsEmuHeapInUse());
    const ids: string[] = [];
    for (let port = 1; port <= 200; port++) {
      ids.push((await client.createLoadBalancer(lb(port))).ID!);
    }
    const full = Number(control.HnsEmuHeapInUse());
    // Each LB keeps its settings, ID and indexes: well over 100 bytes apiece.
    assert.ok(full - empty > 200 * 100, `heap grew by ${full - empty} bytes for 200 LBs`);
    for (const id of ids) await client.deleteLoadBalancer(id);
    const after = Number(control.HnsEmuHeapInUse());
    // Emptied lists and hash tables keep their capacity; objects are all gone.
    assert.ok(after - empty < (full - empty) / 4, `heap after deletes: ${after}, empty ${empty}`);
  });
});
