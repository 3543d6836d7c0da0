/**
 * Where a remote pod lives on an overlay network: the provider address (the
 * IP of the node hosting it) that its remote endpoint's ProviderAddress
 * policy names, and whether its service's SourceVIP must switch to the node
 * IP because of it.
 *
 * Rules, in order:
 * 1. the network's RemoteSubnetRoute with the longest prefix containing the
 *    IP gives the provider address; an IP equal to a route's provider address
 *    is itself a node IP (a host-network pod on another node);
 * 2. else the IPs of the endpoint's node, when the context knows them;
 * 3. else, as kube-proxy, this node's IP, and the address counts as public.
 *
 * The routes are parsed once per {@link PlacementTable}, not per endpoint.
 *
 * @module
 */

import type { IpFamily } from "../kube/model.ts";
import type { NodeContext } from "./model.ts";
import {
  canonicalIp,
  cidrContains,
  ipFamilyOf,
  parseCidr,
  type ParsedCidr,
  parseIp,
} from "./net.ts";

/** Where one remote pod IP lives. */
export interface Placement {
  /** The provider address for its remote endpoint (overlay only). */
  providerAddress?: string;
  /** The IP matched no route and no known node: kube-proxy calls it public. */
  publicIp: boolean;
  /** The IP is itself a node's IP (host-network pod on another node). */
  nodeIp: boolean;
}

/** A RemoteSubnetRoute with its provider address canonical and its prefix parsed. */
interface ParsedRoute {
  pa: string | undefined;
  cidr: ParsedCidr | undefined;
}

/** The placement facts of a node context, parsed for lookups. Build with {@link placementTable}. */
export interface PlacementTable {
  /** The context it was built from. */
  readonly ctx: NodeContext;
  /** Its routes, parsed. */
  readonly routes: readonly ParsedRoute[];
}

/** The parsed placement facts of a context (build once per context, use for every service). */
export function placementTable(ctx: NodeContext): PlacementTable {
  return {
    ctx,
    routes: ctx.network.remoteSubnetRoutes.map((r) => ({
      pa: canonicalIp(r.providerAddress),
      cidr: parseCidr(r.prefix),
    })),
  };
}

/** The node's first IP of a family, canonical. */
export function nodeIpOf(ctx: NodeContext, family: IpFamily): string | undefined {
  for (const ip of ctx.nodeIPs) {
    const c = canonicalIp(ip);
    if (c && ipFamilyOf(c) === family) return c;
  }
  return undefined;
}

/** Where the remote pod `ip` (on node `nodeName`, when known) lives, by the rules above. */
export function placeOnOverlay(
  table: PlacementTable,
  ip: string,
  nodeName: string | undefined,
): Placement {
  const { ctx } = table;
  const family = ipFamilyOf(ip);
  const parsed = parseIp(ip);
  let best: { len: number; pa: string } | undefined;
  for (const { pa, cidr } of table.routes) {
    if (pa === ip) return { providerAddress: pa, publicIp: false, nodeIp: true };
    if (pa && cidr && parsed && cidrContains(cidr, parsed) && (!best || cidr.prefix > best.len)) {
      best = { len: cidr.prefix, pa };
    }
  }
  if (best) return { providerAddress: best.pa, publicIp: false, nodeIp: false };
  if (nodeName !== undefined && ctx.nodeIPsByName) {
    const ips = (ctx.nodeIPsByName.get(nodeName) ?? []).map((x) => canonicalIp(x));
    if (ips.includes(ip)) return { providerAddress: ip, publicIp: false, nodeIp: true };
    const pa = ips.find((x) => x !== undefined && ipFamilyOf(x) === family);
    if (pa) return { providerAddress: pa, publicIp: false, nodeIp: false };
  }
  return {
    providerAddress: family ? nodeIpOf(ctx, family) : undefined,
    publicIp: true,
    nodeIp: false,
  };
}
