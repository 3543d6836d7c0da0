/**
 * The real agent process and a foreign load balancer that appears after
 * start (another proxy): the conflict is logged once and then once per
 * backoff step (not per sync), counted by `hnsproxy_conflicts`, reported
 * as one Warning Event on the Service (a series, not a pile), never fought,
 * and cleared once when the other object goes; the Node gets kube-proxy's
 * `Starting` event; an API server that refuses events does not stop the
 * programming.
 */

import assert from "node:assert/strict";
import { AgentWorld, eventually } from "./harness.ts";
import { HOST_EP, l2bridgeHns, NODE, nodeObject, serviceObject, sliceObject } from "./fixtures.ts";
import type { FakeObject } from "../../lib/fake-apiserver/mod.ts";

const ARGS = ["--network-name", "cbr0", "--sync-period", "1s", "--min-sync-period", "100ms"];
const FOREIGN_ID = "F0F0F0F0-0000-4000-8000-0000000000AA";
const FOREIGN = JSON.stringify({
  ID: FOREIGN_ID,
  HostComputeEndpoints: [HOST_EP],
  FrontendVIPs: ["10.96.0.20"],
  PortMappings: [{ Protocol: 6, InternalPort: 9999, ExternalPort: 80 }],
  SchemaVersion: { Major: 2, Minor: 0 },
});
const EPS = [{ ip: "10.244.1.5", node: NODE }, { ip: "10.244.2.7", node: "node-2" }];
const WEB = "10.96.0.10:80/tcp->8080 [10.244.1.5,10.244.2.7] flags=0 pm=0 dt=0";
const API = "10.96.0.20:80/tcp->8080 [10.244.1.5,10.244.2.7] flags=0 pm=0 dt=0";

function cluster() {
  return {
    hns: l2bridgeHns(),
    services: [
      serviceObject("web", { clusterIP: "10.96.0.10", ports: [{ port: 80, targetPort: 8080 }] }),
    ],
    slices: [sliceObject("web", EPS, { port: 8080 })],
    node: nodeObject(),
  };
}

function addApiService(world: AgentWorld): void {
  world.api.create(
    "services",
    serviceObject("api", { clusterIP: "10.96.0.20", ports: [{ port: 80, targetPort: 8080 }] }),
  );
  world.api.create("endpointslices", sliceObject("api", EPS, { port: 8080 }));
}

function metric(text: string, name: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(name + " "));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

function events(world: AgentWorld, reason: string): FakeObject[] {
  return world.api.list("events").filter((e) => e.reason === reason);
}

const count = (text: string, re: RegExp) => text.split("\n").filter((l) => re.test(l)).length;
const APPEARED = /does not own holds this service's port/;
const PERSISTS = /does not own still holds this service's port/;
const CLEARED = /The conflict on this service's port is over/;

