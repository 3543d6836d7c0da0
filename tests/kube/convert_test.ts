import assert from "node:assert/strict";
import {
  convertEndpointSlice,
  ConvertError,
  convertNode,
  convertService,
} from "../../lib/kube/convert.ts";

function svc(spec: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return { metadata: { name: "web", namespace: "shop", resourceVersion: "42" }, spec, ...extra };
}

Deno.test("convertService: a LoadBalancer service keeps what the proxy reads", () => {
  const info = convertService(svc({
    type: "LoadBalancer",
    clusterIP: "10.96.0.10",
    clusterIPs: ["10.96.0.10", "fd00::10"],
    ipFamilies: ["IPv4", "IPv6"],
    ports: [
      { name: "http", protocol: "TCP", port: 80, targetPort: "web", nodePort: 30080 },
      { name: "dns", protocol: "UDP", port: 53, targetPort: 5353 },
      { name: "plain", port: 8080 },
    ],
    externalIPs: ["192.0.2.10"],
    loadBalancerSourceRanges: ["203.0.113.0/24"],
    externalTrafficPolicy: "Local",
    internalTrafficPolicy: "Local",
    healthCheckNodePort: 32000,
    sessionAffinity: "ClientIP",
    sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } },
    trafficDistribution: "PreferClose",
    selector: { app: "web" },
  }, {
    status: {
      loadBalancer: {
        ingress: [{ ip: "198.51.100.7", ipMode: "Proxy" }, { hostname: "lb.example" }, {
          ip: "198.51.100.8",
        }],
      },
    },
  }));
  assert.deepEqual(info, {
    namespace: "shop",
    name: "web",
    resourceVersion: "42",
    type: "LoadBalancer",
    clusterIPs: ["10.96.0.10", "fd00::10"],
    ipFamilies: ["IPv4", "IPv6"],
    ports: [
      { name: "http", protocol: "TCP", port: 80, targetPort: "web", nodePort: 30080 },
      { name: "dns", protocol: "UDP", port: 53, targetPort: 5353 },
      { name: "plain", protocol: "TCP", port: 8080, targetPort: 8080 },
    ],
    externalIPs: ["192.0.2.10"],
    ingress: [{ ip: "198.51.100.7", ipMode: "Proxy" }, { ip: "198.51.100.8" }],
    loadBalancerSourceRanges: ["203.0.113.0/24"],
    externalTrafficPolicy: "Local",
    internalTrafficPolicy: "Local",
    sessionAffinity: "ClientIP",
    sessionAffinityTimeoutSeconds: 600,
    healthCheckNodePort: 32000,
    trafficDistribution: "PreferClose",
    preserveDestination: false,
  });
});

Deno.test("convertService: defaults, single clusterIP, preserve-destination annotation", () => {
  const info = convertService({
    metadata: { name: "a", namespace: "n", annotations: { "preserve-destination": "true" } },
    spec: {
      clusterIP: "10.0.0.1",
      ports: [{ port: 443, targetPort: "8443" }],
      sessionAffinity: "ClientIP",
    },
  })!;
  assert.equal(info.type, "ClusterIP");
  assert.deepEqual(info.clusterIPs, ["10.0.0.1"]);
  assert.deepEqual(info.ipFamilies, ["IPv4"]);
  assert.deepEqual(info.ports, [{ name: "", protocol: "TCP", port: 443, targetPort: 8443 }]);
  assert.equal(info.externalTrafficPolicy, "Cluster");
  assert.equal(info.sessionAffinityTimeoutSeconds, 10800);
  assert.equal(info.preserveDestination, true);
});

Deno.test("convertService: headless and ExternalName services are not for the proxy", () => {
  assert.equal(convertService(svc({ clusterIP: "None", clusterIPs: ["None"] })), null);
  assert.equal(convertService(svc({ type: "ExternalName", externalName: "example.com" })), null);
  assert.equal(convertService(svc({ type: "ClusterIP" })), null, "no IP allocated yet");
});

function rejects(fn: () => unknown, field: string, object = "shop/web") {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ConvertError, String(err));
    assert.equal(err.field, field);
    assert.equal(err.key, object);
    assert.ok(err.message.includes(object) && err.message.includes(field), err.message);
    return true;
  });
}

