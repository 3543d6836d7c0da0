/**
 * An EndpointSlice or Service update shares what did not change with the
 * record it replaces: endpoints that all stayed are the same packed list, and
 * an address that stayed is the same string in the heap, so that a consumer
 * that built its state from the old record (the desired state, the observed
 * cache) and the store after the update hold one copy of it, not two.
 *
 * @module
 */

import assert from "node:assert/strict";
import { KubeClient } from "../../lib/kube/client.ts";
import { watchCluster } from "../../lib/kube/cluster.ts";
import { convertEndpointSlice, convertService } from "../../lib/kube/convert.ts";
import { ClusterStore } from "../../lib/kube/store.ts";
import { FakeApiServer } from "../../lib/fake-apiserver/mod.ts";
import { RecordingLogger, service, slice, waitFor } from "./helpers.ts";
import { stringsInHeap } from "../heap_strings.ts";

/**
 * The JSON text of slice `web-1` with endpoints `10.244.<n>.<100+n>` for
 * each n of `ns` (addresses longer than 10 characters: JSON.parse gives each
 * its own string), the first `notReady` of them not ready. Built from numbers,
 * so that this file holds no copy of an address.
 */
function sliceText(ns: number[], notReady = 0): string {
  const obj = slice("default", "web-1", "web", ns.map((n) => `10.244.${n}.${100 + n}`));
  obj.metadata!.resourceVersion = String(ns.length + notReady);
  const endpoints = obj.endpoints as { conditions: { ready: boolean }; nodeName: string }[];
  endpoints.forEach((e, i) => {
    e.nodeName = `node-${ns[i] % 2}`;
    e.conditions.ready = i >= notReady;
  });
  return JSON.stringify(obj);
}

Deno.test("sharing: after a slice update the heap holds one string per address that stayed", () => {
  const store = new ClusterStore();
  // As lib/kube/cluster.ts does: each object is converted against the record it replaces.
  const upsert = (text: string) => {
    const info = convertEndpointSlice(JSON.parse(text), store.slice("default/web-1"))!;
    store.upsertSlice(info);
  };
  upsert(sliceText([101, 102, 103]));
  // A consumer keeps what it built from the first version (as the desired state does).
  const before = store.slicesFor("default/web");
  // 102 becomes not ready and moves first; 101 stays as it was; 103 goes; 104 comes.
  upsert(sliceText([102, 101, 104], 1));
  const after = store.slicesFor("default/web")[0].endpoints;
  assert.deepEqual([...after].map((e) => [e.address, e.ready]), [
    ["10.244.102.202", false],
    ["10.244.101.201", true],
    ["10.244.104.204", true],
  ]);
  assert.notEqual(after, before[0].endpoints, "a changed slice has a new endpoint list");
  // As many strings for each address that stayed (the unchanged endpoint's, and the changed
  // endpoint's that kept its address) as for a new address, which the store alone holds: the
  // consumer's old records and the store share them (without sharing: 3, 3 and 2).
  const [stayed, changed, added] = stringsInHeap(
    `10.244.${101}.${201}`,
    `10.244.${102}.${202}`,
    `10.244.${104}.${204}`,
  );
  assert.equal(added, 1);
  assert.deepEqual([stayed, changed], [added, added]);
  assert.equal(before[0].endpoints.length, 3);
});

Deno.test("sharing: a service update keeps its cluster IPs when they stayed", () => {
  const text = (port: number) =>
    JSON.stringify(service("default", "web", `fd00::${"a".repeat(3)}:${1}`, { port }));
  const first = convertService(JSON.parse(text(80)))!;
  const second = convertService(JSON.parse(text(81)), first)!;
  assert.equal(second.ports[0].port, 81);
  assert.equal(second.clusterIPs, first.clusterIPs, "the same list of the same strings");
  assert.equal(second.ipFamilies, first.ipFamilies);
  const moved = convertService(
    JSON.parse(JSON.stringify(service("default", "web", "fd00::b:1"))),
    first,
  )!;
  assert.deepEqual(moved.clusterIPs, ["fd00::b:1"]);
});

Deno.test("sharing: services with the same ports share one frozen list; a node port's list is its own", () => {
  const convert = (name: string, ip: string, spec?: Record<string, unknown>) =>
    convertService(JSON.parse(JSON.stringify(service("default", name, ip, { spec }))))!;
  const a = convert("a", "10.96.0.1"), b = convert("b", "10.96.0.2");
  assert.equal(a.ports, b.ports);
  assert.ok(Object.isFrozen(a.ports) && Object.isFrozen(a.ports[0]));
  const nodePorts = (port: number) => ({
    type: "NodePort",
    ports: [{ name: "http", port: 80, targetPort: 8080, protocol: "TCP", nodePort: port }],
  });
  const c = convert("c", "10.96.0.3", nodePorts(30001));
  const d = convert("d", "10.96.0.4", nodePorts(30001));
  assert.notEqual(c.ports, d.ports);
  assert.deepEqual(c.ports, d.ports);
  assert.equal(c.ports[0].nodePort, 30001);
  assert.ok(Object.isFrozen(c.ports) && Object.isFrozen(c.ports[0]));
});

Deno.test("sharing: over the API server, a watched slice update that leaves the endpoints keeps their list", async () => {
  const server = await new FakeApiServer().start();
  server.create("services", service("default", "web", "10.96.0.10"));
  server.create("endpointslices", slice("default", "web-1", "web", ["10.244.1.2", "10.244.1.3"]));
  const client = new KubeClient({
    cluster: { name: "fake", server: server.url },
    user: { name: "u" },
  });
  const watch = watchCluster({ client, nodeName: "win-1", logger: new RecordingLogger() });
  try {
    await watch.synced;
    await waitFor("watches open", () => server.openWatches() === 4);
    const before = watch.store.slicesFor("default/web")[0];
    server.update(
      "endpointslices",
      slice("default", "web-1", "web", ["10.244.1.2", "10.244.1.3", "10.244.1.4"]),
    );
    await waitFor("update seen", () => watch.store.slicesFor("default/web")[0] !== before);
    const after = watch.store.slicesFor("default/web")[0];
    assert.deepEqual([...after.endpoints].map((e) => e.address), [
      "10.244.1.2",
      "10.244.1.3",
      "10.244.1.4",
    ]);
    assert.notEqual(after.endpoints, before.endpoints);
    // Only a label changes: the new record keeps the endpoint list it replaces.
    server.update(
      "endpointslices",
      slice("default", "web-1", "web", ["10.244.1.2", "10.244.1.3", "10.244.1.4"], {
        labels: { tier: "front" },
      }),
    );
    await waitFor("relabel seen", () => watch.store.slicesFor("default/web")[0] !== after);
    assert.equal(watch.store.slicesFor("default/web")[0].endpoints, after.endpoints);
  } finally {
    await watch.stop();
    client.close();
    await server.stop();
  }
});
