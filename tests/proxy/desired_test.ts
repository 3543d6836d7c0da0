import assert from "node:assert/strict";
import {
  assembleDesired,
  desiredForService,
  desiredState,
  updateDesired,
} from "../../lib/proxy/desired.ts";
import type { DesiredLoadBalancer, NodeContext, ServiceDesired } from "../../lib/proxy/model.ts";
import type { EndpointSliceInfo, ServiceInfo } from "../../lib/kube/model.ts";
import {
  ALL_FEATURES,
  ctx,
  ep,
  NO_FEATURES,
  overlayCtx,
  port,
  slice,
  svc,
  view,
} from "./core_fixtures.ts";

const lbByKey = (sd: ServiceDesired, key: string): DesiredLoadBalancer => {
  const lb = sd.loadBalancers.find((l) => l.key === key);
  assert.ok(lb, `no LB ${key}; have ${sd.loadBalancers.map((l) => l.key).join(", ")}`);
  return lb;
};
const keys = (sd: ServiceDesired) => sd.loadBalancers.map((l) => l.key);
const reasons = (sd: ServiceDesired) => sd.diagnostics.map((d) => d.reason);

const twoRemote = [slice([ep("10.244.2.7"), ep("10.244.3.9", { nodeName: "node-c" })])];

Deno.test("ClusterIP: one LB per service port with VIP, ports, backends sorted", () => {
  const sd = desiredForService(
    svc({ ports: [port(), port({ name: "metrics", port: 9090, targetPort: 9090 })] }),
    [{
      ...twoRemote[0],
      ports: [{ name: "http", port: 8080, protocol: "TCP" }, {
        name: "metrics",
        port: 9090,
        protocol: "TCP",
      }],
    }],
    ctx(),
  );
  assert.deepEqual(keys(sd), ["lb/tcp/10.96.0.10:80", "lb/tcp/10.96.0.10:9090"]);
  const lb = lbByKey(sd, "lb/tcp/10.96.0.10:80");
  assert.equal(lb.kind, "clusterIP");
  assert.equal(lb.vip, "10.96.0.10");
  assert.equal(lb.protocol, 6);
  assert.equal(lb.externalPort, 80);
  assert.equal(lb.internalPort, 8080);
  assert.equal(lb.flags, 0);
  assert.equal(lb.portMappingFlags, 0);
  assert.equal(lb.distributionType, 0);
  assert.equal(lb.sourceVip, undefined, "l2bridge: no SourceVIP");
  assert.deepEqual(lb.backends, ["ep/remote/10.244.2.7", "ep/remote/10.244.3.9"]);
  assert.equal(lb.serviceKey, "default/web");
  assert.equal(lb.portName, "http");
  assert.equal(sd.remoteEndpoints.length, 2, "one remote endpoint per IP, shared by both ports");
  const r = sd.remoteEndpoints[0];
  assert.equal(r.mac, "02-11-0a-f4-02-07");
  assert.equal(r.providerAddress, undefined, "l2bridge: no provider address");
  assert.equal(r.remote, true);
  assert.equal(r.role, "remote");
  assert.deepEqual(sd.diagnostics, []);
});

Deno.test("LB kinds: NodePort (no VIP, flags 18), external IPs (16), ingress (16)", () => {
  const sd = desiredForService(
    svc({
      type: "LoadBalancer",
      ports: [port({ nodePort: 30080 })],
      externalIPs: ["1.2.3.4"],
      ingress: [{ ip: "5.6.7.8" }],
    }),
    twoRemote,
    ctx(),
  );
  assert.deepEqual(keys(sd), [
    "lb/tcp/1.2.3.4:80",
    "lb/tcp/10.96.0.10:80",
    "lb/tcp/5.6.7.8:80",
    "lb/tcp/nodeport:30080",
  ]);
  const np = lbByKey(sd, "lb/tcp/nodeport:30080");
  assert.equal(np.kind, "nodePort");
  assert.equal(np.vip, undefined);
  assert.equal(np.externalPort, 30080);
  assert.equal(np.internalPort, 8080);
  assert.equal(np.portMappingFlags, 18);
  assert.equal(lbByKey(sd, "lb/tcp/1.2.3.4:80").portMappingFlags, 16);
  assert.equal(lbByKey(sd, "lb/tcp/1.2.3.4:80").kind, "externalIP");
  assert.equal(lbByKey(sd, "lb/tcp/5.6.7.8:80").portMappingFlags, 16);
  assert.equal(lbByKey(sd, "lb/tcp/5.6.7.8:80").kind, "ingress");
  for (const lb of sd.loadBalancers) {
    assert.equal(lb.flags, 0, `${lb.key}: no DSR with ETP Cluster`);
  }
});

Deno.test("ingress: preserve-destination gives flags 28 + DSR; needs DSR support; ipMode Proxy skipped", () => {
  const base = svc({
    type: "LoadBalancer",
    ports: [port({ nodePort: 30080 })],
    ingress: [{ ip: "5.6.7.8" }, { ip: "5.6.7.9", ipMode: "Proxy" }],
    preserveDestination: true,
  });
  const withLocal = [slice([ep("10.244.1.5", { nodeName: "node-a" }), ep("10.244.2.7")])];
  const sd = desiredForService(base, withLocal, ctx());
  const ing = lbByKey(sd, "lb/tcp/5.6.7.8:80");
  assert.equal(ing.portMappingFlags, 28);
  assert.equal(ing.flags, 1);
  assert.ok(!keys(sd).includes("lb/tcp/5.6.7.9:80"), "ipMode Proxy not programmed");
  const proxyDiag = sd.diagnostics.find((d) => d.reason === "IngressIpModeProxy");
  assert.ok(proxyDiag);
  assert.equal(proxyDiag.field, "status.loadBalancer.ingress[1].ipMode");
  assert.match(proxyDiag.message, /default\/web/);
  // preserve-destination: NodePort and ingress use local endpoints only (kube-proxy).
  assert.deepEqual(ing.backends, ["ep/local/10.244.1.5"]);
  assert.deepEqual(lbByKey(sd, "lb/tcp/nodeport:30080").backends, ["ep/local/10.244.1.5"]);
  assert.equal(lbByKey(sd, "lb/tcp/nodeport:30080").portMappingFlags, 18);
  assert.equal(lbByKey(sd, "lb/tcp/10.96.0.10:80").backends.length, 2, "ClusterIP keeps all");

  const noDsr = desiredForService(
    base,
    twoRemote,
    ctx({ features: { ...ALL_FEATURES, dsr: false } }),
  );
  const ing2 = lbByKey(noDsr, "lb/tcp/5.6.7.8:80");
  assert.equal(ing2.portMappingFlags, 16);
  assert.equal(ing2.flags, 0);
  assert.ok(reasons(noDsr).includes("DSRUnsupported"));
});

