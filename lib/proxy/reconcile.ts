/**
 * The reconcile step of the pure core: desired state × observed state → the
 * smallest ordered plan of HNS operations, and the adoption of what HNS
 * already holds at start.
 *
 * Plan order (kpng's, with one refinement): delete LBs → delete endpoints
 * nothing references any more → create endpoints → create and modify LBs →
 * delete endpoints that only the modified LBs still referenced. The last
 * phase exists because HNS refuses to delete an endpoint an LB references;
 * an LB modified in place drops the reference only in phase 4.
 *
 * Ownership: only objects in `ObservedState.loadBalancers` / `.endpoints`
 * (owned or adopted) are ever modified or deleted. Foreign objects are never
 * touched; a foreign LB holding a desired key is reported as a conflict.
 * Taking over at start (the move from kube-proxy) is adoption's business:
 * a taken-over object is owned, so reconcile replaces it like its own.
 *
 * @module
 */

import {
  EndpointFlags,
  type HcnEndpoint,
  type HcnLoadBalancer,
  type HnsFeatures,
} from "../hns/types.ts";
import type { ObjectKey } from "../kube/model.ts";
import {
  endpointKeyFromHns,
  isKeyError,
  type KeyError,
  loadBalancerKeyFromHns,
  remoteEndpointKey,
} from "./keys.ts";
import type {
  AdoptEndpointOp,
  AdoptLoadBalancerOp,
  CreateEndpointOp,
  CreateLoadBalancerOp,
  DeleteEndpointOp,
  DeleteLoadBalancerOp,
  DesiredEndpoint,
  DesiredLoadBalancer,
  DesiredState,
  EpKey,
  IndexedObservedState,
  LbKey,
  LoadBalancerConflict,
  ModifyLoadBalancerOp,
  ObservedEndpoint,
  ObservedIndex,
  ObservedLoadBalancer,
  ObservedState,
  OwnedIds,
  Plan,
  PlanOp,
} from "./model.ts";
import { canonicalIp } from "../net/ip.ts";
import { normalizeMac } from "../net/mac.ts";
import {
  endpointMatchesExactly,
  endpointSatisfies,
  loadBalancerPayload,
  normalizeLoadBalancer,
  providerAddressOf,
  sameLoadBalancer,
} from "./payload.ts";

