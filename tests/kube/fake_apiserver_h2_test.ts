/**
 * The agent's API client over HTTP/2, as against a real kube-apiserver: over
 * TLS the fake offers `h2` and `http/1.1` by ALPN, Deno's fetch picks h2, and
 * the agent's lists and watches become streams multiplexed on one
 * connection. These tests check that every behaviour the agent relies on
 * holds there (authentication, errors, gzip, concurrent watches, bookmarks,
 * the server-side timeout, a reset stream, GOAWAY, a restart, a silent
 * stream, a frozen connection, a restore from backup) and that an
 * HTTP/1.1-only client is still served.
 */
import assert from "node:assert/strict";
import {
  type ApiError,
  ENDPOINT_SLICES,
  NODES,
  SERVICES,
  type WatchEvent,
} from "../../lib/kube/api.ts";
import { KubeClient } from "../../lib/kube/client.ts";
import { Reflector, type ReflectorHandler } from "../../lib/kube/reflector.ts";
import {
  FakeApiServer,
  type FakeApiServerOptions,
  GZIP_THRESHOLD_BYTES,
  type RequestRecord,
} from "../../lib/fake-apiserver/mod.ts";
import { node, RecordingLogger, service, slice, waitFor } from "./helpers.ts";
import { hasOpenssl, makePki, type Pki } from "./pki.ts";

interface TlsWorld {
  pki: Pki;
  server: FakeApiServer;
  /** The agent's client, authenticated by its client certificate. */
  client: KubeClient;
  [Symbol.asyncDispose](): Promise<void>;
}

async function tlsWorld(options: FakeApiServerOptions = {}): Promise<TlsWorld> {
  const pki = await makePki();
  const server = await new FakeApiServer({
    tls: { cert: pki.serverCert, key: pki.serverKey, clientCA: pki.ca },
    tokens: ["a-token"],
    ...options,
  }).start();
  const client = new KubeClient({
    cluster: { name: "fake", server: server.url, caPem: pki.ca },
    user: { name: "node", clientCertificatePem: pki.clientCert, clientKeyPem: pki.clientKey },
  });
  return {
    pki,
    server,
    client,
    async [Symbol.asyncDispose]() {
      client.close();
      await server.stop();
      await Deno.remove(pki.dir, { recursive: true });
    },
  };
}

