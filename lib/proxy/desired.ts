/**
 * The desired HNS state of the node, computed purely from the cluster state
 * (services and their EndpointSlices) and the {@link NodeContext}.
 *
 * Per service port and per IP family the service serves, the load balancers
 * of lb_rules.ts (ClusterIP, NodePort, external IPs, ingress IPs, health-check
 * VIPs), each only when it has backends, as kube-proxy does. Backends are the
 * CNI's endpoints on this node and the endpoints hnsproxy creates
 * (owned_endpoints.ts), one per pod IP shared by all services.
 *
 * Endpoints: ready ones; when none is ready, the serving-and-terminating ones.
 * A service's endpoints (not its local ones) follow the topology hints for
 * this node's zone. One internal port per LB: the most common port among its
 * endpoints.
 *
 * `desiredForService` computes one service (the runner recomputes only dirty
 * services); desired_join.ts joins per-service results into the node's state.
 * Nothing here throws on bad input: problems become diagnostics naming the
 * service and the field.
 *
 * @module
 */

import { DistributionType, IpProtocol, LoadBalancerFlags } from "../hns/types.ts";
import type {
  ClusterView,
  EndpointSliceInfo,
  IpFamily,
  ObjectKey,
  ServiceInfo,
  ServicePortInfo,
} from "../kube/model.ts";
import { assembleDesired } from "./desired_join.ts";
import { desiredLoadBalancer } from "./desired_lb.ts";
import { hostEndpointKey, loadBalancerKey, localEndpointKey } from "./keys.ts";
import { type Backends, LB_RULES, type LbRule, type ServicePolicy } from "./lb_rules.ts";
import type {
  DesiredEndpoint,
  DesiredLoadBalancer,
  DesiredState,
  Diagnostic,
  DiagnosticLevel,
  EpKey,
  ExistingEndpointRef,
  HealthCheckWanted,
  NodeContext,
  NoLocalEndpoints,
  ServiceDesired,
} from "./model.ts";
import { canonicalIp, ipFamilyOf } from "../net/ip.ts";
import { podEndpoint, serviceVipEndpoint } from "./owned_endpoints.ts";
import {
  isOverlay,
  nodeIpOf,
  placementsFor,
  type PlacementTable,
  placementTable,
  placeOnOverlay,
  primaryFamily,
} from "./placement.ts";
import { errorMessage } from "../errors.ts";

export { assembleDesired, updateDesired } from "./desired_join.ts";
export { placementsFor } from "./placement.ts";

/** kube-proxy's default ClientIP affinity timeout; any other value is reported as ignored. */
const DEFAULT_AFFINITY_TIMEOUT_SECONDS = 10800;

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
  /** The HNS ID of the CNI's endpoint with this IP, when the node context has one. */
  localId: string | undefined;
  nodeName?: string;
  hintZones?: readonly string[];
}

const ipOf = (e: DesiredEndpoint) => e.ip;
const keyOf = (e: ExistingEndpointRef) => e.key;

/** An empty list, shared by the services that have nothing in it. */
const NONE: readonly never[] = Object.freeze([]);

/** The diagnostics of a service that has none (shared: most services have none). */
const NO_DIAGNOSTICS: readonly Diagnostic[] = Object.freeze([]);

/** Collects diagnostics of one service, one per (field, reason). */
class Diagnostics {
  #list: Diagnostic[] | undefined;
  #seen: Set<string> | undefined;
  constructor(readonly serviceKey: ObjectKey) {}

  /** The diagnostics collected so far. */
  get list(): readonly Diagnostic[] {
    return this.#list ?? NO_DIAGNOSTICS;
  }

