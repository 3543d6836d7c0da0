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
 * A remote endpoint key has one record (its winning object, its references,
 * the services making them); the state's `remoteEndpoints` and `endpointRefs`
 * are read-only views of those records. A key one service references once,
 * and the context not at all (most pod endpoints), is recorded as that
 * service's key alone: its object is the one in that service's list. A
 * service's backends are resolved against its own endpoint lists, which
 * {@link ServiceDesired} keeps sorted by key.
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
  /** Every remote endpoint key referenced at least once. */
  remotes: Map<EpKey, Remote>;
  /** {@link Join.remotes} seen as the state's `remoteEndpoints` and `endpointRefs`. */
  remoteEndpoints: ReadonlyMap<EpKey, DesiredEndpoint>;
  endpointRefs: ReadonlyMap<EpKey, number>;
  existingEndpoints: Map<EpKey, string>;
  healthChecks: Map<ObjectKey, HealthCheckWanted>;
  /**
   * References to each existing endpoint by load balancers that won their
   * key, when more than one (a key in `existingEndpoints` and not here has one).
   */
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

/** One remote endpoint key of the join. */
interface RemoteEntry {
  /** The winning object: the context's, else that of the referencing service with the smallest key. */
  ep: DesiredEndpoint;
  /** References by winning LBs, service VIPs and the context (at least 1 once settled). */
  refs: number;
  /**
   * The services referencing it: one service key (holding every reference
   * not made by the context), service → references when several services
   * do, undefined when only the context does.
   */
  owners: ObjectKey | Map<ObjectKey, number> | undefined;
}

/**
 * The record of a remote endpoint key: the key of the one service that
 * references it once (the context not at all), its object being the one in
 * that service's list; else a full entry.
 */
type Remote = ObjectKey | RemoteEntry;

/** The object of `key` in the remote endpoint list of service `owner` (which holds it). */
function ownersObject(j: Join, owner: ObjectKey, key: EpKey): DesiredEndpoint {
  const list = j.services.get(owner)!.remoteEndpoints;
  // Most services have a few endpoints: equality is cheaper than ordering.
  if (list.length <= 8) {
    for (let i = 0; i < list.length; i++) if (list[i].key === key) return list[i];
  }
  return list[indexByKey(list, key)];
}

/** The full entry of a remote record (made from the short form when it is one). */
function fullEntry(j: Join, key: EpKey, r: Remote): RemoteEntry {
  return typeof r === "string" ? { ep: ownersObject(j, r, key), refs: 1, owners: r } : r;
}

/** A read-only map over the remote records, showing one field of each. */
class RemoteView<V> implements ReadonlyMap<EpKey, V> {
  readonly #entries: Map<EpKey, Remote>;
  readonly #field: (r: Remote, key: EpKey) => V;

  constructor(entries: Map<EpKey, Remote>, field: (r: Remote, key: EpKey) => V) {
    this.#entries = entries;
    this.#field = field;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: EpKey): V | undefined {
    const e = this.#entries.get(key);
    return e === undefined ? undefined : this.#field(e, key);
  }

  has(key: EpKey): boolean {
    return this.#entries.has(key);
  }

  keys(): MapIterator<EpKey> {
    return this.#entries.keys();
  }

  values(): MapIterator<V> {
    const field = this.#field;
    return this.#entries.entries().map(([k, e]) => field(e, k)) as MapIterator<V>;
  }

  entries(): MapIterator<[EpKey, V]> {
    const field = this.#field;
    return this.#entries.entries().map(([k, e]) => [k, field(e, k)] as [EpKey, V]) as MapIterator<
      [EpKey, V]
    >;
  }

  [Symbol.iterator](): MapIterator<[EpKey, V]> {
    return this.entries();
  }

