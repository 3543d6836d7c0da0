import assert from "node:assert/strict";
import { remoteEndpointMac } from "../../lib/proxy/net.ts";
import { normalizeMac } from "../../lib/net/mac.ts";
import {
  endpointKeyFromHns,
  isKeyError,
  loadBalancerKey,
  loadBalancerKeyFromHns,
} from "../../lib/proxy/keys.ts";
import {
  endpointMatchesExactly,
  endpointPayload,
  endpointSatisfies,
  loadBalancerPayload,
  sameLoadBalancer,
} from "../../lib/proxy/payload.ts";
import type { DesiredEndpoint, DesiredLoadBalancer } from "../../lib/proxy/model.ts";
import type { HcnEndpoint, HcnLoadBalancer } from "../../lib/hns/types.ts";

Deno.test("remote endpoint MAC: 02-11 + IPv4 bytes; IPv6 last four bytes reversed", () => {
  assert.equal(remoteEndpointMac("10.244.2.15"), "02-11-0a-f4-02-0f");
  assert.equal(remoteEndpointMac("255.254.0.1"), "02-11-ff-fe-00-01");
  // Other spellings of an IPv4 address give that address's MAC.
  assert.equal(remoteEndpointMac("010.244.002.015"), "02-11-0a-f4-02-0f");
  assert.equal(remoteEndpointMac("::ffff:10.244.2.15"), "02-11-0a-f4-02-0f");
  assert.equal(remoteEndpointMac("fd00::1:2:3:4"), "02-11-04-00-03-00");
  assert.equal(normalizeMac("02:11:0A:F4:02:0F"), "02-11-0a-f4-02-0f");
});

Deno.test("LB keys: built from identity and derived back from HNS JSON", () => {
  assert.equal(
    loadBalancerKey({ protocol: 6, vip: "10.96.0.10", port: 80, family: "IPv4" }),
    "lb/tcp/10.96.0.10:80",
  );
  assert.equal(
    loadBalancerKey({ protocol: 17, port: 30053, family: "IPv4" }),
    "lb/udp/nodeport:30053",
  );
  assert.equal(
    loadBalancerKey({ protocol: 17, port: 30053, family: "IPv6" }),
    "lb/udp/nodeport6:30053",
  );
  assert.equal(
    loadBalancerKey({ protocol: 6, vip: "fd00::a", port: 443, family: "IPv6" }),
    "lb/tcp/[fd00::a]:443",
  );
  const lb = (extra: Partial<HcnLoadBalancer>): HcnLoadBalancer => ({
    HostComputeEndpoints: [],
    PortMappings: [{ Protocol: 6, InternalPort: 8080, ExternalPort: 80 }],
    ...extra,
  });
  const table: Array<[HcnLoadBalancer, string]> = [
    [lb({ FrontendVIPs: ["10.96.0.10"] }), "lb/tcp/10.96.0.10:80"],
    [lb({ FrontendVIPs: ["FD00:0::A"], Flags: 2 }), "lb/tcp/[fd00::a]:80"],
    [lb({ FrontendVIPs: [] }), "lb/tcp/nodeport:80"],
    [lb({ Flags: 3 }), "lb/tcp/nodeport6:80"],
    [lb({ PortMappings: [] }), "error: no PortMappings"],
    [{ HostComputeEndpoints: [] } as unknown as HcnLoadBalancer, "error: no PortMappings"],
    [lb({ FrontendVIPs: ["a", "b"] }), "error: several FrontendVIPs"],
    [lb({ FrontendVIPs: ["nope"] }), 'error: bad FrontendVIP "nope"'],
  ];
  for (const [input, want] of table) {
    const k = loadBalancerKeyFromHns(input);
    assert.equal(isKeyError(k) ? `error: ${k.reason}` : k, want);
  }
});

Deno.test("endpoint keys from HNS: remote, source VIP, local; IP back from key", () => {
  const sv = new Set(["10.244.1.2"]);
  const key = (e: HcnEndpoint) => {
    const k = endpointKeyFromHns(e, sv);
    return isKeyError(k) ? `error: ${k.reason}` : k;
  };
  assert.equal(
    key({ IpConfigurations: [{ IpAddress: "10.244.2.7" }], Flags: 1 }),
    "ep/remote/10.244.2.7",
  );
  assert.equal(key({ IpConfigurations: [{ IpAddress: "10.244.1.2" }] }), "ep/sourcevip/10.244.1.2");
  assert.equal(
    key({ IpConfigurations: [{ IpAddress: "10.244.1.5" }], Flags: 0 }),
    "ep/local/10.244.1.5",
  );
  assert.equal(key({ IpConfigurations: [] }), "error: no IpConfigurations");
  assert.equal(key({ IpConfigurations: [{ IpAddress: "x" }] }), 'error: bad IpAddress "x"');
});