Deno.test("DSR flag: ClusterIP only with --enable-dsr; NodePort/external/ingress with ETP Local; only when HNS supports DSR", () => {
  const local = [slice([ep("10.244.1.5", { nodeName: "node-a" }), ep("10.244.2.7")])];
  const service = (etp: "Cluster" | "Local") =>
    svc({
      type: "LoadBalancer",
      ports: [port({ nodePort: 30080 })],
      externalIPs: ["1.2.3.4"],
      ingress: [{ ip: "5.6.7.8" }],
      externalTrafficPolicy: etp,
      healthCheckNodePort: etp === "Local" ? 32000 : undefined,
    });
  const table: Array<{
    name: string;
    etp: "Cluster" | "Local";
    enableDSR: boolean;
    dsr: boolean;
    cluster: number;
    external: number;
  }> = [
    { name: "defaults", etp: "Cluster", enableDSR: false, dsr: true, cluster: 0, external: 0 },
    { name: "--enable-dsr", etp: "Cluster", enableDSR: true, dsr: true, cluster: 1, external: 0 },
    {
      name: "--enable-dsr unsupported",
      etp: "Cluster",
      enableDSR: true,
      dsr: false,
      cluster: 0,
      external: 0,
    },
    { name: "ETP Local", etp: "Local", enableDSR: false, dsr: true, cluster: 0, external: 1 },
    {
      name: "ETP Local unsupported",
      etp: "Local",
      enableDSR: false,
      dsr: false,
      cluster: 0,
      external: 0,
    },
  ];
  for (const t of table) {
    const sd = desiredForService(
      service(t.etp),
      local,
      ctx({ enableDSR: t.enableDSR, features: { ...ALL_FEATURES, dsr: t.dsr } }),
    );
    assert.equal(lbByKey(sd, "lb/tcp/10.96.0.10:80").flags, t.cluster, `${t.name}: ClusterIP`);
    for (const k of ["lb/tcp/nodeport:30080", "lb/tcp/1.2.3.4:80", "lb/tcp/5.6.7.8:80"]) {
      assert.equal(lbByKey(sd, k).flags, t.external, `${t.name}: ${k}`);
    }
  }
});

Deno.test("dual-stack: IPv6 LBs with flag 2 and IPv6 endpoints; families never mix; IPv6 needs HNS support", () => {
  const ds = svc({
    type: "NodePort",
    clusterIPs: ["10.96.0.10", "fd00:96::a"],
    ipFamilies: ["IPv4", "IPv6"],
    ports: [port({ nodePort: 30080 })],
    externalIPs: ["1.2.3.4", "2001:db8::1"],
  });
  const slices: EndpointSliceInfo[] = [
    slice([ep("10.244.2.7")]),
    slice([ep("fd00:244:2::7")], { name: "web-v6", addressType: "IPv6" }),
  ];
  const sd = desiredForService(ds, slices, ctx());
  assert.deepEqual(keys(sd), [
    "lb/tcp/1.2.3.4:80",
    "lb/tcp/10.96.0.10:80",
    "lb/tcp/[2001:db8::1]:80",
    "lb/tcp/[fd00:96::a]:80",
    "lb/tcp/nodeport6:30080",
    "lb/tcp/nodeport:30080",
  ]);
  const v6 = lbByKey(sd, "lb/tcp/[fd00:96::a]:80");
  assert.equal(v6.flags, 2);
  assert.equal(v6.family, "IPv6");
  assert.deepEqual(v6.backends, ["ep/remote/fd00:244:2::7"]);
  assert.equal(lbByKey(sd, "lb/tcp/nodeport6:30080").flags, 2);
  assert.deepEqual(lbByKey(sd, "lb/tcp/10.96.0.10:80").backends, ["ep/remote/10.244.2.7"]);
  assert.equal(lbByKey(sd, "lb/tcp/10.96.0.10:80").flags, 0);
  const r6 = sd.remoteEndpoints.find((r) => r.ip === "fd00:244:2::7");
  assert.equal(r6?.family, "IPv6");
  assert.equal(r6?.mac, "02-11-07-00-00-00", "IPv6 MAC: last four bytes reversed, as kube-proxy");

  const noV6 = desiredForService(
    ds,
    slices,
    ctx({ features: { ...ALL_FEATURES, ipv6DualStack: false } }),
  );
  assert.deepEqual(keys(noV6), [
    "lb/tcp/1.2.3.4:80",
    "lb/tcp/10.96.0.10:80",
    "lb/tcp/nodeport:30080",
  ]);
  assert.ok(reasons(noV6).includes("IPv6Unsupported"));
  assert.ok(
    reasons(noV6).includes("IPFamilyMismatch"),
    "IPv6 external IP without an IPv6 cluster IP",
  );

  const v4only = desiredForService(
    svc({ externalIPs: ["2001:db8::1"], ingress: [{ ip: "2001:db8::2" }] }),
    slices,
    ctx(),
  );
  assert.deepEqual(keys(v4only), ["lb/tcp/10.96.0.10:80"]);
  const mismatch = v4only.diagnostics.filter((d) => d.reason === "IPFamilyMismatch").map((d) =>
    d.field
  );
  assert.deepEqual(mismatch, ["spec.externalIPs[0]", "status.loadBalancer.ingress[0].ip"]);
});

Deno.test("session affinity ClientIP: DistributionType 2 when supported, else 0 with a warning", () => {
  const s = svc({ sessionAffinity: "ClientIP", sessionAffinityTimeoutSeconds: 10800 });
  assert.equal(desiredForService(s, twoRemote, ctx()).loadBalancers[0].distributionType, 2);
  const off = desiredForService(s, twoRemote, ctx({ features: NO_FEATURES }));
  assert.equal(off.loadBalancers[0].distributionType, 0);
  assert.deepEqual(reasons(off), ["SessionAffinityUnsupported"]);
  const timeout = desiredForService({ ...s, sessionAffinityTimeoutSeconds: 60 }, twoRemote, ctx());
  assert.deepEqual(reasons(timeout), ["SessionAffinityTimeoutIgnored"]);
});

Deno.test("protocols: UDP is 17; SCTP is skipped with a warning naming the service and field", () => {
  const sd = desiredForService(
    svc({
      ports: [
        port({ name: "dns", protocol: "UDP", port: 53, targetPort: 53 }),
        port({
          name: "s",
          protocol: "SCTP",
          port: 99,
        }),
      ],
    }),
    [slice([ep("10.244.2.7")], {
      ports: [{ name: "dns", port: 53, protocol: "UDP" }, {
        name: "s",
        port: 99,
        protocol: "SCTP",
      }],
    })],
    ctx(),
  );
  assert.deepEqual(keys(sd), ["lb/udp/10.96.0.10:53"]);
  assert.equal(sd.loadBalancers[0].protocol, 17);
  const d = sd.diagnostics.find((x) => x.reason === "SCTPUnsupported");
  assert.ok(d);
  assert.equal(d.level, "warning");
  assert.equal(d.field, "spec.ports[1].protocol");
  assert.equal(d.serviceKey, "default/web");
  assert.match(d.message, /service default\/web: spec\.ports\[1\]\.protocol/);
});

