/**
 * HNS JSON for desired objects, and the comparison of what HNS holds with what
 * is desired. Comparison normalizes what HNS may render differently: the case
 * of GUIDs and MACs, the order of backend lists, IPv6 spelling, and absent
 * versus zero flags.
 *
 * @module
 */

import {
  EndpointFlags,
  type HcnEndpoint,
  type HcnLoadBalancer,
  type HcnPolicy,
} from "../hns/types.ts";
import type { DesiredEndpoint, DesiredLoadBalancer } from "./model.ts";
import { canonicalIp } from "../net/ip.ts";
import { normalizeMac } from "../net/mac.ts";

const SCHEMA = { Major: 2, Minor: 0 } as const;

/** The HNS JSON to create or modify a desired load balancer with these backend IDs. */
export function loadBalancerPayload(
  lb: DesiredLoadBalancer,
  backendIds: readonly string[],
): HcnLoadBalancer {
  const out: HcnLoadBalancer = {
    HostComputeEndpoints: [...backendIds],
    FrontendVIPs: lb.vip !== undefined ? [lb.vip] : [],
    PortMappings: [{
      Protocol: lb.protocol,
      InternalPort: lb.internalPort,
      ExternalPort: lb.externalPort,
      DistributionType: lb.distributionType,
      Flags: lb.portMappingFlags,
    }],
    Flags: lb.flags,
    SchemaVersion: { ...SCHEMA },
  };
  if (lb.sourceVip !== undefined) out.SourceVIP = lb.sourceVip;
  return out;
}

/**
 * The HNS JSON to create a desired endpoint (HNS assigns the ID); with `id`,
 * the endpoint as HNS holds it under that ID.
 */
export function endpointPayload(ep: DesiredEndpoint, id?: string): HcnEndpoint {
  const out: HcnEndpoint = {
    HostComputeNetwork: ep.networkId,
    IpConfigurations: [{ IpAddress: ep.ip }],
    MacAddress: ep.mac,
    Flags: ep.remote ? EndpointFlags.RemoteEndpoint : EndpointFlags.None,
    SchemaVersion: { ...SCHEMA },
  };
  if (ep.remote && ep.providerAddress !== undefined) {
    out.Policies = [{
      Type: "ProviderAddress",
      Settings: { ProviderAddress: ep.providerAddress },
    }];
  }
  if (id !== undefined) out.ID = id;
  return out;
}

const ipOrRaw = (s: unknown): string => {
  const t = String(s ?? "");
  return canonicalIp(t) ?? t.toLowerCase();
};

/** A load balancer reduced to the fields hnsproxy programs, normalized for comparison. */
export interface NormalizedLoadBalancer {
  /** Canonical frontend VIPs, sorted. */
  vips: string[];
  /** Canonical SourceVIP or "". */
  sourceVip: string;
  /** LB flags (0 when absent). */
  flags: number;
  /** Protocol, internal port, external port, distribution type, flags of each port mapping. */
  portMappings: Array<[number, number, number, number, number]>;
  /** Backend IDs, upper case, sorted, unique. */
  backends: string[];
}

/** Normalize an HNS load balancer (as read or as sent) for comparison. */
export function normalizeLoadBalancer(lb: HcnLoadBalancer): NormalizedLoadBalancer {
  const pms = Array.isArray(lb.PortMappings) ? lb.PortMappings : [];
  return {
    vips: (Array.isArray(lb.FrontendVIPs) ? lb.FrontendVIPs : []).map(ipOrRaw).sort(),
    sourceVip: lb.SourceVIP ? ipOrRaw(lb.SourceVIP) : "",
    flags: lb.Flags ?? 0,
    portMappings: pms.map((pm) => [
      pm.Protocol ?? 0,
      pm.InternalPort ?? 0,
      pm.ExternalPort ?? 0,
      pm.DistributionType ?? 0,
      pm.Flags ?? 0,
    ]),
    backends: backendIdsNormalized(
      Array.isArray(lb.HostComputeEndpoints) ? lb.HostComputeEndpoints : [],
    ),
  };
}

/** Backend IDs upper case, unique, sorted: the form comparison and fingerprints use. */
function backendIdsNormalized(ids: readonly unknown[]): string[] {
  const out = new Array<string>(ids.length);
  let ascending = true;
  for (let i = 0; i < ids.length; i++) {
    out[i] = String(ids[i]).toUpperCase();
    if (i > 0 && !(out[i - 1] < out[i])) ascending = false;
  }
  // Strictly ascending is already unique and sorted (the usual case: IDs as HNS lists them).
  return ascending ? out : [...new Set(out)].sort();
}