  add(
    level: DiagnosticLevel,
    field: string,
    reason: string,
    detail: string,
    endpointIp?: string,
  ): void {
    const id = `${field}\u0000${reason}`;
    this.#seen ??= new Set();
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
    (this.#list ??= []).push(d);
  }
}

/** The configured source VIP of a family, canonical. */
function sourceVipOf(ctx: NodeContext, family: IpFamily): string | undefined {
  for (const ip of ctx.sourceVips) {
    const c = canonicalIp(ip);
    if (c && ipFamilyOf(c) === family) return c;
  }
  return undefined;
}

/** Ready endpoints; when none is ready, the serving-and-terminating ones. */
function usable(set: readonly Candidate[]): readonly Candidate[] {
  if (set.every((c) => c.ready)) return set;
  const ready = set.filter((c) => c.ready);
  return ready.length > 0 ? ready : set.filter((c) => c.serving && c.terminating);
}

/**
 * Topology: when every endpoint carries zone hints and the node's zone is
 * known, keep the endpoints hinted for it (all of them when none is).
 */
function byTopology(set: readonly Candidate[], zone: string | undefined): readonly Candidate[] {
  if (!zone || set.length === 0 || !set.every((c) => (c.hintZones?.length ?? 0) > 0)) return set;
  const mine = set.filter((c) => c.hintZones!.includes(zone));
  return mine.length > 0 ? mine : set;
}

/** A frontend VIP of a service and the field it comes from. */
interface Frontend {
  ip: string;
  field: string;
}

/** The VIP list of NodePort LBs: one LB, no VIP. */
const NO_VIP: readonly (Frontend | undefined)[] = [undefined];

/**
 * Objects a service gathers by a string (an IP, a key), in the order added;
 * indexed only once a lookup could find one: within a batch the caller adds
 * distinct strings, so the first batch of a service (most services have one)
 * makes no map.
 */
class Collected<V extends { key: EpKey }> {
  #list: V[] = [];
  #n = 0;
  #by: Map<string, V> | undefined;
  /** Whether a lookup may find something: strings added before the current batch. */
  #lookups = false;

  /** @param atOf the string an object is found at */
  constructor(readonly atOf: (v: V) => string) {}

