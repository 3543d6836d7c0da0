/**
 * The cluster store: the compact Services, EndpointSlices and Node the proxy
 * works from ({@linkcode ClusterView}), with change tracking in the manner of
 * kube-proxy's change trackers.
 *
 * Every add/update/delete is recorded against the state the object had when
 * it first changed since the last {@linkcode ClusterStore.takeChanges}; a
 * burst of events for one service therefore becomes one dirty service key,
 * and a change that is undone (or that touched only fields the proxy does not
 * read) leaves nothing pending. A node whose placement (pod CIDRs,
 * InternalIPs) changed marks dirty every service with an endpoint on it.
 *
 * @module
 */

import type {
  ClusterView,
  EndpointSliceInfo,
  NodeInfo,
  NodePlacement,
  ObjectKey,
  ServiceInfo,
} from "./model.ts";
import { objectKey } from "./model.ts";

/** The work handed to the proxy by {@linkcode ClusterStore.takeChanges}. */
export interface ChangeSet {
  /** Services (`namespace/name`) whose service or endpoints changed. */
  services: Set<ObjectKey>;
  /** How many services had service changes. */
  serviceChanges: number;
  /** How many services had endpoint changes. */
  endpointChanges: number;
  /**
   * Per service with endpoint changes, the earliest EndpointSlice
   * last-change-trigger-time (epoch ms) after the store started tracking,
   * for the network programming latency metric (none for a service whose
   * slice was removed: kube-proxy's rule, see the store's `#triggers`).
   */
  triggerTimes: Map<ObjectKey, number>;
  /** Whether the node record changed. */
  nodeChanged: boolean;
  /** Nodes whose placement was added, changed or removed. */
  placementsChanged: Set<string>;
}

/** Which initial lists have completed. */
export type SyncedKind = "services" | "endpointSlices" | "node" | "nodes";

/** Structural equality of compact records, ignoring `resourceVersion`. */
export function sameRecord(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((v, i) => sameRecord(v, bb[i]));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const keys = (o: Record<string, unknown>) =>
    Object.keys(o).filter((k) => k !== "resourceVersion" && o[k] !== undefined);
  const ak = keys(ao);
  const bk = keys(bo);
  return ak.length === bk.length && ak.every((k) => sameRecord(ao[k], bo[k]));
}

const NONE: readonly EndpointSliceInfo[] = Object.freeze([]);

/** The slices of one service as the store keeps them: the slice alone, or several sorted by name. */
type ServiceSlices = EndpointSliceInfo | readonly EndpointSliceInfo[];

/** The slices kept for a service as a list (a new one-slice list for a lone slice). */
function listOf(slices: ServiceSlices | undefined): readonly EndpointSliceInfo[] {
  if (slices === undefined) return NONE;
  return Array.isArray(slices) ? slices : [slices as EndpointSliceInfo];
}

/** Whether a slice has an endpoint on one of `nodes`. */
function onNodes(slice: EndpointSliceInfo, nodes: ReadonlySet<string>): boolean {
  const eps = slice.endpoints;
  for (let i = 0; i < eps.length; i++) {
    const node = eps.nodeName(i);
    if (node !== undefined && nodes.has(node)) return true;
  }
  return false;
}

/** Options of {@linkcode ClusterStore}. */
export interface ClusterStoreOptions {
  /**
   * When tracking started (epoch ms; default: the store's construction):
   * only trigger times after it are reported. The agent passes its own
   * start.
   */
  trackingSinceMs?: number;
}

/** The cluster state with change tracking; fed by lib/kube/cluster.ts. */
export class ClusterStore implements ClusterView {
  readonly #services = new Map<ObjectKey, ServiceInfo>();
  readonly #slices = new Map<ObjectKey, EndpointSliceInfo>();
  /**
   * The slices of each service, sorted by name: the slice itself when it is
   * the only one (most services: no array kept per service), else a frozen
   * array replaced (never changed) when one of them changes.
   */
  readonly #bySvc = new Map<ObjectKey, ServiceSlices>();
  #node?: NodeInfo;
  readonly #placements = new Map<string, NodePlacement>();

