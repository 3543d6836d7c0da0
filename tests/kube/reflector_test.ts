import assert from "node:assert/strict";
import { ApiError, type KubeObject, NODES, SERVICES } from "../../lib/kube/api.ts";
import { KubeClient } from "../../lib/kube/client.ts";
import {
  Reflector,
  type ReflectorClient,
  type ReflectorHandler,
  type ReflectorTiming,
} from "../../lib/kube/reflector.ts";
import { FakeApiServer, type FakeApiServerOptions } from "../../lib/fake-apiserver/mod.ts";
import { node, RecordingLogger, service, waitFor } from "./helpers.ts";

/** Records every handler call and mirrors the objects it was told about. */
class Recorder implements ReflectorHandler {
  readonly calls: string[] = [];
  readonly objects = new Map<string, KubeObject>();
  synced = 0;
  onAdd(obj: KubeObject) {
    const key = `${obj.metadata!.namespace}/${obj.metadata!.name}`;
    this.calls.push(`add ${key}`);
    this.objects.set(key, obj);
  }
  onUpdate(obj: KubeObject) {
    const key = `${obj.metadata!.namespace}/${obj.metadata!.name}`;
    this.calls.push(`update ${key}`);
    this.objects.set(key, obj);
  }
  onDelete(key: string, obj?: KubeObject) {
    this.calls.push(`delete ${key}${obj ? "" : " (relist)"}`);
    this.objects.delete(key);
  }
  onSynced() {
    this.synced++;
  }
}

const FAST: Partial<ReflectorTiming> = {
  backoffInitialMs: 2,
  backoffMaxMs: 20,
  watchTimeoutSeconds: [300, 600],
};

function clientFor(server: FakeApiServer, token?: string): KubeClient {
  return new KubeClient({
    cluster: { name: "fake", server: server.url },
    user: { name: "test", ...(token ? { token } : {}) },
  });
}

interface Setup {
  server: FakeApiServer;
  client: KubeClient;
  handler: Recorder;
  logger: RecordingLogger;
  reflector: Reflector;
  [Symbol.asyncDispose](): Promise<void>;
}

async function setup(
  opts: {
    server?: FakeApiServerOptions;
    seed?: (s: FakeApiServer) => void;
    token?: string;
    pageSize?: number;
    timing?: Partial<ReflectorTiming>;
    wrap?: (c: ReflectorClient) => ReflectorClient;
    labelSelector?: string;
  } = {},
): Promise<Setup> {
  const server = await new FakeApiServer(opts.server).start();
  opts.seed?.(server);
  const client = clientFor(server, opts.token);
  const handler = new Recorder();
  const logger = new RecordingLogger();
  const reflector = new Reflector({
    client: opts.wrap ? opts.wrap(client) : client,
    resource: SERVICES,
    labelSelector: opts.labelSelector,
    handler,
    logger,
    pageSize: opts.pageSize ?? 2,
    timing: { ...FAST, ...opts.timing },
  });
  return {
    server,
    client,
    handler,
    logger,
    reflector,
    async [Symbol.asyncDispose]() {
      await reflector.stop();
      client.close();
      await server.stop();
    },
  };
}

function seedServices(n: number) {
  return (s: FakeApiServer) => {
    for (let i = 0; i < n; i++) {
      s.create("services", service("default", `svc-${i}`, `10.96.0.${i + 1}`));
    }
  };
}

function watchRequests(server: FakeApiServer) {
  return server.requests.filter((r) => r.verb === "watch" && r.resource === "services");
}