  /** The caller adds distinct strings from here on (at most `size` of them), which may repeat earlier ones. */
  beginBatch(size: number): void {
    this.#lookups = this.#n > 0;
    // The first batch fills an array of its size, the one the service keeps (most have one batch).
    if (this.#n === 0) this.#list = new Array<V>(size);
  }

  get(at: string): V | undefined {
    return this.#lookups ? this.#index().get(at) : undefined;
  }

  /** Add an object at a string it does not hold yet. */
  add(v: V): void {
    if (this.#n < this.#list.length) this.#list[this.#n] = v;
    else this.#list.push(v);
    this.#n++;
    this.#by?.set(this.atOf(v), v);
  }

  /** Set the object at its string, replacing one there. */
  put(v: V): void {
    const at = this.atOf(v);
    for (let i = 0; i < this.#n; i++) {
      if (this.atOf(this.#list[i]) === at) {
        this.#list[i] = v;
        this.#by?.set(at, v);
        return;
      }
    }
    this.add(v);
  }

  /** The objects sorted by key, in an array of their number (the service keeps it). */
  sortedByKey(): readonly V[] {
    const n = this.#n;
    if (n === 0) return NONE;
    const list = n === this.#list.length ? this.#list : this.#list.slice(0, n);
    for (let i = 1; i < n; i++) {
      if (!(list[i - 1].key < list[i].key)) return list.sort((a, b) => cmp(a.key, b.key));
    }
    return list;
  }

  #index(): Map<string, V> {
    if (this.#by === undefined) {
      this.#by = new Map();
      for (let i = 0; i < this.#n; i++) this.#by.set(this.atOf(this.#list[i]), this.#list[i]);
    }
    return this.#by;
  }
}

/** What the LBs of one service share, and what they gather. */
interface ServiceScope {
  ctx: NodeContext;
  policy: ServicePolicy;
  /** DistributionType for kinds that follow session affinity. */
  distributionType: number;
  /** Port of the health-check LBs (`forwardHealthCheckVip` only). */
  healthCheckLbPort: number | undefined;
  /** The context's placement facts (overlay), parsed when first needed. */
  placements: PlacementTable | undefined;
  /** The service's LBs so far, in the order made (a service has few: no map). */
  lbs: DesiredLoadBalancer[];
  /** The service's own endpoints by IP (one object, hence one key string, per IP). */
  endpoints: Collected<DesiredEndpoint>;
  /** Existing endpoints referenced, by key. */
  existing: Collected<ExistingEndpointRef>;
  diags: Diagnostics;
}

/** The LBs' inputs of one service port in one family. */
interface PortFamily {
  sp: ServicePortInfo;
  spIndex: number;
  family: IpFamily;
  protocol: number;
  clusterIp: readonly Frontend[];
  externalIps: readonly Frontend[];
  ingressIps: readonly Frontend[];
  /** Valid and non-zero, else undefined. */
  nodePort: number | undefined;
  /** Usable endpoints, topology-filtered. */
  all: readonly Candidate[];
  /** Usable endpoints on this node. */
  local: readonly Candidate[];
  /** The backends each subset gives (null: none), when first needed; shared by the rules using it. */
  allSelection?: Selection | null;
  localSelection?: Selection | null;
}

/** The backends a subset of a port's endpoints gives an LB ({@link selectBackends}). */
interface Selection {
  present: readonly Candidate[];
  internalPort: number;
  /** Its backend keys ({@link backendKeys}), made for the first LB that uses them. */
  keys?: { backends: readonly EpKey[]; publicOrNode: boolean };
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
  const found: Candidate[] = [];
  const sorted = slices.length > 1 ? [...slices].sort((a, b) => cmp(a.name, b.name)) : slices;
  for (let k = 0; k < sorted.length; k++) {
    const slice = sorted[k];
    if (slice.addressType !== family) continue;
    const pIdx = slice.ports.findIndex((p) => p.name === sp.name && p.protocol === sp.protocol);
    if (pIdx < 0) continue;
    const port = slice.ports[pIdx].port;
    if (!validPort(port)) {
      diags.add(
        "warning",
        `${sliceRef(slice)} ports[${pIdx}].port`,
        "InvalidEndpointPort",
        `port ${
          JSON.stringify(port)
        } for service port ${spIndex} is not a valid port; its endpoints are skipped`,
      );
      continue;
    }
    const eps = slice.endpoints;
    for (let i = 0; i < eps.length; i++) {
      const address = eps.address(i);
      const ip = sharedCanonicalIp(address);
      if (!ip || familyOfCanonical(ip) !== family) {
        diags.add(
          "warning",
          `${sliceRef(slice)} endpoints[${i}].addresses[0]`,
          "InvalidEndpointAddress",
          `${JSON.stringify(address)} is not an ${family} address; endpoint skipped`,
        );
        continue;
      }
      const nodeName = eps.nodeName(i);
      const localId = ctx.localEndpoints.get(ip);
      found.push({
        ip,
        port,
        ready: eps.ready(i),
        serving: eps.serving(i),
        terminating: eps.terminating(i),
        local: localId !== undefined || (nodeName !== undefined && nodeName === ctx.nodeName),
        localId,
        nodeName,
        hintZones: eps.hintZones(i),
      });
    }
  }
  return byIpOnce(found);
}

const byCandidateIp = (a: Candidate, b: Candidate) => cmp(a.ip, b.ip);

/** How a diagnostic names a slice. */
const sliceRef = (slice: EndpointSliceInfo) => `EndpointSlice ${slice.namespace}/${slice.name}`;

/**
 * Candidates sorted by IP, each IP once: its first ready entry, else its
 * first entry (the sort is stable, so "first" is in slice order).
 */
function byIpOnce(found: Candidate[]): Candidate[] {
  if (found.length < 2) return found;
  found.sort(byCandidateIp);
  let n = 1;
  for (let i = 1; i < found.length; i++) {
    const c = found[i], prev = found[n - 1];
    if (c.ip !== prev.ip) found[n++] = c;
    else if (!prev.ready && c.ready) found[n - 1] = c;
  }
  found.length = n;
  return found;
}

/**
 * The endpoints of a backend set one LB can use, and its single internal
 * port: the most common port among the endpoints (ties: the lowest);
 * endpoints with another port are left out with a warning. Local endpoints
 * not found in HNS, and on overlay remote ones not placed yet, are left out
 * with a warning. Undefined when none is left.
 */
function selectBackends(
  s: ServiceScope,
  pf: PortFamily,
  set: readonly Candidate[],
): { present: readonly Candidate[]; internalPort: number } | undefined {
  const { ctx, diags } = s;
  const { sp, spIndex } = pf;
  const overlay = isOverlay(ctx);
  // The set itself while nothing is left out (the usual case), else a copy from the first left out.
  let kept: Candidate[] | undefined;
  for (let i = 0; i < set.length; i++) {
    const c = set[i];
    if (overlay && !c.local && !placeOnOverlay(placementsOf(s), c.ip, c.nodeName)) {
      kept ??= set.slice(0, i);
      diags.add(
        "warning",
        `endpoint ${c.ip}`,
        "PlacementUnknown",
        `endpoint ${c.ip} is in the cluster's pod ranges but no route or Node places it yet; left out until one does`,
        c.ip,
      );
      continue;
    }
    if (c.local && c.localId === undefined) {
      kept ??= set.slice(0, i);
      diags.add(
        "warning",
        `spec.ports[${spIndex}] endpoint ${c.ip}`,
        "LocalEndpointNotFound",
        `endpoint ${c.ip} is on this node but HNS has no endpoint with that IP on network ${ctx.network.name}; left out`,
        c.ip,
      );
      continue;
    }
    kept?.push(c);
  }
  const present: readonly Candidate[] = kept ?? set;
  if (present.length === 0) return undefined;
  if (present.every((c) => c.port === present[0].port)) {
    return { present, internalPort: present[0].port };
  }
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
    diags.add(
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
  return { present, internalPort };
}

/**
 * The backend keys of an LB from its selected endpoints, recording the
 * endpoints they name; `publicOrNode` when one of them is, on overlay, a
 * "public" IP or a node IP (the SourceVIP then becomes the node IP).
 */
function backendKeys(
  s: ServiceScope,
  present: readonly Candidate[],
  internalPort: number,
): { backends: readonly EpKey[]; publicOrNode: boolean } {
  const { ctx } = s;
  const overlay = isOverlay(ctx);
  // `present` is sorted by IP, and a key is a prefix and the IP: local keys
  // ("ep/local/..") sort before remote ones ("ep/remote/.."), each in IP order.
  let n = 0, nLocal = 0;
  for (let i = 0; i < present.length; i++) {
    const c = present[i];
    if (c.port !== internalPort) continue;
    n++;
    if (c.local) nLocal++;
  }
  // In an array of its own size: an LB holds it for as long as it is desired.
  const backends = new Array<EpKey>(n);
  let l = 0, r = nLocal;
  let publicOrNode = false;
  s.existing.beginBatch(nLocal);
  s.endpoints.beginBatch(n - nLocal);
  for (let i = 0; i < present.length; i++) {
    const c = present[i];
    if (c.port !== internalPort) continue;
    if (c.local) {
      const key = localEndpointKey(c.ip);
      let ref = s.existing.get(key);
      if (!ref) {
        ref = { key, id: c.localId! };
        s.existing.add(ref);
      }
      backends[l++] = ref.key;
      continue;
    }
    let providerAddress: string | undefined;
    if (overlay) {
      const placement = placeOnOverlay(placementsOf(s), c.ip, c.nodeName)!; // selected: placed
      publicOrNode ||= placement.publicIp || placement.nodeIp;
      providerAddress = placement.providerAddress;
    }
    let ep = s.endpoints.get(c.ip);
    if (!ep) {
      ep = podEndpoint(ctx, c.ip, providerAddress);
      s.endpoints.add(ep);
    }
    backends[r++] = ep.key;
  }
  return { backends, publicOrNode };
}

/** The context's placement table, built on first use when the caller gave none. */
function placementsOf(s: ServiceScope): PlacementTable {
  return s.placements ??= placementTable(s.ctx);
}

/** The backends of a subset, selected once per port and family. */
function selectionOf(s: ServiceScope, pf: PortFamily, b: "all" | "local"): Selection | undefined {
  if (b === "local") {
    if (pf.localSelection === undefined) {
      pf.localSelection = selectBackends(s, pf, pf.local) ?? null;
    }
    return pf.localSelection ?? undefined;
  }
  if (pf.allSelection === undefined) pf.allSelection = selectBackends(s, pf, pf.all) ?? null;
  return pf.allSelection ?? undefined;
}

/** The endpoints of a subset ("all" or "local"). */
function subset(pf: PortFamily, b: Backends): readonly Candidate[] {
  return b === "local" ? pf.local : pf.all;
}

/** The external port a rule's LB gets on this service port, if it has one. */
function portOf(s: ServiceScope, pf: PortFamily, rule: LbRule): number | undefined {
  switch (rule.port) {
    case "service":
      return pf.sp.port;
    case "nodePort":
      return pf.nodePort;
    case "healthCheck":
      return s.healthCheckLbPort;
  }
}

/** The frontends a rule's LBs serve on this service port (undefined: no VIP). */
function vipsOf(pf: PortFamily, rule: LbRule): readonly (Frontend | undefined)[] {
  switch (rule.vips) {
    case "clusterIP":
      return pf.clusterIp;
    case "none":
      return NO_VIP;
    case "externalIPs":
      return pf.externalIps;
    case "ingressIPs":
      return pf.ingressIps;
  }
}

/**
 * Add the LBs one rule gives a service port in a family. Within a service the
 * first LB of a key wins; another kind on the same key gets a warning.
 */
function applyRule(s: ServiceScope, pf: PortFamily, rule: LbRule): void {
  const externalPort = portOf(s, pf, rule);
  if (externalPort === undefined) return;
  const { ctx, policy, diags } = s;
  const { family } = pf;
  const readyIn = rule.readyIn?.(policy);
  if (readyIn !== undefined && !subset(pf, readyIn).some((c) => c.ready)) return;
  const wanted = rule.backends(policy);
  const protocol = rule.protocol === "tcp" ? IpProtocol.TCP : pf.protocol;
  const vips = vipsOf(pf, rule);
  for (let v = 0; v < vips.length; v++) {
    const vip = vips[v];
    let selected: Selection | undefined;
    if (wanted === "rootHostEndpoint") {
      if (!ctx.rootHnsEndpointId) return;
    } else {
      selected = selectionOf(s, pf, wanted);
      if (!selected) continue;
    }
    const key = loadBalancerKey({ protocol, vip: vip?.ip, port: externalPort, family });
    const holder = lbWithKey(s.lbs, key);
    if (holder) {
      if (!(rule.perService && holder.kind === rule.kind)) {
        diags.add(
          "warning",
          vip?.field ?? `spec.ports[${pf.spIndex}].nodePort`,
          "DuplicateLoadBalancer",
          `${key} is already programmed for this service (${holder.kind}); ${rule.kind} skipped`,
        );
      }
      continue;
    }
    let backends: readonly EpKey[];
    let publicOrNode = false;
    if (selected) {
      selected.keys ??= backendKeys(s, selected.present, selected.internalPort);
      ({ backends, publicOrNode } = selected.keys);
    } else {
      const host = hostEndpointKey(ctx.rootHnsEndpointName);
      s.existing.put({ key: host, id: ctx.rootHnsEndpointId! });
      backends = [host];
    }
    const lb = {
      key,
      kind: rule.kind,
      serviceKey: diags.serviceKey,
      portName: pf.sp.name,
      family,
      protocol,
      externalPort,
      internalPort: selected?.internalPort ?? externalPort,
      flags: rule.flags(policy) | (family === "IPv6" ? LoadBalancerFlags.IPv6 : 0),
      portMappingFlags: rule.portMappingFlags(policy),
      distributionType: rule.affinity ? s.distributionType : DistributionType.None,
      backends,
      vip: vip?.ip,
      sourceVip: isOverlay(ctx)
        ? (rule.sourceVip === "followBackends" && publicOrNode
          ? nodeIpOf(ctx, family)
          : sourceVipOf(ctx, family))
        : undefined,
    };
    s.lbs.push(desiredLoadBalancer(lb));
  }
}

/** The LB with this key among a service's LBs (a short list: a linear search). */
function lbWithKey(
  lbs: readonly DesiredLoadBalancer[],
  key: string,
): DesiredLoadBalancer | undefined {
  for (let i = 0; i < lbs.length; i++) if (lbs[i].key === key) return lbs[i];
  return undefined;
}

/** Empty result for a service that programs nothing. */
function emptyResult(serviceKey: ObjectKey, diagnostics: readonly Diagnostic[] = NO_DIAGNOSTICS) {
  return {
    serviceKey,
    loadBalancers: [],
    remoteEndpoints: [],
    existingEndpoints: [],
    diagnostics,
  };
}

/**
 * The families a service serves and its cluster IP in each, as the one
 * frontend of its ClusterIP LBs (headless: none). On overlay only the node's
 * primary family: kube-proxy runs single-stack there (the other is `null`).
 */
function clusterIpsByFamily(
  svc: ServiceInfo,
  ctx: NodeContext,
  diags: Diagnostics,
): ClusterIps {
  const out: ClusterIps = {};
  const only = isOverlay(ctx) ? primaryFamily(ctx) : undefined;
  const clusterIPs = svc.clusterIPs ?? [];
  for (let i = 0; i < clusterIPs.length; i++) {
    const raw = clusterIPs[i];
    if (raw === "None" || raw === "") continue;
    const ip = sharedCanonicalIp(raw);
    if (!ip) {
      diags.add(
        "error",
        `spec.clusterIPs[${i}]`,
        "InvalidClusterIP",
        `${JSON.stringify(raw)} is not an IP address`,
      );
      continue;
    }
    const family = ipFamilyOf(ip)!;
    if (family === "IPv6" && !ctx.features.ipv6DualStack) {
      diags.add(
        "warning",
        `spec.clusterIPs[${i}]`,
        "IPv6Unsupported",
        `IPv6 cluster IP ${ip} skipped: this HNS does not support IPv6 dual-stack`,
      );
      continue;
    }
    if (only !== undefined && family !== only) {
      diags.add(
        "warning",
        `spec.clusterIPs[${i}]`,
        "OverlaySingleStack",
        `${family} cluster IP ${ip} skipped: overlay networks are single-stack (${only} on this node)`,
      );
      out[family] = null;
      continue;
    }
    if (out[family] === undefined) out[family] = [{ ip, field: "spec.clusterIPs" }];
  }
  return out;
}

/** A service's cluster IP by family (`null`: a family overlay's single stack leaves out). */
type ClusterIps = { [F in IpFamily]?: readonly [Frontend] | null };

/** The service's traffic settings, with warnings where HNS lacks DSR. */
function servicePolicy(svc: ServiceInfo, ctx: NodeContext, diags: Diagnostics): ServicePolicy {
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
  return { dsr, enableDSR: ctx.enableDSR, etpLocal, itpLocal, preserveDip };
}

/** DistributionType from the service's session affinity, with warnings for what HNS lacks. */
function distributionTypeOf(svc: ServiceInfo, ctx: NodeContext, diags: Diagnostics): number {
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
  return distributionType;
}

/** Warnings for service fields HNS cannot honour at all. */
function warnUnsupported(svc: ServiceInfo, diags: Diagnostics): void {
  if ((svc.loadBalancerSourceRanges ?? []).length > 0) {
    diags.add(
      "warning",
      "spec.loadBalancerSourceRanges",
      "SourceRangesUnsupported",
      "HNS load balancers cannot filter by source; the ranges are not enforced on this node",
    );
  }
}

/** The frontends of a service without external or ingress IPs (most services): never written to. */
const NO_FRONTENDS = {
  external: new Map<IpFamily, Frontend[]>(),
  ingress: new Map<IpFamily, Frontend[]>(),
};

/** The external and ingress IPs of a service by family (of the families it serves only). */
function frontendsByFamily(
  svc: ServiceInfo,
  families: ClusterIps,
  diags: Diagnostics,
): { external: Map<IpFamily, Frontend[]>; ingress: Map<IpFamily, Frontend[]> } {
  if (!svc.externalIPs?.length && !svc.ingress?.length) return NO_FRONTENDS;
  const external = new Map<IpFamily, Frontend[]>();
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
    if (families[f] === null) return; // overlay single-stack, reported on the cluster IP
    if (families[f] === undefined) {
      diags.add(
        "warning",
        field,
        "IPFamilyMismatch",
        `${ip} is ${f} but the service has no ${f} cluster IP; skipped`,
      );
      return;
    }
    pushTo(external, f, { ip, field });
  });
  const ingress = new Map<IpFamily, Frontend[]>();
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
    if (families[f] === null) return; // overlay single-stack, reported on the cluster IP
    if (families[f] === undefined) {
      diags.add(
        "warning",
        `${field}.ip`,
        "IPFamilyMismatch",
        `${ip} is ${f} but the service has no ${f} cluster IP; skipped`,
      );
      return;
    }
    pushTo(ingress, f, { ip, field });
  });
  return { external, ingress };
}

function pushTo<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
}

