/**
 * The sync cycle: what one run of the bounded-frequency runner does.
 *
 * - Start: wait until the cluster store has synced and the HNS network
 *   exists; read HNS once (the network's endpoints, all load balancers),
 *   adopt what already matches, delete owned leftovers, program the rest.
 * - Fast path: recompute the desired objects of the services that changed
 *   and apply the partial plan. No HNS reads, except when a changed service
 *   names a pod on this node whose CNI endpoint the node context lacks: then
 *   one Enumerate of the network's endpoint IDs and a query of each unknown
 *   ID, in the same run, so the LBs are updated once with the new pod.
 * - Periodic resync (every syncPeriod): enumerate network, load balancer and
 *   endpoint IDs (3 calls) and compare with the observed cache; owned objects
 *   that vanished are forgotten and recreated (drift repair) by a full run;
 *   without drift the next run stays partial (or idle); a new network ID
 *   (HNS restarted) rebuilds everything from a fresh read. IDs compare in
 *   HNS's upper-case form, so the comparison converts and hashes no string
 *   of the cache anew.
 * - With `resyncInBackground` (the agent) the enumerations are not awaited
 *   by a run: the run that finds the resync due starts them as it ends, runs
 *   for changes go on meanwhile, and the first run after they arrived
 *   compares. The run that starts them notes every ID known then (as it
 *   ends, so the O(cluster) snapshot is not in a later change's run); only
 *   those can have vanished (what a later run created may be missing from
 *   the listing), and a listed ID known then but gone from the cache was
 *   deleted meanwhile, so it is not read as new. A
 *   failed listing is logged and retried with backoff (1 s doubling to 30 s).
 * - A partial run costs what the change costs: the desired state is patched
 *   for the dirty services, reconcile looks up the observed cache's indexes,
 *   and the missing-local-endpoint bookkeeping is kept per service.
 * - After failures the next run reconciles everything from the cache (still
 *   no HNS reads), so retries need no bookkeeping per service.
 *
 * The ownership record is written once per run, after apply.
 *
 * @module
 */

import { HnsError, HResult } from "../hns/errors.ts";
import type { HcnEndpoint, HcnNetwork, HnsClient } from "../hns/types.ts";
import type { ClusterView, ObjectKey } from "../kube/model.ts";
import { type Logger, nullLogger } from "../log/types.ts";
import { type ApplyHooks, applyPlan, type ApplyResult } from "./apply.ts";
import { Backoff, type Clock, systemClock } from "./backoff.ts";
import {
  buildNodeContext,
  contextChanged,
  type ContextSettings,
  isRemoteEndpoint,
  localEndpointsOf,
  networkInfo,
  nodeIPsOf,
  onNetwork,
} from "./context.ts";
import { desiredState, placementsFor, safeDesiredForService, updateDesired } from "./desired.ts";
import { endpointKeyFromHns, isKeyError } from "./keys.ts";
import type {
  DesiredState,
  Diagnostic,
  NodeContext,
  Plan,
  PlanOp,
  ServiceDesired,
} from "./model.ts";
import { ObservedCache, sameId } from "./observed.ts";
import type { OwnershipRecord } from "./ownership.ts";
import { type Adoption, adoptObserved, reconcile } from "./reconcile.ts";

/** The changes the cluster store hands over per run. */
export interface ClusterChanges {
  /** Services whose service or endpoints changed. */
  services: Set<ObjectKey>;
  /** Whether the node record changed. */
  nodeChanged: boolean;
  /** How many services had service changes (metrics). */
  serviceChanges?: number;
  /** How many services had endpoint changes (metrics). */
  endpointChanges?: number;
  /** Per service, the earliest EndpointSlice last-change-trigger-time, epoch ms (metrics). */
  triggerTimes?: Map<ObjectKey, number>;
}

/** What the syncer needs of the cluster store (lib/kube's ClusterStore provides it). */
export interface ClusterSource extends ClusterView {
  /** True once Services and EndpointSlices finished their initial list. */
  hasSynced(): boolean;
  /** Whether the initial list of one kind completed. */
  isSynced(kind: "services" | "endpointSlices" | "node"): boolean;
  /** Hand over the pending changes and start a new round. */
  takeChanges(): ClusterChanges;
}

/** Options of {@link Syncer}. */
export interface SyncerOptions {
  /** The HNS client. */
  client: HnsClient;
  /** The cluster state. */
  cluster: ClusterSource;
  /** The ownership record (loaded). */
  ownership: OwnershipRecord;
  /** `--network-name`; empty picks the only Overlay/L2Bridge network. */
  networkName: string;
  /** Settings that go into the node context. */
  settings: ContextSettings;
  /** Time between periodic resyncs (syncPeriod), ms. */
  syncPeriodMs: number;
  /** HNS calls in flight at once during apply (default 1). */
  concurrency?: number;
  /** Logger. */
  logger?: Logger;
  /** Clock (default the wall clock). */
  clock?: Clock;
  /** Per-object backoff (default 1 s doubling to 5 min). */
  backoff?: Backoff;
  /**
   * IDs of the networks with this name, in one HNS call (Enumerate with a
   * Name filter). Without it the syncer uses `findNetworkByName`.
   */
  networkIds?: (name: string) => Promise<string[]>;
  /** Metrics hooks for apply. */
  applyHooks?: ApplyHooks;
  /**
   * Run the periodic resync's enumerations outside the run (default false:
   * a run that resyncs awaits them). A run that finds the resync due starts
   * them as it ends and reports {@link SyncReport.resyncListing}; the first
   * run after they arrived compares them with the cache. Runs in between
   * (changes) are not held back by HNS's listing.
   */
  resyncInBackground?: boolean;
}

