import assert from "node:assert/strict";
import { desiredState } from "../../lib/proxy/desired.ts";
import {
  type Adoption,
  adoptObserved,
  reconcile,
  resolvedLoadBalancerPayload,
} from "../../lib/proxy/reconcile.ts";
import type {
  DesiredState,
  NodeContext,
  ObservedState,
  OwnedIds,
  Plan,
} from "../../lib/proxy/model.ts";
import type { EndpointSliceInfo, ServiceInfo } from "../../lib/kube/model.ts";
import type { HcnEndpoint, HcnLoadBalancer } from "../../lib/hns/types.ts";
import { ObservedCache, slimEndpoint, slimLoadBalancer } from "../../lib/proxy/observed.ts";
import {
  ALL_FEATURES as MODIFY,
  ctx,
  emptyObserved,
  ep,
  NO_FEATURES,
  NO_MODIFY_FEATURES as NO_MODIFY,
  opList,
  overlayCtx,
  type SimHns,
  simulate,
  slice,
  svc,
  view,
} from "./core_fixtures.ts";

/** Phase of each op kind; a plan's phases must never go backwards. */
function assertOrdered(plan: Plan): void {
  const phase = (i: number) => {
    const o = plan.ops[i];
    switch (o.op) {
      case "deleteLoadBalancer":
        return 1;
      case "deleteEndpoint": {
        const later = plan.ops.slice(0, i).some((x) =>
          x.op === "createLoadBalancer" || x.op === "modifyLoadBalancer"
        );
        return later ? 5 : 2;
      }
      case "createEndpoint":
        return 3;
      case "createLoadBalancer":
      case "modifyLoadBalancer":
        return 4;
      default:
        return 0;
    }
  };
  let last = 0;
  for (let i = 0; i < plan.ops.length; i++) {
    const p = phase(i);
    assert.ok(p >= last, `op ${i} (${plan.ops[i].op} ${plan.ops[i].key}) out of order`);
    last = p;
  }
}

/** Two services sharing remote endpoint 10.244.2.7. */
function world(extra: { aEps?: string[]; bEps?: string[] } = {}) {
  const a = svc({
    name: "a",
    clusterIPs: ["10.96.0.1"],
    type: "NodePort",
    ports: [{ name: "http", protocol: "TCP", port: 80, targetPort: 8080, nodePort: 30001 }],
  });
  const b = svc({ name: "b", clusterIPs: ["10.96.0.2"] });
  const slices: EndpointSliceInfo[] = [
    slice(
      (extra.aEps ?? ["10.244.2.7", "10.244.1.5"]).map((ip) =>
        ep(ip, { nodeName: ip.startsWith("10.244.1.") ? "node-a" : "node-b" })
      ),
      { name: "a-1", serviceName: "a" },
    ),
    slice((extra.bEps ?? ["10.244.2.7", "10.244.3.9"]).map((ip) => ep(ip)), {
      name: "b-1",
      serviceName: "b",
    }),
  ];
  return { services: [a, b] as ServiceInfo[], slices };
}

/** Desired state, converge from empty, and return everything needed for the next step. */
function converged(
  c: NodeContext,
  services: ServiceInfo[],
  slices: EndpointSliceInfo[],
  features = MODIFY,
) {
  const desired = desiredState(view(services, slices), c);
  const plan = reconcile(desired, emptyObserved(), { features });
  assertOrdered(plan);
  const sim = simulate(undefined, plan, desired);
  return { desired, sim };
}

Deno.test("from empty: endpoints first, then LBs; applying it converges; a second reconcile is empty", () => {
  const { services, slices } = world();
  const desired = desiredState(view(services, slices), overlayCtx());
  const plan = reconcile(desired, emptyObserved(), { features: MODIFY });
  assertOrdered(plan);
  assert.deepEqual(opList(plan), [
    "createEndpoint ep/remote/10.244.2.7",
    "createEndpoint ep/remote/10.244.3.9",
    "createEndpoint ep/remote/10.96.0.1",
    "createEndpoint ep/remote/10.96.0.2",
    "createEndpoint ep/sourcevip/10.244.1.2",
    "createLoadBalancer lb/tcp/10.96.0.1:80",
    "createLoadBalancer lb/tcp/10.96.0.2:80",
    "createLoadBalancer lb/tcp/nodeport:30001",
  ]);
  assert.deepEqual(plan.conflicts, []);
  const sim = simulate(undefined, plan, desired);
  assert.deepEqual(reconcile(desired, sim.observed, { features: MODIFY }).ops, []);
  assert.deepEqual(
    reconcile(desired, sim.observed, { features: MODIFY, dirty: new Set(["default/a"]) }).ops,
    [],
  );
});

