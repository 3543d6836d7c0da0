import assert from "node:assert/strict";
import { createHnsClient } from "../../lib/hns/client.ts";
import { HResult } from "../../lib/hns/errors.ts";
import { MemoryHcnApi, type MemoryHnsState } from "../../lib/hns/memory.ts";
import { convertEndpointSlice, convertService } from "../../lib/kube/convert.ts";
import { OwnershipRecord } from "../../lib/proxy/ownership.ts";
import { LISTING_ALIGN_MS } from "../../lib/proxy/resync.ts";
import { Syncer, type SyncerOptions } from "../../lib/proxy/syncer.ts";
import { readEarly } from "../../lib/proxy/start.ts";
import { SyncedInputsFile } from "../../lib/proxy/synced_inputs.ts";
import type { HnsClient } from "../../lib/hns/types.ts";
import { IdListing } from "../../lib/hns/id_listing.ts";
import type { FakeObject } from "../../lib/fake-apiserver/mod.ts";
import {
  type EndpointSpec,
  HOST_EP,
  L2BRIDGE_NET,
  l2bridgeHns,
  LOCAL_EP_5,
  manualClock,
  NODE,
  OVERLAY_SETTINGS,
  overlayHns,
  serviceObject,
  type ServiceSpec,
  sliceObject,
  SOURCE_VIP,
} from "../agent/fixtures.ts";
import { RecordingLogger } from "../kube/helpers.ts";
import { overlaySyncerOptions, syncedNodeStore } from "./syncer_fixtures.ts";

const WRITES = /^Hcn(Create|Modify|Delete)(LoadBalancer|Endpoint)$/;

/** Only the network's handle (kept to re-read its routes) may be open; closing the syncer closes it. */
async function assertHandlesClosedAtStop(w: ReturnType<typeof world>): Promise<void> {
  assert.ok(w.api.openHandles() <= 1, `open handles: ${w.api.openHandles()}`);
  await w.syncer.close();
  assert.equal(w.api.openHandles(), 0);
}

/** An in-process node: memory HNS, a cluster store, a syncer on a manual clock. */
function world(state: MemoryHnsState = overlayHns(), ownership = OwnershipRecord.inMemory()) {
  const api = new MemoryHcnApi({ state });
  const client = createHnsClient(api);
  const store = syncedNodeStore();
  const clock = manualClock();
  const settings = OVERLAY_SETTINGS;
  const newSyncer = (extra: Partial<SyncerOptions> = {}) =>
    new Syncer({
      ...overlaySyncerOptions({ client, cluster: store, ownership, clock, api }),
      ...extra,
    });
  const writes = () =>
    Object.entries(api.callCounts()).filter(([fn]) => WRITES.test(fn)).reduce(
      (n, [, c]) => n + c,
      0,
    );
  return {
    api,
    client,
    store,
    clock,
    ownership,
    settings,
    syncer: newSyncer(),
    newSyncer,
    writes,
    service(name: string, spec: ServiceSpec, endpoints: EndpointSpec[]) {
      store.upsertService(convertService(serviceObject(name, spec))!);
      const port = spec.ports[0];
      store.upsertSlice(
        convertEndpointSlice(sliceObject(name, endpoints, { port: port.targetPort ?? port.port }))!,
      );
    },
    deleteService(name: string) {
      store.deleteService(`default/${name}`);
      store.deleteSlice(`default/${name}-abc`);
    },
  };
}

type World = ReturnType<typeof world>;

/** Load balancers in HNS as `vip:port -> backend IPs`. */
function lbTable(w: World): string[] {
  const state = w.api.dump();
  const ipOf = new Map(state.Endpoints.map((e) => [e.ID!, e.IpConfigurations?.[0]?.IpAddress]));
  return state.LoadBalancers.map((lb) => {
    const vip = lb.FrontendVIPs?.[0] ?? "*";
    const pm = lb.PortMappings[0];
    const backends = lb.HostComputeEndpoints.map((id) => ipOf.get(id)).sort().join(",");
    return `${vip}:${pm.ExternalPort}->${pm.InternalPort} [${backends}]`;
  }).sort();
}

/** IPs of remote pod endpoints (overlay also has one remote endpoint per cluster IP). */
function remoteIps(w: World): string[] {
  return w.api.dump().Endpoints.filter((e) => e.Flags === 1).map((e) =>
    e.IpConfigurations![0].IpAddress
  ).filter((ip) => ip.startsWith("10.244.")).sort();
}

const WEB: ServiceSpec = { clusterIP: "10.96.0.10", ports: [{ port: 80, targetPort: 8080 }] };
const WEB_EPS: EndpointSpec[] = [
  { ip: "10.244.1.5", node: NODE },
  { ip: "10.244.2.7", node: "node-2" },
];

const API: ServiceSpec = { clusterIP: "10.96.0.11", ports: [{ port: 80, targetPort: 8080 }] };
const API_EPS: EndpointSpec[] = [{ ip: "10.244.2.9", node: "node-2" }];

/** WEB_EPS with a new pod on this node (10.244.1.7) and a new remote one (10.244.2.8). */
const WEB_EPS_GROWN: EndpointSpec[] = [
  ...WEB_EPS,
  { ip: "10.244.1.7", node: NODE },
  { ip: "10.244.2.8", node: "node-2" },
];
const WEB_GROWN_TABLE = ["10.96.0.10:80->8080 [10.244.1.5,10.244.1.7,10.244.2.7,10.244.2.8]"];

async function converge(w: World, syncer = w.syncer, maxRuns = 20) {
  for (let i = 0; i < maxRuns; i++) {
    const report = await syncer.sync();
    if (report.next.retryAfterMs === undefined) return report;
    w.clock.t += report.next.retryAfterMs + 1;
  }
  throw new Error("did not converge");
}

Deno.test("syncer: waits for the network, then programs ClusterIP with local and remote backends", async () => {
  const w = world({ Networks: [], Endpoints: [], LoadBalancers: [] });
  w.service("web", WEB, WEB_EPS);
  const waiting = await w.syncer.sync();
  assert.equal(waiting.kind, "waiting");
  assert.equal(waiting.waitingFor, "network");
  assert.ok(waiting.next.retryAfterMs! > 0);

  w.api.load(overlayHns());
  const start = await converge(w);
  assert.equal(start.kind, "start");
  assert.deepEqual(lbTable(w), ["10.96.0.10:80->8080 [10.244.1.5,10.244.2.7]"]);
  const remote = w.api.dump().Endpoints.find((e) =>
    e.IpConfigurations?.[0].IpAddress === "10.244.2.7"
  )!;
  assert.deepEqual(remote.Policies, [{
    Type: "ProviderAddress",
    Settings: { ProviderAddress: "192.168.1.12" },
  }]);
  assert.equal(remote.MacAddress?.toLowerCase(), "02-11-0a-f4-02-07");
  assert.equal(w.api.dump().LoadBalancers[0].SourceVIP, SOURCE_VIP);
  assert.ok(
    w.api.dump().Endpoints.some((e) => e.IpConfigurations?.[0].IpAddress === SOURCE_VIP),
    "the source-VIP endpoint exists",
  );
  await assertHandlesClosedAtStop(w);
});