/** Why a run did nothing yet. */
export type WaitingFor = "cluster" | "node" | "network";

/** What one run did. */
export interface SyncReport {
  /** `waiting` (not started), `start` (first programming), `full` or `partial`, `idle` (nothing to do). */
  kind: "waiting" | "start" | "full" | "partial" | "idle";
  /** What it waits for, when `waiting`. */
  waitingFor?: WaitingFor;
  /** Whether the periodic resync ran. */
  resynced: boolean;
  /** The plan applied, if any. */
  plan?: Plan;
  /** The outcome of apply, if any. */
  result?: ApplyResult;
  /** Owned objects found missing in HNS and scheduled for recreation. */
  repaired: { loadBalancers: number; endpoints: number };
  /** Services recomputed (all of them on a full run). */
  services: number;
  /** The cluster changes this run took over, if any. */
  changes?: ClusterChanges;
  /** Ask the runner for another run this many ms from now. */
  retryAfterMs?: number;
  /**
   * With {@link SyncerOptions.resyncInBackground}: this run started the
   * resync's listing; settles (never rejects) once it arrived, when the next
   * run should come to compare it.
   */
  resyncListing?: Promise<void>;
}

/** What the start of the agent reads and plans (also used by `plan`, which writes nothing). */
export interface StartState {
  /** The node context. */
  ctx: NodeContext;
  /** The desired state. */
  desired: DesiredState;
  /** Adoption of what HNS holds. */
  adoption: Adoption;
  /** The plan: adoptions first, then the full reconcile. */
  plan: Plan;
  /** Owned IDs that HNS no longer has. */
  vanishedOwned: string[];
  /** Every endpoint ID read (of the network). */
  endpointIds: string[];
}

/** The periodic resync's listing; the ID sets are absent when the network changed. */
interface Listing {
  /** When the listing started (clock ms). */
  startedAt: number;
  /** The network ID of the node context it was taken for. */
  networkId: string;
  /** IDs of the networks with the configured name. */
  networkIds: string[];
  /** Load balancer IDs, upper case. */
  lbIds?: Set<string>;
  /** Endpoint IDs, upper case, in listing order. */
  epIds?: Set<string>;
}

/** A background listing: in flight until `done`, then its outcome. */
interface PendingListing {
  done: boolean;
  listing?: Listing;
  error?: unknown;
  /** IDs known when it started (upper case). */
  before: Set<string>;
}

/** Longest run, ms, of a background resync's work between two yields to the event loop. */
const ID_SLICE_MS = 1;
/** IDs a background resync puts into its sets between two looks at the time. */
const ID_CHECK = 256;
/** Backoff key of ownership record writes. */
const STATE_FILE_KEY = "state-file";
/** How long to wait before looking for the network again. */
const NETWORK_RETRY_MS = 5_000;
/** Longest wait between lookups of CNI endpoints the cluster names but HNS lacks. */
const LOCAL_REFRESH_MAX_MS = 30_000;

/**
 * Find the network: by name, or (no name) the only Overlay/L2Bridge/L2Tunnel
 * network. Undefined when there is none (or several without a name).
 */
export async function findNetwork(
  client: HnsClient,
  name: string,
): Promise<HcnNetwork | undefined> {
  if (name) return await client.findNetworkByName(name);
  const candidates = (await client.listNetworks()).filter((n) =>
    ["overlay", "l2bridge", "l2tunnel"].includes(String(n.Type ?? "").toLowerCase())
  );
  return candidates.length === 1 ? candidates[0] : undefined;
}

/**
 * Read HNS once and plan the start: the network's endpoints and all load
 * balancers, the node context, the desired state, adoption and the full
 * reconcile. Makes no HNS writes.
 */