Deno.test("named target port: resolved per endpoint; differing numbers → most common (ties lowest), others out, warning", () => {
  const named = svc({ ports: [port({ targetPort: "web" })] });
  const table = [
    { name: "all agree", ports: [8080, 8080], want: 8080, backends: 2, warn: false },
    { name: "majority", ports: [9090, 8080, 9090], want: 9090, backends: 2, warn: true },
    { name: "tie → lowest", ports: [9090, 8080], want: 8080, backends: 1, warn: true },
  ];
  for (const t of table) {
    const slices = t.ports.map((p, i) =>
      slice([ep(`10.244.2.${10 + i}`)], { name: `web-${i}`, portNumber: p })
    );
    const sd = desiredForService(named, slices, ctx());
    const lb = sd.loadBalancers[0];
    assert.equal(lb.internalPort, t.want, t.name);
    assert.equal(lb.backends.length, t.backends, t.name);
    assert.equal(reasons(sd).includes("TargetPortMismatch"), t.warn, t.name);
  }
});

Deno.test("endpoint conditions: ready used; none ready → serving-terminating; not-serving never", () => {
  const table = [
    {
      name: "ready only",
      eps: [ep("10.244.2.1"), ep("10.244.2.2", { ready: false, serving: false })],
      want: ["ep/remote/10.244.2.1"],
    },
    {
      name: "ready wins over terminating",
      eps: [ep("10.244.2.1"), ep("10.244.2.2", { ready: false, terminating: true })],
      want: ["ep/remote/10.244.2.1"],
    },
    {
      name: "all terminating → serving ones",
      eps: [
        ep("10.244.2.1", { ready: false, terminating: true }),
        ep("10.244.2.2", { ready: false, serving: false, terminating: true }),
      ],
      want: ["ep/remote/10.244.2.1"],
    },
    {
      name: "nothing usable → no LB",
      eps: [ep("10.244.2.2", { ready: false, serving: false })],
      want: undefined,
    },
  ];
  for (const t of table) {
    const sd = desiredForService(
      svc({ type: "NodePort", ports: [port({ nodePort: 30080 })] }),
      [slice(t.eps)],
      ctx(),
    );
    if (t.want === undefined) {
      assert.deepEqual(keys(sd), [], `${t.name}: kube-proxy creates no LB without endpoints`);
      assert.deepEqual(sd.remoteEndpoints, [], t.name);
    } else {
      for (const lb of sd.loadBalancers) {
        assert.deepEqual(lb.backends, t.want, `${t.name} ${lb.key}`);
      }
      assert.equal(sd.loadBalancers.length, 2, `${t.name}: terminating fallback for NodePort too`);
    }
  }
});

Deno.test("traffic policies: ITP Local → ClusterIP local only; ETP Local → NodePort/external/ingress local only", () => {
  const eps = [slice([ep("10.244.1.5", { nodeName: "node-a" }), ep("10.244.2.7")])];
  const base = {
    type: "LoadBalancer" as const,
    ports: [port({ nodePort: 30080 })],
    externalIPs: ["1.2.3.4"],
    ingress: [{ ip: "5.6.7.8" }],
  };
  const all = ["ep/local/10.244.1.5", "ep/remote/10.244.2.7"];
  const mine = ["ep/local/10.244.1.5"];
  const table = [
    { name: "Cluster/Cluster", itp: "Cluster", etp: "Cluster", cluster: all, external: all },
    { name: "ITP Local", itp: "Local", etp: "Cluster", cluster: mine, external: all },
    { name: "ETP Local", itp: "Cluster", etp: "Local", cluster: all, external: mine },
    { name: "both Local", itp: "Local", etp: "Local", cluster: mine, external: mine },
  ] as const;
  for (const t of table) {
    const sd = desiredForService(
      svc({ ...base, internalTrafficPolicy: t.itp, externalTrafficPolicy: t.etp }),
      eps,
      ctx(),
    );
    assert.deepEqual(lbByKey(sd, "lb/tcp/10.96.0.10:80").backends, t.cluster, t.name);
    for (const k of ["lb/tcp/nodeport:30080", "lb/tcp/1.2.3.4:80", "lb/tcp/5.6.7.8:80"]) {
      assert.deepEqual(lbByKey(sd, k).backends, t.external, `${t.name} ${k}`);
    }
  }
  // ETP Local with no local endpoint: no NodePort/external/ingress LB, ClusterIP stays.
  const none = desiredForService(
    svc({ ...base, externalTrafficPolicy: "Local" }),
    [slice([ep("10.244.2.7")])],
    ctx(),
  );
  assert.deepEqual(keys(none), ["lb/tcp/10.96.0.10:80"]);
});

