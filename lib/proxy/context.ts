/**
 * Building the {@link NodeContext} from what HNS and the cluster say about
 * this node: the HNS network (type, RemoteSubnetRoute policies), the CNI's
 * endpoints on it, the root host endpoint, the node's IPs and zone, on
 * overlay the host's MAC (`--host-mac`, else the interface holding a node
 * IP), and the proxy's settings.
 *
 * @module
 */

import {
  EndpointFlags,
  type HcnEndpoint,
  type HcnNetwork,
  type HnsFeatures,
} from "../hns/types.ts";
import type { NodeInfo, NodePlacement as KubeNodePlacement } from "../kube/model.ts";
import type { NetworkInfo, NodeContext, NodePlacement, RemoteSubnetRoute } from "./model.ts";
import { findHostMac, type HostInterface } from "../net/host_mac.ts";
import { canonicalIp } from "../net/ip.ts";

/** The proxy settings that go into the node context. */
export interface ContextSettings {
  /** This node's name. */
  nodeName: string;
  /**
   * Node IPs to use instead of the Node object's InternalIPs (`--bind-address`
   * when it is a specific address); empty to use the Node object's.
   */
  nodeIPOverride: readonly string[];
  /** `--source-vip` addresses. */
  sourceVips: readonly string[];
  /** `--enable-dsr`. */
  enableDSR: boolean;
  /** `forwardHealthCheckVip`. */
  forwardHealthCheckVip: boolean;
  /** `rootHnsEndpointName` (default `cbr0`). */
  rootHnsEndpointName: string;
  /** Port of the healthz server. */
  healthzPort: number;
  /** `--host-mac`: the host's MAC for overlay endpoints instead of looking it up. */
  hostMac?: string;
  /** The host's interfaces, read when an overlay context is built to find the host's MAC. */
  hostInterfaces?: () => readonly HostInterface[];
  /** `--cluster-cidr`: the cluster's pod IP ranges. */
  clusterCidrs?: readonly string[];
}

/** The {@link NetworkInfo} of an HNS network; undefined when it has no ID. */
export function networkInfo(network: HcnNetwork): NetworkInfo | undefined {
  if (typeof network.ID !== "string" || network.ID === "") return undefined;
  return {
    id: network.ID,
    name: String(network.Name ?? ""),
    type: String(network.Type ?? "").toLowerCase(),
    remoteSubnetRoutes: remoteSubnetRoutesOf(network),
  };
}

/** The network's RemoteSubnetRoute policies (the CNI adds one per node as nodes join), in order. */
export function remoteSubnetRoutesOf(network: HcnNetwork): RemoteSubnetRoute[] {
  const routes: RemoteSubnetRoute[] = [];
  for (const policy of Array.isArray(network.Policies) ? network.Policies : []) {
    if (String(policy?.Type ?? "").toLowerCase() !== "remotesubnetroute") continue;
    const s = (policy.Settings ?? {}) as Record<string, unknown>;
    const prefix = typeof s.DestinationPrefix === "string" ? s.DestinationPrefix : undefined;
    const pa = typeof s.ProviderAddress === "string" ? canonicalIp(s.ProviderAddress) : undefined;
    if (prefix && pa) routes.push({ prefix, providerAddress: pa });
  }
  return routes;
}

/** Whether an HNS endpoint is a remote endpoint (flag 1). */
export function isRemoteEndpoint(ep: HcnEndpoint): boolean {
  return ((ep.Flags ?? 0) & EndpointFlags.RemoteEndpoint) !== 0;
}

/** The canonical first IP of an HNS endpoint, if any. */
export function endpointIp(ep: HcnEndpoint): string | undefined {
  const cfg = Array.isArray(ep.IpConfigurations) ? ep.IpConfigurations[0] : undefined;
  return cfg?.IpAddress ? canonicalIp(String(cfg.IpAddress)) : undefined;
}

/** Every canonical IP of an HNS endpoint's IpConfigurations (dual-stack pods have two), in order. */
export function endpointIps(ep: HcnEndpoint): string[] {
  const out: string[] = [];
  for (const cfg of Array.isArray(ep.IpConfigurations) ? ep.IpConfigurations : []) {
    const ip = cfg?.IpAddress ? canonicalIp(String(cfg.IpAddress)) : undefined;
    if (ip && !out.includes(ip)) out.push(ip);
  }
  return out;
}

