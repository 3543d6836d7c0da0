import assert from "node:assert/strict";
import { type ConflictReport, ConflictTracker } from "../../lib/proxy/conflicts.ts";
import { RecordingLogger } from "../kube/helpers.ts";

function tracker() {
  const clock = {
    t: 0,
    now() {
      return this.t;
    },
  };
  const logger = new RecordingLogger();
  const lines = logger.lines;
  const batches: ConflictReport[][] = [];
  const t = new ConflictTracker({
    clock,
    logger,
    onReports: (r) => void batches.push([...r]),
    wanted: (key) => ({
      kind: key.includes("nodeport") ? "nodePort" : "clusterIP",
      serviceKey: "default/a",
    }),
  });
  return { t, clock, lines, batches };
}

const A = { key: "lb/tcp/10.96.0.10:80", serviceKey: "default/a", foreignId: "F1" };
const B = { key: "lb/tcp/nodeport:30080", serviceKey: "default/a", foreignId: "F2" };

Deno.test("conflicts: reported when they appear, then once per backoff step, not on every sync", () => {
  const { t, clock, lines, batches } = tracker();
  t.note([A, B]);
  assert.deepEqual(batches.map((b) => b.map((r) => `${r.change} ${r.conflict.key}`)), [
    [`appeared ${A.key}`, `appeared ${B.key}`],
  ]);
  const reminders: number[] = [];
  for (let s = 1; s <= 200; s++) {
    clock.t = s * 1000;
    t.note([A, B]); // seen again by every sync: says nothing
    const before = batches.length;
    t.tick();
    if (batches.length > before) reminders.push(s);
  }
  // 5 s, then 10, 20, 40, 80 s between reminders; both keys in one batch each time.
  assert.deepEqual(reminders, [5, 15, 35, 75, 155]);
  assert.ok(batches.slice(1).every((b) => b.length === 2 && b[0].change === "persists"));
  assert.equal(lines.filter((l) => l.level === "warn").length, 2 + 2 * 5);
  assert.deepEqual(t.countsByKind(), {
    clusterIP: 1,
    nodePort: 1,
    externalIP: 0,
    ingress: 0,
    healthCheck: 0,
  });
});

Deno.test("conflicts: the wait is capped at 5 minutes", () => {
  const { t, clock } = tracker();
  t.note([A]);
  const gaps: number[] = [];
  let last = 0;
  for (let s = 1; s <= 3600; s++) {
    clock.t = s * 1000;
    const reports = t.list()[0].reports;
    t.tick();
    if (t.list()[0].reports > reports) {
      gaps.push(s - last);
      last = s;
    }
  }
  assert.deepEqual(gaps.slice(0, 8), [5, 10, 20, 40, 80, 160, 300, 300]);
  assert.ok(gaps.every((g) => g <= 300));
});

Deno.test("conflicts: a new holder is reported at once; clearing is reported once with its reason", () => {
  const { t, clock, lines, batches } = tracker();
  t.note([A]);
  clock.t = 1000;
  t.note([{ ...A, foreignId: "f1" }]); // same holder, other case
  assert.equal(batches.length, 1);
  t.note([{ ...A, foreignId: "F9" }]);
  assert.equal(batches.length, 2);
  assert.equal(batches[1][0].change, "appeared");
  assert.equal(batches[1][0].conflict.holderId, "F9");

  const held = new Map([[A.key, "F9"]]);
  const facts = {
    wantedBy: (key: string) => key === A.key ? "default/a" : undefined,
    programmed: () => false,
    holder: (key: string) => held.get(key),
  };
  t.settle(facts);
  assert.equal(t.size, 1, "still held");
  held.delete(A.key);
  t.settle(facts);
  t.settle(facts);
  assert.equal(t.size, 0);
  assert.deepEqual(batches[2].map((r) => [r.change, r.reason]), [["cleared", "holderGone"]]);
  assert.equal(batches.length, 3, "cleared once");
  assert.equal(lines.filter((l) => l.message.startsWith("The conflict")).length, 1);
  assert.equal(t.nextDelay(), undefined, "nothing left to report");
});

Deno.test("conflicts: over when the service no longer wants the key, or hnsproxy holds it", () => {
  const { t, batches } = tracker();
  t.note([A, B]);
  t.settle({
    wantedBy: (key) => key === A.key ? "default/other" : "default/a",
    programmed: (key) => key === B.key,
    holder: () => "F1",
  });
  assert.deepEqual(batches[1].map((r) => [r.conflict.key, r.reason]), [
    [A.key, "notWanted"],
    [B.key, "programmed"],
  ]);
  assert.equal(t.size, 0);
});

Deno.test("conflicts: a conflict found without its service takes kind and service from the desired state", () => {
  const { t } = tracker();
  t.note([{ ...B, serviceKey: "" }]);
  assert.deepEqual(t.list().map((c) => [c.key, c.serviceKey, c.kind]), [
    [B.key, "default/a", "nodePort"],
  ]);
});