Deno.test("no local endpoints: Local policies without a local endpoint are reported per port and family", () => {
  const noLocal = (service: Partial<ServiceInfo>, slices: EndpointSliceInfo[]) =>
    desiredForService(svc(service), slices, ctx()).noLocalEndpoints ?? [];
  const remoteOnly = [slice([ep("10.244.2.7")])];
  const withLocal = [slice([ep("10.244.2.7"), ep("10.244.1.5", { nodeName: "node-a" })])];
  const nodePortLocal: Partial<ServiceInfo> = {
    type: "NodePort",
    externalTrafficPolicy: "Local",
    ports: [port({ nodePort: 30080 })],
  };
  assert.deepEqual(noLocal({ internalTrafficPolicy: "Local" }, remoteOnly), [
    { trafficPolicy: "internal", family: "IPv4" },
  ]);
  assert.deepEqual(noLocal(nodePortLocal, remoteOnly), [
    { trafficPolicy: "external", family: "IPv4" },
  ]);
  assert.deepEqual(noLocal({ ...nodePortLocal, internalTrafficPolicy: "Local" }, remoteOnly), [
    { trafficPolicy: "internal", family: "IPv4" },
    { trafficPolicy: "external", family: "IPv4" },
  ]);
  assert.deepEqual(noLocal({ internalTrafficPolicy: "Local" }, withLocal), [], "has a local one");
  assert.deepEqual(noLocal(nodePortLocal, withLocal), []);
  assert.deepEqual(noLocal({ internalTrafficPolicy: "Local" }, []), [], "no endpoints at all");
  assert.deepEqual(noLocal({}, remoteOnly), [], "Cluster policies");
  // ETP Local without NodePort, external or ingress IPs: not externally reachable.
  assert.deepEqual(noLocal({ externalTrafficPolicy: "Local" }, remoteOnly), []);
  assert.deepEqual(
    noLocal({ externalTrafficPolicy: "Local", externalIPs: ["192.0.2.10"] }, remoteOnly),
    [{ trafficPolicy: "external", family: "IPv4" }],
  );
  // A local endpoint that is only serving-and-terminating still counts as local.
  assert.deepEqual(
    noLocal({ internalTrafficPolicy: "Local" }, [slice([
      ep("10.244.2.7"),
      ep("10.244.1.5", { nodeName: "node-a", ready: false, serving: true, terminating: true }),
    ])]),
    [],
  );
  // Per port and per family.
  const dual = desiredForService(
    svc({
      clusterIPs: ["10.96.0.10", "fd00:96::10"],
      ipFamilies: ["IPv4", "IPv6"],
      internalTrafficPolicy: "Local",
      ports: [port(), port({ name: "metrics", port: 9090, targetPort: 9090 })],
    }),
    [
      {
        ...slice([ep("10.244.2.7")]),
        ports: [
          { name: "http", port: 8080, protocol: "TCP" },
          { name: "metrics", port: 9090, protocol: "TCP" },
        ],
      },
      slice([ep("fd00:244:2::7")], { name: "web-v6", addressType: "IPv6" }),
    ],
    ctx(),
  );
  assert.deepEqual(dual.noLocalEndpoints, [
    { trafficPolicy: "internal", family: "IPv4" },
    { trafficPolicy: "internal", family: "IPv6" },
    { trafficPolicy: "internal", family: "IPv4" },
  ]);
});

Deno.test("topology: all hinted → this zone; any unhinted → all; no match → all; local policies ignore hints", () => {
  const z = (ip: string, zones?: string[]) => ep(ip, { hintZones: zones });
  const table = [
    {
      name: "all hinted",
      eps: [z("10.244.2.1", ["zone-a"]), z("10.244.2.2", ["zone-b"])],
      want: ["ep/remote/10.244.2.1"],
    },
    {
      name: "one unhinted",
      eps: [z("10.244.2.1", ["zone-a"]), z("10.244.2.2")],
      want: ["ep/remote/10.244.2.1", "ep/remote/10.244.2.2"],
    },
    {
      name: "none for this zone",
      eps: [z("10.244.2.1", ["zone-c"]), z("10.244.2.2", ["zone-b"])],
      want: ["ep/remote/10.244.2.1", "ep/remote/10.244.2.2"],
    },
  ];
  for (const t of table) {
    const sd = desiredForService(
      svc({ trafficDistribution: "PreferClose" }),
      [slice(t.eps)],
      ctx(),
    );
    assert.deepEqual(sd.loadBalancers[0].backends, t.want, t.name);
  }
  const noZone = desiredForService(svc(), [slice(table[0].eps)], ctx({ zone: undefined }));
  assert.equal(noZone.loadBalancers[0].backends.length, 2, "node without zone uses all");
});

Deno.test("local endpoints: by nodeName or by IP in HNS; local but missing in HNS → warning, left out", () => {
  const sd = desiredForService(
    svc(),
    [slice([
      ep("10.244.1.5", { nodeName: "node-a" }),
      ep("10.244.1.6", { nodeName: undefined }), // no nodeName, but HNS has it on this node
      ep("10.244.1.99", { nodeName: "node-a" }), // this node, but not in HNS
    ])],
    ctx(),
  );
  const lb = sd.loadBalancers[0];
  assert.deepEqual(lb.backends, ["ep/local/10.244.1.5", "ep/local/10.244.1.6"]);
  assert.deepEqual(sd.existingEndpoints, [
    { key: "ep/local/10.244.1.5", id: "LOCAL-0001" },
    { key: "ep/local/10.244.1.6", id: "LOCAL-0002" },
  ]);
  assert.deepEqual(sd.remoteEndpoints, [], "local endpoints are never created");
  const d = sd.diagnostics.find((x) => x.reason === "LocalEndpointNotFound");
  assert.ok(d);
  assert.match(d.message, /10\.244\.1\.99/);
  assert.equal(d.endpointIp, "10.244.1.99", "the missing IP, for the syncer's lookup");
});

Deno.test("overlay: provider address by RemoteSubnetRoute, node IPs, fallback; SourceVIP choice; service-VIP endpoint", () => {
  const c = overlayCtx({
    nodePlacements: [{ nodeName: "node-d", podCidrs: [], providerAddress: "192.168.1.14" }],
  });
  const oneLb = (address: string, nodeName?: string) => {
    const sd = desiredForService(svc(), [slice([ep(address, { nodeName })])], c);
    return { sd, lb: sd.loadBalancers[0], r: sd.remoteEndpoints.find((x) => x.ip === address) };
  };

  const routed = oneLb("10.244.3.9", "node-c");
  assert.equal(routed.r?.providerAddress, "192.168.1.12");
  assert.equal(routed.lb.sourceVip, "10.244.1.2", "pod behind a route → the configured source VIP");
  assert.equal(routed.r?.networkId, c.network.id);

  const byNode = oneLb("10.244.4.4", "node-d");
  assert.equal(byNode.r?.providerAddress, "192.168.1.14", "no route: the pod's node IP");
  assert.equal(byNode.lb.sourceVip, "10.244.1.2");

  const publicIp = oneLb("203.0.113.5", undefined);
  assert.equal(publicIp.r?.providerAddress, "192.168.1.10", "unknown: this node's IP (kube-proxy)");
  assert.equal(publicIp.lb.sourceVip, "192.168.1.10", "public endpoint → node IP as SourceVIP");

  const nodeIp = oneLb("192.168.1.11", "node-b");
  assert.equal(nodeIp.r?.providerAddress, "192.168.1.11");
  assert.equal(nodeIp.lb.sourceVip, "192.168.1.10", "node-IP endpoint → node IP as SourceVIP");

  const sv = routed.sd.remoteEndpoints.find((x) => x.role === "serviceVip");
  assert.deepEqual(sv, {
    key: "ep/remote/10.96.0.10",
    ip: "10.96.0.10",
    remote: true,
    family: "IPv4",
    mac: "00-15-5d-aa-bb-cc",
    networkId: c.network.id,
    role: "serviceVip",
    providerAddress: "192.168.1.10",
  });

  // Longest prefix wins.
  const nested = desiredForService(
    svc(),
    [slice([ep("10.244.3.130")])],
    overlayCtx({
      network: {
        ...c.network,
        remoteSubnetRoutes: [
          { prefix: "10.244.3.128/25", providerAddress: "192.168.1.13" },
          { prefix: "10.244.0.0/16", providerAddress: "192.168.1.99" },
        ],
      },
    }),
  );
  assert.equal(
    nested.remoteEndpoints.find((x) => x.role === "remote")?.providerAddress,
    "192.168.1.13",
  );
});

