/**
 * Fingerprints of desired objects computed from their fields equal the
 * fingerprints of the payloads made of them (the trusted start compares the
 * former with the record's, which hold the latter), and fingerprints keep
 * the values records on disk hold.
 */

import assert from "node:assert/strict";
import type { HcnLoadBalancer, HcnPortMapping } from "../../lib/hns/types.ts";
import { desiredState } from "../../lib/proxy/desired.ts";
import type { DesiredEndpoint, DesiredLoadBalancer, DesiredState } from "../../lib/proxy/model.ts";
import {
  desiredEndpointFingerprint,
  desiredEndpointFingerprintValue,
  desiredLoadBalancerFingerprint,
  desiredLoadBalancerFingerprintValue,
  endpointFingerprint,
  endpointPayload,
  loadBalancerFingerprint,
  loadBalancerPayload,
} from "../../lib/proxy/payload.ts";
import { prng } from "../prng.ts";
import { ctx, ep, overlayCtx, port, slice, svc, view } from "./core_fixtures.ts";

function assertSameFingerprints(
  eps: Iterable<DesiredEndpoint>,
  lbs: Iterable<{ lb: DesiredLoadBalancer; ids: string[] }>,
): number {
  let n = 0;
  for (const e of eps) {
    assert.equal(
      desiredEndpointFingerprint(e),
      endpointFingerprint(endpointPayload(e)),
      JSON.stringify(e),
    );
    // The number a trusted start compares with the record's is the one the text spells.
    assert.equal(
      desiredEndpointFingerprintValue(e),
      parseInt(desiredEndpointFingerprint(e), 36),
      JSON.stringify(e),
    );
    n++;
  }
  for (const { lb, ids } of lbs) {
    assert.equal(
      desiredLoadBalancerFingerprint(lb, ids),
      loadBalancerFingerprint(loadBalancerPayload(lb, ids)),
      JSON.stringify({ lb, ids }),
    );
    assert.equal(
      desiredLoadBalancerFingerprintValue(lb, ids),
      parseInt(desiredLoadBalancerFingerprint(lb, ids), 36),
      JSON.stringify({ lb, ids }),
    );
    n++;
  }
  return n;
}

const ID_CHARS = "0123456789abcdefABCDEF-";

function randomId(rand: () => number): string {
  let s = "";
  for (let i = 0; i < 1 + Math.floor(rand() * 12); i++) {
    s += ID_CHARS[Math.floor(rand() * ID_CHARS.length)];
  }
  return s;
}

/** Backend IDs for a desired LB's backends: random spellings, repeats and orders. */
function randomIds(rand: () => number, n: number): string[] {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    ids.push(i > 0 && rand() < 0.2 ? ids[Math.floor(rand() * i)].toLowerCase() : randomId(rand));
  }
  return ids;
}

const pick = <T>(rand: () => number, xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];

const IPS = [
  "10.0.0.1",
  "10.244.2.7",
  "010.1.2.3",
  "fd00::1",
  "FD00:0:0::0:5",
  "fd00:244:2::a",
  "::ffff:10.1.2.3",
  "not-an-ip",
  "",
];
const MACS = ["02-11-0a-f4-02-07", "02:11:0A:F4:02:07", " 00-15-5D-AA-BB-CC ", ""];
const NETWORKS = ["0A0B0C0D-0000-0000-0000-000000000001", "6d6f6e6f-0000-4000-8000-000000000001"];

function randomEndpoint(rand: () => number): DesiredEndpoint {
  const ip = pick(rand, IPS);
  const e: DesiredEndpoint = {
    key: `ep/remote/${ip}`,
    ip,
    remote: rand() < 0.8,
    family: ip.includes(":") ? "IPv6" : "IPv4",
    mac: pick(rand, MACS),
    networkId: pick(rand, NETWORKS),
    role: pick(rand, ["remote", "serviceVip", "sourceVip"] as const),
  };
  const r = rand();
  if (r < 0.5) e.providerAddress = pick(rand, IPS);
  else if (r < 0.6) e.providerAddress = "";
  return e;
}

function randomLoadBalancer(rand: () => number): { lb: DesiredLoadBalancer; ids: string[] } {
  const backends = Array.from({ length: Math.floor(rand() * 6) }, (_, i) => `ep/remote/b${i}`);
  const lb: DesiredLoadBalancer = {
    key: "lb/x",
    kind: pick(rand, ["clusterIP", "nodePort", "externalIP"] as never[]),
    serviceKey: "default/web",
    portName: "http",
    family: "IPv4",
    protocol: pick(rand, [6, 17, 132]),
    externalPort: Math.floor(rand() * 65536),
    internalPort: Math.floor(rand() * 65536),
    flags: pick(rand, [0, 1, 2, 3, 8]),
    portMappingFlags: pick(rand, [0, 1, 2, 4, 8, 16]),
    distributionType: pick(rand, [0, 1, 2]),
    backends,
  };
  if (rand() < 0.8) lb.vip = pick(rand, IPS);
  const r = rand();
  if (r < 0.4) lb.sourceVip = pick(rand, IPS);
  else if (r < 0.5) lb.sourceVip = "";
  return { lb, ids: randomIds(rand, backends.length) };
}

Deno.test("fingerprint of random desired objects equals the fingerprint of their payloads", () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const rand = prng(seed);
    const eps = Array.from({ length: 400 }, () => randomEndpoint(rand));
    const lbs = Array.from({ length: 400 }, () => randomLoadBalancer(rand));
    assert.equal(assertSameFingerprints(eps, lbs), 800);
  }
});

