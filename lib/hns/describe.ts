/**
 * HCN objects in words, for people: protocol names, flags spelled out, and
 * one-phrase names of load balancers and endpoints for messages and tables.
 *
 * @module
 */

import {
  DistributionType,
  EndpointFlags,
  type HcnEndpoint,
  type HcnLoadBalancer,
  type HcnPortMapping,
  LoadBalancerFlags,
  PortMappingFlags,
} from "./types.ts";

/** `TCP`, `UDP`, `SCTP`, else `proto N`. */
export function protocolName(protocol: number | undefined): string {
  switch (protocol) {
    case 6:
      return "TCP";
    case 17:
      return "UDP";
    case 132:
      return "SCTP";
    default:
      return `proto ${protocol ?? "?"}`;
  }
}

/** The names of the bits set in `value` per `table`, plus `0xN` for unknown bits. */
function bitWords(value: number | undefined, table: Record<string, number>): string[] {
  const v = (value ?? 0) >>> 0;
  const words: string[] = [];
  let known = 0;
  for (const [name, bit] of Object.entries(table)) {
    if (bit !== 0 && (v & bit) === bit) {
      words.push(name);
      known |= bit;
    }
  }
  const rest = v & ~known;
  if (rest) words.push(`0x${rest.toString(16)}`);
  return words;
}

/** Load balancer flags in words: `DSR`, `IPv6`. */
export function loadBalancerFlagWords(flags: number | undefined): string[] {
  return bitWords(flags, LoadBalancerFlags);
}

/** Port mapping flags in words: `ILB`, `LocalRoutedVIP`, `UseMux`, `PreserveDIP`, `VipExternalIP`. */
export function portMappingFlagWords(flags: number | undefined): string[] {
  return bitWords(flags, PortMappingFlags);
}

/** The distribution in words: `affinity:SourceIP`, or nothing for per-connection. */
export function distributionWords(distribution: number | undefined): string[] {
  if (!distribution) return [];
  const name = Object.entries(DistributionType).find(([, v]) => v === distribution)?.[0];
  return [`affinity:${name ?? distribution}`];
}

/** Every flag of a load balancer and its first port mapping in words. */
export function loadBalancerWords(lb: Partial<HcnLoadBalancer>): string[] {
  const pm: Partial<HcnPortMapping> | undefined = Array.isArray(lb.PortMappings)
    ? lb.PortMappings[0]
    : undefined;
  return [
    ...loadBalancerFlagWords(lb.Flags),
    ...portMappingFlagWords(pm?.Flags),
    ...distributionWords(pm?.DistributionType),
  ];
}

/** Endpoint flags in words: `remote` or `local`. */
export function endpointWords(ep: Partial<HcnEndpoint>): string[] {
  const words = ((ep.Flags ?? 0) & EndpointFlags.RemoteEndpoint) ? ["remote"] : ["local"];
  const rest = ((ep.Flags ?? 0) >>> 0) & ~EndpointFlags.RemoteEndpoint;
  if (rest) words.push(`0x${rest.toString(16)}`);
  return words;
}

/** The provider address (node IP) of an overlay remote endpoint, if it has one. */
export function providerAddress(ep: Partial<HcnEndpoint>): string | undefined {
  for (const p of Array.isArray(ep.Policies) ? ep.Policies : []) {
    if (p?.Type === "ProviderAddress") {
      const pa = p.Settings?.["ProviderAddress"];
      if (typeof pa === "string") return pa;
    }
  }
  return undefined;
}

/** `load balancer 10.96.0.10:80/TCP`, `load balancer *:30080/UDP` (NodePort). */
export function describeLoadBalancer(lb: Partial<HcnLoadBalancer>): string {
  const vips = Array.isArray(lb.FrontendVIPs) && lb.FrontendVIPs.length > 0
    ? lb.FrontendVIPs.join(",")
    : "*";
  const pm = Array.isArray(lb.PortMappings) ? lb.PortMappings[0] : undefined;
  if (!pm) return lb.ID ? `load balancer ${lb.ID}` : `load balancer ${vips}`;
  return `load balancer ${vips}:${pm.ExternalPort}/${protocolName(pm.Protocol)}`;
}

/** `endpoint 10.244.2.15` (its first IP), else its ID. */
export function describeEndpoint(ep: Partial<HcnEndpoint>): string {
  const ip = Array.isArray(ep.IpConfigurations) ? ep.IpConfigurations[0]?.IpAddress : undefined;
  return `endpoint ${ip ?? ep.ID ?? "(no IP)"}`;
}