Deno.test("reflector: initial list is paginated, then a watch starts from the list's resourceVersion", async () => {
  await using t = await setup({ seed: seedServices(5) });
  t.reflector.start();
  await t.reflector.synced;
  assert.equal(t.reflector.hasSynced(), true);
  assert.equal(t.handler.synced, 1);
  assert.equal(t.handler.objects.size, 5);
  const lists = t.server.requests.filter((r) => r.verb === "list");
  assert.equal(lists.length, 3, "5 objects in pages of 2");
  assert.equal(lists[0].query.limit, "2");
  assert.equal(lists[0].query.continue, undefined);
  assert.equal(lists[0].query.resourceVersion, undefined, "a consistent (not cached) first list");
  assert.ok(lists[1].query.continue && lists[2].query.continue);
  assert.equal(t.reflector.lastSyncResourceVersion(), t.server.resourceVersion);
  await waitFor("watch opened", () => t.server.openWatches("services") === 1);
  const [watch] = watchRequests(t.server);
  assert.equal(watch.query.resourceVersion, t.server.resourceVersion);
  assert.equal(watch.query.allowWatchBookmarks, "true");
  const timeout = Number(watch.query.timeoutSeconds);
  assert.ok(timeout >= 300 && timeout <= 600, `timeoutSeconds ${timeout} within 300..600`);
});

Deno.test("reflector: adds, updates and deletes arrive through the watch", async () => {
  await using t = await setup({ seed: seedServices(2) });
  t.reflector.start();
  await t.reflector.synced;
  await waitFor("watch opened", () => t.server.openWatches() === 1);
  t.handler.calls.length = 0;
  t.server.create("services", service("default", "new", "10.96.1.1"));
  t.server.update("services", service("default", "svc-0", "10.96.0.1", { port: 81 }));
  t.server.delete("services", "default/svc-1");
  await waitFor("3 events", () => t.handler.calls.length === 3);
  assert.deepEqual(t.handler.calls, [
    "add default/new",
    "update default/svc-0",
    "delete default/svc-1",
  ]);
  const spec = t.handler.objects.get("default/svc-0")!.spec as { ports: { port: number }[] };
  assert.equal(spec.ports[0].port, 81);
  assert.equal(t.reflector.lastSyncResourceVersion(), t.server.resourceVersion);
});

Deno.test("reflector: after a connection reset it resumes from the last resourceVersion without relisting", async () => {
  await using t = await setup({ seed: seedServices(3) });
  t.reflector.start();
  await t.reflector.synced;
  await waitFor("watch opened", () => t.server.openWatches() === 1);
  t.server.create("services", service("default", "seen", "10.96.1.1"));
  await waitFor("event seen", () => t.handler.objects.has("default/seen"));
  const lastSeen = t.reflector.lastSyncResourceVersion();
  const lists = t.server.count("list");

  assert.equal(t.server.disconnectWatches(), 1);
  await waitFor("second watch", () => watchRequests(t.server).length === 2);
  assert.equal(watchRequests(t.server)[1].query.resourceVersion, lastSeen);
  t.server.create("services", service("default", "after", "10.96.1.2"));
  await waitFor("event after reconnect", () => t.handler.objects.has("default/after"));
  assert.equal(t.server.count("list"), lists, "no relist");
  assert.equal(t.handler.calls.filter((c) => c.startsWith("delete")).length, 0);
});

Deno.test("reflector: a watch ended by the server-side timeout is resumed without relisting", async () => {
  await using t = await setup({ seed: seedServices(1) });
  t.reflector.start();
  await t.reflector.synced;
  await waitFor("watch opened", () => t.server.openWatches() === 1);
  t.server.create("services", service("default", "x", "10.96.1.1"));
  await waitFor("event", () => t.handler.objects.has("default/x"));
  t.server.closeWatches();
  await waitFor("rewatch", () => watchRequests(t.server).length === 2);
  assert.equal(t.server.count("list"), 1);
  assert.equal(watchRequests(t.server)[1].query.resourceVersion, t.server.resourceVersion);
});

Deno.test("reflector: the fake honours timeoutSeconds and the reflector rewatches", async () => {
  await using t = await setup({ seed: seedServices(1), timing: { watchTimeoutSeconds: [1, 1] } });
  t.reflector.start();
  await t.reflector.synced;
  await waitFor("the server timed out the first watch", () => watchRequests(t.server).length >= 2);
  assert.equal(watchRequests(t.server)[0].query.timeoutSeconds, "1");
  assert.equal(t.server.count("list"), 1);
});