Deno.test("overlay placement: pods of unknown nodes in the pod ranges wait; Node pod CIDRs place them before routes appear", () => {
  const pods = ["10.244.2.7", "10.244.9.9", "203.0.113.5"];
  const one = (c: NodeContext, ips = pods, nodeName?: string) => {
    const sd = desiredForService(svc(), [slice(ips.map((ip) => ep(ip, { nodeName })))], c);
    const pa = Object.fromEntries(sd.remoteEndpoints.map((e) => [e.ip, e.providerAddress]));
    return { sd, lb: sd.loadBalancers[0], pa };
  };
  const clusterCidrs = ["10.244.0.0/16", "fd00:244::/32"];

  // Without the cluster's pod ranges: as kube-proxy, an unplaced IP is public.
  const legacy = one(overlayCtx());
  assert.equal(legacy.pa["10.244.9.9"], "192.168.1.10");
  assert.equal(legacy.lb.sourceVip, "192.168.1.10");

  // With them: 10.244.9.9 waits (not this node's IP, no SourceVIP flip because of it),
  // 203.0.113.5 outside them is still public.
  const waiting = one(overlayCtx({ clusterCidrs }), ["10.244.2.7", "10.244.9.9"]);
  assert.deepEqual(waiting.lb.backends, ["ep/remote/10.244.2.7"]);
  assert.deepEqual(Object.keys(waiting.pa).sort(), ["10.244.2.7", "10.96.0.10"]);
  assert.equal(waiting.lb.sourceVip, "10.244.1.2", "the waiting pod does not flip the SourceVIP");
  const d = waiting.sd.diagnostics.find((x) => x.reason === "PlacementUnknown");
  assert.equal(d?.endpointIp, "10.244.9.9");
  assert.equal(d?.level, "warning");
  assert.match(d!.message, /default\/web: endpoint 10\.244\.9\.9: .*pod ranges.*left out/);
  assert.equal(one(overlayCtx({ clusterCidrs })).pa["203.0.113.5"], "192.168.1.10");
  // Only waiting pods: no LB yet.
  assert.deepEqual(one(overlayCtx({ clusterCidrs }), ["10.244.9.9"]).sd.loadBalancers, []);

  // A Node's pod CIDR places the pod before the CNI's route exists; routes still win.
  const nodePlacements = [
    { nodeName: "node-x", podCidrs: ["10.244.9.0/24"], providerAddress: "192.168.1.19" },
    { nodeName: "node-y", podCidrs: ["10.244.2.0/24"], providerAddress: "192.168.1.99" },
    { nodeName: "node-z", podCidrs: ["10.244.9.128/25"], providerAddress: "192.168.1.29" },
  ];
  const placed = one(overlayCtx({ clusterCidrs, nodePlacements }), [
    "10.244.2.7",
    "10.244.9.9",
    "10.244.9.200",
  ]);
  assert.equal(placed.pa["10.244.9.9"], "192.168.1.19");
  assert.equal(placed.pa["10.244.9.200"], "192.168.1.29", "longest pod CIDR");
  assert.equal(placed.pa["10.244.2.7"], "192.168.1.11", "the route wins over a Node's pod CIDR");
  assert.equal(placed.lb.sourceVip, "10.244.1.2");
  // By the endpoint's node name when no pod CIDR covers the IP; a node's IP is a node IP.
  const named = [{ nodeName: "node-x", podCidrs: [], providerAddress: "192.168.1.19" }];
  const byName = one(overlayCtx({ clusterCidrs, nodePlacements: named }), ["10.244.9.9"], "node-x");
  assert.equal(byName.pa["10.244.9.9"], "192.168.1.19");
  const hostNet = one(overlayCtx({ nodePlacements: named }), ["192.168.1.19"], "node-x");
  assert.equal(hostNet.pa["192.168.1.19"], "192.168.1.19");
  assert.equal(hostNet.lb.sourceVip, "192.168.1.10", "a node-IP backend → node IP as SourceVIP");

  // Never this node's IP for a pod in the pod ranges, even when a stale Node or route says so.
  const stale = [{ nodeName: "old", podCidrs: ["10.244.9.0/24"], providerAddress: "192.168.1.10" }];
  const notMine = one(overlayCtx({ clusterCidrs, nodePlacements: stale }), ["10.244.9.9"]);
  assert.deepEqual(notMine.sd.loadBalancers, []);
  assert.ok(notMine.sd.diagnostics.some((x) => x.reason === "PlacementUnknown"));

  // IPv6 prefixes are indexed as well (an IPv6 node).
  const v6 = overlayCtx({
    nodeIPs: ["fd00:1::10"],
    sourceVips: ["fd00:244:1::2"],
    clusterCidrs,
    network: {
      ...overlayCtx().network,
      remoteSubnetRoutes: [{ prefix: "fd00:244:2::/64", providerAddress: "fd00:1::11" }],
    },
    nodePlacements: [{
      nodeName: "n",
      podCidrs: ["fd00:244:3::/64"],
      providerAddress: "fd00:1::12",
    }],
  });
  const sd6 = desiredForService(
    svc({ clusterIPs: ["fd00:96::10"] }),
    [slice(["fd00:244:2::7", "fd00:244:3::7", "fd00:244:9::7"].map((ip) => ep(ip)), {
      addressType: "IPv6",
    })],
    v6,
  );
  const pa6 = Object.fromEntries(sd6.remoteEndpoints.map((e) => [e.ip, e.providerAddress]));
  assert.deepEqual(pa6, {
    "fd00:244:2::7": "fd00:1::11",
    "fd00:244:3::7": "fd00:1::12",
    "fd00:96::10": "fd00:1::10",
  });
});

Deno.test("overlay vs l2bridge: source-VIP endpoint and service-VIP endpoints only on overlay", () => {
  const services = [svc()];
  const slices = [slice([ep("10.244.2.7")])];
  const o = desiredState(view(services, slices), overlayCtx());
  assert.deepEqual([...o.remoteEndpoints.keys()].sort(), [
    "ep/remote/10.244.2.7",
    "ep/remote/10.96.0.10",
    "ep/sourcevip/10.244.1.2",
  ]);
  const sv = o.remoteEndpoints.get("ep/sourcevip/10.244.1.2");
  assert.equal(sv?.remote, false, "the source-VIP endpoint is a host endpoint, not remote");
  assert.equal(sv?.mac, "00-15-5d-aa-bb-cc");
  const l2 = desiredState(view(services, slices), ctx({ sourceVips: ["10.244.1.2"] }));
  assert.deepEqual([...l2.remoteEndpoints.keys()].sort(), ["ep/remote/10.244.2.7"]);
  assert.equal(l2.loadBalancers.get("lb/tcp/10.96.0.10:80")?.sourceVip, undefined);
  // Overlay service without endpoints: no LB, but kube-proxy's service-VIP endpoint still.
  const empty = desiredState(view(services, []), overlayCtx());
  assert.equal(empty.loadBalancers.size, 0);
  assert.ok(empty.remoteEndpoints.has("ep/remote/10.96.0.10"));
});

