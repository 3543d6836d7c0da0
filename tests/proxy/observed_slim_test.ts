import * as assert from "node:assert/strict";
import type { HcnEndpoint, HcnLoadBalancer } from "../../lib/hns/types.ts";
import type { DesiredEndpoint } from "../../lib/proxy/model.ts";
import { idKey, ObservedCache, slimEndpoint, slimLoadBalancer } from "../../lib/proxy/observed.ts";
import { OwnershipRecord } from "../../lib/proxy/ownership.ts";
import { endpointSatisfies, sameLoadBalancer } from "../../lib/proxy/payload.ts";

const NET = "A1B2C3D4-0000-0000-0000-000000000001";
const want = (role: DesiredEndpoint["role"], pa?: string): DesiredEndpoint => ({
  key: "ep/remote/10.244.2.7",
  ip: "10.244.2.7",
  remote: role !== "sourceVip",
  family: "IPv4",
  mac: "02-11-0a-f4-02-07",
  providerAddress: pa,
  networkId: NET,
  role,
});

const endpoints: HcnEndpoint[] = [
  { ID: "X" },
  {
    ID: "X",
    HostComputeNetwork: NET.toLowerCase(),
    IpConfigurations: [{ IpAddress: "10.244.2.7", PrefixLength: 24 } as never],
    MacAddress: "02-11-0A-F4-02-07",
    Flags: 1,
    Policies: [
      { Type: "L4Proxy", Settings: {} },
      { Type: "ProviderAddress", Settings: { ProviderAddress: "192.168.1.12", Extra: 1 } },
    ],
    SchemaVersion: { Major: 2, Minor: 0 },
  },
  { ID: "X", IpConfigurations: [], Flags: 1, MacAddress: "02-11-0a-f4-02-07", Policies: [] },
  { ID: "X", IpConfigurations: [{ IpAddress: "10.244.2.7" }], Flags: 0, HostComputeNetwork: NET },
  {
    ID: "X",
    IpConfigurations: [{ IpAddress: "10.244.2.7" }],
    Flags: 1,
    MacAddress: "02-11-0a-f4-02-07",
    Policies: [{ Type: "providerAddress" }],
  },
  { ID: "X", IpConfigurations: "junk" as never, Policies: "junk" as never },
  { ID: "X", IpConfigurations: ["10.244.2.7" as never], Flags: 1 },
];

Deno.test("slim observed endpoints compare as the HNS objects they came from", () => {
  const wants = [
    want("remote"),
    want("remote", "192.168.1.12"),
    want("serviceVip"),
    want("sourceVip"),
  ];
  for (const [i, hns] of endpoints.entries()) {
    const slim = slimEndpoint({ key: "ep/remote/10.244.2.7", id: "X", hns });
    assert.equal(slim.key, "ep/remote/10.244.2.7");
    assert.equal(slim.id, "X");
    assert.deepEqual(slim.hns, slim.hns, "the same on every read");
    for (const w of wants) {
      assert.equal(endpointSatisfies(slim.hns, w), endpointSatisfies(hns, w), `endpoint ${i}`);
    }
  }
});

Deno.test("slim observed endpoints give back their MAC as HNS spelled it, derived or not", () => {
  const ip = "10.244.2.7";
  for (
    const mac of [
      "02-11-0a-f4-02-07", // the one hnsproxy derives from the IP: not kept, made again
      "02-11-0A-F4-02-07",
      "02-11-0a-f4-02-08",
      "00-15-5d-00-00-01",
      undefined,
    ]
  ) {
    const hns: HcnEndpoint = { IpConfigurations: [{ IpAddress: ip }], MacAddress: mac };
    const slim = slimEndpoint({ key: `ep/remote/${ip}`, id: "X", hns });
    assert.equal(slim.hns.MacAddress, mac);
    assert.equal(slimEndpoint(slim, "Y").hns.MacAddress, mac, "a copy of a slim one too");
  }
  // The MAC of another IP is not the derived one of this IP.
  const other = slimEndpoint({
    key: "ep/remote/10.244.2.8",
    id: "Z",
    hns: { IpConfigurations: [{ IpAddress: "10.244.2.8" }], MacAddress: "02-11-0a-f4-02-07" },
  });
  assert.equal(other.hns.MacAddress, "02-11-0a-f4-02-07");
});