Deno.test("syncer: restart with an unchanged cluster adopts everything with zero HNS writes", async () => {
  const w = world();
  w.service("web", WEB, WEB_EPS);
  w.service("np", {
    type: "NodePort",
    clusterIP: "10.96.0.20",
    ports: [{ port: 80, targetPort: 8080, nodePort: 30080 }],
  }, [{ ip: "10.244.3.9", node: "node-3" }]);
  await converge(w);
  const before = w.api.dump();
  const writes = w.writes();

  const restarted = w.newSyncer(); // same HNS, same ownership record
  const report = await converge(w, restarted);
  assert.equal(report.kind, "start");
  assert.equal(w.writes(), writes, "no HNS writes");
  assert.ok(report.plan!.ops.every((op) => op.op.startsWith("adopt")));
  assert.deepEqual(w.api.dump(), before);
});

Deno.test("syncer: restart with a lost ownership record adopts identical objects instead of recreating", async () => {
  const w = world();
  w.service("web", WEB, WEB_EPS);
  await converge(w);
  const before = w.api.dump();
  const writes = w.writes();
  const fresh = OwnershipRecord.inMemory();
  const restarted = w.newSyncer({ ownership: fresh });
  await converge(w, restarted);
  assert.equal(w.writes(), writes);
  assert.deepEqual(w.api.dump(), before);
  assert.equal(fresh.size, w.ownership.size);
});

Deno.test("syncer: endpoint scale up and down touch only that service; service delete cleans up", async () => {
  const w = world();
  w.service("web", WEB, WEB_EPS);
  w.service("other", { clusterIP: "10.96.0.11", ports: [{ port: 443 }] }, [
    { ip: "10.244.3.3", node: "node-3" },
  ]);
  await converge(w);
  const otherId = w.api.dump().LoadBalancers.find((l) => l.FrontendVIPs?.[0] === "10.96.0.11")!.ID;

  w.service("web", WEB, [...WEB_EPS, { ip: "10.244.2.8", node: "node-2" }]);
  const up = await converge(w);
  assert.equal(up.kind, "partial");
  assert.deepEqual(up.plan!.ops.map((o) => o.op), ["createEndpoint", "modifyLoadBalancer"]);
  assert.ok(lbTable(w).includes("10.96.0.10:80->8080 [10.244.1.5,10.244.2.7,10.244.2.8]"));

  w.service("web", WEB, [{ ip: "10.244.1.5", node: NODE }]);
  const down = await converge(w);
  assert.deepEqual(down.plan!.ops.map((o) => o.op), [
    "modifyLoadBalancer",
    "deleteEndpoint",
    "deleteEndpoint",
  ]);
  assert.deepEqual(remoteIps(w), ["10.244.3.3"]);

  w.deleteService("web");
  const gone = await converge(w);
  assert.deepEqual(gone.plan!.ops.map((o) => `${o.op} ${o.key}`), [
    "deleteLoadBalancer lb/tcp/10.96.0.10:80",
    "deleteEndpoint ep/remote/10.96.0.10", // the overlay service-VIP endpoint, right away
  ]);
  assert.deepEqual(lbTable(w), ["10.96.0.11:443->443 [10.244.3.3]"]);
  assert.equal(
    w.api.dump().LoadBalancers[0].ID,
    otherId,
    "the other service's LB was never touched",
  );
  assert.ok(w.api.dump().Endpoints.some((e) => e.ID === LOCAL_EP_5), "CNI endpoints stay");
});

Deno.test("syncer: an unchanged cluster costs no HNS call; the resync costs four", async () => {
  const w = world();
  w.service("web", WEB, WEB_EPS);
  await converge(w);
  const calls = () => Object.values(w.api.callCounts()).reduce((a, b) => a + b, 0);
  const before = calls();
  const queries = () => w.api.callCounts().HcnQueryNetworkProperties ?? 0;
  const queriesBefore = queries();
  const idle = await w.syncer.sync();
  assert.equal(idle.kind, "idle");
  assert.equal(calls(), before);
  w.clock.t += 30_000;
  const resync = await w.syncer.sync();
  assert.equal(resync.resynced, true);
  assert.equal(calls() - before, 4, "three Enumerates, and the network's routes");
  assert.equal(queries() - queriesBefore, 1, "through the handle kept open");
});

Deno.test("syncer: a resync without drift recomputes nothing; the runs after it stay partial", async () => {
  const w = world();
  w.service("web", WEB, WEB_EPS);
  w.service("api", API, API_EPS);
  await converge(w);
  w.clock.t += 30_000;
  const resync = await w.syncer.sync();
  assert.equal(resync.resynced, true);
  assert.equal(resync.kind, "idle", "nothing vanished: no full reconcile");
  assert.equal(resync.services, 0);
  w.service("web", WEB, [...WEB_EPS, { ip: "10.244.2.8", node: "node-2" }]);
  const change = await w.syncer.sync();
  assert.equal(change.kind, "partial");
  assert.equal(change.services, 1);
  assert.deepEqual(lbTable(w), [
    "10.96.0.10:80->8080 [10.244.1.5,10.244.2.7,10.244.2.8]",
    "10.96.0.11:80->8080 [10.244.2.9]",
  ]);
  // A change taken in the same run as a resync is partial too.
  w.clock.t += 30_000;
  w.service("api", API, []);
  const both = await w.syncer.sync();
  assert.equal(both.resynced, true);
  assert.equal(both.kind, "partial");
  assert.deepEqual(lbTable(w), ["10.96.0.10:80->8080 [10.244.1.5,10.244.2.7,10.244.2.8]"]);
});

Deno.test("syncer: drift found by a resync is repaired by a full run", async () => {
  const w = world();
  w.service("web", WEB, WEB_EPS);
  w.service("api", API, API_EPS);
  await converge(w);
  const lb = w.api.dump().LoadBalancers.find((l) => l.FrontendVIPs?.[0] === "10.96.0.11")!;
  await w.client.deleteLoadBalancer(lb.ID!);
  w.clock.t += 30_000;
  const report = await w.syncer.sync();
  assert.equal(report.kind, "full");
  assert.equal(report.repaired.loadBalancers, 1);
  assert.deepEqual(lbTable(w), [
    "10.96.0.10:80->8080 [10.244.1.5,10.244.2.7]",
    "10.96.0.11:80->8080 [10.244.2.9]",
  ]);
  w.clock.t += 30_000;
  assert.equal((await w.syncer.sync()).kind, "idle", "repaired: the next resync finds no drift");
});

Deno.test("syncer: an LB deleted out of band is recreated at the next resync", async () => {
  const w = world();
  w.service("web", WEB, WEB_EPS);
  await converge(w);
  const lb = w.api.dump().LoadBalancers[0];
  await w.client.deleteLoadBalancer(lb.ID!);
  assert.equal((await w.syncer.sync()).kind, "idle", "not noticed before the resync");
  w.clock.t += 30_000;
  const report = await converge(w);
  assert.equal(report.repaired.loadBalancers, 1);
  assert.deepEqual(lbTable(w), ["10.96.0.10:80->8080 [10.244.1.5,10.244.2.7]"]);
  assert.ok(!w.ownership.owns(lb.ID!));
  assert.ok(w.ownership.owns(w.api.dump().LoadBalancers[0].ID!));
});

