/**
 * The CNI endpoints of this node's pods, kept current in the node context
 * without reading all of HNS.
 *
 * - A run whose desired state names a pod on this node that the node context
 *   lacks (a `LocalEndpointNotFound` diagnostic) looks it up in the same run:
 *   one Enumerate of the network's endpoint IDs and a query of each ID never
 *   seen, so the LBs are programmed once with the new pod rather than twice.
 *   Each missing IP is looked up once when it goes missing; while some stay
 *   missing, lookups repeat by backoff (1 s doubling to 30 s).
 * - The periodic resync hands its endpoint listing over, so vanished CNI
 *   endpoints are dropped and new ones read, with no extra call.
 * - Every endpoint ID already classified (ours, of others, local, of other
 *   networks) is remembered, so no ID is queried twice. The observed cache
 *   classifies the remote endpoints it holds (ours and others'), so only the
 *   IDs it lacks are kept here ({@link LocalEndpoints.knows}): what is
 *   classified is the union of both (the cache lets go of an ID only once
 *   HNS no longer holds it). Remote endpoints of others found this way go
 *   into the observed cache.
 * - The root host endpoint (`rootHnsEndpointName`, backend of the
 *   health-check VIP LBs) follows HNS too: a listing that no longer holds
 *   its ID drops it, and a new endpoint by that name found among the IDs
 *   read becomes it, so a recreated one (HNS restart, CNI reinstall) is
 *   picked up at the next resync with no extra call. {@link
 *   LocalEndpoints.resolveRoot} asks HNS for it directly (one Enumerate with
 *   a Name filter) when its LBs are about to be built.
 *
 * A lookup returns the next node context as a value; the caller decides what
 * to recompute.
 *
 * @module
 */

import type { IdLookup } from "../hns/id_listing.ts";
import type { HnsClient } from "../hns/types.ts";
import type { HcnEndpoint } from "../hns/types.ts";
import type { ObjectKey } from "../kube/model.ts";
import type { Logger } from "../log/types.ts";
import { type Clock, RetryBackoff } from "./backoff.ts";
import {
  contextChanged,
  contextWithRoot,
  findEndpointByName,
  isRemoteEndpoint,
  localEndpointsOf,
  onNetwork,
} from "./context.ts";
import { endpointKeyFromHns, isKeyError } from "./keys.ts";
import type { DesiredState, NodeContext, ServiceDesired } from "./model.ts";
import { IdJournal } from "./id_journal.ts";
import { idKey, type ObservedCache, sameId } from "./observed.ts";
import { ServiceDiagnostics } from "./service_diagnostics.ts";
import type { OwnershipRecord } from "./ownership.ts";

/** Options of {@link LocalEndpoints}. */
export interface LocalEndpointsOptions {
  /** The HNS client. */
  client: HnsClient;
  /** The ownership record (what hnsproxy owns is never a CNI endpoint). */
  ownership: OwnershipRecord;
  /** The observed cache (remote endpoints of others are recorded in it). */
  observed: ObservedCache;
  /** Clock of the backoff. */
  clock: Clock;
  /** Logger. */
  logger: Logger;
}

/** The outcome of a lookup. */
export interface LookupResult {
  /** The next node context (the same object when nothing changed). */
  ctx: NodeContext;
  /** A new remote endpoint of others holds a key the desired state wants. */
  othersHoldWanted: boolean;
}

/**
 * What a resync knows of an endpoint listing taken while objects may have
 * been learnt of: which IDs were known when it started, and optionally
 * (found in the background) the only IDs {@link LocalEndpoints.refresh}
 * needs to look at.
 */
export interface ListingScan {
  /** Whether the ID ({@link idKey} form) was known when the listing started. */
  existed(id: string): boolean;
  /** Known IDs the listing lacks (a superset is fine); default: every known ID. */
  unlistedKnown?: Iterable<string>;
  /** Listed IDs not known (a superset is fine); default: every listed ID. */
  unknownListed?: Iterable<string>;
}

/** Longest wait between lookups of CNI endpoints the cluster names but HNS lacks. */
const LOOKUP_MAX_MS = 30_000;

/** Lookups of CNI endpoints for new local pods. One per syncer. */
export class LocalEndpoints {
  readonly #o: LocalEndpointsOptions;
  /**
   * IDs ({@link idKey} form) of the endpoints already classified that the
   * observed cache did not hold when they were (CNI, other networks, strays).
   */
  readonly #known = new Set<string>();
  /** `LocalEndpointNotFound` diagnostics of the desired state, by service. */
  readonly #misses = new ServiceDiagnostics("LocalEndpointNotFound");
  /** IPs of missing local endpoints already looked up once (later lookups go by backoff). */
  #lookedUp = new Set<string>();
  readonly #backoff: RetryBackoff;
  /** Net changes of {@link #known} since {@link markIds}. */
  #journal: IdJournal | undefined;

