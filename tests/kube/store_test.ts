import assert from "node:assert/strict";
import { EndpointList, type EndpointSliceInfo, type ServiceInfo } from "../../lib/kube/model.ts";
import { ClusterStore, sameRecord } from "../../lib/kube/store.ts";

function svc(name: string, port = 80, rv = "1"): ServiceInfo {
  return {
    namespace: "ns",
    name,
    resourceVersion: rv,
    type: "ClusterIP",
    clusterIPs: ["10.96.0.1"],
    ipFamilies: ["IPv4"],
    ports: [{ name: "", protocol: "TCP", port, targetPort: 8080 }],
    externalIPs: [],
    ingress: [],
    loadBalancerSourceRanges: [],
    externalTrafficPolicy: "Cluster",
    internalTrafficPolicy: "Cluster",
    sessionAffinity: "None",
    preserveDestination: false,
  };
}

function slc(
  name: string,
  service: string,
  ips: string[],
  triggerTimeMs?: number,
): EndpointSliceInfo {
  return {
    namespace: "ns",
    name,
    serviceName: service,
    addressType: "IPv4",
    ports: [{ name: "", port: 8080, protocol: "TCP" }],
    endpoints: EndpointList.of(
      ips.map((address) => ({ address, ready: true, serving: true, terminating: false })),
    ),
    ...(triggerTimeMs !== undefined ? { triggerTimeMs } : {}),
  };
}

Deno.test("store: a burst of events for one service becomes one dirty key", () => {
  const store = new ClusterStore();
  for (let i = 0; i < 50; i++) store.upsertService(svc("a", 80 + i, String(i)));
  for (let i = 0; i < 20; i++) store.upsertSlice(slc("a-1", "a", [`10.0.0.${i}`]));
  store.upsertSlice(slc("a-2", "a", ["10.0.1.1"]));
  assert.equal(store.pendingServiceChanges(), 1);
  assert.equal(store.pendingEndpointChanges(), 1);
  assert.equal(store.serviceChangesTotal, 50);
  assert.equal(store.endpointChangesTotal, 21);
  const changes = store.takeChanges();
  assert.deepEqual([...changes.services], ["ns/a"]);
  assert.equal(changes.serviceChanges, 1);
  assert.equal(changes.endpointChanges, 1);
  assert.equal(store.hasPendingChanges(), false);
  assert.deepEqual(store.takeChanges().services.size, 0);
});

Deno.test("store: a change that is undone, or only bumps the resourceVersion, leaves nothing pending", () => {
  const store = new ClusterStore();
  store.upsertService(svc("a", 80, "1"));
  store.takeChanges();
  store.upsertService(svc("a", 81, "2"));
  store.upsertService(svc("a", 80, "3"));
  assert.equal(store.pendingServiceChanges(), 0);
  store.upsertService(svc("a", 80, "4"));
  assert.equal(store.hasPendingChanges(), false);
  store.upsertService(svc("b"));
  store.deleteService("ns/b");
  assert.equal(store.hasPendingChanges(), false, "added then deleted before a sync");
  store.deleteService("ns/never-existed");
  assert.equal(store.hasPendingChanges(), false);
});

Deno.test("store: slicesFor groups slices by service and follows moves and deletes", () => {
  const store = new ClusterStore();
  store.upsertSlice(slc("a-2", "a", ["10.0.0.2"]));
  store.upsertSlice(slc("a-1", "a", ["10.0.0.1"]));
  store.upsertSlice(slc("b-1", "b", ["10.0.1.1"]));
  assert.deepEqual(store.slicesFor("ns/a").map((s) => s.name), ["a-1", "a-2"]);
  assert.equal(store.slicesFor("ns/a"), store.slicesFor("ns/a"), "cached until a change");
  store.takeChanges();
  store.upsertSlice(slc("a-2", "b", ["10.0.0.2"])); // relabelled to service b
  assert.deepEqual(store.slicesFor("ns/a").map((s) => s.name), ["a-1"]);
  assert.deepEqual(store.slicesFor("ns/b").map((s) => s.name), ["a-2", "b-1"]);
  assert.deepEqual([...store.takeChanges().services].sort(), ["ns/a", "ns/b"]);
  store.deleteSlice("ns/a-1");
  assert.deepEqual(store.slicesFor("ns/a"), []);
  assert.deepEqual([...store.takeChanges().services], ["ns/a"]);
  assert.equal(store.sliceCount, 2);
});