Deno.test("normalization: case of IDs, backend order, absent vs zero flags, IPv6 spelling do not count as changes", () => {
  const c = ctx();
  const s = svc({ clusterIPs: ["fd00:96::a"], ipFamilies: ["IPv6"] });
  const sl = [slice([ep("fd00:244:2::7"), ep("fd00:244:2::8")], { addressType: "IPv6" })];
  const { desired, sim } = converged(c, [s], sl);
  const [key, lb] = [...sim.observed.loadBalancers][0];
  const fuzzed: HcnLoadBalancer = {
    ID: lb.id.toLowerCase(),
    HostComputeEndpoints: [...lb.hns.HostComputeEndpoints].reverse().map((x) => x.toLowerCase()),
    FrontendVIPs: ["FD00:96:0:0::A"],
    PortMappings: lb.hns.PortMappings.map(({ Protocol, InternalPort, ExternalPort }) => ({
      Protocol,
      InternalPort,
      ExternalPort,
    })),
    Flags: 2,
  };
  const observed: ObservedState = {
    ...sim.observed,
    loadBalancers: new Map([[key, { ...lb, hns: fuzzed }]]),
  };
  assert.deepEqual(reconcile(desired, observed, { features: MODIFY }).ops, []);
});

Deno.test("one endpoint added: only that service's LBs change (modify with ModifyLoadbalancer)", () => {
  const c = ctx();
  const w0 = world();
  const { sim } = converged(c, w0.services, w0.slices);
  const w1 = world({ bEps: ["10.244.2.7", "10.244.3.9", "10.244.3.10"] });
  const desired = desiredState(view(w1.services, w1.slices), c);
  for (const dirty of [undefined, new Set(["default/b"])]) {
    const plan = reconcile(desired, sim.observed, { features: MODIFY, dirty });
    assertOrdered(plan);
    assert.deepEqual(opList(plan), [
      "createEndpoint ep/remote/10.244.3.10",
      "modifyLoadBalancer lb/tcp/10.96.0.2:80",
    ]);
    const next = simulate(sim, plan, desired);
    assert.deepEqual(reconcile(desired, next.observed, { features: MODIFY }).ops, []);
  }
});

Deno.test("changed LB without ModifyLoadbalancer: delete then create, in plan order", () => {
  const c = ctx();
  const w0 = world();
  const { sim } = converged(c, w0.services, w0.slices, NO_MODIFY);
  const w1 = world({ bEps: ["10.244.2.7", "10.244.3.9", "10.244.3.10"] });
  const desired = desiredState(view(w1.services, w1.slices), c);
  const plan = reconcile(desired, sim.observed, { features: NO_MODIFY });
  assertOrdered(plan);
  assert.deepEqual(opList(plan), [
    "deleteLoadBalancer lb/tcp/10.96.0.2:80",
    "createEndpoint ep/remote/10.244.3.10",
    "createLoadBalancer lb/tcp/10.96.0.2:80",
  ]);
  assert.equal(plan.ops[0].op === "deleteLoadBalancer" && plan.ops[0].reason, "replace");
  const next = simulate(sim, plan, desired);
  assert.deepEqual(reconcile(desired, next.observed, { features: NO_MODIFY }).ops, []);
});

Deno.test("shared remote endpoint: kept while any LB references it, deleted after the last reference goes", () => {
  const c = ctx();
  const w0 = world();
  for (const features of [MODIFY, NO_MODIFY]) {
    const { sim } = converged(c, w0.services, w0.slices, features);
    // b drops the shared endpoint; a still uses it.
    const w1 = world({ bEps: ["10.244.3.9"] });
    const d1 = desiredState(view(w1.services, w1.slices), c);
    const p1 = reconcile(d1, sim.observed, { features, dirty: new Set(["default/b"]) });
    assert.ok(!opList(p1).some((o) => o.startsWith("deleteEndpoint")), "still referenced by a");
    const s1 = simulate(sim, p1, d1);
    // a drops it too: now it goes, after the LBs stop referencing it.
    const w2 = world({ aEps: ["10.244.1.5"], bEps: ["10.244.3.9"] });
    const d2 = desiredState(view(w2.services, w2.slices), c);
    const p2 = reconcile(d2, s1.observed, { features, dirty: new Set(["default/a"]) });
    assertOrdered(p2);
    const last = opList(p2);
    assert.ok(last.includes("deleteEndpoint ep/remote/10.244.2.7"), `${JSON.stringify(last)}`);
    if (features.modifyLoadBalancer) {
      assert.deepEqual(last, [
        "modifyLoadBalancer lb/tcp/10.96.0.1:80",
        "modifyLoadBalancer lb/tcp/nodeport:30001",
        "deleteEndpoint ep/remote/10.244.2.7",
      ]);
    } else {
      assert.deepEqual(last, [
        "deleteLoadBalancer lb/tcp/10.96.0.1:80",
        "deleteLoadBalancer lb/tcp/nodeport:30001",
        "deleteEndpoint ep/remote/10.244.2.7",
        "createLoadBalancer lb/tcp/10.96.0.1:80",
        "createLoadBalancer lb/tcp/nodeport:30001",
      ]);
    }
    const s2 = simulate(s1, p2, d2); // throws if the endpoint were deleted while referenced
    assert.deepEqual(reconcile(d2, s2.observed, { features }).ops, []);
  }
});