Deno.test("syncer: foreign LBs are never deleted; a port held by one is reported", async () => {
  const foreignOther: HcnLoadBalancerLike = {
    ID: "F0F0F0F0-0000-4000-8000-000000000001",
    HostComputeEndpoints: [LOCAL_EP_5],
    FrontendVIPs: ["10.99.0.1"],
    PortMappings: [{ Protocol: 6, InternalPort: 1, ExternalPort: 1 }],
  };
  const foreignClash: HcnLoadBalancerLike = {
    ID: "F0F0F0F0-0000-4000-8000-000000000002",
    HostComputeEndpoints: [LOCAL_EP_5],
    FrontendVIPs: ["10.96.0.10"],
    PortMappings: [{ Protocol: 6, InternalPort: 9999, ExternalPort: 80 }],
  };
  const malformed: HcnLoadBalancerLike = {
    ID: "F0F0F0F0-0000-4000-8000-000000000003",
    HostComputeEndpoints: [],
    FrontendVIPs: ["10.99.0.3"],
    PortMappings: [],
  };
  const w = world(overlayHns({ LoadBalancers: [foreignOther, foreignClash, malformed] }));
  w.service("web", WEB, WEB_EPS);
  const report = await w.syncer.sync();
  assert.deepEqual(report.result!.conflicts.map((c) => c.foreignId), [foreignClash.ID]);
  const ids = w.api.dump().LoadBalancers.map((l) => l.ID).sort();
  assert.deepEqual(ids, [foreignOther.ID, foreignClash.ID, malformed.ID].sort());
  assert.ok(report.next.retryAfterMs !== undefined, "retried later");
});

type HcnLoadBalancerLike = import("../../lib/hns/types.ts").HcnLoadBalancer;

Deno.test("syncer: HNS restarted (new network ID) rebuilds from a fresh read", async () => {
  const w = world();
  w.service("web", WEB, WEB_EPS);
  await converge(w);
  const state = overlayHns();
  state.Networks![0].ID = "6D6F6E6F-0000-4000-8000-0000000000AA";
  for (const ep of state.Endpoints!) ep.HostComputeNetwork = state.Networks![0].ID;
  w.api.load(state); // HNS came back empty but for the CNI's network and pods
  w.clock.t += 30_000;
  const report = await converge(w);
  assert.equal(report.kind, "start");
  assert.deepEqual(lbTable(w), ["10.96.0.10:80->8080 [10.244.1.5,10.244.2.7]"]);
  assert.equal(
    w.ownership.size,
    4,
    "LB, pod and service-VIP remote endpoints, source-VIP endpoint; old IDs forgotten",
  );
});

Deno.test("syncer: HNS faults converge with no leaked, duplicate or foreign-deleted object", async () => {
  const foreign: HcnLoadBalancerLike = {
    ID: "F0F0F0F0-0000-4000-8000-000000000009",
    HostComputeEndpoints: [LOCAL_EP_5],
    FrontendVIPs: ["10.99.0.9"],
    PortMappings: [{ Protocol: 6, InternalPort: 9, ExternalPort: 9 }],
  };
  const w = world(overlayHns({ LoadBalancers: [foreign] }));
  for (let i = 0; i < 6; i++) {
    w.service(`svc-${i}`, { clusterIP: `10.96.1.${i}`, ports: [{ port: 80 }] }, [
      { ip: `10.244.2.${10 + i}`, node: "node-2" },
      { ip: "10.244.1.6", node: NODE },
    ]);
  }
  w.api.failCall("HcnCreateEndpoint", 2, HResult.MANAGER_STOPPED);
  w.api.failCall("HcnCreateLoadBalancer", 3, HResult.MANAGER_STOPPED);
  w.api.failCall("HcnQueryLoadBalancerProperties", 4, HResult.MANAGER_STOPPED);
  w.api.failCall("HcnEnumerateLoadBalancers", 1, HResult.MANAGER_STOPPED);
  let threw = 0;
  for (let i = 0; i < 30; i++) {
    try {
      const r = await w.syncer.sync();
      if (r.next.retryAfterMs === undefined && r.kind !== "waiting") break;
      w.clock.t += (r.next.retryAfterMs ?? 1000) + 1;
    } catch {
      threw++;
      w.clock.t += 1000;
    }
  }
  assert.ok(threw >= 1, "the failed listing surfaced as a failed run");
  const lbs = w.api.dump().LoadBalancers;
  assert.equal(lbs.length, 7, "six services and the foreign LB, no duplicates");
  assert.ok(lbs.some((l) => l.ID === foreign.ID));
  assert.equal(remoteIps(w).length, 6);
  for (const lb of lbs) {
    if (lb.ID !== foreign.ID) assert.ok(w.ownership.owns(lb.ID!), `owned: ${lb.FrontendVIPs}`);
  }
  assert.equal(w.ownership.size, 6 + 6 + 6 + 1, "LBs, pod and VIP remote endpoints, source VIP");
  await assertHandlesClosedAtStop(w);
});

Deno.test("syncer: a pod on this node whose CNI endpoint appears later is picked up", async () => {
  const w = world();
  w.service("web", WEB, [{ ip: "10.244.1.7", node: NODE }, { ip: "10.244.2.7", node: "node-2" }]);
  const first = await w.syncer.sync();
  assert.deepEqual(lbTable(w), ["10.96.0.10:80->8080 [10.244.2.7]"]);
  assert.ok(
    first.next.retryAfterMs !== undefined,
    "a lookup for the missing endpoint is scheduled",
  );
  await cniEndpoint(w, "10.244.1.7");
  await converge(w);
  assert.deepEqual(lbTable(w), ["10.96.0.10:80->8080 [10.244.1.7,10.244.2.7]"]);
});

/** Make a CNI-like endpoint for `ip` on the test network, as the CNI would. */
async function cniEndpoint(w: World, ip: string): Promise<void> {
  const net = w.api.dump().Networks[0].ID!;
  const handle = await w.api.open("Network", net);
  const ep = await w.api.create(
    "Endpoint",
    "",
    JSON.stringify({
      HostComputeNetwork: net,
      IpConfigurations: [{ IpAddress: ip }],
      SchemaVersion: { Major: 2, Minor: 0 },
    }),
    handle,
  );
  await w.api.close("Endpoint", ep);
  await w.api.close("Network", handle);
}

/** HNS calls made while `body` runs, by C function. */
async function callsDuring(
  w: World,
  body: () => Promise<unknown>,
): Promise<Record<string, number>> {
  const before = { ...w.api.callCounts() };
  await body();
  const out: Record<string, number> = {};
  for (const [fn, n] of Object.entries(w.api.callCounts())) {
    if (n !== (before[fn] ?? 0)) out[fn] = n - (before[fn] ?? 0);
  }
  return out;
}

Deno.test("syncer: a new local pod whose CNI endpoint exists costs one LB update, found with one filtered Enumerate", async () => {
  const w = world();
  w.service("web", WEB, WEB_EPS);
  await converge(w);
  await cniEndpoint(w, "10.244.1.7");
  const lbId = w.api.dump().LoadBalancers[0].ID;
  w.service("web", WEB, [...WEB_EPS, { ip: "10.244.1.7", node: NODE }]);
  let report: Awaited<ReturnType<Syncer["sync"]>> | undefined;
  const calls = await callsDuring(w, async () => report = await w.syncer.sync());
  assert.deepEqual(lbTable(w), ["10.96.0.10:80->8080 [10.244.1.5,10.244.1.7,10.244.2.7]"]);
  assert.deepEqual(report!.plan!.ops.map((o) => o.op), ["modifyLoadBalancer"]);
  assert.equal(report!.next.retryAfterMs, undefined, "nothing left to look up or retry");
  assert.equal(w.api.dump().LoadBalancers[0].ID, lbId);
  assert.deepEqual(calls, {
    HcnEnumerateEndpoints: 1, // filtered by the network
    HcnOpenEndpoint: 1, // the one unknown ID only
    HcnQueryEndpointProperties: 1,
    HcnCloseEndpoint: 1,
    HcnOpenLoadBalancer: 1,
    HcnModifyLoadBalancer: 1,
    HcnQueryLoadBalancerProperties: 1,
    HcnCloseLoadBalancer: 1,
  });
  assert.equal((await w.syncer.sync()).kind, "idle", "no second update");
});

