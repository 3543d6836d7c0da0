/**
 * The fake API server must behave like kube-apiserver on the wire, or the
 * reflector tests prove nothing: these tests speak raw HTTP to it.
 */
import assert from "node:assert/strict";
import { parseFieldSelector, parseLabelSelector } from "../../lib/fake-apiserver/selectors.ts";
import { FakeApiServer } from "../../lib/fake-apiserver/mod.ts";
import { service, slice } from "./helpers.ts";

async function get(server: FakeApiServer, path: string, headers: HeadersInit = {}) {
  const res = await fetch(server.url + path, { headers });
  return { status: res.status, body: await res.json() };
}

Deno.test("label selectors: syntax and semantics of apimachinery", () => {
  const obj = (labels: Record<string, string>) => ({ metadata: { labels } });
  const cases: [string, Record<string, string>, boolean][] = [
    ["app", { app: "x" }, true],
    ["app", {}, false],
    ["!app", {}, true],
    ["!app", { app: "" }, false],
    ["app=web", { app: "web" }, true],
    ["app==web", { app: "web" }, true],
    ["app!=web", {}, true],
    ["app!=web", { app: "db" }, true],
    ["app!=web", { app: "web" }, false],
    ["tier in (a, b)", { tier: "b" }, true],
    ["tier in (a,b)", { tier: "c" }, false],
    ["tier notin (a,b)", {}, true],
    ["tier notin (a,b)", { tier: "a" }, false],
    ["!service.kubernetes.io/service-proxy-name,kubernetes.io/service-name", {
      "kubernetes.io/service-name": "web",
    }, true],
    ["!service.kubernetes.io/service-proxy-name,kubernetes.io/service-name", {
      "kubernetes.io/service-name": "web",
      "service.kubernetes.io/service-proxy-name": "x",
    }, false],
    ["", { any: "thing" }, true],
  ];
  for (const [sel, labels, want] of cases) {
    assert.equal(parseLabelSelector(sel)(obj(labels)), want, `${sel} on ${JSON.stringify(labels)}`);
  }
  for (const bad of ["a in (b", "=x", "a b", "-bad-", "a=b c"]) {
    assert.throws(() => parseLabelSelector(bad), /unable to parse requirement/, bad);
  }
  const byName = parseFieldSelector("metadata.name=n1");
  assert.equal(byName({ metadata: { name: "n1" } }), true);
  assert.equal(byName({ metadata: { name: "n2" } }), false);
  assert.equal(parseFieldSelector("metadata.namespace!=kube-system")({ metadata: {} }), true);
  assert.throws(() => parseFieldSelector("spec.nodeName=x"), /not a known field selector/);
});

Deno.test("fake API server: lists carry kind, apiVersion, resourceVersion; items do not", async () => {
  const server = await new FakeApiServer().start();
  try {
    server.create("services", service("b", "one", "10.96.0.1"));
    server.create("endpointslices", slice("b", "one-x", "one", ["10.244.0.1"]));
    server.create("services", service("a", "two", "10.96.0.2"));
    const { status, body } = await get(server, "/api/v1/services");
    assert.equal(status, 200);
    assert.equal(body.kind, "ServiceList");
    assert.equal(body.apiVersion, "v1");
    assert.equal(body.metadata.resourceVersion, server.resourceVersion);
    assert.deepEqual(body.items.map((i: { metadata: { name: string } }) => i.metadata.name), [
      "two",
      "one",
    ], "ordered by namespace/name like etcd keys");
    assert.equal(body.items[0].kind, undefined);
    const slices = await get(server, "/apis/discovery.k8s.io/v1/namespaces/b/endpointslices");
    assert.equal(slices.body.kind, "EndpointSliceList");
    assert.equal(slices.body.apiVersion, "discovery.k8s.io/v1");
    assert.equal(slices.body.items.length, 1);
    const nodes = await get(server, "/api/v1/nodes");
    assert.equal(nodes.body.kind, "NodeList");
    // resourceVersions increase across resources.
    const rvs = [
      ...body.items.map((i: { metadata: { resourceVersion: string } }) =>
        i.metadata.resourceVersion
      ),
      slices.body.items[0].metadata.resourceVersion,
    ].map(Number).sort();
    assert.equal(new Set(rvs).size, 3);
    const single = await get(server, "/api/v1/namespaces/a/services/two");
    assert.equal(single.body.kind, "Service");
    const missing = await get(server, "/api/v1/namespaces/a/services/nope");
    assert.equal(missing.status, 404);
    assert.equal(missing.body.kind, "Status");
    assert.equal(missing.body.reason, "NotFound");
    const unknown = await get(server, "/apis/example.com/v1/widgets");
    assert.equal(unknown.status, 404);
  } finally {
    await server.stop();
  }
});

