/**
 * The trusted start against the HNS emulator library and the in-memory HNS:
 * on random clusters, after the cluster changed and objects vanished while
 * the agent was down, it yields exactly what a full read yields (observed
 * state, plan, vanished IDs), with reads only for what hnsproxy does not own
 * and what changed.
 */

import assert from "node:assert/strict";
import { createHnsClient } from "../../lib/hns/client.ts";
import { HnsError, HResult } from "../../lib/hns/errors.ts";
import type { MemoryHnsState } from "../../lib/hns/memory.ts";
import type { HcnApi, HcnEndpoint, HcnLoadBalancer } from "../../lib/hns/types.ts";
import { convertEndpointSlice, convertService } from "../../lib/kube/convert.ts";
import type { ObservedState, PlanOp } from "../../lib/proxy/model.ts";
import { ObservedCache } from "../../lib/proxy/observed.ts";
import { OwnershipRecord } from "../../lib/proxy/ownership.ts";
import { findNetwork, readStart, startReadMode, type StartState } from "../../lib/proxy/start.ts";
import { endpointFingerprint, loadBalancerFingerprint } from "../../lib/proxy/payload.ts";
import { Syncer } from "../../lib/proxy/syncer.ts";
import {
  type EndpointSpec,
  NODE,
  OVERLAY_SETTINGS,
  overlayHns,
  serviceObject,
  sliceObject,
} from "../agent/fixtures.ts";
import { prng } from "../prng.ts";
import { type Backend, BACKENDS, backendTest } from "../hns/harness.ts";
import { overlaySyncerOptions, syncedNodeStore } from "./syncer_fixtures.ts";

const SETTINGS = OVERLAY_SETTINGS;

const FOREIGN_LB: HcnLoadBalancer = {
  ID: "F0F0F0F0-0000-4000-8000-000000000001",
  HostComputeEndpoints: [],
  FrontendVIPs: ["10.99.0.1"],
  PortMappings: [{ Protocol: 6, InternalPort: 1, ExternalPort: 1 }],
};
/** kube-proxy's LB on a key the random cluster's first service claims, with other backends. */
const KUBE_PROXY_LB: HcnLoadBalancer = {
  ID: "F0F0F0F0-0000-4000-8000-000000000003",
  HostComputeEndpoints: [],
  FrontendVIPs: ["10.96.0.10"],
  PortMappings: [{ Protocol: 6, InternalPort: 9999, ExternalPort: 80 }],
};
const FOREIGN_EP: HcnEndpoint = {
  ID: "F0F0F0F0-0000-4000-8000-000000000002",
  HostComputeNetwork: "6D6F6E6F-0000-4000-8000-000000000001",
  IpConfigurations: [{ IpAddress: "10.244.3.250", PrefixLength: 32 }],
  MacAddress: "02-11-0A-F4-03-FA",
  Flags: 1,
  Policies: [{ Type: "ProviderAddress", Settings: { ProviderAddress: "192.168.1.13" } }],
};

/** A random cluster: services with random local and remote endpoints. */
class RandomCluster {
  readonly store = syncedNodeStore();
  readonly #rand: () => number;
  #next = 0;
  readonly names: string[] = [];

  constructor(seed: number, services: number) {
    this.#rand = prng(seed);
    for (let i = 0; i < services; i++) this.add();
  }

  #pick(n: number): number {
    return Math.floor(this.#rand() * n);
  }