  forEach(fn: (value: V, key: EpKey, map: ReadonlyMap<EpKey, V>) => void, thisArg?: unknown): void {
    for (const [k, e] of this.#entries) fn.call(thisArg, this.#field(e, k), k, this);
  }
}

function emptyJoin(): Join {
  const remotes = new Map<EpKey, Remote>();
  const j: Join = {
    services: new Map(),
    loadBalancers: new Map(),
    remotes,
    remoteEndpoints: new RemoteView(
      remotes,
      (r, key) => typeof r === "string" ? ownersObject(j, r, key) : r.ep,
    ),
    endpointRefs: new RemoteView(remotes, (r) => typeof r === "string" ? 1 : r.refs),
    existingEndpoints: new Map(),
    healthChecks: new Map(),
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
  return j;
}

/** The index of `key` in a list sorted by key, or -1. */
function indexByKey(list: readonly { key: EpKey }[], key: EpKey): number {
  let lo = 0, hi = list.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const k = list[mid].key;
    if (k === key) return mid;
    if (k < key) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

function minKey(keys: Iterable<ObjectKey>): ObjectKey {
  let best: ObjectKey | undefined;
  for (const k of keys) if (best === undefined || k < best) best = k;
  return best!;
}

/** References to a remote endpoint made by services (not by the context). */
function serviceRefs(j: Join, key: EpKey, e: RemoteEntry): number {
  return e.refs - (j.contextRefs.get(key) ?? 0);
}

/**
 * Put the winning object of a remote endpoint key in place (context first,
 * then the smallest service), or drop the key when nothing references it.
 */
function settleRemote(j: Join, key: EpKey, e: RemoteEntry): void {
  if (e.refs <= 0) {
    j.remotes.delete(key);
    return;
  }
  const fromContext = j.contextByKey.get(key);
  if (fromContext) {
    e.ep = fromContext;
    return;
  }
  const owners = e.owners;
  if (owners === undefined) return;
  const list = j.services.get(typeof owners === "string" ? owners : minKey(owners.keys()))
    ?.remoteEndpoints;
  const i = list ? indexByKey(list, key) : -1;
  if (i >= 0) e.ep = list![i];
}

function addRemoteRef(j: Join, serviceKey: ObjectKey, ep: DesiredEndpoint): void {
  const key = ep.key;
  const r = j.remotes.get(key);
  if (r === undefined) {
    // `ep` is in the list of `serviceKey`, which the join holds.
    j.remotes.set(key, serviceKey);
    return;
  }
  const e = fullEntry(j, key, r);
  if (e !== r) j.remotes.set(key, e);
  const before = serviceRefs(j, key, e);
  e.refs++;
  const owners = e.owners;
  if (owners === undefined) {
    // Only the context referenced it: its object stays.
    e.owners = serviceKey;
    return;
  }
  if (typeof owners === "string") {
    if (owners === serviceKey) return;
    e.owners = new Map([[owners, before], [serviceKey, 1]]);
    if (serviceKey < owners && !j.contextByKey.has(key)) e.ep = ep;
    return;
  }
  const had = owners.get(serviceKey);
  owners.set(serviceKey, (had ?? 0) + 1);
  if (had === undefined && !j.contextByKey.has(key) && minKey(owners.keys()) === serviceKey) {
    e.ep = ep;
  }
}

function dropRemoteRef(j: Join, serviceKey: ObjectKey, key: EpKey): void {
  const r = j.remotes.get(key);
  if (typeof r === "string") {
    j.remotes.delete(key);
    return;
  }
  const e = r;
  const owners = e?.owners;
  if (e === undefined || owners === undefined) return;
  e.refs--;
  if (typeof owners === "string") {
    if (serviceRefs(j, key, e) > 0) {
      shorten(j, key, e);
      return;
    }
    e.owners = undefined;
    settleRemote(j, key, e);
    return;
  }
  const n = (owners.get(serviceKey) ?? 0) - 1;
  if (n > 0) {
    owners.set(serviceKey, n);
    return;
  }
  const wasFirst = minKey(owners.keys()) === serviceKey;
  owners.delete(serviceKey);
  if (owners.size === 1) e.owners = owners.keys().next().value!;
  if (wasFirst) settleRemote(j, key, e);
  shorten(j, key, e);
}

/** Record an entry in the short form when it fits it (one service, one reference, no context). */
function shorten(j: Join, key: EpKey, e: RemoteEntry): void {
  if (e.refs === 1 && typeof e.owners === "string" && !j.contextRefs.has(key)) {
    j.remotes.set(key, e.owners);
  }
}

/** Count (or uncount) the backends of a load balancer that won its key. */
function countBackends(j: Join, sd: ServiceDesired, lb: DesiredLoadBalancer, add: boolean): void {
  const { remoteEndpoints, existingEndpoints } = sd;
  // The backends and the service's lists are sorted by key alike: each
  // backend is most often the one after the last found in its list.
  let r = 0, x = 0;
  const backends = lb.backends;
  for (let n = 0; n < backends.length; n++) {
    const b = backends[n];
    if (r < remoteEndpoints.length && remoteEndpoints[r].key === b) {
      r = countRemote(j, sd, r, add);
      continue;
    }
    if (x < existingEndpoints.length && existingEndpoints[x].key === b) {
      x = countExisting(j, sd, x, add);
      continue;
    }
    const i = indexByKey(remoteEndpoints, b);
    if (i >= 0) {
      r = countRemote(j, sd, i, add);
      continue;
    }
    const k = indexByKey(existingEndpoints, b);
    if (k >= 0) x = countExisting(j, sd, k, add);
  }
}

/** Count (or uncount) a reference to the service's remote endpoint at `i`; the next index. */
function countRemote(j: Join, sd: ServiceDesired, i: number, add: boolean): number {
  const ep = sd.remoteEndpoints[i];
  if (add) addRemoteRef(j, sd.serviceKey, ep);
  else dropRemoteRef(j, sd.serviceKey, ep.key);
  return i + 1;
}

/** Count (or uncount) a reference to the service's existing endpoint at `i`; the next index. */
function countExisting(j: Join, sd: ServiceDesired, i: number, add: boolean): number {
  const ref = sd.existingEndpoints[i];
  if (add) countExistingIn(j, ref.key, ref.id);
  else countExistingOut(j, ref.key);
  return i + 1;
}

/** One more reference to an existing endpoint (its ID as the referencing service has it). */
function countExistingIn(j: Join, key: EpKey, id: string): void {
  const size = j.existingEndpoints.size;
  j.existingEndpoints.set(key, id);
  if (j.existingEndpoints.size === size) {
    j.existingRefs.set(key, (j.existingRefs.get(key) ?? 1) + 1);
  }
}

/** One reference less to an existing endpoint. */
function countExistingOut(j: Join, key: EpKey): void {
  const n = j.existingRefs.get(key);
  if (n === undefined) j.existingEndpoints.delete(key);
  else if (n > 2) j.existingRefs.set(key, n - 1);
  else j.existingRefs.delete(key);
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

function claimLoadBalancer(j: Join, sd: ServiceDesired, lb: DesiredLoadBalancer): void {
  const holder = j.loadBalancers.get(lb.key);
  if (holder && holder.serviceKey <= sd.serviceKey) {
    addLoser(j.lbLosers, lb.key, sd.serviceKey);
    j.conflictsStale = true;
    return;
  }
  if (holder) {
    countBackends(j, j.services.get(holder.serviceKey)!, holder, false);
    addLoser(j.lbLosers, lb.key, holder.serviceKey);
    j.conflictsStale = true;
  }
  j.loadBalancers.set(lb.key, lb);
  countBackends(j, sd, lb, true);
}

function releaseLoadBalancer(j: Join, sd: ServiceDesired, lb: DesiredLoadBalancer): void {
  const holder = j.loadBalancers.get(lb.key);
  if (holder?.serviceKey !== sd.serviceKey) {
    dropLoser(j.lbLosers, lb.key, sd.serviceKey);
    j.conflictsStale = true;
    return;
  }
  countBackends(j, sd, holder, false);
  const next = takeFirstLoser(j.lbLosers, lb.key);
  const nextSd = next !== undefined ? j.services.get(next) : undefined;
  const nextLb = nextSd?.loadBalancers.find((x) => x.key === lb.key);
  if (!nextSd || !nextLb) {
    j.loadBalancers.delete(lb.key);
    return;
  }
  j.conflictsStale = true;
  j.loadBalancers.set(lb.key, nextLb);
  countBackends(j, nextSd, nextLb, true);
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
  const { loadBalancers, remoteEndpoints } = sd;
  for (let i = 0; i < loadBalancers.length; i++) claimLoadBalancer(j, sd, loadBalancers[i]);
  for (let i = 0; i < remoteEndpoints.length; i++) {
    if (remoteEndpoints[i].role === "serviceVip") {
      addRemoteRef(j, sd.serviceKey, remoteEndpoints[i]);
    }
  }
  if (sd.healthCheck) claimHealthCheck(j, sd.healthCheck);
}

/** Count a service out (the exact reverse of {@link addService}). */
function removeService(j: Join, serviceKey: ObjectKey): void {
  const sd = j.services.get(serviceKey);
  if (!sd) return;
  for (const lb of sd.loadBalancers) releaseLoadBalancer(j, sd, lb);
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
    (j.remotes.get(e.key) as RemoteEntry).refs--; // the context's references make full entries
    j.contextRefs.set(e.key, (j.contextRefs.get(e.key) ?? 1) - 1);
    if (j.contextRefs.get(e.key)! <= 0) j.contextRefs.delete(e.key);
  }
  for (const e of next) {
    const r = j.remotes.get(e.key);
    if (r === undefined) j.remotes.set(e.key, { ep: e, refs: 1, owners: undefined });
    else {
      const entry = fullEntry(j, e.key, r);
      entry.refs++;
      j.remotes.set(e.key, entry);
    }
    j.contextRefs.set(e.key, (j.contextRefs.get(e.key) ?? 0) + 1);
  }
  for (const key of new Set([...old, ...next].map((e) => e.key))) {
    const e = j.remotes.get(key) as RemoteEntry;
    settleRemote(j, key, e);
    if (j.remotes.get(key) === e) shorten(j, key, e);
  }
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
  const sorted = [...services].sort((a, b) => cmp(a.serviceKey, b.serviceKey));
  for (let i = 0; i < sorted.length; i++) {
    // The last of a key stands (the sort is stable): a key listed twice is adjacent.
    if (i > 0 && sorted[i - 1].serviceKey === sorted[i].serviceKey) {
      removeService(j, sorted[i].serviceKey);
    }
    addService(j, sorted[i]);
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