/** Whether an HNS endpoint is attached to the network with this ID. */
export function onNetwork(ep: HcnEndpoint, networkId: string): boolean {
  const net = ep.HostComputeNetwork ?? (ep as Record<string, unknown>).VirtualNetwork;
  return typeof net === "string" &&
    (net === networkId || net.toLowerCase() === networkId.toLowerCase());
}

/**
 * The endpoints LBs may use without owning them: non-remote endpoints on the
 * network (the CNI's pods, host endpoints) that hnsproxy does not own, by
 * canonical IP → HNS ID. Every IP of an endpoint is indexed (a dual-stack
 * pod's one endpoint serves both its IPv4 and its IPv6 address).
 */
export function localEndpointsOf(
  endpoints: readonly HcnEndpoint[],
  networkId: string,
  owns: (id: string) => boolean,
): Map<string, string> {
  const out = new Map<string, string>();
  for (const ep of endpoints) {
    if (typeof ep.ID !== "string" || isRemoteEndpoint(ep) || owns(ep.ID)) continue;
    if (!onNetwork(ep, networkId)) continue;
    const cfgs = ep.IpConfigurations;
    if (Array.isArray(cfgs) && cfgs.length === 1) {
      // One IP, the usual case: without the list of them.
      const ip = cfgs[0]?.IpAddress ? canonicalIp(String(cfgs[0].IpAddress)) : undefined;
      if (ip && !out.has(ip)) out.set(ip, ep.ID);
      continue;
    }
    for (const ip of endpointIps(ep)) if (!out.has(ip)) out.set(ip, ep.ID);
  }
  return out;
}

/** The ID of the endpoint named `name` on the network, if any. */
export function findEndpointByName(
  endpoints: readonly HcnEndpoint[],
  networkId: string,
  name: string,
): string | undefined {
  const found = endpoints.find((ep) =>
    ep.Name === name && typeof ep.ID === "string" && onNetwork(ep, networkId)
  );
  return found?.ID;
}

/** The node's IPs: the override when given, else the Node object's InternalIPs. */
export function nodeIPsOf(settings: ContextSettings, node: NodeInfo | undefined): string[] {
  const from = settings.nodeIPOverride.length > 0
    ? settings.nodeIPOverride
    : node?.internalIPs ?? [];
  return from.map((ip) => canonicalIp(ip)).filter((ip): ip is string => ip !== undefined);
}

/** Everything needed to build a {@link NodeContext}. */
export interface ContextInputs {
  /** The proxy's settings. */
  settings: ContextSettings;
  /** The HNS network. */
  network: NetworkInfo;
  /** What HNS supports. */
  features: HnsFeatures;
  /** The network's endpoints as HNS lists them. */
  endpoints: readonly HcnEndpoint[];
  /** Whether hnsproxy owns an HNS ID. */
  owns: (id: string) => boolean;
  /** The agent's Node, once seen. */
  node?: NodeInfo;
  /** Every node's placement (pod CIDRs, InternalIPs) by name, as the cluster store holds them. */
  placements?: ReadonlyMap<string, KubeNodePlacement>;
}

/** Build the node context. */
export function buildNodeContext(inputs: ContextInputs): NodeContext {
  const { settings, network, features, endpoints, owns, node } = inputs;
  const ctx: NodeContext = {
    nodeName: settings.nodeName,
    nodeIPs: nodeIPsOf(settings, node),
    features,
    network,
    sourceVips: settings.sourceVips.map((ip) => canonicalIp(ip) ?? ip),
    enableDSR: settings.enableDSR,
    forwardHealthCheckVip: settings.forwardHealthCheckVip,
    rootHnsEndpointName: settings.rootHnsEndpointName,
    healthzPort: settings.healthzPort,
    localEndpoints: localEndpointsOf(endpoints, network.id, owns),
  };
  if (node?.zone) ctx.zone = node.zone;
  if (inputs.placements) ctx.nodePlacements = nodePlacementsOf(settings, inputs.placements);
  if (settings.clusterCidrs?.length) ctx.clusterCidrs = settings.clusterCidrs;
  if (network.type === "overlay") {
    const found = settings.hostMac !== undefined
      ? { mac: settings.hostMac }
      : settings.hostInterfaces && findHostMac(settings.hostInterfaces(), ctx.nodeIPs);
    if (found && "mac" in found) ctx.hostMac = found.mac;
  }
  const root = findEndpointByName(endpoints, network.id, settings.rootHnsEndpointName);
  if (root) ctx.rootHnsEndpointId = root;
  return ctx;
}