export async function readStart(
  client: HnsClient,
  network: HcnNetwork,
  cluster: ClusterView,
  ownership: OwnershipRecord,
  settings: ContextSettings,
): Promise<StartState> {
  const net = networkInfo(network);
  if (!net) throw new Error(`HNS network ${JSON.stringify(network.Name)} has no ID`);
  const features = await client.features();
  const endpoints = (await client.listEndpoints(net.id)).filter((ep) => onNetwork(ep, net.id));
  const lbs = await client.listLoadBalancers();
  const ctx = buildNodeContext({
    settings,
    network: net,
    features,
    endpoints,
    owns: (id) => ownership.owns(id),
    node: cluster.node(),
  });
  const desired = desiredState(cluster, ctx);
  const owned = {
    loadBalancers: ownership.list("LoadBalancer").map((o) => o.id),
    endpoints: ownership.list("Endpoint").map((o) => o.id),
  };
  const adoption = adoptObserved(lbs, endpoints, owned, desired);
  const present = new Set([...lbs, ...endpoints].map((o) => String(o.ID ?? "").toLowerCase()));
  const vanishedOwned = ownership.list().map((o) => o.id).filter((id) =>
    !present.has(id.toLowerCase())
  );
  const reconciled = reconcile(desired, adoption.observed, { features });
  return {
    ctx,
    desired,
    adoption,
    plan: { ops: [...adoption.adopted, ...reconciled.ops], conflicts: reconciled.conflicts },
    vanishedOwned,
    endpointIds: endpoints.map((ep) => String(ep.ID ?? "")).filter((id) => id !== ""),
  };
}

/** The sync cycle; see the module notes. One instance per agent. */
export class Syncer {
  readonly #o: SyncerOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #backoff: Backoff;
  readonly #observed = new ObservedCache();
  readonly #uncertain = new Set<string>();
  /** Upper-case IDs of every endpoint already classified (ours, foreign, local, other networks). */
  readonly #knownEndpointIds = new Set<string>();
  readonly #diagnostics = new Map<ObjectKey, string>();
  #conflicts = "";
  /** Backoff for looking up CNI endpoints the cluster names but HNS did not have. */
  readonly #localRefresh: Backoff;
  /** IPs of missing local endpoints already looked up once (later lookups go by backoff). */
  #lookedUpLocal = new Set<string>();
  #ctx: NodeContext | undefined;
  #networkName = "";
  #desired: DesiredState | undefined;
  /** `LocalEndpointNotFound` diagnostics of the desired state, by service (only those with any). */
  readonly #misses = new Map<ObjectKey, Diagnostic[]>();
  #needFull = true;
  #lastResync = -Infinity;
  /** The background resync's listing, from its start until a run took it. */
  #pending: PendingListing | undefined;
  /** Backoff of failed background listings, and when the next may start. */
  readonly #listingBackoff: Backoff;
  #listingRetryAt = -Infinity;
  /** The background listing's HNS calls while they run (even after a reset dropped it). */
  #listingInFlight: Promise<void> | undefined;
  #waiting: WaitingFor | undefined;
  #lastWaitLog = -Infinity;

