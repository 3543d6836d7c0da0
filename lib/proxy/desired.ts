/**
 * The desired HNS state of the node, computed purely from the cluster state
 * (services and their EndpointSlices) and the {@link NodeContext}.
 *
 * Per service port and per IP family the service serves: a ClusterIP load
 * balancer, a NodePort LB, one LB per external IP and per load-balancer
 * ingress IP, and (with `forwardHealthCheckVip`) a health-check LB per ingress
 * IP — each only when it has backends, as kube-proxy does. Backends reference
 * the CNI's endpoints on this node and remote endpoints hnsproxy creates, one
 * per pod IP shared by all services.
 *
 * `desiredForService` computes one service (the runner recomputes only dirty
 * services); `assembleDesired` joins per-service results into the node's
 * state, resolving LB keys claimed by several services deterministically;
 * `updateDesired` patches a joined state for the services that changed, at a
 * cost that follows the change rather than the cluster.
 *
 * @module
 */

import { DistributionType, IpProtocol, LoadBalancerFlags, PortMappingFlags } from "../hns/types.ts";
import type {
  ClusterView,
  EndpointSliceInfo,
  IpFamily,
  ObjectKey,
  ServiceInfo,
  ServicePortInfo,
} from "../kube/model.ts";
import {
  hostEndpointKey,
  loadBalancerKey,
  localEndpointKey,
  remoteEndpointKey,
  sourceVipEndpointKey,
} from "./keys.ts";
import type {
  DesiredLoadBalancer,
  DesiredRemoteEndpoint,
  DesiredState,
  Diagnostic,
  DiagnosticLevel,
  EpKey,
  HealthCheckWanted,
  LbKey,
  LbKind,
  NodeContext,
  NoLocalEndpoints,
  RemoteSubnetRoute,
  ServiceDesired,
} from "./model.ts";
import {
  canonicalIp,
  cidrContains,
  ipFamilyOf,
  parseCidr,
  type ParsedCidr,
  parseIp,
} from "../net/ip.ts";
import { remoteEndpointMac } from "./net.ts";

/** kube-proxy's default ClientIP affinity timeout; any other value is reported as ignored. */
const DEFAULT_AFFINITY_TIMEOUT_SECONDS = 10800;