Deno.test("service deleted: its LBs and its exclusive endpoints go; shared ones stay", () => {
  const c = ctx();
  const w0 = world();
  const { sim } = converged(c, w0.services, w0.slices);
  const d1 = desiredState(view([w0.services[0]], w0.slices), c);
  const plan = reconcile(d1, sim.observed, { features: MODIFY, dirty: new Set(["default/b"]) });
  assert.deepEqual(opList(plan), [
    "deleteLoadBalancer lb/tcp/10.96.0.2:80",
    "deleteEndpoint ep/remote/10.244.3.9",
  ]);
  const s1 = simulate(sim, plan, d1);
  assert.deepEqual(reconcile(d1, s1.observed, { features: MODIFY }).ops, []);
});

Deno.test("overlay service deleted: a partial reconcile also deletes its service-VIP endpoint", () => {
  const c = overlayCtx();
  const w0 = world();
  const { desired: d0, sim } = converged(c, w0.services, w0.slices);
  assert.ok(d0.remoteEndpoints.get("ep/remote/10.96.0.2")?.role === "serviceVip");
  const d1 = desiredState(view([w0.services[0]], w0.slices), c);
  const plan = reconcile(d1, sim.observed, { features: MODIFY, dirty: new Set(["default/b"]) });
  assertOrdered(plan);
  assert.deepEqual(opList(plan), [
    "deleteLoadBalancer lb/tcp/10.96.0.2:80",
    "deleteEndpoint ep/remote/10.244.3.9",
    "deleteEndpoint ep/remote/10.96.0.2",
  ]);
  const s1 = simulate(sim, plan, d1);
  assert.deepEqual(reconcile(d1, s1.observed, { features: MODIFY }).ops, [], "nothing left over");
});

Deno.test("overlay cluster IP changed: a partial reconcile replaces the service-VIP endpoint", () => {
  const c = overlayCtx();
  const w0 = world();
  const { sim } = converged(c, w0.services, w0.slices);
  const b1 = { ...w0.services[1], clusterIPs: ["10.96.0.3"] };
  const d1 = desiredState(view([w0.services[0], b1], w0.slices), c);
  const plan = reconcile(d1, sim.observed, { features: MODIFY, dirty: new Set(["default/b"]) });
  assertOrdered(plan);
  const ops = opList(plan);
  assert.ok(ops.includes("deleteEndpoint ep/remote/10.96.0.2"), ops.join("\n"));
  assert.ok(ops.includes("createEndpoint ep/remote/10.96.0.3"), ops.join("\n"));
  const s1 = simulate(sim, plan, d1);
  assert.deepEqual(reconcile(d1, s1.observed, { features: MODIFY }).ops, [], "nothing left over");
});

Deno.test("partial reconcile touches only dirty services; full reconcile catches the rest", () => {
  const c = ctx();
  const w0 = world();
  const { sim } = converged(c, w0.services, w0.slices);
  const w1 = world({ aEps: ["10.244.1.5", "10.244.2.7", "10.244.2.8"], bEps: ["10.244.3.9"] });
  const d1 = desiredState(view(w1.services, w1.slices), c);
  const onlyA = reconcile(d1, sim.observed, { features: MODIFY, dirty: new Set(["default/a"]) });
  assert.ok(opList(onlyA).every((o) => !o.includes("10.96.0.2")), "b untouched");
  const full = reconcile(d1, sim.observed, { features: MODIFY });
  assert.ok(opList(full).includes("modifyLoadBalancer lb/tcp/10.96.0.2:80"));
  const s1 = simulate(sim, full, d1);
  assert.deepEqual(reconcile(d1, s1.observed, { features: MODIFY }).ops, []);
});

Deno.test("endpoint that changed (provider address): referencing LBs deleted first, endpoint replaced, LBs recreated", () => {
  const c0 = overlayCtx();
  const w = world();
  const { sim } = converged(c0, w.services, w.slices);
  const c1 = overlayCtx({
    network: {
      ...c0.network,
      remoteSubnetRoutes: [
        { prefix: "10.244.2.0/24", providerAddress: "192.168.1.21" }, // node-b moved
        { prefix: "10.244.3.0/24", providerAddress: "192.168.1.12" },
      ],
    },
  });
  const d1 = desiredState(view(w.services, w.slices), c1);
  const plan = reconcile(d1, sim.observed, { features: MODIFY });
  assertOrdered(plan);
  assert.deepEqual(opList(plan), [
    "deleteLoadBalancer lb/tcp/10.96.0.1:80",
    "deleteLoadBalancer lb/tcp/10.96.0.2:80",
    "deleteLoadBalancer lb/tcp/nodeport:30001",
    "deleteEndpoint ep/remote/10.244.2.7",
    "createEndpoint ep/remote/10.244.2.7",
    "createLoadBalancer lb/tcp/10.96.0.1:80",
    "createLoadBalancer lb/tcp/10.96.0.2:80",
    "createLoadBalancer lb/tcp/nodeport:30001",
  ]);
  const s1 = simulate(sim, plan, d1);
  assert.deepEqual(reconcile(d1, s1.observed, { features: MODIFY }).ops, []);
});