Deno.test("observed cache: keeps a slim endpoint no cache stores as it is, and copies one another cache stores", () => {
  const key = "ep/remote/10.244.2.7";
  const lbKey = "lb/tcp/10.96.0.10:80";
  const slim = slimEndpoint({ key, id: "EP-1", hns: endpoints[1] });
  const a = new ObservedCache();
  a.setEndpoint(slim);
  assert.equal(a.endpoints.get(key), slim, "no copy made");
  const lb = { key: lbKey, id: "LB-1", hns: { HostComputeEndpoints: ["EP-1"] } as HcnLoadBalancer };
  a.setLoadBalancer(lb);
  assert.deepEqual(a.loadBalancersReferencing("EP-1"), [lbKey]);

  // Another cache given a's endpoint (or the same slim one) keeps its own copy: the
  // references of one are not the other's.
  const b = new ObservedCache();
  b.setEndpoint(a.endpoints.get(key)!);
  b.setEndpoint(slim);
  assert.notEqual(b.endpoints.get(key), slim);
  assert.equal(b.endpoints.get(key)?.hns.MacAddress, slim.hns.MacAddress);
  assert.deepEqual(b.loadBalancersReferencing("EP-1"), []);
  b.setLoadBalancer({ ...lb, key: "lb/udp/10.96.0.10:53" });
  assert.deepEqual(a.loadBalancersReferencing("EP-1"), [lbKey]);
  a.removeLoadBalancerById("LB-1");
  assert.ok(!a.endpointReferenced("EP-1"));
  assert.deepEqual(b.loadBalancersReferencing("EP-1"), ["lb/udp/10.96.0.10:53"]);

  // Through replace (a start's state) too, under the shared ID string.
  const fresh = slimEndpoint({ key, id: "ep-1", hns: endpoints[1] });
  const c = new ObservedCache(undefined, (id) => id.toUpperCase());
  c.replace({
    loadBalancers: new Map(),
    endpoints: new Map([[key, fresh]]),
    foreignLoadBalancers: new Map(),
    foreignEndpoints: new Map(),
  });
  assert.equal(c.endpoints.get(key), fresh);
  assert.equal(fresh.id, "EP-1");
  assert.equal(c.endpointById("ep-1"), fresh);
});

Deno.test("slim observed load balancers compare as the HNS objects they came from", () => {
  const full: HcnLoadBalancer = {
    ID: "LB-1",
    HostComputeEndpoints: ["EP-1", "ep-2"],
    FrontendVIPs: ["10.96.0.10"],
    PortMappings: [{ Protocol: 6, InternalPort: 80, ExternalPort: 80, DistributionType: 0 }],
    Flags: 0,
    SourceVIP: "10.244.0.2",
    SchemaVersion: { Major: 2, Minor: 0 },
  };
  const slim = slimLoadBalancer({ key: "lb/tcp/10.96.0.10:80", id: "LB-1", hns: full });
  assert.equal(slim.hns.SchemaVersion, undefined);
  assert.ok(sameLoadBalancer(slim.hns, full));
  assert.ok(!sameLoadBalancer(slim.hns, { ...full, SourceVIP: undefined }));
});

Deno.test("observed cache: IDs in any case find the same object; listings compare in the index form (idKey)", () => {
  const cache = new ObservedCache();
  cache.setEndpoint({ key: "ep/remote/10.244.2.7", id: "ab-ep", hns: endpoints[1] });
  cache.setLoadBalancer({
    key: "lb/tcp/10.96.0.10:80",
    id: "AB-LB",
    serviceKey: "default/a",
    hns: { HostComputeEndpoints: ["AB-EP"], PortMappings: [] } as HcnLoadBalancer,
  });
  assert.equal(cache.endpointById("AB-EP")?.id, "ab-ep");
  assert.ok(cache.endpointReferenced("ab-ep"));
  assert.deepEqual(cache.loadBalancersReferencing("Ab-Ep"), ["lb/tcp/10.96.0.10:80"]);
  assert.deepEqual(cache.endpointsMissingFrom(new Set([idKey("ab-ep")])), []);
  assert.deepEqual(cache.loadBalancersMissingFrom(new Set([idKey("ab-lb")])), []);
  assert.deepEqual(cache.loadBalancersMissingFrom(new Set()).map((x) => x.id), ["AB-LB"]);
  assert.deepEqual([...cache.ids()].sort(), ["AB-EP", "AB-LB"]);
});

