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
 * state, resolving LB keys claimed by several services deterministically.
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
  ServiceDesired,
} from "./model.ts";
import { canonicalIp, cidrContains, ipFamilyOf, parseCidr, remoteEndpointMac } from "./net.ts";

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
  let best: { len: number; pa: string } | undefined;
  for (const r of ctx.network.remoteSubnetRoutes) {
    const pa = canonicalIp(r.providerAddress);
    if (pa === ip) return { providerAddress: pa, publicIp: false, nodeIp: true };
    const c = parseCidr(r.prefix);
    if (pa && c && cidrContains(c, ip) && (!best || c.prefix > best.len)) {
      best = { len: c.prefix, pa };
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
      const ip = canonicalIp(ep.address);
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
    const ip = canonicalIp(raw);
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
          const ip = canonicalIp(ep.address);
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
 * Join per-service results into the node's desired state. Services are taken
 * in key order: when several claim one LB key (or one health-check port) the
 * first keeps it and the others get a conflict diagnostic. Remote endpoints
 * are those the winning LBs reference, plus service-VIP and source-VIP ones.
 */
export function assembleDesired(
  services: Iterable<ServiceDesired>,
  ctx: NodeContext,
): DesiredState {
  const sorted = [...services].sort((a, b) => cmp(a.serviceKey, b.serviceKey));
  const byService = new Map(sorted.map((s) => [s.serviceKey, s]));
  const loadBalancers = new Map<LbKey, DesiredLoadBalancer>();
  const remoteEndpoints = new Map<EpKey, DesiredRemoteEndpoint>();
  const endpointRefs = new Map<EpKey, number>();
  const existingEndpoints = new Map<EpKey, string>();
  const healthChecks = new Map<ObjectKey, HealthCheckWanted>();
  const conflicts: Diagnostic[] = [];
  const hcPorts = new Map<number, ObjectKey>();
  const ref = (k: EpKey) => endpointRefs.set(k, (endpointRefs.get(k) ?? 0) + 1);

  for (const s of sorted) {
    const remotes = new Map(s.remoteEndpoints.map((e) => [e.key, e]));
    const existing = new Map(s.existingEndpoints.map((e) => [e.key, e.id]));
    for (const lb of s.loadBalancers) {
      const holder = loadBalancers.get(lb.key);
      if (holder) {
        conflicts.push({
          level: "error",
          serviceKey: s.serviceKey,
          field: lb.kind === "nodePort" ? "spec.ports.nodePort" : lb.vip ?? "",
          reason: "LoadBalancerConflict",
          message:
            `service ${s.serviceKey}: ${lb.key} (${lb.kind}) is already claimed by service ${holder.serviceKey}; not programmed`,
        });
        continue;
      }
      loadBalancers.set(lb.key, lb);
      for (const b of lb.backends) {
        const r = remotes.get(b);
        if (r) {
          if (!remoteEndpoints.has(b)) remoteEndpoints.set(b, r);
          ref(b);
        } else if (existing.has(b)) {
          existingEndpoints.set(b, existing.get(b)!);
        }
      }
    }
    for (const r of s.remoteEndpoints) {
      if (r.role !== "serviceVip") continue;
      if (!remoteEndpoints.has(r.key)) remoteEndpoints.set(r.key, r);
      ref(r.key);
    }
    if (s.healthCheck) {
      const holder = hcPorts.get(s.healthCheck.port);
      if (holder !== undefined) {
        conflicts.push({
          level: "error",
          serviceKey: s.serviceKey,
          field: "spec.healthCheckNodePort",
          reason: "HealthCheckPortConflict",
          message:
            `service ${s.serviceKey}: spec.healthCheckNodePort: port ${s.healthCheck.port} is already used by service ${holder}`,
        });
      } else {
        hcPorts.set(s.healthCheck.port, s.serviceKey);
        healthChecks.set(s.serviceKey, s.healthCheck);
      }
    }
  }
  for (const e of contextEndpoints(ctx)) {
    remoteEndpoints.set(e.key, e);
    ref(e.key);
  }
  const sortMap = <V>(m: Map<string, V>) => new Map([...m].sort((a, b) => cmp(a[0], b[0])));
  return {
    services: byService,
    loadBalancers: sortMap(loadBalancers),
    remoteEndpoints: sortMap(remoteEndpoints),
    endpointRefs: sortMap(endpointRefs),
    existingEndpoints: sortMap(existingEndpoints),
    healthChecks: sortMap(healthChecks),
    conflicts,
  };
}

/**
 * A desired state with some services recomputed (`undefined` removes a
 * service). Per-service results of the others are reused; the joined maps
 * are rebuilt.
 */
export function updateDesired(
  prev: DesiredState,
  changed: ReadonlyMap<ObjectKey, ServiceDesired | undefined>,
  ctx: NodeContext,
): DesiredState {
  const services = new Map(prev.services);
  for (const [key, sd] of changed) {
    if (sd) services.set(key, sd);
    else services.delete(key);
  }
  return assembleDesired(services.values(), ctx);
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