/** Options of {@link reconcile}. */
export interface ReconcileOptions {
  /** What the running HNS supports (ModifyLoadbalancer decides modify vs delete+create). */
  features: HnsFeatures;
  /**
   * Partial reconcile: only these services' LBs (and the endpoints they
   * reference or stop referencing, and the overlay service-VIP endpoints of
   * their observed LBs' VIPs) are considered. Absent: full reconcile,
   * which also deletes owned objects nothing wants and stray objects.
   * After a change of the node context (network, local endpoints) run a full
   * reconcile: it can affect every service.
   */
  dirty?: ReadonlySet<ObjectKey>;
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const idKey = (id: string) => id.toUpperCase();

/**
 * Where backend keys resolve: the owned (or adopted) endpoints and the
 * foreign ones, by key (an {@link ObservedState}'s maps, or lookups that
 * behave as they do).
 */
export interface EndpointsByKey {
  /** Owned (or adopted) endpoints by key. */
  endpoints: { get(key: EpKey): { id: string } | undefined };
  /** Foreign endpoints by key. */
  foreignEndpoints: { get(key: EpKey): { id: string } | undefined };
}

/**
 * The HNS ID a backend key resolves to: an owned (or adopted) endpoint, an
 * existing endpoint named by the desired state (CNI, root host endpoint), or
 * a foreign endpoint holding the key. Undefined when it does not exist yet.
 */
export function resolveEndpointId(
  key: EpKey,
  desired: Pick<DesiredState, "existingEndpoints">,
  observed: EndpointsByKey,
): string | undefined {
  return observed.endpoints.get(key)?.id ?? desired.existingEndpoints.get(key) ??
    observed.foreignEndpoints.get(key)?.id;
}

/**
 * The backend IDs of a desired LB in its backends' order ({@link resolveEndpointId}),
 * or undefined when some backend endpoint does not exist yet.
 */
export function resolveBackendIds(
  lb: DesiredLoadBalancer,
  desired: Pick<DesiredState, "existingEndpoints">,
  observed: EndpointsByKey,
): string[] | undefined {
  const backends = lb.backends;
  const ids = new Array<string>(backends.length);
  for (let i = 0; i < backends.length; i++) {
    const id = resolveEndpointId(backends[i], desired, observed);
    if (id === undefined) return undefined;
    ids[i] = id;
  }
  return ids;
}

/**
 * The HNS payload of a desired LB with its backends resolved, or undefined
 * when some backend endpoint does not exist yet.
 */
export function resolvedLoadBalancerPayload(
  lb: DesiredLoadBalancer,
  desired: Pick<DesiredState, "existingEndpoints">,
  observed: EndpointsByKey,
): HcnLoadBalancer | undefined {
  const ids = resolveBackendIds(lb, desired, observed);
  return ids && loadBalancerPayload(lb, ids);
}

/** What happens to an owned LB in the plan being built. */
type LbFate = "delete" | "recreate" | "modify";

/**
 * The smallest ordered plan that turns `observed` into `desired`. Unchanged
 * objects cost nothing; a changed LB is modified in place when HNS supports
 * ModifyLoadbalancer, else deleted and recreated. Remote endpoints are deleted
 * only when no LB references them any more and hnsproxy owns them.
 *
 * A partial reconcile (`opts.dirty`) costs what the dirty services hold when
 * `observed` carries its index lookups ({@link IndexedObservedState}, e.g. the
 * agent's observed cache); a plain state is indexed first, in one pass.
 */
export function reconcile(
  desired: DesiredState,
  observed: ObservedState,
  opts: ReconcileOptions,
): Plan {
  const full = opts.dirty === undefined;
  const dirty = opts.dirty ?? new Set<ObjectKey>();
  const index = isIndexed(observed) ? observed : indexObserved(observed);
  // Stray LBs are deleted on a full reconcile; on a partial one they keep their references.
  const referencedByOthers = (id: string) => index.referencedByOthers(id, !full);

  // LB keys in scope: on a partial reconcile, the desired LBs the dirty services hold and
  // the owned LBs recorded for them.
  const lbScope = new Set<LbKey>();
  // forEach, not for-of, over what a full reconcile visits whole: no iterator result per
  // entry in code that runs once (at start) before it is optimized.
  if (full) {
    desired.loadBalancers.forEach((_, k) => lbScope.add(k));
    observed.loadBalancers.forEach((_, k) => lbScope.add(k));
  } else {
    for (const s of dirty) {
      for (const lb of desired.services.get(s)?.loadBalancers ?? []) {
        if (desired.loadBalancers.get(lb.key)?.serviceKey === s) lbScope.add(lb.key);
      }
      for (const k of index.loadBalancersOfService(s)) lbScope.add(k);
    }
  }

  // Endpoints in scope: those the in-scope LBs want, the services' own ones, the context's.
  // A full reconcile takes every desired endpoint: no set copy of 40,000 keys, just the sorted list.
  const epScope = new Set<EpKey>();
  if (!full) {
    for (const k of lbScope) {
      for (const b of desired.loadBalancers.get(k)?.backends ?? []) epScope.add(b);
    }
    for (const s of dirty) {
      for (const e of desired.services.get(s)?.remoteEndpoints ?? []) {
        if (e.role === "serviceVip") epScope.add(e.key);
      }
    }
    for (const k of desired.contextEndpoints) {
      if (desired.remoteEndpoints.get(k)?.role === "sourceVip") epScope.add(k);
    }
  }

  // Endpoint decisions.
  // A full reconcile's creates are at most the desired endpoints: made at that length, cut after.
  const createEps: CreateEndpointOp[] = full ? new Array(desired.remoteEndpoints.size) : [];
  let creates = 0;
  const replaceEps: DeleteEndpointOp[] = [];
  // Keys whose ID is only known after this plan's creates: asked only about the backends of
  // LBs HNS holds, so not kept when it holds none (a first start's tens of thousands).
  const pending = new Set<EpKey>();
  const trackPending = observed.loadBalancers.size > 0;
  const replacedIds = new Set<string>();
  // Each key's decision is its own: keys are taken in any order, the ops sorted by key after.
  const decideEndpoint = (key: EpKey) => {
    const want = desired.remoteEndpoints.get(key);
    if (!want) return;
    const have = observed.endpoints.get(key);
    if (have) {
      if (endpointSatisfies(have.hns, want)) return;
      if (referencedByOthers(have.id)) return; // cannot free it; keep using it
      replaceEps.push({ op: "deleteEndpoint", key, id: have.id, reason: "replace" });
      replacedIds.add(idKey(have.id));
    } else if (observed.foreignEndpoints.has(key)) {
      return; // a foreign endpoint holds the IP: use it, never touch it
    }
    createEps[creates++] = createOp(want);
    if (trackPending) pending.add(key);
  };
  // The desired endpoints' own keys() (a view's forEach makes an entry per endpoint).
  if (full) { for (const key of desired.remoteEndpoints.keys()) decideEndpoint(key); }
  else epScope.forEach(decideEndpoint);
  createEps.length = creates;
  byKey(replaceEps);
  byKey(createEps);

  // LBs that reference a replaced endpoint must go before it and come back after.
  const forced = new Set<LbKey>();
  for (const id of replacedIds) for (const k of index.loadBalancersReferencing(id)) forced.add(k);
  for (const k of forced) lbScope.add(k);

  // LB decisions (a created LB has no fate: HNS holds no LB of it that references an endpoint).
  const fate = new Map<LbKey, LbFate>();
  const deleteLbs: DeleteLoadBalancerOp[] = [];
  const upsertLbs: Array<CreateLoadBalancerOp | ModifyLoadBalancerOp> = [];
  const conflicts: LoadBalancerConflict[] = [];
  for (const key of lbScope) {
    const want = desired.loadBalancers.get(key);
    const have = observed.loadBalancers.get(key);
    if (!want) {
      if (have) {
        fate.set(key, "delete");
        deleteLbs.push(deleteLbOp(have, "stale"));
      }
      continue;
    }
    if (!have) {
      const foreign = observed.foreignLoadBalancers.get(key);
      if (foreign) {
        conflicts.push({ key, serviceKey: want.serviceKey, foreignId: foreign.id });
        continue;
      }
      upsertLbs.push({
        op: "createLoadBalancer",
        key,
        serviceKey: want.serviceKey,
        loadBalancer: want,
      });
      continue;
    }
    if (!forced.has(key) && !want.backends.some((b) => pending.has(b))) {
      const payload = resolvedLoadBalancerPayload(want, desired, observed);
      if (payload && sameLoadBalancer(have.hns, payload)) continue;
    }
    if (opts.features.modifyLoadBalancer && !forced.has(key)) {
      fate.set(key, "modify");
      upsertLbs.push({
        op: "modifyLoadBalancer",
        key,
        id: have.id,
        serviceKey: want.serviceKey,
        loadBalancer: want,
      });
    } else {
      fate.set(key, "recreate");
      deleteLbs.push(deleteLbOp(have, "replace"));
      upsertLbs.push({
        op: "createLoadBalancer",
        key,
        serviceKey: want.serviceKey,
        loadBalancer: want,
      });
    }
  }
  byKey(upsertLbs);
  byKey(conflicts);
  if (full) {
    for (const lb of observed.strayLoadBalancers?.values() ?? []) {
      deleteLbs.push(deleteLbOp(lb, "stray"));
    }
  }

  // Stale owned endpoints: in scope when a full reconcile, or when an in-scope LB referenced them.
  const staleCandidates = new Map<string, { key: EpKey; id: string; reason: "stale" | "stray" }>();
  const considerStale = (key: EpKey, id: string, reason: "stale" | "stray") => {
    if (reason === "stale" && desired.remoteEndpoints.has(key)) return;
    if (replacedIds.has(idKey(id))) return;
    staleCandidates.set(idKey(id), { key, id, reason });
  };
  if (full) {
    observed.endpoints.forEach((ep) => considerStale(ep.key, ep.id, "stale"));
    observed.strayEndpoints?.forEach((ep) => considerStale(ep.key, ep.id, "stray"));
  } else {
    for (const k of lbScope) {
      const have = observed.loadBalancers.get(k);
      for (const id of have?.hns.HostComputeEndpoints ?? []) {
        const ep = index.ownedEndpointById(String(id));
        if (ep) considerStale(ep.key, ep.id, "stale");
      }
      // The overlay service-VIP endpoint of a service is keyed by its LBs' VIP; no LB
      // references it, so only the VIP ties it to the (deleted or changed) service.
      for (const vip of have?.hns.FrontendVIPs ?? []) {
        const ip = canonicalIp(String(vip));
        const ep = ip !== undefined ? observed.endpoints.get(remoteEndpointKey(ip)) : undefined;
        if (ep) considerStale(ep.key, ep.id, "stale");
      }
    }
  }
  const earlyDeletes: DeleteEndpointOp[] = [];
  const lateDeletes: DeleteEndpointOp[] = [];
  for (
    const [, c] of [...staleCandidates].sort((a, b) => cmp(a[1].key, b[1].key) || cmp(a[0], b[0]))
  ) {
    if (referencedByOthers(c.id)) continue;
    let late = false, blocked = false;
    for (const k of index.loadBalancersReferencing(c.id)) {
      const f = fate.get(k);
      if (f === "delete" || f === "recreate") continue;
      if (f === "modify") late = true;
      else blocked = true; // an LB outside this plan still uses it
    }
    if (blocked) continue;
    (late ? lateDeletes : earlyDeletes).push({
      op: "deleteEndpoint",
      key: c.key,
      id: c.id,
      reason: c.reason,
    });
  }

  deleteLbs.sort((a, b) => cmp(a.key, b.key) || cmp(a.id, b.id));
  const ops = inOrder(deleteLbs, replaceEps, earlyDeletes, createEps, upsertLbs, lateDeletes);
  return { ops, conflicts };
}

/**
 * The phases' operations in one array made at its final length: a start's
 * plan holds tens of thousands, and an array grown by appending leaves its
 * outgrown stores (large objects, freed only by a full collection) behind.
 */
function inOrder(...phases: readonly PlanOp[][]): PlanOp[] {
  let n = 0;
  for (const phase of phases) n += phase.length;
  const ops = new Array<PlanOp>(n);
  let i = 0;
  for (const phase of phases) for (let j = 0; j < phase.length; j++) ops[i++] = phase[j];
  return ops;
}

/** Sort in place by key (keys are unique in each list sorted). */
function byKey<T extends { key: string }>(xs: T[]): void {
  if (xs.length > 1) xs.sort((a, b) => cmp(a.key, b.key));
}

function isIndexed(observed: ObservedState): observed is IndexedObservedState {
  return typeof (observed as Partial<ObservedIndex>).loadBalancersReferencing === "function";
}

/**
 * A plain observed state with its index lookups, built in one pass (the
 * agent's observed cache keeps them current instead).
 */
export function indexObserved(observed: ObservedState): IndexedObservedState {
  const referencing = new Map<string, LbKey[]>();
  for (const lb of observed.loadBalancers.values()) {
    for (const id of new Set((lb.hns.HostComputeEndpoints ?? []).map((x) => idKey(String(x))))) {
      const list = referencing.get(id);
      if (list) list.push(lb.key);
      else referencing.set(id, [lb.key]);
    }
  }
  const referencedBy = (lbs: Iterable<ObservedLoadBalancer>) => {
    const ids = new Set<string>();
    for (const lb of lbs) {
      for (const id of lb.hns.HostComputeEndpoints ?? []) ids.add(idKey(String(id)));
    }
    return ids;
  };
  const foreign = referencedBy(observed.foreignLoadBalancers.values());
  const stray = referencedBy(observed.strayLoadBalancers?.values() ?? []);
  const byService = new Map<ObjectKey, LbKey[]>();
  for (const lb of observed.loadBalancers.values()) {
    if (lb.serviceKey === undefined) continue;
    const list = byService.get(lb.serviceKey);
    if (list) list.push(lb.key);
    else byService.set(lb.serviceKey, [lb.key]);
  }
  const endpointById = new Map<string, ObservedEndpoint>();
  for (const ep of observed.endpoints.values()) endpointById.set(idKey(ep.id), ep);
  return {
    loadBalancers: observed.loadBalancers,
    endpoints: observed.endpoints,
    foreignLoadBalancers: observed.foreignLoadBalancers,
    foreignEndpoints: observed.foreignEndpoints,
    strayLoadBalancers: observed.strayLoadBalancers,
    strayEndpoints: observed.strayEndpoints,
    loadBalancersReferencing: (id) => referencing.get(idKey(id)) ?? [],
    referencedByOthers: (id, includeStray) =>
      foreign.has(idKey(id)) || (includeStray && stray.has(idKey(id))),
    loadBalancersOfService: (serviceKey) => byService.get(serviceKey) ?? [],
    ownedEndpointById: (id) => endpointById.get(idKey(id)),
  };
}

function deleteLbOp(
  lb: ObservedLoadBalancer,
  reason: DeleteLoadBalancerOp["reason"],
): DeleteLoadBalancerOp {
  const op: DeleteLoadBalancerOp = { op: "deleteLoadBalancer", key: lb.key, id: lb.id, reason };
  if (lb.serviceKey !== undefined) op.serviceKey = lb.serviceKey;
  return op;
}

function createOp(want: DesiredEndpoint): CreateEndpointOp {
  return {
    op: "createEndpoint",
    key: want.key,
    networkId: want.networkId,
    endpoint: want,
  };
}

/** An HNS object that yields no key (so it is left out of the observed state at adoption), and why. */
export interface UnkeyedObject {
  /** `loadBalancer` or `endpoint`. */
  kind: "loadBalancer" | "endpoint";
  /** HNS ID ("" when it had none). */
  id: string;
  /** Whether hnsproxy owns it (owned unparsable objects become strays instead). */
  owned: boolean;
  /** Why, e.g. `no PortMappings`. */
  reason: string;
}

/** Options of {@link adoptObserved}. */
export interface AdoptOptions {
  /**
   * Take over foreign LBs and endpoints that are exactly what is desired
   * (e.g. left by kube-proxy, or by hnsproxy with a lost ownership record).
   * Default true. Without `takeOver`, foreign objects that differ are never taken.
   */
  adoptForeign?: boolean;
  /**
   * Also take over foreign objects that differ from what is desired, to be
   * replaced by the plan (the move from kube-proxy, `--take-over-foreign`):
   * an LB on a key the desired state claims, and a remote endpoint (a pod's
   * or a cluster IP's) at an IP hnsproxy needs whose MAC or provider address
   * is wrong, unless an LB that stays foreign references it (HNS would refuse
   * its delete). The source-VIP endpoint is never taken (node setup scripts
   * make it). Objects on keys nothing desired claims are never taken.
   * Default false.
   */
  takeOver?: boolean;
  /**
   * Whether the desired state carries the host NIC's MAC (`NodeContext.hostMac`).
   * Without it a cluster IP's endpoint is judged by its provider address
   * only: its MAC cannot be called wrong. Default true.
   */
  hostMacKnown?: boolean;
  /**
   * Owned objects known to hold exactly the desired payload of a key (the
   * trusted start read took them from the ownership record; each is taken
   * to be owned as what the list it is in holds): upper-case ID →
   * that key. Each is kept under its key without examining its content; the
   * reconcile that follows still compares it. One that no other object
   * claims the key of is kept as it is, without an adopt op (see
   * {@link Adoption.kept}): the record already holds it under that key with
   * the fingerprint of that payload, so adopting it would change nothing.
   */
  trusted?: ReadonlyMap<string, { key: string }>;
  /**
   * Trusted endpoints given as observed objects (e.g. the observed cache's
   * slim form of their desired payload) instead of among the HNS endpoints:
   * each is in {@link trusted} under its key, and taken before those.
   */
  trustedEndpoints?: readonly ObservedEndpoint[];
  /** Trusted load balancers given as observed objects (see {@link trustedEndpoints}). */
  trustedLoadBalancers?: readonly ObservedLoadBalancer[];
}

/** A foreign object that differs from what is desired, taken over to be replaced. */
export interface TakenOver {
  /** `loadBalancer` or `endpoint`. */
  kind: "loadBalancer" | "endpoint";
  /** Its key, claimed by the desired state. */
  key: LbKey | EpKey;
  /** HNS ID. */
  id: string;
  /** The service that claims the LB's key (LBs only). */
  serviceKey?: ObjectKey;
  /** What differs, e.g. `provider address 10.0.1.12, want 10.0.1.22`. */
  reason: string;
}

/** The result of {@link adoptObserved}. */
export interface Adoption {
  /** What hnsproxy knows HNS holds, keyed. */
  observed: ObservedState;
  /** Objects kept as they are (no HNS call); foreign ones become owned. */
  adopted: Array<AdoptLoadBalancerOp | AdoptEndpointOp>;
  /**
   * Trusted objects on desired keys kept as they are without an adopt op
   * (none claims their key but them): each counts as adopted.
   */
  kept: number;
  /** HNS objects that could not be interpreted, left alone (or strays when owned). */
  skipped: UnkeyedObject[];
  /**
   * Foreign objects that differ from what is desired and were taken over
   * (`takeOver`): owned from now on (their adoption is in `adopted`), and
   * replaced by the plan's modify or delete + create. Sorted by key.
   */
  takenOver: TakenOver[];
}

/**
 * Build the observed state from a full HNS listing at start. Owned objects
 * (by the ownership record) are kept under their key; those equal to desired
 * are adopted as they are. Foreign objects equal to desired are adopted when
 * `adoptForeign` (or `takeOver`); with `takeOver`, foreign objects on keys
 * the desired state claims that differ are taken over too (see
 * {@link AdoptOptions.takeOver}), so the reconcile that follows replaces
 * them. Other foreign objects are recorded only to detect conflicts and are
 * never touched. Owned objects without a usable key, or duplicates of a key,
 * become strays (deleted by the next full reconcile).
 * `hnsEndpoints` should be the endpoints of the proxy's network.
 */
export function adoptObserved(
  hnsLbs: readonly HcnLoadBalancer[],
  hnsEndpoints: readonly HcnEndpoint[],
  owned: OwnedIds | OwnedLookup,
  desired: DesiredState,
  opts: AdoptOptions = {},
): Adoption {
  const takeOver = opts.takeOver ?? false;
  const adoptForeign = (opts.adoptForeign ?? true) || takeOver;
  const hostMacKnown = opts.hostMacKnown ?? true;
  const trusted = opts.trusted;
  /** Whether a foreign remote endpoint holding a wanted IP must be replaced. */
  const wrong = (hns: HcnEndpoint, want: DesiredEndpoint) =>
    want.remote &&
    (hostMacKnown || want.role !== "serviceVip"
      ? !endpointMatchesExactly(hns, want)
      : providerAddressOf(hns.Policies) !== (want.providerAddress ?? ""));
  const { ownsLoadBalancer, ownsEndpoint } = ownedLookup(owned);
  // Endpoints that foreign LBs staying foreign reference: HNS refuses to delete them.
  const pinned = takeOver ? pinnedByForeign(hnsLbs, ownsLoadBalancer, desired) : new Set<string>();
  const takenOver: TakenOver[] = [];
  const sourceVips = new Set<string>();
  for (const e of desired.remoteEndpoints.values()) {
    if (e.role === "sourceVip") sourceVips.add(e.ip);
  }

  const foreignEndpoints = new Map<EpKey, ObservedEndpoint>();
  const strayEndpoints = new Map<string, ObservedEndpoint>();
  const foreignLoadBalancers = new Map<LbKey, ObservedLoadBalancer>();
  const strayLoadBalancers = new Map<string, ObservedLoadBalancer>();
  const adoptedEps = new Map<EpKey, AdoptEndpointOp>();
  const adoptedLbs = new Map<LbKey, AdoptLoadBalancerOp>();
  const skipped: UnkeyedObject[] = [];

  // Trusted objects alone on their key are kept as they are; the rest are examined in ID order.
  const epKeyOf = (hns: HcnEndpoint) => endpointKeyFromHns(hns, sourceVips);
  const eps = soleTrusted(
    hnsEndpoints,
    ownsEndpoint,
    trusted,
    epKeyOf,
    (hns, id, key): ObservedEndpoint => ({ key, id, hns }),
    opts.trustedEndpoints,
  );
  // The trusted objects kept are the start of the observed maps; the rest is added below.
  const endpoints: Map<EpKey, ObservedEndpoint> = eps.sole;
  let kept = 0;
  // forEach, not for-of, here and below: no iterator result per entry in code that runs once.
  endpoints.forEach((_, key) => {
    if (desired.remoteEndpoints.has(key)) kept++;
  });

  for (const { x: hns, id, key, isOwned, isTrusted } of eps.rest) {
    if (isKeyError(key)) {
      if (isOwned) strayEndpoints.set(id, { key: `stray/${id}`, id, hns });
      else skipped.push({ kind: "endpoint", id, owned: false, reason: key.reason });
      continue;
    }
    const want = desired.remoteEndpoints.get(key);
    const obs: ObservedEndpoint = { key, id, hns };
    if (isOwned) {
      const prev = endpoints.get(key);
      if (prev) {
        // Two owned endpoints with one IP: keep the one that fits, the other is a stray.
        const keepNew = want !== undefined && endpointSatisfies(hns, want) &&
          !endpointSatisfies(prev.hns, want);
        const loser = keepNew ? prev : obs;
        // Fields copied one by one: a cached endpoint's `hns` may be an accessor, which a spread drops.
        strayEndpoints.set(loser.id, { key: `stray/${loser.id}`, id: loser.id, hns: loser.hns });
        if (!keepNew) continue;
        adoptedEps.delete(key);
      }
      endpoints.set(key, obs);
      if (want && (isTrusted || endpointSatisfies(hns, want))) {
        adoptedEps.set(key, { op: "adoptEndpoint", key, id, wasForeign: false });
      }
      continue;
    }
    if (key.startsWith("ep/local/")) continue; // the CNI's endpoints: not ours to track
    if (endpoints.has(key) || foreignEndpoints.has(key)) continue;
    if (adoptForeign && want && endpointMatchesExactly(hns, want)) {
      endpoints.set(key, obs);
      adoptedEps.set(key, { op: "adoptEndpoint", key, id, wasForeign: true });
    } else if (takeOver && want && wrong(hns, want) && !pinned.has(idKey(id))) {
      endpoints.set(key, obs);
      adoptedEps.set(key, { op: "adoptEndpoint", key, id, wasForeign: true });
      takenOver.push({ kind: "endpoint", key, id, reason: endpointDifference(hns, want) });
    } else {
      foreignEndpoints.set(key, obs);
    }
  }

  const partial: Pick<ObservedState, "endpoints" | "foreignEndpoints"> = {
    endpoints,
    foreignEndpoints,
  };
  const equalToDesired = (hns: HcnLoadBalancer, want: DesiredLoadBalancer | undefined) => {
    if (!want) return false;
    const payload = resolvedLoadBalancerPayload(want, desired, partial);
    return payload !== undefined && sameLoadBalancer(hns, payload);
  };

  const lbs = soleTrusted(
    hnsLbs,
    ownsLoadBalancer,
    trusted,
    loadBalancerKeyFromHns,
    (hns, id, key): ObservedLoadBalancer => {
      const serviceKey = desired.loadBalancers.get(key)?.serviceKey;
      return serviceKey !== undefined ? { key, id, hns, serviceKey } : { key, id, hns };
    },
    opts.trustedLoadBalancers,
  );
  const loadBalancers: Map<LbKey, ObservedLoadBalancer> = lbs.sole;
  loadBalancers.forEach((_, key) => {
    if (desired.loadBalancers.has(key)) kept++;
  });

  for (const { x: hns, id, key, isOwned, isTrusted } of lbs.rest) {
    if (isKeyError(key)) {
      if (isOwned) strayLoadBalancers.set(id, { key: `stray/${id}`, id, hns });
      else skipped.push({ kind: "loadBalancer", id, owned: false, reason: key.reason });
      continue;
    }
    const want = desired.loadBalancers.get(key);
    const equal = isTrusted ? want !== undefined : equalToDesired(hns, want);
    const obs: ObservedLoadBalancer = { key, id, hns };
    if (want) obs.serviceKey = want.serviceKey;
    if (isOwned) {
      const prev = loadBalancers.get(key);
      if (prev) {
        const keepNew = equal && !equalToDesired(prev.hns, want);
        const loser = keepNew ? prev : obs;
        // Fields copied one by one: a cached LB's `hns` may be an accessor, which a spread drops.
        const stray: ObservedLoadBalancer = {
          key: `stray/${loser.id}`,
          id: loser.id,
          hns: loser.hns,
        };
        if (loser.serviceKey !== undefined) stray.serviceKey = loser.serviceKey;
        strayLoadBalancers.set(loser.id, stray);
        if (!keepNew) continue;
        adoptedLbs.delete(key);
      }
      loadBalancers.set(key, obs);
      if (equal) {
        adoptedLbs.set(key, {
          op: "adoptLoadBalancer",
          key,
          id,
          serviceKey: want!.serviceKey,
          wasForeign: false,
        });
      }
      continue;
    }
    if (loadBalancers.has(key) || foreignLoadBalancers.has(key)) continue;
    if ((adoptForeign && equal) || (takeOver && want)) {
      loadBalancers.set(key, obs);
      adoptedLbs.set(key, {
        op: "adoptLoadBalancer",
        key,
        id,
        serviceKey: want!.serviceKey,
        wasForeign: true,
      });
      const replacing = takeOver ? replacedBackend(hns, endpoints, takenOver) : undefined;
      if (!equal || replacing) {
        takenOver.push({
          kind: "loadBalancer",
          key,
          id,
          serviceKey: want!.serviceKey,
          reason: equal
            ? `backend ${replacing} is replaced`
            : loadBalancerDifference(hns, want!, desired, partial),
        });
      }
    } else {
      foreignLoadBalancers.set(key, obs);
    }
  }

  return {
    observed: {
      loadBalancers,
      endpoints,
      foreignLoadBalancers,
      foreignEndpoints,
      strayLoadBalancers,
      strayEndpoints,
    },
    adopted: [
      ...[...adoptedEps.values()].sort((a, b) => cmp(a.key, b.key)),
      ...[...adoptedLbs.values()].sort((a, b) => cmp(a.key, b.key)),
    ],
    kept,
    skipped,
    takenOver: takenOver.sort((a, b) => cmp(a.kind, b.kind) || cmp(a.key, b.key)),
  };
}

/** An HNS object at adoption, with what its ID and key say about it. */
interface Candidate<T> {
  x: T;
  /** HNS ID ("" when it has none). */
  id: string;
  /** Its recorded key when trusted, else the key its content gives. */
  key: string | KeyError;
  isOwned: boolean;
  isTrusted: boolean;
}

/**
 * Split `xs` for adoption: `sole` are the trusted objects no other object
 * claims the key of (kept as they are, no tie to break), observed (by
 * `observe`) under their key in listing order; `rest` every other object,
 * sorted by ID (the order ties are broken in). A trusted object is owned
 * (see {@link AdoptOptions.trusted}); whether another is owned is asked of
 * `owns` with its upper-case ID. `observedTrusted` are trusted objects
 * already observed, taken first, as they are when sole on their key.
 */
function soleTrusted<
  T extends { ID?: string },
  O extends { key: string; id: string; hns: T },
>(
  xs: readonly T[],
  owns: (upperCaseId: string) => boolean,
  trusted: ReadonlyMap<string, { key: string }> | undefined,
  keyOf: (hns: T) => string | KeyError,
  observe: (hns: T, id: string, key: string) => O,
  observedTrusted: readonly O[] = [],
): { sole: Map<string, O>; rest: Candidate<T>[] } {
  const sole = new Map<string, O>();
  const rest: { c: Candidate<T>; id: string }[] = [];
  const claimedByRest = new Set<string>();
  const contested = new Set<string>(); // keys several trusted objects claim
  const toRest = (x: T, id: string, upper: string, key: string) =>
    rest.push({ c: { x, id, key, isOwned: true, isTrusted: true }, id: upper });
  for (let i = 0; i < observedTrusted.length; i++) {
    const o = observedTrusted[i];
    if (!sole.has(o.key) && !contested.has(o.key)) sole.set(o.key, o);
    else {
      contested.add(o.key);
      toRest(o.hns, o.id, idKey(o.id), o.key);
    }
  }
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i];
    const id = typeof x?.ID === "string" ? x.ID : "";
    const upper = idKey(id);
    const trustedKey = id !== "" ? trusted?.get(upper)?.key : undefined;
    if (trustedKey !== undefined) {
      if (!sole.has(trustedKey) && !contested.has(trustedKey)) {
        sole.set(trustedKey, observe(x, id, trustedKey));
      } else {
        contested.add(trustedKey);
        toRest(x, id, upper, trustedKey);
      }
      continue;
    }
    const isOwned = id !== "" && owns(upper);
    const key = x && id ? keyOf(x) : { reason: "no ID" };
    if (!isKeyError(key)) claimedByRest.add(key);
    rest.push({ c: { x, id, key, isOwned, isTrusted: false }, id: upper });
  }
  for (const keys of [contested, claimedByRest]) {
    for (const key of keys) {
      const o = sole.get(key);
      if (o === undefined) continue;
      sole.delete(key);
      toRest(o.hns, o.id, idKey(o.id), key);
    }
  }
  // Each ID's sort key is computed once (not at each of the n log n comparisons).
  rest.sort((a, b) => cmp(a.id, b.id));
  return { sole, rest: rest.map((e) => e.c) };
}