/**
 * The context for a changed Node object: its IPs (unless overridden) and
 * zone. Returns `ctx` itself when nothing that matters changed.
 */
export function contextForNode(
  ctx: NodeContext,
  settings: ContextSettings,
  node: NodeInfo | undefined,
): NodeContext {
  const next: NodeContext = { ...ctx, nodeIPs: nodeIPsOf(settings, node) };
  if (node?.zone) next.zone = node.zone;
  else delete next.zone;
  return contextChanged(ctx, next) ? next : ctx;
}

/**
 * The context with the root host endpoint (backend of the health-check VIP
 * LBs) at this ID, or without one. Returns `ctx` itself when it is unchanged.
 */
export function contextWithRoot(ctx: NodeContext, id: string | undefined): NodeContext {
  if (id === ctx.rootHnsEndpointId) return ctx;
  const next: NodeContext = { ...ctx };
  if (id === undefined) delete next.rootHnsEndpointId;
  else next.rootHnsEndpointId = id;
  return next;
}

/**
 * The other nodes' placements for the node context: each node's pod CIDRs
 * and, as the provider address of its pods, its first InternalIP. Nodes
 * without an InternalIP and this node itself are left out; sorted by name
 * so that equal placements compare equal.
 */
export function nodePlacementsOf(
  settings: ContextSettings,
  placements: ReadonlyMap<string, KubeNodePlacement>,
): NodePlacement[] {
  const out: NodePlacement[] = [];
  for (const [name, p] of placements) {
    if (name === settings.nodeName) continue;
    const providerAddress = p.internalIPs.map((ip) => canonicalIp(ip)).find((ip) => ip);
    if (providerAddress) out.push({ nodeName: name, podCidrs: p.podCIDRs, providerAddress });
  }
  return out.sort((a, b) => a.nodeName < b.nodeName ? -1 : a.nodeName > b.nodeName ? 1 : 0);
}

/**
 * The context with the cluster's current node placements. Returns `ctx`
 * itself when they place no pod differently.
 */
export function contextForPlacements(
  ctx: NodeContext,
  settings: ContextSettings,
  placements: ReadonlyMap<string, KubeNodePlacement>,
): NodeContext {
  const next: NodeContext = { ...ctx, nodePlacements: nodePlacementsOf(settings, placements) };
  return contextChanged(ctx, next) ? next : ctx;
}

/**
 * The context with the network's RemoteSubnetRoute policies as HNS has them
 * now. Returns `ctx` itself when they are the same routes in the same order.
 */
export function contextWithRoutes(
  ctx: NodeContext,
  routes: readonly RemoteSubnetRoute[],
): NodeContext {
  if (sameJson(ctx.network.remoteSubnetRoutes, routes)) return ctx;
  return { ...ctx, network: { ...ctx.network, remoteSubnetRoutes: [...routes] } };
}

/** Whether two contexts differ in anything that changes the desired state. */
export function contextChanged(a: NodeContext, b: NodeContext): boolean {
  if (a.network.id !== b.network.id || a.zone !== b.zone) return true;
  if (a.rootHnsEndpointId !== b.rootHnsEndpointId || a.hostMac !== b.hostMac) return true;
  if (a.nodeIPs.join(",") !== b.nodeIPs.join(",")) return true;
  if (JSON.stringify(a.features) !== JSON.stringify(b.features)) return true;
  if (
    JSON.stringify(a.network.remoteSubnetRoutes) !== JSON.stringify(b.network.remoteSubnetRoutes)
  ) {
    return true;
  }
  if (!sameJson(a.nodePlacements, b.nodePlacements) || !sameJson(a.clusterCidrs, b.clusterCidrs)) {
    return true;
  }
  if (a.localEndpoints.size !== b.localEndpoints.size) return true;
  for (const [ip, id] of a.localEndpoints) if (b.localEndpoints.get(ip) !== id) return true;
  return false;
}

const sameJson = (a: unknown, b: unknown) => a === b || JSON.stringify(a) === JSON.stringify(b);