Deno.test("syncer: a local pod still without CNI endpoint is looked up once per miss, then by backoff", async () => {
  const w = world();
  w.service("web", WEB, WEB_EPS);
  await converge(w);
  w.service("web", WEB, [...WEB_EPS, { ip: "10.244.1.7", node: NODE }]);
  const first = await callsDuring(w, () => w.syncer.sync());
  assert.equal(first.HcnEnumerateEndpoints, 1, "looked up in the sync that first missed it");
  assert.deepEqual(lbTable(w), ["10.96.0.10:80->8080 [10.244.1.5,10.244.2.7]"]);
  // Another change of the service: the same IP is still missing, no new lookup right away.
  w.service("web", WEB, WEB_EPS_GROWN);
  const second = await callsDuring(w, () => w.syncer.sync());
  assert.equal(second.HcnEnumerateEndpoints, undefined, "no lookup before the backoff is due");
  await cniEndpoint(w, "10.244.1.7");
  await converge(w);
  assert.deepEqual(lbTable(w), WEB_GROWN_TABLE);
  await assertHandlesClosedAtStop(w);
});

Deno.test("syncer: a failed lookup of a new local pod still applies the change, and picks the pod up later", async () => {
  const w = world();
  w.service("web", WEB, WEB_EPS);
  await converge(w);
  await cniEndpoint(w, "10.244.1.7");
  w.api.failCall("HcnEnumerateEndpoints", 1, HResult.MANAGER_STOPPED);
  w.service("web", WEB, WEB_EPS_GROWN);
  const report = await w.syncer.sync();
  assert.equal(report.kind, "partial");
  assert.deepEqual(lbTable(w), ["10.96.0.10:80->8080 [10.244.1.5,10.244.2.7,10.244.2.8]"]);
  assert.ok(report.next.retryAfterMs !== undefined, "another lookup is scheduled");
  await converge(w);
  assert.deepEqual(lbTable(w), WEB_GROWN_TABLE);
  await assertHandlesClosedAtStop(w);
});

Deno.test("syncer: a pod IP held by a foreign remote endpoint: the LB uses it, it is never touched", async () => {
  const state = overlayHns();
  const FOREIGN = "F0F0F0F0-0000-4000-8000-0000000000EE";
  state.Endpoints!.push({
    ID: FOREIGN,
    HostComputeNetwork: state.Networks![0].ID,
    IpConfigurations: [{ IpAddress: "10.244.2.7" }],
    MacAddress: "02-aa-bb-cc-dd-ee", // not what hnsproxy would make: not adopted
    Flags: 1,
    Policies: [{ Type: "ProviderAddress", Settings: { ProviderAddress: "192.168.1.12" } }],
  });
  const w = world(state);
  w.service("web", WEB, WEB_EPS);
  const report = await converge(w);
  assert.deepEqual(report.result?.failed ?? [], []);
  const lb = w.api.dump().LoadBalancers.find((l) => l.FrontendVIPs?.[0] === "10.96.0.10");
  assert.ok(lb?.HostComputeEndpoints.includes(FOREIGN), "the LB uses the foreign endpoint");
  assert.ok(!w.ownership.owns(FOREIGN));
  assert.equal(
    w.api.dump().Endpoints.filter((e) => e.IpConfigurations?.[0].IpAddress === "10.244.2.7").length,
    1,
  );
  assert.equal((await w.syncer.sync()).kind, "idle");
});

export type { FakeObject };