/** Whether hnsproxy owns an object, by its upper-case ID (instead of lists of owned IDs). */
export interface OwnedLookup {
  /** Whether the load balancer with this upper-case ID is owned. */
  ownsLoadBalancer(upperCaseId: string): boolean;
  /** Whether the endpoint with this upper-case ID is owned. */
  ownsEndpoint(upperCaseId: string): boolean;
}

function ownedLookup(owned: OwnedIds | OwnedLookup): OwnedLookup {
  if ("ownsLoadBalancer" in owned) return owned;
  const lbs = new Set([...owned.loadBalancers].map(idKey));
  const eps = new Set([...owned.endpoints].map(idKey));
  return { ownsLoadBalancer: (id) => lbs.has(id), ownsEndpoint: (id) => eps.has(id) };
}

/**
 * Upper-case IDs of the endpoints referenced by LBs that stay foreign under
 * `takeOver`: not owned and not on a key the desired state claims (or
 * without a usable key).
 */
function pinnedByForeign(
  hnsLbs: readonly HcnLoadBalancer[],
  ownsLoadBalancer: (upperCaseId: string) => boolean,
  desired: DesiredState,
): Set<string> {
  const pinned = new Set<string>();
  for (const hns of hnsLbs) {
    const id = typeof hns?.ID === "string" ? hns.ID : "";
    if (id !== "" && ownsLoadBalancer(idKey(id))) continue;
    const key = hns && id ? loadBalancerKeyFromHns(hns) : { reason: "no ID" };
    if (!isKeyError(key) && desired.loadBalancers.has(key)) continue;
    const refs = Array.isArray(hns?.HostComputeEndpoints) ? hns.HostComputeEndpoints : [];
    for (const ref of refs) pinned.add(idKey(String(ref)));
  }
  return pinned;
}

