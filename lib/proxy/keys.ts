/**
 * Stable keys of the HNS objects the proxy core speaks of, built from desired
 * objects and derived back from HNS JSON (for adoption at start).
 *
 * Load balancer keys are the HNS identity (protocol, frontend VIP or none,
 * external port), which HNS refuses to hold twice:
 * `lb/tcp/10.96.0.10:80`, `lb/tcp/[fd00::a]:443`, `lb/udp/nodeport:30053`
 * (IPv4 NodePort) and `lb/udp/nodeport6:30053` (IPv6 NodePort).
 *
 * Endpoint keys: `ep/remote/<ip>` (remote endpoints, flag 1),
 * `ep/sourcevip/<ip>` (the overlay source-VIP host endpoint),
 * `ep/local/<ip>` (the CNI's pod endpoints), `ep/host/<name>` (the root host
 * endpoint referenced by health-check LBs).
 *
 * @module
 */

import {
  EndpointFlags,
  type HcnEndpoint,
  type HcnLoadBalancer,
  IpProtocol,
  LoadBalancerFlags,
} from "../hns/types.ts";
import type { IpFamily } from "../kube/model.ts";
import type { EpKey, LbKey } from "./model.ts";
import { canonicalIp, hostForPort } from "../net/ip.ts";

/** Lower-case protocol name for keys: `tcp`, `udp`, `sctp`, else `p<number>`. */
export function protocolName(protocol: number): string {
  switch (protocol) {
    case IpProtocol.TCP:
      return "tcp";
    case IpProtocol.UDP:
      return "udp";
    case IpProtocol.SCTP:
      return "sctp";
    default:
      return `p${protocol}`;
  }
}

/** Fields that make up a load balancer's HNS identity. */
export interface LbIdentity {
  /** IANA protocol number. */
  protocol: number;
  /** Frontend VIP (canonical text); absent for NodePort LBs. */
  vip?: string;
  /** External port. */
  port: number;
  /** Family; only used to tell the two VIP-less NodePort LBs apart. */
  family: IpFamily;
}

/** The key of a load balancer with this identity. */
export function loadBalancerKey(id: LbIdentity): LbKey {
  const where = id.vip !== undefined
    ? hostForPort(id.vip)
    : id.family === "IPv6"
    ? "nodeport6"
    : "nodeport";
  return `lb/${protocolName(id.protocol)}/${where}:${id.port}`;
}

/** Key of the remote endpoint for a pod IP. */
export function remoteEndpointKey(ip: string): EpKey {
  return `ep/remote/${ip}`;
}

/** Key of a CNI-made endpoint on this node. */
export function localEndpointKey(ip: string): EpKey {
  return `ep/local/${ip}`;
}

/** Key of the root host endpoint by name. */
export function hostEndpointKey(name: string): EpKey {
  return `ep/host/${name}`;
}

/** Key of the overlay source-VIP endpoint. */
export function sourceVipEndpointKey(ip: string): EpKey {
  return `ep/sourcevip/${ip}`;
}

/** Why an HNS object yields no key. */
export interface KeyError {
  /** Human-readable reason, e.g. `no PortMappings`. */
  reason: string;
}

/**
 * The key of a load balancer read from HNS, or a {@link KeyError} when it
 * cannot be interpreted (no or several port mappings, bad VIP, several VIPs).
 */
export function loadBalancerKeyFromHns(lb: HcnLoadBalancer): LbKey | KeyError {
  const pms = Array.isArray(lb?.PortMappings) ? lb.PortMappings : [];
  if (pms.length !== 1) {
    return { reason: pms.length === 0 ? "no PortMappings" : "several PortMappings" };
  }
  const pm = pms[0];
  if (
    typeof pm?.Protocol !== "number" || typeof pm.ExternalPort !== "number" ||
    typeof pm.InternalPort !== "number"
  ) {
    return { reason: "malformed PortMapping" };
  }
  const vips = Array.isArray(lb.FrontendVIPs) ? lb.FrontendVIPs : [];
  if (vips.length > 1) return { reason: "several FrontendVIPs" };
  const family: IpFamily = ((lb.Flags ?? 0) & LoadBalancerFlags.IPv6) !== 0 ? "IPv6" : "IPv4";
  if (vips.length === 0) {
    return loadBalancerKey({ protocol: pm.Protocol, port: pm.ExternalPort, family });
  }
  const vip = canonicalIp(String(vips[0]));
  if (!vip) return { reason: `bad FrontendVIP ${JSON.stringify(vips[0])}` };
  return loadBalancerKey({ protocol: pm.Protocol, vip, port: pm.ExternalPort, family });
}

/**
 * The key of an endpoint read from HNS: `ep/remote/<ip>` for remote endpoints,
 * `ep/sourcevip/<ip>` for a non-remote endpoint holding a configured source
 * VIP, else `ep/local/<ip>`; a {@link KeyError} when it has no usable IP.
 */
export function endpointKeyFromHns(
  ep: HcnEndpoint,
  sourceVips: ReadonlySet<string> = new Set(),
): EpKey | KeyError {
  const cfgs = Array.isArray(ep?.IpConfigurations) ? ep.IpConfigurations : [];
  if (cfgs.length === 0) return { reason: "no IpConfigurations" };
  const ip = canonicalIp(String(cfgs[0]?.IpAddress ?? ""));
  if (!ip) return { reason: `bad IpAddress ${JSON.stringify(cfgs[0]?.IpAddress)}` };
  if (((ep.Flags ?? 0) & EndpointFlags.RemoteEndpoint) !== 0) return remoteEndpointKey(ip);
  return sourceVips.has(ip) ? sourceVipEndpointKey(ip) : localEndpointKey(ip);
}

/** Type guard for {@link KeyError}. */
export function isKeyError(k: string | KeyError): k is KeyError {
  return typeof k !== "string";
}
