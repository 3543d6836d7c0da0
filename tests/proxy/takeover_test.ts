/**
 * Taking over at start (the move from kube-proxy): which foreign HNS objects
 * adoption takes over, adopts as they are or leaves alone, and what the
 * reconcile that follows makes of them.
 */
import assert from "node:assert/strict";
import type { HcnEndpoint, HcnLoadBalancer } from "../../lib/hns/types.ts";
import { desiredState } from "../../lib/proxy/desired.ts";
import { remoteEndpointMac } from "../../lib/proxy/net.ts";
import { adoptObserved, type AdoptOptions, reconcile } from "../../lib/proxy/reconcile.ts";
import type { DesiredState, NodeContext, OwnedIds } from "../../lib/proxy/model.ts";
import type { EndpointSliceInfo, ServiceInfo } from "../../lib/kube/model.ts";
import {
  ALL_FEATURES as MODIFY,
  ep,
  NET_ID,
  NO_MODIFY_FEATURES as NO_MODIFY,
  opList,
  overlayCtx,
  type SimHns,
  simulate,
  slice,
  svc,
  view,
} from "./core_fixtures.ts";

const NONE: OwnedIds = { loadBalancers: [], endpoints: [] };
/** Provider addresses of the overlay context's routes. */
const NODE_B = "192.168.1.11";
const NODE_C = "192.168.1.12";

/** a: NodePort 10.96.0.1:80 / 30001 on 10.244.2.7 and local 10.244.1.5; b: 10.96.0.2:80 on 10.244.3.9. */
function cluster(): { services: ServiceInfo[]; slices: EndpointSliceInfo[] } {
  const a = svc({
    name: "a",
    clusterIPs: ["10.96.0.1"],
    type: "NodePort",
    ports: [{ name: "http", protocol: "TCP", port: 80, targetPort: 8080, nodePort: 30001 }],
  });
  const b = svc({ name: "b", clusterIPs: ["10.96.0.2"] });
  return {
    services: [a, b],
    slices: [
      slice([ep("10.244.2.7"), ep("10.244.1.5", { nodeName: "node-a" })], {
        name: "a-1",
        serviceName: "a",
      }),
      slice([ep("10.244.3.9", { nodeName: "node-c" })], { name: "b-1", serviceName: "b" }),
    ],
  };
}

function desired(ctx: Partial<NodeContext> = {}): DesiredState {
  const { services, slices } = cluster();
  return desiredState(view(services, slices), overlayCtx(ctx));
}

/** A remote endpoint as kube-proxy creates it (MAC `02-11-…` from the IP unless given). */
function kpRemote(id: string, ip: string, pa: string, mac = remoteEndpointMac(ip)): HcnEndpoint {
  return {
    ID: id,
    HostComputeNetwork: NET_ID,
    IpConfigurations: [{ IpAddress: ip }],
    MacAddress: mac.toUpperCase(),
    Flags: 1,
    Policies: [{ Type: "ProviderAddress", Settings: { ProviderAddress: pa } }],
    SchemaVersion: { Major: 2, Minor: 0 },
  };
}

/** A load balancer as kube-proxy creates it on overlay (SourceVIP = the source VIP). */
function kpLb(
  id: string,
  vip: string | undefined,
  port: number,
  backends: string[],
  extra: Partial<HcnLoadBalancer> = {},
): HcnLoadBalancer {
  return {
    ID: id,
    HostComputeEndpoints: backends,
    SourceVIP: "10.244.1.2",
    FrontendVIPs: vip ? [vip] : [],
    PortMappings: [{
      Protocol: 6,
      InternalPort: 8080,
      ExternalPort: port,
      DistributionType: 0,
      Flags: vip ? 0 : 18,
    }],
    Flags: 0,
    SchemaVersion: { Major: 2, Minor: 0 },
    ...extra,
  };
}

type Fate = "adopted" | "takenOver" | "foreign" | "skipped";

