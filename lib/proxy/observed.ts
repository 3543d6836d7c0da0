/**
 * The observed cache: the agent's memory of what HNS holds, kept current by
 * apply (every create, modify and delete) and corrected by the periodic
 * resync. It implements the pure core's {@link ObservedState} with an index
 * by HNS ID and the referencing LBs per endpoint ID, so a resync that
 * enumerates IDs can tell what vanished without reading any object, and
 * apply can tell whether an endpoint is still referenced without asking HNS.
 * It also implements the core's `ObservedIndex`, so a partial reconcile looks up
 * what it needs instead of scanning every object.
 *
 * Memory: at 10,000 services the cache holds ~52,000 objects, so it keeps of
 * each only what reconcile compares (see {@link slimLoadBalancer} and
 * {@link slimEndpoint}) and indexes IDs upper-cased: HNS and hnsproxy's creates
 * spell GUIDs in upper case, and `toUpperCase` returns such a string itself,
 * so the cache, its indexes and the ownership record share one string per ID.
 *
 * @module
 */

import type { HcnEndpoint, HcnLoadBalancer, HcnPolicy } from "../hns/types.ts";
import type { ObjectKey } from "../kube/model.ts";
import type {
  EpKey,
  IndexedObservedState,
  LbKey,
  ObservedEndpoint,
  ObservedLoadBalancer,
  ObservedState,
} from "./model.ts";
import { IdJournal } from "./id_journal.ts";

/**
 * Mutable {@link ObservedState} with ID lookups. IDs compare case-insensitively.
 * It stores slim copies of what it is given ({@link slimLoadBalancer},
 * {@link slimEndpoint}); the objects it hands out are those copies.
 */
export class ObservedCache implements IndexedObservedState {
  readonly #lbs = new Map<LbKey, ObservedLoadBalancer>();
  readonly #eps = new Map<EpKey, ObservedEndpoint>();
  readonly #foreignLbs = new Map<LbKey, ObservedLoadBalancer>();
  readonly #foreignEps = new Map<EpKey, ObservedEndpoint>();
  /** Upper-case ID → key, for owned and foreign objects alike. */
  readonly #lbKeyById = new Map<string, LbKey>();
  readonly #epKeyById = new Map<string, EpKey>();
  /** Upper-case endpoint ID → keys of the owned LBs referencing it (see {@link KeyList}). */
  readonly #refs = new Map<string, KeyList>();
  /** Upper-case endpoint ID → number of foreign LBs referencing it. */
  readonly #foreignRefs = new Map<string, number>();
  /** Upper-case endpoint ID → number of stray LBs referencing it. */
  readonly #strayRefs = new Map<string, number>();
  /** Service key → keys of the owned LBs recorded for it. */
  readonly #lbsByService = new Map<ObjectKey, KeyList>();
  /** Owned objects without a usable key, by upper-case ID. */
  readonly #strayLbs = new Map<string, ObservedLoadBalancer>();
  readonly #strayEps = new Map<string, ObservedEndpoint>();
  /** Net ID changes since {@link markIds}, while a resync's listing is compared. */
  #journal: IdJournal | undefined;

  /** A cache holding a copy of `state` (or nothing). */
  constructor(state?: ObservedState) {
    if (state) this.replace(state);
  }

  /** Load balancers hnsproxy owns, by key. */
  get loadBalancers(): ReadonlyMap<LbKey, ObservedLoadBalancer> {
    return this.#lbs;
  }

  /** Remote endpoints hnsproxy owns, by key. */
  get endpoints(): ReadonlyMap<EpKey, ObservedEndpoint> {
    return this.#eps;
  }

  /** Load balancers of others, by key (never touched; kept for conflict reports). */
  get foreignLoadBalancers(): ReadonlyMap<LbKey, ObservedLoadBalancer> {
    return this.#foreignLbs;
  }

  /** Remote endpoints of others, by key (never touched). */
  get foreignEndpoints(): ReadonlyMap<EpKey, ObservedEndpoint> {
    return this.#foreignEps;
  }

  /** Owned load balancers without a usable key (to be deleted), by HNS ID. */
  get strayLoadBalancers(): ReadonlyMap<string, ObservedLoadBalancer> {
    return this.#strayLbs;
  }