/** A service port's protocol number and node port, or undefined (with a diagnostic) when it cannot be programmed. */
function checkPort(
  sp: ServicePortInfo,
  spIndex: number,
  diags: Diagnostics,
): { protocol: number; nodePort: number | undefined } | undefined {
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
  return { protocol, nodePort: nodePort || undefined };
}

/**
 * Everything one service wants in HNS, from the service, its EndpointSlices
 * and the node context. Pure and deterministic; never throws on bad input
 * (problems become diagnostics naming the service and the field).
 * `placements` is the context's {@link placementsFor}, when the caller holds
 * one for many services (else it is built here when needed).
 */
export function desiredForService(
  svc: ServiceInfo,
  slices: readonly EndpointSliceInfo[],
  ctx: NodeContext,
  placements?: PlacementTable,
): ServiceDesired {
  return desiredOf(svc, `${svc.namespace}/${svc.name}`, slices, ctx, placements);
}

/** {@link desiredForService} of a service whose key the caller has made. */
function desiredOf(
  svc: ServiceInfo,
  serviceKey: ObjectKey,
  slices: readonly EndpointSliceInfo[],
  ctx: NodeContext,
  placements: PlacementTable | undefined,
): ServiceDesired {
  const diags = new Diagnostics(serviceKey);
  if (svc.type === "ExternalName") return emptyResult(serviceKey);
  const families = clusterIpsByFamily(svc, ctx, diags);
  const v4 = families.IPv4, v6 = families.IPv6;
  // The families in the order the LBs are made, in a list of its size.
  const byFamily: readonly (readonly [IpFamily, readonly [Frontend]])[] = v4 && v6
    ? [["IPv4", v4], ["IPv6", v6]]
    : v4
    ? [["IPv4", v4]]
    : v6
    ? [["IPv6", v6]]
    : NONE;
  if (byFamily.length === 0) return emptyResult(serviceKey, diags.list);

  const s: ServiceScope = {
    ctx,
    policy: servicePolicy(svc, ctx, diags),
    distributionType: distributionTypeOf(svc, ctx, diags),
    healthCheckLbPort: healthCheckLbPort(svc, ctx),
    placements,
    lbs: [],
    endpoints: new Collected(ipOf),
    existing: new Collected(keyOf),
    diags,
  };
  warnUnsupported(svc, diags);
  const { external, ingress } = frontendsByFamily(svc, families, diags);
  const { etpLocal, itpLocal } = s.policy;
  const noLocal: NoLocalEndpoints[] = [];
  let programmablePorts = 0;

  const ports = svc.ports ?? [];
  for (let spIndex = 0; spIndex < ports.length; spIndex++) {
    const sp = ports[spIndex];
    const checked = checkPort(sp, spIndex, diags);
    if (!checked) continue;
    programmablePorts++;
    for (let f = 0; f < byFamily.length; f++) {
      const [family, clusterIp] = byFamily[f];
      const candidates = candidatesFor(sp, spIndex, family, slices, ctx, diags);
      const all = usable(candidates);
      const local = usable(candidates.filter((c) => c.local));
      const pf: PortFamily = {
        sp,
        spIndex,
        family,
        protocol: checked.protocol,
        clusterIp,
        externalIps: external.get(family) ?? NONE,
        ingressIps: ingress.get(family) ?? NONE,
        nodePort: checked.nodePort,
        all: byTopology(all, ctx.zone),
        local,
        allSelection: undefined,
        localSelection: undefined,
      };
      if (local.length === 0 && all.length > 0) {
        // As kube-proxy: only when the service has endpoints elsewhere, and for
        // external traffic only when the port is reachable from outside.
        if (itpLocal) noLocal.push({ trafficPolicy: "internal", family });
        const reachable = pf.nodePort !== undefined || pf.externalIps.length > 0 ||
          pf.ingressIps.length > 0;
        if (etpLocal && reachable) noLocal.push({ trafficPolicy: "external", family });
      }
      for (let r = 0; r < LB_RULES.length; r++) applyRule(s, pf, LB_RULES[r]);
    }
  }

  if (isOverlay(ctx) && programmablePorts > 0) {
    for (const [family, [{ ip }]] of byFamily) {
      s.endpoints.put(serviceVipEndpoint(ctx, ip, family));
    }
  }

  const healthCheck = healthCheckServer(svc, slices, ctx, diags);
  const result: ServiceDesired = {
    serviceKey,
    // A copy of its exact size: the pushed-to list holds spare capacity.
    loadBalancers: s.lbs.slice().sort((a, b) => cmp(a.key, b.key)),
    remoteEndpoints: s.endpoints.sortedByKey(),
    existingEndpoints: s.existing.sortedByKey(),
    diagnostics: diags.list,
  };
  if (healthCheck) result.healthCheck = healthCheck;
  if (noLocal.length > 0) result.noLocalEndpoints = noLocal;
  return result;
}

