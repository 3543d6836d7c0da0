/**
 * A restart's state build (the syncer on the in-memory HNS): when it fills
 * the observed cache, its largest step, what HNS returned to the start's read
 * is already garbage. The build collects the heap just before the fill
 * (`collectHeap`); this test counts, at that moment, the CNI endpoints' names
 * in the heap: the early read returned them, the node context keeps none.
 */

import assert from "node:assert/strict";
import { createHnsClient } from "../../lib/hns/client.ts";
import { MemoryHcnApi } from "../../lib/hns/memory.ts";
import { convertEndpointSlice, convertService } from "../../lib/kube/convert.ts";
import { OwnershipRecord } from "../../lib/proxy/ownership.ts";
import { type StartMode, Syncer } from "../../lib/proxy/syncer.ts";
import { SyncedInputsFile } from "../../lib/proxy/synced_inputs.ts";
import { stringsInHeap } from "../heap_strings.ts";
import { manualClock, overlayHnsWithPods, serviceObject, sliceObject } from "../agent/fixtures.ts";
import { overlaySyncerOptions, syncedNodeStore } from "./syncer_fixtures.ts";

const PODS = 20;

/** CNI endpoint `i`'s name: over 10 characters (JSON.parse gives each its own string), not in this file. */
function podName(i: number): string {
  return `cni-endpoint-of-build-pod-${1000 + i}`;
}

/** What {@link restartCounting} found. */
interface RestartCounts {
  /** How the restart started. */
  mode?: StartMode;
  /** Each CNI endpoint name's copies in the heap at the cache fill, less the control name's. */
  extra: number[];
  /** Each owned ID's copies in the heap at the cache fill. */
  idsAtFill: number[];
  /** Each owned ID's copies once the state is built. */
  idsAfter: number[];
}

/**
 * Program a node with services on remote pods, record its synced inputs,
 * then restart a syncer on it (the in-memory HNS and ownership record kept,
 * the digest invalidated when `fast` is false) and build its state; returns
 * how the restart started and, for each name, how many copies were in the
 * heap when the cache was about to be filled, less the control's.
 */
async function restartCounting(fast: boolean): Promise<RestartCounts> {
  const dir = await Deno.makeTempDir({ prefix: "hnsproxy-build-heap-" });
  try {
    const api = new MemoryHcnApi({ state: overlayHnsWithPods(PODS, podName, 40) });
    const client = createHnsClient(api);
    const store = syncedNodeStore();
    for (let s = 0; s < 3; s++) {
      const name = `svc-${s}`;
      const port = 8080 + s;
      store.upsertService(
        convertService(serviceObject(name, {
          clusterIP: `10.96.0.${20 + s}`,
          ports: [{ port: 80, targetPort: port }],
        }))!,
      );
      store.upsertSlice(
        convertEndpointSlice(sliceObject(name, [
          { ip: `10.244.2.${10 + s}`, node: "node-2" },
          { ip: `10.244.3.${10 + s}`, node: "node-3" },
        ], { port }))!,
      );
    }
    const clock = manualClock();
    const file = new SyncedInputsFile(`${dir}/owned.json`);
    const ownership = OwnershipRecord.inMemory();
    let counted: number[] | undefined;
    let ids: string[] = [];
    let idsAtFill: number[] = [];
    const newSyncer = (count: boolean) =>
      new Syncer({
        ...overlaySyncerOptions({ client, cluster: store, ownership, clock, api }),
        syncedInputs: { file, config: "c1" },
        collectHeap: () => {
          if (!count) return;
          const names = Array.from({ length: PODS }, (_, i) => podName(i));
          counted = stringsInHeap(podName(-999), ...names);
          idsAtFill = stringsInHeap(...ids);
        },
      });
    const first = newSyncer(false);
    let report = await first.sync();
    assert.equal(report.kind, "start");
    assert.ok(ownership.size > 0, "hnsproxy owns objects");
    await first.recordSyncedInputs();
    ids = [...ownership.ids()];
    await first.close();
    if (!fast) await file.invalidate();

    const restarted = newSyncer(true);
    restarted.readHnsEarly();
    report = await restarted.sync();
    const mode = report.kind === "start" ? report.startMode : undefined;
    if (restarted.buildPending) report = await restarted.sync();
    assert.equal(report.kind, "start");
    assert.equal(restarted.buildPending, false);
    await restarted.close();
    await file.read(); // after the digest the start records in the background
    assert.ok(counted, "the build collected the heap before filling the cache");
    const [control, ...counts] = counted;
    return {
      mode,
      extra: counts.map((n) => n - control),
      idsAtFill,
      idsAfter: stringsInHeap(...ids),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// The in-memory HNS holds each name once, as the control name's count has the count's own
// argument once: one copy more than the control's is HNS's, any other the syncer's.

Deno.test("start build: after a fast start, what the early read returned is garbage before the cache fill", async () => {
  const { mode, extra } = await restartCounting(true);
  assert.equal(mode, "fast");
  assert.deepEqual(extra, extra.map(() => 1));
});

Deno.test("start build: a trusted restart's early read is garbage before the cache fill", async () => {
  const { mode, extra } = await restartCounting(false);
  assert.equal(mode, "trusted");
  assert.deepEqual(extra, extra.map(() => 1));
});

Deno.test("start build: a trusted restart spells owned IDs as the record does; the listing's copies are garbage before the cache fill", async () => {
  for (const fast of [true, false]) {
    const { idsAtFill, idsAfter } = await restartCounting(fast);
    assert.ok(idsAfter.length > 0);
    // Once built, the cache holds the record's strings: any more at the fill is a copy kept
    // only until the fill.
    assert.deepEqual(idsAtFill, idsAfter, fast ? "fast start" : "trusted start");
  }
});