Deno.test("overlay MAC: the host NIC's for the service-VIP and source-VIP endpoints, derived for pods; derived without one", () => {
  const services = [svc()];
  const slices = [slice([ep("10.244.2.7")])];
  const macs = (c: NodeContext) => {
    const d = desiredState(view(services, slices), c);
    return Object.fromEntries([...d.remoteEndpoints.values()].map((e) => [e.key, e.mac]));
  };
  assert.deepEqual(macs(overlayCtx({ hostMac: "00-15-5d-aa-bb-cc" })), {
    "ep/remote/10.244.2.7": "02-11-0a-f4-02-07",
    "ep/remote/10.96.0.10": "00-15-5d-aa-bb-cc",
    "ep/sourcevip/10.244.1.2": "00-15-5d-aa-bb-cc",
  });
  for (const hostMac of [undefined, ""]) {
    assert.deepEqual(macs(overlayCtx({ hostMac })), {
      "ep/remote/10.244.2.7": "02-11-0a-f4-02-07",
      "ep/remote/10.96.0.10": "02-11-0a-60-00-0a",
      "ep/sourcevip/10.244.1.2": "02-11-0a-f4-01-02",
    });
  }
});

Deno.test("overlay is single-stack: only the node's primary family, the other reported once per service", () => {
  const dualSvc = svc({
    type: "NodePort",
    clusterIPs: ["10.96.0.10", "fd00:96::10"],
    ipFamilies: ["IPv4", "IPv6"],
    ports: [port({ nodePort: 30080 })],
    externalIPs: ["192.0.2.10", "2001:db8::10"],
  });
  const slices = [
    slice([ep("10.244.2.7")]),
    slice([ep("fd00:244:2::7")], { name: "web-v6", addressType: "IPv6" }),
  ];
  const sourceVips = ["10.244.1.2", "fd00:244:1::2"];
  const families = (c: NodeContext) => {
    const d = desiredState(view([dualSvc], slices), c);
    const sd = d.services.get("default/web")!;
    return {
      lbs: [...d.loadBalancers.keys()].sort(),
      endpoints: [...d.remoteEndpoints.keys()].sort(),
      diags: sd.diagnostics.map((x) => `${x.field} ${x.reason}`),
    };
  };
  assert.deepEqual(families(overlayCtx({ sourceVips })), {
    lbs: ["lb/tcp/192.0.2.10:80", "lb/tcp/10.96.0.10:80", "lb/tcp/nodeport:30080"].sort(),
    endpoints: ["ep/remote/10.244.2.7", "ep/remote/10.96.0.10", "ep/sourcevip/10.244.1.2"],
    diags: ["spec.clusterIPs[1] OverlaySingleStack"],
  });
  const v6First = overlayCtx({ sourceVips, nodeIPs: ["fd00:1::10", "192.168.1.10"] });
  const v6 = families(v6First);
  assert.deepEqual(v6.lbs, [
    "lb/tcp/[2001:db8::10]:80",
    "lb/tcp/[fd00:96::10]:80",
    "lb/tcp/nodeport6:30080",
  ]);
  assert.deepEqual(v6.endpoints, [
    "ep/remote/fd00:244:2::7",
    "ep/remote/fd00:96::10",
    "ep/sourcevip/fd00:244:1::2",
  ]);
  assert.deepEqual(v6.diags, ["spec.clusterIPs[0] OverlaySingleStack"]);
  assert.match(
    desiredForService(dualSvc, slices, v6First).diagnostics[0].message,
    /default\/web: spec\.clusterIPs\[0\]: IPv4 cluster IP 10\.96\.0\.10 skipped: overlay networks are single-stack \(IPv6 on this node\)/,
  );
  // A service only of the other family programs nothing, and says why.
  const v6Only = desiredForService(svc({ clusterIPs: ["fd00:96::10"] }), slices, overlayCtx());
  assert.deepEqual(v6Only.loadBalancers, []);
  assert.deepEqual(v6Only.remoteEndpoints, []);
  assert.deepEqual(v6Only.diagnostics.map((x) => x.reason), ["OverlaySingleStack"]);
  // l2bridge stays dual-stack.
  const l2 = families(ctx());
  assert.equal(l2.lbs.length, 6);
  assert.deepEqual(l2.diags, []);
});

Deno.test("health checks: ETP Local server with local ready count; forwardHealthCheckVip LBs per ingress IP", () => {
  const s = svc({
    type: "LoadBalancer",
    ports: [
      port({ nodePort: 30080 }),
      port({ name: "https", port: 443, targetPort: 8443, nodePort: 30443 }),
    ],
    ingress: [{ ip: "5.6.7.8" }],
    externalTrafficPolicy: "Local",
    healthCheckNodePort: 32000,
  });
  const eps = [
    ep("10.244.1.5", { nodeName: "node-a" }),
    ep("10.244.1.6", { nodeName: "node-a", ready: false, terminating: true }),
    ep("10.244.2.7"),
  ];
  const slices = [slice(eps, {
    ports: [{ name: "http", port: 8080, protocol: "TCP" }, {
      name: "https",
      port: 8443,
      protocol: "TCP",
    }],
  })];
  const plain = desiredForService(s, slices, ctx());
  assert.deepEqual(plain.healthCheck, {
    serviceKey: "default/web",
    port: 32000,
    localEndpoints: 1,
  });
  assert.ok(!plain.loadBalancers.some((l) => l.kind === "healthCheck"), "off by default");

  const fwd = desiredForService(
    s,
    slices,
    ctx({ forwardHealthCheckVip: true, rootHnsEndpointId: "ROOT-1" }),
  );
  const hc = fwd.loadBalancers.filter((l) => l.kind === "healthCheck");
  assert.equal(hc.length, 1, "one per ingress IP, not per port");
  assert.equal(hc[0].key, "lb/tcp/5.6.7.8:32000");
  assert.equal(hc[0].internalPort, 32000);
  assert.deepEqual(hc[0].backends, ["ep/host/cbr0"]);
  assert.ok(fwd.existingEndpoints.some((e) => e.key === "ep/host/cbr0" && e.id === "ROOT-1"));

  const cluster = desiredForService(
    svc({ type: "LoadBalancer", ports: [port({ nodePort: 30080 })], ingress: [{ ip: "5.6.7.8" }] }),
    [slice([ep("10.244.2.7")])],
    ctx({ forwardHealthCheckVip: true, rootHnsEndpointId: "ROOT-1" }),
  );
  assert.ok(
    keys(cluster).includes("lb/tcp/5.6.7.8:10256"),
    "healthz port without healthCheckNodePort",
  );
  assert.equal(cluster.healthCheck, undefined, "no health-check server for ETP Cluster");

  const terminating = desiredForService(
    svc({ type: "LoadBalancer", ports: [port({ nodePort: 30080 })], ingress: [{ ip: "5.6.7.8" }] }),
    [slice([ep("10.244.2.7", { ready: false, terminating: true })])],
    ctx({ forwardHealthCheckVip: true, rootHnsEndpointId: "ROOT-1" }),
  );
  assert.ok(keys(terminating).includes("lb/tcp/5.6.7.8:80"));
  assert.ok(!keys(terminating).includes("lb/tcp/5.6.7.8:10256"), "all terminating: no health LB");
  const noRoot = desiredForService(
    svc({ type: "LoadBalancer", ports: [port({ nodePort: 30080 })], ingress: [{ ip: "5.6.7.8" }] }),
    [slice([ep("10.244.2.7")])],
    ctx({ forwardHealthCheckVip: true }),
  );
  assert.ok(!noRoot.loadBalancers.some((l) => l.kind === "healthCheck"), "root endpoint missing");
});

