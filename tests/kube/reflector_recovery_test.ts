/**
 * The reflector when the API server goes away and comes back: an outage
 * (backoff, logging, prompt recovery, on a fake clock) and a server restored
 * from backup or with its storage wiped (silence, resourceVersions that go
 * back in time, "Too large resource version"), plus the periodic relist.
 */

import assert from "node:assert/strict";
import { ApiError, type KubeObject, SERVICES } from "../../lib/kube/api.ts";
import { KubeClient } from "../../lib/kube/client.ts";
import {
  Reflector,
  type ReflectorClient,
  type ReflectorHandler,
  type ReflectorTiming,
  resourceVersionWentBack,
} from "../../lib/kube/reflector.ts";
import { FakeApiServer, type FakeApiServerOptions } from "../../lib/fake-apiserver/mod.ts";
import { RecordingLogger, service, waitFor } from "./helpers.ts";

/** Mirrors what the handler was told; `at` stamps each call with the reflector's clock. */
class Mirror implements ReflectorHandler {
  readonly calls: string[] = [];
  readonly objects = new Map<string, KubeObject>();
  readonly seenAt = new Map<string, number>();
  constructor(readonly at: () => number = () => 0) {}
  #key(obj: KubeObject) {
    return `${obj.metadata!.namespace}/${obj.metadata!.name}`;
  }
  onAdd(obj: KubeObject) {
    this.calls.push(`add ${this.#key(obj)}`);
    this.objects.set(this.#key(obj), obj);
    this.seenAt.set(this.#key(obj), this.at());
  }
  onUpdate(obj: KubeObject) {
    this.calls.push(`update ${this.#key(obj)}`);
    this.objects.set(this.#key(obj), obj);
  }
  onDelete(key: string) {
    this.calls.push(`delete ${key}`);
    this.objects.delete(key);
  }
  /** `key → spec.clusterIP` of what the handler holds. */
  ips(): Record<string, string> {
    return Object.fromEntries(
      [...this.objects].sort(([a], [b]) => a < b ? -1 : 1).map((
        [k, o],
      ) => [k, (o.spec as { clusterIP: string }).clusterIP]),
    );
  }
}

interface World {
  server: FakeApiServer;
  client: KubeClient;
  mirror: Mirror;
  logger: RecordingLogger;
  reflector: Reflector;
  [Symbol.asyncDispose](): Promise<void>;
}

async function world(opts: {
  server?: FakeApiServerOptions;
  timing?: Partial<ReflectorTiming>;
  resyncPeriodMs?: number;
  clock?: () => number;
  wrap?: (c: ReflectorClient) => ReflectorClient;
  seed?: (s: FakeApiServer) => void;
}): Promise<World> {
  const server = await new FakeApiServer(opts.server).start();
  opts.seed?.(server);
  const client = new KubeClient({
    cluster: { name: "fake", server: server.url },
    user: { name: "test" },
  });
  const mirror = new Mirror(opts.clock);
  const logger = new RecordingLogger();
  const reflector = new Reflector({
    client: opts.wrap ? opts.wrap(client) : client,
    resource: SERVICES,
    handler: mirror,
    logger,
    pageSize: 2,
    resyncPeriodMs: opts.resyncPeriodMs,
    timing: opts.timing,
  });
  return {
    server,
    client,
    mirror,
    logger,
    reflector,
    async [Symbol.asyncDispose]() {
      await reflector.stop();
      client.close();
      await server.endOutage();
      await server.stop();
    },
  };
}

const seed = (s: FakeApiServer) => {
  s.create("services", service("default", "a", "10.96.0.1"));
  s.create("services", service("default", "b", "10.96.0.2"));
};

const tick = () => new Promise((r) => setTimeout(r, 1));

Deno.test("reflector: after a 10 min outage a change made once the server is back arrives within 5 s (fake clock); failures are logged logarithmically", async () => {
  let clock = 0;
  let backAt = Infinity;
  const sleeps: number[] = [];
  const ref: { server?: FakeApiServer } = {};
  await using t = await world({
    seed,
    clock: () => clock,
    // The production backoff: only the clock and the sleep are fakes.
    timing: {
      now: () => clock,
      async sleep(ms) {
        sleeps.push(ms);
        const from = clock;
        clock += ms;
        if (from < backAt && clock >= backAt) {
          // The server came back at `backAt`, and a change was made right then.
          await ref.server!.endOutage();
          ref.server!.create("services", service("default", "after", "10.96.0.9"));
        }
        await tick();
      },
    },
  });
  ref.server = t.server;
  t.reflector.start();
  await t.reflector.synced;
  await waitFor("watch opened", () => t.server.openWatches() === 1);
  const outageStart = clock;
  backAt = outageStart + 10 * 60_000;
  await t.server.outage();
  await waitFor("the change after the outage", () => t.mirror.objects.has("default/after"));

  const delay = t.mirror.seenAt.get("default/after")! - backAt;
  assert.ok(delay <= 5_000, `the change arrived ${delay} ms after the server returned`);
  assert.ok(Math.max(...sleeps) <= 5_000, `longest wait ${Math.max(...sleeps)} ms`);
  const attempts = sleeps.length;
  assert.ok(attempts >= 100, `kept retrying (${attempts} attempts)`);
  const failureLines = t.logger.lines.filter((l) => /failed; retrying/.test(l.message));
  assert.ok(
    failureLines.length <= Math.floor(Math.log2(attempts)) + 1,
    `${failureLines.length} log lines for ${attempts} failures`,
  );
  const back = t.logger.lines.filter((l) => /answers again/.test(l.message));
  assert.equal(back.length, 1);
  assert.equal(back[0].fields.failures, attempts);
  assert.equal(t.server.count("list"), 1, "the watch resumed without a relist");
});

Deno.test("reflector: a successful watch connection or list resets the backoff", async () => {
  const sleeps: number[] = [];
  await using t = await world({
    seed,
    timing: {
      random: () => 0.999999,
      async sleep(ms) {
        sleeps.push(ms);
        await tick();
      },
    },
  });
  t.server.failNext(503, { verb: "list", count: 3 });
  t.reflector.start();
  await t.reflector.synced;
  await waitFor("watch opened", () => t.server.openWatches() === 1);
  t.server.failNext(503, { verb: "watch", count: 1 });
  t.server.disconnectWatches();
  await waitFor("watch reopened", () => t.server.openWatches() === 1);
  // Four watch failures in a row, then a connection that breaks at once.
  t.server.failNext(503, { verb: "watch", count: 4 });
  t.server.disconnectWatches();
  await waitFor("watch reopened", () => sleeps.length === 10 && t.server.openWatches() === 1);
  t.server.disconnectWatches();
  await waitFor("after the break", () => sleeps.length === 11);
  const r = sleeps.map((ms) => Math.round(ms / 100) * 100);
  // list x3; reset + 503 (the list reset the backoff); reset + 503 x4 (the
  // connection reset it); the last reset right after a connection: 1st step again.
  assert.deepEqual(r, [800, 1600, 3000, 800, 1600, 800, 1600, 3000, 3000, 3000, 800]);
});

Deno.test("reflector: a restored API server (lower resourceVersions, silent watch) is noticed by the progress limit and relisted from scratch", async () => {
  await using t = await world({
    seed,
    server: { bookmarkIntervalMs: 20 },
    timing: { progressTimeoutMs: 400, backoffInitialMs: 5, backoffMaxMs: 20 },
  });
  t.reflector.start();
  await t.reflector.synced;
  const held = t.reflector.lastSyncResourceVersion();
  // b keeps its name with another IP, a is gone, c is new; resourceVersions restart at 100.
  t.server.restoreFromBackup({
    services: [service("default", "b", "10.96.7.2"), service("default", "c", "10.96.7.3")],
  }, 100);
  assert.ok(Number(t.server.resourceVersion) < Number(held));
  await waitFor(
    "the reflector matches the restored server",
    () =>
      JSON.stringify(t.mirror.ips()) === JSON.stringify({
        "default/b": "10.96.7.2",
        "default/c": "10.96.7.3",
      }),
  );
  const relists = t.server.requests.filter((r) => r.verb === "list").slice(1);
  assert.ok(relists.length >= 1);
  assert.equal(relists[0].query.resourceVersion, undefined, "a consistent read, not RV=0");
  assert.ok(t.logger.lines.some((l) => /progress limit/.test(l.message)));
  assert.ok(t.logger.lines.some((l) => /went back in time/.test(l.message)));
  assert.equal(t.reflector.lastSyncResourceVersion(), t.server.resourceVersion);
  // The watch from the new resourceVersion works.
  t.server.create("services", service("default", "d", "10.96.7.4"));
  await waitFor("watch after relist", () => t.mirror.objects.has("default/d"));
});

Deno.test("reflector: bookmarks from a healthy server keep the progress limit from firing", async () => {
  await using t = await world({
    seed,
    server: { bookmarkIntervalMs: 20 },
    timing: { progressTimeoutMs: 1_500 },
  });
  t.reflector.start();
  await t.reflector.synced;
  await new Promise((r) => setTimeout(r, 3_000));
  assert.equal(t.reflector.relists, 0);
  assert.equal(t.server.count("list"), 1);
});

Deno.test("reflector: a server restored between two pages of a list (its continue token now a future revision, 500) is listed again from scratch", async () => {
  await using t = await world({
    seed: (s) => {
      for (const n of ["a", "b", "c", "d", "e"]) {
        s.create("services", service("default", n, "10.96.0.1"));
      }
    },
    timing: { backoffInitialMs: 5, backoffMaxMs: 20 },
  });
  // Restored right after the first page was served: the next page's token is stale.
  t.server.afterNextListPage("services", () =>
    t.server.restoreFromBackup({
      services: [service("default", "b", "10.96.9.2"), service("default", "x", "10.96.9.9")],
    }, 10));
  t.reflector.start();
  await t.reflector.synced;
  assert.deepEqual(t.mirror.ips(), { "default/b": "10.96.9.2", "default/x": "10.96.9.9" });
  const listed = t.server.requests.filter((r) => r.verb === "list");
  assert.equal(listed[1].status, 500, "the stale token's page");
  assert.equal(listed[1].query.continue !== undefined, true);
  assert.equal(listed[2].query.continue, undefined, "listed again from the start");
  assert.equal(t.reflector.lastSyncResourceVersion(), t.server.resourceVersion);
  assert.ok(t.logger.lines.some((l) => /list services failed/.test(l.message)));
});

Deno.test('reflector: "Too large resource version" on a watch relists from scratch', async () => {
  let watches = 0;
  await using t = await world({
    seed,
    timing: { backoffInitialMs: 5, backoffMaxMs: 20 },
    wrap: (c) => ({
      list: c.list.bind(c),
      watch(resource, params, signal, onActivity) {
        if (++watches === 1) {
          return Promise.reject(
            new ApiError(
              "watch services",
              504,
              "Timeout",
              `Timeout: Too large resource version: ${params.resourceVersion}, current: 10`,
              1,
            ),
          );
        }
        return c.watch(resource, params, signal, onActivity);
      },
    }),
  });
  t.reflector.start();
  await waitFor("relisted", () => t.reflector.relists === 1);
  assert.equal(t.server.count("list"), 2);
  assert.ok(t.logger.lines.some((l) => /behind the resourceVersion held/.test(l.message)));
  // Every listed object was handed over again (the store drops the unchanged ones).
  assert.deepEqual(t.mirror.calls, [
    "add default/a",
    "add default/b",
    "update default/a",
    "update default/b",
  ]);
});

Deno.test("reflector: the periodic relist catches a restore the watch cannot see (same resourceVersions, other objects)", async () => {
  await using t = await world({
    seed,
    resyncPeriodMs: 300,
    timing: { backoffInitialMs: 5, backoffMaxMs: 20 },
  });
  t.reflector.start();
  await t.reflector.synced;
  const held = Number(t.reflector.lastSyncResourceVersion());
  // A restored server that is already past what the reflector holds: b gets
  // b's old resourceVersion with other content, and the watch resumes
  // without an error.
  t.server.restoreFromBackup({
    services: [service("default", "b", "10.96.8.2"), service("default", "c", "10.96.8.3")],
  }, held - 1);
  await waitFor(
    "the periodic relist repairs it",
    () =>
      JSON.stringify(t.mirror.ips()) === JSON.stringify({
        "default/b": "10.96.8.2",
        "default/c": "10.96.8.3",
      }),
  );
  assert.ok(t.reflector.relists >= 1);
  for (const r of t.server.requests.filter((r) => r.verb === "list")) {
    assert.equal(r.query.limit, "2", "paginated");
    assert.equal(r.query.resourceVersion, undefined);
  }
});

Deno.test("reflector: no periodic relist without a period", async () => {
  await using t = await world({ seed });
  t.reflector.start();
  await t.reflector.synced;
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(t.reflector.relists, 0);
});

Deno.test("resourceVersionWentBack: integers compared numerically, opaque strings never", () => {
  assert.equal(resourceVersionWentBack("1000", "999"), true);
  assert.equal(resourceVersionWentBack("999", "1000"), false);
  assert.equal(resourceVersionWentBack("1000", "1000"), false);
  assert.equal(resourceVersionWentBack("98765432109876543210", "98765432109876543209"), true);
  assert.equal(resourceVersionWentBack("abc", "1"), false);
  assert.equal(resourceVersionWentBack("", "1"), false);
});