Deno.test("convertService: malformed fields are named with the object", () => {
  const base = { clusterIP: "10.0.0.1", ports: [{ port: 80 }] };
  rejects(
    () =>
      convertService(svc({ ...base, ports: [{ name: "a", port: 80 }, { name: "b", port: 0 }] })),
    "spec.ports[1].port",
  );
  rejects(() => convertService(svc({ ...base, ports: [{ port: "80" }] })), "spec.ports[0].port");
  rejects(
    () => convertService(svc({ ...base, ports: [{ port: 80, protocol: "ICMP" }] })),
    "spec.ports[0].protocol",
  );
  rejects(
    () => convertService(svc({ ...base, ports: [{ port: 80, nodePort: 70000 }] })),
    "spec.ports[0].nodePort",
  );
  rejects(
    () => convertService(svc({ ...base, clusterIPs: ["10.0.0.1", "bogus"] })),
    "spec.clusterIPs[1]",
  );
  rejects(
    () => convertService(svc({ ...base, externalIPs: ["300.1.1.1"] })),
    "spec.externalIPs[0]",
  );
  rejects(() => convertService(svc({ ...base, type: "Weird" })), "spec.type");
  rejects(
    () => convertService(svc({ ...base, externalTrafficPolicy: "Nearby" })),
    "spec.externalTrafficPolicy",
  );
  rejects(
    () => convertService(svc({ ...base, loadBalancerSourceRanges: ["10.0.0.0/33"] })),
    "spec.loadBalancerSourceRanges[0]",
  );
  rejects(
    () =>
      convertService(
        svc(base, { status: { loadBalancer: { ingress: [{ ip: "1.2.3.4", ipMode: "X" }] } } }),
      ),
    "status.loadBalancer.ingress[0].ipMode",
  );
  rejects(
    () =>
      convertService(svc({
        ...base,
        sessionAffinity: "ClientIP",
        sessionAffinityConfig: { clientIP: { timeoutSeconds: 0 } },
      })),
    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
  );
  rejects(
    () => convertService(svc({ ...base, ports: [{ port: 80 }, { port: 81 }] })),
    "spec.ports[1].name",
  );
  rejects(() => convertService({ metadata: { name: "web", namespace: "shop" } }), "spec");
  rejects(
    () => convertService({ metadata: { namespace: "shop" }, spec: base }),
    "metadata.name",
    "shop/",
  );
});

function slice(endpoints: unknown[], extra: Record<string, unknown> = {}) {
  return {
    metadata: {
      name: "web-abc",
      namespace: "shop",
      labels: { "kubernetes.io/service-name": "web" },
      annotations: { "endpoints.kubernetes.io/last-change-trigger-time": "2024-05-01T10:00:00Z" },
      resourceVersion: "7",
    },
    addressType: "IPv4",
    ports: [{ name: "http", port: 8080, protocol: "TCP" }, { name: "all", port: null }],
    endpoints,
    ...extra,
  };
}

Deno.test("convertEndpointSlice: conditions with their nil defaults, topology and the trigger time", () => {
  const info = convertEndpointSlice(slice([
    { addresses: ["10.244.1.5"], conditions: { ready: true }, nodeName: "n1", zone: "z1" },
    {
      addresses: ["10.244.2.6"],
      conditions: { ready: false, serving: true, terminating: true },
      hints: { forZones: [{ name: "z2" }] },
    },
    { addresses: ["10.244.2.7"] },
  ]))!;
  assert.equal(info.serviceName, "web");
  assert.equal(info.triggerTimeMs, Date.parse("2024-05-01T10:00:00Z"));
  assert.deepEqual(info.ports, [{ name: "http", port: 8080, protocol: "TCP" }]);
  assert.deepEqual([...info.endpoints], [
    {
      address: "10.244.1.5",
      ready: true,
      serving: true,
      terminating: false,
      nodeName: "n1",
    },
    { address: "10.244.2.6", ready: false, serving: true, terminating: true, hintZones: ["z2"] },
    { address: "10.244.2.7", ready: true, serving: true, terminating: false },
  ]);
});