/** What adoption did with the object with this ID. */
function fateOf(a: ReturnType<typeof adoptObserved>, id: string): Fate {
  if (a.takenOver.some((t) => t.id === id)) return "takenOver";
  if (a.adopted.some((x) => x.id === id && x.wasForeign)) return "adopted";
  if (a.skipped.some((s) => s.id === id)) return "skipped";
  const foreign = [
    ...a.observed.foreignLoadBalancers.values(),
    ...a.observed.foreignEndpoints.values(),
  ];
  assert.ok(foreign.some((o) => o.id === id), `${id} is nowhere`);
  return "foreign";
}

// Remote endpoint 10.244.2.7 as desired: provider address node-b.
const GOOD_EP = kpRemote("KP-EP-GOOD", "10.244.2.7", NODE_B);
// Backend IDs of the local pod 10.244.1.5 (the CNI's) in the overlay context.
const LOCAL = "LOCAL-0001";

interface Case {
  name: string;
  lbs: HcnLoadBalancer[];
  eps: HcnEndpoint[];
  /** ID → fate with takeover on. */
  takeOver: Record<string, Fate>;
  /** ID → fate with takeover off (today's behaviour); defaults to `takeOver`'s. */
  off?: Record<string, Fate>;
  /** The node context has no host MAC. */
  hostMacUnknown?: boolean;
}