Deno.test("ownership record keeps IDs as given and finds them in any case", () => {
  const record = OwnershipRecord.inMemory([
    { kind: "Endpoint", id: "ab-ep", key: "ep/remote/10.244.2.7" },
    { kind: "LoadBalancer", id: "AB-LB", key: "lb/tcp/10.96.0.10:80" },
  ]);
  assert.ok(record.owns("AB-EP") && record.owns("ab-lb"));
  assert.deepEqual(record.get("AB-EP"), {
    kind: "Endpoint",
    id: "ab-ep",
    key: "ep/remote/10.244.2.7",
  });
  assert.equal(record.count("Endpoint"), 1);
  // Re-adding under another kind moves it.
  record.add({ kind: "LoadBalancer", id: "AB-EP", key: "lb/udp/10.96.0.10:53" });
  assert.deepEqual(record.count("Endpoint"), 0);
  assert.deepEqual(record.list().map((o) => [o.kind, o.id]), [
    ["LoadBalancer", "AB-LB"],
    ["LoadBalancer", "AB-EP"],
  ]);
  record.remove("ab-ep");
  assert.equal(record.size, 1);
});

Deno.test("observed cache: an LB updated from HNS's answer holds what the answer says, shared or not", () => {
  const cache = new ObservedCache();
  cache.setEndpoint({ key: "ep/remote/10.244.2.7", id: "AB-EP", hns: endpoints[1] });
  cache.setEndpoint({ key: "ep/remote/10.244.2.8", id: "cd-ep", hns: endpoints[1] });
  const key = "lb/tcp/10.96.0.10:80";
  const first: HcnLoadBalancer = {
    HostComputeEndpoints: ["AB-EP"],
    FrontendVIPs: ["10.96.0.10"],
    PortMappings: [{ Protocol: 6, InternalPort: 80, ExternalPort: 80, DistributionType: 0 }],
    SourceVIP: "10.244.0.2",
    Flags: 0,
  };
  cache.setLoadBalancer({ key, id: "AB-LB", serviceKey: "default/a", hns: first });
  // A modify's answer, parsed afresh: the same strings in new copies, and then changes.
  const answers: HcnLoadBalancer[] = [
    JSON.parse(JSON.stringify({ ...first, HostComputeEndpoints: ["AB-EP", "CD-EP", "ef-ep"] })),
    JSON.parse(JSON.stringify(first)),
    { ...first, FrontendVIPs: ["10.96.0.11"], SourceVIP: "10.244.0.3" },
    { ...first, PortMappings: [{ ...first.PortMappings![0], InternalPort: 8080 }] },
    { ...first, PortMappings: [{ ...first.PortMappings![0], Flags: 1 }] },
    { ...first, PortMappings: [] },
    { HostComputeEndpoints: [] },
  ];
  for (const hns of answers) {
    cache.setLoadBalancer({ key, id: "AB-LB", serviceKey: "default/a", hns });
    const held = cache.loadBalancers.get(key)!.hns;
    assert.deepEqual(held, slimLoadBalancer({ key, id: "AB-LB", hns }).hns);
    assert.deepEqual(
      cache.loadBalancersReferencing("ab-ep").length,
      held.HostComputeEndpoints!.length ? 1 : 0,
    );
  }
  assert.deepEqual(cache.loadBalancersReferencing("cd-ep"), []);
});

