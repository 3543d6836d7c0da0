/**
 * The periodic resync: every syncPeriod, list the IDs HNS holds (network,
 * load balancers, endpoints: 3 calls) and compare them with the observed
 * cache and the ownership record, to find what vanished; on overlay also
 * re-read the network's RemoteSubnetRoute policies (one more call, through
 * a kept-open handle: lib/proxy/network_routes.ts).
 *
 * - Owned objects that vanished are forgotten (cache and record) and
 *   reported, so a full run recreates them (drift repair). Objects of others
 *   and strays that vanished are forgotten too; they change what a full run
 *   decides, so they count as drift.
 * - A network ID other than the node context's (HNS restarted) means: read
 *   HNS afresh.
 * - In the background (the agent) the listing is not awaited by a run: a
 *   run that applied changes starts it as it ends once the resync is due (the
 *   runner then holds the next change for minSyncPeriod, so HNS lists while
 *   no event's run can start), or an idle run {@link LISTING_ALIGN_MS} later;
 *   runs for changes go on meanwhile, and the first run after it was
 *   compared takes the result.
 *   Only IDs known when it started can have vanished (what a later run
 *   created may be missing from the listing), and a listed ID known then
 *   but gone from the cache was deleted meanwhile, so it is not read as new.
 *   Which IDs were known then is told by journals of the IDs learnt and
 *   forgotten since ({@link IdMark}), not by a copy of every ID.
 * - A listing is held as an `IdListing` (lib/hns/id_listing.ts): typed
 *   arrays, so the event loop's thread takes no megabytes of strings and
 *   sets into its heap (each would set off a mark-compact, whose marking
 *   and pauses hold the runs). In the background the answer is read where
 *   HNS put it (no string made of it), paced like the comparison below.
 * - The background work (reading the listings, finding the IDs that
 *   vanished or are new: O(cluster)) runs in slices of at most {@link SLICE_MS} between yields to
 *   the event loop, and never while a run is in flight
 *   ({@link Resync.runStarted}); the run that takes the result checks only
 *   those IDs again (O(what changed)).
 * - A failed listing is logged and retried with backoff (1 s doubling to
 *   30 s).
 * - IDs compare in the cache's index form ({@link idKey}), so the comparison
 *   converts and hashes no string of the cache anew.
 *
 * @module
 */

import { yieldToEventLoop } from "../event_loop.ts";
import type { IdLookup, Pacer } from "../hns/id_listing.ts";
import type { HnsClient } from "../hns/types.ts";
import type { Logger } from "../log/types.ts";
import { type Clock, RetryBackoff } from "./backoff.ts";
import type { ListingScan, LocalEndpoints } from "./local_endpoints.ts";
import type { ObservedEndpoint, ObservedLoadBalancer, RemoteSubnetRoute } from "./model.ts";
import { idKey, type ObservedCache, sameId } from "./observed.ts";
import type { OwnershipRecord } from "./ownership.ts";

/** One listing of the IDs HNS holds; the ID sets are absent when the network changed. */
export interface Listing {
  /** When the listing started (clock ms). */
  startedAt: number;
  /** The network ID of the node context it was taken for. */
  networkId: string;
  /** IDs of the networks with the configured name. */
  networkIds: string[];
  /** Load balancer IDs ({@link idKey} form). */
  lbIds?: IdLookup;
  /** Endpoint IDs ({@link idKey} form). */
  epIds?: IdLookup;
  /** The network's RemoteSubnetRoute policies, when read ({@link ResyncOptions.readRoutes}). */
  routes?: RemoteSubnetRoute[];
}

/**
 * Which IDs the syncer knew when a background listing started, told from
 * journals of what it learnt and forgot since (see the module notes).
 */
export interface IdMark {
  /** Whether the ID ({@link idKey} form) was known at the mark. */
  existed(id: string): boolean;
  /**
   * Read what {@link existed} may need beyond the journals (the node
   * context's local endpoint IDs at the mark) now, pausing by `pace`, so that
   * it is never read in one go (a node may hold thousands of pods).
   */
  prepare(pace?: Pacer): Promise<void>;
  /** End the journals. */
  end(): void;
}

/**
 * IDs a background comparison found worth a look ({@link idKey} form; each
 * once, although an entry changed between two slices may be seen twice). Each is checked again by the
 * run that takes them, so the state may change after they were found.
 */