/** The port of the `forwardHealthCheckVip` LBs: healthCheckNodePort, else the healthz port. */
function healthCheckLbPort(svc: ServiceInfo, ctx: NodeContext): number | undefined {
  if (!ctx.forwardHealthCheckVip) return undefined;
  const port = svc.healthCheckNodePort && validPort(svc.healthCheckNodePort)
    ? svc.healthCheckNodePort
    : ctx.healthzPort;
  return validPort(port) ? port : undefined;
}

/** The health-check HTTP server an ETP=Local service with a healthCheckNodePort wants. */
function healthCheckServer(
  svc: ServiceInfo,
  slices: readonly EndpointSliceInfo[],
  ctx: NodeContext,
  diags: Diagnostics,
): HealthCheckWanted | undefined {
  const port = svc.healthCheckNodePort;
  if (svc.externalTrafficPolicy !== "Local" || port === undefined || port === 0) return undefined;
  if (!validPort(port)) {
    diags.add(
      "warning",
      "spec.healthCheckNodePort",
      "InvalidPort",
      `${JSON.stringify(port)} is not a valid port; no health-check server`,
    );
    return undefined;
  }
  const readyLocal = new Set<string>();
  for (const slice of slices) {
    const eps = slice.endpoints;
    for (let i = 0; i < eps.length; i++) {
      const ip = sharedCanonicalIp(eps.address(i));
      if (!ip || !eps.ready(i)) continue;
      const nodeName = eps.nodeName(i);
      if (ctx.localEndpoints.has(ip) || (nodeName !== undefined && nodeName === ctx.nodeName)) {
        readyLocal.add(ip);
      }
    }
  }
  return { serviceKey: diags.serviceKey, port, localEndpoints: readyLocal.size };
}

