/**
 * Where a remote pod lives on an overlay network: the provider address (the
 * IP of the node hosting it) that its remote endpoint's ProviderAddress
 * policy names, and whether its service's SourceVIP must switch to the node
 * IP because of it.
 *
 * Rules, in order:
 * 1. an IP that is itself a node's IP (a route's provider address, a node's
 *    address) is placed on that node and counts as a node IP;
 * 2. the network's RemoteSubnetRoute with the longest prefix containing the IP;
 * 3. the node whose pod CIDR (longest prefix) contains the IP;
 * 4. the endpoint's node, by name;
 * 5. otherwise an IP in the cluster's pod ranges is not placed: it waits until
 *    a route or its Node appears (never this node's IP as its provider
 *    address, which would blackhole it);
 * 6. any other IP is "public" (kube-proxy's term): this node's IP as provider
 *    address, and the node IP as its service's SourceVIP.
 *
 * A pod IP in the cluster's pod ranges never gets one of this node's IPs as
 * provider address by rules 2–4 either (a stale route or Node): it waits.
 *
 * A {@link PlacementTable} holds the context's facts parsed and indexed, so a
 * lookup costs a few map reads whatever the number of nodes.
 *
 * @module
 */

import type { IpFamily } from "../kube/model.ts";
import type { NodeContext } from "./model.ts";
import { canonicalIp, ipFamilyOf, parseCidr, type ParsedIp, parseIp } from "../net/ip.ts";

/** Where one remote pod IP lives. */
export interface Placement {
  /** The provider address for its remote endpoint. */
  readonly providerAddress: string | undefined;
  /** The IP matched no route and no known node: kube-proxy calls it public. */
  readonly publicIp: boolean;
  /** The IP is itself a node's IP (host-network pod on another node). */
  readonly nodeIp: boolean;
}

/** A longest-prefix lookup over CIDRs. */
export interface PrefixLookup<T> {
  /** The value of the longest prefix containing `ip`. */
  longest(ip: ParsedIp): T | undefined;
}

/** Longest-prefix lookup over CIDRs: per family and prefix length, masked address → value. */
class PrefixIndex<T> implements PrefixLookup<T> {
  readonly #v4 = new Map<number, Map<number, T>>();
  readonly #v6 = new Map<number, Map<string, T>>();
  #lengths4: number[] = [];
  #lengths6: number[] = [];

  /** Add a CIDR (the first value of a prefix stays); false when the CIDR is malformed. */
  add(cidr: string, value: T): boolean {
    const c = parseCidr(cidr);
    if (!c) return false;
    if (c.ip.family === "IPv4") {
      const m = this.#level(this.#v4, c.prefix, "IPv4");
      const k = key4(c.ip, c.prefix);
      if (!m.has(k)) m.set(k, value);
    } else {
      const m = this.#level(this.#v6, c.prefix, "IPv6");
      const k = key6(c.ip, c.prefix);
      if (!m.has(k)) m.set(k, value);
    }
    return true;
  }

  /** The value of the longest prefix containing `ip`. */
  longest(ip: ParsedIp): T | undefined {
    if (ip.family === "IPv4") {
      for (const len of this.#lengths4) {
        const v = this.#v4.get(len)!.get(key4(ip, len));
        if (v !== undefined) return v;
      }
    } else {
      for (const len of this.#lengths6) {
        const v = this.#v6.get(len)!.get(key6(ip, len));
        if (v !== undefined) return v;
      }
    }
    return undefined;
  }

  #level<K>(levels: Map<number, Map<K, T>>, len: number, family: IpFamily): Map<K, T> {
    let m = levels.get(len);
    if (!m) {
      m = new Map();
      levels.set(len, m);
      const lengths = [...levels.keys()].sort((a, b) => b - a);
      if (family === "IPv4") this.#lengths4 = lengths;
      else this.#lengths6 = lengths;
    }
    return m;
  }
}

function key4(ip: ParsedIp, len: number): number {
  const b = ip.bytes;
  const v = ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return (v & mask) >>> 0;
}

function key6(ip: ParsedIp, len: number): string {
  let out = "";
  for (let i = 0, bits = len; i < 16; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : bits <= 0 ? 0 : (0xff << (8 - bits)) & 0xff;
    out += String.fromCharCode(ip.bytes[i] & mask);
  }
  return out;
}