const desiredLb: DesiredLoadBalancer = {
  key: "lb/tcp/10.96.0.10:80",
  kind: "clusterIP",
  serviceKey: "default/web",
  portName: "http",
  family: "IPv4",
  protocol: 6,
  vip: "10.96.0.10",
  externalPort: 80,
  internalPort: 8080,
  flags: 1,
  portMappingFlags: 0,
  distributionType: 2,
  sourceVip: "10.244.1.2",
  backends: ["ep/remote/10.244.2.7"],
};

Deno.test("LB payload: HNS field names; comparison ignores case, order, absent-vs-zero", () => {
  const p = loadBalancerPayload(desiredLb, ["AB-1", "CD-2"]);
  assert.deepEqual(p, {
    HostComputeEndpoints: ["AB-1", "CD-2"],
    FrontendVIPs: ["10.96.0.10"],
    PortMappings: [{
      Protocol: 6,
      InternalPort: 8080,
      ExternalPort: 80,
      DistributionType: 2,
      Flags: 0,
    }],
    Flags: 1,
    SchemaVersion: { Major: 2, Minor: 0 },
    SourceVIP: "10.244.1.2",
  });
  const seen: HcnLoadBalancer = {
    ID: "x",
    HostComputeEndpoints: ["cd-2", "ab-1"],
    FrontendVIPs: ["10.96.0.10"],
    PortMappings: [{ Protocol: 6, InternalPort: 8080, ExternalPort: 80, DistributionType: 2 }],
    Flags: 1,
    SourceVIP: "10.244.1.2",
  };
  assert.ok(sameLoadBalancer(seen, p));
  assert.ok(!sameLoadBalancer({ ...seen, Flags: 0 }, p));
  assert.ok(!sameLoadBalancer({ ...seen, HostComputeEndpoints: ["ab-1"] }, p));
  assert.ok(!sameLoadBalancer({ ...seen, SourceVIP: undefined }, p));
  assert.ok(
    !sameLoadBalancer(
      { ...seen, PortMappings: [{ ...seen.PortMappings[0], InternalPort: 9090 }] },
      p,
    ),
  );
});

Deno.test("endpoint payload and matching: pods by MAC and provider address, service/source VIP by MAC", () => {
  const remote: DesiredEndpoint = {
    key: "ep/remote/10.244.2.7",
    ip: "10.244.2.7",
    remote: true,
    family: "IPv4",
    mac: "02-11-0a-f4-02-07",
    providerAddress: "192.168.1.11",
    networkId: "NET-1",
    role: "remote",
  };
  const p = endpointPayload(remote);
  assert.deepEqual(p, {
    HostComputeNetwork: "NET-1",
    IpConfigurations: [{ IpAddress: "10.244.2.7" }],
    MacAddress: "02-11-0a-f4-02-07",
    Flags: 1,
    SchemaVersion: { Major: 2, Minor: 0 },
    Policies: [{ Type: "ProviderAddress", Settings: { ProviderAddress: "192.168.1.11" } }],
  });
  const seen = { ...p, ID: "E1", HostComputeNetwork: "net-1", MacAddress: "02-11-0A-F4-02-07" };
  assert.ok(endpointSatisfies(seen, remote));
  assert.ok(endpointMatchesExactly(seen, remote));
  assert.ok(!endpointSatisfies({ ...seen, Policies: [] }, remote), "provider address differs");
  assert.ok(!endpointSatisfies({ ...seen, Flags: 0 }, remote), "not a remote endpoint");
  assert.ok(!endpointSatisfies({ ...seen, HostComputeNetwork: "other" }, remote));
  const sourceVip: DesiredEndpoint = {
    ...remote,
    key: "ep/sourcevip/10.244.1.2",
    ip: "10.244.1.2",
    remote: false,
    mac: "00-15-5d-aa-bb-cc",
    providerAddress: undefined,
    role: "sourceVip",
  };
  assert.equal(endpointPayload(sourceVip).Flags, 0);
  assert.equal(endpointPayload(sourceVip).Policies, undefined);
  const other = {
    IpConfigurations: [{ IpAddress: "10.244.1.2" }],
    MacAddress: "11-11-11-11-11-11",
  };
  assert.ok(!endpointSatisfies(other, sourceVip), "an owned one with another MAC is replaced");
  assert.ok(!endpointMatchesExactly(other, sourceVip), "and a foreign one is not adopted");
  const hostMac = { ...other, MacAddress: "00-15-5D-AA-BB-CC", Flags: 1 };
  assert.ok(endpointSatisfies(hostMac, sourceVip), "the host MAC in any case; flags not compared");
});