  /** Owned endpoints without a usable key (to be deleted), by HNS ID. */
  get strayEndpoints(): ReadonlyMap<string, ObservedEndpoint> {
    return this.#strayEps;
  }

  /** Replace everything with a copy of `state` (after a full HNS read). */
  replace(state: ObservedState): void {
    this.clear();
    for (const stray of state.strayLoadBalancers?.values() ?? []) {
      const lb = slimLoadBalancer(stray);
      this.#strayLbs.set(idKey(lb.id), lb);
      countIds(this.#strayRefs, lb, +1);
    }
    for (const ep of state.strayEndpoints?.values() ?? []) {
      this.#strayEps.set(idKey(ep.id), slimEndpoint(ep));
    }
    for (const lb of state.foreignLoadBalancers.values()) this.setForeignLoadBalancer(lb);
    for (const ep of state.foreignEndpoints.values()) this.setForeignEndpoint(ep);
    for (const lb of state.loadBalancers.values()) this.setLoadBalancer(lb);
    for (const ep of state.endpoints.values()) this.setEndpoint(ep);
  }

  /** Forget everything (HNS restarted). A journal of {@link markIds} ends. */
  clear(): void {
    this.#journal = undefined;
    this.#lbs.clear();
    this.#eps.clear();
    this.#foreignLbs.clear();
    this.#foreignEps.clear();
    this.#lbKeyById.clear();
    this.#epKeyById.clear();
    this.#refs.clear();
    this.#foreignRefs.clear();
    this.#strayRefs.clear();
    this.#lbsByService.clear();
    this.#strayLbs.clear();
    this.#strayEps.clear();
  }

  /** Record an owned load balancer (created, modified or adopted), replacing any under its key. */
  setLoadBalancer(given: ObservedLoadBalancer): void {
    const lb = slimLoadBalancer(given);
    this.#dropLb(lb.key);
    this.#dropLbId(lb.id);
    this.#lbs.set(lb.key, lb);
    this.#putId(this.#lbKeyById, idKey(lb.id), lb.key);
    this.#index(lb, true);
  }

  /** Record an owned remote endpoint (created or adopted), replacing any under its key. */
  setEndpoint(given: ObservedEndpoint): void {
    const ep = slimEndpoint(given);
    this.#dropEp(ep.key);
    this.#dropEpId(ep.id);
    this.#eps.set(ep.key, ep);
    this.#putId(this.#epKeyById, idKey(ep.id), ep.key);
  }

  /**
   * Remember a load balancer of others holding `key`. Several foreign LBs
   * cannot share a key (HNS refuses duplicates), so the last one wins.
   */
  setForeignLoadBalancer(given: ObservedLoadBalancer): void {
    const lb = slimLoadBalancer(given);
    if (this.#lbs.get(lb.key)?.id && sameId(this.#lbs.get(lb.key)!.id, lb.id)) return;
    const old = this.#foreignLbs.get(lb.key);
    if (old) {
      this.#deleteId(this.#lbKeyById, idKey(old.id));
      countIds(this.#foreignRefs, old, -1);
    }
    this.#foreignLbs.set(lb.key, lb);
    this.#putId(this.#lbKeyById, idKey(lb.id), lb.key);
    countIds(this.#foreignRefs, lb, +1);
  }

  /** Remember a remote endpoint of others holding `key`. */
  setForeignEndpoint(given: ObservedEndpoint): void {
    const ep = slimEndpoint(given);
    if (this.#eps.get(ep.key)?.id && sameId(this.#eps.get(ep.key)!.id, ep.id)) return;
    const old = this.#foreignEps.get(ep.key);
    if (old) this.#deleteId(this.#epKeyById, idKey(old.id));
    this.#foreignEps.set(ep.key, ep);
    this.#putId(this.#epKeyById, idKey(ep.id), ep.key);
  }

  /** Move a foreign load balancer to the owned ones (adoption); false when unknown. */
  adoptLoadBalancer(key: LbKey, id: string, serviceKey?: string): boolean {
    const foreign = this.#foreignLbs.get(key);
    const lb = foreign ?? this.#lbs.get(key);
    if (!lb || !sameId(lb.id, id)) return false;
    // Already owned as it is (a start adopting its own objects): nothing to move.
    if (!foreign && (serviceKey === undefined || serviceKey === lb.serviceKey)) return true;
    this.setLoadBalancer(
      serviceKey === undefined || serviceKey === lb.serviceKey ? lb : { ...lb, serviceKey },
    );
    return true;
  }

  /** Move a foreign endpoint to the owned ones (adoption); false when unknown. */
  adoptEndpoint(key: EpKey, id: string): boolean {
    const foreign = this.#foreignEps.get(key);
    const ep = foreign ?? this.#eps.get(key);
    if (!ep || !sameId(ep.id, id)) return false;
    if (!foreign) return true; // already owned
    this.setEndpoint(ep);
    return true;
  }

  /** Forget the load balancer with this ID (owned, foreign or stray); returns what was removed. */
  removeLoadBalancerById(id: string): ObservedLoadBalancer | undefined {
    const stray = this.#strayLbs.get(idKey(id));
    if (stray) {
      this.#deleteId(this.#strayLbs, idKey(id));
      countIds(this.#strayRefs, stray, -1);
    }
    return this.#dropLbId(id) ?? stray;
  }

  /** Forget the endpoint with this ID (owned, foreign or stray); returns what was removed. */
  removeEndpointById(id: string): ObservedEndpoint | undefined {
    const stray = this.#strayEps.get(idKey(id));
    if (stray) this.#deleteId(this.#strayEps, idKey(id));
    return this.#dropEpId(id) ?? stray;
  }

  /** The load balancer (owned or foreign) with this ID, if any. */
  loadBalancerById(id: string): ObservedLoadBalancer | undefined {
    const key = this.#lbKeyById.get(idKey(id));
    if (key === undefined) return undefined;
    const owned = this.#lbs.get(key);
    if (owned && sameId(owned.id, id)) return owned;
    const foreign = this.#foreignLbs.get(key);
    return foreign && sameId(foreign.id, id) ? foreign : undefined;
  }

  /** The endpoint (owned or foreign) with this ID, if any. */
  endpointById(id: string): ObservedEndpoint | undefined {
    const key = this.#epKeyById.get(idKey(id));
    if (key === undefined) return undefined;
    const owned = this.#eps.get(key);
    if (owned && sameId(owned.id, id)) return owned;
    const foreign = this.#foreignEps.get(key);
    return foreign && sameId(foreign.id, id) ? foreign : undefined;
  }

  /**
   * Load balancers (owned, foreign or stray) whose ID is not in `ids` (IDs in
   * {@link idKey} form, e.g. an HNS listing): what vanished from HNS.
   */
  loadBalancersMissingFrom(ids: Pick<ReadonlySet<string>, "has">): ObservedLoadBalancer[] {
    const out: ObservedLoadBalancer[] = [];
    for (const id of this.#lbKeyById.keys()) {
      const lb = ids.has(id) ? undefined : this.loadBalancerById(id);
      if (lb) out.push(lb);
    }
    for (const [id, lb] of this.#strayLbs) if (!ids.has(id)) out.push(lb);
    return out;
  }

  /** Endpoints (owned, foreign or stray) whose ID is not in `ids` ({@link idKey} form). */
  endpointsMissingFrom(ids: Pick<ReadonlySet<string>, "has">): ObservedEndpoint[] {
    const out: ObservedEndpoint[] = [];
    for (const id of this.#epKeyById.keys()) {
      const ep = ids.has(id) ? undefined : this.endpointById(id);
      if (ep) out.push(ep);
    }
    for (const [id, ep] of this.#strayEps) if (!ids.has(id)) out.push(ep);
    return out;
  }

  /** Whether this owned-or-foreign load balancer is one hnsproxy owns (with a key). */
  ownsLoadBalancer(lb: ObservedLoadBalancer): boolean {
    return this.#lbs.get(lb.key) === lb;
  }

  /** Whether this owned-or-foreign endpoint is one hnsproxy owns (with a key). */
  ownsEndpoint(ep: ObservedEndpoint): boolean {
    return this.#eps.get(ep.key) === ep;
  }

  /** The ID of every object in the cache (owned, foreign, stray), in {@link idKey} form. */
  ids(): Set<string> {
    const out = new Set<string>(this.#lbKeyById.keys());
    for (const id of this.#epKeyById.keys()) out.add(id);
    for (const id of this.#strayLbs.keys()) out.add(id);
    for (const id of this.#strayEps.keys()) out.add(id);
    return out;
  }

  /** Whether an object (owned, foreign or stray) has this ID ({@link idKey} form). */
  hasId(id: string): boolean {
    return this.#lbKeyById.has(id) || this.#epKeyById.has(id) || this.#strayLbs.has(id) ||
      this.#strayEps.has(id);
  }

  /**
   * The load balancer IDs, then the endpoint IDs, of every object ({@link
   * idKey} form), read from the indexes as they are when each is reached
   * (no copy; the cache may change between two steps).
   */
  *idKeys(kind: "LoadBalancer" | "Endpoint"): IterableIterator<string> {
    if (kind === "LoadBalancer") {
      yield* this.#lbKeyById.keys();
      yield* this.#strayLbs.keys();
    } else {
      yield* this.#epKeyById.keys();
      yield* this.#strayEps.keys();
    }
  }

  /**
   * Start a journal of the IDs that enter and leave the cache (one at a
   * time: a new one replaces the last); it ends with {@link unmarkIds} or
   * {@link clear}.
   */
  markIds(): IdJournal {
    this.#journal = new IdJournal();
    return this.#journal;
  }

  /** End this journal, if it is the current one. */
  unmarkIds(journal: IdJournal): void {
    if (this.#journal === journal) this.#journal = undefined;
  }

  /** Whether an owned load balancer references the endpoint with this ID. */
  endpointReferenced(id: string): boolean {
    return this.#refs.has(idKey(id));
  }

  /** Keys of the owned load balancers whose backends include this endpoint ID. */
  loadBalancersReferencing(endpointId: string): readonly LbKey[] {
    return asList(this.#refs.get(idKey(endpointId)));
  }

  /** Whether a foreign load balancer (or, with `includeStray`, a stray one) references this endpoint ID. */
  referencedByOthers(endpointId: string, includeStray: boolean): boolean {
    const id = idKey(endpointId);
    return this.#foreignRefs.has(id) || (includeStray && this.#strayRefs.has(id));
  }

  /** Keys of the owned load balancers recorded for this service. */
  loadBalancersOfService(serviceKey: ObjectKey): readonly LbKey[] {
    return asList(this.#lbsByService.get(serviceKey));
  }

  /** The owned endpoint with this ID, if any. */
  ownedEndpointById(id: string): ObservedEndpoint | undefined {
    const found = this.endpointById(id);
    return found && this.#eps.get(found.key) === found ? found : undefined;
  }

  #dropLb(key: LbKey): void {
    const old = this.#lbs.get(key);
    if (!old) return;
    this.#lbs.delete(key);
    this.#deleteId(this.#lbKeyById, idKey(old.id));
    this.#index(old, false);
  }

  #dropEp(key: EpKey): void {
    const old = this.#eps.get(key);
    if (!old) return;
    this.#eps.delete(key);
    this.#deleteId(this.#epKeyById, idKey(old.id));
  }

  #dropLbId(id: string): ObservedLoadBalancer | undefined {
    const found = this.loadBalancerById(id);
    if (!found) return undefined;
    if (this.#lbs.get(found.key) === found) {
      this.#dropLb(found.key);
    } else {
      this.#foreignLbs.delete(found.key);
      this.#deleteId(this.#lbKeyById, idKey(id));
      countIds(this.#foreignRefs, found, -1);
    }
    return found;
  }

  #dropEpId(id: string): ObservedEndpoint | undefined {
    const found = this.endpointById(id);
    if (!found) return undefined;
    if (this.#eps.get(found.key) === found) {
      this.#dropEp(found.key);
    } else {
      this.#foreignEps.delete(found.key);
      this.#deleteId(this.#epKeyById, idKey(id));
    }
    return found;
  }

  /** Index an ID, noting it in the journal when it is new to the cache. */
  #putId<V>(index: Map<string, V>, id: string, value: V): void {
    const fresh = this.#journal !== undefined && !this.hasId(id);
    index.set(id, value);
    if (fresh) this.#journal!.added(id);
  }

  /** Unindex an ID, noting it in the journal when the cache no longer holds it. */
  #deleteId(index: Map<string, unknown>, id: string): void {
    if (index.delete(id) && this.#journal && !this.hasId(id)) this.#journal.removed(id);
  }

  /** Add an owned LB to (or take it out of) the reference and per-service indexes. */
  #index(lb: ObservedLoadBalancer, add: boolean): void {
    for (const ref of new Set((lb.hns.HostComputeEndpoints ?? []).map((x) => idKey(String(x))))) {
      listEdit(this.#refs, ref, lb.key, add);
    }
    if (lb.serviceKey !== undefined) listEdit(this.#lbsByService, lb.serviceKey, lb.key, add);
  }
}

/**
 * A list of keys, stored as the key itself while it has one (most endpoints
 * are referenced by one LB): 40,000 one-element arrays cost ~2 MB.
 */
type KeyList = string | string[];

function asList(list: KeyList | undefined): readonly string[] {
  return list === undefined ? [] : typeof list === "string" ? [list] : list;
}

/** Add a value to (or remove it from) the list under a key; empty lists are dropped. */
function listEdit<K>(m: Map<K, KeyList>, key: K, value: string, add: boolean): void {
  const list = m.get(key);
  if (add) {
    if (list === undefined) m.set(key, value);
    else if (typeof list === "string") m.set(key, [list, value]);
    else list.push(value);
    return;
  }
  if (list === undefined) return;
  if (typeof list === "string") {
    if (list === value) m.delete(key);
    return;
  }
  const i = list.indexOf(value);
  if (i >= 0) list.splice(i, 1);
  if (list.length === 1) m.set(key, list[0]);
  else if (list.length === 0) m.delete(key);
}

/** Count (delta +1) or uncount (-1) the endpoint IDs an LB references. */
function countIds(counts: Map<string, number>, lb: ObservedLoadBalancer, delta: number): void {
  for (const ref of new Set((lb.hns.HostComputeEndpoints ?? []).map((x) => idKey(String(x))))) {
    const n = (counts.get(ref) ?? 0) + delta;
    if (n > 0) counts.set(ref, n);
    else counts.delete(ref);
  }
}

/** Case-insensitive GUID comparison. */
export function sameId(a: string, b: string): boolean {
  return a === b || a.toUpperCase() === b.toUpperCase();
}

/**
 * The index form of an ID: upper case, which is the ID itself when HNS
 * spelled it so (no copy, and its cached hash is reused by every set it is
 * looked up in). HNS listings compared with the cache use this form.
 */
export function idKey(id: string): string {
  return id.toUpperCase();
}

/**
 * A copy of an observed load balancer with only what reconcile and the
 * indexes read (`sameLoadBalancer`, backend IDs, VIPs): HNS adds many fields
 * to what it returns, and hnsproxy's own creates carry the schema version.
 */
export function slimLoadBalancer(lb: ObservedLoadBalancer): ObservedLoadBalancer {
  const h = lb.hns;
  const hns = {} as HcnLoadBalancer;
  if (h.HostComputeEndpoints !== undefined) hns.HostComputeEndpoints = h.HostComputeEndpoints;
  if (h.FrontendVIPs !== undefined) hns.FrontendVIPs = h.FrontendVIPs;
  if (h.PortMappings !== undefined) hns.PortMappings = h.PortMappings;
  if (h.Flags !== undefined) hns.Flags = h.Flags;
  if (h.SourceVIP !== undefined) hns.SourceVIP = h.SourceVIP;
  // One literal with the service key: a property added later would need a
  // second allocation per load balancer.
  return lb.serviceKey !== undefined
    ? { key: lb.key, id: lb.id, hns, serviceKey: lb.serviceKey }
    : { key: lb.key, id: lb.id, hns };
}

/**
 * A copy of an observed endpoint with only what `endpointSatisfies` reads (IP,
 * network, flags, MAC, provider address). A well-formed one (one IP
 * configuration object, policies a list) is kept as flat fields and its
 * `hns` rebuilt on each read: ~100 bytes less for each of 40,000 endpoints.
 */
export function slimEndpoint(ep: ObservedEndpoint): ObservedEndpoint {
  const h = ep.hns;
  const cfgs = h.IpConfigurations;
  const cfg = Array.isArray(cfgs) && cfgs.length > 0 ? cfgs[0] : undefined;
  const flat = (cfgs === undefined || (Array.isArray(cfgs) &&
    (cfgs.length === 0 || (typeof cfg === "object" && cfg !== null)))) &&
    (h.Policies === undefined || Array.isArray(h.Policies));
  if (flat) {
    const pa = h.Policies === undefined ? undefined : providerAddressPolicies(h.Policies)[0];
    return new FlatEndpoint(
      ep.key,
      ep.id,
      h.HostComputeNetwork,
      cfgs === undefined ? NO_CONFIGS : cfg === undefined ? EMPTY_CONFIGS : cfg.IpAddress,
      h.MacAddress,
      h.Flags,
      h.Policies === undefined ? NO_POLICIES : pa === undefined ? EMPTY_POLICIES : pa.Type,
      pa?.Settings === undefined
        ? NO_SETTINGS
        : pa.Settings === null
        ? null
        : pa.Settings.ProviderAddress,
    );
  }
  const hns: HcnEndpoint = {};
  if (h.HostComputeNetwork !== undefined) hns.HostComputeNetwork = h.HostComputeNetwork;
  if (cfgs !== undefined) hns.IpConfigurations = cfgs;
  if (h.MacAddress !== undefined) hns.MacAddress = h.MacAddress;
  if (h.Flags !== undefined) hns.Flags = h.Flags;
  if (h.Policies !== undefined) hns.Policies = h.Policies;
  return { key: ep.key, id: ep.id, hns };
}

const NO_CONFIGS = Symbol("no IpConfigurations");
const EMPTY_CONFIGS = Symbol("empty IpConfigurations");
const NO_POLICIES = Symbol("no Policies");
const EMPTY_POLICIES = Symbol("no ProviderAddress policy");
const NO_SETTINGS = Symbol("no policy Settings");

/** An observed endpoint as flat fields; `hns` is rebuilt (the same each time) when read. */
class FlatEndpoint implements ObservedEndpoint {
  constructor(
    readonly key: EpKey,
    readonly id: string,
    readonly network: string | undefined,
    readonly ip: string | typeof NO_CONFIGS | typeof EMPTY_CONFIGS,
    readonly mac: string | undefined,
    readonly flags: number | undefined,
    readonly policyType: string | typeof NO_POLICIES | typeof EMPTY_POLICIES,
    readonly providerAddress: unknown,
  ) {}

  get hns(): HcnEndpoint {
    const hns: HcnEndpoint = {};
    if (this.network !== undefined) hns.HostComputeNetwork = this.network;
    if (this.ip === EMPTY_CONFIGS) hns.IpConfigurations = [];
    else if (this.ip !== NO_CONFIGS) hns.IpConfigurations = [{ IpAddress: this.ip }];
    if (this.mac !== undefined) hns.MacAddress = this.mac;
    if (this.flags !== undefined) hns.Flags = this.flags;
    if (this.policyType === EMPTY_POLICIES) hns.Policies = [];
    else if (this.policyType !== NO_POLICIES) {
      const pa = this.providerAddress;
      hns.Policies = [{
        Type: this.policyType,
        Settings: pa === NO_SETTINGS
          ? undefined
          : pa === null
          ? null as unknown as undefined
          : { ProviderAddress: pa },
      }];
    }
    return hns;
  }
}

/** The first ProviderAddress policy (the only one `endpointSatisfies` reads), as a list. */
function providerAddressPolicies(policies: HcnPolicy[]): HcnPolicy[] {
  for (const p of policies) {
    if (String(p?.Type ?? "").toLowerCase() === "provideraddress") {
      return p.Settings === undefined || p.Settings === null
        ? [{ Type: p.Type, Settings: p.Settings }]
        : [{ Type: p.Type, Settings: { ProviderAddress: p.Settings.ProviderAddress } }];
    }
  }
  return [];
}
