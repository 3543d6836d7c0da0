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
 * - In the background (the agent) the listing is not awaited by a run: the
 *   run that finds the resync due starts it as it ends, runs for changes go
 *   on meanwhile, and the first run after it arrived compares. The IDs known
 *   when it started are noted (as that run ends); only those can have
 *   vanished (what a later run created may be missing from the listing), and
 *   a listed ID known then but gone from the cache was deleted meanwhile, so
 *   it is not read as new. Building the ID sets yields to the event loop
 *   every millisecond, so a change's run is never held back long.
 * - A failed listing is logged and retried with backoff (1 s doubling to
 *   30 s).
 * - IDs compare in the cache's index form ({@link idKey}), so the comparison
 *   converts and hashes no string of the cache anew.
 *
 * @module
 */

import type { HnsClient } from "../hns/types.ts";
import type { Logger } from "../log/types.ts";
import { type Clock, RetryBackoff } from "./backoff.ts";
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
  lbIds?: Set<string>;
  /** Endpoint IDs ({@link idKey} form), in listing order. */
  epIds?: Set<string>;
  /** The network's RemoteSubnetRoute policies, when read ({@link ResyncOptions.readRoutes}). */
  routes?: RemoteSubnetRoute[];
}

/** A listing that arrived, ready to be compared. */
export interface ArrivedListing {
  /** The listing. */
  listing: Listing;
  /**
   * The IDs known when it started, when objects may have been learnt of
   * since (background): only those can have vanished.
   */
  before?: ReadonlySet<string>;
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

/** Longest run, ms, of a background listing's work between two yields to the event loop. */
const ID_SLICE_MS = 1;
/** IDs a background listing puts into its sets between two looks at the time. */
const ID_CHECK = 256;

/** A background listing: in flight until `done`, then its outcome. */
interface Pending {
  done: boolean;
  listing?: Listing;
  error?: unknown;
  before: Set<string>;
}

/** When the resync is due, its listing, and its backoff. One per syncer. */
export class Resync {
  readonly #o: ResyncOptions;
  readonly #backoff: RetryBackoff;
  #last = -Infinity;
  #pending: Pending | undefined;
  /** The background listing's HNS calls while they run (even after {@link drop}). */
  #inFlight: Promise<void> | undefined;

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