Deno.test("assemble: remote endpoints shared and refcounted; LB key collisions resolved by service key", () => {
  const a = svc({ name: "a", clusterIPs: ["10.96.0.1"], externalIPs: ["1.2.3.4"] });
  const b = svc({ name: "b", clusterIPs: ["10.96.0.2"], externalIPs: ["1.2.3.4"] });
  const shared = ep("10.244.2.7");
  const slices = [
    slice([shared], { name: "a-1", serviceName: "a" }),
    slice([shared, ep("10.244.2.8")], { name: "b-1", serviceName: "b" }),
  ];
  const d = desiredState(view([b, a], slices), ctx());
  assert.deepEqual([...d.loadBalancers.keys()].sort(), [
    "lb/tcp/1.2.3.4:80",
    "lb/tcp/10.96.0.1:80",
    "lb/tcp/10.96.0.2:80",
  ]);
  assert.equal(d.loadBalancers.get("lb/tcp/1.2.3.4:80")?.serviceKey, "default/a");
  assert.equal(d.conflicts.length, 1);
  assert.equal(d.conflicts[0].serviceKey, "default/b");
  assert.equal(d.conflicts[0].reason, "LoadBalancerConflict");
  assert.match(d.conflicts[0].message, /default\/a/);
  assert.deepEqual([...d.remoteEndpoints.keys()].sort(), [
    "ep/remote/10.244.2.7",
    "ep/remote/10.244.2.8",
  ]);
  assert.equal(d.endpointRefs.get("ep/remote/10.244.2.7"), 3, "a's two LBs and b's ClusterIP LB");
  assert.equal(d.endpointRefs.get("ep/remote/10.244.2.8"), 1);
});

Deno.test("deterministic: shuffled slices, endpoints and services give equal output", () => {
  const services = [svc({ name: "a" }), svc({ name: "b", clusterIPs: ["10.96.0.2"] })];
  const eps = ["10.244.2.3", "10.244.2.1", "10.244.3.2", "10.244.1.5"].map((ip) =>
    ep(ip, { nodeName: ip === "10.244.1.5" ? "node-a" : "node-b" })
  );
  const s1 = [
    slice(eps.slice(0, 2), { name: "a-1", serviceName: "a" }),
    slice(eps.slice(2), { name: "a-2", serviceName: "a" }),
    slice(eps, { name: "b-1", serviceName: "b" }),
  ];
  const s2 = [
    slice([...eps.slice(2)].reverse(), { name: "a-2", serviceName: "a" }),
    slice([...eps].reverse(), { name: "b-1", serviceName: "b" }),
    slice([...eps.slice(0, 2)].reverse(), { name: "a-1", serviceName: "a" }),
  ];
  const d1 = desiredState(view(services, s1), overlayCtx());
  const d2 = desiredState(view([...services].reverse(), s2), overlayCtx());
  assert.deepEqual(d1, d2);
  assert.deepEqual(
    d1.loadBalancers.get("lb/tcp/10.96.0.10:80")?.backends,
    ["ep/local/10.244.1.5", "ep/remote/10.244.2.1", "ep/remote/10.244.2.3", "ep/remote/10.244.3.2"],
  );
});

Deno.test("bad input: diagnostics name service and field; other services unaffected", () => {
  const bad = svc({
    name: "bad",
    clusterIPs: ["10.96.0.300"],
  });
  const partlyBad = svc({
    name: "partly",
    clusterIPs: ["10.96.0.11"],
    ports: [port({ port: 70000 }), port({ name: "ok", port: 81 })],
    externalIPs: ["not-an-ip"],
    loadBalancerSourceRanges: ["10.0.0.0/8"],
  });
  const good = svc({ name: "good", clusterIPs: ["10.96.0.12"] });
  const broken = { ...svc({ name: "broken" }), ports: null } as unknown as ServiceInfo;
  const slices = [
    slice([ep("10.244.2.7"), ep("bogus")], {
      name: "p",
      serviceName: "partly",
      ports: [{ name: "ok", port: 8081, protocol: "TCP" }],
    }),
    slice([ep("10.244.2.7")], { name: "g", serviceName: "good" }),
  ];
  const d = desiredState(view([bad, partlyBad, good, broken], slices), ctx());
  const byService = (k: string) => d.services.get(k)!;
  const badDiag = byService("default/bad").diagnostics[0];
  assert.equal(badDiag.level, "error");
  assert.equal(badDiag.field, "spec.clusterIPs[0]");
  assert.match(badDiag.message, /default\/bad/);
  const partly = byService("default/partly");
  assert.deepEqual(partly.loadBalancers.map((l) => l.key), ["lb/tcp/10.96.0.11:81"]);
  assert.deepEqual(
    partly.diagnostics.map((x) => `${x.level} ${x.field} ${x.reason}`).sort(),
    [
      "error spec.ports[0].port InvalidPort",
      "warning EndpointSlice default/p endpoints[1].addresses[0] InvalidEndpointAddress",
      "warning spec.externalIPs[0] InvalidExternalIP",
      "warning spec.loadBalancerSourceRanges SourceRangesUnsupported",
    ],
  );
  assert.ok(d.loadBalancers.has("lb/tcp/10.96.0.12:80"), "good service programmed");
  assert.ok(d.services.has("default/broken"));
});