/** The next event of a watch, or a failure after a generous deadline (never a hang). */
async function next(events: AsyncGenerator<WatchEvent>): Promise<IteratorResult<WatchEvent>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("no watch event within 10 s")), 10_000);
  });
  try {
    return await Promise.race([events.next(), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

function nameOf(result: IteratorResult<WatchEvent>): string {
  assert.equal(result.done, false, "the watch goes on");
  return `${result.value!.type} ${result.value!.object.metadata?.name ?? ""}`;
}

function watches(server: FakeApiServer, resource?: string): RequestRecord[] {
  return server.requests.filter((r) =>
    r.verb === "watch" && (!resource || r.resource === resource)
  );
}

Deno.test({
  name:
    "h2: over TLS the client negotiates h2; lists, gets, gzip, 401/403/404/410 as over HTTP/1.1",
  ignore: !hasOpenssl,
  async fn() {
    await using t = await tlsWorld();
    const note = "x".repeat(400);
    for (let i = 0; i < 500; i++) {
      t.server.create("services", {
        ...service("default", `svc-${String(i).padStart(3, "0")}`, `10.96.${i >> 8}.${i & 255}`),
        metadata: {
          name: `svc-${String(i).padStart(3, "0")}`,
          namespace: "default",
          annotations: { note },
        },
      });
    }

    // A paginated list, authenticated by the client certificate's CN.
    const first = await t.client.list(SERVICES, { limit: 200 });
    assert.equal(first.items?.length, 200);
    const second = await t.client.list(SERVICES, {
      limit: 200,
      continue: first.metadata!.continue,
    });
    assert.equal(second.items?.[0].metadata?.name, "svc-200");
    const [p1, p2] = t.server.requests;
    assert.equal(p1.protocol, "h2");
    assert.equal(p1.user, "cert:system:kube-proxy");
    assert.equal(p2.connection, p1.connection, "the second page on the same connection");

    // A list larger than the threshold comes gzipped, and fetch decodes it.
    const all = await t.client.list(SERVICES, {});
    assert.equal(all.items?.length, 500);
    const big = t.server.requests.at(-1)!;
    assert.equal(big.contentEncoding, "gzip");
    assert.ok(JSON.stringify(all).length > GZIP_THRESHOLD_BYTES);

    // 404 for a get, an injected 403, 410 for an expired continue token.
    await assert.rejects(
      t.client.get("/api/v1/namespaces/default/services/nope", {}, "get service"),
      (e: ApiError) => e.code === 404 && e.reason === "NotFound",
    );
    t.server.failNext(403, { verb: "list" });
    await assert.rejects(
      t.client.list(SERVICES, {}),
      (e: ApiError) => e.code === 403 && /forbidden/.test(e.message),
    );
    t.server.create("services", service("default", "later", "10.96.9.9"));
    t.server.compactBefore();
    await assert.rejects(
      t.client.list(SERVICES, { limit: 200, continue: first.metadata!.continue }),
      (e: ApiError) => e.code === 410 && e.reason === "Expired",
    );

    // Without a client certificate or token: 401, also over h2.
    const anonymous = new KubeClient({
      cluster: { name: "fake", server: t.server.url, caPem: t.pki.ca },
      user: { name: "nobody" },
    });
    try {
      await assert.rejects(anonymous.list(SERVICES, {}), (e: ApiError) => e.code === 401);
    } finally {
      anonymous.close();
    }
    assert.equal(t.server.requests.at(-1)!.protocol, "h2");
    assert.equal(t.server.requests.at(-1)!.user, "anonymous");

    const mine = t.server.requests.filter((r) => r.user.startsWith("cert:"));
    assert.ok(mine.every((r) => r.protocol === "h2" && r.connection === p1.connection));
  },
});

Deno.test({
  name: "h2: concurrent watches share one connection; events, bookmarks and a timeout per stream",
  ignore: !hasOpenssl,
  async fn() {
    await using t = await tlsWorld();
    t.server.create("nodes", node("node-1", "10.0.0.1"));
    const rv = t.server.resourceVersion;
    const ac = new AbortController();
    const [svcs, slices, nodes] = await Promise.all([
      t.client.watch(SERVICES, { resourceVersion: rv, allowWatchBookmarks: true }, ac.signal),
      t.client.watch(ENDPOINT_SLICES, { resourceVersion: rv, timeoutSeconds: 1 }, ac.signal),
      t.client.watch(NODES, { allowWatchBookmarks: true }, ac.signal),
    ]);
    try {
      const opened = watches(t.server);
      assert.equal(opened.length, 3);
      assert.ok(opened.every((r) => r.protocol === "h2"));
      assert.equal(new Set(opened.map((r) => r.connection)).size, 1, "one connection");

      assert.equal(nameOf(await next(nodes)), "ADDED node-1", "the synthetic ADDED");
      t.server.create("services", service("default", "a", "10.96.0.1"));
      t.server.create("endpointslices", slice("default", "a-1", "a", ["10.244.1.1"]));
      t.server.update("nodes", { ...node("node-1", "10.0.0.2") });
      assert.equal(nameOf(await next(svcs)), "ADDED a");
      assert.equal(nameOf(await next(slices)), "ADDED a-1");
      assert.equal(nameOf(await next(nodes)), "MODIFIED node-1");

      // Bookmarks go to the watches that asked for them.
      t.server.sendBookmarks();
      assert.equal(nameOf(await next(svcs)), "BOOKMARK ");
      assert.equal(nameOf(await next(nodes)), "BOOKMARK ");

      // The slices' watch ends at its timeoutSeconds (its stream ends cleanly);
      // the others go on on the same connection.
      assert.equal((await next(slices)).done, true);
      t.server.create("services", service("default", "b", "10.96.0.2"));
      assert.equal(nameOf(await next(svcs)), "ADDED b");
      assert.equal(t.server.openWatches(), 2);
    } finally {
      ac.abort();
    }
    // Aborting the client's watches ends their streams on the server.
    await waitFor("the watches closed", () => t.server.openWatches() === 0);
  },
});

Deno.test({
  name: "h2: a reset watch stream fails alone; GOAWAY keeps open streams and moves new requests",
  ignore: !hasOpenssl,
  async fn() {
    await using t = await tlsWorld();
    const rv = t.server.resourceVersion;
    const ac = new AbortController();
    const [svcs, slices] = await Promise.all([
      t.client.watch(SERVICES, { resourceVersion: rv }, ac.signal),
      t.client.watch(ENDPOINT_SLICES, { resourceVersion: rv }, ac.signal),
    ]);
    try {
      // RST_STREAM on the services' watch: it errors, the slices' stream goes on.
      assert.equal(t.server.disconnectWatches("services"), 1);
      await assert.rejects(next(svcs), (e: Error) => !/within 10 s/.test(e.message));
      t.server.create("endpointslices", slice("default", "a-1", "a", ["10.244.1.1"]));
      assert.equal(nameOf(await next(slices)), "ADDED a-1");
      const first = watches(t.server)[0].connection;

      // GOAWAY: the open stream still delivers; a new request opens a new connection.
      assert.equal(t.server.goAway(), 1);
      t.server.create("endpointslices", slice("default", "a-2", "a", ["10.244.1.2"]));
      assert.equal(nameOf(await next(slices)), "ADDED a-2");
      await t.client.list(SERVICES, {});
      const list = t.server.requests.at(-1)!;
      assert.equal(list.protocol, "h2");
      assert.notEqual(list.connection, first, "a new connection after GOAWAY");
      const again = await t.client.watch(SERVICES, { resourceVersion: rv }, ac.signal);
      t.server.create("services", service("default", "a", "10.96.0.1"));
      assert.equal(nameOf(await next(again)), "ADDED a");
      assert.equal(watches(t.server).at(-1)!.connection, list.connection);
      t.server.create("endpointslices", slice("default", "a-3", "a", ["10.244.1.3"]));
      assert.equal(nameOf(await next(slices)), "ADDED a-3", "the stream from before GOAWAY");
    } finally {
      ac.abort();
    }
  },
});

/** Mirrors the objects a reflector reports. */
class Mirror implements ReflectorHandler {
  readonly names = new Set<string>();
  onAdd(obj: { metadata?: { name?: string } }) {
    this.names.add(obj.metadata!.name!);
  }
  onUpdate() {}
  onDelete(key: string) {
    this.names.delete(key.split("/").pop()!);
  }
  onSynced() {}
}

/**
 * A reflector of services over `t`'s client, started on one service ("a")
 * and synced with its watch open; disposing of it stops it.
 */
async function watchingReflector(t: TlsWorld, silenceMs?: number) {
  t.server.create("services", service("default", "a", "10.96.0.1"));
  const handler = new Mirror();
  const logger = new RecordingLogger();
  const reflector = new Reflector({
    client: t.client,
    resource: SERVICES,
    handler,
    logger,
    pageSize: 2,
    timing: {
      backoffInitialMs: 2,
      backoffMaxMs: 20,
      watchTimeoutSeconds: [300, 600],
      ...(silenceMs ? { silenceMs } : {}),
    },
  });
  reflector.start();
  const watching = {
    handler,
    logger,
    [Symbol.asyncDispose]: () => reflector.stop(),
  };
  try {
    await reflector.synced;
    await waitFor("watch opened", () => t.server.openWatches() === 1);
  } catch (err) {
    await reflector.stop();
    throw err;
  }
  return watching;
}

Deno.test({
  name: "h2: the reflector resumes over a new h2 connection after a restart, without relisting",
  ignore: !hasOpenssl,
  async fn() {
    await using t = await tlsWorld();
    await using watching = await watchingReflector(t);
    const { handler } = watching;
    const before = watches(t.server)[0];
    assert.equal(before.protocol, "h2");

    // A restart as kube-apiserver's: GOAWAY, watches closed, the port closed.
    t.server.goAway();
    t.server.closeWatches();
    await t.server.outage();
    t.server.create("services", service("default", "during", "10.96.0.2"));
    await t.server.endOutage();
    await waitFor("the change made while down", () => handler.names.has("during"));
    const after = watches(t.server).at(-1)!;
    assert.equal(after.protocol, "h2");
    assert.notEqual(after.connection, before.connection);
    assert.equal(t.server.count("list"), 1, "no relist");

    // A crash: connections reset without GOAWAY.
    await t.server.outage();
    await t.server.endOutage();
    t.server.create("services", service("default", "after-crash", "10.96.0.3"));
    await waitFor("the change after the crash", () => handler.names.has("after-crash"));
    assert.equal(watches(t.server).at(-1)!.protocol, "h2");
    assert.equal(t.server.count("list"), 1, "no relist");
  },
});

Deno.test({
  name: "h2: a silent watch stream is resumed on a new connection; streams on the old one go on",
  ignore: !hasOpenssl,
  async fn() {
    // A healthy server's bookmarks keep the watch from going silent before the fault.
    await using t = await tlsWorld({ bookmarkIntervalMs: 100 });
    await using watching = await watchingReflector(t, 1000);
    const { handler, logger } = watching;
    const ac = new AbortController();
    try {
      // Another watch on the same connection, healthy throughout.
      const slices = await t.client.watch(ENDPOINT_SLICES, {
        resourceVersion: t.server.resourceVersion,
      }, ac.signal);
      const [first, other] = watches(t.server);
      assert.equal(other.connection, first.connection);

      t.server.silenceWatches("services");
      t.server.create("services", service("default", "during-silence", "10.96.0.2"));
      await waitFor("the missed event", () => handler.names.has("during-silence"));
      assert.ok(logger.lines.some((l) => /went silent/.test(l.message)));
      assert.equal(t.server.count("list"), 1);
      const resumed = watches(t.server, "services").at(-1)!;
      assert.equal(resumed.protocol, "h2");
      assert.notEqual(resumed.connection, first.connection, "a silent connection is not reused");

      t.server.create("endpointslices", slice("default", "a-1", "a", ["10.244.1.1"]));
      assert.equal(nameOf(await next(slices)), "ADDED a-1", "the other stream goes on");
    } finally {
      ac.abort();
    }
  },
});

Deno.test({
  name: "h2: an HTTP/1.1-only client is still served over TLS, watches and resets included",
  ignore: !hasOpenssl,
  async fn() {
    await using t = await tlsWorld();
    const http1 = Deno.createHttpClient({ caCerts: [t.pki.ca], http2: false });
    try {
      const headers = { Authorization: "Bearer a-token" };
      const list = await fetch(`${t.server.url}/api/v1/services`, { client: http1, headers });
      assert.equal(list.status, 200);
      assert.equal((await list.json()).kind, "ServiceList");
      assert.equal(t.server.requests.at(-1)!.protocol, "http/1.1");
      assert.equal(t.server.requests.at(-1)!.user, "token");

      const watch = await fetch(`${t.server.url}/api/v1/services?watch=true`, {
        client: http1,
        headers,
      });
      assert.equal(watch.headers.get("transfer-encoding"), "chunked");
      const reader = watch.body!.getReader();
      t.server.create("services", service("default", "a", "10.96.0.1"));
      const { value } = await reader.read();
      assert.match(new TextDecoder().decode(value), /"type":"ADDED".*"name":"a"/);
      assert.equal(t.server.disconnectWatches(), 1);
      await assert.rejects(reader.read());
      assert.equal(t.server.goAway(), 0, "no HTTP/2 connection to tell");

      // An outage resets HTTP/1.1 connections over TLS too; endOutage serves again.
      const rv = t.server.resourceVersion;
      const open = await fetch(`${t.server.url}/api/v1/services?watch=true&resourceVersion=${rv}`, {
        client: http1,
        headers,
      });
      const openReader = open.body!.getReader();
      await t.server.outage();
      await assert.rejects(openReader.read());
      await t.server.endOutage();
      const again = await fetch(`${t.server.url}/api/v1/services`, { client: http1, headers });
      assert.equal(again.status, 200);
      await again.body?.cancel();
    } finally {
      http1.close();
    }
  },
});

Deno.test({
  name: "h2: after its connection froze (no reset), the reflector resumes on a new connection",
  ignore: !hasOpenssl,
  async fn() {
    // A healthy server's bookmarks keep the watch from going silent before the fault.
    await using t = await tlsWorld({ bookmarkIntervalMs: 100 });
    await using watching = await watchingReflector(t, 1000);
    const { handler, logger } = watching;
    const frozen = watches(t.server)[0].connection;
    assert.equal(t.server.freezeConnections(), 1);
    t.server.create("services", service("default", "after-freeze", "10.96.0.2"));
    await waitFor("the event after the freeze", () => handler.names.has("after-freeze"));
    assert.ok(logger.lines.some((l) => /went silent/.test(l.message)));
    const resumed = watches(t.server).at(-1)!;
    assert.equal(resumed.protocol, "h2");
    assert.notEqual(resumed.connection, frozen);
    assert.equal(t.server.count("list"), 1, "no relist");
  },
});

Deno.test({
  name: "h2: a list that timed out on a frozen connection; the next one opens a new connection",
  ignore: !hasOpenssl,
  async fn() {
    await using t = await tlsWorld();
    const client = new KubeClient({
      cluster: { name: "fake", server: t.server.url, caPem: t.pki.ca },
      user: { name: "node", token: "a-token" },
    }, { requestTimeoutMs: 1000 });
    try {
      await client.list(SERVICES, {});
      const first = t.server.requests.at(-1)!;
      assert.equal(t.server.freezeConnections(), 1);
      await assert.rejects(client.list(SERVICES, {}), (e: Error) => e.name === "TimeoutError");
      assert.equal(t.server.requests.length, 1, "the frozen connection saw nothing");
      const list = await client.list(SERVICES, {});
      assert.equal(list.kind, "ServiceList");
      const second = t.server.requests.at(-1)!;
      assert.equal(second.protocol, "h2");
      assert.notEqual(second.connection, first.connection);
    } finally {
      client.close();
    }
  },
});

Deno.test({
  name:
    "h2: a restore from backup resets the watch streams; the connection serves the restored objects",
  ignore: !hasOpenssl,
  async fn() {
    await using t = await tlsWorld();
    t.server.create("services", service("default", "a", "10.96.0.1"));
    const ac = new AbortController();
    try {
      const events = await t.client.watch(SERVICES, {
        resourceVersion: t.server.resourceVersion,
      }, ac.signal);
      const held = Number(t.server.resourceVersion);
      t.server.restoreFromBackup({ services: [service("default", "b", "10.96.0.2")] }, 100);
      await assert.rejects(next(events), (e: Error) => !/within 10 s/.test(e.message));
      const list = await t.client.list(SERVICES, {});
      assert.deepEqual(list.items?.map((s) => s.metadata?.name), ["b"]);
      assert.ok(Number(list.metadata!.resourceVersion) < held, "resourceVersions went back");
      const [watch, relist] = t.server.requests;
      assert.equal(relist.protocol, "h2");
      assert.equal(relist.connection, watch.connection, "only the stream was reset");
    } finally {
      ac.abort();
    }
  },
});