Deno.test("store: the earliest trigger time per service with endpoint changes", () => {
  const store = new ClusterStore({ trackingSinceMs: 1000 });
  store.upsertSlice(slc("a-1", "a", ["10.0.0.1"], 5000));
  store.upsertSlice(slc("a-2", "a", ["10.0.0.2"], 3000));
  store.upsertSlice(slc("a-1", "a", ["10.0.0.3"], 7000));
  store.upsertSlice(slc("b-1", "b", ["10.0.1.1"]));
  store.upsertService(svc("c"));
  const changes = store.takeChanges();
  assert.deepEqual([...changes.triggerTimes], [["ns/a", 3000]]);
  assert.equal(store.takeChanges().triggerTimes.size, 0);
});

Deno.test("store: only trigger times after the store started tracking are reported (kube-proxy's rule)", () => {
  const store = new ClusterStore({ trackingSinceMs: 1000 });
  // The initial list: changes made before the start, one of them at the start itself.
  store.upsertSlice(slc("a-1", "a", ["10.0.0.1"], 500));
  store.upsertSlice(slc("b-1", "b", ["10.0.1.1"], 1000));
  store.upsertSlice(slc("c-1", "c", ["10.0.2.1"], 1001));
  let changes = store.takeChanges();
  assert.deepEqual([...changes.services].sort(), ["ns/a", "ns/b", "ns/c"]);
  assert.deepEqual([...changes.triggerTimes], [["ns/c", 1001]]);
  // A change made after the start is; an event still carrying an older time is not.
  store.upsertSlice(slc("a-1", "a", ["10.0.0.2"], 4000));
  store.upsertSlice(slc("b-1", "b", ["10.0.1.2"], 900));
  changes = store.takeChanges();
  assert.deepEqual([...changes.services].sort(), ["ns/a", "ns/b"]);
  assert.deepEqual([...changes.triggerTimes], [["ns/a", 4000]]);
});

Deno.test("store: by default tracking starts when the store is made", () => {
  const store = new ClusterStore();
  const now = Date.now();
  store.upsertSlice(slc("a-1", "a", ["10.0.0.1"], now - 60_000));
  store.upsertSlice(slc("b-1", "b", ["10.0.1.1"], now + 60_000));
  assert.deepEqual([...store.takeChanges().triggerTimes], [["ns/b", now + 60_000]]);
});

Deno.test("store: removing a slice forgets its service's pending trigger time", () => {
  const store = new ClusterStore({ trackingSinceMs: 0 });
  store.upsertSlice(slc("a-1", "a", ["10.0.0.1"]));
  store.upsertSlice(slc("a-2", "a", ["10.0.0.2"]));
  store.upsertSlice(slc("b-1", "b", ["10.0.1.1"]));
  store.takeChanges();
  store.upsertSlice(slc("a-1", "a", ["10.0.0.3"], 2000));
  store.upsertSlice(slc("b-1", "b", ["10.0.1.2"], 2000));
  // Its annotation is the time of the slice's last update, not of its removal.
  store.deleteSlice("ns/a-2");
  let changes = store.takeChanges();
  assert.deepEqual([...changes.services].sort(), ["ns/a", "ns/b"]);
  assert.deepEqual([...changes.triggerTimes], [["ns/b", 2000]]);
  // A change after the removal is measured again.
  store.deleteSlice("ns/b-1");
  store.upsertSlice(slc("b-1", "b", ["10.0.1.3"], 3000));
  changes = store.takeChanges();
  assert.deepEqual([...changes.triggerTimes], [["ns/b", 3000]]);
});