const CASES: Case[] = [
  {
    name: "LB equal to desired on a claimed key: adopted either way",
    lbs: [kpLb("KP-LB", "10.96.0.1", 80, ["KP-EP-GOOD", LOCAL])],
    eps: [GOOD_EP],
    takeOver: { "KP-LB": "adopted", "KP-EP-GOOD": "adopted" },
  },
  {
    name: "LB on a claimed key with old pods as backends: taken over (a conflict when off)",
    lbs: [kpLb("KP-LB", "10.96.0.1", 80, ["KP-EP-OLD"])],
    eps: [GOOD_EP, kpRemote("KP-EP-OLD", "10.244.2.99", NODE_B)],
    takeOver: { "KP-LB": "takenOver", "KP-EP-GOOD": "adopted", "KP-EP-OLD": "foreign" },
    off: { "KP-LB": "foreign", "KP-EP-GOOD": "adopted", "KP-EP-OLD": "foreign" },
  },
  {
    name: "LB on a claimed key with other flags (DSR): taken over",
    lbs: [kpLb("KP-LB", "10.96.0.2", 80, ["KP-EP-C"], { Flags: 1 })],
    eps: [kpRemote("KP-EP-C", "10.244.3.9", NODE_C)],
    takeOver: { "KP-LB": "takenOver", "KP-EP-C": "adopted" },
    off: { "KP-LB": "foreign", "KP-EP-C": "adopted" },
  },
  {
    name: "NodePort LB on the claimed node port: taken over",
    lbs: [kpLb("KP-NP", undefined, 30001, ["KP-EP-OLD"])],
    eps: [kpRemote("KP-EP-OLD", "10.244.2.99", NODE_B)],
    takeOver: { "KP-NP": "takenOver", "KP-EP-OLD": "foreign" },
    off: { "KP-NP": "foreign", "KP-EP-OLD": "foreign" },
  },
  {
    name: "LB on a key no service claims (another port, a deleted service): never touched",
    lbs: [
      kpLb("KP-OTHER-PORT", "10.96.0.1", 81, ["KP-EP-OLD"]),
      kpLb("KP-GONE", "10.96.0.77", 80, ["KP-EP-OLD"]),
      kpLb("KP-GONE-NP", undefined, 30777, []),
    ],
    eps: [kpRemote("KP-EP-OLD", "10.244.2.99", NODE_B)],
    takeOver: {
      "KP-OTHER-PORT": "foreign",
      "KP-GONE": "foreign",
      "KP-GONE-NP": "foreign",
      "KP-EP-OLD": "foreign",
    },
  },
  {
    name: "LB that cannot be interpreted: skipped, never touched",
    lbs: [{ ID: "KP-BROKEN", HostComputeEndpoints: [] } as unknown as HcnLoadBalancer],
    eps: [],
    takeOver: { "KP-BROKEN": "skipped" },
  },
  {
    name: "pod's remote endpoint with a stale provider address: taken over (used as is when off)",
    lbs: [],
    eps: [kpRemote("KP-EP-MOVED", "10.244.2.7", "192.168.1.99")],
    takeOver: { "KP-EP-MOVED": "takenOver" },
    off: { "KP-EP-MOVED": "foreign" },
  },
  {
    name: "pod's remote endpoint with another MAC: taken over",
    lbs: [],
    eps: [kpRemote("KP-EP-MAC", "10.244.2.7", NODE_B, "00-15-5d-00-00-07")],
    takeOver: { "KP-EP-MAC": "takenOver" },
    off: { "KP-EP-MAC": "foreign" },
  },
  {
    name: "stale remote endpoint that an LB staying foreign references: left alone (HNS keeps it)",
    lbs: [kpLb("KP-GONE", "10.96.0.77", 80, ["KP-EP-MOVED"])],
    eps: [kpRemote("KP-EP-MOVED", "10.244.2.7", "192.168.1.99")],
    takeOver: { "KP-GONE": "foreign", "KP-EP-MOVED": "foreign" },
  },
  {
    name: "stale remote endpoint referenced only by a claimed LB: both taken over",
    lbs: [kpLb("KP-LB", "10.96.0.1", 80, ["KP-EP-MOVED", LOCAL])],
    eps: [kpRemote("KP-EP-MOVED", "10.244.2.7", "192.168.1.99")],
    takeOver: { "KP-LB": "takenOver", "KP-EP-MOVED": "takenOver" },
    // Today's behaviour: the LB looks equal through the stale endpoint it uses.
    off: { "KP-LB": "adopted", "KP-EP-MOVED": "foreign" },
  },
  {
    name: "remote endpoint at an IP nothing wants: never touched",
    lbs: [],
    eps: [kpRemote("KP-EP-OLD", "10.244.2.99", "192.168.1.99")],
    takeOver: { "KP-EP-OLD": "foreign" },
  },
  {
    name: "cluster IP's remote endpoint with the host's MAC: adopted as it is",
    lbs: [],
    eps: [kpRemote("KP-SVC-VIP", "10.96.0.1", "192.168.1.10", "00-15-5d-aa-bb-cc")],
    takeOver: { "KP-SVC-VIP": "adopted" },
  },
  {
    name: "cluster IP's remote endpoint with another NIC's MAC: taken over (used when off)",
    lbs: [],
    eps: [kpRemote("KP-SVC-VIP", "10.96.0.1", "192.168.1.10", "00-15-5d-99-99-99")],
    takeOver: { "KP-SVC-VIP": "takenOver" },
    off: { "KP-SVC-VIP": "foreign" },
  },
  {
    name: "cluster IP's remote endpoint, host MAC unknown: used as is (its MAC cannot be wrong)",
    hostMacUnknown: true,
    lbs: [],
    eps: [kpRemote("KP-SVC-VIP", "10.96.0.1", "192.168.1.10", "00-15-5d-99-99-99")],
    takeOver: { "KP-SVC-VIP": "foreign" },
  },
  {
    name: "cluster IP's remote endpoint, host MAC unknown, another provider address: taken over",
    hostMacUnknown: true,
    lbs: [],
    eps: [kpRemote("KP-SVC-VIP", "10.96.0.1", "192.168.1.99", "00-15-5d-99-99-99")],
    takeOver: { "KP-SVC-VIP": "takenOver" },
    off: { "KP-SVC-VIP": "foreign" },
  },
  {
    name: "source-VIP endpoint of others: used, never taken",
    lbs: [],
    eps: [{
      ID: "KP-SRC-VIP",
      HostComputeNetwork: NET_ID,
      IpConfigurations: [{ IpAddress: "10.244.1.2" }],
      MacAddress: "00-15-5d-99-99-99",
    }],
    takeOver: { "KP-SRC-VIP": "foreign" },
  },
];

