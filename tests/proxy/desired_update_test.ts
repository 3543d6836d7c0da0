/**
 * Property test of the incremental join: random sequences of service,
 * endpoint and node changes, applied step by step with `updateDesired`, must
 * give what `desiredState` computes from scratch, and what a plain join of
 * every service in key order gives (the reference below).
 *
 * @module
 */

import assert from "node:assert/strict";
import type { EndpointInfo, EndpointSliceInfo, ServiceInfo } from "../../lib/kube/model.ts";
import {
  desiredForService,
  desiredState,
  safeDesiredForService,
  updateDesired,
} from "../../lib/proxy/desired.ts";
import type {
  DesiredEndpoint,
  DesiredLoadBalancer,
  DesiredState,
  Diagnostic,
  EpKey,
  HealthCheckWanted,
  LbKey,
  NodeContext,
  ServiceDesired,
} from "../../lib/proxy/model.ts";
import { ctx, ep, overlayCtx, port, slice, svc, view } from "./core_fixtures.ts";
import { prng } from "../prng.ts";

/**
 * The join as a plain pass over every service in key order (first claim of an
 * LB key or health-check port wins; first service naming a remote endpoint
 * provides it; the context's endpoints last).
 */
function referenceJoin(services: Iterable<ServiceDesired>, context: DesiredEndpoint[]) {
  const sorted = [...services].sort((a, b) => (a.serviceKey < b.serviceKey ? -1 : 1));
  const loadBalancers = new Map<LbKey, DesiredLoadBalancer>();
  const remoteEndpoints = new Map<EpKey, DesiredEndpoint>();
  const endpointRefs = new Map<EpKey, number>();
  const existingEndpoints = new Map<EpKey, string>();
  const healthChecks = new Map<string, HealthCheckWanted>();
  const conflicts: Diagnostic[] = [];
  const hcPorts = new Map<number, string>();
  const ref = (k: EpKey) => endpointRefs.set(k, (endpointRefs.get(k) ?? 0) + 1);
  for (const s of sorted) {
    const remotes = new Map(s.remoteEndpoints.map((e) => [e.key, e]));
    const existing = new Map(s.existingEndpoints.map((e) => [e.key, e.id]));
    for (const lb of s.loadBalancers) {
      const holder = loadBalancers.get(lb.key);
      if (holder) {
        conflicts.push({
          level: "error",
          serviceKey: s.serviceKey,
          field: lb.kind === "nodePort" ? "spec.ports.nodePort" : lb.vip ?? "",
          reason: "LoadBalancerConflict",
          message:
            `service ${s.serviceKey}: ${lb.key} (${lb.kind}) is already claimed by service ${holder.serviceKey}; not programmed`,
        });
        continue;
      }
      loadBalancers.set(lb.key, lb);
      for (const b of lb.backends) {
        const r = remotes.get(b);
        if (r) {
          if (!remoteEndpoints.has(b)) remoteEndpoints.set(b, r);
          ref(b);
        } else if (existing.has(b)) existingEndpoints.set(b, existing.get(b)!);
      }
    }
    for (const r of s.remoteEndpoints) {
      if (r.role !== "serviceVip") continue;
      if (!remoteEndpoints.has(r.key)) remoteEndpoints.set(r.key, r);
      ref(r.key);
    }
    if (s.healthCheck) {
      const holder = hcPorts.get(s.healthCheck.port);
      if (holder !== undefined) {
        conflicts.push({
          level: "error",
          serviceKey: s.serviceKey,
          field: "spec.healthCheckNodePort",
          reason: "HealthCheckPortConflict",
          message:
            `service ${s.serviceKey}: spec.healthCheckNodePort: port ${s.healthCheck.port} is already used by service ${holder}`,
        });
      } else {
        hcPorts.set(s.healthCheck.port, s.serviceKey);
        healthChecks.set(s.serviceKey, s.healthCheck);
      }
    }
  }
  for (const e of context) {
    remoteEndpoints.set(e.key, e);
    ref(e.key);
  }
  return {
    services: new Map(sorted.map((s) => [s.serviceKey, s])),
    loadBalancers,
    remoteEndpoints,
    endpointRefs,
    existingEndpoints,
    healthChecks,
    conflicts,
    contextEndpoints: context.map((e) => e.key),
  };
}

