/**
 * The event recorder against the fake API server over real HTTP: series
 * instead of duplicates, client-go's key, the API server's validation, and
 * refusals (403, 500, timeouts, a full queue) dropped with a reason.
 */

import assert from "node:assert/strict";
import { FakeApiServer } from "../../lib/fake-apiserver/mod.ts";
import { KubeClient } from "../../lib/kube/client.ts";
import {
  EventRecorder,
  type EventRecorderOptions,
  kubeEventSink,
  microTime,
  type ObjectReference,
} from "../../lib/kube/events.ts";
import { RecordingLogger } from "./helpers.ts";

const SVC: ObjectReference = {
  apiVersion: "v1",
  kind: "Service",
  namespace: "default",
  name: "web",
};

async function setup(extra: Partial<EventRecorderOptions> = {}, timeoutMs = 10_000) {
  const server = await new FakeApiServer().start();
  const client = new KubeClient({
    cluster: { name: "fake", server: server.url },
    user: { name: "test" },
  });
  const logger = new RecordingLogger();
  const clock = { t: Date.UTC(2026, 11, 5, 12, 0, 0) };
  const recorder = new EventRecorder({
    sink: kubeEventSink(client, timeoutMs),
    reportingController: "hnsproxy",
    reportingInstance: "hnsproxy-node-1",
    logger,
    now: () => clock.t,
    retryDelaysMs: [10, 10],
    ...extra,
  });
  return {
    server,
    recorder,
    logger,
    clock,
    async close() {
      await recorder.close(100);
      client.close();
      await server.stop();
    },
  };
}

Deno.test("events: the first is created, repeats patch its series (client-go's key: not the note)", async () => {
  const s = await setup();
  try {
    s.recorder.eventf(SVC, "Warning", "HNSConflict", "ProgramLoadBalancer", "held by A");
    await s.recorder.settled();
    const [created] = s.server.list("events");
    assert.equal(created.metadata.namespace, "default");
    assert.match(created.metadata.name, /^web\.[0-9a-f]+$/);
    assert.equal(created.eventTime, microTime(s.clock.t));
    assert.equal(created.eventTime, "2026-12-05T12:00:00.000000Z");
    assert.deepEqual(
      [created.type, created.reason, created.action, created.note, created.series],
      ["Warning", "HNSConflict", "ProgramLoadBalancer", "held by A", undefined],
    );
    assert.deepEqual(created.regarding, SVC);
    assert.equal(created.reportingController, "hnsproxy");
    assert.equal(created.reportingInstance, "hnsproxy-node-1");

    s.clock.t += 5000;
    s.recorder.eventf(SVC, "Warning", "HNSConflict", "ProgramLoadBalancer", "held by B");
    await s.recorder.settled();
    s.clock.t += 10_000;
    s.recorder.eventf(SVC, "Warning", "HNSConflict", "ProgramLoadBalancer", "held by B");
    await s.recorder.settled();
    const events = s.server.list("events");
    assert.equal(events.length, 1, "one event, not one per occurrence");
    assert.deepEqual(events[0].series, { count: 3, lastObservedTime: microTime(s.clock.t) });
    assert.equal(events[0].note, "held by A", "a series keeps its first note");
    assert.equal(s.server.count("create", "events"), 1);
    assert.equal(s.server.count("patch", "events"), 2);

    // Another object, another reason: other events.
    s.recorder.eventf(
      { ...SVC, name: "api" },
      "Warning",
      "HNSConflict",
      "ProgramLoadBalancer",
      "x",
    );
    s.recorder.eventf(SVC, "Normal", "Programmed", "ProgramLoadBalancer", "");
    await s.recorder.settled();
    assert.equal(s.server.list("events").length, 3);
  } finally {
    await s.close();
  }
});

Deno.test("events: a Node's event goes to the default namespace; a deleted event is created anew", async () => {
  const s = await setup();
  try {
    const node: ObjectReference = { kind: "Node", name: "node-1", uid: "node-1" };
    s.recorder.eventf(node, "Normal", "Starting", "StartHnsProxy", "");
    await s.recorder.settled();
    const [first] = s.server.list("events");
    assert.equal(first.metadata.namespace, "default");
    s.server.delete("events", `default/${first.metadata.name}`);
    s.clock.t += 1000;
    s.recorder.eventf(node, "Normal", "Starting", "StartHnsProxy", "");
    await s.recorder.settled();
    const [again] = s.server.list("events");
    assert.equal(again.metadata.name, first.metadata.name);
    assert.deepEqual(again.series, { count: 2, lastObservedTime: microTime(s.clock.t) });
    assert.equal(s.server.count("create", "events"), 2, "patch answered 404, then a create");
  } finally {
    await s.close();
  }
});

Deno.test("events: forgotten after 6 minutes without a repeat, so the next one is a new event", async () => {
  const s = await setup();
  try {
    s.recorder.eventf(SVC, "Warning", "HNSConflict", "ProgramLoadBalancer", "a");
    await s.recorder.settled();
    s.clock.t += 7 * 60_000;
    s.recorder.eventf(SVC, "Warning", "HNSConflict", "ProgramLoadBalancer", "a");
    await s.recorder.settled();
    assert.equal(s.server.list("events").length, 2);
    assert.equal(s.server.count("patch", "events"), 0);
  } finally {
    await s.close();
  }
});