Deno.test("slim observed load balancers hold exactly the compared fields, flat or not", () => {
  const base: HcnLoadBalancer = {
    ID: "LB-1",
    HostComputeEndpoints: ["EP-1", "ep-2"],
    FrontendVIPs: ["10.96.0.10"],
    PortMappings: [{
      Protocol: 6,
      InternalPort: 80,
      ExternalPort: 80,
      DistributionType: 0,
      Flags: undefined,
    }],
    Flags: 0,
    SourceVIP: "10.244.0.2",
    SchemaVersion: { Major: 2, Minor: 0 },
    State: 1,
  };
  const pm = base.PortMappings[0];
  const variants: HcnLoadBalancer[] = [
    base,
    { ...base, FrontendVIPs: [] },
    { ...base, FrontendVIPs: undefined },
    { ...base, FrontendVIPs: ["10.96.0.10", "fd00::10"] },
    { ...base, FrontendVIPs: [7 as unknown as string] },
    { ...base, PortMappings: [] },
    { ...base, PortMappings: undefined as unknown as [] },
    { ...base, PortMappings: [pm, pm] },
    { ...base, PortMappings: [{ Protocol: 17, InternalPort: 53, ExternalPort: 53 }] },
    { ...base, PortMappings: [{ InternalPort: 53, Protocol: 17, ExternalPort: 53 }] },
    { ...base, PortMappings: [{ ...pm, Extra: 1 } as typeof pm] },
    { ...base, PortMappings: [{ ...pm, Protocol: "6" as unknown as number }] },
    { ...base, Flags: undefined, SourceVIP: undefined },
    { ...base, Flags: "1" as unknown as number },
    { ...base, HostComputeEndpoints: undefined as unknown as [] },
  ];
  for (const [i, hns] of variants.entries()) {
    const expected: Record<string, unknown> = {};
    for (
      const field of ["HostComputeEndpoints", "FrontendVIPs", "PortMappings", "Flags", "SourceVIP"]
    ) {
      if (hns[field] !== undefined) expected[field] = hns[field];
    }
    for (const serviceKey of [undefined, "default/a"]) {
      const slim = slimLoadBalancer({ key: "lb/tcp/10.96.0.10:80", id: "LB-1", hns, serviceKey });
      assert.deepEqual(slim.hns, expected, `variant ${i}`);
      assert.equal(JSON.stringify(slim.hns), JSON.stringify(expected), `variant ${i}: field order`);
      assert.equal(slim.serviceKey, serviceKey);
      assert.equal(slim.key, "lb/tcp/10.96.0.10:80");
      assert.equal(slim.id, "LB-1");
    }
  }
});

Deno.test("observed cache: IDs taken through the record's strings keep the spelling they were given", () => {
  const record = OwnershipRecord.inMemory([
    { kind: "Endpoint", id: "AB-EP", key: "ep/remote/10.244.2.7" },
    { kind: "LoadBalancer", id: "ab-lb", key: "lb/tcp/10.96.0.10:80" },
  ]);
  assert.equal(record.idString("AB-EP"), "AB-EP");
  assert.equal(record.idString("ab-ep"), "ab-ep", "another spelling is kept as given");
  assert.equal(record.idString("AB-LB"), "AB-LB");
  assert.equal(record.idString("CD-EP"), "CD-EP");
  const cache = new ObservedCache(undefined, (id) => record.idString(id));
  cache.setEndpoint({ key: "ep/remote/10.244.2.7", id: "ab-ep", hns: endpoints[1] });
  cache.setLoadBalancer({
    key: "lb/tcp/10.96.0.10:80",
    id: "AB-LB",
    hns: { HostComputeEndpoints: ["AB-EP"], PortMappings: [] } as HcnLoadBalancer,
  });
  assert.equal(cache.endpointById("AB-EP")?.id, "ab-ep");
  assert.equal(cache.loadBalancerById("ab-lb")?.id, "AB-LB");
  assert.deepEqual(cache.loadBalancers.get("lb/tcp/10.96.0.10:80")?.hns.HostComputeEndpoints, [
    "AB-EP",
  ]);
});

Deno.test("slim observed endpoints that share a network, flags and provider address each keep their own", () => {
  const pa = (
    address: unknown,
  ) => [{ Type: "ProviderAddress", Settings: { ProviderAddress: address } }];
  const variants: HcnEndpoint[] = [];
  for (const network of [NET, NET.toLowerCase(), undefined]) {
    for (const flags of [1, 0, -0, undefined]) {
      for (
        const policies of [
          pa("192.168.1.12"),
          pa("192.168.1.13"),
          pa(undefined),
          pa(null),
          pa(7),
          pa({ a: 1 }),
          [{ Type: "ProviderAddress", Settings: null }],
          [{ Type: "ProviderAddress" }],
          [{ Type: "providerAddress" }],
          [],
          undefined,
        ] as HcnEndpoint["Policies"][]
      ) {
        variants.push({
          HostComputeNetwork: network,
          IpConfigurations: [{ IpAddress: `10.244.2.${variants.length % 250}` }],
          MacAddress: "02-11-0A-F4-02-07",
          Flags: flags,
          Policies: policies,
        });
      }
    }
  }
  // All at once, as the cache holds them, then each against its own source.
  const slims = variants.map((hns) => slimEndpoint({ key: "ep/remote/x", id: "X", hns }));
  for (const [i, hns] of variants.entries()) {
    const expected: HcnEndpoint = {};
    if (hns.HostComputeNetwork !== undefined) expected.HostComputeNetwork = hns.HostComputeNetwork;
    expected.IpConfigurations = hns.IpConfigurations;
    expected.MacAddress = hns.MacAddress;
    if (hns.Flags !== undefined) expected.Flags = hns.Flags;
    if (hns.Policies !== undefined) {
      expected.Policies = hns.Policies.map((p) => ({
        Type: p.Type,
        Settings: p.Settings === undefined || p.Settings === null
          ? p.Settings
          : { ProviderAddress: p.Settings.ProviderAddress },
      }));
    }
    assert.deepEqual(slims[i].hns, expected, `variant ${i}`);
  }
});