/** The placement facts of a node context, parsed and indexed. Build with {@link placementTable}. */
export interface PlacementTable {
  /** Placement by RemoteSubnetRoute prefix. */
  readonly routes: PrefixLookup<Placement>;
  /** Placement by a node's pod CIDR. */
  readonly podCidrs: PrefixLookup<Placement>;
  /** Placement by node name. */
  readonly byNodeName: ReadonlyMap<string, Placement>;
  /** Node IPs (routes' provider addresses and nodes' addresses), canonical. */
  readonly nodeIps: ReadonlySet<string>;
  /** The cluster's pod ranges. */
  readonly clusterRanges: PrefixLookup<true>;
  /** This node's IPs, canonical. */
  readonly ownIps: ReadonlySet<string>;
  /** The public placement of each family: this node's IP as provider address. */
  readonly publicByFamily: ReadonlyMap<IpFamily, Placement>;
}

/** Whether the network is an overlay (VXLAN) network, where placement applies. */
export function isOverlay(ctx: NodeContext): boolean {
  const type = ctx.network.type;
  return type === "overlay" || (type.length === 7 && type.toLowerCase() === "overlay");
}

/**
 * The placement table of a context when its network is an overlay: build it
 * once per context and pass it to every `desiredForService` of that context.
 */
export function placementsFor(ctx: NodeContext): PlacementTable | undefined {
  return isOverlay(ctx) ? placementTable(ctx) : undefined;
}

/** The parsed placement facts of a context. */
export function placementTable(ctx: NodeContext): PlacementTable {
  const nodeIps = new Set<string>();
  const placed = new Map<string, Placement>();
  const placementOf = (pa: string) => {
    let p = placed.get(pa);
    if (!p) {
      p = { providerAddress: pa, publicIp: false, nodeIp: false };
      placed.set(pa, p);
    }
    return p;
  };
  const routes = new PrefixIndex<Placement>();
  for (const r of ctx.network.remoteSubnetRoutes) {
    const pa = canonicalIp(r.providerAddress);
    if (!pa) continue;
    nodeIps.add(pa);
    routes.add(r.prefix, placementOf(pa));
  }
  const podCidrs = new PrefixIndex<Placement>();
  const byNodeName = new Map<string, Placement>();
  for (const n of ctx.nodePlacements ?? []) {
    const pa = canonicalIp(n.providerAddress);
    if (!pa) continue;
    nodeIps.add(pa);
    for (const cidr of n.podCidrs) podCidrs.add(cidr, placementOf(pa));
    if (!byNodeName.has(n.nodeName)) byNodeName.set(n.nodeName, placementOf(pa));
  }
  const clusterRanges = new PrefixIndex<true>();
  for (const cidr of ctx.clusterCidrs ?? []) clusterRanges.add(cidr, true);
  const ownIps = new Set<string>();
  for (const ip of ctx.nodeIPs) {
    const c = canonicalIp(ip);
    if (c) ownIps.add(c);
  }
  const publicByFamily = new Map<IpFamily, Placement>();
  for (const family of ["IPv4", "IPv6"] as const) {
    publicByFamily.set(family, {
      providerAddress: nodeIpOf(ctx, family),
      publicIp: true,
      nodeIp: false,
    });
  }
  return { routes, podCidrs, byNodeName, nodeIps, clusterRanges, ownIps, publicByFamily };
}

/** The node's first IP of a family, canonical. */
export function nodeIpOf(ctx: NodeContext, family: IpFamily): string | undefined {
  for (const ip of ctx.nodeIPs) {
    const c = canonicalIp(ip);
    if (c && ipFamilyOf(c) === family) return c;
  }
  return undefined;
}

/**
 * The node's primary IP family: that of its first IP (IPv4 when it has none).
 * Overlay networks are single-stack, as with kube-proxy: only this family is
 * programmed there.
 */
export function primaryFamily(ctx: NodeContext): IpFamily {
  const first = ctx.nodeIPs.length > 0 ? ipFamilyOf(ctx.nodeIPs[0]) : undefined;
  return first ?? "IPv4";
}

/**
 * Where the remote pod `ip` (canonical; on node `nodeName` when known) lives,
 * by the rules above; undefined while it must wait.
 */
export function placeOnOverlay(
  table: PlacementTable,
  ip: string,
  nodeName: string | undefined,
): Placement | undefined {
  if (table.nodeIps.has(ip)) return { providerAddress: ip, publicIp: false, nodeIp: true };
  const parsed = parseIp(ip);
  if (!parsed) return undefined;
  const inCluster = table.clusterRanges.longest(parsed) !== undefined;
  let found = table.routes.longest(parsed) ?? table.podCidrs.longest(parsed);
  if (!found && nodeName !== undefined) {
    const byName = table.byNodeName.get(nodeName);
    if (byName && ipFamilyOf(byName.providerAddress!) === parsed.family) found = byName;
  }
  if (found && !(inCluster && table.ownIps.has(found.providerAddress!))) return found;
  return inCluster ? undefined : table.publicByFamily.get(parsed.family);
}
