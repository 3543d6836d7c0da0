import assert from "node:assert/strict";
import { KubeClient } from "../../lib/kube/client.ts";
import {
  ENDPOINT_SLICE_SELECTOR,
  SERVICE_SELECTOR,
  watchCluster,
  type WatchClusterOptions,
} from "../../lib/kube/cluster.ts";
import { FakeApiServer } from "../../lib/fake-apiserver/mod.ts";
import { ClusterStore } from "../../lib/kube/store.ts";
import { node, RecordingLogger, service, slice, waitFor } from "./helpers.ts";

async function start(seed: (s: FakeApiServer) => void, extra: Partial<WatchClusterOptions> = {}) {
  const server = await new FakeApiServer().start();
  seed(server);
  const client = new KubeClient({
    cluster: { name: "fake", server: server.url },
    user: { name: "u" },
  });
  const logger = new RecordingLogger();
  const watch = watchCluster({
    client,
    nodeName: "win-1",
    logger,
    pageSize: 3,
    timing: { backoffInitialMs: 2, backoffMaxMs: 10 },
    ...extra,
  });
  return {
    server,
    logger,
    watch,
    store: watch.store,
    async [Symbol.asyncDispose]() {
      await watch.stop();
      client.close();
      await server.stop();
    },
  };
}

function seedMixed(s: FakeApiServer) {
  s.create("services", service("default", "web", "10.96.0.10"));
  s.create(
    "services",
    service("default", "other-proxy", "10.96.0.11", {
      labels: { "service.kubernetes.io/service-proxy-name": "cilium" },
    }),
  );
  s.create(
    "services",
    service("default", "headless", "None", { spec: { clusterIP: "None", clusterIPs: ["None"] } }),
  );
  s.create("services", {
    ...service("default", "broken", "10.96.0.12"),
    spec: { clusterIP: "10.96.0.12", ports: [{ name: "http", port: "eighty" }] },
  });
  s.create("endpointslices", slice("default", "web-1", "web", ["10.244.1.2", "10.244.2.3"]));
  s.create(
    "endpointslices",
    slice("default", "headless-1", "headless", ["10.244.1.9"], {
      labels: { "service.kubernetes.io/headless": "" },
    }),
  );
  s.create(
    "endpointslices",
    slice("default", "other-proxy-1", "other-proxy", ["10.244.1.8"], {
      labels: { "service.kubernetes.io/service-proxy-name": "cilium" },
    }),
  );
  s.create("endpointslices", slice("default", "orphan", undefined, ["10.244.1.7"]));
  s.create("endpointslices", {
    ...slice("default", "web-bad", "web", []),
    endpoints: [{ addresses: ["not-an-ip"] }],
  });
  s.create("nodes", node("win-1", "192.168.1.10"));
  s.create("nodes", node("linux-1", "192.168.1.20"));
}

Deno.test("cluster: kube-proxy's selectors are honoured and malformed objects are skipped with the field named", async () => {
  await using t = await start(seedMixed);
  await t.watch.synced;
  await waitFor("node synced", () => t.store.isSynced("node"));
  assert.deepEqual([...t.store.services()].map((s) => s.name), ["web"]);
  assert.deepEqual(t.store.slicesFor("default/web").map((s) => s.name), ["web-1"]);
  assert.equal(t.store.slicesFor("default/headless").length, 0);
  assert.equal(t.store.sliceCount, 1);
  assert.equal(t.store.node()?.name, "win-1");
  assert.deepEqual(t.store.node()?.internalIPs, ["192.168.1.10"]);

  const listed = (resource: string) =>
    t.server.requests.find((r) => r.verb === "list" && r.resource === resource)!.query;
  assert.equal(listed("services").labelSelector, SERVICE_SELECTOR);
  assert.equal(listed("endpointslices").labelSelector, ENDPOINT_SLICE_SELECTOR);
  assert.equal(listed("nodes").fieldSelector, "metadata.name=win-1");

  const warns = t.logger.lines.filter((l) => l.level === "warn");
  assert.deepEqual(warns.map((w) => [w.fields.object, w.fields.field]).sort(), [
    ["default/broken", "spec.ports[0].port"],
    ["default/web-bad", "endpoints[0].addresses[0]"],
  ]);
});