/** The key of a backend of `hns` that is a taken-over endpoint (to be replaced), if any. */
function replacedBackend(
  hns: HcnLoadBalancer,
  endpoints: ReadonlyMap<EpKey, ObservedEndpoint>,
  takenOver: readonly TakenOver[],
): EpKey | undefined {
  if (takenOver.length === 0) return undefined;
  const refs = new Set((hns.HostComputeEndpoints ?? []).map((x) => idKey(String(x))));
  for (const t of takenOver) {
    if (t.kind === "endpoint" && refs.has(idKey(t.id)) && endpoints.get(t.key)?.id === t.id) {
      return t.key;
    }
  }
  return undefined;
}

/** What makes a pod's remote endpoint in HNS differ from the desired one, in words. */
function endpointDifference(hns: HcnEndpoint, want: DesiredEndpoint): string {
  const out: string[] = [];
  if (((hns.Flags ?? 0) & EndpointFlags.RemoteEndpoint) === 0) out.push("not a remote endpoint");
  if (normalizeMac(hns.MacAddress) !== normalizeMac(want.mac)) {
    out.push(`MAC ${hns.MacAddress ?? "none"}, want ${want.mac}`);
  }
  const pa = providerAddressOf(hns.Policies);
  if (pa !== (want.providerAddress ?? "")) {
    out.push(`provider address ${pa || "none"}, want ${want.providerAddress ?? "none"}`);
  }
  return out.join("; ") || "other fields differ";
}

/** What makes an LB in HNS differ from the desired one, in words. */
function loadBalancerDifference(
  hns: HcnLoadBalancer,
  want: DesiredLoadBalancer,
  desired: DesiredState,
  observed: Pick<ObservedState, "endpoints" | "foreignEndpoints">,
): string {
  const payload = resolvedLoadBalancerPayload(want, desired, observed);
  if (!payload) return "backends still to be created";
  const have = normalizeLoadBalancer(hns);
  const wanted = normalizeLoadBalancer(payload);
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const out: string[] = [];
  if (have.flags !== wanted.flags) out.push(`flags ${have.flags}, want ${wanted.flags}`);
  if (!same(have.portMappings, wanted.portMappings)) out.push("port mapping differs");
  if (have.sourceVip !== wanted.sourceVip) {
    out.push(`source VIP ${have.sourceVip || "none"}, want ${wanted.sourceVip || "none"}`);
  }
  if (!same(have.backends, wanted.backends)) {
    out.push(`backends differ (${have.backends.length}, want ${wanted.backends.length})`);
  }
  return out.join("; ") || "other fields differ";
}