/** Whether two HNS load balancers program the same thing. */
export function sameLoadBalancer(a: HcnLoadBalancer, b: HcnLoadBalancer): boolean {
  if ((a.Flags ?? 0) !== (b.Flags ?? 0)) return false;
  const pa = Array.isArray(a.PortMappings) ? a.PortMappings : [];
  const pb = Array.isArray(b.PortMappings) ? b.PortMappings : [];
  if (pa.length !== pb.length) return false;
  for (let i = 0; i < pa.length; i++) {
    const x = pa[i], y = pb[i];
    if (
      (x.Protocol ?? 0) !== (y.Protocol ?? 0) || (x.InternalPort ?? 0) !== (y.InternalPort ?? 0) ||
      (x.ExternalPort ?? 0) !== (y.ExternalPort ?? 0) ||
      (x.DistributionType ?? 0) !== (y.DistributionType ?? 0) || (x.Flags ?? 0) !== (y.Flags ?? 0)
    ) return false;
  }
  if (a.SourceVIP !== b.SourceVIP) {
    const sa = a.SourceVIP ? ipOrRaw(a.SourceVIP) : "";
    const sb = b.SourceVIP ? ipOrRaw(b.SourceVIP) : "";
    if (sa !== sb) return false;
  }
  // The same lists in the same spelling and order are the same once normalized.
  if (
    sameRawList(a.FrontendVIPs, b.FrontendVIPs) &&
    sameRawList(a.HostComputeEndpoints, b.HostComputeEndpoints)
  ) return true;
  const na = normalizeLoadBalancer({ ...a, PortMappings: [] });
  const nb = normalizeLoadBalancer({ ...b, PortMappings: [] });
  return sameList(na.vips, nb.vips) && sameList(na.backends, nb.backends);
}

/** Whether two list fields are arrays of the same strings in the same order. */
function sameRawList(a: unknown, b: unknown): boolean {
  if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (typeof a[i] !== "string" || a[i] !== b[i]) return false;
  }
  return true;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The provider address of an endpoint's ProviderAddress policy (canonical), or "". */
export function providerAddressOf(policies: HcnPolicy[] | undefined): string {
  for (const p of Array.isArray(policies) ? policies : []) {
    const type = p?.Type;
    if (type === "ProviderAddress" || String(type ?? "").toLowerCase() === "provideraddress") {
      const pa = (p.Settings as Record<string, unknown> | undefined)?.ProviderAddress;
      return pa ? ipOrRaw(pa) : "";
    }
  }
  return "";
}

/** Whether an endpoint's network (absent: not said) is this one, in any case. */
function sameNetwork(have: string | undefined, want: string): boolean {
  return have === undefined || have === want ||
    String(have).toLowerCase() === want.toLowerCase();
}

/**
 * Whether an endpoint hnsproxy owns in HNS is what a desired endpoint asks
 * for: same IP, network and MAC; for pod remote endpoints also the remote
 * flag and provider address. (An owned service-VIP or source-VIP endpoint
 * with another MAC was made before the host NIC's MAC was known: replaced.
 * Endpoints of others holding those IPs are used as they are, as kube-proxy
 * does.)
 */
export function endpointSatisfies(hns: HcnEndpoint, want: DesiredEndpoint): boolean {
  const cfg = Array.isArray(hns.IpConfigurations) ? hns.IpConfigurations[0] : undefined;
  if (!cfg || (cfg.IpAddress !== want.ip && ipOrRaw(cfg.IpAddress) !== want.ip)) return false;
  if (!sameNetwork(hns.HostComputeNetwork, want.networkId)) return false;
  if (hns.MacAddress !== want.mac && normalizeMac(hns.MacAddress) !== normalizeMac(want.mac)) {
    return false;
  }
  if (want.role !== "remote") return true;
  if (((hns.Flags ?? 0) & EndpointFlags.RemoteEndpoint) === 0) return false;
  return providerAddressOf(hns.Policies) === (want.providerAddress ?? "");
}