Deno.test("overlay placement from Nodes: a waiting pod is created once placed, replaced when its IP moves to another node", () => {
  const w = world({ bEps: ["10.244.2.7", "10.244.9.9"] });
  const clusterCidrs = ["10.244.0.0/16"];
  const nodes = (
    pa: string,
  ) => [{ nodeName: "node-x", podCidrs: ["10.244.9.0/24"], providerAddress: pa }];
  // Unknown node: the pod waits, nothing is created for it, the SourceVIP stays the source VIP.
  const { desired: d0, sim } = converged(overlayCtx({ clusterCidrs }), w.services, w.slices);
  assert.ok(!sim.observed.endpoints.has("ep/remote/10.244.9.9"));
  assert.equal(d0.loadBalancers.get("lb/tcp/10.96.0.2:80")?.sourceVip, "10.244.1.2");
  // Its Node appears: the endpoint is created, the LB gains it.
  const d1 = desiredState(
    view(w.services, w.slices),
    overlayCtx({ clusterCidrs, nodePlacements: nodes("192.168.1.19") }),
  );
  const p1 = reconcile(d1, sim.observed, { features: MODIFY });
  assertOrdered(p1);
  assert.deepEqual(opList(p1), [
    "createEndpoint ep/remote/10.244.9.9",
    "modifyLoadBalancer lb/tcp/10.96.0.2:80",
  ]);
  const s1 = simulate(sim, p1, d1);
  // The pod CIDR is now another node's (the IP reused there): the endpoint is replaced.
  const d2 = desiredState(
    view(w.services, w.slices),
    overlayCtx({ clusterCidrs, nodePlacements: nodes("192.168.1.29") }),
  );
  const p2 = reconcile(d2, s1.observed, { features: MODIFY });
  assertOrdered(p2);
  assert.deepEqual(opList(p2), [
    "deleteLoadBalancer lb/tcp/10.96.0.2:80",
    "deleteEndpoint ep/remote/10.244.9.9",
    "createEndpoint ep/remote/10.244.9.9",
    "createLoadBalancer lb/tcp/10.96.0.2:80",
  ]);
  const s2 = simulate(s1, p2, d2);
  const pa = s2.observed.endpoints.get("ep/remote/10.244.9.9")?.hns.Policies?.[0]?.Settings;
  assert.deepEqual(pa, { ProviderAddress: "192.168.1.29" });
  assert.deepEqual(reconcile(d2, s2.observed, { features: MODIFY }).ops, []);
});

Deno.test("overlay host MAC: service-VIP and source-VIP endpoints made with a derived MAC are replaced, nothing else", () => {
  const w = world();
  const before = overlayCtx({ hostMac: undefined });
  const { sim } = converged(before, w.services, w.slices);
  assert.equal(
    sim.observed.endpoints.get("ep/sourcevip/10.244.1.2")?.hns.MacAddress,
    "02-11-0a-f4-01-02",
  );
  const after = overlayCtx({ hostMac: "00-15-5d-aa-bb-cc" });
  const d1 = desiredState(view(w.services, w.slices), after);
  const plan = reconcile(d1, sim.observed, { features: MODIFY });
  assertOrdered(plan);
  assert.deepEqual(opList(plan), [
    "deleteEndpoint ep/remote/10.96.0.1",
    "deleteEndpoint ep/remote/10.96.0.2",
    "deleteEndpoint ep/sourcevip/10.244.1.2",
    "createEndpoint ep/remote/10.96.0.1",
    "createEndpoint ep/remote/10.96.0.2",
    "createEndpoint ep/sourcevip/10.244.1.2",
  ]);
  const s1 = simulate(sim, plan, d1);
  for (const key of ["ep/remote/10.96.0.1", "ep/sourcevip/10.244.1.2"]) {
    assert.equal(s1.observed.endpoints.get(key)?.hns.MacAddress, "00-15-5d-aa-bb-cc", key);
  }
  assert.equal(
    s1.observed.endpoints.get("ep/remote/10.244.2.7")?.hns.MacAddress,
    "02-11-0a-f4-02-07",
  );
  assert.deepEqual(reconcile(d1, s1.observed, { features: MODIFY }).ops, []);
  // The same MAC spelled as Windows reports it is no change.
  const upper = overlayCtx({ hostMac: "00:15:5D:AA:BB:CC" });
  assert.deepEqual(
    reconcile(desiredState(view(w.services, w.slices), upper), s1.observed, { features: MODIFY })
      .ops,
    [],
  );
});