  readonly #svcBase = new Map<ObjectKey, ServiceInfo | undefined>();
  readonly #sliceBase = new Map<ObjectKey, EndpointSliceInfo | undefined>();
  /**
   * Until the first {@linkcode takeChanges}: every Service and EndpointSlice
   * was absent at the last take, so what is pending is what the store holds,
   * and no base is recorded per object (the initial lists fill the store).
   */
  #fresh = true;
  /**
   * Per service, the earliest pending EndpointSlice trigger time after
   * {@linkcode #trackingSinceMs}, as kube-proxy's EndpointsChangeTracker
   * keeps them: the annotation of a slice listed at start, or received for a
   * change made before, is the time of a change this proxy never waited for
   * (hours or days old after a restart), so it is not a latency; and a
   * slice's removal drops its service's pending times, as a removed slice's
   * annotation is the time of its last update, not of the removal. Empty
   * after a start's lists, then as small as the changes.
   */
  readonly #triggers = new Map<ObjectKey, number>();
  readonly #trackingSinceMs: number;
  #nodeBase?: { value: NodeInfo | undefined };
  readonly #placementBase = new Map<string, NodePlacement | undefined>();

  readonly #synced = new Set<SyncedKind>();
  readonly #listeners = new Set<() => void>();
  /** Nesting depth of {@linkcode batch} calls; listeners wait while it is above 0. */
  #batching = 0;
  /** Whether a change was made during the current batch. */
  #changedInBatch = false;
  #syncWaiters: (() => void)[] = [];

  /** Service events received since start (for `..._service_changes_total`). */
  serviceChangesTotal = 0;
  /** EndpointSlice events received since start (for `..._endpoint_changes_total`). */
  endpointChangesTotal = 0;

  /** A store tracking changes from `options.trackingSinceMs` (default: now). */
  constructor(options: ClusterStoreOptions = {}) {
    this.#trackingSinceMs = options.trackingSinceMs ?? Date.now();
  }

  // ---- ClusterView ----

  /** All services. */
  services(): Iterable<ServiceInfo> {
    return this.#services.values();
  }

  /** One service by `namespace/name`. */
  service(key: ObjectKey): ServiceInfo | undefined {
    return this.#services.get(key);
  }

  /** Every service with its key (the store's own string). */
  forEachService(fn: (svc: ServiceInfo, key: ObjectKey) => void): void {
    this.#services.forEach(fn);
  }

