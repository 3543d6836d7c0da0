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
 * so the cache and the ownership record share one string per ID. The ID
 * indexes of the owned and foreign objects are {@link SlotMap}s: they hold no
 * string or entry per ID, only a slot in a typed array; the owned objects by
 * key are subsets of them (no second array of objects).
 * The keys of the LBs referencing an endpoint are kept on the stored endpoint
 * (no Map per relation), and a load balancer that replaces another under its
 * key holds the strings the cache already holds where they are the same
 * (backend IDs, VIPs, port mappings): an update read back from HNS is parsed
 * afresh, and would otherwise keep copies.
 *
 * @module
 */

import type { HcnEndpoint, HcnLoadBalancer, HcnPolicy, HcnPortMapping } from "../hns/types.ts";
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
import { SlotMap, SlotStringMap } from "./slot_index.ts";
import { remoteEndpointMac } from "./net.ts";

/**
 * Mutable {@link ObservedState} with ID lookups. IDs compare case-insensitively.
 * It stores slim copies of what it is given ({@link slimLoadBalancer},
 * {@link slimEndpoint}; a flat endpoint of `slimEndpoint`'s that no cache
 * stores yet it keeps as it is); the objects it hands out are those it stores. Their
 * `hns` may be an accessor that rebuilds it: copy one by its fields, never by
 * spreading it.
 */
export class ObservedCache implements IndexedObservedState {
  /** Upper-case ID → the object, for owned and foreign objects alike. */
  readonly #lbById = new SlotMap<ObservedLoadBalancer>((lb) => idKey(lb.id));
  readonly #epById = new SlotMap<StoredEndpoint>((ep) => idKey(ep.id));
  /**
   * The owned objects by key: subsets of the ID indexes (their slots, no
   * second array of objects), so an object is put there after its ID is
   * indexed, and leaves them when its ID's entry is dropped or replaced.
   */
  readonly #lbs = this.#lbById.subset<LbKey>((lb) => lb.key);
  readonly #eps = this.#epById.subset<EpKey>((ep) => ep.key);
  readonly #foreignLbs = new Map<LbKey, ObservedLoadBalancer>();
  readonly #foreignEps = new Map<EpKey, StoredEndpoint>();
  /**
   * Keys of the owned LBs referencing an endpoint ID (see {@link KeyList}) are
   * kept on the endpoint in {@link #epById}; here only for IDs not there
   * (stray, or not known to the cache).
   */
  readonly #unknownRefs = new SlotStringMap<string, KeyList>();
  /** Upper-case endpoint ID → number of foreign LBs referencing it. */
  readonly #foreignRefs = new SlotStringMap<string, number>();
  /** Upper-case endpoint ID → number of stray LBs referencing it. */
  readonly #strayRefs = new SlotStringMap<string, number>();
  /** Service key → keys of the owned LBs recorded for it. */
  readonly #lbsByService = new SlotStringMap<ObjectKey, KeyList>();
  /** Owned objects without a usable key, by upper-case ID. */
  readonly #strayLbs = new Map<string, ObservedLoadBalancer>();
  readonly #strayEps = new Map<string, ObservedEndpoint>();
  /** Net ID changes since {@link markIds}, while a resync's listing is compared. */
  #journal: IdJournal | undefined;

  /**
   * The string to keep for an ID (an equal one, e.g. the ownership record's,
   * so that one string per ID is kept; see `OwnershipRecord.idString`).
   */
  readonly #sharedId: (id: string) => string;

  /**
   * A cache holding a copy of `state` (or nothing). `sharedId` gives, for an
   * ID, an equal string held elsewhere to keep instead (default: the ID).
   */
  constructor(state?: ObservedState, sharedId: (id: string) => string = (id) => id) {
    this.#sharedId = sharedId;
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
      this.#strayEps.set(idKey(ep.id), storable(ep, ep.id));
    }
    // Endpoints first: the LBs' references then land on them (see #share too). forEach, not
    // for-of: no iterator result per entry while this runs once, before it is optimized.
    state.foreignEndpoints.forEach((ep) => this.setForeignEndpoint(ep));
    state.endpoints.forEach((given) => {
      const ep = storable(given, this.#sharedId(given.id));
      const id = idKey(ep.id);
      // Neither its key nor its ID held yet, no references known (no owned LB is in yet)
      // and no journal (cleared): what #storeEndpoint does, without its lookups.
      if (this.#unknownRefs.size === 0 && !this.#eps.has(ep.key) && !this.#epById.has(id)) {
        this.#epById.set(id, ep);
        this.#eps.set(ep.key, ep);
      } else {
        this.#storeEndpoint(ep);
      }
    });
    state.foreignLoadBalancers.forEach((lb) => this.setForeignLoadBalancer(lb));
    state.loadBalancers.forEach((lb) => this.setLoadBalancer(lb));
  }

  /** Forget everything (HNS restarted). A journal of {@link markIds} ends. */
  clear(): void {
    this.#journal = undefined;
    this.#lbs.clear();
    this.#eps.clear();
    this.#foreignLbs.clear();
    this.#foreignEps.clear();
    this.#lbById.clear();
    this.#epById.clear();
    this.#unknownRefs.clear();
    this.#foreignRefs.clear();
    this.#strayRefs.clear();
    this.#lbsByService.clear();
    this.#strayLbs.clear();
    this.#strayEps.clear();
  }