Deno.test("observed cache: a slim (flat) LB is stored as it is, without rebuilding its hns, and references index", () => {
  const cache = new ObservedCache(undefined, (id) => id.toUpperCase());
  cache.setEndpoint({ key: "ep/remote/10.244.2.7", id: "AB-EP", hns: endpoints[1] });
  const key = "lb/tcp/10.96.0.10:80";
  const hns: HcnLoadBalancer = {
    HostComputeEndpoints: ["ab-ep", "AB-EP", "cd-ep"],
    FrontendVIPs: ["10.96.0.10"],
    PortMappings: [{ Protocol: 6, InternalPort: 80, ExternalPort: 80, DistributionType: 0 }],
    SourceVIP: "10.244.0.2",
    Flags: 0,
  };
  for (const serviceKey of ["default/a", "default/b", undefined]) {
    const slim = slimLoadBalancer({ key, id: "ab-lb", serviceKey, hns });
    const expected = slim.hns;
    let reads = 0;
    const get = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(slim), "hns")!.get!;
    Object.defineProperty(slim, "hns", {
      get() {
        reads++;
        return get.call(this);
      },
    });
    cache.setLoadBalancer(slim);
    assert.equal(reads, 0, "a flat LB is not rebuilt to be slimmed again");
    const held = cache.loadBalancers.get(key)!;
    assert.deepEqual(held.hns, expected);
    assert.equal(held.id, "AB-LB", "the shared ID string");
    assert.equal(held.serviceKey, serviceKey);
    assert.deepEqual(cache.loadBalancersReferencing("AB-EP"), [key], "listed once");
    assert.deepEqual(cache.loadBalancersReferencing("cd-ep"), [key]);
    assert.deepEqual(
      cache.loadBalancersOfService("default/a"),
      serviceKey === "default/a" ? [key] : [],
    );
  }
  cache.removeLoadBalancerById("AB-LB");
  assert.deepEqual(cache.loadBalancersReferencing("AB-EP"), []);
  assert.deepEqual(cache.loadBalancersReferencing("CD-EP"), []);
  assert.equal(cache.loadBalancerById("ab-lb"), undefined);
});

Deno.test("slim endpoints that share a profile rebuild their own fields, and only equal values share", () => {
  const base = {
    HostComputeNetwork: NET,
    MacAddress: "02-11-0a-f4-02-07",
    Policies: [{ Type: "ProviderAddress", Settings: { ProviderAddress: "192.168.1.12" } }],
  };
  const variants: HcnEndpoint[] = [
    { ...base, ID: "A", IpConfigurations: [{ IpAddress: "10.244.2.7" }], Flags: 1 },
    { ...base, ID: "B", IpConfigurations: [{ IpAddress: "10.244.2.8" }], Flags: 1 },
    { ...base, ID: "C", IpConfigurations: [{ IpAddress: "10.244.2.9" }], Flags: 0 },
    { ...base, ID: "D", IpConfigurations: [{ IpAddress: "10.244.2.9" }], Flags: -0 },
    { ...base, ID: "E", IpConfigurations: [{ IpAddress: "10.244.2.9" }], Flags: "1" as never },
    { ...base, ID: "F", IpConfigurations: [{ IpAddress: "10.244.2.9" }], Policies: [] },
    {
      ...base,
      ID: "G",
      IpConfigurations: [{ IpAddress: "10.244.2.9" }],
      Policies: [{ Type: "ProviderAddress", Settings: { ProviderAddress: "192.168.1.13" } }],
    },
    {
      ...base,
      ID: "H",
      IpConfigurations: [{ IpAddress: "10.244.2.9" }],
      Policies: [{ Type: "X" }],
    },
    {
      ...base,
      ID: "I",
      IpConfigurations: [{ IpAddress: "10.244.2.9" }],
      Policies: [{ Type: "ProviderAddress", Settings: null as never }],
    },
  ];
  // Each twice, in turn: the second of each pair is made from the profile the first made.
  for (const round of [0, 1]) {
    for (const hns of variants) {
      const slim = slimEndpoint({ key: "ep/remote/x", id: String(hns.ID), hns });
      const { ID: _, ...expected } = hns;
      // Only the ProviderAddress policy is kept.
      if (hns.ID === "H") expected.Policies = [];
      const rebuilt = slim.hns;
      assert.deepEqual(rebuilt, expected, `${hns.ID} round ${round}`);
      assert.ok(Object.is(rebuilt.Flags, hns.Flags), `${hns.ID}: Flags exactly`);
    }
  }
});