Deno.test("store: a slice received again unchanged does not re-arm its trigger time", () => {
  const store = new ClusterStore({ trackingSinceMs: 0 });
  store.upsertSlice(slc("a-1", "a", ["10.0.0.1"], 2000));
  assert.deepEqual([...store.takeChanges().triggerTimes], [["ns/a", 2000]]);
  // A relist brings the same slice (a new resourceVersion at most), then a later change comes.
  store.upsertSlice({ ...slc("a-1", "a", ["10.0.0.1"], 2000), resourceVersion: "7" });
  store.upsertSlice(slc("a-1", "a", ["10.0.0.2"], 5000));
  assert.deepEqual([...store.takeChanges().triggerTimes], [["ns/a", 5000]]);
});

Deno.test("store: hasSynced only after both Services and EndpointSlices listed", async () => {
  const store = new ClusterStore();
  let resolved = false;
  const p = store.whenSynced().then(() => resolved = true);
  store.markSynced("node");
  store.markSynced("services");
  await Promise.resolve();
  assert.equal(store.hasSynced(), false);
  assert.equal(resolved, false);
  store.markSynced("endpointSlices");
  assert.equal(store.hasSynced(), true);
  await p;
  assert.equal(resolved, true);
});

Deno.test("store: node changes are tracked, listeners hear every change", () => {
  const store = new ClusterStore();
  let heard = 0;
  const off = store.onChange(() => heard++);
  const node = { name: "n", internalIPs: ["192.168.0.1"], podCIDRs: [], resourceVersion: "1" };
  store.setNode(node);
  assert.equal(store.takeChanges().nodeChanged, true);
  store.setNode({ ...node, resourceVersion: "2" });
  assert.equal(store.takeChanges().nodeChanged, false);
  store.upsertService(svc("a"));
  store.upsertService(svc("a", 80, "9")); // only the resourceVersion moved: nothing to hear
  off();
  store.upsertService(svc("b"));
  assert.equal(heard, 2);
});

Deno.test("sameRecord: structural, ignores resourceVersion and undefined fields", () => {
  assert.ok(
    sameRecord({ a: [1, { b: 2 }], resourceVersion: "1" }, {
      a: [1, { b: 2 }],
      resourceVersion: "2",
    }),
  );
  assert.ok(sameRecord({ a: 1, z: undefined }, { a: 1 }));
  assert.ok(!sameRecord({ a: [1] }, { a: [1, 2] }));
  assert.ok(!sameRecord({ a: 1 }, undefined));
});

Deno.test("store: a batch is heard once at its end, only when something changed", () => {
  const store = new ClusterStore();
  const heard: number[] = [];
  store.onChange(() => heard.push(store.serviceCount));
  store.batch(() => {
    store.upsertService(svc("a"));
    store.batch(() => store.upsertService(svc("b")));
    assert.deepEqual(heard, [], "nothing heard inside the batch");
    store.upsertService(svc("c"));
  });
  assert.deepEqual(heard, [3], "heard once, with every change made");
  store.batch(() => store.upsertService(svc("a", 80, "9"))); // only the resourceVersion moved
  assert.deepEqual(heard, [3]);
  assert.throws(() =>
    store.batch(() => {
      store.deleteService("ns/a");
      throw new Error("boom");
    })
  );
  assert.deepEqual(heard, [3, 2], "a batch that throws is still heard");
  store.upsertService(svc("d"));
  assert.deepEqual(heard, [3, 2, 3], "outside a batch every change is heard at once");
});