/**
 * Whether an endpoint in HNS is exactly what a desired endpoint would be
 * created as (IP, network, remote flag, MAC, provider address), whatever its
 * role. Used to decide whether a foreign endpoint may be adopted.
 */
export function endpointMatchesExactly(hns: HcnEndpoint, want: DesiredEndpoint): boolean {
  const cfg = Array.isArray(hns.IpConfigurations) ? hns.IpConfigurations[0] : undefined;
  if (!cfg || (cfg.IpAddress !== want.ip && ipOrRaw(cfg.IpAddress) !== want.ip)) return false;
  if (!sameNetwork(hns.HostComputeNetwork, want.networkId)) return false;
  const remote = ((hns.Flags ?? 0) & EndpointFlags.RemoteEndpoint) !== 0;
  if (remote !== want.remote) return false;
  if (hns.MacAddress !== want.mac && normalizeMac(hns.MacAddress) !== normalizeMac(want.mac)) {
    return false;
  }
  return !want.remote || providerAddressOf(hns.Policies) === (want.providerAddress ?? "");
}

/**
 * The fingerprint of a load balancer's content in the normalized form
 * {@link sameLoadBalancer} compares: two load balancers it calls the same
 * have the same fingerprint. A 53-bit hash in base 36 (at most 11
 * characters), kept per owned object in the ownership record.
 */
export function loadBalancerFingerprint(lb: HcnLoadBalancer): string {
  const n = normalizeLoadBalancer(lb);
  return lbFingerprint(n.vips, n.sourceVip, n.flags, n.portMappings, n.backends);
}

/**
 * The fingerprint of the load balancer {@link loadBalancerPayload} makes of
 * `lb` and `backendIds`, computed from the desired fields without making it:
 * always `loadBalancerFingerprint(loadBalancerPayload(lb, backendIds))`.
 */
export function desiredLoadBalancerFingerprint(
  lb: DesiredLoadBalancer,
  backendIds: readonly string[],
): string {
  return desiredLoadBalancerHash(lb, backendIds).digest();
}

/**
 * {@link desiredLoadBalancerFingerprint} as the number its text spells in
 * base 36, made without the text.
 */
export function desiredLoadBalancerFingerprintValue(
  lb: DesiredLoadBalancer,
  backendIds: readonly string[],
): number {
  return desiredLoadBalancerHash(lb, backendIds).value();
}

function desiredLoadBalancerHash(lb: DesiredLoadBalancer, backendIds: readonly string[]): Hash53 {
  return lbHash(
    lb.vip !== undefined ? [ipOrRaw(lb.vip)] : [],
    lb.sourceVip ? ipOrRaw(lb.sourceVip) : "",
    lb.flags ?? 0,
    [[
      lb.protocol ?? 0,
      lb.internalPort ?? 0,
      lb.externalPort ?? 0,
      lb.distributionType ?? 0,
      lb.portMappingFlags ?? 0,
    ]],
    backendIdsNormalized(backendIds),
  );
}

/** The load balancer fingerprint of normalized fields (see {@link NormalizedLoadBalancer}). */
function lbFingerprint(
  vips: readonly string[],
  sourceVip: string,
  flags: number,
  portMappings: ReadonlyArray<readonly number[]>,
  backends: readonly string[],
): string {
  return lbHash(vips, sourceVip, flags, portMappings, backends).digest();
}

function lbHash(
  vips: readonly string[],
  sourceVip: string,
  flags: number,
  portMappings: ReadonlyArray<readonly number[]>,
  backends: readonly string[],
): Hash53 {
  const h = new Hash53().add("lb|");
  addJoined(h, vips, ",").add("|").add(sourceVip).add("|").add(String(flags)).add("|");
  for (let i = 0; i < portMappings.length; i++) {
    if (i > 0) h.add(";");
    addJoined(h, portMappings[i].map(String), ":");
  }
  return addJoined(h.add("|"), backends, ",");
}

/**
 * The fingerprint of an endpoint's content in the normalized form
 * {@link endpointMatchesExactly} compares (IP, network, remote flag, MAC,
 * provider address); see {@link loadBalancerFingerprint}.
 */
export function endpointFingerprint(ep: HcnEndpoint): string {
  const cfg = Array.isArray(ep.IpConfigurations) ? ep.IpConfigurations[0] : undefined;
  return epFingerprint(
    cfg ? ipOrRaw(cfg.IpAddress) : "-",
    String(ep.HostComputeNetwork ?? "").toLowerCase(),
    ((ep.Flags ?? 0) & EndpointFlags.RemoteEndpoint) !== 0,
    normalizeMac(ep.MacAddress),
    providerAddressOf(ep.Policies),
  );
}