  /** Record an owned load balancer (created, modified or adopted), replacing any under its key. */
  setLoadBalancer(given: ObservedLoadBalancer): void {
    const old = this.#lbs.get(given.key);
    let lb: ObservedLoadBalancer;
    if (given instanceof FlatLoadBalancer) {
      // Already slim (e.g. a trusted start's): no `hns` to rebuild and slim again.
      lb = this.#sharedFlat(given, old);
    } else {
      const hns = slimLoadBalancerHns(given.hns);
      this.#share(hns, old);
      lb = storedLoadBalancer(given.key, this.#sharedId(given.id), given.serviceKey, hns);
    }
    if (old !== undefined && old.id === lb.id) {
      // Updated in place: the ID's entry is overwritten (its slot kept), which
      // takes the old one out of the owned subset; the new one goes in.
      this.#index(old, false, lb.serviceKey);
      this.#lbById.set(idKey(lb.id), lb);
      this.#lbs.set(lb.key, lb);
      this.#index(lb, true, old.serviceKey);
      return;
    }
    this.#dropLb(lb.key);
    this.#dropLbId(lb.id);
    this.#putId(this.#lbById, idKey(lb.id), lb);
    this.#lbs.set(lb.key, lb);
    this.#index(lb, true);
  }

  /** Record an owned remote endpoint (created or adopted), replacing any under its key. */
  setEndpoint(given: ObservedEndpoint): void {
    this.#storeEndpoint(storable(given, this.#sharedId(given.id)));
  }

  /** Store a slim owned endpoint, replacing any under its key or with its ID. */
  #storeEndpoint(ep: StoredEndpoint): void {
    this.#dropEp(ep.key);
    this.#dropEpId(ep.id);
    this.#putEp(ep);
    this.#eps.set(ep.key, ep);
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
      this.#deleteId(this.#lbById, idKey(old.id));
      countIds(this.#foreignRefs, old, -1);
    }
    this.#foreignLbs.set(lb.key, lb);
    this.#putId(this.#lbById, idKey(lb.id), lb);
    countIds(this.#foreignRefs, lb, +1);
  }

  /** Remember a remote endpoint of others holding `key`. */
  setForeignEndpoint(given: ObservedEndpoint): void {
    const ep = storable(given, given.id);
    if (this.#eps.get(ep.key)?.id && sameId(this.#eps.get(ep.key)!.id, ep.id)) return;
    const old = this.#foreignEps.get(ep.key);
    if (old) this.#deleteEp(idKey(old.id));
    this.#foreignEps.set(ep.key, ep);
    this.#putEp(ep);
  }

  /** Move a foreign load balancer to the owned ones (adoption); false when unknown. */
  adoptLoadBalancer(key: LbKey, id: string, serviceKey?: string): boolean {
    const foreign = this.#foreignLbs.get(key);
    const lb = foreign ?? this.#lbs.get(key);
    if (!lb || !sameId(lb.id, id)) return false;
    // Already owned as it is (a start adopting its own objects): nothing to move.
    if (!foreign && (serviceKey === undefined || serviceKey === lb.serviceKey)) return true;
    this.setLoadBalancer(
      serviceKey === undefined || serviceKey === lb.serviceKey
        ? lb
        : { key: lb.key, id: lb.id, hns: lb.hns, serviceKey },
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
    return this.#lbById.get(idKey(id));
  }

  /** The endpoint (owned or foreign) with this ID, if any. */
  endpointById(id: string): ObservedEndpoint | undefined {
    return this.#epById.get(idKey(id));
  }

  /**
   * Load balancers (owned, foreign or stray) whose ID is not in `ids` (IDs in
   * {@link idKey} form, e.g. an HNS listing): what vanished from HNS.
   */
  loadBalancersMissingFrom(ids: Pick<ReadonlySet<string>, "has">): ObservedLoadBalancer[] {
    const out: ObservedLoadBalancer[] = [];
    for (const [id, lb] of this.#lbById) if (!ids.has(id)) out.push(lb);
    for (const [id, lb] of this.#strayLbs) if (!ids.has(id)) out.push(lb);
    return out;
  }

  /** Endpoints (owned, foreign or stray) whose ID is not in `ids` ({@link idKey} form). */
  endpointsMissingFrom(ids: Pick<ReadonlySet<string>, "has">): ObservedEndpoint[] {
    const out: ObservedEndpoint[] = [];
    for (const [id, ep] of this.#epById) if (!ids.has(id)) out.push(ep);
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
    const out = new Set<string>(this.#lbById.keys());
    for (const id of this.#epById.keys()) out.add(id);
    for (const id of this.#strayLbs.keys()) out.add(id);
    for (const id of this.#strayEps.keys()) out.add(id);
    return out;
  }

  /** Whether an object (owned, foreign or stray) has this ID ({@link idKey} form). */
  hasId(id: string): boolean {
    return this.#lbById.has(id) || this.#epById.has(id) || this.#strayLbs.has(id) ||
      this.#strayEps.has(id);
  }

  /**
   * The load balancer IDs, then the endpoint IDs, of every object ({@link
   * idKey} form), read from the indexes as they are when each is reached
   * (no copy; the cache may change between two steps).
   */
  *idKeys(kind: "LoadBalancer" | "Endpoint"): IterableIterator<string> {
    if (kind === "LoadBalancer") {
      yield* this.#lbById.keys();
      yield* this.#strayLbs.keys();
    } else {
      yield* this.#epById.keys();
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
    return this.#refsOf(idKey(id)) !== undefined;
  }

  /** Keys of the owned load balancers whose backends include this endpoint ID. */
  loadBalancersReferencing(endpointId: string): readonly LbKey[] {
    return asList(this.#refsOf(idKey(endpointId)));
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
    this.#deleteId(this.#lbById, idKey(old.id));
    this.#index(old, false);
  }

  #dropEp(key: EpKey): void {
    const old = this.#eps.get(key);
    if (!old) return;
    this.#eps.delete(key);
    this.#deleteEp(idKey(old.id));
  }

  #dropLbId(id: string): ObservedLoadBalancer | undefined {
    const found = this.loadBalancerById(id);
    if (!found) return undefined;
    if (this.#lbs.get(found.key) === found) {
      this.#dropLb(found.key);
    } else {
      this.#foreignLbs.delete(found.key);
      this.#deleteId(this.#lbById, idKey(id));
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
      this.#deleteEp(idKey(id));
    }
    return found;
  }

  /** Index an ID, noting it in the journal when it is new to the cache. */
  #putId<V>(index: IdIndex<V>, id: string, value: V): void {
    const fresh = this.#journal !== undefined && !this.hasId(id);
    index.set(id, value);
    if (fresh) this.#journal!.added(id);
  }

  /** Unindex an ID, noting it in the journal when the cache no longer holds it. */
  #deleteId(index: IdIndex<never>, id: string): void {
    if (index.delete(id) && this.#journal && !this.hasId(id)) this.#journal.removed(id);
  }

  /** Index an endpoint by its ID, with the references to that ID known so far. */
  #putEp(ep: StoredEndpoint): void {
    const id = idKey(ep.id);
    const old = this.#epById.get(id);
    if (old !== undefined) {
      ep.refs = old.refs;
    } else {
      ep.refs = this.#unknownRefs.get(id);
      if (ep.refs !== undefined) this.#unknownRefs.delete(id);
    }
    this.#putId(this.#epById, id, ep);
  }

  /** Unindex an endpoint ID; the references to it stay known. */
  #deleteEp(id: string): void {
    const old = this.#epById.get(id);
    if (old?.refs !== undefined) this.#unknownRefs.set(id, old.refs);
    this.#deleteId(this.#epById, id);
  }

  /** Keys of the owned LBs referencing an endpoint ID ({@link idKey} form). */
  #refsOf(id: string): KeyList | undefined {
    const ep = this.#epById.get(id);
    return ep !== undefined ? ep.refs : this.#unknownRefs.get(id);
  }

  /**
   * Add an owned LB to (or take it out of) the reference and per-service
   * indexes; its service's entry is left as it is when `sameService` is its
   * service key (an update that keeps it).
   */
  #index(lb: ObservedLoadBalancer, add: boolean, sameService?: string): void {
    eachReferencedId(lb, (ref, backends, at) => {
      const ep = this.#epById.get(ref);
      if (ep !== undefined) {
        ep.refs = listWith(ep.refs, lb.key, add);
        // The stored LB's array: it holds the endpoint's string (an equal value).
        if (add && backends[at] === ep.id) backends[at] = ep.id;
      } else {
        setOrDelete(this.#unknownRefs, ref, listWith(this.#unknownRefs.get(ref), lb.key, add));
      }
    });
    if (lb.serviceKey !== undefined && lb.serviceKey !== sameService) {
      const list = listWith(this.#lbsByService.get(lb.serviceKey), lb.key, add);
      setOrDelete(this.#lbsByService, lb.serviceKey, list);
    }
  }

  /**
   * A flat load balancer to store for `given`, holding the strings the cache
   * holds (see {@link #share}): its ID as the ownership record's, its VIPs
   * as those of `old`. It keeps `given`'s backend array, a cache-form copy
   * already (slimLoadBalancer's, or the cache's own).
   */
  #sharedFlat(given: FlatLoadBalancer, old: ObservedLoadBalancer | undefined): FlatLoadBalancer {
    const flatOld = old instanceof FlatLoadBalancer ? old : undefined;
    return new FlatLoadBalancer(
      given.key,
      this.#sharedId(given.id),
      given.serviceKey,
      given.backends,
      typeof given.vip === "string" && given.vip === flatOld?.vip ? flatOld.vip : given.vip,
      given.sourceVip !== undefined && given.sourceVip === flatOld?.sourceVip
        ? flatOld.sourceVip
        : given.sourceVip,
      given.shape,
      given.internalPort,
      given.externalPort,
    );
  }

  /**
   * Make a load balancer about to be stored hold the strings the cache
   * already holds: its backends' IDs as the endpoints spell them, and the
   * VIPs and port mappings of the one it replaces where they are the same.
   * An LB read back from HNS (a modify's answer) is parsed afresh, so without
   * this every update would keep copies of strings held elsewhere.
   */
  #share(h: HcnLoadBalancer, old: ObservedLoadBalancer | undefined): void {
    const backends = h.HostComputeEndpoints;
    // A copy: the caller's array is not the cache's to keep (#index shares its strings).
    if (backends !== undefined) h.HostComputeEndpoints = backends.slice();
    if (old === undefined) return;
    if (old instanceof FlatLoadBalancer) {
      // Its port mapping is numbers: only the strings are worth sharing.
      const vips = h.FrontendVIPs;
      if (Array.isArray(vips) && vips.length === 1 && vips[0] === old.vip) {
        h.FrontendVIPs = [old.vip];
      }
      if (h.SourceVIP !== undefined && h.SourceVIP === old.sourceVip) h.SourceVIP = old.sourceVip;
      return;
    }
    const o = old.hns;
    if (h.FrontendVIPs !== undefined && sameStrings(h.FrontendVIPs, o.FrontendVIPs)) {
      h.FrontendVIPs = o.FrontendVIPs;
    }
    if (h.SourceVIP !== undefined && h.SourceVIP === o.SourceVIP) h.SourceVIP = o.SourceVIP;
    if (h.PortMappings !== undefined && samePortMappings(h.PortMappings, o.PortMappings)) {
      h.PortMappings = o.PortMappings;
    }
  }
}

/** An index by ID the cache keeps (a Map for the few stray objects, else an {@link SlotMap}). */
interface IdIndex<V> {
  set(id: string, value: V): unknown;
  delete(id: string): boolean;
}

/**
 * An endpoint as the cache stores it ({@link slimEndpoint}'s copy), with the
 * keys of the owned LBs that reference its ID: one field instead of a Map
 * entry per endpoint.
 */
interface StoredEndpoint extends ObservedEndpoint {
  refs: KeyList | undefined;
}

/**
 * A list of keys, stored as the key itself while it has one (most endpoints
 * are referenced by one LB): 40,000 one-element arrays cost ~2 MB.
 */
type KeyList = string | string[];

function asList(list: KeyList | undefined): readonly string[] {
  return list === undefined ? [] : typeof list === "string" ? [list] : list;
}

/** The list with a value added (or removed); undefined when empty. Arrays are edited in place. */
function listWith(list: KeyList | undefined, value: string, add: boolean): KeyList | undefined {
  if (add) {
    if (list === undefined) return value;
    if (typeof list === "string") return [list, value];
    list.push(value);
    return list;
  }
  if (list === undefined || typeof list === "string") return list === value ? undefined : list;
  const i = list.indexOf(value);
  if (i >= 0) list.splice(i, 1);
  return list.length === 1 ? list[0] : list.length === 0 ? undefined : list;
}

function setOrDelete<K extends string, V>(
  m: SlotStringMap<K, V>,
  key: K,
  value: V | undefined,
): void {
  if (value === undefined) m.delete(key);
  else m.set(key, value);
}

function sameStrings(a: readonly unknown[], b: readonly unknown[] | undefined): boolean {
  if (b === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Whether two port mapping lists hold the same fields (those HNS and reconcile use). */
function samePortMappings(
  a: HcnLoadBalancer["PortMappings"],
  b: HcnLoadBalancer["PortMappings"],
): boolean {
  if (a === b) return true;
  if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as unknown as Record<string, unknown>;
    const y = b[i] as unknown as Record<string, unknown>;
    if (typeof x !== "object" || x === null || typeof y !== "object" || y === null) return false;
    const keys = Object.keys(x);
    if (keys.length !== Object.keys(y).length) return false;
    for (const k of keys) if (x[k] !== y[k]) return false;
  }
  return true;
}

/** An LB's backend IDs, its own array (without rebuilding a flat one's `hns`). */
function backendsOf(lb: ObservedLoadBalancer): string[] | undefined {
  return lb instanceof FlatLoadBalancer ? lb.backends : lb.hns.HostComputeEndpoints;
}

/** Backends past this many are told apart by a Set; fewer, by comparing with those before. */
const FEW_BACKENDS = 16;

/**
 * `fn` for each endpoint ID an LB references ({@link idKey} form), once each,
 * with its backend array and the index of the ID's first place in it.
 */
function eachReferencedId(
  lb: ObservedLoadBalancer,
  fn: (ref: string, backends: string[], at: number) => void,
): void {
  const backends = backendsOf(lb);
  if (backends === undefined) return;
  const n = backends.length;
  const many = n > FEW_BACKENDS ? new Set<string>() : undefined;
  const few: string[] = [];
  for (let i = 0; i < n; i++) {
    const ref = idKey(String(backends[i]));
    if (many !== undefined) {
      if (many.has(ref)) continue;
      many.add(ref);
    } else {
      if (few.includes(ref)) continue;
      few.push(ref);
    }
    fn(ref, backends, i);
  }
}

/** Count (delta +1) or uncount (-1) the endpoint IDs an LB references. */
function countIds(
  counts: SlotStringMap<string, number>,
  lb: ObservedLoadBalancer,
  delta: number,
): void {
  eachReferencedId(lb, (ref) => {
    const n = (counts.get(ref) ?? 0) + delta;
    if (n > 0) counts.set(ref, n);
    else counts.delete(ref);
  });
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
 * to what it returns, and hnsproxy's own creates carry the schema version. A
 * well-formed one (at most one VIP, one port mapping of numbers) is kept as
 * flat fields and its `hns` rebuilt on each read, so the cache holds no nested
 * objects for it.
 */
export function slimLoadBalancer(lb: ObservedLoadBalancer): ObservedLoadBalancer {
  return storedLoadBalancer(lb.key, lb.id, lb.serviceKey, slimLoadBalancerHns(lb.hns));
}

/** The fields of an HNS load balancer that {@link slimLoadBalancer} keeps, in a new object. */
function slimLoadBalancerHns(h: HcnLoadBalancer): HcnLoadBalancer {
  const hns = {} as HcnLoadBalancer;
  if (h.HostComputeEndpoints !== undefined) hns.HostComputeEndpoints = h.HostComputeEndpoints;
  if (h.FrontendVIPs !== undefined) hns.FrontendVIPs = h.FrontendVIPs;
  if (h.PortMappings !== undefined) hns.PortMappings = h.PortMappings;
  if (h.Flags !== undefined) hns.Flags = h.Flags;
  if (h.SourceVIP !== undefined) hns.SourceVIP = h.SourceVIP;
  return hns;
}

/** A load balancer to store: flat when its slim `hns` allows, else as it is. */
function storedLoadBalancer(
  key: LbKey,
  id: string,
  serviceKey: ObjectKey | undefined,
  hns: HcnLoadBalancer,
): ObservedLoadBalancer {
  const vips = hns.FrontendVIPs;
  const pms = hns.PortMappings;
  const pm = Array.isArray(pms) && pms.length === 1 ? pms[0] : undefined;
  const mask = pms === undefined
    ? NO_PORT_MAPPINGS
    : Array.isArray(pms) && pms.length === 0
    ? EMPTY_PORT_MAPPINGS
    : portMappingMask(pm);
  const shape = mask === NOT_FLAT ? NOT_FLAT : packShape(mask, pm, hns.Flags);
  const flat = shape !== NOT_FLAT &&
    (vips === undefined ||
      (Array.isArray(vips) &&
        (vips.length === 0 || (vips.length === 1 && typeof vips[0] === "string")))) &&
    (hns.SourceVIP === undefined || typeof hns.SourceVIP === "string") &&
    packable(pm?.InternalPort, NO_PORT) && packable(pm?.ExternalPort, NO_PORT);
  if (flat) {
    return new FlatLoadBalancer(
      key,
      id,
      serviceKey,
      hns.HostComputeEndpoints,
      vips === undefined ? NO_VIPS : vips.length === 0 ? EMPTY_VIPS : vips[0],
      hns.SourceVIP,
      shape,
      pm?.InternalPort ?? -1,
      pm?.ExternalPort ?? -1,
    );
  }
  // One literal with the service key: a property added later would need a
  // second allocation per load balancer.
  return serviceKey !== undefined ? { key, id, hns, serviceKey } : { key, id, hns };
}

const NO_VIPS = Symbol("no FrontendVIPs");
const EMPTY_VIPS = Symbol("empty FrontendVIPs");
/** Port mapping masks beside a mask of present fields (0 to 31). */
const NO_PORT_MAPPINGS = -1;
const EMPTY_PORT_MAPPINGS = -2;
const NOT_FLAT = -3;
/** The fields of a port mapping a flat load balancer keeps, in the order it writes them. */
const PORT_MAPPING_FIELDS = [
  "Protocol",
  "InternalPort",
  "ExternalPort",
  "DistributionType",
  "Flags",
] as const;

/**
 * The fields present in a port mapping as a bit mask (bit i: the i-th of
 * {@link PORT_MAPPING_FIELDS}), when it holds nothing else, numbers only, in
 * that order (so that it is rebuilt exactly); else {@link NOT_FLAT}.
 */
function portMappingMask(pm: unknown): number {
  if (typeof pm !== "object" || pm === null || Array.isArray(pm)) return NOT_FLAT;
  let mask = 0;
  let next = 0;
  // for-in over own fields, not Object.entries: no arrays made per port mapping.
  for (const field in pm) {
    if (!Object.hasOwn(pm, field)) continue;
    const value = (pm as Record<string, unknown>)[field];
    let i = next;
    while (i < PORT_MAPPING_FIELDS.length && PORT_MAPPING_FIELDS[i] !== field) i++;
    if (i === PORT_MAPPING_FIELDS.length) return NOT_FLAT;
    if (value !== undefined && typeof value !== "number") return NOT_FLAT;
    mask |= 1 << i;
    next = i + 1;
  }
  return mask;
}

/**
 * A flat load balancer's small numbers in one field (a small integer, so no
 * number object): the port mapping's mask of present fields, or none, or
 * empty ({@link SHAPE_NO_PORT_MAPPINGS}, {@link SHAPE_EMPTY_PORT_MAPPINGS}),
 * and its protocol, distribution type and flags and the load balancer's
 * flags, each in its bits ({@link SHAPE_FIELDS}) with its largest value
 * meaning undefined. {@link NOT_FLAT} when a value does not fit.
 */
function packShape(mask: number, pm: HcnPortMapping | undefined, flags: unknown): number {
  const code = mask === NO_PORT_MAPPINGS
    ? SHAPE_NO_PORT_MAPPINGS
    : mask === EMPTY_PORT_MAPPINGS
    ? SHAPE_EMPTY_PORT_MAPPINGS
    : mask;
  // Field by field, without an array of the values or a destructured pair per field: a cold
  // start packs one shape per load balancer it creates.
  const protocol = packField(pm?.Protocol, SHAPE_PROTOCOL);
  const distribution = packField(pm?.DistributionType, SHAPE_DISTRIBUTION_TYPE);
  const portMappingFlags = packField(pm?.Flags, SHAPE_PORT_MAPPING_FLAGS);
  const lbFlags = packField(flags, SHAPE_FLAGS);
  if (protocol < 0 || distribution < 0 || portMappingFlags < 0 || lbFlags < 0) return NOT_FLAT;
  return code + protocol + distribution + portMappingFlags + lbFlags;
}

/** Field `field` of a shape holding `value` ({@link packShape}), or -1 when it cannot hold it. */
function packField(value: unknown, field: number): number {
  const spec = SHAPE_FIELDS[field];
  const none = spec[1];
  if (!packable(value, none)) return -1;
  return (value === undefined ? none : value) * 2 ** spec[0];
}

/** Whether `value` is undefined or an integer from 0 to below `none` (no -0). */
function packable(value: unknown, none: number): value is number | undefined {
  return value === undefined ||
    (Number.isInteger(value) && (value as number) >= 0 && (value as number) < none &&
      !Object.is(value, -0));
}

/** A packed field of {@link packShape}: its value, or undefined for its largest. */
function unpack(shape: number, field: number): number | undefined {
  const [shift, none] = SHAPE_FIELDS[field];
  const value = Math.floor(shape / 2 ** shift) % (none + 1);
  return value === none ? undefined : value;
}

/** Port mapping codes of a shape beside a mask of present fields (0 to 31). */
const SHAPE_NO_PORT_MAPPINGS = 32;
const SHAPE_EMPTY_PORT_MAPPINGS = 33;
/**
 * The bits of a shape after its 6 of port mapping code: [shift, largest
 * value (undefined)] of the protocol, distribution type, port mapping flags,
 * load balancer flags; 30 bits in all, a small integer on every V8.
 */
const SHAPE_FIELDS: readonly (readonly [number, number])[] = [[6, 255], [14, 7], [17, 255], [
  25,
  31,
]];
const SHAPE_PROTOCOL = 0;
const SHAPE_DISTRIBUTION_TYPE = 1;
const SHAPE_PORT_MAPPING_FLAGS = 2;
const SHAPE_FLAGS = 3;
/** A port's bound: a flat load balancer keeps ports 0-65535, else -1 for undefined. */
const NO_PORT = 65536;

/**
 * An observed load balancer as flat fields, its numbers packed ({@link
 * packShape}); `hns` is rebuilt (the same each time) when read.
 */
class FlatLoadBalancer implements ObservedLoadBalancer {
  constructor(
    readonly key: LbKey,
    readonly id: string,
    readonly serviceKey: ObjectKey | undefined,
    readonly backends: string[] | undefined,
    readonly vip: string | typeof NO_VIPS | typeof EMPTY_VIPS,
    readonly sourceVip: string | undefined,
    readonly shape: number,
    /** -1 for undefined. */
    readonly internalPort: number,
    /** -1 for undefined. */
    readonly externalPort: number,
  ) {}

  get hns(): HcnLoadBalancer {
    const hns = {} as HcnLoadBalancer;
    if (this.backends !== undefined) hns.HostComputeEndpoints = this.backends;
    if (this.vip === EMPTY_VIPS) hns.FrontendVIPs = [];
    else if (this.vip !== NO_VIPS) hns.FrontendVIPs = [this.vip];
    const shape = this.shape;
    const mask = shape % 64;
    if (mask === SHAPE_EMPTY_PORT_MAPPINGS) hns.PortMappings = [];
    else if (mask !== SHAPE_NO_PORT_MAPPINGS) {
      const pm = {} as HcnPortMapping;
      if (mask & 1) pm.Protocol = unpack(shape, SHAPE_PROTOCOL)!;
      if (mask & 2) pm.InternalPort = port(this.internalPort)!;
      if (mask & 4) pm.ExternalPort = port(this.externalPort)!;
      if (mask & 8) pm.DistributionType = unpack(shape, SHAPE_DISTRIBUTION_TYPE);
      if (mask & 16) pm.Flags = unpack(shape, SHAPE_PORT_MAPPING_FLAGS);
      hns.PortMappings = [pm];
    }
    const flags = unpack(shape, SHAPE_FLAGS);
    if (flags !== undefined) hns.Flags = flags;
    if (this.sourceVip !== undefined) hns.SourceVIP = this.sourceVip;
    return hns;
  }
}

function port(value: number): number | undefined {
  return value < 0 ? undefined : value;
}

/**
 * A copy of an observed endpoint with only what `endpointSatisfies` reads (IP,
 * network, flags, MAC, provider address). A well-formed one (one IP
 * configuration object, policies a list) is kept as flat fields, those it
 * shares with many others in one {@link EndpointProfile}, and its `hns`
 * rebuilt on each read, so the cache holds no nested objects for it.
 */
export function slimEndpoint(ep: ObservedEndpoint, id = ep.id): ObservedEndpoint {
  if (ep instanceof FlatEndpoint) return flatEndpoint(ep.key, id, ep.ip, ep.mac, ep.profile);
  const h = ep.hns;
  const cfgs = h.IpConfigurations;
  const cfg = Array.isArray(cfgs) && cfgs.length > 0 ? cfgs[0] : undefined;
  const flat = (cfgs === undefined || (Array.isArray(cfgs) &&
    (cfgs.length === 0 || (typeof cfg === "object" && cfg !== null)))) &&
    (h.Policies === undefined || Array.isArray(h.Policies));
  if (flat) {
    const pa = h.Policies === undefined ? undefined : providerAddressPolicy(h.Policies);
    const ip = cfgs === undefined ? NO_CONFIGS : cfg === undefined ? EMPTY_CONFIGS : cfg.IpAddress;
    const mac = h.MacAddress;
    return flatEndpoint(
      ep.key,
      id,
      ip,
      typeof ip === "string" && typeof mac === "string" && mac === remoteEndpointMac(ip)
        ? DERIVED_MAC
        : mac,
      endpointProfile(
        h.HostComputeNetwork,
        h.Flags,
        h.Policies === undefined ? NO_POLICIES : pa === undefined ? EMPTY_POLICIES : pa.Type,
        pa?.Settings === undefined
          ? NO_SETTINGS
          : pa.Settings === null
          ? NULL_SETTINGS
          : pa.Settings.ProviderAddress,
      ),
    );
  }
  const hns: HcnEndpoint = {};
  if (h.HostComputeNetwork !== undefined) hns.HostComputeNetwork = h.HostComputeNetwork;
  if (cfgs !== undefined) hns.IpConfigurations = cfgs;
  if (h.MacAddress !== undefined) hns.MacAddress = h.MacAddress;
  if (h.Flags !== undefined) hns.Flags = h.Flags;
  if (h.Policies !== undefined) hns.Policies = h.Policies;
  return new PlainEndpoint(ep.key, id, hns);
}

/**
 * `given` as a cache stores it, under `id` (an equal string): the object
 * itself when it is a flat endpoint no cache stores yet ({@link slimEndpoint}'s
 * result, e.g. a start's: a copy would only be garbage), else a slim copy.
 */
function storable(given: ObservedEndpoint, id: string): StoredEndpoint {
  let ep: StoredEndpoint;
  if (given instanceof FlatEndpoint && given.refs === UNSTORED) {
    ep = given;
    given.id = id;
  } else {
    ep = slimEndpoint(given, id) as StoredEndpoint;
  }
  ep.refs = undefined;
  return ep;
}

/**
 * The `refs` of a flat endpoint until a cache stores it (so that a cache takes
 * it as it is, and never one another cache holds): empty, and frozen so that
 * it cannot be taken for a list of references.
 */
const UNSTORED = Object.freeze([]) as unknown as string[];

/** An observed endpoint that is not flat (see {@link slimEndpoint}). */
class PlainEndpoint implements StoredEndpoint {
  /** See {@link StoredEndpoint}. */
  refs: KeyList | undefined = undefined;

  constructor(readonly key: EpKey, readonly id: string, readonly hns: HcnEndpoint) {}
}

const NO_CONFIGS = Symbol("no IpConfigurations");
const EMPTY_CONFIGS = Symbol("empty IpConfigurations");
/**
 * A flat endpoint's MAC when it is the one `remoteEndpointMac` derives from
 * its IP (every remote endpoint hnsproxy creates): made again when read
 * instead of kept, one string fewer per endpoint.
 */
const DERIVED_MAC = Symbol("MAC derived from the IP");
const NO_POLICIES = Symbol("no Policies");
const EMPTY_POLICIES = Symbol("no ProviderAddress policy");
const NO_SETTINGS = Symbol("no policy Settings");
const NULL_SETTINGS = Symbol("policy Settings null");

/** A flat endpoint: without a MAC field when its MAC is {@link DERIVED_MAC} (the most common). */
function flatEndpoint(
  key: EpKey,
  id: string,
  ip: string | typeof NO_CONFIGS | typeof EMPTY_CONFIGS,
  mac: string | undefined | typeof DERIVED_MAC,
  profile: EndpointProfile,
): FlatEndpoint {
  return mac === DERIVED_MAC
    ? new FlatEndpoint(key, id, ip, profile)
    : new FlatEndpointWithMac(key, id, ip, profile, mac);
}

/**
 * An observed endpoint as flat fields; `hns` is rebuilt (the same each time)
 * when read. Its MAC is the one derived from its IP ({@link DERIVED_MAC});
 * {@link FlatEndpointWithMac} keeps any other.
 */
class FlatEndpoint implements StoredEndpoint {
  /** See {@link StoredEndpoint}; {@link UNSTORED} until a cache stores it. */
  refs: KeyList | undefined = UNSTORED;

  constructor(
    readonly key: EpKey,
    /** Set only by {@link storable}, to an equal string. */
    public id: string,
    readonly ip: string | typeof NO_CONFIGS | typeof EMPTY_CONFIGS,
    readonly profile: EndpointProfile,
  ) {}

  /** The MAC as HNS spells it, or {@link DERIVED_MAC}. */
  get mac(): string | undefined | typeof DERIVED_MAC {
    return DERIVED_MAC;
  }

  get hns(): HcnEndpoint {
    const hns: HcnEndpoint = {};
    const p = this.profile;
    if (p.network !== undefined) hns.HostComputeNetwork = p.network;
    if (this.ip === EMPTY_CONFIGS) hns.IpConfigurations = [];
    else if (this.ip !== NO_CONFIGS) hns.IpConfigurations = [{ IpAddress: this.ip }];
    const mac = this.mac;
    if (mac === DERIVED_MAC) hns.MacAddress = remoteEndpointMac(this.ip as string);
    else if (mac !== undefined) hns.MacAddress = mac;
    if (p.flags !== undefined) hns.Flags = p.flags;
    if (p.policyType === EMPTY_POLICIES) hns.Policies = [];
    else if (p.policyType !== NO_POLICIES) hns.Policies = p.policies();
    return hns;
  }
}

/** A flat endpoint whose MAC is not the one derived from its IP (or that has none). */
class FlatEndpointWithMac extends FlatEndpoint {
  readonly #mac: string | undefined;

  constructor(
    key: EpKey,
    id: string,
    ip: string | typeof NO_CONFIGS | typeof EMPTY_CONFIGS,
    profile: EndpointProfile,
    mac: string | undefined,
  ) {
    super(key, id, ip, profile);
    this.#mac = mac;
  }

  override get mac(): string | undefined {
    return this.#mac;
  }
}

/**
 * The fields of a flat endpoint that many endpoints share (network, flags,
 * provider address policy: one value per node, not per pod), kept once per
 * combination.
 */
class EndpointProfile {
  #policies: HcnPolicy[] | undefined;

  constructor(
    readonly network: string | undefined,
    readonly flags: number | undefined,
    readonly policyType: string | typeof NO_POLICIES | typeof EMPTY_POLICIES,
    readonly providerAddress: unknown,
  ) {}

  /**
   * The rebuilt `Policies` of its endpoints (with a policy type): made once
   * and shared by every rebuilt `hns` of the profile, so frozen (nothing
   * writes to an observed object's policies).
   */
  policies(): HcnPolicy[] {
    if (this.#policies === undefined) {
      const pa = this.providerAddress;
      const settings = pa === NO_SETTINGS
        ? undefined
        : pa === NULL_SETTINGS
        ? null as unknown as undefined
        : Object.freeze({ ProviderAddress: pa as string });
      this.#policies = Object.freeze([
        Object.freeze({ Type: this.policyType as string, Settings: settings }),
      ]) as HcnPolicy[];
    }
    return this.#policies;
  }
}

/**
 * The profiles in use, by their fields' values in order (network, flags,
 * policy type, provider address: a Map per field); forgotten whole past
 * {@link MAX_PROFILES}.
 */
let profiles = new Map<unknown, Map<unknown, Map<unknown, Map<unknown, EndpointProfile>>>>();
let profileCount = 0;
const MAX_PROFILES = 4096;

/** The profile of these fields: the one already made for them, where they are plain values. */
function endpointProfile(
  network: string | undefined,
  flags: number | undefined,
  policyType: string | typeof NO_POLICIES | typeof EMPTY_POLICIES,
  providerAddress: unknown,
): EndpointProfile {
  if (
    !plainValue(network) || !plainValue(flags) || !plainValue(policyType) ||
    !plainValue(providerAddress)
  ) return new EndpointProfile(network, flags, policyType, providerAddress);
  let byFlags = profiles.get(network);
  let byType = byFlags?.get(flags);
  let byAddress = byType?.get(policyType);
  let profile = byAddress?.get(providerAddress);
  if (profile !== undefined) return profile;
  if (profileCount >= MAX_PROFILES) {
    profiles = new Map();
    profileCount = 0;
    byFlags = byType = byAddress = undefined;
  }
  if (byFlags === undefined) profiles.set(network, byFlags = new Map());
  if (byType === undefined) byFlags.set(flags, byType = new Map());
  if (byAddress === undefined) byType.set(policyType, byAddress = new Map());
  profile = new EndpointProfile(network, flags, policyType, providerAddress);
  byAddress.set(providerAddress, profile);
  profileCount++;
  return profile;
}

/**
 * Whether a profile field's value is told apart from every other by a Map
 * (SameValueZero: all but -0, which it takes for 0) and is no object.
 */
function plainValue(v: unknown): boolean {
  return typeof v === "string" || (typeof v === "number" && !Object.is(v, -0)) ||
    v === undefined || v === null || v === NO_POLICIES || v === EMPTY_POLICIES ||
    v === NO_SETTINGS || v === NULL_SETTINGS;
}

/** The first ProviderAddress policy (the only one `endpointSatisfies` reads), if any. */
function providerAddressPolicy(policies: HcnPolicy[]): HcnPolicy | undefined {
  for (let i = 0; i < policies.length; i++) {
    const p = policies[i];
    const type = p?.Type;
    if (type === "ProviderAddress" || String(type ?? "").toLowerCase() === "provideraddress") {
      return p;
    }
  }
  return undefined;
}