Deno.test("foreign objects: never deleted or modified; a foreign LB on a desired key is a conflict; a foreign endpoint is used", () => {
  const c = ctx();
  const w = world();
  const desired = desiredState(view(w.services, w.slices), c);
  const foreignLb = (id: string, vip: string, port: number): HcnLoadBalancer => ({
    ID: id,
    HostComputeEndpoints: ["FOREIGN-EP"],
    FrontendVIPs: [vip],
    PortMappings: [{ Protocol: 6, InternalPort: 1, ExternalPort: port }],
  });
  const observed: ObservedState = {
    ...emptyObserved(),
    foreignLoadBalancers: new Map([
      ["lb/tcp/10.96.0.2:80", {
        key: "lb/tcp/10.96.0.2:80",
        id: "F-1",
        hns: foreignLb("F-1", "10.96.0.2", 80),
      }],
      ["lb/tcp/10.0.0.1:53", {
        key: "lb/tcp/10.0.0.1:53",
        id: "F-2",
        hns: foreignLb("F-2", "10.0.0.1", 53),
      }],
    ]),
    foreignEndpoints: new Map([
      ["ep/remote/10.244.2.7", {
        key: "ep/remote/10.244.2.7",
        id: "F-EP-7",
        hns: { ID: "F-EP-7", IpConfigurations: [{ IpAddress: "10.244.2.7" }], Flags: 1 },
      }],
    ]),
  };
  const plan = reconcile(desired, observed, { features: MODIFY });
  for (const op of plan.ops) {
    assert.ok(!("id" in op) || !String(op.id).startsWith("F-"), `touched foreign ${op.key}`);
  }
  assert.deepEqual(plan.conflicts, [{
    key: "lb/tcp/10.96.0.2:80",
    serviceKey: "default/b",
    foreignId: "F-1",
  }]);
  assert.ok(
    !opList(plan).includes("createEndpoint ep/remote/10.244.2.7"),
    "foreign endpoint reused",
  );
  assert.ok(!opList(plan).includes("createLoadBalancer lb/tcp/10.96.0.2:80"));
  const sim = simulate({ observed, lbs: new Map(), eps: new Map(), writes: 0 }, plan, desired);
  const nodeport = [...sim.lbs.values()].find((l) => l.FrontendVIPs?.length === 0);
  assert.ok(nodeport?.HostComputeEndpoints.includes("F-EP-7"));
});

Deno.test("strays (owned but unparsable or duplicate) are deleted on a full reconcile only", () => {
  const c = ctx();
  const w = world();
  const { desired, sim } = converged(c, w.services, w.slices);
  const observed: ObservedState = {
    ...sim.observed,
    strayLoadBalancers: new Map([["S-LB", {
      key: "stray/S-LB",
      id: "S-LB",
      hns: { ID: "S-LB", HostComputeEndpoints: [], PortMappings: [] },
    }]]),
    strayEndpoints: new Map([["S-EP", { key: "stray/S-EP", id: "S-EP", hns: { ID: "S-EP" } }]]),
  };
  assert.deepEqual(
    reconcile(desired, observed, { features: MODIFY, dirty: new Set(["default/a"]) }).ops,
    [],
  );
  const plan = reconcile(desired, observed, { features: MODIFY });
  assert.deepEqual(plan.ops.map((o) => `${o.op} ${"id" in o ? o.id : ""}`), [
    "deleteLoadBalancer S-LB",
    "deleteEndpoint S-EP",
  ]);
});

/** HNS as a fresh agent would list it: the simulator's objects plus extras. */
function listing(sim: SimHns, extra: { lbs?: HcnLoadBalancer[]; eps?: HcnEndpoint[] } = {}) {
  return {
    lbs: [...sim.lbs.values(), ...(extra.lbs ?? [])],
    eps: [...sim.eps.values(), ...(extra.eps ?? [])],
  };
}

function ownedOf(sim: SimHns): OwnedIds {
  return { loadBalancers: [...sim.lbs.keys()], endpoints: [...sim.eps.keys()] };
}

Deno.test("restart with an unchanged cluster: everything adopted, zero HNS writes", () => {
  for (const c of [ctx(), overlayCtx()]) {
    const w = world();
    const { desired, sim } = converged(c, w.services, w.slices);
    const l = listing(sim);
    const fresh = desiredState(view(w.services, w.slices), c);
    const a = adoptObserved(l.lbs, l.eps, ownedOf(sim), fresh);
    assert.equal(a.adopted.length, sim.lbs.size + sim.eps.size);
    assert.ok(a.adopted.every((x) => !x.wasForeign));
    assert.deepEqual(a.skipped, []);
    assert.deepEqual(reconcile(fresh, a.observed, { features: MODIFY }).ops, []);
    assert.deepEqual(reconcile(desired, a.observed, { features: NO_FEATURES }).ops, []);
    for (const lb of a.observed.loadBalancers.values()) {
      assert.ok(lb.serviceKey, "service recorded");
    }
  }
});