Deno.test("slim endpoints of one profile share their rebuilt policies, which cannot be written", () => {
  const hns = (ip: string): HcnEndpoint => ({
    HostComputeNetwork: NET,
    IpConfigurations: [{ IpAddress: ip }],
    MacAddress: "02-11-0a-f4-02-07",
    Flags: 1,
    Policies: [{ Type: "ProviderAddress", Settings: { ProviderAddress: "192.168.1.14" } }],
  });
  const a = slimEndpoint({ key: "ep/remote/10.244.4.1", id: "A", hns: hns("10.244.4.1") });
  const b = slimEndpoint({ key: "ep/remote/10.244.4.2", id: "B", hns: hns("10.244.4.2") });
  assert.equal(a.hns.Policies, b.hns.Policies);
  assert.notEqual(a.hns.IpConfigurations, a.hns.IpConfigurations, "the rest is made per read");
  assert.deepEqual(a.hns.Policies, hns("").Policies);
  assert.throws(() => a.hns.Policies!.push({ Type: "X" }), TypeError);
  assert.throws(() => {
    (a.hns.Policies![0].Settings as { ProviderAddress: string }).ProviderAddress = "x";
  }, TypeError);
});

Deno.test("slim load balancers rebuild exactly the fields they were given, for any values", () => {
  // xorshift32: a deterministic pseudo-random sequence.
  let x = 12345;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
  const pick = <T>(values: readonly T[]): T => values[Math.floor(next() * values.length)];
  const numbers = [
    0,
    1,
    2,
    6,
    7,
    17,
    30,
    31,
    32,
    80,
    254,
    255,
    256,
    30080,
    65535,
    65536,
    -1,
    -0,
    1.5,
    NaN,
    2 ** 40,
  ];
  const field = () => pick<unknown>([...numbers, undefined, "6"]);
  const fields = ["Protocol", "InternalPort", "ExternalPort", "DistributionType", "Flags"];
  for (let i = 0; i < 5000; i++) {
    const given: Record<string, unknown> = {};
    if (next() < 0.9) {
      given.HostComputeEndpoints = ["EP-1", "EP-2"].slice(0, Math.floor(next() * 3));
    }
    if (next() < 0.9) given.FrontendVIPs = pick([[], ["10.96.0.10"], ["10.96.0.10", "10.96.0.11"]]);
    if (next() < 0.5) given.Flags = field();
    if (next() < 0.5) given.SourceVIP = "10.244.0.2";
    if (next() < 0.95) {
      const pms: Record<string, unknown>[] = [];
      for (let n = pick([0, 1, 1, 1, 1, 2]); n > 0; n--) {
        const pm: Record<string, unknown> = {};
        // Mostly in order, now and then out of it or with another field.
        const order = next() < 0.9 ? fields : [...fields].reverse();
        for (const f of order) if (next() < 0.8) pm[f] = field();
        if (next() < 0.02) pm.Other = 1;
        pms.push(pm);
      }
      given.PortMappings = pms;
    }
    const hns = given as HcnLoadBalancer;
    const expected: Record<string, unknown> = {};
    for (
      const f of ["HostComputeEndpoints", "FrontendVIPs", "PortMappings", "Flags", "SourceVIP"]
    ) {
      if (given[f] !== undefined) expected[f] = given[f];
    }
    const slim = slimLoadBalancer({ key: "lb/tcp/10.96.0.10:80", id: "LB-1", hns });
    assert.deepStrictEqual(slim.hns, expected, `load balancer ${i}: ${JSON.stringify(given)}`);
    assert.deepStrictEqual(slim.hns, slim.hns, "the same on every read");
    const cache = new ObservedCache();
    cache.setLoadBalancer(slim);
    assert.deepStrictEqual(cache.loadBalancers.get(slim.key)!.hns, expected, `stored ${i}`);
  }
});
