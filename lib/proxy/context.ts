/**
 * Building the {@link NodeContext} from what HNS and the cluster say about
 * this node: the HNS network (type, RemoteSubnetRoute policies), the CNI's
 * endpoints on it, the root host endpoint, the node's IPs and zone, and the
 * proxy's settings.
 *
 * @module
 */

import {
  EndpointFlags,
  type HcnEndpoint,
  type HcnNetwork,
  type HnsFeatures,
} from "../hns/types.ts";
import type { NodeInfo, NodePlacement } from "../kube/model.ts";
import type { NetworkInfo, NodeContext, RemoteSubnetRoute } from "./model.ts";
import { canonicalIp } from "./net.ts";

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
}

/** The {@link NetworkInfo} of an HNS network; undefined when it has no ID. */
export function networkInfo(network: HcnNetwork): NetworkInfo | undefined {
  if (typeof network.ID !== "string" || network.ID === "") return undefined;
  const routes: RemoteSubnetRoute[] = [];
  for (const policy of Array.isArray(network.Policies) ? network.Policies : []) {
    if (String(policy?.Type ?? "").toLowerCase() !== "remotesubnetroute") continue;
    const s = (policy.Settings ?? {}) as Record<string, unknown>;
    const prefix = typeof s.DestinationPrefix === "string" ? s.DestinationPrefix : undefined;
    const pa = typeof s.ProviderAddress === "string" ? canonicalIp(s.ProviderAddress) : undefined;
    if (prefix && pa) routes.push({ prefix, providerAddress: pa });
  }
  return {
    id: network.ID,
    name: String(network.Name ?? ""),
    type: String(network.Type ?? "").toLowerCase(),
    remoteSubnetRoutes: routes,
  };
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
  return typeof net === "string" && net.toLowerCase() === networkId.toLowerCase();
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
  /** Every node's placement (pod CIDRs, InternalIPs), by node name. */
  placements?: ReadonlyMap<string, NodePlacement>;
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
  if (inputs.placements) ctx.nodeIPsByName = nodeIPsByNameOf(inputs.placements);
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

/** The InternalIPs of every node by name, canonical: where a remote pod on that node lives. */
export function nodeIPsByNameOf(
  placements: ReadonlyMap<string, NodePlacement>,
): Map<string, readonly string[]> {
  const out = new Map<string, readonly string[]>();
  for (const [name, p] of placements) {
    const ips = p.internalIPs.map((ip) => canonicalIp(ip)).filter((ip): ip is string => !!ip);
    if (ips.length > 0) out.set(name, ips);
  }
  return out;
}

/**
 * The context with the cluster's current node placements. Only the
 * services with an endpoint on a changed node read them, and the cluster
 * store marks those dirty, so the result is not a context change that
 * recomputes everything ({@link contextChanged} ignores `nodeIPsByName`).
 */
export function contextForPlacements(
  ctx: NodeContext,
  placements: ReadonlyMap<string, NodePlacement>,
): NodeContext {
  return { ...ctx, nodeIPsByName: nodeIPsByNameOf(placements) };
}

/** Whether two contexts differ in anything that changes the desired state. */
export function contextChanged(a: NodeContext, b: NodeContext): boolean {
  if (a.network.id !== b.network.id || a.zone !== b.zone) return true;
  if (a.rootHnsEndpointId !== b.rootHnsEndpointId) return true;
  if (a.nodeIPs.join(",") !== b.nodeIPs.join(",")) return true;
  if (JSON.stringify(a.features) !== JSON.stringify(b.features)) return true;
  if (
    JSON.stringify(a.network.remoteSubnetRoutes) !== JSON.stringify(b.network.remoteSubnetRoutes)
  ) {
    return true;
  }
  if (a.localEndpoints.size !== b.localEndpoints.size) return true;
  for (const [ip, id] of a.localEndpoints) if (b.localEndpoints.get(ip) !== id) return true;
  return false;
}