for (const asHttp of [false, true]) {
  Deno.test(`reflector: 410 Gone (${asHttp ? "HTTP status" : "ERROR event"}) relists and synthesizes deletes and updates`, async () => {
    await using t = await setup({
      seed: seedServices(4),
      server: { expiredWatchAsHttpStatus: asHttp },
    });
    t.reflector.start();
    await t.reflector.synced;
    await waitFor("watch opened", () => t.server.openWatches() === 1);
    // Changes the reflector never sees on its watch, then history is compacted.
    t.server.silenceWatches();
    t.server.delete("services", "default/svc-1");
    t.server.update("services", service("default", "svc-2", "10.96.0.3", { port: 8443 }));
    t.server.create("services", service("default", "svc-new", "10.96.0.9"));
    t.server.compactBefore();
    t.handler.calls.length = 0;
    t.server.disconnectWatches();

    await waitFor("relist", () => t.server.count("list") > 2);
    await waitFor("synthesized changes", () => t.handler.calls.length === 3);
    assert.deepEqual([...t.handler.calls].sort(), [
      "add default/svc-new",
      "delete default/svc-1 (relist)",
      "update default/svc-2",
    ]);
    assert.deepEqual([...t.handler.objects.keys()].sort(), [
      "default/svc-0",
      "default/svc-2",
      "default/svc-3",
      "default/svc-new",
    ]);
    assert.equal(t.handler.synced, 1, "onSynced only for the initial list");
    await waitFor("watch resumed", () => t.server.openWatches() === 1);
    assert.equal(t.reflector.lastSyncResourceVersion(), t.server.resourceVersion);
  });
}

Deno.test("reflector: the next page is asked for before the handler gets the page before it", async () => {
  const events: string[] = [];
  await using t = await setup({
    seed: seedServices(5),
    wrap: (c) => ({
      list: (resource, query, signal) => {
        events.push(`list ${query.continue ? "next" : "first"}`);
        return c.list(resource, query, signal);
      },
      watch: (resource, query, signal, onActivity) => c.watch(resource, query, signal, onActivity),
    }),
  });
  const onAdd = t.handler.onAdd.bind(t.handler);
  t.handler.onAdd = (obj) => {
    events.push("add");
    onAdd(obj);
  };
  t.reflector.start();
  await t.reflector.synced;
  // Pages of 2: each page's adds come after the request for the next page.
  assert.deepEqual(events, [
    "list first",
    "list next",
    "add",
    "add",
    "list next",
    "add",
    "add",
    "add",
  ]);
  assert.equal(t.handler.objects.size, 5);
});

Deno.test("reflector: an expired continue token restarts the list without pagination", async () => {
  const ref: { server?: FakeApiServer } = {};
  let pages = 0;
  await using t = await setup({
    seed: seedServices(5),
    wrap: (c) => ({
      watch: c.watch.bind(c),
      async list(resource, params, signal) {
        const page = await c.list(resource, params, signal);
        if (++pages === 1) {
          // Between pages: history moves on and is compacted. svc-0 is on
          // this page, delivered before the list restarts: it must go again.
          ref.server!.delete("services", "default/svc-0");
          ref.server!.delete("services", "default/svc-4");
          ref.server!.compactBefore();
        }
        return page;
      },
    }),
  });
  ref.server = t.server;
  t.reflector.start();
  await t.reflector.synced;
  const lists = t.server.requests.filter((r) => r.verb === "list");
  assert.deepEqual(lists.map((r) => r.status), [200, 410, 200]);
  assert.equal(lists[2].query.limit, undefined, "the fallback list is not paginated");
  assert.deepEqual([...t.handler.objects.keys()].sort(), [
    "default/svc-1",
    "default/svc-2",
    "default/svc-3",
  ]);
  assert.equal(t.reflector.lastSyncResourceVersion(), t.server.resourceVersion);
});