Deno.test("agent/events: a foreign LB after start is reported once per backoff step, never fought, cleared once", async () => {
  const world = await AgentWorld.create(cluster());
  try {
    const agent = world.startAgent(ARGS);
    const describe = async () => (await world.lbTable()).join("\n") + "\n" + agent.log();
    await eventually("web programmed", async () => (await world.lbTable()).includes(WEB), describe);

    const [starting] = events(world, "Starting");
    assert.ok(starting, "the Starting event on the Node");
    assert.deepEqual(starting.regarding, { kind: "Node", name: NODE, uid: NODE });
    assert.deepEqual(
      [starting.type, starting.action, starting.reportingController, starting.reportingInstance],
      ["Normal", "StartKubeProxy", "hnsproxy", `hnsproxy-${NODE}`],
    );
    assert.equal(starting.metadata.namespace, "default");

    // Another proxy takes 10.96.0.20:80, then the service that wants it appears.
    await world.hnsTool("create-lb", FOREIGN);
    const appearedAt = Date.now(); // no later than the agent saw it: elapsed times are upper bounds
    addApiService(world);
    await eventually(
      "conflict counted and reported",
      async () =>
        metric(await world.metrics(agent), 'hnsproxy_conflicts{kind="clusterIP"}') === 1 &&
        events(world, "HNSConflict").length === 1,
      describe,
    );
    const [warning] = events(world, "HNSConflict");
    assert.equal(warning.type, "Warning");
    assert.deepEqual(warning.regarding, {
      apiVersion: "v1",
      kind: "Service",
      namespace: "default",
      name: "api",
    });
    assert.equal(warning.metadata.namespace, "default");
    assert.match(String(warning.note), /lb\/tcp\/10\.96\.0\.20:80/);
    assert.match(String(warning.note), new RegExp(FOREIGN_ID));
    assert.equal(warning.reportingInstance, `hnsproxy-${NODE}`);

    // Many syncs: endpoint changes of another service, and a resync every second.
    const syncs = () =>
      world.metrics(agent).then((t) =>
        metric(t, 'kubeproxy_sync_proxy_rules_duration_seconds_count{ip_family="IPv4"}') ?? 0
      );
    const before = await syncs();
    for (let i = 0; i < 8; i++) {
      const eps = i % 2 ? EPS : [...EPS, { ip: "10.244.3.9", node: "node-3" }];
      world.api.update("endpointslices", sliceObject("web", eps, { port: 8080 }));
      await new Promise((r) => setTimeout(r, 400));
    }
    await eventually("the last change synced", async () => (await world.lbTable()).includes(WEB));
    const ran = (await syncs()) - before;
    assert.ok(ran >= 5, `several syncs ran (${ran})`);
    // The first reminder (5 s after it appeared) bumps the event's series.
    const seriesCount = () => {
      const [e] = events(world, "HNSConflict");
      return (e?.series as { count?: number } | undefined)?.count ?? 1;
    };
    await eventually("reminded", () => count(agent.log(), PERSISTS) >= 1, describe);
    await eventually("series bumped", () => seriesCount() === 1 + count(agent.log(), PERSISTS));
    const elapsedS = (Date.now() - appearedAt) / 1000;
    // Reminders come 5 s, 15 s, 35 s ... after the conflict appeared.
    let steps = 0;
    while (5 * (2 ** (steps + 1) - 1) <= elapsedS) steps++;
    const log = agent.log();
    assert.equal(count(log, APPEARED), 1, "logged when it appeared");
    assert.ok(count(log, PERSISTS) <= steps, `at most once per backoff step (${steps})`);
    assert.equal(events(world, "HNSConflict").length, 1, "one event, repeats are its series");
    assert.ok(seriesCount() <= 1 + steps, `series bumped at most once per step (${seriesCount()})`);
    assert.ok(!(await world.lbTable()).includes(API), "not fought");
    assert.deepEqual(
      (await world.hns()).LoadBalancers.filter((l) => l.ID === FOREIGN_ID).length,
      1,
      "the foreign LB is left alone",
    );

    // The other proxy goes: the conflict clears, the service is programmed.
    await world.hnsTool("delete-lb", FOREIGN_ID);
    await eventually("api programmed", async () => (await world.lbTable()).includes(API), describe);
    await eventually(
      "gauge back to 0",
      async () => metric(await world.metrics(agent), 'hnsproxy_conflicts{kind="clusterIP"}') === 0,
    );
    assert.equal(count(agent.log(), CLEARED), 1, "logged once when it cleared");
    assert.equal(await world.stopAgent(agent), 0);
    assert.equal(count(agent.log(), APPEARED), 1);
  } finally {
    await world.close();
  }
});

Deno.test("agent/events: an API server that refuses events does not stop programming", async () => {
  const world = await AgentWorld.create(cluster());
  world.api.failNext(403, { resource: "events", count: Infinity });
  try {
    const agent = world.startAgent(ARGS);
    const describe = async () => (await world.lbTable()).join("\n") + "\n" + agent.log();
    await eventually("web programmed", async () => (await world.lbTable()).includes(WEB), describe);
    await world.hnsTool("create-lb", FOREIGN);
    addApiService(world);
    await eventually(
      "conflict counted",
      async () => metric(await world.metrics(agent), 'hnsproxy_conflicts{kind="clusterIP"}') === 1,
      describe,
    );
    // Programming goes on: a new service and an endpoint change reach HNS.
    world.api.create(
      "services",
      serviceObject("db", { clusterIP: "10.96.0.30", ports: [{ port: 5432, targetPort: 5432 }] }),
    );
    world.api.create("endpointslices", sliceObject("db", EPS, { port: 5432 }));
    await eventually(
      "db programmed",
      async () => (await world.lbTable()).some((l) => l.startsWith("10.96.0.30:5432/tcp->5432")),
      describe,
    );
    assert.equal(world.api.list("events").length, 0);
    assert.ok(world.api.count("create", "events") >= 2, "Starting and HNSConflict were tried");
    const dropped = metric(
      await world.metrics(agent),
      'hnsproxy_events_dropped_total{reason="rejected"}',
    );
    assert.ok((dropped ?? 0) >= 2, `drops counted (${dropped})`);
    assert.equal(count(agent.log(), /Cannot write a Kubernetes Event/), 1, "logged once");
    assert.equal(await world.stopAgent(agent), 0);
  } finally {
    await world.close();
  }
});
