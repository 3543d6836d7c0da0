/**
 * Every node's placement (pod CIDRs, InternalIPs): converted from any Node,
 * kept in the store with change tracking that marks the services with
 * endpoints on a changed node dirty, watched from the fake API server, and
 * small at 5,000 nodes.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { KubeClient } from "../../lib/kube/client.ts";
import { watchCluster } from "../../lib/kube/cluster.ts";
import {
  convertEndpointSlice,
  ConvertError,
  convertNodePlacement,
} from "../../lib/kube/convert.ts";
import { ClusterStore } from "../../lib/kube/store.ts";
import { FakeApiServer } from "../../lib/fake-apiserver/mod.ts";
import { v8FlagsArgument } from "../../lib/v8_flags.ts";
import { node, RecordingLogger, slice, waitFor } from "./helpers.ts";

const placement = (name: string, cidr: string, ip: string) => ({
  name,
  podCIDRs: [cidr],
  internalIPs: [ip],
});

Deno.test("convertNodePlacement: pod CIDRs (podCIDR as fallback) and InternalIPs only", () => {
  const dual = {
    metadata: { name: "n1" },
    spec: {
      podCIDRs: ["10.244.1.0/24", "fd00:10:244:1::/64"],
      // Fields a placement does not read cannot make it malformed.
      taints: [{ effect: "NoSchedule" }],
    },
    status: {
      addresses: [
        { type: "Hostname", address: "n1" },
        { type: "InternalIP", address: "fd00::11" },
        { type: "ExternalIP", address: "203.0.113.1" },
        { type: "InternalIP", address: "192.168.1.11" },
      ],
    },
  };
  assert.deepEqual(convertNodePlacement(dual), {
    name: "n1",
    podCIDRs: ["10.244.1.0/24", "fd00:10:244:1::/64"],
    internalIPs: ["fd00::11", "192.168.1.11"],
  });
  const legacy = { metadata: { name: "n2" }, spec: { podCIDR: "10.244.2.0/24" }, status: {} };
  assert.deepEqual(convertNodePlacement(legacy), {
    name: "n2",
    podCIDRs: ["10.244.2.0/24"],
    internalIPs: [],
  });
  const joining = { metadata: { name: "n3" } };
  assert.deepEqual(convertNodePlacement(joining), { name: "n3", podCIDRs: [], internalIPs: [] });
  const bad = { metadata: { name: "n4" }, spec: { podCIDRs: ["10.244.4.0/33"] } };
  assert.throws(
    () => convertNodePlacement(bad),
    (e) => e instanceof ConvertError && e.key === "n4" && e.field === "spec.podCIDRs[0]",
  );
});

Deno.test("store: a changed placement marks the services with endpoints on that node dirty", () => {
  const store = new ClusterStore();
  let heard = 0;
  store.onChange(() => heard++);
  // node-0 holds web's first and third endpoint, node-1 the second (helpers' slice()).
  store.upsertSlice(
    convertEndpointSlice(slice("ns", "web-1", "web", ["10.244.0.5", "10.244.1.5"]))!,
  );
  store.upsertSlice(convertEndpointSlice(slice("ns", "db-1", "db", ["10.244.0.6"]))!);
  store.takeChanges();

  store.upsertNodePlacement(placement("node-1", "10.244.1.0/24", "192.168.1.1"));
  store.upsertNodePlacement(placement("node-9", "10.244.9.0/24", "192.168.1.9"));
  assert.equal(store.hasPendingChanges(), true);
  let changes = store.takeChanges();
  assert.deepEqual([...changes.placementsChanged].sort(), ["node-1", "node-9"]);
  assert.deepEqual([...changes.services], ["ns/web"]);
  assert.equal(store.nodePlacement("node-1")?.internalIPs[0], "192.168.1.1");
  assert.equal(store.nodePlacements().size, 2);

  // The same placement again (a node status update): nothing pending, nothing heard.
  const before = heard;
  store.upsertNodePlacement(placement("node-1", "10.244.1.0/24", "192.168.1.1"));
  assert.equal(heard, before);
  assert.equal(store.hasPendingChanges(), false);

  // A changed InternalIP, a node that leaves: both services on them are dirty.
  store.upsertNodePlacement(placement("node-1", "10.244.1.0/24", "192.168.1.100"));
  store.upsertNodePlacement(placement("node-0", "10.244.0.0/24", "192.168.1.50"));
  store.takeChanges();
  store.deleteNodePlacement("node-0");
  changes = store.takeChanges();
  assert.deepEqual([...changes.placementsChanged], ["node-0"]);
  assert.deepEqual([...changes.services].sort(), ["ns/db", "ns/web"]);
  assert.equal(store.nodePlacement("node-0"), undefined);

  // Changed and changed back before the proxy looked: nothing pending.
  store.upsertNodePlacement(placement("node-1", "10.244.1.0/24", "192.168.1.7"));
  store.upsertNodePlacement(placement("node-1", "10.244.1.0/24", "192.168.1.100"));
  assert.equal(store.takeChanges().placementsChanged.size, 0);
});

Deno.test("watchCluster: every node's placement is watched; a node joining later arrives", async () => {
  const server = await new FakeApiServer().start();
  server.create("nodes", node("win-1", "192.168.1.11"));
  server.create("nodes", {
    ...node("broken", "192.168.1.99"),
    spec: { podCIDRs: ["not-a-cidr"] },
  });
  const client = new KubeClient({
    cluster: { name: "fake", server: server.url },
    user: { name: "u" },
  });
  const logger = new RecordingLogger();
  const watch = watchCluster({ client, nodeName: "win-1", logger, pageSize: 1 });
  try {
    await waitFor("nodes listed", () => watch.store.isSynced("nodes"));
    assert.deepEqual([...watch.store.nodePlacements().keys()], ["win-1"]);
    assert.ok(
      logger.lines.some((l) =>
        l.message === "malformed Node skipped" && l.fields.object === "broken" &&
        l.fields.field === "spec.podCIDRs[0]"
      ),
    );
    const nodeLists = server.requests.filter((r) => r.verb === "list" && r.resource === "nodes");
    assert.ok(nodeLists.some((r) => r.query.fieldSelector === undefined), "all nodes listed");

    server.create("nodes", {
      ...node("node-2", "192.168.1.12"),
      spec: { podCIDR: "10.244.2.0/24", podCIDRs: ["10.244.2.0/24"] },
    });
    await waitFor("the new node", () => watch.store.nodePlacement("node-2") !== undefined);
    assert.deepEqual(watch.store.nodePlacement("node-2"), {
      name: "node-2",
      podCIDRs: ["10.244.2.0/24"],
      internalIPs: ["192.168.1.12"],
    });
    server.delete("nodes", "node-2");
    await waitFor("the node left", () => watch.store.nodePlacement("node-2") === undefined);
    // The agent's own node record is still kept in full.
    assert.equal(watch.store.node()?.name, "win-1");
  } finally {
    await watch.stop();
    client.close();
    await server.stop();
  }
});

Deno.test({
  name: "node placements: 5,000 nodes synced through the watcher retain under 1.5 KB each",
  // A child process with the collector exposed measures retained heap exactly.
  async fn() {
    const bench = fileURLToPath(new URL("../../bench/kube_memory.ts", import.meta.url));
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        v8FlagsArgument(),
        bench,
        "--services",
        "0",
        "--nodes",
        "5000",
        "--json",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const { nodePlacements: n } = JSON.parse(text);
    assert.equal(n.nodes, 5000);
    assert.ok(
      n.watcherBytes / n.nodes < 1_500,
      `${Math.round(n.watcherBytes / n.nodes)} B per node`,
    );
    assert.ok(n.watcherBytes < n.apiObjectBytes / 10, "a tenth of the Node objects at most");
  },
});
