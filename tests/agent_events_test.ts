import assert from "node:assert/strict";
import { recordConflicts } from "../lib/agent_events.ts";
import { EventRecorder, type KubeEvent } from "../lib/kube/events.ts";
import type { ConflictReport, TrackedConflict } from "../lib/proxy/conflicts.ts";

function recorder() {
  const created: KubeEvent[] = [];
  const patches: Record<string, unknown>[] = [];
  const r = new EventRecorder({
    sink: {
      create: (e) => Promise.resolve(void created.push(e)),
      patch: (_ns, _name, p) => Promise.resolve(void patches.push(p)),
    },
    reportingController: "hnsproxy",
    reportingInstance: "hnsproxy-node-1",
    now: () => Date.UTC(2026, 11, 5),
  });
  return { r, created, patches };
}

const conflict = (key: string, serviceKey: string, holderId: string): TrackedConflict => ({
  key,
  serviceKey,
  holderId,
  kind: "clusterIP",
  since: 0,
  reports: 1,
});

Deno.test("agent events: one HNSConflict per Service per batch, naming every key and holder", async () => {
  const { r, created, patches } = recorder();
  const reports: ConflictReport[] = [
    { change: "appeared", conflict: conflict("lb/tcp/10.96.0.20:80", "team-a/api", "F1") },
    { change: "appeared", conflict: conflict("lb/tcp/nodeport:30080", "team-a/api", "F2") },
    { change: "appeared", conflict: conflict("lb/udp/10.96.0.53:53", "kube-system/dns", "F3") },
    { change: "cleared", conflict: conflict("lb/tcp/10.96.0.30:80", "team-b/db", "F4") },
  ];
  recordConflicts(r, reports);
  await r.settled();
  assert.equal(created.length, 2, "cleared conflicts write nothing");
  const api = created.find((e) => e.regarding.name === "api")!;
  assert.deepEqual(api.regarding, {
    apiVersion: "v1",
    kind: "Service",
    namespace: "team-a",
    name: "api",
  });
  assert.equal(api.metadata.namespace, "team-a");
  assert.deepEqual([api.type, api.reason, api.action], [
    "Warning",
    "HNSConflict",
    "ProgramLoadBalancer",
  ]);
  assert.match(api.note!, /lb\/tcp\/10\.96\.0\.20:80 \(held by HNS load balancer F1\)/);
  assert.match(api.note!, /lb\/tcp\/nodeport:30080 \(held by HNS load balancer F2\)/);

  recordConflicts(r, [{ ...reports[0], change: "persists" }]);
  await r.settled();
  assert.equal(created.length, 2);
  assert.deepEqual(patches.map((p) => (p.series as { count: number }).count), [2]);
  await r.close();
});