Deno.test("adoption of trusted objects: kept under their recorded key and adopted without examining their content", () => {
  for (const c of [ctx(), overlayCtx()]) {
    const w = world();
    const { sim } = converged(c, w.services, w.slices);
    const l = listing(sim);
    const fresh = desiredState(view(w.services, w.slices), c);
    const full = adoptObserved(l.lbs, l.eps, ownedOf(sim), fresh);
    // What the trusted start read vouches for: every owned ID, with its key.
    const trusted = new Map<string, { key: string }>();
    for (
      const o of [...full.observed.loadBalancers.values(), ...full.observed.endpoints.values()]
    ) {
      trusted.set(o.id.toUpperCase(), { key: o.key });
    }
    assert.equal(trusted.size, sim.lbs.size + sim.eps.size);
    // Same content: the same adoption as the examining one, each kept without an adopt op.
    const same = adoptObserved(l.lbs, l.eps, ownedOf(sim), fresh, { trusted });
    assertKeptAdoption(same, full, trusted);
    assert.equal(same.kept, full.adopted.length);
    // Content that cannot be keyed (an ID alone): trusted, still adopted under its key.
    const bare = <T extends { ID?: string }>(xs: T[]) => xs.map((x) => ({ ID: x.ID }) as T);
    const a = adoptObserved(bare(l.lbs), bare(l.eps), ownedOf(sim), fresh, { trusted });
    assert.deepEqual(a.adopted, []);
    assert.equal(a.kept, full.adopted.length);
    assert.deepEqual([...a.observed.loadBalancers.keys()], [...full.observed.loadBalancers.keys()]);
    assert.deepEqual([...a.observed.endpoints.keys()], [...full.observed.endpoints.keys()]);
    assert.equal(a.observed.strayLoadBalancers?.size ?? 0, 0);
    assert.equal(a.observed.strayEndpoints?.size ?? 0, 0);
    // Untrusted, the same bare objects are strays (not adopted).
    const u = adoptObserved(bare(l.lbs), bare(l.eps), ownedOf(sim), fresh);
    assert.deepEqual(u.adopted, []);
  }
});

Deno.test("adoption without ownership record: equal foreign objects adopted (or conflicts when adoptForeign=false)", () => {
  const c = overlayCtx();
  const w = world();
  const { sim } = converged(c, w.services, w.slices);
  const l = listing(sim);
  const fresh = desiredState(view(w.services, w.slices), c);
  const none: OwnedIds = { loadBalancers: [], endpoints: [] };
  const a = adoptObserved(l.lbs, l.eps, none, fresh);
  assert.ok(a.adopted.length > 0 && a.adopted.every((x) => x.wasForeign));
  assert.deepEqual(reconcile(fresh, a.observed, { features: MODIFY }).ops, []);

  const strict = adoptObserved(l.lbs, l.eps, none, fresh, { adoptForeign: false });
  assert.deepEqual(strict.adopted, []);
  const plan = reconcile(fresh, strict.observed, { features: MODIFY });
  assert.deepEqual(plan.ops, [], "nothing of others is touched, nothing duplicated");
  assert.equal(plan.conflicts.length, fresh.loadBalancers.size);
});

Deno.test("adoption: owned changed → modified, owned undesired → deleted, foreign left alone, broken ones skipped", () => {
  const c = ctx();
  const w = world();
  const { sim } = converged(c, w.services, w.slices);
  const foreign: HcnLoadBalancer = {
    ID: "KP-1",
    HostComputeEndpoints: [],
    FrontendVIPs: ["10.96.9.9"],
    PortMappings: [{ Protocol: 17, InternalPort: 53, ExternalPort: 53 }],
  };
  const broken = { ID: "KP-2", HostComputeEndpoints: [] } as unknown as HcnLoadBalancer;
  const brokenOwned = { ID: "OWN-BROKEN", HostComputeEndpoints: [] } as unknown as HcnLoadBalancer;
  const l = listing(sim, { lbs: [foreign, broken, brokenOwned] });
  // The cluster changed while the agent was down: b is gone, a gained an endpoint.
  const w1 = world({ aEps: ["10.244.2.7", "10.244.1.5", "10.244.2.8"] });
  const fresh = desiredState(view([w1.services[0]], w1.slices), c);
  const owned = ownedOf(sim);
  const a = adoptObserved(l.lbs, l.eps, {
    loadBalancers: [...owned.loadBalancers, "own-broken"],
    endpoints: owned.endpoints,
  }, fresh);
  assert.deepEqual(a.skipped.map((s) => `${s.id} ${s.reason}`), ["KP-2 no PortMappings"]);
  assert.ok(a.observed.strayLoadBalancers?.has("OWN-BROKEN"));
  assert.ok(a.observed.foreignLoadBalancers.has("lb/udp/10.96.9.9:53"));
  const plan = reconcile(fresh, a.observed, { features: MODIFY });
  assertOrdered(plan);
  assert.deepEqual(opList(plan), [
    "deleteLoadBalancer lb/tcp/10.96.0.2:80",
    "deleteLoadBalancer stray/OWN-BROKEN",
    "deleteEndpoint ep/remote/10.244.3.9",
    "createEndpoint ep/remote/10.244.2.8",
    "modifyLoadBalancer lb/tcp/10.96.0.1:80",
    "modifyLoadBalancer lb/tcp/nodeport:30001",
  ]);
  assert.ok(!plan.ops.some((o) => "id" in o && String(o.id).startsWith("KP-")));
});