export interface Candidates {
  /** Load balancers of the cache that the listing lacks. */
  loadBalancers: Set<string>;
  /** Endpoints of the cache that the listing lacks. */
  endpoints: Set<string>;
  /** IDs of the ownership record that the listing lacks. */
  owned: Set<string>;
  /** Classified endpoint IDs (LocalEndpoints) that the listing lacks. */
  unlistedKnown: Set<string>;
  /**
   * Listed endpoint IDs neither classified nor in the cache (those found
   * classified or cached while the comparison ran are left out: one learnt
   * and forgotten again meanwhile is found by the next resync).
   */
  unknownListed: Set<string>;
}

/** What a background comparison reads (the syncer's state, as it is when each slice runs). */
export interface CompareSources {
  /** The observed cache. */
  observed: ObservedCache;
  /** The ownership record. */
  ownership: OwnershipRecord;
  /** The endpoint IDs already classified ({@link idKey} form). */
  knownIds(): Iterable<string>;
  /** Whether an endpoint ID is already classified. */
  knows(id: string): boolean;
}

/** A listing that arrived, ready to be compared. */
export interface ArrivedListing {
  /** The listing. */
  listing: Listing;
  /**
   * In the background: which IDs were known when it started (only those
   * can have vanished), and the candidates found in slices. End the mark
   * once compared.
   */
  since?: { mark: IdMark; candidates: Candidates };
}

/** What a comparison found gone from HNS. */
export interface Vanished {
  /** Owned load balancers (with a key) that vanished. */
  loadBalancers: ObservedLoadBalancer[];
  /** Owned endpoints (with a key) that vanished. */
  endpoints: ObservedEndpoint[];
  /** Load balancers and endpoints of others, and strays, that vanished. */
  others: Array<{ kind: "LoadBalancer" | "Endpoint"; id: string }>;
  /** IDs of the ownership record that HNS no longer lists. */
  ownedIds: string[];
}

/** Options of {@link Resync}. */
export interface ResyncOptions {
  /** The HNS client. */
  client: HnsClient;
  /** Time between resyncs (syncPeriod), ms. */
  periodMs: number;
  /** Clock. */
  clock: Clock;
  /** Logger. */
  logger: Logger;
  /** List in the background (see the module notes). */
  inBackground: boolean;
  /** IDs of the networks with this name, in one HNS call; default `findNetworkByName`. */
  networkIds?: (name: string) => Promise<string[]>;
  /**
   * The network's RemoteSubnetRoute policies (one HNS call), read after the
   * IDs; undefined when they are not read (not overlay, or the read failed:
   * it logs that itself and never throws).
   */
  readRoutes?: (networkId: string) => Promise<RemoteSubnetRoute[] | undefined>;
}

/**
 * How long a due background listing waits, ms, for a run that applied
 * changes to start it as it ends (see {@link Resync.start}); after that an
 * idle run starts it. At most a fifth of the sync period.
 */
export const LISTING_ALIGN_MS = 2_000;

/** Longest run, ms, of background resync work between two yields to the event loop. */
export const SLICE_MS = 1;
/** Items a background slice handles between two looks at the time. */
const CHECK_EVERY = 256;

/** A background listing: in flight until `done`, then its outcome. */
interface Pending {
  done: boolean;
  listing?: Listing;
  candidates?: Candidates;
  error?: unknown;
  mark: IdMark;
}

/**
 * Paces background work: {@link Pace.step} yields to the event loop once
 * the current slice has run {@link SLICE_MS}, and waits while a run is in
 * flight, so the work never runs inside a run.
 */
class Pace implements Pacer {
  #sliceStart = performance.now();
  #n = 0;
  /** The end of the run in flight, if any. */
  readonly #runEnd: () => Promise<void> | undefined;

  constructor(runEnd: () => Promise<void> | undefined) {
    this.#runEnd = runEnd;
  }