for (const c of CASES) {
  Deno.test(`takeover decision: ${c.name}`, () => {
    const want = desired(c.hostMacUnknown ? { hostMac: undefined } : {});
    for (
      const [opts, expected] of [
        [{ takeOver: true }, c.takeOver],
        [{ takeOver: false }, c.off ?? c.takeOver],
      ] as Array<[AdoptOptions, Record<string, Fate>]>
    ) {
      const a = adoptObserved(c.lbs, c.eps, NONE, want, {
        ...opts,
        hostMacKnown: !c.hostMacUnknown,
      });
      const got = Object.fromEntries(Object.keys(expected).map((id) => [id, fateOf(a, id)]));
      assert.deepEqual(got, expected, `takeOver=${opts.takeOver}`);
      // Whatever is taken over is also adopted (recorded as owned by apply).
      for (const t of a.takenOver) {
        assert.ok(a.adopted.some((x) => x.id === t.id && x.wasForeign), `${t.id} adopted`);
      }
      // The plan never touches an object that stayed foreign.
      const plan = reconcile(want, a.observed, { features: MODIFY });
      const kept = new Set(
        Object.entries(expected).filter(([, f]) => f === "foreign" || f === "skipped").map((
          [id],
        ) => id),
      );
      for (const op of plan.ops) {
        assert.ok(!("id" in op) || !kept.has(op.id), `${op.op} of foreign ${op.key}`);
      }
    }
  });
}

Deno.test("takeover reasons name what differs", () => {
  const a = adoptObserved(
    [kpLb("KP-LB", "10.96.0.2", 80, ["KP-EP-C"], { Flags: 1 })],
    [kpRemote("KP-EP-C", "10.244.3.9", NODE_C), kpRemote("KP-EP-7", "10.244.2.7", "192.168.1.99")],
    NONE,
    desired(),
    { takeOver: true },
  );
  assert.deepEqual(
    a.takenOver.map((t) => `${t.kind} ${t.key} ${t.serviceKey ?? "-"}: ${t.reason}`),
    [
      "endpoint ep/remote/10.244.2.7 -: provider address 192.168.1.99, want 192.168.1.11",
      "loadBalancer lb/tcp/10.96.0.2:80 default/b: flags 1, want 0",
    ],
  );
});

/** kube-proxy's leftovers for an older cluster: a's pod 10.244.2.7 then lived on a node at .99. */
function leftovers(): { lbs: HcnLoadBalancer[]; eps: HcnEndpoint[] } {
  return {
    eps: [
      kpRemote("KP-EP-7", "10.244.2.7", "192.168.1.99"), // node-b's subnet moved to a new node
      kpRemote("KP-EP-OLD", "10.244.3.50", NODE_C), // b's old pod, gone
      kpRemote("KP-EP-GONE", "10.244.3.60", NODE_C), // the deleted service's pod
    ],
    lbs: [
      kpLb("KP-A-CIP", "10.96.0.1", 80, ["KP-EP-7", LOCAL]),
      kpLb("KP-A-NP", undefined, 30001, ["KP-EP-7", LOCAL]),
      kpLb("KP-B-CIP", "10.96.0.2", 80, ["KP-EP-OLD"]),
      kpLb("KP-GONE", "10.96.0.77", 80, ["KP-EP-GONE"]),
    ],
  };
}

function hnsOf(
  l: { lbs: HcnLoadBalancer[]; eps: HcnEndpoint[] },
  a: ReturnType<typeof adoptObserved>,
): SimHns {
  return {
    observed: a.observed,
    lbs: new Map(l.lbs.map((lb) => [lb.ID!, lb])),
    eps: new Map(l.eps.map((e) => [e.ID!, e])),
    writes: 0,
  };
}