Deno.test("ExternalName and headless services program nothing", () => {
  assert.deepEqual(
    desiredForService(svc({ type: "ExternalName", clusterIPs: [] }), twoRemote, ctx())
      .loadBalancers,
    [],
  );
  const headless = desiredForService(svc({ clusterIPs: ["None"] }), twoRemote, ctx());
  assert.deepEqual(headless.loadBalancers, []);
  assert.deepEqual(headless.diagnostics, []);
});

Deno.test("duplicate IP across slices counted once, ready entry preferred", () => {
  const sd = desiredForService(
    svc(),
    [
      slice([ep("10.244.2.7", { ready: false, serving: false })], { name: "a" }),
      slice([ep("10.244.2.7")], { name: "b" }),
    ],
    ctx(),
  );
  assert.deepEqual(sd.loadBalancers[0].backends, ["ep/remote/10.244.2.7"]);
});

Deno.test("updateDesired: replaces one service's contribution, removal frees its endpoints", () => {
  const c = ctx();
  const a = desiredForService(svc({ name: "a", clusterIPs: ["10.96.0.1"] }), [
    slice([ep("10.244.2.7")], { serviceName: "a" }),
  ], c);
  const b = desiredForService(svc({ name: "b", clusterIPs: ["10.96.0.2"] }), [
    slice([ep("10.244.2.8")], { serviceName: "b" }),
  ], c);
  const d0 = assembleDesired([a, b], c);
  const d1 = updateDesired(d0, new Map([["default/b", undefined]]), c);
  assert.deepEqual([...d1.loadBalancers.keys()].sort(), ["lb/tcp/10.96.0.1:80"]);
  assert.deepEqual([...d1.remoteEndpoints.keys()].sort(), ["ep/remote/10.244.2.7"]);
  const d2 = updateDesired(d1, new Map([["default/b", b]]), c);
  assert.deepEqual(d2, assembleDesired([a, b], c));
  assert.throws(() => updateDesired(d1, new Map(), c), Error, "already updated");
});

Deno.test("a pod's endpoint reads and serializes with every field, its MAC derived from its IP", () => {
  const sd = desiredForService(svc(), [slice([ep("10.244.2.7")])], overlayCtx());
  const pod = sd.remoteEndpoints.find((e) => e.role === "remote")!;
  const want = {
    key: "ep/remote/10.244.2.7",
    ip: "10.244.2.7",
    remote: true,
    family: "IPv4",
    mac: "02-11-0a-f4-02-07",
    networkId: overlayCtx().network.id,
    role: "remote",
    providerAddress: "192.168.1.11",
  };
  for (const [field, value] of Object.entries(want)) {
    assert.equal(pod[field as keyof typeof pod], value, field);
  }
  assert.deepEqual(JSON.parse(JSON.stringify(pod)), want);
  const l2 = desiredForService(svc(), [slice([ep("10.244.2.7")])], ctx()).remoteEndpoints[0];
  assert.equal(l2.providerAddress, undefined);
  assert.ok(!("providerAddress" in JSON.parse(JSON.stringify(l2))));
  const v6 = desiredForService(
    svc({ clusterIPs: ["fd00::a"], ipFamilies: ["IPv6"] }),
    [slice([ep("fd00:2::7")], { addressType: "IPv6" })],
    ctx(),
  ).remoteEndpoints[0];
  assert.deepEqual([v6.key, v6.family, v6.mac], [
    "ep/remote/fd00:2::7",
    "IPv6",
    "02-11-07-00-00-00",
  ]);
});

Deno.test("several ports and kinds: one object per pod IP in the service's lists, sorted by key; each LB's backends sorted", () => {
  // Two ports whose endpoints overlap in part, a local one on both, and IPs whose text order is
  // not their numeric order: the second port's LBs find the first port's objects.
  const both = [ep("10.244.10.1"), ep("10.244.9.1"), ep("10.244.1.5", { nodeName: "node-a" })];
  const sd = desiredForService(
    svc({
      type: "NodePort",
      ports: [port({ nodePort: 30080 }), port({ name: "admin", port: 81, targetPort: 9090 })],
    }),
    [
      slice([...both, ep("10.244.2.3")]),
      {
        ...slice([ep("10.244.9.1"), ep("10.244.1.5", { nodeName: "node-a" }), ...both.slice(0, 1)]),
        name: "web-admin",
        ports: [{ name: "admin", port: 9090, protocol: "TCP" }],
      },
    ],
    ctx(),
  );
  assert.deepEqual(sd.diagnostics, []);
  assert.deepEqual(keys(sd), [
    "lb/tcp/10.96.0.10:80",
    "lb/tcp/10.96.0.10:81",
    "lb/tcp/nodeport:30080",
  ]);
  const remote = ["ep/remote/10.244.10.1", "ep/remote/10.244.2.3", "ep/remote/10.244.9.1"];
  assert.deepEqual(sd.remoteEndpoints.map((e) => e.key), remote);
  assert.deepEqual(sd.existingEndpoints, [{ key: "ep/local/10.244.1.5", id: "LOCAL-0001" }]);
  assert.deepEqual(lbByKey(sd, "lb/tcp/10.96.0.10:80").backends, [
    "ep/local/10.244.1.5",
    ...remote,
  ]);
  assert.deepEqual(lbByKey(sd, "lb/tcp/nodeport:30080").backends, [
    "ep/local/10.244.1.5",
    ...remote,
  ]);
  assert.deepEqual(lbByKey(sd, "lb/tcp/10.96.0.10:81").backends, [
    "ep/local/10.244.1.5",
    "ep/remote/10.244.10.1",
    "ep/remote/10.244.9.1",
  ]);
  // The join counts one reference per LB that names a pod.
  const d = assembleDesired([sd], ctx());
  assert.deepEqual(
    [...d.endpointRefs].sort(),
    [["ep/remote/10.244.10.1", 3], ["ep/remote/10.244.2.3", 2], ["ep/remote/10.244.9.1", 3]],
  );
  assert.deepEqual([...d.existingEndpoints], [["ep/local/10.244.1.5", "LOCAL-0001"]]);
  // Dropping one LB keeps the local endpoint (still named twice); dropping the service frees all.
  const fewer = updateDesired(
    d,
    new Map([["default/web", { ...sd, loadBalancers: sd.loadBalancers.slice(1) }]]),
    ctx(),
  );
  assert.deepEqual([...fewer.existingEndpoints], [["ep/local/10.244.1.5", "LOCAL-0001"]]);
  assert.equal(fewer.endpointRefs.get("ep/remote/10.244.2.3"), 1);
  const none = updateDesired(fewer, new Map([["default/web", undefined]]), ctx());
  assert.equal(none.existingEndpoints.size, 0);
  assert.equal(none.remoteEndpoints.size, 0);
});