Deno.test("convertEndpointSlice: an update keeps the previous endpoint list when no endpoint changed", () => {
  const eps = (ready: boolean) => [
    { addresses: ["10.244.1.5"], conditions: { ready }, nodeName: "n1", zone: "z1" },
    { addresses: ["10.244.2.6"], hints: { forZones: [{ name: "z2" }] } },
  ];
  const first = convertEndpointSlice(slice(eps(true)))!;
  const same = convertEndpointSlice(slice(eps(true)), first)!;
  assert.equal(same.endpoints, first.endpoints, "nothing changed: the same list");
  const changed = convertEndpointSlice(slice(eps(false)), first)!;
  assert.notEqual(changed.endpoints, first.endpoints);
  assert.deepEqual(
    [changed.endpoints.ready(0), changed.endpoints.serving(0), changed.endpoints.nodeName(0)],
    [false, false, "n1"],
  );
  assert.equal(changed.endpoints.hintZones(1), first.endpoints.hintZones(1), "hints kept");
  assert.ok(changed.endpoints.sameEndpoint(1, first.endpoints, 1));
  assert.ok(!changed.endpoints.sameEndpoint(0, first.endpoints, 0));
  // Moved: found by address, not position.
  const moved = convertEndpointSlice(slice([eps(true)[1], eps(true)[0]]), first)!;
  assert.ok(moved.endpoints.sameEndpoint(0, first.endpoints, 1));
  assert.ok(moved.endpoints.sameEndpoint(1, first.endpoints, 0));
  assert.equal(convertEndpointSlice(slice([]), first)!.endpoints.length, 0);
  // An endpoint's zone is not read (topology follows the hints): a zone change changes nothing.
  const rezoned = eps(true).map((e) => ({ ...e, zone: "z9" }));
  assert.equal(convertEndpointSlice(slice(rezoned), first)!.endpoints, first.endpoints);
});

Deno.test("convertEndpointSlice: FQDN slices are ignored, malformed ones name the field", () => {
  assert.equal(convertEndpointSlice(slice([], { addressType: "FQDN" })), null);
  rejects(
    () => convertEndpointSlice(slice([{ addresses: ["10.0.0.1"] }, { addresses: ["fd00::1"] }])),
    "endpoints[1].addresses[0]",
    "shop/web-abc",
  );
  rejects(
    () => convertEndpointSlice(slice([{ addresses: [] }])),
    "endpoints[0].addresses",
    "shop/web-abc",
  );
  rejects(
    () => convertEndpointSlice(slice([{ addresses: ["10.0.0.1"], conditions: { ready: "yes" } }])),
    "endpoints[0].conditions.ready",
    "shop/web-abc",
  );
  rejects(
    () => convertEndpointSlice(slice([], { ports: [{ port: 99999 }] })),
    "ports[0].port",
    "shop/web-abc",
  );
  const unlabelled = slice([]);
  unlabelled.metadata.labels = {} as typeof unlabelled.metadata.labels;
  rejects(
    () => convertEndpointSlice(unlabelled),
    "metadata.labels[kubernetes.io/service-name]",
    "shop/web-abc",
  );
});

Deno.test("convertNode: internal IPs with the first of each family first, zone, pod CIDRs", () => {
  const info = convertNode({
    metadata: {
      name: "win-1",
      labels: { "topology.kubernetes.io/zone": "z1" },
      resourceVersion: "3",
    },
    spec: { podCIDRs: ["10.244.3.0/24", "fd00:10:244:3::/64"] },
    status: {
      addresses: [
        { type: "Hostname", address: "win-1" },
        { type: "InternalIP", address: "192.168.1.10" },
        { type: "InternalIP", address: "192.168.1.11" },
        { type: "InternalIP", address: "fd00::10" },
        { type: "ExternalIP", address: "203.0.113.1" },
      ],
    },
  });
  assert.deepEqual(info, {
    name: "win-1",
    internalIPs: ["192.168.1.10", "fd00::10", "192.168.1.11"],
    podCIDRs: ["10.244.3.0/24", "fd00:10:244:3::/64"],
    resourceVersion: "3",
    zone: "z1",
  });
  rejects(
    () => convertNode({ metadata: { name: "win-1" }, spec: { podCIDR: "nope" } }),
    "spec.podCIDR",
    "win-1",
  );
});