/**
 * The service's desired objects, turning an unexpected failure into an error
 * diagnostic so that one bad service never stops the others.
 */
export function safeDesiredForService(
  svc: ServiceInfo,
  slices: readonly EndpointSliceInfo[],
  ctx: NodeContext,
  placements?: PlacementTable,
  serviceKey: ObjectKey = `${svc?.namespace}/${svc?.name}`,
): ServiceDesired {
  try {
    return desiredOf(svc, serviceKey, slices, ctx, placements);
  } catch (e) {
    return emptyResult(serviceKey, [{
      level: "error",
      serviceKey,
      field: "",
      reason: "InternalError",
      message: `service ${serviceKey}: not programmed: ${errorMessage(e)}`,
    }]);
  }
}

/** The whole desired state from a cluster view. */
export function desiredState(view: ClusterView, ctx: NodeContext): DesiredState {
  const placements = placementsFor(ctx);
  const out: ServiceDesired[] = [];
  for (const svc of view.services()) {
    const key = `${svc.namespace}/${svc.name}`;
    out.push(safeDesiredForService(svc, view.slicesFor(key), ctx, placements, key));
  }
  return assembleDesired(out, ctx);
}

/**
 * {@link canonicalIp}, returning `raw` itself when it is already canonical, so
 * the desired state shares the cluster store's string instead of holding a
 * copy of every endpoint IP.
 */
function sharedCanonicalIp(raw: string): string | undefined {
  const ip = canonicalIp(raw);
  return ip === raw ? raw : ip;
}

/** The family of an IP in canonical text, where only IPv6 addresses hold a colon. */
function familyOfCanonical(ip: string): IpFamily {
  return ip.includes(":") ? "IPv6" : "IPv4";
}
