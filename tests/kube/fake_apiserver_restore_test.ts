/**
 * The fake API server's outage and restore-from-backup faults, spoken to over
 * raw HTTP: what clients of a real server see after an etcd restore.
 */
import assert from "node:assert/strict";
import { FakeApiServer } from "../../lib/fake-apiserver/mod.ts";
import { service } from "./helpers.ts";

const SVCS = "/api/v1/namespaces/default/services";

interface Frame {
  type: string;
  object: { metadata: { name?: string; resourceVersion: string } };
}

/** Reads a watch body until an ADDED frame arrived or `ms` passed; then cancels it. */
async function untilAdded(res: Response, ms: number): Promise<Frame[]> {
  const out: Frame[] = [];
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  const timer = setTimeout(() => reader.cancel(), ms);
  try {
    while (!out.some((f) => f.type === "ADDED")) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += value;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        out.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
      }
    }
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => {});
  }
  return out;
}

/** A started fake that stops when the test's scope ends. */
async function started(opts = {}) {
  const server = await new FakeApiServer(opts).start();
  return Object.assign(server, {
    async [Symbol.asyncDispose]() {
      await server.endOutage();
      await server.stop();
    },
  });
}

Deno.test("fake apiserver: restoreFromBackup replaces the objects and restarts resourceVersions lower", async () => {
  await using server = await started();
  server.create("services", service("default", "a", "10.96.0.1"));
  server.create("services", service("default", "b", "10.96.0.2"));
  const before = Number(server.resourceVersion);
  server.restoreFromBackup({ services: [service("default", "c", "10.96.0.3")] }, 10);
  assert.ok(Number(server.resourceVersion) < before);
  const res = await fetch(server.url + SVCS);
  const list = await res.json();
  assert.deepEqual(list.items.map((o: { metadata: { name: string } }) => o.metadata.name), ["c"]);
  assert.equal(list.metadata.resourceVersion, "11");
  assert.equal(list.items[0].metadata.resourceVersion, "11");
});

Deno.test("fake apiserver: a list at a newer resourceVersion answers 504 Too large resource version", async () => {
  await using server = await started();
  server.create("services", service("default", "a", "10.96.0.1"));
  const res = await fetch(`${server.url}${SVCS}?resourceVersion=999999`);
  assert.equal(res.status, 504);
  assert.equal(res.headers.get("Retry-After"), "1");
  const body = await res.json();
  assert.equal(body.reason, "Timeout");
  assert.match(body.message, /^Timeout: Too large resource version: 999999, current: \d+$/);
  assert.equal(body.details.causes[0].reason, "ResourceVersionTooLarge");
  // Not newer: served as usual (and "0" never waits).
  for (const rv of [server.resourceVersion, "0"]) {
    const ok = await fetch(`${server.url}${SVCS}?resourceVersion=${rv}`);
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
  }
});

Deno.test("fake apiserver: a continue token from before a restore (a future revision) answers 500; a list started after the restore pages as usual", async () => {
  await using server = await started();
  for (const n of ["a", "b", "c"]) server.create("services", service("default", n, "10.96.0.1"));
  const first = await (await fetch(`${server.url}${SVCS}?limit=1`)).json();
  const token = first.metadata.continue;
  assert.ok(token);
  server.restoreFromBackup({ services: [service("default", "z", "10.96.0.9")] }, 10);
  const res = await fetch(`${server.url}${SVCS}?limit=1&continue=${encodeURIComponent(token)}`);
  assert.equal(res.status, 500);
  const body = await res.json();
  assert.equal(body.kind, "Status");
  assert.equal(body.code, 500);
  assert.equal(body.message, "etcdserver: mvcc: required revision is a future revision");
  assert.equal("reason" in body, false, "Go's StatusReasonUnknown is omitted");
  // A list from scratch, and its own continue token, work on the restored server.
  server.create("services", service("default", "y", "10.96.0.8"));
  const fresh = await (await fetch(`${server.url}${SVCS}?limit=1`)).json();
  assert.deepEqual(fresh.items.map((o: { metadata: { name: string } }) => o.metadata.name), ["y"]);
  const next = await fetch(
    `${server.url}${SVCS}?limit=1&continue=${encodeURIComponent(fresh.metadata.continue)}`,
  );
  assert.equal(next.status, 200);
  const rest = await next.json();
  assert.deepEqual(rest.items.map((o: { metadata: { name: string } }) => o.metadata.name), ["z"]);
});

Deno.test("fake apiserver: a watch from a newer resourceVersion is silent (no events, no bookmarks) until the server passes it", async () => {
  await using server = await started({ bookmarkIntervalMs: 10 });
  server.create("services", service("default", "a", "10.96.0.1"));
  const from = Number(server.resourceVersion) + 3;
  const ac = new AbortController();
  const res = await fetch(
    `${server.url}${SVCS}?watch=true&allowWatchBookmarks=true&resourceVersion=${from}`,
    { signal: ac.signal },
  );
  assert.equal(res.status, 200);
  const got = untilAdded(res, 5_000);
  server.create("services", service("default", "b", "10.96.0.2")); // from - 2
  server.create("services", service("default", "c", "10.96.0.3")); // from - 1
  await new Promise((r) => setTimeout(r, 100)); // bookmark ticks pass silently
  server.create("services", service("default", "d", "10.96.0.4")); // from: still not sent
  server.create("services", service("default", "e", "10.96.0.5")); // from + 1
  const frames = await got;
  ac.abort();
  for (const f of frames) assert.ok(Number(f.object.metadata.resourceVersion) >= from, f.type);
  assert.deepEqual(frames.filter((f) => f.type !== "BOOKMARK").map((f) => f.object.metadata.name), [
    "e",
  ]);
});

Deno.test("fake apiserver: an outage refuses connections; endOutage serves again at the same URL", async () => {
  await using server = await started();
  server.create("services", service("default", "a", "10.96.0.1"));
  const url = server.url;
  await server.outage();
  await assert.rejects(fetch(url + SVCS));
  server.create("services", service("default", "b", "10.96.0.2"));
  await server.endOutage();
  const res = await fetch(url + SVCS);
  assert.equal(res.status, 200);
  assert.equal((await res.json()).items.length, 2);
});