Deno.test("adoption: two owned endpoints with one IP → the fitting one kept, the other a stray", () => {
  const c = ctx();
  const w = world();
  const { sim } = converged(c, w.services, w.slices);
  const dup: HcnEndpoint = {
    ID: "AAA-DUP",
    IpConfigurations: [{ IpAddress: "10.244.2.7" }],
    MacAddress: "00-00-00-00-00-01",
    Flags: 1,
  };
  const l = listing(sim, { eps: [dup] });
  const owned = ownedOf(sim);
  const fresh = desiredState(view(w.services, w.slices), c);
  const a = adoptObserved(l.lbs, l.eps, {
    loadBalancers: owned.loadBalancers,
    endpoints: [...owned.endpoints, "AAA-DUP"],
  }, fresh);
  assert.ok(a.observed.strayEndpoints?.has("AAA-DUP"));
  assert.notEqual(a.observed.endpoints.get("ep/remote/10.244.2.7")?.id, "AAA-DUP");
  const plan = reconcile(fresh, a.observed, { features: MODIFY });
  assert.deepEqual(plan.ops.map((o) => `${o.op} ${"id" in o ? o.id : ""}`), [
    "deleteEndpoint AAA-DUP",
  ]);
});

Deno.test("adoption of LBs needs their backends: an LB pointing at an endpoint that must be created is changed", () => {
  const c = ctx();
  const w = world();
  const { sim } = converged(c, w.services, w.slices);
  const l = listing(sim);
  const fresh = desiredState(view(w.services, w.slices), c);
  // The endpoints vanished (HNS restarted and lost them), the LBs are listed.
  const a = adoptObserved(l.lbs, [], ownedOf(sim), fresh);
  const plan = reconcile(fresh, a.observed, { features: MODIFY });
  assertOrdered(plan);
  assert.ok(opList(plan).includes("createEndpoint ep/remote/10.244.2.7"));
  assert.ok(opList(plan).includes("modifyLoadBalancer lb/tcp/10.96.0.1:80"));
});

Deno.test("resolvedLoadBalancerPayload: undefined until every backend exists", () => {
  const c = ctx();
  const w = world();
  const desired: DesiredState = desiredState(view(w.services, w.slices), c);
  const lb = desired.loadBalancers.get("lb/tcp/10.96.0.1:80")!;
  assert.equal(resolvedLoadBalancerPayload(lb, desired, emptyObserved()), undefined);
  const { sim } = converged(c, w.services, w.slices);
  const p = resolvedLoadBalancerPayload(lb, desired, sim.observed)!;
  assert.deepEqual(p.FrontendVIPs, ["10.96.0.1"]);
  assert.equal(p.HostComputeEndpoints.length, 2);
  assert.ok(p.HostComputeEndpoints.includes("LOCAL-0001"));
});

/**
 * What adoption with `trusted` must yield: the examining adoption `full`,
 * except that the owned objects trusted and alone on their key are kept
 * without an adopt op (counted in `kept`).
 */
function assertKeptAdoption(
  a: Adoption,
  full: Adoption,
  trusted: ReadonlyMap<string, { key: string }>,
): void {
  assert.deepEqual(a.observed, full.observed);
  assert.deepEqual(a.skipped, full.skipped);
  assert.deepEqual(a.takenOver, full.takenOver);
  const ids = new Set(a.adopted.map((op) => op.id));
  const dropped = full.adopted.filter((op) => !ids.has(op.id));
  for (const op of dropped) {
    assert.ok(!op.wasForeign && trusted.get(op.id.toUpperCase())?.key === op.key, op.key);
  }
  assert.deepEqual(a.adopted, full.adopted.filter((op) => ids.has(op.id)));
  assert.equal(a.kept, dropped.length);
}

/**
 * The adoption `a` comes out the same (as the observed cache holds it) when the
 * trusted objects are handed over in the cache's slim form instead of in the lists.
 */
function assertSameWithSlimTrusted(
  a: Adoption,
  l: { lbs: HcnLoadBalancer[]; eps: HcnEndpoint[] },
  owned: OwnedIds,
  desired: DesiredState,
  opts: { takeOver: boolean; trusted: ReadonlyMap<string, { key: string }> },
): void {
  const keyOf = (x: { ID?: string }) => opts.trusted.get(String(x.ID).toUpperCase())?.key;
  const trustedEndpoints = l.eps.filter((x) => keyOf(x) !== undefined)
    .map((hns) => slimEndpoint({ key: keyOf(hns)!, id: hns.ID!, hns }));
  const trustedLoadBalancers = l.lbs.filter((x) => keyOf(x) !== undefined).map((hns) => {
    const key = keyOf(hns)!;
    return slimLoadBalancer({
      key,
      id: hns.ID!,
      hns,
      serviceKey: desired.loadBalancers.get(key)?.serviceKey,
    });
  });
  const b = adoptObserved(
    l.lbs.filter((x) => keyOf(x) === undefined),
    l.eps.filter((x) => keyOf(x) === undefined),
    owned,
    desired,
    { ...opts, trustedEndpoints, trustedLoadBalancers },
  );
  assert.deepEqual(cacheDump(b.observed), cacheDump(a.observed));
  assert.deepEqual(b.adopted, a.adopted);
  assert.equal(b.kept, a.kept);
  assert.deepEqual(b.skipped, a.skipped);
  assert.deepEqual(b.takenOver, a.takenOver);
}