Deno.test("convertNode: deletionTimestamp and taints, for node eligibility", () => {
  const info = convertNode({
    metadata: { name: "win-1", resourceVersion: "4", deletionTimestamp: "2025-01-02T03:04:05Z" },
    spec: {
      taints: [
        { key: "ToBeDeletedByClusterAutoscaler", value: "1735787045", effect: "NoSchedule" },
        { key: "os", effect: "NoSchedule" },
      ],
    },
  });
  assert.equal(info.deletionTimestamp, "2025-01-02T03:04:05Z");
  assert.deepEqual(info.taints, [
    { key: "ToBeDeletedByClusterAutoscaler", value: "1735787045", effect: "NoSchedule" },
    { key: "os", effect: "NoSchedule" },
  ]);
  const plain = convertNode({ metadata: { name: "win-1" }, spec: { taints: [] } });
  assert.equal("deletionTimestamp" in plain, false);
  assert.equal("taints" in plain, false);
  rejects(
    () =>
      convertNode({ metadata: { name: "win-1" }, spec: { taints: [{ effect: "NoSchedule" }] } }),
    "spec.taints[0].key",
    "win-1",
  );
});

Deno.test("convert: legacy IP spellings (leading zeros, IPv4-mapped, upper case) become canonical", () => {
  const info = convertService(svc({
    clusterIP: "010.096.000.010",
    clusterIPs: ["010.096.000.010", "FD00:0::10"],
    ports: [{ port: 80 }],
    externalIPs: ["::ffff:192.0.2.10"],
  }))!;
  assert.deepEqual(info.clusterIPs, ["10.96.0.10", "fd00::10"]);
  assert.deepEqual(info.ipFamilies, ["IPv4", "IPv6"]);
  assert.deepEqual(info.externalIPs, ["192.0.2.10"]);
  const s = convertEndpointSlice(slice([{ addresses: ["::ffff:10.244.1.5"] }, {
    addresses: ["010.244.001.006"],
  }]))!;
  assert.deepEqual([...s.endpoints].map((e) => e.address), ["10.244.1.5", "10.244.1.6"]);
  assert.throws(
    () => convertService(svc({ clusterIP: "fe80::1%eth0", ports: [{ port: 80 }] })),
    ConvertError,
    "a zone ID is no service IP",
  );
});

Deno.test("convert: equal port lists are one shared list, lists that differ in any field are not", () => {
  const ports = (list: unknown[]) =>
    convertService(svc({ clusterIP: "10.96.0.1", ports: list }))!.ports;
  const slicePorts = (list: unknown[]) =>
    convertEndpointSlice({
      metadata: {
        name: "web-1",
        namespace: "shop",
        labels: { "kubernetes.io/service-name": "web" },
      },
      addressType: "IPv4",
      ports: list,
      endpoints: [],
    })!.ports;
  const base = [{ name: "http", protocol: "TCP", port: 80, targetPort: 8080 }];
  assert.equal(ports(base), ports(structuredClone(base)), "the same list is shared");
  assert.equal(ports([{ ...base[0], targetPort: "8080" }]), ports(base), "8080 either way");
  const variants: unknown[][] = [
    [{ ...base[0], name: "https" }],
    [{ ...base[0], protocol: "UDP" }],
    [{ ...base[0], port: 81 }],
    [{ ...base[0], targetPort: 8081 }],
    [{ ...base[0], targetPort: "web" }],
    // A name holding what would be the next field's text.
    [{ ...base[0], name: "http TCP 80" }],
    [base[0], base[0]].map((p, i) => ({ ...p, name: `p${i}` })),
  ];
  const seen = new Set([ports(base)]);
  for (const v of variants) {
    const got = ports(v);
    assert.ok(!seen.has(got), `${JSON.stringify(v)} has its own list`);
    seen.add(got);
  }
  // A slice's ports (no target port) never share a service's list.
  const endpointPorts = slicePorts([{ name: "http", protocol: "TCP", port: 80 }]);
  assert.ok(!seen.has(endpointPorts as never));
  assert.deepEqual(endpointPorts, [{ name: "http", protocol: "TCP", port: 80 }]);
  assert.equal(slicePorts([{ name: "http", protocol: "TCP", port: 80 }]), endpointPorts);
  assert.ok(Object.isFrozen(endpointPorts) && Object.isFrozen(endpointPorts[0]));
});