Deno.test("fake API server: a list shows every object as last written, in the text an API server sends", async () => {
  const server = await new FakeApiServer().start();
  try {
    const empty = await fetch(server.url + "/api/v1/services").then((r) => r.text());
    assert.match(empty, /"items":\[\]\}$/);
    assert.deepEqual(JSON.parse(empty).items, []);
    server.create("services", service("a", "one", "10.96.0.1"));
    server.create("services", service("a", "two", "10.96.0.2"));
    await get(server, "/api/v1/services");
    server.update("services", service("a", "one", "10.96.0.1", { port: 443 }));
    const text = await fetch(server.url + "/api/v1/services?limit=1").then((r) => r.text());
    const body = JSON.parse(text);
    const { apiVersion: _a, kind: _k, ...one } = server.get("services", "a/one")!;
    assert.deepEqual(body.items, [one]);
    assert.equal(body.items[0].spec.ports[0].port, 443);
    assert.equal(
      text,
      JSON.stringify({
        kind: "ServiceList",
        apiVersion: "v1",
        metadata: body.metadata,
        items: [one],
      }),
    );
  } finally {
    await server.stop();
  }
});

Deno.test("fake API server: a list's later pages read its snapshot whatever else is written meanwhile", async () => {
  const server = await new FakeApiServer().start();
  const names = (p: { body: { items: { metadata: { name: string } }[] } }) =>
    p.body.items.map((i) => i.metadata.name);
  const next = (p: { body: { metadata: { continue: string } } }) =>
    get(
      server,
      `/api/v1/services?limit=2&continue=${encodeURIComponent(p.body.metadata.continue)}`,
    );
  try {
    for (let i = 0; i < 6; i++) {
      server.create("services", service("ns", `s${i}`, `10.96.0.${i + 1}`));
    }
    const p1 = await get(server, "/api/v1/services?limit=2");
    // Another resource written (as the agent's Events are): the services are as listed.
    server.create("endpointslices", slice("ns", "s0-a", "s0", ["10.244.1.2"]));
    const p2 = await next(p1);
    assert.deepEqual(names(p2), ["s2", "s3"]);
    assert.equal(p2.body.metadata.resourceVersion, p1.body.metadata.resourceVersion);
    // Then a service: the last page still shows the snapshot, not the change.
    server.delete("services", "ns/s5");
    const p3 = await next(p2);
    assert.deepEqual(names(p3), ["s4", "s5"]);
    assert.equal(p3.body.metadata.continue, undefined);
  } finally {
    await server.stop();
  }
});

Deno.test("fake API server: pagination reads a consistent snapshot and expires with compaction", async () => {
  const server = await new FakeApiServer().start();
  try {
    for (let i = 0; i < 5; i++) {
      server.create("services", service("ns", `s${i}`, `10.96.0.${i + 1}`));
    }
    const p1 = await get(server, "/api/v1/services?limit=2");
    assert.equal(p1.body.items.length, 2);
    assert.equal(p1.body.metadata.remainingItemCount, 3);
    const token = p1.body.metadata.continue;
    assert.ok(token);
    // Changes after the first page do not show in the following pages.
    server.delete("services", "ns/s3");
    server.create("services", service("ns", "s9", "10.96.0.9"));
    const p2 = await get(server, `/api/v1/services?limit=2&continue=${encodeURIComponent(token)}`);
    assert.deepEqual(p2.body.items.map((i: { metadata: { name: string } }) => i.metadata.name), [
      "s2",
      "s3",
    ]);
    assert.equal(p2.body.metadata.resourceVersion, p1.body.metadata.resourceVersion);
    // resourceVersion=0 is served from the cache and ignores limit.
    const cached = await get(server, "/api/v1/services?limit=2&resourceVersion=0");
    assert.equal(cached.body.items.length, 5);
    assert.equal(cached.body.metadata.continue, undefined);

    server.compactBefore();
    const gone = await get(
      server,
      `/api/v1/services?limit=2&continue=${encodeURIComponent(p2.body.metadata.continue)}`,
    );
    assert.equal(gone.status, 410);
    assert.equal(gone.body.reason, "Expired");
    const bad = await get(server, "/api/v1/services?continue=garbage");
    assert.equal(bad.status, 400);
  } finally {
    await server.stop();
  }
});