  /** A syncer; nothing happens until {@link sync}. */
  constructor(options: SyncerOptions) {
    this.#o = options;
    this.#log = options.logger ?? nullLogger;
    this.#clock = options.clock ?? systemClock;
    this.#backoff = options.backoff ?? new Backoff({ clock: this.#clock });
    this.#listingBackoff = new Backoff({ initialMs: 1000, maxMs: 30_000, clock: this.#clock });
    this.#localRefresh = new Backoff({
      initialMs: 1000,
      maxMs: LOCAL_REFRESH_MAX_MS,
      clock: this.#clock,
    });
  }

  /** The observed cache (read-only use: metrics, tests). */
  get observed(): ObservedCache {
    return this.#observed;
  }

  /** The node context, once the network was found. */
  get context(): NodeContext | undefined {
    return this.#ctx;
  }

  /** The desired state of the last run, if any. */
  get desired(): DesiredState | undefined {
    return this.#desired;
  }

  /** Milliseconds until the next periodic resync is due, once started; undefined while its listing is in flight. */
  nextResyncInMs(): number | undefined {
    if (!this.#ctx || this.#pending) return undefined;
    const due = Math.max(this.#lastResync + this.#o.syncPeriodMs, this.#listingRetryAt);
    return Math.max(0, due - this.#clock.now());
  }

  /** Whether the first programming has happened. */
  get started(): boolean {
    return this.#ctx !== undefined;
  }

  /** One run. Throws only for failed HNS reads (the runner retries with backoff). */
  async sync(): Promise<SyncReport> {
    const { cluster } = this.#o;
    if (!cluster.hasSynced()) return this.#wait("cluster");
    if (
      !cluster.node() && !cluster.isSynced("node") && this.#o.settings.nodeIPOverride.length === 0
    ) {
      return this.#wait("node");
    }
    if (!this.#ctx) return await this.#start();

    let repaired = { loadBalancers: 0, endpoints: 0 };
    let resynced = false;
    const outcome = this.#o.resyncInBackground
      ? await this.#takeListing()
      : this.#resyncDue()
      ? await this.#resync()
      : undefined;
    if (outcome === "restart") return await this.#start();
    if (outcome) {
      repaired = outcome;
      resynced = true;
    } else if (this.#localRefresh.size > 0 && this.#localRefresh.ready("local")) {
      await this.#refreshLocalEndpoints();
    }
    const report = await this.#run(repaired, resynced);
    const listing = this.#startListing();
    if (listing) report.resyncListing = listing;
    return report;
  }

  /** A run after the resync step: take the changes, recompute, reconcile, apply. */
  async #run(
    repaired: { loadBalancers: number; endpoints: number },
    resynced: boolean,
  ): Promise<SyncReport> {
    const { cluster } = this.#o;
    const changes = cluster.takeChanges();
    const ctx = this.#ctx;
    if (changes.nodeChanged) this.#updateNode();
    const full = this.#needFull || this.#ctx !== ctx || !this.#desired;
    if (!full && changes.services.size === 0) {
      // Nothing to apply, but a resync may have changed the record, or an earlier write failed.
      await this.#flush();
      return {
        kind: "idle",
        resynced,
        repaired,
        services: 0,
        changes,
        retryAfterMs: this.#retryDelay(),
      };
    }
    let changed: Map<ObjectKey, ServiceDesired | undefined> | undefined;
    if (full) this.#setDesired(desiredState(cluster, this.#ctx!));
    else changed = this.#recompute(changes.services);
    // A pod on this node the cluster names but the node context lacks: its CNI endpoint is
    // most likely new. Look it up now (one Enumerate of the network's endpoint IDs, a query
    // of each unknown ID), so the LBs are programmed once with it rather than twice.
    const before = this.#ctx;
    if (this.#newLocalMisses()) {
      try {
        await this.#refreshLocalEndpoints();
      } catch (err) {
        // The changes were taken: apply them now without the pod, look it up again later.
        this.#log.warn("Cannot look up new CNI endpoints; will retry", {
          err: err instanceof Error ? err.message : String(err),
        });
        this.#localRefresh.fail("local");
      }
    }
    if (this.#ctx !== before) {
      this.#setDesired(desiredState(cluster, this.#ctx!));
      changed = undefined;
    }
    this.#lookedUpLocal = this.#localMisses();

    let plan: Plan;
    let services: number;
    let kind: SyncReport["kind"];
    if (!changed) {
      this.#logDiagnostics(this.#desired!.services.values(), true);
      plan = reconcile(this.#desired!, this.#observed, { features: this.#ctx!.features });
      services = this.#desired!.services.size;
      kind = "full";
    } else {
      this.#logDiagnostics([...changed.values()].filter((s) => s !== undefined), false);
      for (const [key, sd] of changed) if (!sd) this.#diagnostics.delete(key);
      plan = reconcile(this.#desired!, this.#observed, {
        features: this.#ctx!.features,
        dirty: changes.services,
      });
      services = changes.services.size;
      kind = "partial";
    }
    const result = await this.#apply(plan);
    return {
      kind,
      resynced,
      plan,
      result,
      repaired,
      services,
      changes,
      retryAfterMs: this.#retryDelay(result),
    };
  }

  /** Recompute the desired objects of these services into the desired state. */
  #recompute(keys: ReadonlySet<ObjectKey>): Map<ObjectKey, ServiceDesired | undefined> {
    const { cluster } = this.#o;
    const changed = new Map<ObjectKey, ServiceDesired | undefined>();
    const placements = placementsFor(this.#ctx!);
    for (const key of keys) {
      const svc = cluster.service(key);
      changed.set(
        key,
        svc
          ? safeDesiredForService(svc, cluster.slicesFor(key), this.#ctx!, placements)
          : undefined,
      );
    }
    this.#setDesired(updateDesired(this.#desired!, changed, this.#ctx!), changed);
    return changed;
  }

  /**
   * Take a new desired state and bring the index of missing local endpoints
   * up to date: for the changed services only, or (no `changed`) for all.
   */
  #setDesired(
    desired: DesiredState | undefined,
    changed?: ReadonlyMap<ObjectKey, ServiceDesired | undefined>,
  ): void {
    this.#desired = desired;
    if (!changed) this.#misses.clear();
    const services = changed ? changed.values() : desired?.services.values() ?? [];
    if (changed) { for (const key of changed.keys()) this.#misses.delete(key); }
    for (const sd of services) {
      if (!sd) continue;
      const misses = sd.diagnostics.filter((d) => d.reason === "LocalEndpointNotFound");
      if (misses.length > 0) this.#misses.set(sd.serviceKey, misses);
    }
  }

  #wait(what: WaitingFor, retryAfterMs?: number): SyncReport {
    const now = this.#clock.now();
    if (this.#waiting !== what || now - this.#lastWaitLog >= 60_000) {
      const messages: Record<WaitingFor, string> = {
        cluster: "Waiting for the initial list of Services and EndpointSlices",
        node: "Waiting for this node's Node object",
        network: "Waiting for the HNS network to exist",
      };
      const fields = what === "network"
        ? { network: this.#o.networkName || "(any Overlay/L2Bridge)" }
        : what === "node"
        ? { node: this.#o.settings.nodeName }
        : {};
      this.#log.info(messages[what], fields);
      this.#lastWaitLog = now;
    }
    this.#waiting = what;
    return {
      kind: "waiting",
      waitingFor: what,
      resynced: false,
      repaired: { loadBalancers: 0, endpoints: 0 },
      services: 0,
      retryAfterMs,
    };
  }

  async #start(): Promise<SyncReport> {
    const { client, cluster, ownership } = this.#o;
    const network = await findNetwork(client, this.#o.networkName);
    if (!network) return this.#wait("network", NETWORK_RETRY_MS);
    this.#waiting = undefined;
    // Taken before reading so that changes arriving meanwhile make a later run.
    const changes = cluster.takeChanges();
    const startedAt = this.#clock.now();
    const start = await readStart(client, network, cluster, ownership, this.#o.settings);
    this.#ctx = start.ctx;
    this.#networkName = start.ctx.network.name;
    this.#setDesired(start.desired);
    this.#observed.replace(start.adoption.observed);
    this.#knownEndpointIds.clear();
    for (const id of start.endpointIds) this.#knownEndpointIds.add(canon(id));
    for (const skipped of start.adoption.skipped) {
      this.#log.warn("Skipping an HNS object hnsproxy cannot interpret; left alone", {
        kind: skipped.kind,
        id: skipped.id,
        reason: skipped.reason,
      });
    }
    if (start.vanishedOwned.length > 0) {
      this.#log.info("Forgetting owned HNS objects that no longer exist", {
        count: start.vanishedOwned.length,
      });
      for (const id of start.vanishedOwned) ownership.remove(id);
    }
    this.#lookedUpLocal = this.#localMisses();
    this.#logDiagnostics(start.desired.services.values(), true);
    this.#log.info("Programming HNS", {
      network: start.ctx.network.name,
      networkId: start.ctx.network.id,
      type: start.ctx.network.type,
      loadBalancers: start.desired.loadBalancers.size,
      remoteEndpoints: start.desired.remoteEndpoints.size,
      adopted: start.adoption.adopted.length,
      operations: start.plan.ops.length - start.adoption.adopted.length,
    });
    const result = await this.#apply(start.plan);
    this.#lastResync = startedAt;
    return {
      kind: "start",
      resynced: true,
      plan: start.plan,
      result,
      repaired: { loadBalancers: 0, endpoints: 0 },
      services: start.desired.services.size,
      changes,
      retryAfterMs: this.#retryDelay(result),
    };
  }

  /** Whether the periodic resync is due. */
  #resyncDue(): boolean {
    const now = this.#clock.now();
    return now - this.#lastResync >= this.#o.syncPeriodMs && now >= this.#listingRetryAt;
  }

  /** Background mode: start the resync's listing if it is due and none is in flight. */
  #startListing(): Promise<void> | undefined {
    if (!this.#o.resyncInBackground || this.#pending || !this.#ctx || !this.#resyncDue()) {
      return undefined;
    }
    const pending: PendingListing = { done: false, before: this.#knownIds() };
    this.#pending = pending;
    const settled = this.#list().then(
      (listing) => void (pending.listing = listing),
      (err) => void (pending.error = err ?? new Error("listing failed")),
    ).finally(() => {
      pending.done = true;
      if (this.#listingInFlight === settled) this.#listingInFlight = undefined;
    });
    this.#listingInFlight = settled;
    return settled;
  }

  /**
   * Resolves once no background listing is in flight. Stop the runner first,
   * then wait for this before closing the HNS client.
   */
  async listingSettled(): Promise<void> {
    await this.#listingInFlight;
  }

  /**
   * Background mode, at the start of a run: compare the listing if it has
   * arrived (the outcome as {@link Syncer.#resync}'s).
   */
  async #takeListing(): Promise<
    "restart" | { loadBalancers: number; endpoints: number } | undefined
  > {
    const pending = this.#pending;
    if (!pending) return undefined;
    if (!pending.done) return undefined;
    this.#pending = undefined;
    if (pending.error !== undefined) {
      const retryInMs = this.#listingBackoff.fail("listing", pending.error);
      this.#listingRetryAt = this.#clock.now() + retryInMs;
      this.#log.warn("Periodic resync cannot list HNS objects; will retry", {
        err: pending.error instanceof Error ? pending.error.message : String(pending.error),
        retryInMs,
      });
      return undefined;
    }
    this.#listingBackoff.reset("listing");
    this.#listingRetryAt = -Infinity;
    const listing = pending.listing!;
    // Taken for a context HNS has replaced since: read afresh by then.
    if (listing.networkId !== this.#ctx!.network.id) return undefined;
    return await this.#compare(listing, pending.before);
  }

  /**
   * Upper-case IDs of every object the syncer knows of (cache, endpoint
   * maps). Owned IDs the cache lacks are left out (reading the record costs
   * more): such an entry then outlives one resync more, nothing worse.
   */
  #knownIds(): Set<string> {
    const o = this.#observed;
    const out = idsOf(
      o.loadBalancers,
      o.foreignLoadBalancers,
      o.strayLoadBalancers,
      o.endpoints,
      o.foreignEndpoints,
      o.strayEndpoints,
    );
    for (const id of this.#knownEndpointIds) out.add(id);
    for (const id of this.#ctx?.localEndpoints.values() ?? []) out.add(canon(id));
    return out;
  }

  /** Compare HNS's IDs with the cache: "restart" when the network changed, else the repairs. */
  async #resync(): Promise<"restart" | { loadBalancers: number; endpoints: number }> {
    return await this.#compare(await this.#list());
  }

  /** The periodic resync's three enumerations (network, LB and endpoint IDs). */
  async #list(): Promise<Listing> {
    const { client } = this.#o;
    const networkId = this.#ctx!.network.id;
    const startedAt = this.#clock.now();
    const networkIds = this.#o.networkIds
      ? await this.#o.networkIds(this.#networkName)
      : [(await client.findNetworkByName(this.#networkName))?.ID ?? ""].filter((x) => x !== "");
    if (!networkIds.some((id) => sameId(id, networkId))) {
      return { startedAt, networkId, networkIds };
    }
    // One after the other: HNS serializes them anyway, and the first one's result is read on
    // this thread while the second one runs.
    const lbIds = await this.#idSet(await client.listLoadBalancerIds());
    const epIds = await this.#idSet(await client.listEndpointIds());
    return { startedAt, networkId, networkIds, lbIds, epIds };
  }

  /**
   * The upper-case set of a listing. In the background it yields to the
   * event loop whenever it has worked {@link ID_SLICE_MS} in a row, so a
   * change's run, whose steps (watch event, timer, each HNS call) each wait
   * for a yield, is held by at most that much per step, not by a whole slice
   * of a large listing.
   */
  async #idSet(ids: readonly string[]): Promise<Set<string>> {
    const out = new Set<string>();
    if (!this.#o.resyncInBackground) {
      for (const id of ids) out.add(canon(id));
      return out;
    }
    let sliceStart = performance.now();
    for (let i = 0; i < ids.length; i += ID_CHECK) {
      if (i > 0 && performance.now() - sliceStart >= ID_SLICE_MS) {
        await new Promise((resolve) => setTimeout(resolve, 0));
        sliceStart = performance.now();
      }
      const end = Math.min(ids.length, i + ID_CHECK);
      for (let j = i; j < end; j++) out.add(canon(ids[j]));
    }
    return out;
  }

  /**
   * Compare a listing with the cache and the record. `before`: the IDs (upper
   * case) known when the listing started, if the syncer learnt of objects
   * since then; those may be missing from it without having vanished.
   */
  async #compare(
    listing: Listing,
    before?: ReadonlySet<string>,
  ): Promise<"restart" | { loadBalancers: number; endpoints: number }> {
    const { ownership } = this.#o;
    const ctx = this.#ctx!;
    if (!listing.lbIds || !listing.epIds) {
      this.#log.warn("HNS network changed or vanished (HNS restarted?); reading HNS afresh", {
        network: this.#networkName,
        oldId: ctx.network.id,
        newIds: listing.networkIds.join(","),
      });
      this.#reset();
      return "restart";
    }
    const { lbIds, epIds } = listing;
    this.#log.debug(2, "Periodic resync: comparing HNS IDs with the observed cache");
    const observed = this.#observed;
    const existed = (id: string) => before === undefined || before.has(id);
    const gone = <T extends { id: string }>(
      ids: ReadonlySet<string>,
      ...maps: ReadonlyMap<unknown, T>[]
    ) => missingFrom(ids, ...maps).filter((o) => existed(canon(o.id)));
    const repaired = { loadBalancers: 0, endpoints: 0 };
    // Objects of others (and strays) that vanished: the LBs and endpoints they blocked or
    // stood in for are decided differently now, so the next run reconciles everything.
    let othersVanished = 0;
    for (const lb of gone(lbIds, observed.foreignLoadBalancers, observed.strayLoadBalancers)) {
      if (observed.removeLoadBalancerById(lb.id)) othersVanished++;
    }
    for (const lb of gone(lbIds, observed.loadBalancers)) {
      observed.removeLoadBalancerById(lb.id);
      this.#log.warn("Load balancer vanished from HNS; recreating it", { key: lb.key, id: lb.id });
      ownership.remove(lb.id);
      repaired.loadBalancers++;
    }
    for (const ep of gone(epIds, observed.foreignEndpoints, observed.strayEndpoints)) {
      if (observed.removeEndpointById(ep.id)) othersVanished++;
    }
    for (const ep of gone(epIds, observed.endpoints)) {
      observed.removeEndpointById(ep.id);
      this.#log.warn("Endpoint vanished from HNS; recreating it", { key: ep.key, id: ep.id });
      ownership.remove(ep.id);
      repaired.endpoints++;
    }
    const goneOwned: string[] = [];
    for (const owned of ownership.values()) {
      const present = owned.kind === "LoadBalancer" ? lbIds : epIds;
      const id = canon(owned.id);
      if (!present.has(id) && existed(id)) goneOwned.push(owned.id);
    }
    for (const id of goneOwned) ownership.remove(id);
    // A changed node context (CNI endpoints) or a new endpoint of others holding a wanted
    // key sets #needFull there. Without drift the next run stays partial (or idle).
    await this.#refreshEndpoints(epIds, false, before);
    if (repaired.loadBalancers + repaired.endpoints + othersVanished > 0) this.#needFull = true;
    this.#lastResync = listing.startedAt;
    return repaired;
  }

  /** {@link Syncer.#refreshEndpoints} from one Enumerate of the network's endpoint IDs. */
  async #refreshLocalEndpoints(): Promise<void> {
    const ids = await this.#o.client.listEndpointIds(this.#ctx!.network.id);
    await this.#refreshEndpoints(new Set(ids.map(canon)), true);
  }

  /**
   * Bring the CNI endpoint map up to date from an endpoint ID listing (upper
   * case): drop IDs that vanished, read the ones never seen (new pods on this
   * node, or remote endpoints of others). `networkOnly`: the listing holds
   * the network's endpoints only, so IDs of other networks are not forgotten.
   * `before`: the IDs known when the listing started, if the syncer learnt of
   * objects since then (only those can have vanished; one known then that
   * the cache lacks now was deleted meanwhile, so it is not read as new).
   */
  async #refreshEndpoints(
    present: ReadonlySet<string>,
    networkOnly: boolean,
    before?: ReadonlySet<string>,
  ): Promise<void> {
    const ctx = this.#ctx!;
    const existed = (id: string) => before === undefined || before.has(id);
    const local = new Map(ctx.localEndpoints);
    for (const [ip, id] of local) {
      const c = canon(id);
      if (!present.has(c) && existed(c)) local.delete(ip);
    }
    const known = this.#knownEndpointIds;
    if (!networkOnly) {
      // Deleting the current entry while iterating a Set is safe.
      for (const id of known) if (!present.has(id) && existed(id)) known.delete(id);
    }
    const fresh: HcnEndpoint[] = [];
    const localIds = new Set<string>();
    for (const id of local.values()) localIds.add(canon(id));
    // A resync checks many IDs (after a cold start, every endpoint created since): one set of
    // the cache's endpoint IDs beats a lookup by ID each.
    let cached: Set<string> | undefined;
    const inCache = (id: string) => {
      if (networkOnly) return this.#observed.endpointById(id) !== undefined;
      cached ??= idsOf(this.#observed.endpoints, this.#observed.foreignEndpoints);
      return cached.has(id);
    };
    for (const id of present) {
      if (known.has(id) || localIds.has(id)) continue;
      if (inCache(id)) {
        // Ours (or of others, already classified): no need to look it up again next time.
        known.add(id);
        continue;
      }
      if (before?.has(id)) continue;
      const ep = await this.#o.client.getEndpoint(id);
      known.add(id);
      if (ep && onNetwork(ep, ctx.network.id)) fresh.push(ep);
    }
    for (
      const [ip, id] of localEndpointsOf(fresh, ctx.network.id, (x) => this.#o.ownership.owns(x))
    ) {
      if (!local.has(ip)) local.set(ip, id);
    }
    const sourceVips = new Set(ctx.sourceVips);
    for (const ep of fresh) {
      if (!isRemoteEndpoint(ep) || !ep.ID || this.#o.ownership.owns(ep.ID)) continue;
      const key = endpointKeyFromHns(ep, sourceVips);
      if (isKeyError(key)) continue;
      this.#observed.setForeignEndpoint({ key, id: ep.ID, hns: ep });
      if (this.#desired?.remoteEndpoints.has(key)) this.#needFull = true;
    }
    const next = { ...ctx, localEndpoints: local };
    if (contextChanged(ctx, next)) {
      this.#log.debug(2, "CNI endpoints changed", {
        before: ctx.localEndpoints.size,
        after: local.size,
      });
      this.#ctx = next;
      this.#needFull = true;
      // The recompute decides whether anything is still missing.
      this.#localRefresh.reset("local");
    } else if (this.#missingLocalEndpoints() > 0) {
      this.#localRefresh.fail("local");
    }
  }

  /** IPs of local endpoints the desired state wants but the node context lacks. */
  #localMisses(): Set<string> {
    const out = new Set<string>();
    for (const misses of this.#misses.values()) {
      for (const d of misses) if (d.endpointIp) out.add(d.endpointIp);
    }
    return out;
  }

  /** Whether the desired state misses a local endpoint not looked up since it went missing. */
  #newLocalMisses(): boolean {
    for (const ip of this.#localMisses()) if (!this.#lookedUpLocal.has(ip)) return true;
    return false;
  }

  /** Local endpoints the last computation wanted but HNS did not have. */
  #missingLocalEndpoints(): number {
    let n = 0;
    for (const misses of this.#misses.values()) n += misses.length;
    return n;
  }

  #updateNode(): void {
    const ctx = this.#ctx!;
    const node = this.#o.cluster.node();
    const next: NodeContext = { ...ctx, nodeIPs: nodeIPsOf(this.#o.settings, node) };
    if (node?.zone) next.zone = node.zone;
    else delete next.zone;
    if (contextChanged(ctx, next)) {
      this.#log.info("Node changed; recomputing every service", {
        nodeIPs: next.nodeIPs.join(","),
        zone: next.zone,
      });
      this.#ctx = next;
      this.#needFull = true;
    }
  }

  #reset(): void {
    this.#ctx = undefined;
    this.#setDesired(undefined);
    this.#observed.clear();
    this.#knownEndpointIds.clear();
    this.#uncertain.clear();
    this.#needFull = true;
    this.#pending = undefined;
  }

  async #apply(plan: Plan): Promise<ApplyResult> {
    const result = await applyPlan(plan, {
      client: this.#o.client,
      observed: this.#observed,
      ownership: this.#o.ownership,
      backoff: this.#backoff,
      existingEndpoints: this.#desired?.existingEndpoints ?? new Map(),
      logger: this.#log,
      concurrency: this.#o.concurrency,
      hooks: this.#o.applyHooks,
      uncertain: this.#uncertain,
    });
    const pending = result.failed.length + result.deferred.length + result.conflicts.length;
    this.#needFull = pending > 0;
    if (result.failed.some((f) => networkGone(f.error))) {
      this.#log.warn("HNS reports the network missing; reading HNS afresh on the next run");
      this.#lastResync = -Infinity;
    }
    if (this.#missingLocalEndpoints() === 0) this.#localRefresh.reset("local");
    else if (this.#localRefresh.size === 0) this.#localRefresh.fail("local");
    await this.#flush();
    if (plan.ops.length > 0 || pending > 0) {
      this.#log.info("Applied HNS changes", {
        ...countOps(result.applied),
        failed: result.failed.length,
        deferred: result.deferred.length,
        conflicts: result.conflicts.length,
        writes: result.writes,
      });
    }
    return result;
  }

  /** Write the ownership record if it changed; a failure is logged and retried with backoff. */
  async #flush(): Promise<void> {
    try {
      await this.#o.ownership.flush();
      this.#backoff.reset(STATE_FILE_KEY);
    } catch (err) {
      const retryInMs = this.#backoff.fail(STATE_FILE_KEY, err);
      this.#log.error("Cannot write the ownership record; will retry", {
        path: this.#o.ownership.path,
        err: err instanceof Error ? err.message : String(err),
        retryInMs,
      });
    }
  }

  /** When the next run should come without a cluster change. */
  #retryDelay(result?: ApplyResult): number | undefined {
    const delays: number[] = [];
    if (result?.retryAfterMs !== undefined) delays.push(result.retryAfterMs);
    if (this.#ctx && this.#o.ownership.dirty) {
      delays.push(this.#backoff.get(STATE_FILE_KEY) ? this.#backoff.nextDelay() ?? 1000 : 1000);
    }
    const local = this.#localRefresh.nextDelay();
    if (local !== undefined) delays.push(local);
    return delays.length > 0 ? Math.min(...delays) : undefined;
  }

  #logDiagnostics(services: Iterable<ServiceDesired>, all: boolean): void {
    const seen = new Set<ObjectKey>();
    for (const sd of services) {
      seen.add(sd.serviceKey);
      const text = sd.diagnostics.map((d) => d.message).join("\n");
      if (this.#diagnostics.get(sd.serviceKey) === text) continue;
      this.#diagnostics.set(sd.serviceKey, text);
      for (const d of sd.diagnostics) logDiagnostic(this.#log, d);
    }
    if (all) {
      for (const key of [...this.#diagnostics.keys()]) {
        if (!seen.has(key)) this.#diagnostics.delete(key);
      }
    }
    const conflicts = this.#desired?.conflicts ?? [];
    const text = conflicts.map((d) => d.message).join("\n");
    if (text !== this.#conflicts) {
      this.#conflicts = text;
      for (const d of conflicts) logDiagnostic(this.#log, d);
    }
  }
}

/**
 * An ID in upper case, for case-insensitive comparison (HNS IDs are GUIDs).
 * HNS, the client and the ownership record use this form already, and
 * upper-casing such a string returns it unchanged: no copy, and its cached
 * hash is reused by every set it is looked up in.
 */
function canon(id: string): string {
  return id.toUpperCase();
}

/** Upper-case IDs of the objects of these maps. */
function idsOf(...maps: ReadonlyMap<unknown, { id: string }>[]): Set<string> {
  const out = new Set<string>();
  for (const m of maps) for (const o of m.values()) out.add(canon(o.id));
  return out;
}

/** Objects of these maps whose ID is not in `ids` (upper-case IDs, e.g. an HNS listing). */
function missingFrom<T extends { id: string }>(
  ids: ReadonlySet<string>,
  ...maps: ReadonlyMap<unknown, T>[]
): T[] {
  const out: T[] = [];
  for (const m of maps) for (const o of m.values()) if (!ids.has(canon(o.id))) out.push(o);
  return out;
}

function logDiagnostic(log: Logger, d: Diagnostic): void {
  const fields = { service: d.serviceKey, field: d.field, reason: d.reason };
  if (d.level === "error") log.error(d.message, fields);
  else log.warn(d.message, fields);
}

function networkGone(err: unknown): boolean {
  return err instanceof HnsError && err.hresult === HResult.NETWORK_NOT_FOUND;
}

/** Operation counts by kind, for log lines and metrics. */
export function countOps(ops: readonly PlanOp[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const op of ops) out[op.op] = (out[op.op] ?? 0) + 1;
  return out;
}