Deno.test("cluster: hasSynced stays false until EndpointSlices listed too", async () => {
  await using t = await start((s) => {
    s.create("services", service("default", "web", "10.96.0.10"));
    s.failNext(500, { resource: "endpointslices", verb: "list", count: 1_000_000 });
  });
  await waitFor("services listed", () => t.store.isSynced("services"));
  await waitFor("slice list retried", () => t.server.count("list", "endpointslices") >= 3);
  assert.equal(t.store.hasSynced(), false);
  t.server.clearFailures();
  await t.watch.synced;
  assert.equal(t.store.hasSynced(), true);
});

Deno.test("cluster: a burst of watch events becomes one piece of work per service", async () => {
  const trigger = "endpoints.kubernetes.io/last-change-trigger-time";
  await using t = await start((s) => {
    s.create("services", service("default", "web", "10.96.0.10"));
    s.create("services", service("default", "api", "10.96.0.20"));
    s.create(
      "endpointslices",
      slice("default", "web-1", "web", ["10.244.1.2"], {
        annotations: { [trigger]: "2024-05-01T09:59:00Z" },
      }),
    );
  }, { store: new ClusterStore({ trackingSinceMs: Date.parse("2024-05-01T10:00:00Z") }) });
  await t.watch.synced;
  await waitFor("watches open", () => t.server.openWatches() === 4);
  const listed = t.store.takeChanges();
  assert.equal(listed.triggerTimes.size, 0, "a change from before the start is not measured");
  for (let i = 0; i < 10; i++) {
    t.server.update("services", service("default", "web", "10.96.0.10", { port: 1000 + i }));
    t.server.update(
      "endpointslices",
      slice("default", "web-1", "web", [`10.244.1.${10 + i}`], {
        annotations: { [trigger]: `2024-05-01T10:00:${10 + i}Z` },
      }),
    );
  }
  await waitFor(
    "last update applied",
    () =>
      t.store.slicesFor("default/web")[0]?.endpoints.address(0) === "10.244.1.19" &&
      t.store.service("default/web")?.ports[0].port === 1009,
  );
  assert.equal(t.store.pendingServiceChanges(), 1);
  assert.equal(t.store.pendingEndpointChanges(), 1);
  const changes = t.store.takeChanges();
  assert.deepEqual([...changes.services], ["default/web"]);
  assert.deepEqual([...changes.triggerTimes], [[
    "default/web",
    Date.parse("2024-05-01T10:00:10Z"),
  ]]);
});

Deno.test("cluster: a service that gains service-proxy-name leaves the store; node updates are seen", async () => {
  await using t = await start((s) => {
    s.create("services", service("default", "web", "10.96.0.10"));
    s.create("nodes", node("win-1", "192.168.1.10"));
  });
  await t.watch.synced;
  await waitFor("node", () => t.store.node() !== undefined);
  t.server.update(
    "services",
    service("default", "web", "10.96.0.10", {
      labels: { "service.kubernetes.io/service-proxy-name": "other" },
    }),
  );
  await waitFor("service dropped", () => t.store.serviceCount === 0);
  t.server.update("nodes", node("win-1", "192.168.1.99"));
  await waitFor("node IP", () => t.store.node()?.internalIPs[0] === "192.168.1.99");
  t.server.create("nodes", node("linux-1", "192.168.1.20"));
  t.server.delete("nodes", "win-1");
  await waitFor("node gone", () => t.store.node() === undefined);
});

Deno.test("cluster: listeners hear a list page once, not once per object, and every later change", async () => {
  const heard: number[] = [];
  await using t = await start((s) => {
    for (let i = 0; i < 7; i++) {
      s.create("services", service("default", `svc-${i}`, `10.96.0.${10 + i}`));
      s.create("endpointslices", slice("default", `svc-${i}-1`, `svc-${i}`, [`10.244.1.${i}`]));
    }
  }, { watchPlacements: false });
  t.store.onChange(() => heard.push(t.store.serviceCount + t.store.sliceCount));
  await t.watch.synced;
  // Pages of 3: 3 pages per resource, each heard once, plus the synced
  // marks (services, slices, node); once per object would be 14 and more.
  assert.equal(t.store.serviceCount, 7);
  assert.equal(t.store.sliceCount, 7);
  assert.ok(heard.length <= 3 + 3 + 3, `heard ${heard.length} times: ${heard}`);
  await waitFor("watches open", () => t.server.openWatches() === 3);
  const before = heard.length;
  t.server.update("services", service("default", "svc-1", "10.96.0.11", { port: 81 }));
  await waitFor("the event is heard", () => heard.length === before + 1);
});