Deno.test("fake API server: bad selectors get 400, missing tokens 401, injected failures their code", async () => {
  const server = await new FakeApiServer({ tokens: ["t0k"] }).start();
  try {
    const auth = { Authorization: "Bearer t0k" };
    const bad = await get(server, "/api/v1/services?labelSelector=a%20in%20(b", auth);
    assert.equal(bad.status, 400);
    assert.equal(bad.body.reason, "BadRequest");
    const field = await get(server, "/api/v1/nodes?fieldSelector=spec.unschedulable%3Dtrue", auth);
    assert.equal(field.status, 400);
    const anon = await get(server, "/api/v1/services");
    assert.equal(anon.status, 401);
    assert.equal(anon.body.kind, "Status");
    assert.equal(anon.body.reason, "Unauthorized");
    server.failNext(403, { resource: "nodes" });
    assert.equal((await get(server, "/api/v1/services", auth)).status, 200);
    const forbidden = await get(server, "/api/v1/nodes", auth);
    assert.equal(forbidden.status, 403);
    assert.match(forbidden.body.message, /nodes is forbidden/);
    assert.equal((await get(server, "/api/v1/nodes", auth)).status, 200);
  } finally {
    await server.stop();
  }
});

Deno.test("fake API server: watch replays from a resourceVersion, follows selectors, ends at timeoutSeconds", async () => {
  const server = await new FakeApiServer().start();
  try {
    server.create("services", service("ns", "a", "10.96.0.1"));
    const from = server.resourceVersion;
    server.create("services", service("ns", "b", "10.96.0.2"));
    server.update(
      "services",
      service("ns", "a", "10.96.0.1", {
        labels: { "service.kubernetes.io/service-proxy-name": "x" },
      }),
    );
    server.delete("services", "ns/b");
    const sel = encodeURIComponent("!service.kubernetes.io/service-proxy-name");
    const res = await fetch(
      `${server.url}/api/v1/services?watch=true&resourceVersion=${from}&labelSelector=${sel}&timeoutSeconds=1`,
    );
    assert.equal(res.headers.get("content-type"), "application/json");
    const text = await res.text(); // ends when the server-side timeout closes the stream
    const events = text.trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(events.map((e) => `${e.type} ${e.object.metadata.name}`), [
      "ADDED b",
      "DELETED a", // left the selector
      "DELETED b",
    ]);
    assert.equal(events[0].object.kind, "Service");
    assert.equal(events[2].object.metadata.resourceVersion, server.resourceVersion);

    server.compactBefore();
    const old = await fetch(`${server.url}/api/v1/services?watch=1&resourceVersion=${from}`);
    assert.equal(old.status, 200, "the watch cache answers a too-old resourceVersion in-stream");
    const [err] = (await old.text()).trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(err.type, "ERROR");
    assert.equal(err.object.code, 410);
    assert.equal(err.object.reason, "Expired");
  } finally {
    await server.stop();
  }
});

Deno.test("fake API server: bookmarks come about every minute by default, as from kube-apiserver's watch cache, to watches that allow them, once their resource was written since the server (re)started", async () => {
  const quiet = new FakeApiServer({ bookmarkIntervalMs: 0 });
  assert.equal(new FakeApiServer().bookmarkIntervalMs, 60_000);
  assert.equal(quiet.bookmarkIntervalMs, 0);
  const server = await new FakeApiServer({ bookmarkIntervalMs: 30 }).start();
  try {
    server.create("services", service("default", "a", "10.96.0.1"));
    /** The event types a 1 s watch of `path` gets (it spans many 30 ms ticks). */
    const watch = (path: string, bookmarks = true) =>
      fetch(
        `${server.url}${path}?watch=1&resourceVersion=${server.resourceVersion}&timeoutSeconds=1` +
          (bookmarks ? "&allowWatchBookmarks=true" : ""),
      ).then(async (r) =>
        (await r.text()).trim().split("\n").filter(Boolean).map((l) => JSON.parse(l).type)
      );
    const bookmarks = (types: string[]) => types.filter((t) => t === "BOOKMARK").length;
    const [services, without, nodes] = await Promise.all([
      watch("/api/v1/services"),
      watch("/api/v1/services", false),
      // No node was ever written: its watch cache has seen no event.
      watch("/api/v1/nodes"),
    ]);
    assert.ok(bookmarks(services) >= 5, services.join());
    assert.deepEqual(without, []);
    assert.deepEqual(nodes, []);
    // A restarted server's caches start afresh: no bookmark until the resource is written again.
    await server.outage();
    await server.endOutage();
    const afterRestart = watch("/api/v1/services");
    const writtenNodes = watch("/api/v1/nodes");
    await new Promise((r) => setTimeout(r, 200));
    server.create("nodes", { metadata: { name: "n1" } });
    assert.deepEqual(await afterRestart, []);
    const nodeTypes = await writtenNodes;
    assert.equal(nodeTypes[0], "ADDED");
    assert.ok(bookmarks(nodeTypes) >= 5, nodeTypes.join());
    // So do a restored server's: what the backup holds is listed, not an event.
    server.restoreFromBackup({ services: [service("default", "b", "10.96.0.2")] });
    assert.deepEqual(await watch("/api/v1/services"), []);
  } finally {
    await server.stop();
  }
});