Deno.test("reflector: bookmarks advance the resourceVersion a resumed watch starts from", async () => {
  await using t = await setup({ seed: seedServices(1) });
  t.reflector.start();
  await t.reflector.synced;
  await waitFor("watch opened", () => t.server.openWatches() === 1);
  const before = t.reflector.lastSyncResourceVersion();
  // Other resources move the shared resourceVersion on.
  t.server.create("nodes", node("n1", "192.168.0.1"));
  t.server.create("nodes", node("n2", "192.168.0.2"));
  t.server.sendBookmarks();
  await waitFor("bookmark", () => t.reflector.lastSyncResourceVersion() !== before);
  assert.equal(t.reflector.lastSyncResourceVersion(), t.server.resourceVersion);
  assert.equal(t.handler.calls.length, 1, "bookmarks are not object events");
  t.server.disconnectWatches();
  await waitFor("second watch", () => watchRequests(t.server).length === 2);
  assert.equal(watchRequests(t.server)[1].query.resourceVersion, t.server.resourceVersion);
});

Deno.test("reflector: bookmarks on a timer knob reach watches that allow them", async () => {
  await using t = await setup({ seed: seedServices(1), server: { bookmarkIntervalMs: 20 } });
  t.reflector.start();
  await t.reflector.synced;
  t.server.create("nodes", node("n1", "192.168.0.1"));
  await waitFor(
    "bookmark",
    () => t.reflector.lastSyncResourceVersion() === t.server.resourceVersion,
  );
});

Deno.test("reflector: backs off and retries on 500 until the list succeeds", async () => {
  await using t = await setup({ seed: seedServices(2) });
  t.server.failNext(500, { verb: "list", count: 3 });
  t.reflector.start();
  await t.reflector.synced;
  const lists = t.server.requests.filter((r) => r.verb === "list");
  assert.deepEqual(lists.map((r) => r.status), [500, 500, 500, 200]);
  // Logged at the 1st, 2nd, 4th, ... failure, and the recovery once.
  const warns = t.logger.lines.filter((l) => l.level === "warn");
  assert.deepEqual(warns.map((w) => w.fields.failures), [1, 2]);
  assert.match(String(warns[0].fields.error), /500 InternalError/);
  const back = t.logger.lines.filter((l) => /answers again/.test(l.message));
  assert.deepEqual(back.map((l) => l.fields.failures), [3]);
});

Deno.test("reflector: a failing watch is retried from the same resourceVersion, without relist", async () => {
  await using t = await setup({ seed: seedServices(2) });
  t.server.failNext(503, { verb: "watch", count: 2 });
  t.reflector.start();
  await t.reflector.synced;
  await waitFor("watch opened", () => t.server.openWatches() === 1);
  const watches = watchRequests(t.server);
  assert.deepEqual(watches.map((w) => w.status), [503, 503, 200]);
  assert.equal(new Set(watches.map((w) => w.query.resourceVersion)).size, 1);
  assert.equal(t.server.count("list"), 1);
});

Deno.test("reflector: 401 and 403 are logged plainly as errors and retried", async () => {
  await using t = await setup({
    seed: seedServices(1),
    server: { tokens: ["good"] },
    token: "good",
  });
  t.server.failNext(401, { verb: "list" });
  t.server.failNext(403, { verb: "list" });
  t.reflector.start();
  await t.reflector.synced;
  const errors = t.logger.lines.filter((l) => l.level === "error").map((l) => l.message);
  assert.equal(errors.length, 2);
  assert.match(errors[0], /credentials \(401 Unauthorized\)/);
  assert.match(errors[1], /403 Forbidden.*RBAC/);
  assert.equal(t.server.requests.at(-1)!.user, "token");
});