Deno.test("store: a service's lone slice and its several slices read alike as they come and go", () => {
  const store = new ClusterStore();
  const names = (key: string) => store.slicesFor(key).map((s) => s.name);
  store.upsertSlice(slc("a-2", "a", ["10.0.0.2"]));
  assert.deepEqual(names("ns/a"), ["a-2"]);
  const replaced = slc("a-2", "a", ["10.0.0.3"]);
  store.upsertSlice(replaced);
  assert.deepEqual(store.slicesFor("ns/a"), [replaced], "the lone slice replaced");
  store.upsertSlice(slc("a-1", "a", ["10.0.0.1"]));
  store.upsertSlice(slc("a-3", "a", ["10.0.0.4"]));
  assert.deepEqual(names("ns/a"), ["a-1", "a-2", "a-3"]);
  store.deleteSlice("ns/a-1");
  store.deleteSlice("ns/a-3");
  assert.deepEqual(store.slicesFor("ns/a"), [replaced], "back to one");
  store.deleteSlice("ns/a-2");
  assert.deepEqual(store.slicesFor("ns/a"), []);
  // A node's placement change finds a service by its lone slice's endpoints.
  store.upsertSlice({
    ...slc("b-1", "b", []),
    endpoints: EndpointList.of([{
      address: "10.0.1.1",
      ready: true,
      serving: true,
      terminating: false,
      nodeName: "node-1",
    }]),
  });
  store.upsertSlice(slc("c-1", "c", ["10.0.2.1"]));
  store.takeChanges();
  store.upsertNodePlacement({
    name: "node-1",
    podCIDRs: ["10.0.1.0/24"],
    internalIPs: ["192.168.1.1"],
  });
  assert.deepEqual([...store.takeChanges().services], ["ns/b"]);
});

Deno.test("store: forEachService visits every service once with its namespace/name key", () => {
  const store = new ClusterStore();
  store.upsertService(svc("a"));
  store.upsertService(svc("b"));
  store.upsertService(svc("c"));
  store.deleteService("ns/b");
  store.upsertService(svc("a", 81, "2"));
  const seen: [string, number][] = [];
  store.forEachService((s, key) => seen.push([key, s.ports[0].port]));
  assert.deepEqual(seen.sort(), [["ns/a", 81], ["ns/c", 80]]);
});

Deno.test("store: before the first take, what is pending is what the store holds, as after one", () => {
  // The same events on a new store and on one whose earlier changes were taken (all then
  // removed, and taken again): the pending changes and the change set agree.
  const events = (store: ClusterStore) => {
    store.upsertService(svc("a"));
    store.upsertSlice(slc("s1", "a", ["10.0.0.1"], 3000));
    store.upsertService(svc("c"));
    store.deleteService("ns/c");
    store.upsertSlice(slc("s1", "b", ["10.0.0.1"], 2000)); // moved to service b
    store.upsertSlice(slc("s2", "d", ["10.0.0.2"]));
    store.deleteSlice("ns/s2");
    store.deleteService("ns/a");
    store.upsertService(svc("e"));
  };
  const fresh = new ClusterStore({ trackingSinceMs: 0 });
  const used = new ClusterStore({ trackingSinceMs: 0 });
  used.upsertService(svc("x"));
  used.upsertSlice(slc("s9", "x", ["10.0.0.9"]));
  used.takeChanges();
  used.deleteService("ns/x");
  used.deleteSlice("ns/s9");
  used.takeChanges();
  for (const store of [fresh, used]) {
    events(store);
    assert.equal(store.pendingServiceChanges(), 1, "e (a and c came and went)");
    assert.equal(store.pendingEndpointChanges(), 1, "b (s2 came and went)");
    assert.equal(store.hasPendingChanges(), true);
    const changes = store.takeChanges();
    assert.deepEqual([...changes.services].sort(), ["ns/b", "ns/e"]);
    assert.equal(changes.serviceChanges, 1);
    assert.equal(changes.endpointChanges, 1);
    assert.deepEqual([...changes.triggerTimes], [["ns/b", 2000]]);
    assert.equal(store.hasPendingChanges(), false);
    // Taken: later changes are tracked against what the store holds now.
    store.upsertService(svc("e"));
    assert.equal(store.hasPendingChanges(), false, "e unchanged");
    store.upsertSlice(slc("s1", "b", ["10.0.0.3"]));
    assert.deepEqual([...store.takeChanges().services], ["ns/b"]);
  }
});