  step(): Promise<void> | undefined {
    if (++this.#n % CHECK_EVERY !== 0) return undefined;
    if (performance.now() - this.#sliceStart < SLICE_MS && !this.#runEnd()) return undefined;
    return this.pause();
  }

  /** Yield to the event loop, then wait while a run is in flight. */
  async pause(): Promise<void> {
    await yieldToEventLoop();
    for (let end = this.#runEnd(); end; end = this.#runEnd()) await end;
    this.#sliceStart = performance.now();
  }
}

/** When the resync is due, its listing, and its backoff. One per syncer. */
export class Resync {
  readonly #o: ResyncOptions;
  readonly #backoff: RetryBackoff;
  #last = -Infinity;
  #pending: Pending | undefined;
  /** The background listing's work while it runs (even after {@link drop}). */
  #inFlight: Promise<void> | undefined;
  /** Settles when the run in flight ends; undefined between runs. */
  #run: { ended: Promise<void>; end: () => void } | undefined;

  /** A resync that is due at once. */
  constructor(options: ResyncOptions) {
    this.#o = options;
    this.#backoff = new RetryBackoff({ initialMs: 1000, maxMs: 30_000, clock: options.clock });
  }

  /** Whether the resync is due (and no failed listing is backing off). */
  due(): boolean {
    const now = this.#o.clock.now();
    return now - this.#last >= this.#o.periodMs && this.#backoff.ready();
  }

  /**
   * Milliseconds until a run should come for the resync (in the background:
   * until an idle run would start the listing); undefined while a background
   * listing is in flight.
   */
  dueInMs(): number | undefined {
    if (this.#pending) return undefined;
    const now = this.#o.clock.now();
    const at = this.#last + this.#o.periodMs + (this.#o.inBackground ? this.#alignMs() : 0);
    return Math.max(0, at - now, this.#backoff.nextDelay() ?? 0);
  }

  /** How long a due listing waits for a run that applied changes ({@link LISTING_ALIGN_MS}). */
  #alignMs(): number {
    return Math.min(LISTING_ALIGN_MS, this.#o.periodMs / 5);
  }

  /** HNS was read in full at `startedAt` (clock ms): the next resync is a period later. */
  done(startedAt: number): void {
    this.#last = startedAt;
  }

  /** Make the resync due now (HNS reported the network missing). */
  dueNow(): void {
    this.#last = -Infinity;
  }

  /** Drop a background listing in flight or arrived (HNS is read afresh). */
  drop(): void {
    this.#pending?.mark.end();
    this.#pending = undefined;
  }

  /** A run began: background work waits until {@link runEnded}. */
  runStarted(): void {
    if (this.#run) return;
    let end = () => {};
    const ended = new Promise<void>((resolve) => (end = resolve));
    this.#run = { ended, end };
  }

  /** The run ended: background work may go on. */
  runEnded(): void {
    const run = this.#run;
    this.#run = undefined;
    run?.end();
  }

  /** List now (foreground). */
  async list(networkName: string, networkId: string): Promise<ArrivedListing> {
    return { listing: await this.#list(networkName, networkId) };
  }

  /**
   * Background: start the listing if the resync is due and none is in
   * flight. `mark` starts the journals of the IDs known now; `sources` is
   * what the comparison reads. Returns a promise that settles (never
   * rejects) once the listing arrived and was compared in slices.
   *
   * `afterChanges`: the run ending applied changes, so the runner holds the
   * next change for minSyncPeriod and HNS lists while no event's run can
   * start (HNS may serialize a listing with writes). Else the listing waits
   * up to {@link LISTING_ALIGN_MS} (a fifth of the period at most) past due
   * for such a run.
   */
  start(
    networkName: string,
    networkId: string,
    mark: () => IdMark,
    sources: CompareSources,
    afterChanges = true,
  ): Promise<void> | undefined {
    if (this.#pending || !this.due()) return undefined;
    const overdue = this.#o.clock.now() - (this.#last + this.#o.periodMs);
    if (!afterChanges && overdue < this.#alignMs()) return undefined;
    const pending: Pending = { done: false, mark: mark() };
    this.#pending = pending;
    const pace = new Pace(() => this.#run?.ended);
    const settled = (async () => {
      const listing = await this.#list(networkName, networkId, pace);
      pending.listing = listing;
      if (listing.lbIds && listing.epIds && this.#pending === pending) {
        pending.candidates = await findCandidates(
          listing.lbIds,
          listing.epIds,
          pending.mark,
          sources,
          pace,
        );
      }
    })().catch((err) => void (pending.error = err ?? new Error("listing failed"))).finally(() => {
      pending.done = true;
      if (this.#inFlight === settled) this.#inFlight = undefined;
    });
    this.#inFlight = settled;
    return settled;
  }

  /**
   * Background: the listing, once it arrived and was compared, for the
   * network `networkId`. A failed one is logged and backs off; one taken
   * for a network HNS has replaced since is dropped.
   */
  take(networkId: string): ArrivedListing | undefined {
    const pending = this.#pending;
    if (!pending?.done) return undefined;
    this.#pending = undefined;
    if (pending.error !== undefined) {
      pending.mark.end();
      const retryInMs = this.#backoff.fail();
      this.#o.logger.warn("Periodic resync cannot list HNS objects; will retry", {
        err: pending.error instanceof Error ? pending.error.message : String(pending.error),
        retryInMs,
      });
      return undefined;
    }
    this.#backoff.reset();
    const { listing, candidates, mark } = pending;
    if (listing!.networkId !== networkId) {
      mark.end();
      return undefined;
    }
    if (!candidates) {
      mark.end();
      return { listing: listing! };
    }
    return { listing: listing!, since: { mark, candidates } };
  }

  /** Resolves once no background listing is in flight (stop the runs first). */
  async settled(): Promise<void> {
    this.runEnded();
    await this.#inFlight;
  }

  /** The three enumerations (network, LB and endpoint IDs). */
  async #list(networkName: string, networkId: string, pace?: Pace): Promise<Listing> {
    const { client } = this.#o;
    const startedAt = this.#o.clock.now();
    // Each call is made between runs (its HNS thread may have to be started).
    await pace?.pause();
    const networkIds = this.#o.networkIds
      ? await this.#o.networkIds(networkName)
      : [(await client.findNetworkByName(networkName))?.ID ?? ""].filter((x) => x !== "");
    if (!networkIds.some((id) => sameId(id, networkId))) {
      return { startedAt, networkId, networkIds };
    }
    // One after the other: HNS serializes them anyway.
    await pace?.pause();
    const lbIds = await client.listIds("LoadBalancer", pace);
    await pace?.pause();
    const epIds = await client.listIds("Endpoint", pace);
    const routes = await this.#o.readRoutes?.(networkId);
    return { startedAt, networkId, networkIds, lbIds, epIds, ...(routes ? { routes } : {}) };
  }
}

/** Something that paces a loop: {@link Pace}, or a test's stand-in. */
export type { Pacer };

/** `fn` for each item, pausing when `pace` says so. */
async function each<T>(items: Iterable<T>, pace: Pacer | undefined, fn: (item: T) => void) {
  for (const item of items) {
    fn(item);
    const wait = pace?.step();
    if (wait) await wait;
  }
}

/**
 * Background: the IDs a comparison needs to look at (see {@link
 * Candidates}), found in paced slices while runs may change the state
 * between them. IDs learnt since the mark are left out here already; the
 * run checks every candidate again.
 */
export async function findCandidates(
  lbIds: IdLookup,
  epIds: IdLookup,
  mark: IdMark,
  sources: CompareSources,
  pace?: Pacer,
): Promise<Candidates> {
  const { observed, ownership } = sources;
  const out: Candidates = {
    loadBalancers: new Set(),
    endpoints: new Set(),
    owned: new Set(),
    unlistedKnown: new Set(),
    unknownListed: new Set(),
  };
  await mark.prepare(pace);
  // Listed endpoints found known or cached below are left out of the last scan (the run looks
  // them up only when they were not known at the mark, and one known since was found in HNS).
  const listedEp = (id: string) => epIds.touch ? epIds.touch(id) : epIds.has(id);
  await each(observed.idKeys("LoadBalancer"), pace, (id) => {
    if (!lbIds.has(id) && mark.existed(id)) out.loadBalancers.add(id);
  });
  await each(observed.idKeys("Endpoint"), pace, (id) => {
    if (!listedEp(id) && mark.existed(id)) out.endpoints.add(id);
  });
  await each(ownership.upperCaseIds("LoadBalancer"), pace, (id) => {
    if (!lbIds.has(id) && mark.existed(id)) out.owned.add(id);
  });
  await each(ownership.upperCaseIds("Endpoint"), pace, (id) => {
    if (!epIds.has(id) && mark.existed(id)) out.owned.add(id);
  });
  await each(sources.knownIds(), pace, (id) => {
    if (!listedEp(id) && mark.existed(id)) out.unlistedKnown.add(id);
  });
  await each(epIds.untouched?.() ?? epIds, pace, (id) => {
    if (!sources.knows(id) && !observed.hasId(id)) out.unknownListed.add(id);
  });
  return out;
}

/**
 * Mark the IDs known now: those of the cache, the classified endpoints
 * (`known`) and the node context's local endpoints (`localIds`: the
 * context's, which is replaced, never changed; it may be iterated more than
 * once), by journals of what the cache and `known` learn and forget from
 * now on: O(1) now, O(change) later.
 */
export function markKnownIds(
  observed: ObservedCache,
  known: Pick<LocalEndpoints, "markIds" | "unmarkIds" | "knows">,
  localIds: Iterable<string>,
): IdMark {
  const cacheJournal = observed.markIds();
  const knownJournal = known.markIds();
  // Built when asked for an ID neither the cache nor `known` held (an object created since, say),
  // or by `prepare` in slices, as a node may hold thousands of pods.
  let local: Set<string> | undefined;
  const isLocal = (id: string) => {
    if (!local) {
      local = new Set<string>();
      for (const x of localIds) local.add(idKey(x));
    }
    return local.has(id);
  };
  return {
    existed: (id) =>
      cacheJournal.heldAtMark(id, observed.hasId(id)) ||
      knownJournal.heldAtMark(id, known.knows(id)) || isLocal(id),
    prepare: async (pace) => {
      if (local) return;
      const ids = new Set<string>();
      await each(localIds, pace, (x) => ids.add(idKey(x)));
      local ??= ids;
    },
    end: () => {
      observed.unmarkIds(cacheJournal);
      known.unmarkIds(knownJournal);
    },
  };
}

/** The {@link ListingScan} of an arrived background listing. */
export function listingScan(since: { mark: IdMark; candidates: Candidates }): ListingScan {
  return {
    existed: (id) => since.mark.existed(id),
    unlistedKnown: since.candidates.unlistedKnown,
    unknownListed: since.candidates.unknownListed,
  };
}

/**
 * What of the cache and the record a listing's ID sets no longer hold.
 * `since`, for a background listing: which IDs were known when it started
 * (only those can have vanished) and the candidates found in slices (only
 * those are looked at).
 */
export function vanishedFrom(
  lbIds: IdLookup,
  epIds: IdLookup,
  since: { mark: IdMark; candidates: Candidates } | undefined,
  observed: ObservedCache,
  ownership: OwnershipRecord,
): Vanished {
  const existed = (id: string) => since === undefined || since.mark.existed(idKey(id));
  const out: Vanished = { loadBalancers: [], endpoints: [], others: [], ownedIds: [] };
  const lbs = since
    ? [...since.candidates.loadBalancers].map((id) =>
      lbIds.has(id)
        ? undefined
        : observed.loadBalancerById(id) ?? observed.strayLoadBalancers.get(id)
    )
    : observed.loadBalancersMissingFrom(lbIds);
  for (const lb of lbs) {
    if (!lb || !existed(lb.id)) continue;
    if (observed.ownsLoadBalancer(lb)) out.loadBalancers.push(lb);
    else out.others.push({ kind: "LoadBalancer", id: lb.id });
  }
  const eps = since
    ? [...since.candidates.endpoints].map((id) =>
      epIds.has(id) ? undefined : observed.endpointById(id) ?? observed.strayEndpoints.get(id)
    )
    : observed.endpointsMissingFrom(epIds);
  for (const ep of eps) {
    if (!ep || !existed(ep.id)) continue;
    if (observed.ownsEndpoint(ep)) out.endpoints.push(ep);
    else out.others.push({ kind: "Endpoint", id: ep.id });
  }
  const owned = since
    ? [...since.candidates.owned].map((id) => ownership.get(id))
    : ownership.values();
  for (const o of owned) {
    if (!o) continue;
    const present = o.kind === "LoadBalancer" ? lbIds : epIds;
    if (!present.has(idKey(o.id)) && existed(o.id)) out.ownedIds.push(o.id);
  }
  return out;
}

/**
 * Forget what vanished, in the cache and the record; owned objects are
 * logged (the next full run recreates them). Returns the repairs due.
 */
export function forgetVanished(
  vanished: Vanished,
  observed: ObservedCache,
  ownership: OwnershipRecord,
  log: Logger,
): { loadBalancers: number; endpoints: number } {
  for (const o of vanished.others) {
    if (o.kind === "LoadBalancer") observed.removeLoadBalancerById(o.id);
    else observed.removeEndpointById(o.id);
  }
  for (const lb of vanished.loadBalancers) {
    observed.removeLoadBalancerById(lb.id);
    log.warn("Load balancer vanished from HNS; recreating it", { key: lb.key, id: lb.id });
  }
  for (const ep of vanished.endpoints) {
    observed.removeEndpointById(ep.id);
    log.warn("Endpoint vanished from HNS; recreating it", { key: ep.key, id: ep.id });
  }
  for (const id of vanished.ownedIds) ownership.remove(id);
  return { loadBalancers: vanished.loadBalancers.length, endpoints: vanished.endpoints.length };
}