Deno.test("syncer: nothing is created while the ownership record cannot be written; all of it once it can", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const blocker = `${dir}/blocked`;
    await Deno.writeTextFile(blocker, "a file where the record's directory should be");
    const ownership = await OwnershipRecord.load(`${blocker}/state.json`);
    const w = world(overlayHns(), ownership);
    w.service("web", WEB, WEB_EPS);
    const endpointsBefore = w.api.dump().Endpoints.length;
    const first = await w.syncer.sync();
    // Created unrecorded, an object would be foreign after a crash: hnsproxy creates nothing.
    assert.deepEqual(lbTable(w), []);
    assert.equal(w.api.dump().Endpoints.length, endpointsBefore);
    assert.equal(ownership.size, 0);
    assert.ok(first.result!.failed.length > 0);
    assert.ok(first.next.retryAfterMs !== undefined, "a retry is scheduled");
    await Deno.remove(blocker);
    await converge(w);
    assert.deepEqual(lbTable(w), ["10.96.0.10:80->8080 [10.244.1.5,10.244.2.7]"]);
    assert.equal(ownership.dirty, false);
    const saved = await OwnershipRecord.load(`${blocker}/state.json`);
    assert.deepEqual(saved.list(), ownership.list());
    assert.equal(saved.size, 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * A client whose listing of all endpoints is taken at once (HNS's state at the
 * call) but answered only when `release` is called: a resync's listing in
 * flight (the syncer lists LBs first, then endpoints).
 */
function heldListings(inner: HnsClient) {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let taken!: () => void;
  const listed = new Promise<void>((resolve) => (taken = resolve));
  const hold = async (ids: Promise<string[]>) => {
    const result = await ids;
    taken();
    await gate;
    return result;
  };
  const overrides: Partial<HnsClient> = {
    listEndpointIds: (networkId?: string) =>
      networkId ? inner.listEndpointIds(networkId) : hold(inner.listEndpointIds()),
    listIds: async (kind) => {
      if (kind !== "Endpoint") return await inner.listIds(kind);
      return IdListing.of(await hold(inner.listEndpointIds()));
    },
  };
  const client = new Proxy(inner, {
    get(target, key) {
      if (key in overrides) return overrides[key as keyof HnsClient];
      const value = Reflect.get(target, key);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { client, release, listed };
}

Deno.test("syncer/background resync: objects created while the listing is in flight are kept; a vanished LB is recreated", async () => {
  const w = world();
  const held = heldListings(w.client);
  const syncer = w.newSyncer({ client: held.client, resyncInBackground: true });
  w.service("web", WEB, WEB_EPS);
  await converge(w, syncer);
  const web = w.api.dump().LoadBalancers[0];
  await w.client.deleteLoadBalancer(web.ID!);

  w.clock.t += 30_000 + LISTING_ALIGN_MS;
  const starting = await syncer.sync();
  assert.equal(starting.resynced, false, "the run only starts the listing");
  assert.ok(starting.next.listingArrived);
  assert.equal(starting.next.periodicAfterMs, undefined, "in flight: not due again");
  await held.listed;

  // A change runs while the listing is in flight: its new LB and remote endpoint are not in it.
  w.service("api", API, API_EPS);
  const change = await syncer.sync();
  assert.equal(change.kind, "partial");
  assert.equal(change.resynced, false);
  const api = w.api.dump().LoadBalancers.find((l) => l.FrontendVIPs?.[0] === "10.96.0.11")!;
  assert.ok(api, "the change was applied while the listing was in flight");

  let settled = false;
  const settling = syncer.listingSettled().then(() => (settled = true));
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(settled, false, "listingSettled waits for the listing in flight");
  held.release();
  await starting.next.listingArrived;
  await settling;
  const compared = await syncer.sync();
  assert.equal(compared.resynced, true);
  assert.deepEqual(compared.repaired, { loadBalancers: 1, endpoints: 0 });
  assert.ok(syncer.observed.loadBalancerById(api.ID!), "the new LB is not taken as vanished");
  assert.ok(w.ownership.owns(api.ID!));
  await converge(w, syncer);
  assert.deepEqual(lbTable(w), [
    "10.96.0.10:80->8080 [10.244.1.5,10.244.2.7]",
    "10.96.0.11:80->8080 [10.244.2.9]",
  ]);
  assert.ok(w.api.dump().LoadBalancers.some((l) => l.ID === api.ID), "not recreated");
  assert.equal(remoteIps(w).join(","), "10.244.2.7,10.244.2.9", "no duplicate endpoint");
});

Deno.test("syncer/background resync: a due listing starts as a run that applied changes ends; an idle run starts it only LISTING_ALIGN_MS past due", async () => {
  const w = world();
  const syncer = w.newSyncer({ resyncInBackground: true });
  w.service("web", WEB, WEB_EPS);
  await converge(w, syncer);
  w.clock.t += 30_000;
  const idle = await syncer.sync();
  assert.equal(idle.kind, "idle");
  assert.equal(idle.next.listingArrived, undefined, "an idle run at due time does not list");
  assert.equal(idle.next.periodicAfterMs, LISTING_ALIGN_MS, "an idle run lists then");
  // A change's run lists as it ends: the runner holds the next change for minSyncPeriod.
  w.service("api", API, API_EPS);
  const change = await syncer.sync();
  assert.equal(change.kind, "partial");
  assert.ok(change.next.listingArrived, "the change's run started the listing");
  await change.next.listingArrived;
  assert.equal((await syncer.sync()).resynced, true);
  // Without changes, the idle run LISTING_ALIGN_MS past due lists.
  w.clock.t += 30_000 + LISTING_ALIGN_MS;
  const late = await syncer.sync();
  assert.ok(late.next.listingArrived, "the idle run past the wait started the listing");
  await late.next.listingArrived;
  assert.equal((await syncer.sync()).resynced, true);
  await syncer.listingSettled();
});

Deno.test("syncer/background resync: a listing compared with no run in between repairs what vanished before it started", async () => {
  const w = world();
  const syncer = w.newSyncer({ resyncInBackground: true });
  w.service("web", WEB, WEB_EPS);
  w.service("api", API, API_EPS);
  await converge(w, syncer);
  const web = w.api.dump().LoadBalancers.find((l) => l.FrontendVIPs?.[0] === "10.96.0.10")!;
  await w.client.deleteLoadBalancer(web.ID!);
  w.clock.t += 30_000 + LISTING_ALIGN_MS;
  const starting = await syncer.sync();
  assert.equal(starting.resynced, false, "the run only starts the listing");
  await starting.next.listingArrived;
  const compared = await syncer.sync();
  assert.equal(compared.resynced, true);
  assert.deepEqual(compared.repaired, { loadBalancers: 1, endpoints: 0 });
  await converge(w, syncer);
  assert.deepEqual(lbTable(w), [
    "10.96.0.10:80->8080 [10.244.1.5,10.244.2.7]",
    "10.96.0.11:80->8080 [10.244.2.9]",
  ]);
});

Deno.test("syncer/background resync: an ID deleted while the listing is in flight is not read as new", async () => {
  const w = world();
  const held = heldListings(w.client);
  const syncer = w.newSyncer({ client: held.client, resyncInBackground: true });
  w.service("web", WEB, WEB_EPS);
  w.service("api", API, API_EPS);
  await converge(w, syncer);
  w.clock.t += 30_000 + LISTING_ALIGN_MS;
  const starting = await syncer.sync();
  await held.listed;
  w.deleteService("api");
  const change = await syncer.sync();
  assert.ok(change.result!.applied.some((op) => op.op === "deleteEndpoint"));
  held.release();
  await starting.next.listingArrived;
  const before = w.api.callCounts();
  const compared = await syncer.sync();
  assert.equal(compared.resynced, true);
  assert.deepEqual(compared.repaired, { loadBalancers: 0, endpoints: 0 });
  const after = w.api.callCounts();
  assert.equal(
    (after.HcnOpenEndpoint ?? 0) - (before.HcnOpenEndpoint ?? 0),
    0,
    "the deleted endpoint is not looked up",
  );
  assert.notEqual(compared.kind, "full", "nothing vanished");
});

Deno.test("syncer/background resync: a failed listing is retried with backoff, changes keep running", async () => {
  const w = world();
  const syncer = w.newSyncer({ resyncInBackground: true });
  w.service("web", WEB, WEB_EPS);
  await converge(w, syncer);
  w.api.failCall("HcnEnumerateLoadBalancers", 1, HResult.MANAGER_STOPPED);
  w.clock.t += 30_000 + LISTING_ALIGN_MS;
  const starting = await syncer.sync();
  await starting.next.listingArrived;
  w.service("web", WEB, [...WEB_EPS, { ip: "10.244.2.8", node: "node-2" }]);
  const failed = await syncer.sync();
  assert.equal(failed.resynced, false);
  assert.equal(failed.kind, "partial", "the change is applied despite the failed listing");
  const retryIn = failed.next.periodicAfterMs!;
  assert.ok(retryIn > 0 && retryIn <= 30_000, `retried after a backoff (${retryIn} ms)`);
  w.clock.t += retryIn;
  const again = await syncer.sync();
  assert.ok(again.next.listingArrived, "the retry starts a new listing");
  await again.next.listingArrived;
  const compared = await syncer.sync();
  assert.equal(compared.resynced, true);
  assert.equal(
    compared.next.periodicAfterMs,
    30_000 + LISTING_ALIGN_MS,
    "the next resync a period after the listing (an idle run lists then)",
  );
});

Deno.test("syncer: a foreign LB on a new service's port is logged once, reminded per backoff step, cleared once", async () => {
  const w = world();
  const logger = new RecordingLogger();
  const syncer = w.newSyncer({ logger });
  w.service("web", WEB, WEB_EPS);
  await converge(w, syncer);
  // Another proxy takes 10.96.0.20:80 after start; then the service that wants it appears.
  const foreign = await w.client.createLoadBalancer({
    HostComputeEndpoints: [LOCAL_EP_5],
    FrontendVIPs: ["10.96.0.20"],
    PortMappings: [{ Protocol: 6, InternalPort: 9999, ExternalPort: 80 }],
  });
  w.service("api", { clusterIP: "10.96.0.20", ports: [{ port: 80, targetPort: 8080 }] }, WEB_EPS);
  const first = await syncer.sync();
  assert.deepEqual(first.result!.conflicts.map((c) => c.foreignId), [foreign.ID]);
  assert.equal(first.result!.failed.length, 0);
  assert.equal(first.next.retryAfterMs, 5_000, "next look at the conflict's first backoff step");
  const warnings = () =>
    logger.lines.filter((l) => l.level === "warn" && /does not own/.test(l.message));
  assert.equal(warnings().length, 1);

  // 29 more syncs, a second apart (changes to another service, and one resync).
  let runs = 0;
  for (let s = 1; s < 30; s++) {
    w.clock.t += 1000;
    w.service("web", WEB, s % 2 ? [...WEB_EPS, { ip: "10.244.2.8", node: "node-2" }] : WEB_EPS);
    const report = await syncer.sync();
    if (report.kind !== "idle") runs++;
  }
  assert.ok(runs >= 29, `syncs ran (${runs})`);
  assert.equal(warnings().length, 1 + 2, "appeared, then reminders at 5 s and 15 s only");
  assert.equal(syncer.conflicts.size, 1);
  assert.equal(syncer.conflicts.countsByKind().clusterIP, 1);
  assert.ok(!lbTable(w).some((l) => l.startsWith("10.96.0.20:80->8080")));

  // The other proxy goes away: the next resync notices, the service is programmed.
  await w.client.deleteLoadBalancer(foreign.ID!);
  w.clock.t += 30_000 + LISTING_ALIGN_MS;
  await converge(w, syncer);
  assert.ok(lbTable(w).includes("10.96.0.20:80->8080 [10.244.1.5,10.244.2.7]"));
  assert.equal(syncer.conflicts.size, 0);
  const over = logger.lines.filter((l) => l.message.startsWith("The conflict"));
  assert.deepEqual(over.map((l) => l.fields.reason), ["programmed"]);
  assert.equal(warnings().length, 3, "nothing more once it cleared");
});

Deno.test("syncer: health-check VIP LBs built by a change look the root endpoint up (one filtered Enumerate); a recreated one is used", async () => {
  const w = world(l2bridgeHns());
  const syncer = w.newSyncer({
    networkName: "cbr0",
    settings: { ...w.settings, sourceVips: [], forwardHealthCheckVip: true },
  });
  w.service("web", WEB, WEB_EPS);
  await converge(w, syncer);
  // The root endpoint is recreated (no LB uses it yet): same name, new ID.
  const root = w.api.dump().Endpoints.find((e) => e.ID === HOST_EP)!;
  await w.client.deleteEndpoint(HOST_EP);
  const { ID: _, ...fields } = root;
  const created = await w.client.createEndpoint(L2BRIDGE_NET, fields);
  const enumerations = () => w.api.callCounts().HcnEnumerateEndpoints ?? 0;
  const before = enumerations();
  w.service("lb", {
    type: "LoadBalancer",
    clusterIP: "10.96.0.30",
    ports: [{ port: 443, targetPort: 8080, nodePort: 30443 }],
    ingress: [{ ip: "198.51.100.1" }],
  }, [{ ip: "10.244.1.6", node: NODE }]);
  const report = await converge(w, syncer);
  assert.equal(report.resynced, false, "no periodic resync came");
  assert.equal(enumerations() - before, 1, "one Enumerate for the root endpoint");
  const healthCheck = w.api.dump().LoadBalancers.filter((lb) =>
    lb.FrontendVIPs?.[0] === "198.51.100.1" && lb.PortMappings[0].ExternalPort === 10256
  );
  assert.deepEqual(healthCheck.map((lb) => lb.HostComputeEndpoints), [[created.ID]]);
});

Deno.test("syncer: takeOverForeign replaces a foreign LB on a claimed key at the first start only", async () => {
  const kubeProxys = (id: string): HcnLoadBalancerLike => ({
    ID: id,
    HostComputeEndpoints: [LOCAL_EP_5],
    FrontendVIPs: ["10.96.0.10"],
    PortMappings: [{ Protocol: 6, InternalPort: 9999, ExternalPort: 80 }],
  });
  const other: HcnLoadBalancerLike = { ...kubeProxys("F0F0F0F0-0000-4000-8000-0000000000FF") };
  other.FrontendVIPs = ["10.99.0.1"];
  const first = kubeProxys("F0F0F0F0-0000-4000-8000-000000000001");
  const w = world(overlayHns({ LoadBalancers: [first, other] }));
  w.service("web", WEB, WEB_EPS);
  const syncer = w.newSyncer({ takeOverForeign: true });
  const start = await converge(w, syncer);
  assert.equal(start.kind, "start");
  assert.deepEqual(start.result!.conflicts, []);
  assert.deepEqual(lbTable(w), [
    "10.96.0.10:80->8080 [10.244.1.5,10.244.2.7]",
    "10.99.0.1:80->9999 [10.244.1.5]",
  ]);
  assert.ok(w.ownership.owns(first.ID!), "taken over: updated in place and owned");
  assert.ok(!w.ownership.owns(other.ID!), "an LB on an unclaimed key stays foreign");

  // HNS restarts and comes back with a foreign LB on the key: a conflict now, not a takeover.
  const state = overlayHns({ LoadBalancers: [kubeProxys("F0F0F0F0-0000-4000-8000-000000000002")] });
  state.Networks![0].ID = "6D6F6E6F-0000-4000-8000-0000000000AA";
  for (const ep of state.Endpoints!) ep.HostComputeNetwork = state.Networks![0].ID;
  w.api.load(state);
  w.clock.t += 30_000 + LISTING_ALIGN_MS;
  const again = await syncer.sync();
  assert.equal(again.kind, "start");
  assert.deepEqual(again.result!.conflicts.map((c) => c.foreignId), [
    "F0F0F0F0-0000-4000-8000-000000000002",
  ]);
  assert.deepEqual(lbTable(w), ["10.96.0.10:80->9999 [10.244.1.5]"]);
});

Deno.test("syncer: once HNS refused an in-place update, later plans replace the LB (the plan says what apply does)", async () => {
  const w = world();
  w.service("web", WEB, WEB_EPS);
  await converge(w);
  w.api.failCall("HcnModifyLoadBalancer", 0, HResult.E_NOTIMPL);
  const grown = [...WEB_EPS, { ip: "10.244.2.8", node: "node-2" }];
  w.service("web", WEB, grown);
  const refused = await converge(w);
  assert.ok(
    refused.plan!.ops.some((op) => op.op === "modifyLoadBalancer"),
    "the first change is planned in place (HNS claims the feature)",
  );
  assert.deepEqual(lbTable(w), ["10.96.0.10:80->8080 [10.244.1.5,10.244.2.7,10.244.2.8]"]);

  w.service("web", WEB, WEB_EPS);
  const next = await converge(w);
  const ops = next.plan!.ops.filter((op) => op.key === "lb/tcp/10.96.0.10:80").map((op) => op.op);
  assert.deepEqual(ops, ["deleteLoadBalancer", "createLoadBalancer"]);
  assert.deepEqual(lbTable(w), ["10.96.0.10:80->8080 [10.244.1.5,10.244.2.7]"]);
});

/**
 * A node programmed with two services, with counters of its HNS listings and
 * object reads, and a check that a restarted syncer's start, planned with its
 * early read, lists and reads nothing again and writes nothing.
 */
async function programmedForRestart() {
  const w = world();
  w.service("web", WEB, WEB_EPS);
  w.service("api", API, API_EPS);
  await converge(w);
  const before = w.api.dump();
  const writes = w.writes();
  const reads = (fns: string[]) => fns.reduce((n, fn) => n + w.api.callCount(fn), 0);
  const listings = () => reads(["HcnEnumerateEndpoints", "HcnEnumerateLoadBalancers"]);
  const opens = () => reads(["HcnOpenEndpoint", "HcnOpenLoadBalancer"]);
  const startsFromEarlyRead = async (restarted: Syncer) => {
    const listed = listings();
    const opened = opens();
    const report = await converge(w, restarted);
    assert.equal(report.kind, "start");
    assert.equal(listings(), listed, "the start lists nothing again");
    assert.equal(opens(), opened, "the start reads nothing again");
    assert.equal(w.writes(), writes);
    assert.deepEqual(w.api.dump(), before);
  };
  return { w, listings, opens, startsFromEarlyRead };
}

Deno.test("syncer: a restart's HNS read begun before the lists are in is the one the start plans with", async () => {
  const { w, listings, opens, startsFromEarlyRead } = await programmedForRestart();
  const listed0 = listings();
  const opened0 = opens();

  const restarted = w.newSyncer();
  restarted.readHnsEarly();
  await restarted.listingSettled();
  assert.ok(listings() > listed0, "the listings ran early");
  assert.ok(opens() > opened0, "the objects of others were read early");
  await startsFromEarlyRead(restarted);
});

Deno.test("syncer: a restart's early HNS read lists IDs while the ownership record still loads, reads the rest once it is in", async () => {
  const { w, listings, opens, startsFromEarlyRead } = await programmedForRestart();
  const listed0 = listings();
  const opened0 = opens();

  let loaded!: (record: OwnershipRecord) => void;
  const loading = new Promise<OwnershipRecord>((resolve) => (loaded = resolve));
  const read = readEarly(w.client, "vxlan0", false, loading, { fullHnsReadOnStart: false });
  for (let i = 0; i < 50 && listings() < listed0 + 2; i++) await new Promise((r) => setTimeout(r));
  assert.equal(listings(), listed0 + 2, "both ID listings ran before the record was in");
  assert.equal(opens(), opened0, "nothing is read before the record says what is not owned");
  loaded(w.ownership);
  const early = await read;
  assert.equal(early?.mode.mode, "trusted");
  assert.ok(opens() > opened0, "the objects of others were read once the record was in");
  const restarted = w.newSyncer();
  restarted.readHnsEarly({ read: Promise.resolve(early), at: w.clock.now() });
  await startsFromEarlyRead(restarted);
});

Deno.test("syncer: an early read whose ownership record failed to load settles only after its listings, with nothing", async () => {
  const w = world();
  w.service("web", WEB, WEB_EPS);
  await converge(w);
  const listed0 = w.api.callCount("HcnEnumerateLoadBalancers");
  const read = readEarly(w.client, "vxlan0", false, Promise.reject(new Error("unreadable")), {
    fullHnsReadOnStart: false,
  });
  assert.equal(await read, undefined);
  assert.equal(w.api.callCount("HcnEnumerateLoadBalancers"), listed0 + 1, "its listing had ended");
});

/**
 * A programmed node whose restarted syncer has read HNS early, after which
 * hnsproxy's LB was deleted out of band.
 */
async function lbDeletedAfterEarlyRead() {
  const w = world();
  w.service("web", WEB, WEB_EPS);
  await converge(w);
  const table = lbTable(w);
  const restarted = w.newSyncer();
  restarted.readHnsEarly();
  await restarted.listingSettled();
  await w.api.delete("LoadBalancer", w.api.dump().LoadBalancers[0].ID!);
  return { w, table, restarted };
}

Deno.test("syncer: HNS changed after the early read: the resync a period after that read repairs it", async () => {
  const { w, table, restarted } = await lbDeletedAfterEarlyRead();
  w.clock.t += 10_000;
  await converge(w, restarted);
  assert.deepEqual(lbTable(w), [], "the start planned with what the early read saw");
  // The periodic resync is due a period after the early read began, not after the start.
  w.clock.t += 20_000;
  await converge(w, restarted);
  assert.deepEqual(lbTable(w), table);
});

Deno.test("syncer: an early read that ended over a resync period ago is not used; the start reads afresh", async () => {
  const { w, table, restarted } = await lbDeletedAfterEarlyRead();
  w.clock.t += 30_001;
  const listed = w.api.callCount("HcnEnumerateLoadBalancers");
  await converge(w, restarted);
  assert.ok(w.api.callCount("HcnEnumerateLoadBalancers") > listed, "listed again");
  assert.deepEqual(lbTable(w), table, "the vanished LB is recreated at once");
});

Deno.test("syncer: an early read that itself took longer than a resync period (slow HNS) is used, not made again", async () => {
  const w = world();
  w.service("web", WEB, WEB_EPS);
  await converge(w);
  const restarted = w.newSyncer();
  restarted.readHnsEarly();
  // The read's calls answer only after this: it began over a period before it ended.
  w.clock.t += 30_001;
  await restarted.listingSettled();
  const listed = w.api.callCount("HcnEnumerateLoadBalancers");
  const report = await converge(w, restarted);
  assert.equal(report.kind, "start");
  assert.equal(w.api.callCount("HcnEnumerateLoadBalancers"), listed, "nothing listed again");
});

Deno.test("syncer: a restart's state build collects the heap before the observed cache is filled (after a fast start, once before that too); a first start never", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hnsproxy-syncer-" });
  try {
    const w = world();
    w.service("web", WEB, WEB_EPS);
    const file = new SyncedInputsFile(`${dir}/owned.json`);
    const collections: { kind: string; cached: number }[] = [];
    const options = (syncer: () => Syncer): Partial<SyncerOptions> => ({
      syncedInputs: { file, config: "c1" },
      collectHeap: (kind) => {
        const observed = syncer().observed;
        collections.push({ kind, cached: observed.endpoints.size + observed.loadBalancers.size });
      },
    });
    // The first start builds the state before it is ready (no digest recorded): none.
    const first: Syncer = w.newSyncer(options(() => first));
    const cold = await converge(w, first);
    assert.equal(cold.kind, "start");
    assert.notEqual(cold.startMode, "fast");
    await first.recordSyncedInputs();
    assert.deepEqual(collections, []);
    const owned = first.observed.endpoints.size + first.observed.loadBalancers.size;
    assert.ok(owned > 0);

    const restarted: Syncer = w.newSyncer(options(() => restarted));
    restarted.readHnsEarly();
    const fast = await restarted.sync();
    assert.equal(fast.startMode, "fast");
    assert.ok(restarted.buildPending);
    assert.deepEqual(collections, [], "none before ready");
    const built = await restarted.sync();
    assert.equal(built.kind, "start");
    assert.equal(restarted.buildPending, false);
    assert.deepEqual(
      collections,
      [{ kind: "regular", cached: 0 }, { kind: "regular", cached: 0 }],
      "twice, the cache still empty",
    );
    assert.equal(
      restarted.observed.endpoints.size + restarted.observed.loadBalancers.size,
      owned,
      "then filled",
    );
    // Runs after it: none.
    w.service("api", API, API_EPS);
    await converge(w, restarted);
    assert.equal(collections.length, 2);

    // A restart that builds the state before it is ready (no digest recorded): once too.
    await file.invalidate();
    const full: Syncer = w.newSyncer(options(() => full));
    full.readHnsEarly();
    const start = await converge(w, full);
    assert.equal(start.kind, "start");
    assert.equal(start.startMode, "trusted");
    assert.deepEqual(collections.slice(2), [{ kind: "regular", cached: 0 }], "once: not ready yet");
    await file.read(); // after the digest the start records in the background
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("syncer: a change's run begins the digest's invalidation before it computes the desired state, and writes HNS only once it is made", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hnsproxy-syncer-" });
  try {
    const w = world();
    w.service("web", WEB, WEB_EPS);
    // What the run had computed when the invalidation began, and whether HNS was written then.
    const begun: { apiDesired: boolean; lbs: number }[] = [];
    const runs: { syncer?: Syncer } = {};
    class WatchedFile extends SyncedInputsFile {
      override invalidate(): Promise<void> {
        const desired = runs.syncer?.desired;
        begun.push({
          apiDesired: [...desired?.services.keys() ?? []].some((k) => k.includes("api")),
          lbs: w.api.callCount("HcnCreateLoadBalancer"),
        });
        return super.invalidate();
      }
    }
    const file = new WatchedFile(`${dir}/owned.json`);
    const syncer = w.newSyncer({ syncedInputs: { file, config: "c1" } });
    runs.syncer = syncer;
    const start = await converge(w, syncer);
    assert.equal(start.kind, "start");
    await syncer.recordSyncedInputs();
    assert.ok(await file.read(), "a digest is recorded after the start");
    begun.length = 0;
    const lbsBefore = w.api.callCount("HcnCreateLoadBalancer");

    w.service("api", API, API_EPS);
    const report = await syncer.sync();
    assert.equal(report.kind, "partial");
    assert.ok(w.api.callCount("HcnCreateLoadBalancer") > lbsBefore, "the change was written");
    assert.ok(begun.length >= 1);
    assert.deepEqual(
      begun[0],
      { apiDesired: false, lbs: lbsBefore },
      "begun before the changed service was computed, and before any write",
    );
    assert.equal(await file.read(), undefined, "no digest on disk once HNS was written");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("syncer: the record's listing of a change's creates is written while the digest's invalidation is still being made; HNS only after both", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hnsproxy-syncer-" });
  try {
    const w = world();
    w.service("web", WEB, WEB_EPS);
    let intended: () => void = () => {};
    const intendCalled = new Promise<void>((resolve) => (intended = resolve));
    let invalidated = false;
    class SlowFile extends SyncedInputsFile {
      override async invalidate(): Promise<void> {
        await super.invalidate();
        // Made durable only once the listing was asked for (or, where the listing waits for
        // it, after many turns of the event loop).
        let turns = 0;
        let listed = false;
        void intendCalled.then(() => (listed = true));
        while (!listed && turns++ < 200) await new Promise((r) => setTimeout(r, 0));
        invalidated = true;
      }
    }
    const file = new SlowFile(`${dir}/owned.json`);
    const syncer = w.newSyncer({ syncedInputs: { file, config: "c1" } });
    await converge(w, syncer);
    await syncer.recordSyncedInputs();
    assert.ok(await file.read(), "a digest is recorded after the start");

    const seen: { invalidated: boolean; writes: number }[] = [];
    const intend = w.ownership.intend.bind(w.ownership);
    w.ownership.intend = (objects) => {
      seen.push({ invalidated, writes: w.writes() });
      intended();
      return intend(objects);
    };
    const writes = w.writes();
    invalidated = false;
    w.service("api", API, API_EPS);
    const report = await syncer.sync();
    assert.equal(report.kind, "partial");
    assert.ok(w.writes() > writes, "the change was written");
    assert.deepEqual(
      seen[0],
      { invalidated: false, writes },
      "listed before the invalidation ended",
    );
    assert.equal(await file.read(), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("syncer: a digest that cannot be made invalid stops the change before any HNS write, and its listed creates leave the record", async () => {
  const w = world();
  w.service("web", WEB, WEB_EPS);
  let refuse = false;
  class RefusingFile extends SyncedInputsFile {
    override async invalidate(): Promise<void> {
      if (refuse) throw new Error("disk full");
      await super.invalidate();
    }
  }
  const dir = await Deno.makeTempDir({ prefix: "hnsproxy-syncer-" });
  try {
    const file = new RefusingFile(`${dir}/owned.json`);
    const logger = new RecordingLogger();
    const syncer = w.newSyncer({ syncedInputs: { file, config: "c1" }, logger });
    await converge(w, syncer);
    const owned = w.ownership.size;
    const writes = w.writes();
    refuse = true;
    w.service("api", API, API_EPS);
    await assert.rejects(() => syncer.sync(), /disk full/);
    assert.equal(w.writes(), writes, "nothing written to HNS");
    assert.equal(w.ownership.size, owned, "the listed creates were dropped again");
    assert.ok(logger.lines.some((l) => l.message.includes("Cannot invalidate")));
    refuse = false;
    await converge(w, syncer);
    assert.ok(w.writes() > writes, "written once the invalidation is made");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("syncer: a first start of 10,000 operations or more collects the heap after its endpoints and after its writes, before the ownership record's write; a smaller one never", async () => {
  const creates = (w: World) =>
    w.api.callCount("HcnCreateEndpoint") + w.api.callCount("HcnCreateLoadBalancer");
  const lbCreates = (w: World) => w.api.callCount("HcnCreateLoadBalancer");
  /** A cluster of `services` ClusterIP services, each with two remote endpoints. */
  const cluster = (services: number) => {
    const w = world();
    for (let i = 0; i < services; i++) {
      const [hi, lo] = [Math.floor(i / 250), i % 250];
      w.service(`s${i}`, {
        clusterIP: `10.96.${hi}.${lo}`,
        ports: [{ port: 80, targetPort: 8080 }],
      }, [
        { ip: `10.244.${2 * hi}.${lo}`, node: "node-2" },
        { ip: `10.244.${2 * hi + 1}.${lo}`, node: "node-3" },
      ]);
    }
    return w;
  };
  for (const [services, collected] of [[2_600, true], [2_400, false]] as const) {
    const w = cluster(services);
    const collections: {
      kind: string;
      creates: number;
      lbCreates: number;
      recordPending: boolean;
    }[] = [];
    const syncer = w.newSyncer({
      collectHeap: (kind) =>
        collections.push({
          kind,
          creates: creates(w),
          lbCreates: lbCreates(w),
          recordPending: w.ownership.dirty,
        }),
    });
    const report = await converge(w, syncer);
    assert.equal(report.kind, "start");
    const ops = report.plan?.ops.length ?? 0;
    assert.equal(ops >= 10_000, collected, `${ops} operations`);
    const planned = report.plan?.ops.filter((op) => op.op.startsWith("create")).length ?? 0;
    const plannedEps = report.plan?.ops.filter((op) => op.op === "createEndpoint").length ?? 0;
    assert.equal(creates(w), planned);
    assert.deepEqual(
      collections,
      collected
        ? [
          // Every endpoint made, no load balancer yet; then every write made, none recorded.
          { kind: "regular", creates: plannedEps, lbCreates: 0, recordPending: true },
          {
            kind: "regular",
            creates: planned,
            lbCreates: planned - plannedEps,
            recordPending: true,
          },
        ]
        : [],
      `${ops} operations`,
    );
    assert.equal(w.ownership.dirty, false, "the record written after it");
  }
});