Deno.test("events: refused (403, 500) or unanswered writes are dropped and counted, logged once", async () => {
  const drops: string[] = [];
  const s = await setup({ onDrop: (r) => void drops.push(r) }, 200);
  try {
    s.server.failNext(403, { resource: "events", count: Infinity });
    for (let i = 0; i < 3; i++) {
      s.recorder.eventf({ ...SVC, name: `svc-${i}` }, "Warning", "HNSConflict", "Program", "");
    }
    await s.recorder.settled();
    assert.deepEqual(s.recorder.dropped, { rejected: 3, unreachable: 0, queueFull: 0 });
    assert.equal(s.server.count("create", "events"), 3, "a Status is not retried");
    const logged = s.logger.lines.filter((l) => l.message.startsWith("Cannot write"));
    assert.equal(logged.length, 1, "the first drop is logged, the others counted");
    assert.match(String(logged[0].fields.err), /403.*forbidden/i);

    s.server.clearFailures();
    s.server.failNext(500, { resource: "events", verb: "create" });
    s.recorder.eventf({ ...SVC, name: "five" }, "Warning", "HNSConflict", "Program", "");
    await s.recorder.settled();
    assert.equal(s.recorder.dropped.rejected, 4);

    s.server.stallEventWrites(true);
    s.recorder.eventf({ ...SVC, name: "slow" }, "Warning", "HNSConflict", "Program", "");
    await s.recorder.settled();
    assert.equal(s.recorder.dropped.unreachable, 1, "timed out three times, then dropped");
    assert.equal(s.server.count("create", "events"), 4 + 3);
    s.server.stallEventWrites(false);

    s.recorder.eventf({ ...SVC, name: "later" }, "Warning", "HNSConflict", "Program", "");
    await s.recorder.settled();
    assert.equal(s.server.list("events").length, 1, "works again once the server answers");
    assert.deepEqual(drops, ["rejected", "rejected", "rejected", "rejected", "unreachable"]);
  } finally {
    await s.close();
  }
});

Deno.test("events: the queue is bounded; what does not fit is dropped as queueFull", async () => {
  const s = await setup({ queueLimit: 2, retryDelaysMs: [] }, 300);
  try {
    s.server.stallEventWrites(true);
    for (let i = 0; i < 6; i++) {
      s.recorder.eventf({ ...SVC, name: `svc-${i}` }, "Warning", "HNSConflict", "Program", "");
    }
    // One write in flight, one waiting, the rest did not fit.
    assert.equal(s.recorder.dropped.queueFull, 3);
    await s.recorder.settled();
    assert.equal(s.recorder.dropped.unreachable, 3);
  } finally {
    s.server.stallEventWrites(false);
    await s.close();
  }
});

Deno.test("events: closing aborts a write the server holds, and waits for nothing more", async () => {
  const s = await setup({}, 60_000);
  try {
    s.server.stallEventWrites(true);
    s.recorder.eventf(SVC, "Warning", "HNSConflict", "Program", "");
    s.recorder.eventf({ ...SVC, name: "queued" }, "Warning", "HNSConflict", "Program", "");
    await s.recorder.close(50);
    assert.equal(
      s.recorder.dropped.unreachable,
      1,
      "the held write was aborted, the queued one abandoned",
    );
    const drop = s.logger.lines.find((l) => l.message.startsWith("Cannot write"));
    assert.match(String(drop?.fields.err), /abort/i, "aborted, not timed out");
    s.recorder.eventf(SVC, "Warning", "HNSConflict", "Program", "");
    await s.recorder.settled();
    assert.equal(s.server.count("create", "events"), 1, "nothing is written once closed");
  } finally {
    s.server.stallEventWrites(false);
    await s.close();
  }
});

Deno.test("fake API server: validates events as the API server does", async () => {
  const server = await new FakeApiServer().start();
  try {
    const base = `${server.url}/apis/events.k8s.io/v1/namespaces/default/events`;
    const post = (body: unknown) =>
      fetch(base, { method: "POST", body: JSON.stringify(body) }).then(async (r) => ({
        status: r.status,
        body: await r.json(),
      }));
    const good = {
      metadata: { name: "web.1" },
      eventTime: "2026-12-05T12:00:00.000000Z",
      reportingController: "hnsproxy",
      reportingInstance: "hnsproxy-node-1",
      action: "Program",
      reason: "HNSConflict",
      type: "Warning",
      regarding: SVC,
    };
    assert.equal(
      (await post({ ...good, series: { count: 1, lastObservedTime: good.eventTime } })).status,
      422,
    );
    assert.equal((await post({ ...good, reportingController: "" })).status, 422);
    assert.equal((await post({ ...good, regarding: { ...SVC, namespace: "other" } })).status, 422);
    assert.equal((await post(good)).status, 201);
    assert.equal((await post(good)).status, 409);
    const patch = (type: string, body: unknown) =>
      fetch(`${base}/web.1`, {
        method: "PATCH",
        headers: { "Content-Type": type },
        body: JSON.stringify(body),
      }).then(async (r) => (await r.body?.cancel(), r.status));
    assert.equal(await patch("application/json-patch+json", []), 415);
    assert.equal(
      await patch("application/strategic-merge-patch+json", { series: { count: 1 } }),
      422,
    );
    assert.equal(
      await patch("application/strategic-merge-patch+json", {
        series: { count: 2, lastObservedTime: "2026-12-05T12:00:05.000000Z" },
      }),
      200,
    );
    assert.deepEqual(server.get("events", "default/web.1")?.series, {
      count: 2,
      lastObservedTime: "2026-12-05T12:00:05.000000Z",
    });
    assert.equal(
      (await post({ ...good, metadata: { name: "web.2", namespace: "x" } })).status,
      400,
    );
  } finally {
    await server.stop();
  }
});