/**
 * The fingerprint of the endpoint {@link endpointPayload} makes of `ep`,
 * computed from the desired fields without making it: always
 * `endpointFingerprint(endpointPayload(ep))`.
 */
export function desiredEndpointFingerprint(ep: DesiredEndpoint): string {
  return desiredEndpointHash(ep).digest();
}

/**
 * {@link desiredEndpointFingerprint} as the number its text spells in base
 * 36, made without the text.
 */
export function desiredEndpointFingerprintValue(ep: DesiredEndpoint): number {
  return desiredEndpointHash(ep).value();
}

function desiredEndpointHash(ep: DesiredEndpoint): Hash53 {
  return epHash(
    ipOrRaw(ep.ip),
    lowerNetworkId(ep.networkId),
    ep.remote,
    normalizeMac(ep.mac),
    ep.remote && ep.providerAddress ? ipOrRaw(ep.providerAddress) : "",
  );
}

/** The last network ID lower-cased, and its lower case: desired endpoints share one network. */
let lastNetworkId = "", lastNetworkIdLower = "";

function lowerNetworkId(id: string | undefined): string {
  if (id !== lastNetworkId) {
    lastNetworkIdLower = String(id ?? "").toLowerCase();
    lastNetworkId = String(id ?? "");
  }
  return lastNetworkIdLower;
}

/** The endpoint fingerprint of normalized fields. */
function epFingerprint(
  ip: string,
  network: string,
  remote: boolean,
  mac: string,
  providerAddress: string,
): string {
  return epHash(ip, network, remote, mac, providerAddress).digest();
}

function epHash(
  ip: string,
  network: string,
  remote: boolean,
  mac: string,
  providerAddress: string,
): Hash53 {
  return new Hash53().add("ep|").add(ip).add("|").add(network).add(remote ? "|1|" : "|0|")
    .add(mac).add("|").add(providerAddress);
}

function addJoined(h: Hash53, parts: readonly string[], sep: string): Hash53 {
  for (let i = 0; i < parts.length; i++) {
    if (i > 0) h.add(sep);
    h.add(parts[i]);
  }
  return h;
}

/**
 * cyrb53, a fast 53-bit string hash, fed in parts: the digest (base 36) is
 * that of the parts' concatenation, without making it.
 */
class Hash53 {
  h1 = 0xdeadbeef;
  h2 = 0x41c6ce57;

  add(text: string): this {
    let h1 = this.h1, h2 = this.h2;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 2654435761);
      h2 = Math.imul(h2 ^ c, 1597334677);
    }
    this.h1 = h1;
    this.h2 = h2;
    return this;
  }

  /** The 53-bit hash as a number (what {@link digest} spells). */
  value(): number {
    let h1 = this.h1, h2 = this.h2;
    h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
    h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
    return 4294967296 * (2097151 & h2) + (h1 >>> 0);
  }

  /** The 53-bit hash in base 36, as `Number#toString(36)` writes it. */
  digest(): string {
    const value = this.value();
    let digits = 0;
    for (let n = value; n > 0 || digits === 0; n = Math.floor(n / 36)) digits++;
    // The digits' codes into a reused array of their count, made into the text by one call:
    // a string per digit prepended would allocate ~250 bytes per fingerprint, this ~50, and
    // Number#toString(36) gives the same text at ~2.5x the CPU (52,000 values: ~16 vs ~6 ms).
    const codes = DIGIT_CODES[digits];
    for (let i = digits - 1, n = value; i >= 0; i--) {
      const q = Math.floor(n / 36);
      codes[i] = BASE36_CODES[n - q * 36];
      n = q;
    }
    return String.fromCharCode.apply(null, codes);
  }
}

/** The character codes of the base-36 digits 0-9 a-z. */
const BASE36_CODES = Array.from("0123456789abcdefghijklmnopqrstuvwxyz", (c) => c.charCodeAt(0));

/** By digit count (1–11, what a 53-bit number has in base 36), an array of that length to reuse. */
const DIGIT_CODES: number[][] = Array.from({ length: 12 }, (_, k) => new Array<number>(k).fill(0));
