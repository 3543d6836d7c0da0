/**
 * Joining per-service results into the node's desired state, and keeping it
 * joined as services change.
 *
 * Rules of the join, whatever order services arrive in:
 * - when several services claim one LB key (or one health-check port), the
 *   service with the smallest key keeps it and the others get a conflict
 *   diagnostic; when the holder goes, the next smallest claimant takes over;
 * - an endpoint several services name comes from the one with the smallest
 *   key; the context's own endpoints (overlay source VIPs) win over services';
 * - the remote endpoints wanted are those the winning LBs reference, plus the
 *   service-VIP and source-VIP ones, each counted once per reference.
 *
 * {@link updateDesired} patches a joined state for the services that changed
 * at a cost that follows the change rather than the cluster; the result always
 * equals {@link assembleDesired} of the same services. Pure: the bookkeeping
 * travels with the state the caller holds and passes back.
 *
 * @module
 */

import type { ObjectKey } from "../kube/model.ts";
import type {
  DesiredEndpoint,
  DesiredLoadBalancer,
  DesiredState,
  Diagnostic,
  EpKey,
  HealthCheckWanted,
  LbKey,
  NodeContext,
  ServiceDesired,
} from "./model.ts";
import { sourceVipEndpoints } from "./owned_endpoints.ts";

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The bookkeeping behind a joined desired state, so that {@link updateDesired}
 * patches the joined maps for the changed services only instead of joining
 * every service again. The maps are the state's own (mutated in place).
 */
interface Join {
  services: Map<ObjectKey, ServiceDesired>;
  loadBalancers: Map<LbKey, DesiredLoadBalancer>;
  remoteEndpoints: Map<EpKey, DesiredEndpoint>;
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
  context: DesiredEndpoint[];
  /** The context's endpoints by key (the last one of a key wins, as in the join). */
  contextByKey: Map<EpKey, DesiredEndpoint>;
  /** References made by the context, by key. */
  contextRefs: Map<EpKey, number>;
  conflicts: Diagnostic[];
  /** Whether {@link Join.conflicts} must be rebuilt (some claim was won or lost). */
  conflictsStale: boolean;
  /** The state last made from this join: the only one {@link updateDesired} may continue from. */
  current?: DesiredState;
}

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
  remotes: Map<EpKey, DesiredEndpoint>;
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

function addRemoteRef(j: Join, serviceKey: ObjectKey, ep: DesiredEndpoint): void {
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
  const next = sourceVipEndpoints(ctx);
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

/**
 * A desired state made by this module: the joined maps, and the join's
 * bookkeeping that {@link updateDesired} continues from.
 */
class JoinedState implements DesiredState {
  readonly services: ReadonlyMap<ObjectKey, ServiceDesired>;
  readonly loadBalancers: ReadonlyMap<LbKey, DesiredLoadBalancer>;
  readonly remoteEndpoints: ReadonlyMap<EpKey, DesiredEndpoint>;
  readonly endpointRefs: ReadonlyMap<EpKey, number>;
  readonly existingEndpoints: ReadonlyMap<EpKey, string>;
  readonly healthChecks: ReadonlyMap<ObjectKey, HealthCheckWanted>;
  readonly conflicts: readonly Diagnostic[];
  readonly contextEndpoints: readonly EpKey[];
  readonly #join: Join;

  constructor(j: Join) {
    this.services = j.services;
    this.loadBalancers = j.loadBalancers;
    this.remoteEndpoints = j.remoteEndpoints;
    this.endpointRefs = j.endpointRefs;
    this.existingEndpoints = j.existingEndpoints;
    this.healthChecks = j.healthChecks;
    this.conflicts = j.conflicts;
    this.contextEndpoints = j.context.map((e) => e.key);
    this.#join = j;
  }

  /** The join behind a state, when this module made it. */
  static joinOf(state: DesiredState): Join | undefined {
    return #join in state ? (state as JoinedState).#join : undefined;
  }
}

/** A new state over the join's maps; it becomes the join's current state. */
function stateOf(j: Join): DesiredState {
  if (j.conflictsStale) {
    j.conflicts = buildConflicts(j);
    j.conflictsStale = false;
  }
  j.current = new JoinedState(j);
  return j.current;
}

/**
 * Join per-service results into the node's desired state, by the rules above.
 * The maps are in no particular order: sort where order is visible.
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
  const j = JoinedState.joinOf(prev) ?? joinOf(prev, ctx);
  if (j.current !== prev) throw new Error("updateDesired: this desired state was already updated");
  setContextEndpoints(j, ctx);
  for (const [key, sd] of changed) {
    removeService(j, key);
    if (sd) addService(j, sd);
  }
  return stateOf(j);
}

/** The join of a state this module did not make (built afresh from its services); it stands for `state`. */
function joinOf(state: DesiredState, ctx: NodeContext): Join {
  const j = JoinedState.joinOf(assembleDesired(state.services.values(), ctx))!;
  j.current = state;
  return j;
}