Deno.test("reflector: a wrong token keeps failing with 401 and never syncs", async () => {
  await using t = await setup({
    seed: seedServices(1),
    server: { tokens: ["good"] },
    token: "bad",
  });
  t.reflector.start();
  await waitFor("three attempts", () => t.server.count("other") + t.server.count("list") >= 3);
  assert.equal(t.reflector.hasSynced(), false);
  assert.ok(t.logger.lines.some((l) => l.level === "error" && /401/.test(l.message)));
  assert.ok(!t.logger.text().includes("bad"), "the token never reaches the log");
});

Deno.test("reflector: a silent stream is detected, aborted and resumed without relist", async () => {
  await using t = await setup({ seed: seedServices(1), timing: { silenceMs: 150 } });
  t.reflector.start();
  await t.reflector.synced;
  await waitFor("watch opened", () => t.server.openWatches() === 1);
  t.server.silenceWatches();
  t.server.create("services", service("default", "during-silence", "10.96.2.1"));
  await waitFor(
    "resumed watch delivers the missed event",
    () => t.handler.objects.has("default/during-silence"),
  );
  assert.ok(t.logger.lines.some((l) => /went silent/.test(l.message)));
  assert.equal(t.server.count("list"), 1);
  assert.ok(watchRequests(t.server).length >= 2);
});

Deno.test("reflector: an ERROR event other than 410 backs off and rewatches from the same resourceVersion", async () => {
  const errorOnce = {
    used: false,
  };
  await using t = await setup({
    seed: seedServices(1),
    wrap: (c) => ({
      list: c.list.bind(c),
      async watch(resource, params, signal, onActivity) {
        if (!errorOnce.used) {
          errorOnce.used = true;
          return (async function* () {
            yield {
              type: "ERROR" as const,
              object: {
                kind: "Status",
                apiVersion: "v1",
                metadata: {},
                status: "Failure",
                message: "etcd leader changed",
                reason: "InternalError",
                code: 500,
              },
            };
          })();
        }
        return await c.watch(resource, params, signal, onActivity);
      },
    }),
  });
  t.reflector.start();
  await t.reflector.synced;
  await waitFor("real watch opened", () => t.server.openWatches() === 1);
  assert.ok(
    t.logger.lines.some((l) =>
      l.level === "warn" && /etcd leader changed/.test(String(l.fields.error))
    ),
  );
  assert.equal(t.server.count("list"), 1);
});

Deno.test("reflector: stop() aborts the open watch promptly and rejects an unsynced promise", async () => {
  await using t = await setup({ seed: seedServices(1) });
  t.reflector.start();
  await t.reflector.synced;
  await waitFor("watch opened", () => t.server.openWatches() === 1);
  await t.reflector.stop();
  await waitFor("server saw the watch close", () => t.server.openWatches() === 0);

  const never = new Reflector({
    client: t.client,
    resource: NODES,
    handler: new Recorder(),
    logger: new RecordingLogger(),
    timing: FAST,
  });
  t.server.failNext(500, { verb: "list", count: 1000 });
  never.start();
  await never.stop();
  await assert.rejects(never.synced, /stopped before sync/);
});

Deno.test("reflector: handler exceptions are logged and do not stop the reflector", async () => {
  await using t = await setup({ seed: seedServices(2) });
  const original = t.handler.onAdd.bind(t.handler);
  t.handler.onAdd = (obj) => {
    if (obj.metadata?.name === "svc-0") throw new Error("boom");
    original(obj);
  };
  t.reflector.start();
  await t.reflector.synced;
  assert.ok(t.handler.objects.has("default/svc-1"));
  assert.ok(t.logger.lines.some((l) => l.level === "error" && l.fields.error === "boom"));
});

Deno.test("reflector: ApiError carries the Status reason", async () => {
  await using t = await setup();
  t.server.failNext(429, { verb: "list", message: "slow down" });
  const err = await t.client.list(SERVICES, {}).catch((e) => e);
  assert.ok(err instanceof ApiError);
  assert.equal(err.code, 429);
  assert.equal(err.reason, "TooManyRequests");
  assert.match(err.message, /slow down/);
});