/** Each desired LB with backend IDs as the start resolves them (some in another spelling). */
function withIds(d: DesiredState, rand: () => number) {
  return [...d.loadBalancers.values()].map((lb) => ({
    lb,
    ids: lb.backends.map((k) =>
      d.existingEndpoints.get(k) ?? (rand() < 0.5 ? `ID-${k}` : `id-${k}`.toLowerCase())
    ),
  }));
}

Deno.test("fingerprint of the desired state's objects equals the fingerprint of their payloads: overlay, DSR, IPv6, session affinity, source VIP", () => {
  const rand = prng(7);
  const services = [
    svc({ name: "web", type: "NodePort", ports: [port({ nodePort: 30080 })] }),
    svc({
      name: "dual",
      clusterIPs: ["10.96.0.11", "fd00:96::11"],
      ipFamilies: ["IPv4", "IPv6"],
      sessionAffinity: "ClientIP",
      sessionAffinityTimeoutSeconds: 600,
    }),
    svc({
      name: "lb",
      type: "LoadBalancer",
      clusterIPs: ["10.96.0.12"],
      externalIPs: ["192.168.50.5"],
      ingress: [{ ip: "203.0.113.9" }],
      externalTrafficPolicy: "Local",
      healthCheckNodePort: 31000,
      ports: [port({ nodePort: 30081 }), port({ name: "dns", protocol: "UDP", port: 53 })],
    }),
  ];
  const slices = services.flatMap((s) => [
    slice([
      ep("10.244.2.7"),
      ep("10.244.3.8", { nodeName: "node-c" }),
      ep("10.244.1.5", {
        nodeName: "node-a",
      }),
    ], { name: `${s.name}-4`, serviceName: s.name }),
    slice([ep("fd00:244:2::a"), ep("fd00:244:1::5", { nodeName: "node-a" })], {
      name: `${s.name}-6`,
      serviceName: s.name,
      addressType: "IPv6",
    }),
  ]);
  let checked = 0;
  for (
    const c of [
      ctx(),
      ctx({ enableDSR: true }),
      overlayCtx(),
      overlayCtx({ enableDSR: true }),
      overlayCtx({ sourceVips: ["10.244.1.2", "fd00:244:1::2"] }),
    ]
  ) {
    const d = desiredState(view(services, slices), c);
    assert.ok(d.loadBalancers.size > 0);
    checked += assertSameFingerprints(d.remoteEndpoints.values(), withIds(d, rand));
  }
  assert.ok(checked > 50, `${checked} objects checked`);
});

Deno.test("fingerprints keep the values records on disk hold", () => {
  const golden: Array<[string, string]> = [
    [
      loadBalancerFingerprint({
        HostComputeEndpoints: ["b-1", "A-2", "a-2"],
        FrontendVIPs: ["10.0.0.1"],
        PortMappings: [{
          Protocol: 6,
          InternalPort: 80,
          ExternalPort: 8080,
          DistributionType: 0,
          Flags: 0,
        }],
        Flags: 1,
        SourceVIP: "10.1.0.2",
      }),
      "1gujkrfh35f",
    ],
    [
      loadBalancerFingerprint({
        HostComputeEndpoints: [],
        FrontendVIPs: ["FD00::0:1", "10.0.0.9"],
        PortMappings: [
          { Protocol: 17, InternalPort: 53, ExternalPort: 53, DistributionType: 1, Flags: 4 },
          { Protocol: 6 } as HcnPortMapping,
        ],
        Flags: 0,
      }),
      "v7qilacrdt",
    ],
    [loadBalancerFingerprint({} as HcnLoadBalancer), "1zpek8wy3q1"],
    [
      endpointFingerprint({
        IpConfigurations: [{ IpAddress: "10.2.3.4" }],
        HostComputeNetwork: "ABC-DEF",
        MacAddress: "02:11:22:33:44:55",
        Flags: 1,
        Policies: [{ Type: "ProviderAddress", Settings: { ProviderAddress: "192.168.1.5" } }],
      }),
      "pf6lzv3c4k",
    ],
    [
      endpointFingerprint({
        IpConfigurations: [{ IpAddress: "fd00:0::5" }],
        HostComputeNetwork: "n",
        MacAddress: "00-15-5D-00-00-01",
        Flags: 0,
      }),
      "2deage8o7sk",
    ],
    [endpointFingerprint({}), "spfozlyaa3"],
  ];
  for (const [got, want] of golden) assert.equal(got, want);
});

/** cyrb53 with Number#toString(36): the fingerprint function records were written with. */
function referenceHash(text: string): string {
  let h1 = 0xdeadbeef, h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(36);
}

Deno.test("endpoint fingerprints are cyrb53 of the normalized fields in base 36, for any hash value", () => {
  const rand = prng(11);
  for (let i = 0; i < 2000; i++) {
    const ip = `10.${i % 256}.${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}`;
    const pa = rand() < 0.5 ? `192.168.${i % 256}.${Math.floor(rand() * 256)}` : undefined;
    const e: DesiredEndpoint = {
      key: `ep/remote/${ip}`,
      ip,
      remote: pa !== undefined,
      family: "IPv4",
      mac: `02-11-0a-${(i % 256).toString(16).padStart(2, "0")}-00-01`,
      networkId: "6d6f6e6f-0000-4000-8000-000000000001",
      role: "remote",
    };
    if (pa !== undefined) e.providerAddress = pa;
    const text = `ep|${ip}|${e.networkId}|${e.remote ? 1 : 0}|${e.mac}|${pa ?? ""}`;
    assert.equal(desiredEndpointFingerprint(e), referenceHash(text), text);
  }
});