  /** Milliseconds until the resync is due; undefined while a background listing is in flight. */
  dueInMs(): number | undefined {
    if (this.#pending) return undefined;
    const now = this.#o.clock.now();
    return Math.max(0, this.#last + this.#o.periodMs - now, this.#backoff.nextDelay() ?? 0);
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
    this.#pending = undefined;
  }

  /** List now (foreground). */
  async list(networkName: string, networkId: string): Promise<ArrivedListing> {
    return { listing: await this.#list(networkName, networkId) };
  }

  /**
   * Background: start the listing if the resync is due and none is in
   * flight; `knownIds` are the IDs known now ({@link idKey} form). Returns a
   * promise that settles (never rejects) once the listing arrived.
   */
  start(
    networkName: string,
    networkId: string,
    knownIds: () => Set<string>,
  ): Promise<void> | undefined {
    if (this.#pending || !this.due()) return undefined;
    const pending: Pending = { done: false, before: knownIds() };
    this.#pending = pending;
    const settled = this.#list(networkName, networkId).then(
      (listing) => void (pending.listing = listing),
      (err) => void (pending.error = err ?? new Error("listing failed")),
    ).finally(() => {
      pending.done = true;
      if (this.#inFlight === settled) this.#inFlight = undefined;
    });
    this.#inFlight = settled;
    return settled;
  }

  /**
   * Background: the listing, once it arrived for the network `networkId`.
   * A failed one is logged and backs off; one taken for a network HNS has
   * replaced since is dropped.
   */
  take(networkId: string): ArrivedListing | undefined {
    const pending = this.#pending;
    if (!pending?.done) return undefined;
    this.#pending = undefined;
    if (pending.error !== undefined) {
      const retryInMs = this.#backoff.fail();
      this.#o.logger.warn("Periodic resync cannot list HNS objects; will retry", {
        err: pending.error instanceof Error ? pending.error.message : String(pending.error),
        retryInMs,
      });
      return undefined;
    }
    this.#backoff.reset();
    const listing = pending.listing!;
    return listing.networkId === networkId ? { listing, before: pending.before } : undefined;
  }

  /** Resolves once no background listing is in flight (stop the runs first). */
  async settled(): Promise<void> {
    await this.#inFlight;
  }

  /** The three enumerations (network, LB and endpoint IDs). */
  async #list(networkName: string, networkId: string): Promise<Listing> {
    const { client } = this.#o;
    const startedAt = this.#o.clock.now();
    const networkIds = this.#o.networkIds
      ? await this.#o.networkIds(networkName)
      : [(await client.findNetworkByName(networkName))?.ID ?? ""].filter((x) => x !== "");
    if (!networkIds.some((id) => sameId(id, networkId))) {
      return { startedAt, networkId, networkIds };
    }
    // One after the other: HNS serializes them anyway, and the first one's result is read on
    // this thread while the second one runs.
    const lbIds = await this.#idSet(await client.listLoadBalancerIds());
    const epIds = await this.#idSet(await client.listEndpointIds());
    const routes = await this.#o.readRoutes?.(networkId);
    return { startedAt, networkId, networkIds, lbIds, epIds, ...(routes ? { routes } : {}) };
  }

  /**
   * The {@link idKey} set of a listing. In the background it yields to the
   * event loop whenever it has worked {@link ID_SLICE_MS} in a row, so a
   * change's run, whose steps (watch event, timer, each HNS call) each wait
   * for a yield, is held by at most that much per step.
   */
  async #idSet(ids: readonly string[]): Promise<Set<string>> {
    const out = new Set<string>();
    if (!this.#o.inBackground) {
      for (const id of ids) out.add(idKey(id));
      return out;
    }
    let sliceStart = performance.now();
    for (let i = 0; i < ids.length; i += ID_CHECK) {
      if (i > 0 && performance.now() - sliceStart >= ID_SLICE_MS) {
        await new Promise((resolve) => setTimeout(resolve, 0));
        sliceStart = performance.now();
      }
      const end = Math.min(ids.length, i + ID_CHECK);
      for (let j = i; j < end; j++) out.add(idKey(ids[j]));
    }
    return out;
  }
}

/**
 * What of the cache and the record a listing's ID sets no longer hold.
 * `before`: the IDs known when it started, if objects may have been learnt
 * of since; only those can have vanished.
 */
export function vanishedFrom(
  lbIds: ReadonlySet<string>,
  epIds: ReadonlySet<string>,
  before: ReadonlySet<string> | undefined,
  observed: ObservedCache,
  ownership: OwnershipRecord,
): Vanished {
  const existed = (o: { id: string }) => before === undefined || before.has(idKey(o.id));
  const out: Vanished = { loadBalancers: [], endpoints: [], others: [], ownedIds: [] };
  for (const lb of observed.loadBalancersMissingFrom(lbIds)) {
    if (!existed(lb)) continue;
    if (observed.ownsLoadBalancer(lb)) out.loadBalancers.push(lb);
    else out.others.push({ kind: "LoadBalancer", id: lb.id });
  }
  for (const ep of observed.endpointsMissingFrom(epIds)) {
    if (!existed(ep)) continue;
    if (observed.ownsEndpoint(ep)) out.endpoints.push(ep);
    else out.others.push({ kind: "Endpoint", id: ep.id });
  }
  for (const owned of ownership.values()) {
    const present = owned.kind === "LoadBalancer" ? lbIds : epIds;
    if (!present.has(idKey(owned.id)) && existed(owned)) out.ownedIds.push(owned.id);
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