  /** The EndpointSlices of a service (`namespace/serviceName`), sorted by slice name. */
  slicesFor(serviceKey: ObjectKey): readonly EndpointSliceInfo[] {
    return listOf(this.#bySvc.get(serviceKey));
  }

  /** One EndpointSlice by `namespace/sliceName`. */
  slice(key: ObjectKey): EndpointSliceInfo | undefined {
    return this.#slices.get(key);
  }

  /** The agent's node, once seen. */
  node(): NodeInfo | undefined {
    return this.#node;
  }

  /** Every node's placement by node name. */
  nodePlacements(): ReadonlyMap<string, NodePlacement> {
    return this.#placements;
  }

  /** One node's placement, once listed. */
  nodePlacement(name: string): NodePlacement | undefined {
    return this.#placements.get(name);
  }

  /** Number of services held. */
  get serviceCount(): number {
    return this.#services.size;
  }

  /** Number of EndpointSlices held. */
  get sliceCount(): number {
    return this.#slices.size;
  }

  // ---- mutations ----

  /**
   * Adds or replaces a service; `key`, when the caller has it, is its
   * `namespace/name` (the same text, so the maps share one string).
   */
  upsertService(info: ServiceInfo, key: ObjectKey = objectKey(info.namespace, info.name)): void {
    this.#setService(key, info);
  }

  /** Removes a service (`namespace/name`); no-op when absent. */
  deleteService(key: ObjectKey): void {
    this.#setService(key, undefined);
  }

  #setService(key: ObjectKey, info: ServiceInfo | undefined): void {
    this.serviceChangesTotal++;
    const current = this.#services.get(key);
    if (current === undefined && info === undefined) return;
    const tracked = !this.#fresh;
    if (tracked && !this.#svcBase.has(key)) this.#svcBase.set(key, current);
    if (info) this.#services.set(key, info);
    else this.#services.delete(key);
    if (tracked && sameRecord(this.#svcBase.get(key), info)) this.#svcBase.delete(key);
    if (!sameRecord(current, info)) this.#notify();
  }

  /** Adds or replaces an EndpointSlice; `key` as for {@linkcode upsertService}. */
  upsertSlice(
    info: EndpointSliceInfo,
    key: ObjectKey = objectKey(info.namespace, info.name),
  ): void {
    this.#setSlice(key, info);
  }

  /** Removes an EndpointSlice (`namespace/sliceName`); no-op when absent. */
  deleteSlice(key: ObjectKey): void {
    this.#setSlice(key, undefined);
  }

  #setSlice(key: ObjectKey, info: EndpointSliceInfo | undefined): void {
    this.endpointChangesTotal++;
    const current = this.#slices.get(key);
    if (current === undefined && info === undefined) return;
    const tracked = !this.#fresh;
    if (tracked && !this.#sliceBase.has(key)) this.#sliceBase.set(key, current);
    const was = current && objectKey(current.namespace, current.serviceName);
    const svc = info && objectKey(info.namespace, info.serviceName);
    if (was !== undefined && was !== svc) this.#replaceInService(was, current, undefined);
    const changed = !sameRecord(current, info);
    if (info) {
      this.#slices.set(key, info);
      this.#replaceInService(svc!, was === svc ? current : undefined, info);
      const at = info.triggerTimeMs;
      if (changed && at !== undefined && at > this.#trackingSinceMs) {
        const t = this.#triggers.get(svc!);
        if (t === undefined || at < t) this.#triggers.set(svc!, at);
      }
    } else {
      this.#slices.delete(key);
      this.#triggers.delete(was!);
    }
    if (tracked && sameRecord(this.#sliceBase.get(key), info)) this.#sliceBase.delete(key);
    if (changed) this.#notify();
  }

  /**
   * Replaces `current` (when given) with `info` (when given) among the
   * slices of service `svc`, in a new sorted array.
   */
  #replaceInService(
    svc: ObjectKey,
    current: EndpointSliceInfo | undefined,
    info: EndpointSliceInfo | undefined,
  ): void {
    const had = this.#bySvc.get(svc);
    if (had === undefined) {
      // The service's first slice (every slice of an initial list but a few).
      if (info !== undefined) this.#bySvc.set(svc, info);
      return;
    }
    const list = listOf(had);
    const kept = list.length - (current !== undefined && list.includes(current) ? 1 : 0);
    const size = kept + (info === undefined ? 0 : 1);
    if (size === 0) {
      this.#bySvc.delete(svc);
      return;
    }
    // Built at its exact size: a grown array would keep spare capacity.
    const next: EndpointSliceInfo[] = new Array(size);
    let n = 0;
    let placed = info === undefined;
    for (const s of list) {
      if (s === current) continue;
      if (!placed && s.name > info!.name) {
        next[n++] = info!;
        placed = true;
      }
      next[n++] = s;
    }
    if (!placed) next[n] = info!;
    this.#bySvc.set(svc, size === 1 ? next[0] : Object.freeze(next));
  }

  /** Sets (or clears) the node record. */
  setNode(info: NodeInfo | undefined): void {
    if (!this.#nodeBase) this.#nodeBase = { value: this.#node };
    const changed = !sameRecord(this.#node, info);
    this.#node = info;
    if (sameRecord(this.#nodeBase.value, info)) this.#nodeBase = undefined;
    if (changed) this.#notify();
  }

  /** Adds or replaces a node's placement. */
  upsertNodePlacement(placement: NodePlacement): void {
    this.#setPlacement(placement.name, placement);
  }

  /** Removes a node's placement; no-op when absent. */
  deleteNodePlacement(name: string): void {
    this.#setPlacement(name, undefined);
  }

  #setPlacement(name: string, placement: NodePlacement | undefined): void {
    const current = this.#placements.get(name);
    if (current === undefined && placement === undefined) return;
    if (!this.#placementBase.has(name)) this.#placementBase.set(name, current);
    if (placement) this.#placements.set(name, placement);
    else this.#placements.delete(name);
    if (sameRecord(this.#placementBase.get(name), placement)) this.#placementBase.delete(name);
    if (!sameRecord(current, placement)) this.#notify();
  }

  /** Records that an initial list completed. */
  markSynced(kind: SyncedKind): void {
    this.#synced.add(kind);
    if (this.hasSynced()) {
      const waiters = this.#syncWaiters;
      this.#syncWaiters = [];
      for (const w of waiters) w();
    }
    this.#notify();
  }

  /** True once both Services and EndpointSlices finished their initial list. */
  hasSynced(): boolean {
    return this.#synced.has("services") && this.#synced.has("endpointSlices");
  }

  /** Whether one initial list completed. */
  isSynced(kind: SyncedKind): boolean {
    return this.#synced.has(kind);
  }

  /** Resolves once {@linkcode hasSynced} is true. */
  whenSynced(): Promise<void> {
    if (this.hasSynced()) return Promise.resolve();
    return new Promise((resolve) => this.#syncWaiters.push(resolve));
  }

  /**
   * Calls `listener` after every change the proxy can see (a record that
   * differs, an initial list completed), once per {@linkcode batch};
   * returns the unsubscribe function.
   */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Runs `fn` (changes to the store) and calls the listeners once at its
   * end when something changed, instead of once per change: a page of a
   * list is one batch.
   */
  batch<T>(fn: () => T): T {
    this.beginBatch();
    try {
      return fn();
    } finally {
      this.endBatch();
    }
  }

  /** Starts a batch that {@linkcode endBatch} ends (as {@linkcode batch}, for callers without a callback). */
  beginBatch(): void {
    this.#batching++;
  }

  /** Ends a batch started by {@linkcode beginBatch}; the outermost end calls the listeners. */
  endBatch(): void {
    if (this.#batching === 0) return;
    if (--this.#batching === 0 && this.#changedInBatch) {
      this.#changedInBatch = false;
      this.#notify();
    }
  }

  #notify(): void {
    if (this.#batching > 0) {
      this.#changedInBatch = true;
      return;
    }
    for (const l of this.#listeners) l();
  }

  // ---- change tracking ----

  /** Services with pending service changes (`..._service_changes_pending`). */
  pendingServiceChanges(): number {
    return this.#fresh ? this.#services.size : this.#svcBase.size;
  }

  /** Services with pending endpoint changes (`..._endpoint_changes_pending`). */
  pendingEndpointChanges(): number {
    return this.#endpointServices().size;
  }

  /** Whether anything is pending. */
  hasPendingChanges(): boolean {
    if (this.#fresh && (this.#services.size > 0 || this.#slices.size > 0)) return true;
    return this.#svcBase.size > 0 || this.#sliceBase.size > 0 || this.#nodeBase !== undefined ||
      this.#placementBase.size > 0;
  }

  #endpointServices(): Set<ObjectKey> {
    // Fresh: every slice held is pending, and the services they name are the ones kept per service.
    if (this.#fresh) return new Set(this.#bySvc.keys());
    const out = new Set<ObjectKey>();
    for (const [key, base] of this.#sliceBase) {
      if (base) out.add(objectKey(base.namespace, base.serviceName));
      const now = this.#slices.get(key);
      if (now) out.add(objectKey(now.namespace, now.serviceName));
    }
    return out;
  }

  /** Services with an endpoint on one of `nodes` (one pass over the slices). */
  #servicesOnNodes(nodes: ReadonlySet<string>, into: Set<ObjectKey>): void {
    if (nodes.size === 0) return;
    for (const [svc, slices] of this.#bySvc) {
      if (into.has(svc)) continue;
      if (listOf(slices).some((s) => onNodes(s, nodes))) into.add(svc);
    }
  }

  /** Hands over the pending changes and starts a new round. */
  takeChanges(): ChangeSet {
    const endpointSvcs = this.#endpointServices();
    const services = new Set<ObjectKey>(this.#fresh ? this.#services.keys() : this.#svcBase.keys());
    for (const svc of endpointSvcs) services.add(svc);
    const placementsChanged = new Set(this.#placementBase.keys());
    // Fresh, every service with a slice is taken already.
    if (!this.#fresh) this.#servicesOnNodes(placementsChanged, services);
    const triggerTimes = new Map<ObjectKey, number>();
    if (this.#triggers.size > 0) {
      for (const svc of endpointSvcs) {
        const t = this.#triggers.get(svc);
        if (t !== undefined) triggerTimes.set(svc, t);
      }
    }
    const changes: ChangeSet = {
      services,
      serviceChanges: this.pendingServiceChanges(),
      endpointChanges: endpointSvcs.size,
      triggerTimes,
      nodeChanged: this.#nodeBase !== undefined,
      placementsChanged,
    };
    this.#fresh = false;
    this.#svcBase.clear();
    this.#sliceBase.clear();
    this.#triggers.clear();
    this.#nodeBase = undefined;
    this.#placementBase.clear();
    return changes;
  }
}