  /** Nothing known yet. */
  constructor(options: LocalEndpointsOptions) {
    this.#o = options;
    this.#backoff = new RetryBackoff({
      initialMs: 1000,
      maxMs: LOOKUP_MAX_MS,
      clock: options.clock,
    });
  }

  /**
   * Start over with the endpoint IDs HNS listed at start (the observed cache
   * filled from the same read: the IDs it holds are classified by it).
   */
  restart(endpointIds: Iterable<string>): void {
    this.clear();
    const { observed } = this.#o;
    for (const id of endpointIds) {
      const k = idKey(id);
      if (observed.endpointById(k) === undefined) this.#known.add(k);
    }
  }

  /** Forget everything (HNS is read afresh). A journal of {@link markIds} ends. */
  clear(): void {
    this.#known.clear();
    this.#journal = undefined;
  }

  /**
   * The endpoint IDs classified here ({@link idKey} form; live, no copy):
   * with the observed cache's, every endpoint ID already classified.
   */
  knownIds(): Iterable<string> {
    return this.#known;
  }

  /**
   * Whether this endpoint ID ({@link idKey} form) is classified here (one
   * the observed cache holds may not be: ask it too).
   */
  knows(id: string): boolean {
    return this.#known.has(id);
  }

  /** How many endpoint IDs are classified here. */
  get knownCount(): number {
    return this.#known.size;
  }

  /**
   * Start a journal of the IDs that become known and stop being known (one
   * at a time); it ends with {@link unmarkIds} or {@link clear}.
   */
  markIds(): IdJournal {
    this.#journal = new IdJournal();
    return this.#journal;
  }

  /** End this journal, if it is the current one. */
  unmarkIds(journal: IdJournal): void {
    if (this.#journal === journal) this.#journal = undefined;
  }

  #learn(id: string): void {
    if (this.#known.has(id)) return;
    this.#known.add(id);
    this.#journal?.added(id);
  }

  #forget(id: string): void {
    if (this.#known.delete(id)) this.#journal?.removed(id);
  }

  /**
   * Follow a new desired state: its missing local endpoints for the changed
   * services only, or (no `changed`) for all of them.
   */
  track(
    desired: DesiredState | undefined,
    changed?: ReadonlyMap<ObjectKey, ServiceDesired | undefined>,
  ): void {
    this.#misses.track(desired, changed);
  }

  /** Whether a missing local endpoint has not been looked up since it went missing. */
  hasNewMisses(): boolean {
    for (const ip of this.#missingIps()) if (!this.#lookedUp.has(ip)) return true;
    return false;
  }

  /** Every missing local endpoint now counts as looked up. */
  lookedUp(): void {
    this.#lookedUp = this.#missingIps();
  }

  /** Whether a lookup is due by backoff (some stay missing after a lookup). */
  retryDue(): boolean {
    return this.#backoff.failing && this.#backoff.ready();
  }

  /** Milliseconds until the next lookup by backoff, if one is pending. */
  retryInMs(): number | undefined {
    return this.#backoff.nextDelay();
  }

  /** After a run applied its plan: back off while local endpoints stay missing. */
  settle(): void {
    if (this.#missing() === 0) this.#backoff.reset();
    else if (!this.#backoff.failing) this.#backoff.fail();
  }

  /** A lookup failed: try again by backoff. */
  failed(): void {
    this.#backoff.fail();
  }

  /**
   * The context with the root host endpoint as HNS has it now: one Enumerate
   * of the network's endpoints with its name (the current ID is kept while
   * HNS still lists it).
   */
  async resolveRoot(ctx: NodeContext): Promise<NodeContext> {
    const ids = await this.#o.client.listEndpointIds(ctx.network.id, ctx.rootHnsEndpointName);
    const current = ctx.rootHnsEndpointId;
    const id = ids.find((x) => current !== undefined && sameId(x, current)) ?? ids[0];
    if (id !== current) {
      this.#o.logger.info("Root HNS endpoint changed", {
        name: ctx.rootHnsEndpointName,
        before: current ?? "(none)",
        after: id ?? "(none)",
      });
    }
    return contextWithRoot(ctx, id);
  }

  /** Look up the network's endpoints: one Enumerate of its endpoint IDs. */
  async lookUp(ctx: NodeContext, desired: DesiredState | undefined): Promise<LookupResult> {
    const ids = await this.#o.client.listEndpointIds(ctx.network.id);
    return await this.refresh(ctx, desired, new Set(ids.map(idKey)), true);
  }

  /**
   * Bring the CNI endpoints up to date from an endpoint ID listing
   * ({@link idKey} form): drop IDs that vanished, read the ones never seen.
   * `networkOnly`: the listing holds the network's endpoints only, so IDs of
   * other networks are not forgotten. `since`, when objects may have been
   * learnt of since the listing started: which IDs were known then (only
   * those can have vanished; one known then that the cache lacks now was
   * deleted meanwhile, so it is not read as new), and optionally the IDs
   * worth looking at, found beforehand ({@link ListingScan}).
   */
  async refresh(
    ctx: NodeContext,
    desired: DesiredState | undefined,
    present: IdLookup,
    networkOnly: boolean,
    since?: ListingScan,
  ): Promise<LookupResult> {
    const { client, observed, ownership } = this.#o;
    const existed = (id: string) => since === undefined || since.existed(id);
    // A node may hold thousands of pods: the context's map is copied only when it changes.
    let copy: Map<string, string> | undefined;
    const edit = () => (copy ??= new Map(ctx.localEndpoints));
    const local = () => copy ?? ctx.localEndpoints;
    for (const [ip, id] of ctx.localEndpoints) {
      const k = idKey(id);
      if (!present.has(k) && existed(k)) edit().delete(ip);
    }
    const known = this.#known;
    if (!networkOnly) {
      // Deleting the current entry while iterating a Set is safe.
      for (const id of since?.unlistedKnown ?? known) {
        if (known.has(id) && !present.has(id) && existed(id)) this.#forget(id);
      }
    }
    let localIds: Set<string> | undefined;
    const isLocal = (id: string) => {
      if (!localIds) {
        localIds = new Set<string>();
        for (const x of local().values()) localIds.add(idKey(x));
      }
      return localIds.has(id);
    };
    const fresh: HcnEndpoint[] = [];
    for (const id of since?.unknownListed ?? present) {
      if (known.has(id) || !present.has(id) || isLocal(id)) continue;
      // Ours, or of others already classified: the cache remembers it.
      if (observed.endpointById(id) !== undefined) continue;
      if (since?.existed(id)) continue;
      const ep = await client.getEndpoint(id);
      this.#learn(id);
      if (ep && onNetwork(ep, ctx.network.id)) fresh.push(ep);
    }
    for (const [ip, id] of localEndpointsOf(fresh, ctx.network.id, (x) => ownership.owns(x))) {
      if (!local().has(ip)) edit().set(ip, id);
    }
    let othersHoldWanted = false;
    const sourceVips = new Set(ctx.sourceVips);
    for (const ep of fresh) {
      if (!isRemoteEndpoint(ep) || !ep.ID || ownership.owns(ep.ID)) continue;
      const key = endpointKeyFromHns(ep, sourceVips);
      if (isKeyError(key)) continue;
      observed.setForeignEndpoint({ key, id: ep.ID, hns: ep });
      if (desired?.remoteEndpoints.has(key)) othersHoldWanted = true;
    }
    let root = ctx.rootHnsEndpointId;
    if (root !== undefined && !present.has(idKey(root)) && existed(idKey(root))) root = undefined;
    root = findEndpointByName(fresh, ctx.network.id, ctx.rootHnsEndpointName) ?? root;
    const next = copy === undefined && root === ctx.rootHnsEndpointId
      ? ctx
      : contextWithRoot({ ...ctx, localEndpoints: local() }, root);
    if (next === ctx || !contextChanged(ctx, next)) {
      if (this.#missing() > 0) this.#backoff.fail();
      return { ctx, othersHoldWanted };
    }
    this.#o.logger.debug(2, "CNI endpoints changed", {
      before: ctx.localEndpoints.size,
      after: local().size,
      root: next.rootHnsEndpointId ?? "(none)",
    });
    // The recompute decides whether anything is still missing.
    this.#backoff.reset();
    return { ctx: next, othersHoldWanted };
  }

  /** IPs of local endpoints the desired state wants but the node context lacks. */
  #missingIps(): Set<string> {
    return this.#misses.endpointIps();
  }

  /** How many local endpoints the desired state wants but the node context lacks. */
  #missing(): number {
    return this.#misses.count();
  }
}