/** A desired state as sorted plain data (map order is not part of the result). */
function sortedData(d: Omit<DesiredState, "contextEndpoints"> & { contextEndpoints: unknown }) {
  const entries = <V>(m: ReadonlyMap<string, V>) =>
    [...m].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return {
    services: entries(d.services),
    loadBalancers: entries(d.loadBalancers),
    remoteEndpoints: entries(d.remoteEndpoints),
    endpointRefs: entries(d.endpointRefs),
    existingEndpoints: entries(d.existingEndpoints),
    healthChecks: entries(d.healthChecks),
    conflicts: d.conflicts,
    contextEndpoints: d.contextEndpoints,
  };
}

const NAMES = ["a", "b", "c", "d", "e", "f"];
/** Few pod IPs, so that services share remote endpoints; 10.244.1.5/.6 are local CNI endpoints. */
const POD_IPS = [
  "10.244.1.5",
  "10.244.1.6",
  "10.244.1.7",
  "10.244.2.7",
  "10.244.2.8",
  "10.244.3.9",
  "10.244.9.9",
];

function pick<T>(rand: () => number, xs: readonly T[]): T {
  return xs[Math.floor(rand() * xs.length)];
}

/** A random service: shared external IPs, node ports and health-check ports make conflicts. */
function randomService(rand: () => number, name: string, index: number): ServiceInfo {
  const etpLocal = rand() < 0.3;
  const type = rand() < 0.4 ? "NodePort" : rand() < 0.5 ? "LoadBalancer" : "ClusterIP";
  const ports = [port({ nodePort: type === "ClusterIP" ? undefined : pick(rand, [30080, 30081]) })];
  if (rand() < 0.3) ports.push(port({ name: "dns", protocol: "UDP", port: 53, targetPort: 53 }));
  return svc({
    name,
    type,
    clusterIPs: [`10.96.0.${10 + index}`],
    externalIPs: rand() < 0.4 ? [pick(rand, ["1.2.3.4", "1.2.3.5"])] : [],
    ingress: type === "LoadBalancer" && rand() < 0.6
      ? [{ ip: pick(rand, ["5.6.7.8", "5.6.7.9"]) }]
      : [],
    ports,
    externalTrafficPolicy: etpLocal ? "Local" : "Cluster",
    internalTrafficPolicy: rand() < 0.15 ? "Local" : "Cluster",
    healthCheckNodePort: etpLocal ? pick(rand, [32000, 32001]) : undefined,
    sessionAffinity: rand() < 0.2 ? "ClientIP" : "None",
  });
}

/** A random slice of a service: some pod IPs, on random nodes, mostly ready. */
function randomSlice(rand: () => number, name: string): EndpointSliceInfo {
  const endpoints: EndpointInfo[] = [];
  for (const ip of POD_IPS) {
    if (rand() < 0.55) continue;
    endpoints.push(ep(ip, {
      nodeName: pick(rand, ["node-a", "node-b", "node-c", undefined]),
      ready: rand() < 0.8,
      serving: rand() < 0.9,
      terminating: rand() < 0.2,
    }));
  }
  return slice(endpoints, {
    name: `${name}-${Math.floor(rand() * 2)}`,
    serviceName: name,
    ports: [
      { name: "http", port: pick(rand, [8080, 8080, 8081]), protocol: "TCP" },
      { name: "dns", port: 53, protocol: "UDP" },
    ],
  });
}

/** Node contexts the sequence switches between (a "node change" recomputes every service). */
function contexts(): NodeContext[] {
  return [
    ctx({ forwardHealthCheckVip: true, rootHnsEndpointId: "HOST-0001" }),
    ctx({ localEndpoints: new Map([["10.244.1.5", "LOCAL-0001"]]) }),
    overlayCtx(),
    overlayCtx({ sourceVips: ["10.244.1.3"], nodeIPs: ["192.168.1.20"] }),
    overlayCtx({ sourceVips: [] }),
    overlayCtx({ clusterCidrs: ["10.244.0.0/16"] }),
    overlayCtx({
      clusterCidrs: ["10.244.0.0/16"],
      nodePlacements: [{
        nodeName: "node-c",
        podCidrs: ["10.244.9.0/24"],
        providerAddress: "192.168.1.19",
      }],
    }),
  ];
}