Deno.test("takeover plan: claimed LBs replaced (in place with modify, else delete + create), stale endpoint replaced, the rest untouched; converges", () => {
  for (const features of [MODIFY, NO_MODIFY]) {
    const want = desired();
    const l = leftovers();
    const a = adoptObserved(l.lbs, l.eps, NONE, want, { takeOver: true });
    assert.deepEqual(a.takenOver.map((t) => t.id), ["KP-EP-7", "KP-A-CIP", "KP-B-CIP", "KP-A-NP"]);
    const plan = reconcile(want, a.observed, { features });
    assert.deepEqual(plan.conflicts, []);
    // The endpoint with the stale provider address must go, so the LBs referencing it are
    // recreated around it; b's LB does not reference it and is modified where HNS can.
    const expected = [
      "deleteLoadBalancer lb/tcp/10.96.0.1:80",
      ...(features.modifyLoadBalancer ? [] : ["deleteLoadBalancer lb/tcp/10.96.0.2:80"]),
      "deleteLoadBalancer lb/tcp/nodeport:30001",
      "deleteEndpoint ep/remote/10.244.2.7",
      "createEndpoint ep/remote/10.244.3.9",
      "createEndpoint ep/remote/10.244.2.7",
    ];
    const ops = opList(plan);
    for (const op of expected) assert.ok(ops.includes(op), `${op} in\n${ops.join("\n")}`);
    assert.ok(
      ops.includes(
        features.modifyLoadBalancer
          ? "modifyLoadBalancer lb/tcp/10.96.0.2:80"
          : "createLoadBalancer lb/tcp/10.96.0.2:80",
      ),
    );
    const sim = simulate(hnsOf(l, a), plan, want);
    // Exactly the desired state, and every foreign object outside the claimed keys as it was.
    assert.deepEqual(reconcile(want, sim.observed, { features }).ops, []);
    for (const id of ["KP-GONE", "KP-EP-OLD", "KP-EP-GONE"]) {
      const before = [...l.lbs, ...l.eps].find((o) => o.ID === id);
      assert.deepEqual(sim.lbs.get(id) ?? sim.eps.get(id), before, `${id} untouched`);
    }
    for (const id of ["KP-A-CIP", "KP-A-NP", "KP-EP-7"]) {
      assert.ok(!sim.lbs.has(id) && !sim.eps.has(id), `${id} replaced`);
    }
  }
});

Deno.test("takeover off: the leftovers that differ block their keys (conflicts) and the stale endpoint is used", () => {
  const want = desired();
  const l = leftovers();
  const a = adoptObserved(l.lbs, l.eps, NONE, want, { takeOver: false });
  assert.deepEqual(a.takenOver, []);
  const plan = reconcile(want, a.observed, { features: MODIFY });
  assert.deepEqual(plan.conflicts.map((c) => c.foreignId), ["KP-B-CIP"]);
  // a's LBs look equal through the stale endpoint: adopted, forwarding on its old placement.
  assert.equal(a.observed.endpoints.get("ep/remote/10.244.2.7"), undefined);
  assert.equal(a.observed.foreignEndpoints.get("ep/remote/10.244.2.7")?.id, "KP-EP-7");
  assert.ok(!opList(plan).includes("createEndpoint ep/remote/10.244.2.7"));
});

Deno.test("owned objects are unaffected by takeover: the same adoption with or without it", () => {
  const want = desired();
  const l = leftovers();
  const owned: OwnedIds = { loadBalancers: ["KP-A-CIP"], endpoints: ["KP-EP-7"] };
  const on = adoptObserved(l.lbs, l.eps, owned, want, { takeOver: true });
  const off = adoptObserved(l.lbs, l.eps, owned, want, { takeOver: false });
  assert.deepEqual(
    on.observed.loadBalancers.get("lb/tcp/10.96.0.1:80"),
    off.observed.loadBalancers.get("lb/tcp/10.96.0.1:80"),
  );
  assert.ok(!on.takenOver.some((t) => t.id === "KP-A-CIP" || t.id === "KP-EP-7"));
});