/** An observed state as the observed cache holds it, as plain data in a stable order. */
function cacheDump(state: ObservedState): unknown {
  const cache = new ObservedCache(state);
  const entries = (m: ReadonlyMap<string, { id: string; hns: unknown }>) =>
    [...m.entries()].sort((x, y) => x[0] < y[0] ? -1 : 1).map(([k, o]) => [
      k,
      o.id,
      (o as { serviceKey?: string }).serviceKey,
      JSON.stringify(o.hns),
    ]);
  return [
    cache.loadBalancers,
    cache.endpoints,
    cache.foreignLoadBalancers,
    cache.foreignEndpoints,
    cache.strayLoadBalancers,
    cache.strayEndpoints,
  ].map(entries);
}

Deno.test("adoption of trusted objects: those alone on their key are kept without an adopt op; ties between duplicates and objects of others are broken as without trust", () => {
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const hex = (n: number) =>
    Array.from({ length: n }, () => "0123456789abcdef"[Math.floor(random() * 16)]).join("");
  // Copies' IDs sort before or after the originals' ("ID-…"): either may win a tie.
  const newId = () => {
    const id = `${random() < 0.5 ? "0" : "z"}${hex(7)}-${hex(4)}-${hex(4)}-${hex(4)}-${hex(12)}`;
    return random() < 0.5 ? id.toUpperCase() : id;
  };
  const paths = { kept: 0, adopted: 0 };
  for (let round = 0; round < 20; round++) {
    for (const c of [ctx(), overlayCtx()]) {
      const w = world();
      const { sim } = converged(c, w.services, w.slices);
      const l = listing(sim);
      const owned = ownedOf(sim);
      const fresh = desiredState(view(w.services, w.slices), c);
      // An endpoint copied as it is (owned or of others): the copy's upper-case ID → its
      // original's. (An LB's equality depends on which endpoint won its backend's key.)
      const sameContent = new Map<string, string>();
      const ownedCopies = new Set<string>();
      // Copies sharing keys: owned duplicates (as they are, or changed) and objects of others.
      const copies = <T extends { ID?: string; MacAddress?: string }>(xs: T[], ids: string[]) => {
        for (const x of [...xs]) {
          const r = random();
          if (r >= 0.45) continue;
          const copy = { ...x, ID: newId() };
          if ("MacAddress" in copy && (r < 0.15 || r >= 0.25)) {
            sameContent.set(copy.ID.toUpperCase(), String(x.ID).toUpperCase());
          }
          if (r < 0.15) {
            ids.push(copy.ID);
            ownedCopies.add(copy.ID.toUpperCase());
          } else if (r < 0.25) {
            ids.push(copy.ID);
            if ("MacAddress" in copy) copy.MacAddress = "02-00-00-00-00-01";
            else Object.assign(copy, { Flags: 99 });
          }
          xs.push(copy); // r ≥ 0.25: of others
        }
      };
      copies(l.eps, owned.endpoints as string[]);
      copies(l.lbs, owned.loadBalancers as string[]);
      for (const takeOver of [false, true]) {
        const full = adoptObserved(l.lbs, l.eps, owned, fresh, { takeOver });
        // What a trusted read vouches for: owned objects holding what is desired.
        const trusted = new Map<string, { key: string }>();
        for (const op of full.adopted) {
          if (!op.wasForeign) trusted.set(op.id.toUpperCase(), { key: op.key });
        }
        // Where an endpoint copied as it is and its original tie, whichever lost holds the
        // winner's content: a trusted read may vouch for it too.
        const won = new Map<string, string>();
        for (const op of full.adopted) won.set(op.id.toUpperCase(), op.key);
        for (const [copy, original] of sameContent) {
          const key = won.get(copy) ?? won.get(original);
          if (key === undefined) continue;
          if (random() < 0.5) trusted.set(original, { key });
          if (ownedCopies.has(copy) && random() < 0.5) trusted.set(copy, { key });
        }
        const a = adoptObserved(l.lbs, l.eps, owned, fresh, { takeOver, trusted });
        assertKeptAdoption(a, full, trusted);
        assertSameWithSlimTrusted(a, l, owned, fresh, { takeOver, trusted });
        paths.kept += a.kept;
        paths.adopted += a.adopted.length;
      }
    }
  }
  assert.ok(paths.kept > 0 && paths.adopted > 0, "both paths taken");
});