/** Whether the network is an overlay (VXLAN) network. */
export function isOverlay(ctx: NodeContext): boolean {
  return ctx.network.type.toLowerCase() === "overlay";
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

const validPort = (n: unknown): n is number =>
  typeof n === "number" && Number.isInteger(n) && n >= 1 && n <= 65535;

/** One endpoint of a service port, after parsing and de-duplication by IP. */
interface Candidate {
  ip: string;
  port: number;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  local: boolean;
  nodeName?: string;
  hintZones?: string[];
}

/** Collects diagnostics of one service, one per (field, reason). */
class Diagnostics {
  readonly list: Diagnostic[] = [];
  readonly #seen = new Set<string>();
  constructor(readonly serviceKey: ObjectKey) {}
  add(
    level: DiagnosticLevel,
    field: string,
    reason: string,
    detail: string,
    endpointIp?: string,
  ): void {
    const id = `${field}\u0000${reason}`;
    if (this.#seen.has(id)) return;
    this.#seen.add(id);
    const d: Diagnostic = {
      level,
      serviceKey: this.serviceKey,
      field,
      reason,
      message: `service ${this.serviceKey}: ${field}: ${detail}`,
    };
    if (endpointIp !== undefined) d.endpointIp = endpointIp;
    this.list.push(d);
  }
}

/** The node's first IP of a family, canonical. */
function nodeIpOf(ctx: NodeContext, family: IpFamily): string | undefined {
  for (const ip of ctx.nodeIPs) {
    const c = canonicalIp(ip);
    if (c && ipFamilyOf(c) === family) return c;
  }
  return undefined;
}

/** The configured source VIP of a family, canonical. */
function sourceVipOf(ctx: NodeContext, family: IpFamily): string | undefined {
  for (const ip of ctx.sourceVips) {
    const c = canonicalIp(ip);
    if (c && ipFamilyOf(c) === family) return c;
  }
  return undefined;
}

/** Where a remote pod lives, for the ProviderAddress policy and the SourceVIP choice. */
interface Placement {
  providerAddress?: string;
  /** The IP matched no RemoteSubnetRoute and no known node: kube-proxy calls it public. */
  publicIp: boolean;
  /** The IP is itself a node's IP (host-network pod on another node). */
  nodeIp: boolean;
}

/**
 * Overlay placement: the RemoteSubnetRoute with the longest prefix containing
 * the IP; an IP equal to a route's provider address is a node IP; else the IP
 * of the endpoint's node when the context knows it; else (as kube-proxy) this
 * node's IP, treating the address as public.
 */
function placeOnOverlay(ctx: NodeContext, ip: string, nodeName: string | undefined): Placement {
  const family = ipFamilyOf(ip);
  const parsed = parseIp(ip);
  let best: { len: number; pa: string } | undefined;
  for (const { pa, cidr } of parsedRoutes(ctx.network.remoteSubnetRoutes)) {
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

/** A RemoteSubnetRoute with its provider address canonical and its prefix parsed. */
interface ParsedRoute {
  pa: string | undefined;
  cidr: ParsedCidr | undefined;
}

// Parsed once per (immutable) route list rather than once per endpoint: at
// 50,000 endpoints the per-endpoint parsing was most of the garbage of a full desired state,
// and it gave every endpoint its own copy of its provider address string.
const routeCache = new WeakMap<readonly RemoteSubnetRoute[], ParsedRoute[]>();

function parsedRoutes(routes: readonly RemoteSubnetRoute[]): ParsedRoute[] {
  let out = routeCache.get(routes);
  if (!out) {
    out = routes.map((r) => ({ pa: canonicalIp(r.providerAddress), cidr: parseCidr(r.prefix) }));
    routeCache.set(routes, out);
  }
  return out;
}

/** Ready endpoints; when none is ready, the serving-and-terminating ones. */
function usable(set: readonly Candidate[]): Candidate[] {
  const ready = set.filter((c) => c.ready);
  return ready.length > 0 ? ready : set.filter((c) => c.serving && c.terminating);
}

/**
 * Topology: when every endpoint carries zone hints and the node's zone is
 * known, keep the endpoints hinted for it (all of them when none is).
 */
function byTopology(set: Candidate[], zone: string | undefined): Candidate[] {
  if (!zone || set.length === 0 || !set.every((c) => (c.hintZones?.length ?? 0) > 0)) return set;
  const mine = set.filter((c) => c.hintZones!.includes(zone));
  return mine.length > 0 ? mine : set;
}

/** Everything one service port contributes, gathered while walking its LBs. */
interface Acc {
  lbs: Map<LbKey, DesiredLoadBalancer>;
  remotes: Map<EpKey, DesiredRemoteEndpoint>;
  existing: Map<EpKey, string>;
  diags: Diagnostics;
}

/**
 * Gather the endpoints of one service port in one family from the slices:
 * the slice port with the service port's name and protocol gives each
 * endpoint's port; an IP listed twice is kept once, preferring a ready entry.
 */
function candidatesFor(
  sp: ServicePortInfo,
  spIndex: number,
  family: IpFamily,
  slices: readonly EndpointSliceInfo[],
  ctx: NodeContext,
  diags: Diagnostics,
): Candidate[] {
  const byIp = new Map<string, Candidate>();
  const sorted = [...slices].sort((a, b) => cmp(a.name, b.name));
  for (const slice of sorted) {
    if (slice.addressType !== family) continue;
    const sliceRef = `EndpointSlice ${slice.namespace}/${slice.name}`;
    const pIdx = slice.ports.findIndex((p) => p.name === sp.name && p.protocol === sp.protocol);
    if (pIdx < 0) continue;
    const port = slice.ports[pIdx].port;
    if (!validPort(port)) {
      diags.add(
        "warning",
        `${sliceRef} ports[${pIdx}].port`,
        "InvalidEndpointPort",
        `port ${
          JSON.stringify(port)
        } for service port ${spIndex} is not a valid port; its endpoints are skipped`,
      );
      continue;
    }
    slice.endpoints.forEach((ep, i) => {
      const ip = sharedCanonicalIp(ep.address);
      if (!ip || ipFamilyOf(ip) !== family) {
        diags.add(
          "warning",
          `${sliceRef} endpoints[${i}].addresses[0]`,
          "InvalidEndpointAddress",
          `${JSON.stringify(ep.address)} is not an ${family} address; endpoint skipped`,
        );
        return;
      }
      const cand: Candidate = {
        ip,
        port,
        ready: ep.ready,
        serving: ep.serving,
        terminating: ep.terminating,
        local: ctx.localEndpoints.has(ip) ||
          (ep.nodeName !== undefined && ep.nodeName === ctx.nodeName),
        nodeName: ep.nodeName,
        hintZones: ep.hintZones,
      };
      const prev = byIp.get(ip);
      if (!prev || (!prev.ready && cand.ready)) byIp.set(ip, cand);
    });
  }
  return [...byIp.values()].sort((a, b) => cmp(a.ip, b.ip));
}

/** Inputs shared by the LBs of one service port in one family. */
interface PortFamily {
  svc: ServiceInfo;
  sp: ServicePortInfo;
  spIndex: number;
  family: IpFamily;
  protocol: number;
  distributionType: number;
  ctx: NodeContext;
}

/**
 * Turn a backend set into endpoint references and the single internal port:
 * the most common port among the endpoints (ties: the lowest); endpoints with
 * another port are left out with a warning. Local endpoints not found in HNS
 * are left out with a warning. Returns undefined when nothing is left.
 */
function resolveBackends(
  pf: PortFamily,
  set: readonly Candidate[],
  acc: Acc,
): { backends: EpKey[]; internalPort: number; publicOrNode: boolean } | undefined {
  const { ctx, sp, spIndex } = pf;
  const present: Candidate[] = [];
  for (const c of set) {
    if (c.local && !ctx.localEndpoints.has(c.ip)) {
      acc.diags.add(
        "warning",
        `spec.ports[${spIndex}] endpoint ${c.ip}`,
        "LocalEndpointNotFound",
        `endpoint ${c.ip} is on this node but HNS has no endpoint with that IP on network ${ctx.network.name}; left out`,
        c.ip,
      );
      continue;
    }
    present.push(c);
  }
  if (present.length === 0) return undefined;
  const counts = new Map<number, number>();
  for (const c of present) counts.set(c.port, (counts.get(c.port) ?? 0) + 1);
  let internalPort = 0, best = -1;
  for (const [port, n] of counts) {
    if (n > best || (n === best && port < internalPort)) {
      internalPort = port;
      best = n;
    }
  }
  if (counts.size > 1) {
    const others = [...counts.keys()].filter((p) => p !== internalPort).sort((a, b) => a - b);
    acc.diags.add(
      "warning",
      `spec.ports[${spIndex}].targetPort`,
      "TargetPortMismatch",
      `target port ${
        JSON.stringify(sp.targetPort)
      } resolves to several numbers; using ${internalPort}, endpoints on ${
        others.join(", ")
      } left out`,
    );
  }
  const backends: EpKey[] = [];
  let publicOrNode = false;
  for (const c of present) {
    if (c.port !== internalPort) continue;
    if (c.local) {
      const key = localEndpointKey(c.ip);
      acc.existing.set(key, ctx.localEndpoints.get(c.ip)!);
      backends.push(key);
      continue;
    }
    const key = remoteEndpointKey(c.ip);
    let placement: Placement = { publicIp: false, nodeIp: false };
    if (isOverlay(ctx)) placement = placeOnOverlay(ctx, c.ip, c.nodeName);
    publicOrNode ||= placement.publicIp || placement.nodeIp;
    if (!acc.remotes.has(key)) {
      const ep: DesiredRemoteEndpoint = {
        key,
        ip: c.ip,
        remote: true,
        family: pf.family,
        mac: remoteEndpointMac(c.ip),
        networkId: ctx.network.id,
        role: "remote",
      };
      if (placement.providerAddress !== undefined) ep.providerAddress = placement.providerAddress;
      acc.remotes.set(key, ep);
    }
    backends.push(key);
  }
  backends.sort(cmp);
  return { backends, internalPort, publicOrNode };
}

/** Add one LB to the service's set (first claim of a key wins, with a warning on the others). */
function addLb(
  pf: PortFamily,
  acc: Acc,
  kind: LbKind,
  field: string,
  vip: string | undefined,
  externalPort: number,
  set: readonly Candidate[],
  flags: number,
  portMappingFlags: number,
): void {
  const r = resolveBackends(pf, set, acc);
  if (!r) return;
  const { ctx, family } = pf;
  const key = loadBalancerKey({ protocol: pf.protocol, vip, port: externalPort, family });
  if (acc.lbs.has(key)) {
    acc.diags.add(
      "warning",
      field,
      "DuplicateLoadBalancer",
      `${key} is already programmed for this service (${acc.lbs.get(key)!.kind}); ${kind} skipped`,
    );
    return;
  }
  const lb: DesiredLoadBalancer = {
    key,
    kind,
    serviceKey: acc.diags.serviceKey,
    portName: pf.sp.name,
    family,
    protocol: pf.protocol,
    externalPort,
    internalPort: r.internalPort,
    flags: flags | (family === "IPv6" ? LoadBalancerFlags.IPv6 : 0),
    portMappingFlags,
    distributionType: pf.distributionType,
    backends: r.backends,
  };
  if (vip !== undefined) lb.vip = vip;
  if (isOverlay(ctx)) {
    const sv = r.publicOrNode ? nodeIpOf(ctx, family) : sourceVipOf(ctx, family);
    if (sv !== undefined) lb.sourceVip = sv;
  }
  acc.lbs.set(key, lb);
}

/** Empty result for a service that programs nothing. */
function emptyResult(serviceKey: ObjectKey, diagnostics: Diagnostic[] = []) {
  return {
    serviceKey,
    loadBalancers: [],
    remoteEndpoints: [],
    existingEndpoints: [],
    diagnostics,
  };
}

/**
 * Everything one service wants in HNS, from the service, its EndpointSlices
 * and the node context. Pure and deterministic; never throws on bad input
 * (problems become diagnostics naming the service and the field).
 */
export function desiredForService(
  svc: ServiceInfo,
  slices: readonly EndpointSliceInfo[],
  ctx: NodeContext,
): ServiceDesired {
  const serviceKey = `${svc.namespace}/${svc.name}`;
  const diags = new Diagnostics(serviceKey);
  if (svc.type === "ExternalName") return emptyResult(serviceKey);

  // The families this service serves, from its cluster IPs (headless: none).
  const clusterIpByFamily = new Map<IpFamily, string>();
  (svc.clusterIPs ?? []).forEach((raw, i) => {
    if (raw === "None" || raw === "") return;
    const ip = sharedCanonicalIp(raw);
    if (!ip) {
      diags.add(
        "error",
        `spec.clusterIPs[${i}]`,
        "InvalidClusterIP",
        `${JSON.stringify(raw)} is not an IP address`,
      );
      return;
    }
    const family = ipFamilyOf(ip)!;
    if (family === "IPv6" && !ctx.features.ipv6DualStack) {
      diags.add(
        "warning",
        `spec.clusterIPs[${i}]`,
        "IPv6Unsupported",
        `IPv6 cluster IP ${ip} skipped: this HNS does not support IPv6 dual-stack`,
      );
      return;
    }
    if (!clusterIpByFamily.has(family)) clusterIpByFamily.set(family, ip);
  });
  if (clusterIpByFamily.size === 0) return emptyResult(serviceKey, diags.list);

  const dsr = ctx.features.dsr;
  const etpLocal = svc.externalTrafficPolicy === "Local";
  const itpLocal = svc.internalTrafficPolicy === "Local";
  let preserveDip = svc.preserveDestination;
  if (preserveDip && !dsr) {
    diags.add(
      "warning",
      "metadata.annotations[preserve-destination]",
      "DSRUnsupported",
      "preserve-destination needs DSR, which this HNS does not support; ignored",
    );
    preserveDip = false;
  }
  if (etpLocal && !dsr) {
    diags.add(
      "warning",
      "spec.externalTrafficPolicy",
      "DSRUnsupported",
      "Local is honoured with local endpoints only, without DSR (not supported by this HNS)",
    );
  }
  let distributionType: number = DistributionType.None;
  if (svc.sessionAffinity === "ClientIP") {
    if (ctx.features.sessionAffinity) distributionType = DistributionType.SourceIP;
    else {
      diags.add(
        "warning",
        "spec.sessionAffinity",
        "SessionAffinityUnsupported",
        "ClientIP affinity is not supported by this HNS; connections are distributed per connection",
      );
    }
    const t = svc.sessionAffinityTimeoutSeconds;
    if (t !== undefined && t !== DEFAULT_AFFINITY_TIMEOUT_SECONDS && ctx.features.sessionAffinity) {
      diags.add(
        "warning",
        "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
        "SessionAffinityTimeoutIgnored",
        `HNS has no affinity timeout; ${t}s is ignored`,
      );
    }
  }
  if ((svc.loadBalancerSourceRanges ?? []).length > 0) {
    diags.add(
      "warning",
      "spec.loadBalancerSourceRanges",
      "SourceRangesUnsupported",
      "HNS load balancers cannot filter by source; the ranges are not enforced on this node",
    );
  }

  // External and ingress IPs, parsed once and grouped by family.
  const externalByFamily = new Map<IpFamily, Array<{ ip: string; field: string }>>();
  (svc.externalIPs ?? []).forEach((raw, i) => {
    const ip = canonicalIp(raw);
    const field = `spec.externalIPs[${i}]`;
    if (!ip) {
      diags.add(
        "warning",
        field,
        "InvalidExternalIP",
        `${JSON.stringify(raw)} is not an IP address; skipped`,
      );
      return;
    }
    const f = ipFamilyOf(ip)!;
    if (!clusterIpByFamily.has(f)) {
      diags.add(
        "warning",
        field,
        "IPFamilyMismatch",
        `${ip} is ${f} but the service has no ${f} cluster IP; skipped`,
      );
      return;
    }
    externalByFamily.set(f, [...(externalByFamily.get(f) ?? []), { ip, field }]);
  });
  const ingressByFamily = new Map<IpFamily, Array<{ ip: string; field: string }>>();
  (svc.ingress ?? []).forEach((ing, i) => {
    const field = `status.loadBalancer.ingress[${i}]`;
    if (ing.ipMode === "Proxy") {
      diags.add(
        "warning",
        `${field}.ipMode`,
        "IngressIpModeProxy",
        `ingress ${ing.ip} has ipMode Proxy: traffic reaches the node via the load balancer; not programmed`,
      );
      return;
    }
    const ip = canonicalIp(ing.ip);
    if (!ip) {
      diags.add(
        "warning",
        `${field}.ip`,
        "InvalidIngressIP",
        `${JSON.stringify(ing.ip)} is not an IP address; skipped`,
      );
      return;
    }
    const f = ipFamilyOf(ip)!;
    if (!clusterIpByFamily.has(f)) {
      diags.add(
        "warning",
        `${field}.ip`,
        "IPFamilyMismatch",
        `${ip} is ${f} but the service has no ${f} cluster IP; skipped`,
      );
      return;
    }
    ingressByFamily.set(f, [...(ingressByFamily.get(f) ?? []), { ip, field }]);
  });

  const acc: Acc = { lbs: new Map(), remotes: new Map(), existing: new Map(), diags };
  const noLocal: NoLocalEndpoints[] = [];
  let programmablePorts = 0;

  (svc.ports ?? []).forEach((sp, spIndex) => {
    const f = `spec.ports[${spIndex}]`;
    if (sp.protocol === "SCTP") {
      diags.add(
        "warning",
        `${f}.protocol`,
        "SCTPUnsupported",
        "SCTP is not supported by HNS load balancers; port skipped",
      );
      return;
    }
    const protocol = sp.protocol === "TCP"
      ? IpProtocol.TCP
      : sp.protocol === "UDP"
      ? IpProtocol.UDP
      : undefined;
    if (protocol === undefined) {
      diags.add(
        "error",
        `${f}.protocol`,
        "InvalidProtocol",
        `${JSON.stringify(sp.protocol)} is not TCP or UDP; port skipped`,
      );
      return;
    }
    if (!validPort(sp.port)) {
      diags.add(
        "error",
        `${f}.port`,
        "InvalidPort",
        `${JSON.stringify(sp.port)} is not a valid port; port skipped`,
      );
      return;
    }
    let nodePort = sp.nodePort;
    if (nodePort !== undefined && nodePort !== 0 && !validPort(nodePort)) {
      diags.add(
        "warning",
        `${f}.nodePort`,
        "InvalidPort",
        `${JSON.stringify(nodePort)} is not a valid port; NodePort skipped`,
      );
      nodePort = undefined;
    }
    programmablePorts++;

    for (const [family, clusterIp] of [...clusterIpByFamily].sort((a, b) => cmp(a[0], b[0]))) {
      const pf: PortFamily = { svc, sp, spIndex, family, protocol, distributionType, ctx };
      const all = candidatesFor(sp, spIndex, family, slices, ctx, diags);
      const local = all.filter((c) => c.local);
      const localSet = usable(local);
      const clusterSet = byTopology(usable(all), ctx.zone);
      if (localSet.length === 0 && usable(all).length > 0) {
        // As kube-proxy: only when the service has endpoints elsewhere, and for
        // external traffic only when the port is reachable from outside.
        if (itpLocal) noLocal.push({ trafficPolicy: "internal", family });
        const external = (nodePort !== undefined && nodePort !== 0) ||
          (externalByFamily.get(family)?.length ?? 0) > 0 ||
          (ingressByFamily.get(family)?.length ?? 0) > 0;
        if (etpLocal && external) noLocal.push({ trafficPolicy: "external", family });
      }

      addLb(
        pf,
        acc,
        "clusterIP",
        `spec.clusterIPs`,
        clusterIp,
        sp.port,
        itpLocal ? localSet : clusterSet,
        ctx.enableDSR && dsr ? LoadBalancerFlags.DSR : LoadBalancerFlags.None,
        PortMappingFlags.None,
      );

      const localDsr = etpLocal && dsr ? LoadBalancerFlags.DSR : LoadBalancerFlags.None;
      const externalSet = etpLocal ? localSet : clusterSet;
      if (nodePort) {
        addLb(
          pf,
          acc,
          "nodePort",
          `${f}.nodePort`,
          undefined,
          nodePort,
          etpLocal || preserveDip ? localSet : clusterSet,
          localDsr,
          PortMappingFlags.LocalRoutedVIP | PortMappingFlags.VipExternalIP,
        );
      }
      for (const { ip, field } of externalByFamily.get(family) ?? []) {
        addLb(
          pf,
          acc,
          "externalIP",
          field,
          ip,
          sp.port,
          externalSet,
          localDsr,
          PortMappingFlags.VipExternalIP,
        );
      }
      const ingressSet = etpLocal || preserveDip ? localSet : clusterSet;
      for (const { ip, field } of ingressByFamily.get(family) ?? []) {
        addLb(
          pf,
          acc,
          "ingress",
          field,
          ip,
          sp.port,
          ingressSet,
          preserveDip || etpLocal ? (dsr ? LoadBalancerFlags.DSR : 0) : LoadBalancerFlags.None,
          PortMappingFlags.VipExternalIP |
            (preserveDip ? PortMappingFlags.UseMux | PortMappingFlags.PreserveDIP : 0),
        );
        addHealthCheckLb(pf, acc, ip, field, ingressSet, preserveDip);
      }
    }
  });

  // Overlay: a remote endpoint per cluster IP, with the host's MAC and this node as provider.
  if (isOverlay(ctx) && programmablePorts > 0) {
    for (const [family, ip] of clusterIpByFamily) {
      const key = remoteEndpointKey(ip);
      const pa = nodeIpOf(ctx, family);
      const ep: DesiredRemoteEndpoint = {
        key,
        ip,
        remote: true,
        family,
        mac: ctx.hostMac ?? remoteEndpointMac(ip),
        networkId: ctx.network.id,
        role: "serviceVip",
      };
      if (pa !== undefined) ep.providerAddress = pa;
      acc.remotes.set(key, ep);
    }
  }

  let healthCheck: HealthCheckWanted | undefined;
  if (etpLocal && svc.healthCheckNodePort !== undefined && svc.healthCheckNodePort !== 0) {
    if (!validPort(svc.healthCheckNodePort)) {
      diags.add(
        "warning",
        "spec.healthCheckNodePort",
        "InvalidPort",
        `${JSON.stringify(svc.healthCheckNodePort)} is not a valid port; no health-check server`,
      );
    } else {
      const readyLocal = new Set<string>();
      for (const slice of slices) {
        for (const ep of slice.endpoints) {
          const ip = sharedCanonicalIp(ep.address);
          if (!ip || !ep.ready) continue;
          if (
            ctx.localEndpoints.has(ip) ||
            (ep.nodeName !== undefined && ep.nodeName === ctx.nodeName)
          ) {
            readyLocal.add(ip);
          }
        }
      }
      healthCheck = { serviceKey, port: svc.healthCheckNodePort, localEndpoints: readyLocal.size };
    }
  }

  const result: ServiceDesired = {
    serviceKey,
    loadBalancers: [...acc.lbs.values()].sort((a, b) => cmp(a.key, b.key)),
    remoteEndpoints: [...acc.remotes.values()].sort((a, b) => cmp(a.key, b.key)),
    existingEndpoints: [...acc.existing].map(([key, id]) => ({ key, id })).sort((a, b) =>
      cmp(a.key, b.key)
    ),
    diagnostics: diags.list,
  };
  if (healthCheck) result.healthCheck = healthCheck;
  if (noLocal.length > 0) result.noLocalEndpoints = noLocal;
  return result;
}

/**
 * The `forwardHealthCheckVip` LB of one ingress IP: the service's health-check
 * port (healthCheckNodePort, else the proxy's healthz port) on the ingress IP,
 * forwarded to the root host endpoint. Always TCP, since the health check is
 * HTTP (kube-proxy reuses the service port's protocol). Programmed only while
 * the ingress LB has ready (not only terminating) endpoints, so that a node
 * with nothing ready fails the cloud's probe.
 */
function addHealthCheckLb(
  pf: PortFamily,
  acc: Acc,
  ingressIp: string,
  field: string,
  ingressSet: readonly Candidate[],
  preserveDip: boolean,
): void {
  const { ctx, svc, family } = pf;
  if (!ctx.forwardHealthCheckVip || !ctx.rootHnsEndpointId) return;
  if (!ingressSet.some((c) => c.ready)) return;
  const port = svc.healthCheckNodePort && validPort(svc.healthCheckNodePort)
    ? svc.healthCheckNodePort
    : ctx.healthzPort;
  if (!validPort(port)) return;
  const key = loadBalancerKey({ protocol: IpProtocol.TCP, vip: ingressIp, port, family });
  const existing = acc.lbs.get(key);
  if (existing) {
    if (existing.kind !== "healthCheck") {
      acc.diags.add(
        "warning",
        field,
        "DuplicateLoadBalancer",
        `health-check port ${port} on ${ingressIp} collides with ${existing.kind} ${key}; health-check LB skipped`,
      );
    }
    return;
  }
  const backend = hostEndpointKey(ctx.rootHnsEndpointName);
  acc.existing.set(backend, ctx.rootHnsEndpointId);
  const lb: DesiredLoadBalancer = {
    key,
    kind: "healthCheck",
    serviceKey: acc.diags.serviceKey,
    portName: pf.sp.name,
    family,
    protocol: IpProtocol.TCP,
    vip: ingressIp,
    externalPort: port,
    internalPort: port,
    flags: family === "IPv6" ? LoadBalancerFlags.IPv6 : LoadBalancerFlags.None,
    portMappingFlags: preserveDip ? PortMappingFlags.UseMux | PortMappingFlags.PreserveDIP : 0,
    distributionType: DistributionType.None,
    backends: [backend],
  };
  if (isOverlay(ctx)) {
    const sv = sourceVipOf(ctx, family);
    if (sv !== undefined) lb.sourceVip = sv;
  }
  acc.lbs.set(key, lb);
}

/** The endpoints the node context itself wants: the overlay source-VIP endpoint(s). */
function contextEndpoints(ctx: NodeContext): DesiredRemoteEndpoint[] {
  if (!isOverlay(ctx)) return [];
  const out: DesiredRemoteEndpoint[] = [];
  for (const raw of ctx.sourceVips) {
    const ip = canonicalIp(raw);
    if (!ip) continue;
    out.push({
      key: sourceVipEndpointKey(ip),
      ip,
      remote: false,
      family: ipFamilyOf(ip)!,
      mac: ctx.hostMac ?? remoteEndpointMac(ip),
      networkId: ctx.network.id,
      role: "sourceVip",
    });
  }
  return out;
}

/**
 * The bookkeeping behind a joined desired state, so that {@link updateDesired}
 * patches the joined maps for the changed services only instead of joining
 * every service again. The maps are the state's own (mutated in place).
 */
interface Join {
  services: Map<ObjectKey, ServiceDesired>;
  loadBalancers: Map<LbKey, DesiredLoadBalancer>;
  remoteEndpoints: Map<EpKey, DesiredRemoteEndpoint>;
  endpointRefs: Map<EpKey, number>;
  existingEndpoints: Map<EpKey, string>;
  healthChecks: Map<ObjectKey, HealthCheckWanted>;
  /**
   * The services referencing each remote endpoint: one service key (holding
   * every reference not made by the context), or service → references when
   * several services do. The service with the smallest key provides the
   * endpoint object, as in a join in key order.
   */
  remoteOwners: Map<EpKey, ObjectKey | Map<ObjectKey, number>>;
  /** References to each existing endpoint by load balancers that won their key. */
  existingRefs: Map<EpKey, number>;
  /** Services whose claim of an LB key lost to a service with a smaller key, by LB key. */
  lbLosers: Map<LbKey, Set<ObjectKey>>;
  /** Health-check port → the service holding it. */
  hcPorts: Map<number, ObjectKey>;
  /** Services whose health-check port is held by a service with a smaller key, by port. */
  hcLosers: Map<number, Set<ObjectKey>>;
  /** The context's own endpoints (source VIPs), as counted in. */
  context: DesiredRemoteEndpoint[];
  /** The context's endpoints by key (the last one of a key wins, as in the join). */
  contextByKey: Map<EpKey, DesiredRemoteEndpoint>;
  /** References made by the context, by key. */
  contextRefs: Map<EpKey, number>;
  conflicts: Diagnostic[];
  /** Whether {@link Join.conflicts} must be rebuilt (some claim was won or lost). */
  conflictsStale: boolean;
}

/** The join behind each state made by this module; a state is consumed by {@link updateDesired}. */
const joins = new WeakMap<DesiredState, Join>();
/** States that {@link updateDesired} already updated (their maps are the new state's). */
const consumed = new WeakSet<DesiredState>();

function emptyJoin(): Join {
  return {
    services: new Map(),
    loadBalancers: new Map(),
    remoteEndpoints: new Map(),
    endpointRefs: new Map(),
    existingEndpoints: new Map(),
    healthChecks: new Map(),
    remoteOwners: new Map(),
    existingRefs: new Map(),
    lbLosers: new Map(),
    hcPorts: new Map(),
    hcLosers: new Map(),
    context: [],
    contextByKey: new Map(),
    contextRefs: new Map(),
    conflicts: [],
    conflictsStale: false,
  };
}

/** The endpoints a service names, by key, for resolving its LBs' backends. */
interface ServiceLookups {
  remotes: Map<EpKey, DesiredRemoteEndpoint>;
  existing: Map<EpKey, string>;
}

function lookupsOf(sd: ServiceDesired): ServiceLookups {
  return {
    remotes: new Map(sd.remoteEndpoints.map((e) => [e.key, e])),
    existing: new Map(sd.existingEndpoints.map((e) => [e.key, e.id])),
  };
}

function minKey(keys: Iterable<ObjectKey>): ObjectKey {
  let best: ObjectKey | undefined;
  for (const k of keys) if (best === undefined || k < best) best = k;
  return best!;
}

/** References to a remote endpoint made by services (not by the context). */
function serviceRefs(j: Join, key: EpKey): number {
  return (j.endpointRefs.get(key) ?? 0) - (j.contextRefs.get(key) ?? 0);
}

function bumpRefs(j: Join, key: EpKey, delta: number): void {
  const n = (j.endpointRefs.get(key) ?? 0) + delta;
  if (n > 0) j.endpointRefs.set(key, n);
  else j.endpointRefs.delete(key);
}

/** Put the winning object of a remote endpoint key in place (context first, then the smallest service). */
function settleRemote(j: Join, key: EpKey): void {
  const fromContext = j.contextByKey.get(key);
  if (fromContext) {
    j.remoteEndpoints.set(key, fromContext);
    return;
  }
  const owners = j.remoteOwners.get(key);
  if (owners === undefined) {
    j.remoteEndpoints.delete(key);
    return;
  }
  const owner = typeof owners === "string" ? owners : minKey(owners.keys());
  const ep = j.services.get(owner)?.remoteEndpoints.find((e) => e.key === key);
  if (ep) j.remoteEndpoints.set(key, ep);
}

function addRemoteRef(j: Join, serviceKey: ObjectKey, ep: DesiredRemoteEndpoint): void {
  const key = ep.key;
  const before = serviceRefs(j, key);
  bumpRefs(j, key, 1);
  const owners = j.remoteOwners.get(key);
  if (owners === undefined) {
    j.remoteOwners.set(key, serviceKey);
    if (!j.contextByKey.has(key)) j.remoteEndpoints.set(key, ep);
    return;
  }
  if (typeof owners === "string") {
    if (owners === serviceKey) return;
    j.remoteOwners.set(key, new Map([[owners, before], [serviceKey, 1]]));
    if (serviceKey < owners && !j.contextByKey.has(key)) j.remoteEndpoints.set(key, ep);
    return;
  }
  const had = owners.get(serviceKey);
  owners.set(serviceKey, (had ?? 0) + 1);
  if (had === undefined && !j.contextByKey.has(key) && minKey(owners.keys()) === serviceKey) {
    j.remoteEndpoints.set(key, ep);
  }
}

function dropRemoteRef(j: Join, serviceKey: ObjectKey, key: EpKey): void {
  const owners = j.remoteOwners.get(key);
  if (owners === undefined) return;
  bumpRefs(j, key, -1);
  if (typeof owners === "string") {
    if (serviceRefs(j, key) > 0) return;
    j.remoteOwners.delete(key);
    settleRemote(j, key);
    return;
  }
  const n = (owners.get(serviceKey) ?? 0) - 1;
  if (n > 0) {
    owners.set(serviceKey, n);
    return;
  }
  const wasFirst = minKey(owners.keys()) === serviceKey;
  owners.delete(serviceKey);
  if (owners.size === 1) j.remoteOwners.set(key, [...owners.keys()][0]);
  if (wasFirst) settleRemote(j, key);
}

/** Count (or uncount) the backends of a load balancer that won its key. */
function countBackends(
  j: Join,
  serviceKey: ObjectKey,
  lb: DesiredLoadBalancer,
  look: ServiceLookups,
  add: boolean,
): void {
  for (const b of lb.backends) {
    const remote = look.remotes.get(b);
    if (remote) {
      if (add) addRemoteRef(j, serviceKey, remote);
      else dropRemoteRef(j, serviceKey, b);
      continue;
    }
    const id = look.existing.get(b);
    if (id === undefined) continue;
    const n = (j.existingRefs.get(b) ?? 0) + (add ? 1 : -1);
    if (n > 0) {
      j.existingRefs.set(b, n);
      if (add) j.existingEndpoints.set(b, id);
    } else {
      j.existingRefs.delete(b);
      j.existingEndpoints.delete(b);
    }
  }
}

function addLoser<K>(losers: Map<K, Set<ObjectKey>>, key: K, serviceKey: ObjectKey): void {
  const set = losers.get(key);
  if (set) set.add(serviceKey);
  else losers.set(key, new Set([serviceKey]));
}

/** Take the smallest losing claimant of a key out of the losers (it becomes the holder). */
function takeFirstLoser<K>(losers: Map<K, Set<ObjectKey>>, key: K): ObjectKey | undefined {
  const set = losers.get(key);
  if (!set || set.size === 0) return undefined;
  const first = minKey(set);
  set.delete(first);
  if (set.size === 0) losers.delete(key);
  return first;
}

function dropLoser<K>(losers: Map<K, Set<ObjectKey>>, key: K, serviceKey: ObjectKey): void {
  const set = losers.get(key);
  if (!set) return;
  set.delete(serviceKey);
  if (set.size === 0) losers.delete(key);
}

function claimLoadBalancer(
  j: Join,
  sd: ServiceDesired,
  lb: DesiredLoadBalancer,
  look: ServiceLookups,
): void {
  const holder = j.loadBalancers.get(lb.key);
  if (holder && holder.serviceKey <= sd.serviceKey) {
    addLoser(j.lbLosers, lb.key, sd.serviceKey);
    j.conflictsStale = true;
    return;
  }
  if (holder) {
    const holderSd = j.services.get(holder.serviceKey)!;
    countBackends(j, holder.serviceKey, holder, lookupsOf(holderSd), false);
    addLoser(j.lbLosers, lb.key, holder.serviceKey);
    j.conflictsStale = true;
  }
  j.loadBalancers.set(lb.key, lb);
  countBackends(j, sd.serviceKey, lb, look, true);
}

function releaseLoadBalancer(
  j: Join,
  sd: ServiceDesired,
  lb: DesiredLoadBalancer,
  look: ServiceLookups,
): void {
  const holder = j.loadBalancers.get(lb.key);
  if (holder?.serviceKey !== sd.serviceKey) {
    dropLoser(j.lbLosers, lb.key, sd.serviceKey);
    j.conflictsStale = true;
    return;
  }
  countBackends(j, sd.serviceKey, holder, look, false);
  const next = takeFirstLoser(j.lbLosers, lb.key);
  const nextSd = next !== undefined ? j.services.get(next) : undefined;
  const nextLb = nextSd?.loadBalancers.find((x) => x.key === lb.key);
  if (!nextSd || !nextLb) {
    j.loadBalancers.delete(lb.key);
    return;
  }
  j.conflictsStale = true;
  j.loadBalancers.set(lb.key, nextLb);
  countBackends(j, nextSd.serviceKey, nextLb, lookupsOf(nextSd), true);
}

function claimHealthCheck(j: Join, hc: HealthCheckWanted): void {
  const holder = j.hcPorts.get(hc.port);
  if (holder !== undefined && holder <= hc.serviceKey) {
    addLoser(j.hcLosers, hc.port, hc.serviceKey);
    j.conflictsStale = true;
    return;
  }
  if (holder !== undefined) {
    j.healthChecks.delete(holder);
    addLoser(j.hcLosers, hc.port, holder);
    j.conflictsStale = true;
  }
  j.hcPorts.set(hc.port, hc.serviceKey);
  j.healthChecks.set(hc.serviceKey, hc);
}

function releaseHealthCheck(j: Join, hc: HealthCheckWanted): void {
  if (j.hcPorts.get(hc.port) !== hc.serviceKey) {
    dropLoser(j.hcLosers, hc.port, hc.serviceKey);
    j.conflictsStale = true;
    return;
  }
  j.healthChecks.delete(hc.serviceKey);
  const next = takeFirstLoser(j.hcLosers, hc.port);
  const nextHc = next !== undefined ? j.services.get(next)?.healthCheck : undefined;
  if (!nextHc) {
    j.hcPorts.delete(hc.port);
    return;
  }
  j.conflictsStale = true;
  j.hcPorts.set(hc.port, nextHc.serviceKey);
  j.healthChecks.set(nextHc.serviceKey, nextHc);
}

/** Count a service in: its LB claims, their backends, its service-VIP endpoints, its health check. */
function addService(j: Join, sd: ServiceDesired): void {
  j.services.set(sd.serviceKey, sd);
  const look = lookupsOf(sd);
  for (const lb of sd.loadBalancers) claimLoadBalancer(j, sd, lb, look);
  for (const r of sd.remoteEndpoints) {
    if (r.role === "serviceVip") addRemoteRef(j, sd.serviceKey, r);
  }
  if (sd.healthCheck) claimHealthCheck(j, sd.healthCheck);
}

/** Count a service out (the exact reverse of {@link addService}). */
function removeService(j: Join, serviceKey: ObjectKey): void {
  const sd = j.services.get(serviceKey);
  if (!sd) return;
  const look = lookupsOf(sd);
  for (const lb of sd.loadBalancers) releaseLoadBalancer(j, sd, lb, look);
  for (const r of sd.remoteEndpoints) {
    if (r.role === "serviceVip") dropRemoteRef(j, serviceKey, r.key);
  }
  if (sd.healthCheck) releaseHealthCheck(j, sd.healthCheck);
  j.services.delete(serviceKey);
}

/** Count the context's own endpoints in, replacing those of an earlier context. */
function setContextEndpoints(j: Join, ctx: NodeContext): void {
  const next = contextEndpoints(ctx);
  if (JSON.stringify(next) === JSON.stringify(j.context)) return;
  const old = j.context;
  j.context = next;
  j.contextByKey = new Map(next.map((e) => [e.key, e]));
  for (const e of old) {
    bumpRefs(j, e.key, -1);
    j.contextRefs.set(e.key, (j.contextRefs.get(e.key) ?? 1) - 1);
    if (j.contextRefs.get(e.key)! <= 0) j.contextRefs.delete(e.key);
  }
  for (const e of next) {
    bumpRefs(j, e.key, 1);
    j.contextRefs.set(e.key, (j.contextRefs.get(e.key) ?? 0) + 1);
  }
  for (const key of new Set([...old, ...next].map((e) => e.key))) settleRemote(j, key);
}

/**
 * The cross-service conflicts, in the order of a join in service key order:
 * by service, its LB conflicts in its LB order, then its health-check port.
 */
function buildConflicts(j: Join): Diagnostic[] {
  const losers = new Set<ObjectKey>();
  for (const set of j.lbLosers.values()) for (const s of set) losers.add(s);
  for (const set of j.hcLosers.values()) for (const s of set) losers.add(s);
  const out: Diagnostic[] = [];
  for (const serviceKey of [...losers].sort(cmp)) {
    const sd = j.services.get(serviceKey);
    if (!sd) continue;
    for (const lb of sd.loadBalancers) {
      if (!j.lbLosers.get(lb.key)?.has(serviceKey)) continue;
      const holder = j.loadBalancers.get(lb.key)!;
      out.push({
        level: "error",
        serviceKey,
        field: lb.kind === "nodePort" ? "spec.ports.nodePort" : lb.vip ?? "",
        reason: "LoadBalancerConflict",
        message:
          `service ${serviceKey}: ${lb.key} (${lb.kind}) is already claimed by service ${holder.serviceKey}; not programmed`,
      });
    }
    const hc = sd.healthCheck;
    if (hc && j.hcLosers.get(hc.port)?.has(serviceKey)) {
      out.push({
        level: "error",
        serviceKey,
        field: "spec.healthCheckNodePort",
        reason: "HealthCheckPortConflict",
        message:
          `service ${serviceKey}: spec.healthCheckNodePort: port ${hc.port} is already used by service ${
            j.hcPorts.get(hc.port)
          }`,
      });
    }
  }
  return out;
}

/** A new state object over the join's maps (registered as the join's current state). */
function stateOf(j: Join): DesiredState {
  if (j.conflictsStale) {
    j.conflicts = buildConflicts(j);
    j.conflictsStale = false;
  }
  const state: DesiredState = {
    services: j.services,
    loadBalancers: j.loadBalancers,
    remoteEndpoints: j.remoteEndpoints,
    endpointRefs: j.endpointRefs,
    existingEndpoints: j.existingEndpoints,
    healthChecks: j.healthChecks,
    conflicts: j.conflicts,
    contextEndpoints: j.context.map((e) => e.key),
  };
  joins.set(state, j);
  return state;
}

/**
 * Join per-service results into the node's desired state. When several
 * services claim one LB key (or one health-check port) the service with the
 * smallest key keeps it and the others get a conflict diagnostic; a remote
 * endpoint several services name comes from the one with the smallest key.
 * Remote endpoints are those the winning LBs reference, plus service-VIP and
 * source-VIP ones. The maps are in no particular order: sort where order is
 * visible.
 */
export function assembleDesired(
  services: Iterable<ServiceDesired>,
  ctx: NodeContext,
): DesiredState {
  const j = emptyJoin();
  setContextEndpoints(j, ctx);
  // In key order, so that no claim is won and then lost again.
  for (const sd of [...services].sort((a, b) => cmp(a.serviceKey, b.serviceKey))) {
    removeService(j, sd.serviceKey);
    addService(j, sd);
  }
  return stateOf(j);
}

/**
 * A desired state with some services recomputed (`undefined` removes a
 * service): the joined maps are patched for those services only, so the cost
 * follows the change, not the cluster. The result equals
 * {@link assembleDesired} of the updated services.
 *
 * `prev` is consumed: its maps become the result's and are updated in place,
 * so `prev` must not be used afterwards (a second update of it throws).
 */
export function updateDesired(
  prev: DesiredState,
  changed: ReadonlyMap<ObjectKey, ServiceDesired | undefined>,
  ctx: NodeContext,
): DesiredState {
  if (consumed.has(prev)) throw new Error("updateDesired: this desired state was already updated");
  const j = joins.get(prev) ?? joinOf(prev, ctx);
  joins.delete(prev);
  consumed.add(prev);
  setContextEndpoints(j, ctx);
  for (const [key, sd] of changed) {
    removeService(j, key);
    if (sd) addService(j, sd);
  }
  return stateOf(j);
}

/** The join of a state this module did not make (built afresh from its services). */
function joinOf(state: DesiredState, ctx: NodeContext): Join {
  return joins.get(assembleDesired(state.services.values(), ctx))!;
}

/**
 * The service's desired objects, turning an unexpected failure into an error
 * diagnostic so that one bad service never stops the others.
 */
export function safeDesiredForService(
  svc: ServiceInfo,
  slices: readonly EndpointSliceInfo[],
  ctx: NodeContext,
): ServiceDesired {
  const serviceKey = `${svc?.namespace}/${svc?.name}`;
  try {
    return desiredForService(svc, slices, ctx);
  } catch (e) {
    return emptyResult(serviceKey, [{
      level: "error",
      serviceKey,
      field: "",
      reason: "InternalError",
      message: `service ${serviceKey}: not programmed: ${
        e instanceof Error ? e.message : String(e)
      }`,
    }]);
  }
}

/** The whole desired state from a cluster view. */
export function desiredState(view: ClusterView, ctx: NodeContext): DesiredState {
  const out: ServiceDesired[] = [];
  for (const svc of view.services()) {
    out.push(safeDesiredForService(svc, view.slicesFor(`${svc.namespace}/${svc.name}`), ctx));
  }
  return assembleDesired(out, ctx);
}

/**
 * {@link canonicalIp}, returning `raw` itself when it is already canonical, so
 * the desired state shares the cluster store's string instead of holding a
 * copy (50,000 endpoint IPs at 10,000 services).
 */
function sharedCanonicalIp(raw: string): string | undefined {
  const ip = canonicalIp(raw);
  return ip === raw ? raw : ip;
}
