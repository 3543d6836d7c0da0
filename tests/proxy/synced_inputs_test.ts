/**
 * The synced-inputs digest: order-independent where order is not content,
 * sensitive to every field the desired state reads, blind to
 * resourceVersions; kept per Service as changes are taken; recorded and
 * invalidated on disk atomically beside the ownership record.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import type { EndpointSliceInfo, ServiceInfo } from "../../lib/kube/model.ts";
import { ClusterStore } from "../../lib/kube/store.ts";
import {
  ClusterDigest,
  configDigest,
  contentHash,
  contextDigest,
  contextEndpointIds,
  differingParts,
  type SyncedInputs,
  SyncedInputsFile,
} from "../../lib/proxy/synced_inputs.ts";
import { ctx, ep, overlayCtx, port, slice, svc, view } from "./core_fixtures.ts";

function clusterValue(services: ServiceInfo[], slices: EndpointSliceInfo[]): string {
  const d = new ClusterDigest();
  d.build(view(services, slices));
  return d.value();
}

const WEB = svc();
const DB = svc({ name: "db", clusterIPs: ["10.96.0.20"] });
const WEB_SLICE = slice([ep("10.244.2.7"), ep("10.244.1.5", { nodeName: "node-a" })]);
const WEB_SLICE_2 = slice([ep("10.244.3.9")], { name: "web-def" });
const DB_SLICE = slice([ep("10.244.2.8")], { name: "db-abc", serviceName: "db" });

Deno.test("synced inputs: the cluster digest ignores the order of Services and of a Service's slices", () => {
  const a = clusterValue([WEB, DB], [WEB_SLICE, WEB_SLICE_2, DB_SLICE]);
  assert.equal(a, clusterValue([DB, WEB], [DB_SLICE, WEB_SLICE_2, WEB_SLICE]));
  assert.notEqual(a, clusterValue([WEB, DB], [WEB_SLICE, DB_SLICE]), "a slice fewer");
  assert.notEqual(a, clusterValue([WEB], [WEB_SLICE, WEB_SLICE_2, DB_SLICE]), "a Service fewer");
});

Deno.test("synced inputs: the cluster digest follows content, not resourceVersions", () => {
  const base = clusterValue([WEB], [WEB_SLICE]);
  assert.equal(
    base,
    clusterValue([{ ...WEB, resourceVersion: "9" }], [{
      ...WEB_SLICE,
      resourceVersion: "12",
      triggerTimeMs: 5,
    }]),
  );
  // Every field the desired state reads changes it.
  const services: Partial<ServiceInfo>[] = [
    { type: "NodePort" },
    { clusterIPs: ["10.96.0.11"] },
    { ipFamilies: ["IPv6"] },
    { ports: [port({ port: 81 })] },
    { ports: [port({ targetPort: 8081 })] },
    { ports: [port({ nodePort: 30080 })] },
    { ports: [port({ protocol: "UDP" })] },
    { externalIPs: ["1.2.3.4"] },
    { ingress: [{ ip: "5.6.7.8" }] },
    { loadBalancerSourceRanges: ["10.0.0.0/8"] },
    { externalTrafficPolicy: "Local" },
    { internalTrafficPolicy: "Local" },
    { sessionAffinity: "ClientIP" },
    { sessionAffinityTimeoutSeconds: 60 },
    { healthCheckNodePort: 32000 },
    { trafficDistribution: "PreferClose" },
    { preserveDestination: true },
    { namespace: "other" },
  ];
  for (const change of services) {
    assert.notEqual(clusterValue([svc(change)], [WEB_SLICE]), base, JSON.stringify(change));
  }
  const slices: EndpointSliceInfo[] = [
    slice([ep("10.244.2.7"), ep("10.244.1.6", { nodeName: "node-a" })]),
    slice([ep("10.244.2.7", { ready: false }), ep("10.244.1.5", { nodeName: "node-a" })]),
    slice([ep("10.244.2.7", { serving: false }), ep("10.244.1.5", { nodeName: "node-a" })]),
    slice([ep("10.244.2.7", { terminating: true }), ep("10.244.1.5", { nodeName: "node-a" })]),
    slice([ep("10.244.2.7", { nodeName: "node-c" }), ep("10.244.1.5", { nodeName: "node-a" })]),
    slice([ep("10.244.2.7", { hintZones: ["z"] }), ep("10.244.1.5", { nodeName: "node-a" })]),
    { ...WEB_SLICE, ports: [{ name: "http", port: 8081, protocol: "TCP" }] },
    { ...WEB_SLICE, addressType: "IPv6" },
    { ...WEB_SLICE, name: "web-xyz" },
  ];
  for (const s of slices) {
    assert.notEqual(clusterValue([WEB], [s]), base, JSON.stringify(s));
  }
});

Deno.test("synced inputs: the cluster digest of a store (its own keys) equals that of a view of the same records", () => {
  const store = new ClusterStore();
  for (const s of [WEB, DB]) store.upsertService(s);
  for (const s of [WEB_SLICE, WEB_SLICE_2, DB_SLICE]) store.upsertSlice(s);
  const fromStore = new ClusterDigest();
  fromStore.build(store);
  assert.equal(fromStore.value(), clusterValue([WEB, DB], [WEB_SLICE, WEB_SLICE_2, DB_SLICE]));
  store.deleteSlice("default/web-def");
  fromStore.build(store);
  assert.equal(fromStore.value(), clusterValue([WEB, DB], [WEB_SLICE, DB_SLICE]));
});

Deno.test("synced inputs: the cluster digest kept per changed Service equals one built afresh", () => {
  const services = [WEB, DB];
  const slices = [WEB_SLICE, DB_SLICE];
  const v = view(services, slices);
  const kept = new ClusterDigest();
  kept.update(v, ["default/web"]); // before the build: nothing
  kept.build(v);
  // web's pods move, db goes, api comes.
  slices[0] = slice([ep("10.244.2.9")]);
  services.splice(1, 1, svc({ name: "api", clusterIPs: ["10.96.0.30"] }));
  kept.update(v, ["default/web", "default/db", "default/api"]);
  assert.equal(kept.value(), clusterValue([...services], [...slices]));
  assert.notEqual(kept.value(), clusterValue([WEB, DB], [WEB_SLICE, DB_SLICE]));
});

Deno.test("synced inputs: the context digest ignores the order of CNI endpoints and placements, and sees each fact", () => {
  const placements = [
    { nodeName: "node-b", podCidrs: ["10.244.2.0/24"], providerAddress: "192.168.1.11" },
    { nodeName: "node-c", podCidrs: ["10.244.3.0/24"], providerAddress: "192.168.1.12" },
  ];
  const base = overlayCtx({ nodePlacements: placements });
  const reordered = overlayCtx({
    nodePlacements: [...placements].reverse(),
    localEndpoints: new Map([...base.localEndpoints].reverse()),
  });
  assert.equal(contextDigest(base), contextDigest(reordered));
  const changes = [
    { localEndpoints: new Map([...base.localEndpoints, ["10.244.1.7", "LOCAL-0007"]]) },
    { localEndpoints: new Map([...base.localEndpoints].slice(1)) },
    { localEndpoints: new Map([...base.localEndpoints].map(([ip, id]) => [ip, id + "X"])) },
    { nodeIPs: ["192.168.1.99"] },
    { zone: "zone-b" },
    { rootHnsEndpointId: "ROOT" },
    { hostMac: "00-15-5d-00-00-01" },
    { sourceVips: ["10.244.1.3"] },
    { enableDSR: true },
    { healthzPort: 10257 },
    { clusterCidrs: ["10.244.0.0/16"] },
    { nodePlacements: placements.slice(1) },
    { features: { ...base.features, dsr: false } },
    { network: { ...base.network, remoteSubnetRoutes: base.network.remoteSubnetRoutes.slice(1) } },
    { network: { ...base.network, id: "OTHER" } },
  ];
  for (const change of changes) {
    const other = overlayCtx({ nodePlacements: placements, ...change });
    assert.notEqual(contextDigest(other), contextDigest(base), JSON.stringify(Object.keys(change)));
  }
  assert.notEqual(contextDigest(ctx()), contextDigest(overlayCtx()));
});

Deno.test("synced inputs: the config digest sees flags that shape HNS, not how the agent connects or logs", () => {
  const config = {
    kubeconfig: "/a",
    metricsBindAddress: "127.0.0.1:1",
    enableDSR: false,
    sourceVip: "10.244.1.2",
    logging: { verbosity: 0 },
  };
  const base = configDigest(config, "1.0");
  assert.equal(
    base,
    configDigest({ ...config, kubeconfig: "/b", logging: { verbosity: 4 } }, "1.0"),
  );
  assert.equal(base, configDigest({ ...config, metricsBindAddress: "127.0.0.1:2" }, "1.0"));
  assert.notEqual(base, configDigest({ ...config, enableDSR: true }, "1.0"));
  assert.notEqual(base, configDigest({ ...config, sourceVip: "10.244.1.3" }, "1.0"));
  assert.notEqual(base, configDigest({ ...config, newFlag: 1 }, "1.0"), "unknown fields count");
  assert.notEqual(base, configDigest(config, "1.1"), "another version");
});

Deno.test("synced inputs: content hashes tell apart values JSON would confuse", () => {
  assert.notEqual(contentHash(["a", "b"]), contentHash(["ab"]));
  assert.notEqual(contentHash({ a: 1 }), contentHash({ a: "1" }));
  assert.notEqual(contentHash([1, 2]), contentHash([2, 1]), "arrays are ordered");
  assert.equal(contentHash({ a: 1, b: undefined }), contentHash({ a: 1 }));
  assert.equal(contentHash(new Set([1, 2])), contentHash(new Set([2, 1])));
});

const INPUTS: SyncedInputs = { cluster: "c:1", context: "x", config: "y", owned: 8 };

Deno.test("synced inputs: the file records, invalidates, and names its record", async () => {
  const dir = await Deno.makeTempDir({ prefix: "synced-inputs-" });
  try {
    const record = join(dir, "state.json");
    const file = new SyncedInputsFile(record);
    assert.equal(await file.read(), undefined, "none yet");
    await file.record(INPUTS);
    assert.deepEqual(await new SyncedInputsFile(record).read(), INPUTS);
    assert.deepEqual(differingParts(INPUTS, { ...INPUTS, owned: 7, context: "z" }), [
      "context",
      "owned",
    ]);
    // Another record's file (moved or copied) is not this record's digest.
    await Deno.copyFile(file.path, join(dir, "other.json.synced"));
    assert.equal(await new SyncedInputsFile(join(dir, "other.json")).read(), undefined);

    await file.invalidate();
    assert.equal(await new SyncedInputsFile(record).read(), undefined);
    // An invalidation with no digest known from this process still writes (it may be on disk).
    await new SyncedInputsFile(record).record(INPUTS);
    await new SyncedInputsFile(record).invalidate();
    assert.equal(await new SyncedInputsFile(record).read(), undefined);
    await Deno.writeTextFile(file.path, "{garbage");
    assert.equal(await new SyncedInputsFile(record).read(), undefined, "unreadable: none");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("synced inputs: invalidating with no digest on disk writes nothing; one that cannot be made throws", async () => {
  const dir = await Deno.makeTempDir({ prefix: "synced-inputs-" });
  try {
    // A first start: not even the record's directory exists yet.
    const first = new SyncedInputsFile(join(dir, "owned", "state.json"));
    await first.invalidate();
    await assert.rejects(() => Deno.stat(join(dir, "owned")), Deno.errors.NotFound);
    await first.record(INPUTS);
    assert.deepEqual(await new SyncedInputsFile(join(dir, "owned", "state.json")).read(), INPUTS);
    // Unreadable and not replaceable (a directory in its place): the invalidation fails, so
    // the caller writes no HNS object.
    const record = join(dir, "state.json");
    await Deno.mkdir(join(dir, "state.json.synced", "x"), { recursive: true });
    assert.equal(await new SyncedInputsFile(record).read(), undefined);
    await assert.rejects(() => new SyncedInputsFile(record).invalidate());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("synced inputs: the file carries the context's endpoint IDs as a hint, taken once, not part of the digest", async () => {
  const dir = await Deno.makeTempDir({ prefix: "synced-inputs-" });
  try {
    const record = join(dir, "state.json");
    const c = overlayCtx();
    const ids = contextEndpointIds(c);
    assert.deepEqual(ids.toSorted(), [...new Set(c.localEndpoints.values())].toSorted());
    assert.ok(ids.length > 0);
    await new SyncedInputsFile(record).record({ ...INPUTS, endpointIds: ids });

    const file = new SyncedInputsFile(record);
    assert.deepEqual(await file.takeEndpointIds(), ids);
    assert.equal(await file.takeEndpointIds(), undefined, "taken once");
    assert.deepEqual(await file.read(), INPUTS, "the digest itself, without the hint");
    assert.deepEqual(differingParts(INPUTS, { ...INPUTS, endpointIds: ["other"] }), []);

    // A file of before the hint: a digest, no hint.
    await new SyncedInputsFile(record).record(INPUTS);
    assert.equal(await new SyncedInputsFile(record).takeEndpointIds(), undefined);
    // An invalid digest gives no hint either.
    await new SyncedInputsFile(record).record({ ...INPUTS, endpointIds: ids });
    await new SyncedInputsFile(record).invalidate();
    assert.equal(await new SyncedInputsFile(record).takeEndpointIds(), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("synced inputs: a Map hashes as the unordered collection of its [key, value] pairs, as recorded digests were made", () => {
  const pairs: [string, string][] = [
    ["10.244.1.5", "10CA1000-0000-4000-8000-000000000005"],
    ["fd00::5", "X"],
  ];
  const map = new Map(pairs);
  assert.equal(contentHash(map), contentHash(new Map(pairs.toReversed())));
  // The values digests recorded before were made with (a digest on disk stays comparable).
  assert.equal(contentHash(map), "5cd12a06269cc8fc");
  assert.equal(contentHash({ a: map, b: [1, "x"] }), "340e427e6ce746d1");
  assert.notEqual(contentHash(map), contentHash(new Map([pairs[0], ["fd00::5", "Y"]])));
  assert.notEqual(contentHash(map), contentHash(new Map([pairs[0]])));
});