function runSequence(seed: number, steps: number): void {
  const rand = prng(seed);
  const ctxs = contexts();
  let context = pick(rand, ctxs);
  const services = new Map<string, ServiceInfo>();
  const slices = new Map<string, EndpointSliceInfo[]>();
  const clusterView = () =>
    view(
      [...services.values()],
      [...slices.values()].flat().filter((s) => services.has(s.serviceName)),
    );
  let d = desiredState(clusterView(), context);
  for (let step = 0; step < steps; step++) {
    const touched = new Set<string>();
    const r = rand();
    if (r < 0.08) {
      // Node change: a new context, every service recomputed.
      context = pick(rand, ctxs);
      for (const name of services.keys()) touched.add(name);
    } else {
      const n = 1 + Math.floor(rand() * 3);
      for (let i = 0; i < n; i++) {
        const name = pick(rand, NAMES);
        touched.add(name);
        const what = rand();
        if (what < 0.2) {
          services.delete(name);
        } else if (what < 0.45 || !services.has(name)) {
          services.set(name, randomService(rand, name, NAMES.indexOf(name)));
          if (!slices.has(name)) slices.set(name, [randomSlice(rand, name)]);
        } else if (what < 0.85) {
          // Endpoint change: a slice replaced, added or dropped.
          const list = [...(slices.get(name) ?? [])];
          if (rand() < 0.2 && list.length > 0) list.pop();
          else list.push(randomSlice(rand, name));
          const byName = new Map(list.map((s) => [s.name, s]));
          slices.set(name, [...byName.values()]);
        } else {
          slices.delete(name);
        }
      }
    }
    const cv = clusterView();
    const changed = new Map<string, ServiceDesired | undefined>();
    for (const name of touched) {
      const key = `default/${name}`;
      const s = services.get(name);
      changed.set(key, s ? safeDesiredForService(s, cv.slicesFor(key), context) : undefined);
    }
    d = updateDesired(d, changed, context);
    const scratch = desiredState(cv, context);
    const label = `seed ${seed}, step ${step}`;
    assert.deepEqual(sortedData(d), sortedData(scratch), `${label}: update vs from scratch`);
    const reference = referenceJoin(
      [...services.values()].map((s) =>
        desiredForService(s, cv.slicesFor(`default/${s.name}`), context)
      ),
      [...scratch.contextEndpoints].map((k) => scratch.remoteEndpoints.get(k)!),
    );
    assert.deepEqual(sortedData(d), sortedData(reference), `${label}: update vs plain join`);
  }
}

Deno.test("updateDesired step by step equals desiredState from scratch (random sequences)", () => {
  for (let seed = 1; seed <= 60; seed++) runSequence(seed, 40);
});

Deno.test("updateDesired: a conflict's loser takes over the LB and its endpoints when the winner goes", () => {
  const c = ctx();
  const a = svc({ name: "a", clusterIPs: ["10.96.0.1"], externalIPs: ["1.2.3.4"] });
  const b = svc({ name: "b", clusterIPs: ["10.96.0.2"], externalIPs: ["1.2.3.4"] });
  const sa = slice([ep("10.244.2.7")], { name: "a-1", serviceName: "a" });
  const sb = slice([ep("10.244.2.8")], { name: "b-1", serviceName: "b" });
  const d0 = desiredState(view([a, b], [sa, sb]), c);
  assert.equal(d0.loadBalancers.get("lb/tcp/1.2.3.4:80")?.serviceKey, "default/a");
  assert.equal(d0.conflicts.length, 1);
  const d1 = updateDesired(d0, new Map([["default/a", undefined]]), c);
  assert.equal(d1.loadBalancers.get("lb/tcp/1.2.3.4:80")?.serviceKey, "default/b");
  assert.deepEqual(d1.conflicts, []);
  assert.deepEqual([...d1.remoteEndpoints.keys()], ["ep/remote/10.244.2.8"]);
  assert.equal(d1.endpointRefs.get("ep/remote/10.244.2.8"), 2);
  const d2 = updateDesired(d1, new Map([["default/a", desiredForService(a, [sa], c)]]), c);
  assert.equal(d2.loadBalancers.get("lb/tcp/1.2.3.4:80")?.serviceKey, "default/a");
  assert.equal(d2.conflicts.length, 1);
  assert.equal(d2.endpointRefs.get("ep/remote/10.244.2.8"), 1);
  assert.equal(d2.endpointRefs.get("ep/remote/10.244.2.7"), 2);
});