  /** Random endpoints: local CNI pods 10.244.1.5/6, remote pods on node-2 and node-3. */
  #endpoints(): EndpointSpec[] {
    const out = new Map<string, EndpointSpec>();
    const count = 1 + this.#pick(4);
    for (let i = 0; i < count; i++) {
      const where = this.#pick(5);
      const ep = where === 0 ? { ip: `10.244.1.${5 + this.#pick(2)}`, node: NODE } : {
        ip: `10.244.${2 + (where % 2)}.${10 + this.#pick(40)}`,
        node: `node-${2 + (where % 2)}`,
      };
      out.set(ep.ip, ep);
    }
    return [...out.values()];
  }

  /** Add a service (ClusterIP, or NodePort one time in three). */
  add(): void {
    const i = this.#next++;
    const name = `svc-${i}`;
    const nodePort = this.#pick(3) === 0;
    const spec = {
      type: nodePort ? "NodePort" as const : "ClusterIP" as const,
      clusterIP: `10.96.${Math.floor(i / 200)}.${10 + (i % 200)}`,
      ports: [{ port: 80, targetPort: 8080, ...(nodePort ? { nodePort: 30000 + i } : {}) }],
    };
    this.store.upsertService(convertService(serviceObject(name, spec))!);
    this.names.push(name);
    this.move(name);
  }

  /** Give a service new random endpoints. */
  move(name: string): void {
    this.store.upsertSlice(
      convertEndpointSlice(sliceObject(name, this.#endpoints(), { port: 8080 }))!,
    );
  }

  /** Delete a service and its slice. */
  delete(name: string): void {
    this.store.deleteService(`default/${name}`);
    this.store.deleteSlice(`default/${name}-abc`);
    this.names.splice(this.names.indexOf(name), 1);
  }

  /** A random service name. */
  any(): string {
    return this.names[this.#pick(this.names.length)];
  }

  /** Change a few things: endpoints moved, services deleted and added. */
  change(): void {
    for (let k = 0; k < 3; k++) this.move(this.any());
    this.delete(this.any());
    this.add();
  }
}

/** Seed the backend with the overlay node's HNS: network, CNI pods, a foreign LB and endpoint. */
async function seed(api: HcnApi): Promise<void> {
  const hns: MemoryHnsState = overlayHns({ LoadBalancers: [FOREIGN_LB, KUBE_PROXY_LB] });
  hns.Endpoints!.push(FOREIGN_EP);
  const [network] = hns.Networks!;
  const net = await api.create("Network", network.ID!, JSON.stringify(network));
  for (const ep of hns.Endpoints!) {
    await api.close("Endpoint", await api.create("Endpoint", ep.ID!, JSON.stringify(ep), net));
  }
  await api.close("Network", net);
  for (const lb of hns.LoadBalancers!) {
    await api.close("LoadBalancer", await api.create("LoadBalancer", lb.ID!, JSON.stringify(lb)));
  }
}

/** HNS objects of the CNI and of others in {@link seed}. */
const UNOWNED = 5;

/** The C functions a read calls. */
const READ_CALLS = ["Network", "Endpoint", "LoadBalancer"].flatMap((kind) => [
  `HcnEnumerate${kind}s`,
  `HcnOpen${kind}`,
  `HcnQuery${kind}Properties`,
  `HcnClose${kind}`,
]);

function syncerOn(api: HcnApi, cluster: RandomCluster, ownership: OwnershipRecord): Syncer {
  const clock = { now: () => 0 };
  return new Syncer(
    overlaySyncerOptions({
      client: createHnsClient(api),
      cluster: cluster.store,
      ownership,
      clock,
    }),
  );
}

/** Program HNS from scratch with a syncer, as the agent's first life does. */
async function firstLife(api: HcnApi, cluster: RandomCluster, ownership: OwnershipRecord) {
  const syncer = syncerOn(api, cluster, ownership);
  const report = await syncer.sync();
  await syncer.close(); // the agent stops
  assert.equal(report.kind, "start");
  assert.equal(report.result?.failed.length, 0, String(report.result?.failed[0]?.error));
  cluster.store.takeChanges();
}

/** Every entry of an observed state, in a stable order, as plain data. */
function dump(state: ObservedState): unknown {
  const cache = new ObservedCache(state);
  const entries = (m: ReadonlyMap<string, { key: string; id: string; hns: unknown }>) =>
    [...m.entries()].sort((a, b) => a[0] < b[0] ? -1 : 1).map(([k, o]) => [
      k,
      o.id,
      (o as { serviceKey?: string }).serviceKey,
      JSON.stringify(o.hns),
    ]);
  return {
    loadBalancers: entries(cache.loadBalancers),
    endpoints: entries(cache.endpoints),
    foreignLoadBalancers: entries(cache.foreignLoadBalancers),
    foreignEndpoints: entries(cache.foreignEndpoints),
    strayLoadBalancers: entries(cache.strayLoadBalancers),
    strayEndpoints: entries(cache.strayEndpoints),
  };
}

/**
 * The trusted start's plan is the full read's, except that the adoptions of
 * what it trusted carry their fingerprint (the one apply would compute from
 * what the full read observed), or are left out where the trusted object
 * alone claimed its key: it is kept as it is (the record already holds it).
 */
function assertSamePlan(trusted: StartState, full: StartState): void {
  const observed = new ObservedCache(full.adoption.observed);
  const isAdopt = (op: PlanOp) => op.op === "adoptLoadBalancer" || op.op === "adoptEndpoint";
  const strip = (ops: readonly PlanOp[]) =>
    ops.map((op) => {
      if (op.op !== "adoptLoadBalancer" && op.op !== "adoptEndpoint") return op;
      const { fp: _fp, ...rest } = op;
      return rest;
    });
  let withFp = 0;
  for (const op of trusted.plan.ops) {
    if (op.op === "adoptLoadBalancer" && op.fp !== undefined) {
      assert.equal(op.fp, loadBalancerFingerprint(observed.loadBalancerById(op.id)!.hns), op.key);
      withFp++;
    } else if (op.op === "adoptEndpoint" && op.fp !== undefined) {
      assert.equal(op.fp, endpointFingerprint(observed.endpointById(op.id)!.hns), op.key);
      withFp++;
    }
  }
  assert.equal(
    withFp + trusted.adoption.kept,
    trusted.trusted,
    "every trusted object is kept, or its adoption carries its fingerprint",
  );
  const adoptedIds = new Set(
    trusted.plan.ops.flatMap((op) =>
      op.op === "adoptLoadBalancer" || op.op === "adoptEndpoint" ? [op.id] : []
    ),
  );
  const notKept = full.plan.ops.filter((op) => {
    if (!isAdopt(op) || adoptedIds.has((op as { id: string }).id)) return true;
    assert.ok(!(op as { wasForeign: boolean }).wasForeign, `kept ${op.key} was owned`);
    return false;
  });
  assert.equal(full.plan.ops.length - notKept.length, trusted.adoption.kept);
  assert.deepEqual(trusted.plan.conflicts, full.plan.conflicts);
  assert.deepEqual(strip(trusted.plan.ops), strip(notKept));
}

/** Read HNS for a start (it writes nothing), counting its calls and its object reads. */
async function startOn(
  backend: Backend,
  cluster: RandomCluster,
  ownership: OwnershipRecord,
  trusted: boolean,
  takeOver = false,
  kept?: ObservedCache,
) {
  const client = createHnsClient(backend.api);
  const network = (await findNetwork(client, "vxlan0"))!;
  const count = (fns: string[]) => fns.reduce((n, fn) => n + backend.control.callCount(fn), 0);
  const opened = () => count(["HcnOpenEndpoint", "HcnOpenLoadBalancer"]);
  const before = count(READ_CALLS);
  const opensBefore = opened();
  const start = await readStart(
    client,
    network,
    cluster.store,
    ownership,
    SETTINGS,
    { takeOver },
    trusted ? { mode: "trusted" } : { mode: "full", reason: "test" },
    undefined,
    kept && ((observed) => {
      kept.replace(observed);
      return kept;
    }),
  );
  return { start, calls: count(READ_CALLS) - before, opens: opened() - opensBefore };
}

for (const n of [1, 2, 3, 4]) {
  backendTest(
    `trusted start (seed ${n}): yields what a full read yields, reading only what changed`,
    async (backend) => {
      const { api } = backend;
      await seed(api);
      const cluster = new RandomCluster(n, 30);
      const ownership = OwnershipRecord.inMemory();
      await firstLife(api, cluster, ownership);
      assert.equal(startReadMode(ownership, { fullHnsReadOnStart: false }).mode, "trusted");

      // Unchanged: nothing owned is read; calls are the listings and the unowned objects.
      const same = await startOn(backend, cluster, ownership, true);
      const full = await startOn(backend, cluster, ownership, false);
      assert.deepEqual(dump(same.start.adoption.observed), dump(full.start.adoption.observed));
      assertSamePlan(same.start, full.start);
      assert.equal(same.start.plan.ops.filter((op) => !op.op.startsWith("adopt")).length, 0);
      assert.equal(same.opens, UNOWNED);
      assert.ok(same.calls <= 3 * UNOWNED + 10, `${same.calls} calls`);
      assert.equal(same.start.trusted, ownership.size);
      assert.ok(full.calls > 3 * ownership.size, `${full.calls} calls of the full read`);
      // Every owned object was trusted: each is observed as the cache keeps it, never as the
      // full payload of its key (what would be written, schema version included).
      const adopted = same.start.adoption.observed;
      for (const o of [...adopted.endpoints.values(), ...adopted.loadBalancers.values()]) {
        assert.ok(!("SchemaVersion" in o.hns), `${o.key} observed as a full payload`);
      }
      assert.ok(adopted.endpoints.size > 0 && adopted.loadBalancers.size > 0);

      // Reconciled against the observed state kept (the agent's cache): the same plan.
      const kept = new ObservedCache();
      const keptStart = await startOn(backend, cluster, ownership, true, false, kept);
      assert.deepEqual(dump(kept), dump(full.start.adoption.observed));
      assertSamePlan(keptStart.start, full.start);
      // Once the cache holds it, the adoption's observed state is the cache (no second copy).
      assert.equal(keptStart.start.adoption.observed, kept);

      // A takeover (kube-proxy's LB on a service's key) comes out the same.
      const takeKept = new ObservedCache();
      const takeTrusted = await startOn(backend, cluster, ownership, true, true, takeKept);
      const takeFull = await startOn(backend, cluster, ownership, false, true);
      assert.deepEqual(
        dump(takeTrusted.start.adoption.observed),
        dump(takeFull.start.adoption.observed),
      );
      assert.deepEqual(dump(takeKept), dump(takeFull.start.adoption.observed));
      assertSamePlan(takeTrusted.start, takeFull.start);
      assert.deepEqual(takeTrusted.start.adoption.takenOver, takeFull.start.adoption.takenOver);
      assert.ok(takeTrusted.start.adoption.takenOver.some((t) => t.id === KUBE_PROXY_LB.ID));

      // While down: the cluster changed, and an owned LB and endpoint vanished out of band.
      cluster.change();
      const client = createHnsClient(api);
      const owned = ownership.list();
      const goneLb = owned.find((o) => o.kind === "LoadBalancer")!;
      const goneEp = owned.find((o) =>
        o.kind === "Endpoint" && o.key.startsWith("ep/remote/10.244")
      )!;
      // HNS refuses to delete a referenced endpoint: delete the LBs that use it first.
      for (const lb of await client.listLoadBalancers()) {
        if (lb.ID === goneLb.id || lb.HostComputeEndpoints.includes(goneEp.id)) {
          await client.deleteLoadBalancer(lb.ID!);
        }
      }
      await client.deleteEndpoint(goneEp.id);

      const changed = await startOn(backend, cluster, ownership, true);
      const fullChanged = await startOn(backend, cluster, ownership, false);
      assert.deepEqual(
        dump(changed.start.adoption.observed),
        dump(fullChanged.start.adoption.observed),
      );
      assertSamePlan(changed.start, fullChanged.start);
      assert.deepEqual(
        [...changed.start.vanishedOwned].sort(),
        [...fullChanged.start.vanishedOwned].sort(),
      );
      assert.ok(changed.start.vanishedOwned.includes(goneLb.id));
      assert.ok(changed.start.vanishedOwned.includes(goneEp.id));
      const read = changed.opens - UNOWNED;
      assert.ok(read > 0 && read < ownership.size / 2, `${read} owned objects read`);
    },
  );
}

backendTest(
  "trusted start: after it and its first programming, the observed cache is what a full read gives",
  async (backend) => {
    const { api } = backend;
    await seed(api);
    const cluster = new RandomCluster(7, 25);
    const ownership = OwnershipRecord.inMemory();
    await firstLife(api, cluster, ownership);
    cluster.change();
    cluster.change();
    // The second life: a trusted start, and its programming of what changed.
    const syncer = syncerOn(api, cluster, ownership);
    const report = await syncer.sync();
    await syncer.close();
    assert.equal(report.kind, "start");
    assert.ok((report.result?.writes ?? 0) > 0);
    assert.equal(report.result?.failed.length, 0);
    const full = await startOn(backend, cluster, ownership, false);
    assert.deepEqual(dump(syncer.observed), dump(full.start.adoption.observed));
    assert.equal(full.start.plan.ops.filter((op) => !op.op.startsWith("adopt")).length, 0);
    // And the next trusted start reads nothing of hnsproxy's.
    const again = await startOn(backend, cluster, ownership, true);
    assert.equal(again.opens, UNOWNED);
  },
);

Deno.test("trusted start: which records are trusted", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/state.json`;
    const mode = async (flag = false) =>
      startReadMode(await OwnershipRecord.load(path), { fullHnsReadOnStart: flag });
    assert.deepEqual(await mode(), { mode: "full", reason: "no ownership record yet" });
    const record = await OwnershipRecord.load(path);
    record.add({ kind: "LoadBalancer", id: "AB", key: "lb/tcp/10.96.0.10:80", fp: "x1" });
    await record.flush();
    assert.deepEqual(await mode(), { mode: "trusted" });
    assert.deepEqual(await mode(true), { mode: "full", reason: "--full-hns-read-on-start" });
    await Deno.writeTextFile(path, "{not json");
    assert.equal((await mode()).mode, "full");
    await Deno.writeTextFile(
      path,
      JSON.stringify({
        version: 2,
        generation: 1,
        objects: [{ kind: "Endpoint", id: "E", key: "k" }],
      }),
    );
    assert.deepEqual(await mode(), {
      mode: "full",
      reason: "ownership record of format 2 has no fingerprints",
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("trusted start: a modify whose answer was lost is never vouched for by the old fingerprint", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/state.json`;
    const backend = BACKENDS.find((b) => b.name === "memory")!.open();
    await seed(backend.api);
    const cluster = new RandomCluster(11, 10);
    await firstLife(backend.api, cluster, await OwnershipRecord.load(path));
    const ownership = await OwnershipRecord.load(path);
    const syncer = syncerOn(backend.api, cluster, ownership);
    assert.equal((await syncer.sync()).kind, "start");

    // A service's endpoints move. HNS makes the modify, but its answer is lost (as when the
    // process dies right after the call): hnsproxy cannot know which content HNS holds.
    const name = cluster.any();
    const [before] = cluster.store.slicesFor(`default/${name}`);
    cluster.move(name);
    let modified = 0;
    const modify = backend.api.modify.bind(backend.api);
    backend.api.modify = async (kind, handle, settings) => {
      await modify(kind, handle, settings);
      modified++;
      throw new HnsError({ operation: "HcnModifyLoadBalancer", hresult: HResult.MANAGER_STOPPED });
    };
    const report = await syncer.sync();
    await syncer.close();
    assert.equal(modified, 1, "the modify was issued");
    assert.equal(report.result?.failed.length, 1);

    // While down, the endpoints move back: what the old fingerprint described is desired again.
    cluster.store.upsertSlice(before);
    const record = await OwnershipRecord.load(path);
    assert.equal(startReadMode(record, { fullHnsReadOnStart: false }).mode, "trusted");
    const trusted = await startOn(backend, cluster, record, true);
    const full = await startOn(backend, cluster, record, false);
    assert.deepEqual(dump(trusted.start.adoption.observed), dump(full.start.adoption.observed));
    assertSamePlan(trusted.start, full.start);
    assert.ok(
      trusted.start.plan.ops.some((op) => op.op === "modifyLoadBalancer"),
      "HNS holds the modified LB, so it is changed back",
    );
    backend.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