Deno.test("updateDesired: remoteEndpoints and endpointRefs read as maps of the same keys, kept current by updates", () => {
  const c = overlayCtx();
  const a = svc({
    name: "a",
    clusterIPs: ["10.96.0.1"],
    type: "NodePort",
    ports: [port({ nodePort: 30080 })],
  });
  const b = svc({ name: "b", clusterIPs: ["10.96.0.2"] });
  const sa = slice([ep("10.244.2.7"), ep("10.244.2.8")], { name: "a-1", serviceName: "a" });
  const sb = slice([ep("10.244.2.8")], { name: "b-1", serviceName: "b" });
  const check = (d: DesiredState, refs: Record<string, number>) => {
    const keys = Object.keys(refs).sort();
    assert.equal(d.remoteEndpoints.size, keys.length);
    assert.equal(d.endpointRefs.size, keys.length);
    assert.deepEqual([...d.remoteEndpoints.keys()].sort(), keys);
    assert.deepEqual(Object.fromEntries(d.endpointRefs), refs);
    assert.deepEqual(Object.fromEntries(d.endpointRefs.entries()), refs);
    const seen: string[] = [];
    d.remoteEndpoints.forEach((e, k, m) => {
      assert.equal(e.key, k);
      assert.equal(m, d.remoteEndpoints);
      seen.push(k);
    });
    assert.deepEqual(seen.sort(), keys);
    for (const [k, e] of d.remoteEndpoints) assert.equal(d.remoteEndpoints.get(k), e);
    assert.deepEqual([...d.remoteEndpoints.values()].map((e) => e.key).sort(), keys);
    assert.ok(!d.remoteEndpoints.has("ep/remote/10.244.9.9"));
    assert.equal(d.remoteEndpoints.get("ep/remote/10.244.9.9"), undefined);
    assert.equal(d.endpointRefs.get("ep/remote/10.244.9.9"), undefined);
  };
  const d0 = desiredState(view([a, b], [sa, sb]), c);
  check(d0, {
    "ep/remote/10.244.2.7": 2, // a's ClusterIP and NodePort LBs
    "ep/remote/10.244.2.8": 3, // and b's ClusterIP LB
    "ep/remote/10.96.0.1": 1,
    "ep/remote/10.96.0.2": 1,
    "ep/sourcevip/10.244.1.2": 1,
  });
  const d1 = updateDesired(d0, new Map([["default/a", undefined]]), c);
  check(d1, {
    "ep/remote/10.244.2.8": 1,
    "ep/remote/10.96.0.2": 1,
    "ep/sourcevip/10.244.1.2": 1,
  });
  const d2 = updateDesired(d1, new Map([["default/b", undefined]]), c);
  check(d2, { "ep/sourcevip/10.244.1.2": 1 });
});

Deno.test("updateDesired: a pod endpoint passes from one service to several and back, each time with the winner's object and its count", () => {
  const c = ctx();
  const a = svc({ name: "a", clusterIPs: ["10.96.0.1"] });
  const b = svc({
    name: "b",
    clusterIPs: ["10.96.0.2"],
    type: "NodePort",
    ports: [port({ nodePort: 30080 })],
  });
  const key = "ep/remote/10.244.2.8";
  const sa = slice([ep("10.244.2.8")], { name: "a-1", serviceName: "a" });
  const sb = slice([ep("10.244.2.8")], { name: "b-1", serviceName: "b" });
  const objectOf = (d: DesiredState, service: string) =>
    d.services.get(service)!.remoteEndpoints.find((e) => e.key === key);
  // One service, one reference.
  const d0 = desiredState(view([b], [sb]), c);
  const d1 = updateDesired(d0, new Map([["default/b", desiredForService(b, [], c)]]), c);
  assert.equal(d1.remoteEndpoints.get(key), undefined);
  const d2 = updateDesired(d1, new Map([["default/a", desiredForService(a, [sa], c)]]), c);
  assert.equal(d2.remoteEndpoints.get(key), objectOf(d2, "default/a"));
  assert.equal(d2.endpointRefs.get(key), 1);
  // A second service with two LBs on it: the smallest service's object wins.
  const d3 = updateDesired(d2, new Map([["default/b", desiredForService(b, [sb], c)]]), c);
  assert.equal(d3.remoteEndpoints.get(key), objectOf(d3, "default/a"));
  assert.equal(d3.endpointRefs.get(key), 3);
  // The first goes: the other's object, its two references.
  const d4 = updateDesired(d3, new Map([["default/a", undefined]]), c);
  assert.equal(d4.remoteEndpoints.get(key), objectOf(d4, "default/b"));
  assert.equal(d4.endpointRefs.get(key), 2);
  // Back to one reference of one service, recomputed: its new object.
  const b1 = svc({ name: "b", clusterIPs: ["10.96.0.2"] });
  const d5 = updateDesired(d4, new Map([["default/b", desiredForService(b1, [sb], c)]]), c);
  assert.equal(d5.remoteEndpoints.get(key), objectOf(d5, "default/b"));
  assert.equal(d5.endpointRefs.get(key), 1);
  assert.deepEqual([...d5.remoteEndpoints.values()], [objectOf(d5, "default/b")]);
  const d6 = updateDesired(d5, new Map([["default/b", undefined]]), c);
  assert.equal(d6.remoteEndpoints.size, 0);
});
