/**
 * One run of the sync loop, always in this order:
 *
 * 1. wait until the cluster store has synced, the Node is known (or its IPs
 *    are given) and the HNS network exists;
 * 2. start, once per network: read HNS, adopt, plan everything (start.ts);
 * 3. take the periodic resync's listing and forget what vanished
 *    (resync.ts); a new network ID starts over at 2;
 * 4. take the cluster's changes;
 * 5. the node context: a changed Node ({@link contextForNode}), the root
 *    host endpoint when health-check VIP LBs are computed, CNI endpoints of
 *    new local pods (local_endpoints.ts);
 * 6. the desired state: of the changed services, or of all after drift,
 *    failures or a changed context;
 * 7. reconcile with the observed cache (the changed services' keys, or all);
 * 8. apply (apply.ts: each create is in the ownership record on disk before
 *    it is issued); 9. write the rest of the ownership record; 10. report.
 *
 * A run reads HNS only to start, to take a resync's listing, to look up the
 * CNI endpoint of a pod on this node that the node context lacks, (with
 * `forwardHealthCheckVip`) the root endpoint when its LBs are computed, and
 * on overlay the network's routes when a remote pod waits for its placement
 * (placement_waits.ts: rate-limited, one call through the network's handle
 * kept open, network_routes.ts; the resync re-reads them too). After
 * failures the next run reconciles everything from the cache, so retries
 * need no bookkeeping per service.
 *
 * The synced-inputs digest (synced_inputs.ts): a run that writes HNS makes
 * the recorded digest invalid on disk before its first write (and writes
 * nothing if it cannot); a start, an idle run a sync period after the last
 * write, and the agent's stop record it when the last run left everything
 * applied and no cluster change waits. A first start whose early read and
 * inputs match it is a fast start: the run reports the start (the agent is
 * ready: HNS holds what the cluster asks for) without building anything,
 * and the next run is the start proper from the same read, which must find
 * nothing to write but the cluster's changes since (else a warning). A
 * restart's build (that one, or one before ready) collects the heap before
 * it fills the observed cache (`collectHeap`), so that the fill, its largest
 * step, adds nothing to the garbage of the steps before; after a fast start
 * (ready, no time until ready at stake) also once its trusted read has the
 * owned endpoints (trusted_start.ts), before the load balancers and the
 * adoption add to their garbage. A start's creates have no compacting
 * collection: one is long at that heap (on the main thread, in the start's
 * time) and, while it moves the live objects, holds both copies, a memory
 * peak of its own; V8 collects meanwhile as it needs. A start of
 * {@link START_COLLECT_OPS} operations or more makes two regular ones: once
 * its endpoints are created, before its load balancers (which then fill the
 * pages the endpoints' garbage leaves rather than grow the heap past it), and
 * once all its writes are made, before the ownership record's write: the
 * heap is then at V8's limit with the writes' garbage, and what follows (the
 * record, the synced inputs, the end of the run) would otherwise grow it past
 * the peak of the creates. The agent compacts once the start is done
 * (lib/agent.ts).
 *
 * When the next run should come without a cluster change is decided in one
 * place, {@link Syncer}'s `#next`, and handed to the runner as
 * {@link NextRun}: failed writes, an unwritten ownership record and pending
 * lookups retry by their backoff; the resync comes every syncPeriod; a
 * background listing that arrived asks for a run to compare it.
 *
 * @module
 */

import { HnsError, HResult } from "../hns/errors.ts";
import type { HnsClient } from "../hns/types.ts";
import type { ClusterView, ObjectKey } from "../kube/model.ts";
import type { ChangeSet } from "../kube/store.ts";
import { type Logger, nullLogger } from "../log/types.ts";
import { type ApplyHooks, applyPlan, type ApplyResult } from "./apply.ts";
import { Backoff, type Clock, RetryBackoff, systemClock } from "./backoff.ts";
import { ConflictTracker, type ConflictTrackerOptions } from "./conflicts.ts";
import {
  contextForNode,
  contextForPlacements,
  type ContextSettings,
  contextWithRoutes,
} from "./context.ts";
import { desiredState, placementsFor, safeDesiredForService, updateDesired } from "./desired.ts";
import { DiagnosticsLog } from "./diagnostics_log.ts";
import { NetworkRoutes } from "./network_routes.ts";
import { isOverlay } from "./placement.ts";
import { PlacementWaits } from "./placement_waits.ts";
import { LocalEndpoints, type LookupResult } from "./local_endpoints.ts";
import type {
  DesiredState,
  NodeContext,
  Plan,
  PlanOp,
  RemoteSubnetRoute,
  ServiceDesired,
} from "./model.ts";
import { ObservedCache } from "./observed.ts";
import type { OwnershipRecord } from "./ownership.ts";
import { reconcile } from "./reconcile.ts";
import {
  type ArrivedListing,
  forgetVanished,
  type IdMark,
  listingScan,
  markKnownIds,
  Resync,
  vanishedFrom,
} from "./resync.ts";
import {
  type EarlyStart,
  fastStartCheck,
  findNetwork,
  type HnsPreread,
  readEarly,
  readStart,
  type StartReadMode,
  startReadMode,
} from "./start.ts";
import {
  ClusterDigest,
  contextDigest,
  contextEndpointIds,
  differingParts,
  type SyncedInputs,
  type SyncedInputsFile,
} from "./synced_inputs.ts";
import { errorMessage } from "../errors.ts";

/** What the syncer needs of the cluster store (lib/kube's ClusterStore provides it). */
export interface ClusterSource extends ClusterView {
  /** True once Services and EndpointSlices finished their initial list. */
  hasSynced(): boolean;
  /** Whether the initial list of one kind completed. */
  isSynced(kind: "services" | "endpointSlices" | "node"): boolean;
  /** Hand over the pending changes and start a new round. */
  takeChanges(): ChangeSet;
  /** Whether changes wait to be taken (unknown: the synced-inputs digest is not recorded). */
  hasPendingChanges?(): boolean;
}

/** Options of {@link Syncer}. */
export interface SyncerOptions {
  /** The HNS client. */
  client: HnsClient;
  /** The cluster state. */
  cluster: ClusterSource;
  /** The ownership record (loaded). */
  ownership: OwnershipRecord;
  /** `--network-name`; empty is a StartupError unless `detectNetwork` is set. */
  networkName: string;
  /** `--detect-network`: with an empty name, program the only Overlay/L2Bridge network. */
  detectNetwork?: boolean;
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
  /** Conflict reporting (listener, backoff steps); logger, clock and kinds come from the syncer. */
  conflicts?: Pick<ConflictTrackerOptions, "onReports" | "initialMs" | "maxMs">;
  /**
   * Run the periodic resync's listing outside the runs (default false: a
   * run that resyncs awaits it). A run that finds the resync due starts it
   * as it ends ({@link NextRun.listingArrived}); the first run after it
   * arrived compares it with the cache.
   */
  resyncInBackground?: boolean;
  /**
   * `--take-over-foreign`: the first start takes over foreign objects on keys
   * the desired state claims (see `AdoptOptions.takeOver`). Later starts (HNS
   * restarted) and runs never do: a foreign object found then is reported,
   * not fought. Default false.
   */
  takeOverForeign?: boolean;
  /** `--full-hns-read-on-start`: read every HNS object at start, trusting no fingerprint. */
  fullHnsReadOnStart?: boolean;
  /**
   * The synced-inputs digest (synced_inputs.ts): where it is recorded and the
   * config's part. Without it no digest is recorded and every start builds
   * the state before it is ready.
   */
  syncedInputs?: { file: SyncedInputsFile; config: string };
  /**
   * A full collection of the heap now (the agent's heap_collector.ts;
   * `compacting`: one that also gives free pages back). Made in a restart's
   * state build (the record owns objects, or after a fast start), before the
   * observed cache is filled: the garbage of the read, the desired state and
   * the adoption is gone before the build's largest step allocates; and in
   * a start of {@link START_COLLECT_OPS} operations or more, after its
   * endpoint creates and after its writes, before the ownership record's
   * write (module notes). After a fast start also once the trusted read has
   * the owned endpoints: their garbage is gone before the load balancers and
   * the adoption allocate. Each is in a run a change would wait for anyway:
   * after a fast start the agent is ready and the build holds every change;
   * otherwise the agent is not ready yet, or a start (a new network) is
   * re-programming HNS. Without it none is made.
   */
  collectHeap?: (kind: "regular" | "compacting") => void;
}

/**
 * Fewest operations in a start's plan for its collections after its
 * endpoint creates and after its writes (module notes): a start of a few
 * thousand services, whose garbage at V8's limit is worth a collection of
 * tens of milliseconds.
 */
const START_COLLECT_OPS = 10_000;

/** How a start became ready (`fast`: the recorded synced inputs matched; the state is built next). */
export type StartMode = "fast" | "trusted" | "full";

/** Why a run did nothing yet. */
export type WaitingFor = "cluster" | "node" | "network";

/** When the next run should come without a cluster change (all absent: only on a change). */
export interface NextRun {
  /** Work to retry (failed writes, the ownership record, a lookup, the network) is due in this many ms. */
  retryAfterMs?: number;
  /** Time-driven work (the periodic resync; while waiting, another look) is due in this many ms. */
  periodicAfterMs?: number;
  /** Settles (never rejects) when the background resync's listing arrived: a run should then compare it. */
  listingArrived?: Promise<void>;
}

/** The earliest of a {@link NextRun}'s delays, if any. */
export function nextRunInMs(next: NextRun): number | undefined {
  const { retryAfterMs: retry, periodicAfterMs: periodic } = next;
  if (retry === undefined) return periodic;
  return periodic === undefined ? retry : Math.min(retry, periodic);
}

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
  repaired: Repairs;
  /** Services recomputed (all of them on a full run). */
  services: number;
  /** The cluster changes this run took over, if any. */
  changes?: ChangeSet;
  /** How a start read HNS (`kind` "start" only). */
  startMode?: StartMode;
  /** When the next run should come. */
  next: NextRun;
}

/** Owned objects that vanished from HNS and are recreated. */
export interface Repairs {
  /** Load balancers. */
  loadBalancers: number;
  /** Endpoints. */
  endpoints: number;
}

/** A report before its {@link NextRun} is decided. */
type RunReport = Omit<SyncReport, "next">;

/** How long to wait before looking for the network again. */
const NETWORK_RETRY_MS = 5_000;
/** How long to wait before retrying an ownership record write that failed before. */
const FLUSH_RETRY_MS = 1_000;
const NO_REPAIRS: Repairs = { loadBalancers: 0, endpoints: 0 };

/** The first start's read of HNS begun early, when it began and when it ended (clock ms). */
interface EarlyRead {
  at: number;
  endedAt?: number;
  read: Promise<EarlyStart | undefined>;
}

/** The sync loop's runs; see the module notes. One instance per agent. */
export class Syncer {
  readonly #o: SyncerOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #backoff: Backoff;
  readonly #observed = new ObservedCache(undefined, (id) => this.#o.ownership.idString(id));
  readonly #uncertain = new Set<string>();
  readonly #resync: Resync;
  readonly #local: LocalEndpoints;
  /** Backoff of ownership record writes. */
  readonly #flushRetry: RetryBackoff;
  readonly #conflictTracker: ConflictTracker;
  readonly #diagnostics: DiagnosticsLog;
  readonly #routes: NetworkRoutes;
  readonly #waits: PlacementWaits;
  /** The order of each routes read (reads run one at a time), so an older one is never taken after a newer one. */
  readonly #routesReadSeq = new WeakMap<readonly RemoteSubnetRoute[], number>();
  #routesReads = 0;
  #routesTaken = 0;
  #ctx: NodeContext | undefined;
  #networkName = "";
  #desired: DesiredState | undefined;
  #needFull = true;
  #waiting: WaitingFor | undefined;
  #lastWaitLog = -Infinity;
  /** Whether a start has read HNS (only the first one takes over). */
  #startedOnce = false;
  /**
   * The first start's read of HNS begun early ({@link readHnsEarly}), when it
   * began and when it ended (clock ms).
   */
  #early: EarlyRead | undefined;
  /** The cluster's part of the synced-inputs digest, updated as changes are taken. */
  readonly #clusterDigest = new ClusterDigest();
  /**
   * After a fast start: the early read the state is built from by the next
   * run (the start proper), and when that read began.
   */
  #deferredBuild:
    | { early: Omit<EarlyStart, "preread"> & { preread?: HnsPreread; at: number } }
    | undefined;
  /** Whether the last run left HNS as the desired state asks (nothing failed, pending or waiting). */
  #complete = false;
  /** When (clock ms) a run last wrote HNS. */
  #lastWriteAt = -Infinity;

  /** A syncer; nothing happens until {@link sync}. */
  constructor(options: SyncerOptions) {
    this.#o = options;
    this.#log = options.logger ?? nullLogger;
    this.#clock = options.clock ?? systemClock;
    this.#backoff = options.backoff ?? new Backoff({ clock: this.#clock });
    this.#conflictTracker = new ConflictTracker({
      ...options.conflicts,
      logger: this.#log,
      clock: this.#clock,
      wanted: (key) => this.#desired?.loadBalancers.get(key),
    });
    this.#flushRetry = new RetryBackoff({ clock: this.#clock });
    this.#diagnostics = new DiagnosticsLog(this.#log);
    this.#routes = new NetworkRoutes(options.client);
    this.#waits = new PlacementWaits({ clock: this.#clock, logger: this.#log });
    this.#resync = new Resync({
      client: options.client,
      periodMs: options.syncPeriodMs,
      clock: this.#clock,
      logger: this.#log,
      inBackground: options.resyncInBackground ?? false,
      networkIds: options.networkIds,
      readRoutes: (networkId) => this.#readRoutesQuietly(networkId),
    });
    this.#local = new LocalEndpoints({
      client: options.client,
      ownership: options.ownership,
      observed: this.#observed,
      clock: this.#clock,
      logger: this.#log,
    });
  }

  /** The observed cache (read-only use: metrics, tests). */
  get observed(): ObservedCache {
    return this.#observed;
  }

  /** Desired load balancer keys foreign HNS objects hold (read-only use: metrics, tests). */
  get conflicts(): ConflictTracker {
    return this.#conflictTracker;
  }

  /** The node context, once the network was found. */
  get context(): NodeContext | undefined {
    return this.#ctx;
  }

  /** Remote pod IPs on overlay that wait for their placement now (read-only use: metrics). */
  get waitingPlacement(): number {
    return this.#waits.count();
  }

  /** The desired state of the last run, if any. */
  get desired(): DesiredState | undefined {
    return this.#desired;
  }

  /** Whether a fast start's state is still to be built (by the next run). */
  get buildPending(): boolean {
    return this.#deferredBuild !== undefined;
  }

  /** Whether the first programming has happened. */
  get started(): boolean {
    return this.#ctx !== undefined;
  }

  /**
   * Begin the first start's read of HNS now, while the cluster's lists come
   * in (the parts that do not depend on the cluster: start.ts `readEarly`),
   * or take `begun`, such a read begun before this syncer was made (at
   * `begun.at` on this syncer's clock; e.g. while the ownership record
   * loaded). The start uses it unless it ended more than a resync period
   * before (the lists took that long): a read that itself takes longer than
   * a period, as on a node whose HNS is slow, is used, not made again.
   */
  readHnsEarly(begun?: { read: Promise<EarlyStart | undefined>; at: number }): void {
    if (this.#ctx || this.#early) return;
    const { client, ownership } = this.#o;
    const read = begun?.read ??
      readEarly(client, this.#o.networkName, this.#o.detectNetwork ?? false, ownership, {
        fullHnsReadOnStart: this.#o.fullHnsReadOnStart ?? false,
      });
    const early: EarlyRead = { at: begun?.at ?? this.#clock.now(), read };
    read.finally(() => (early.endedAt = this.#clock.now())).catch(() => {});
    this.#early = early;
  }

  /** The early read for a start, if one was begun and ended recently enough; taken once. */
  async #takeEarly(): Promise<
    (Omit<EarlyStart, "preread"> & { preread?: HnsPreread; at: number }) | undefined
  > {
    const early = this.#early;
    this.#early = undefined;
    const read = await early?.read;
    const endedAt = early?.endedAt ?? this.#clock.now();
    if (!early || !read || this.#clock.now() - endedAt > this.#o.syncPeriodMs) return undefined;
    return { ...read, at: early.at };
  }

  /**
   * Resolves once no background listing (nor early read) is in flight. Stop
   * the runs first, then wait for this before closing the HNS client.
   */
  async listingSettled(): Promise<void> {
    await this.#early?.read;
    await this.#resync.settled();
  }

  /** Close the network's handle kept for reading its routes (after {@link listingSettled}). */
  async close(): Promise<void> {
    await this.#routes.close();
  }

  /** One run. Throws only for failed HNS reads (the runner retries with backoff). */
  async sync(): Promise<SyncReport> {
    // The resync's background work pauses while a run is in flight.
    this.#resync.runStarted();
    try {
      return await this.#sync();
    } finally {
      this.#resync.runEnded();
    }
  }

  async #sync(): Promise<SyncReport> {
    const { cluster, settings } = this.#o;
    if (!cluster.hasSynced()) return this.#wait("cluster");
    if (!cluster.node() && !cluster.isSynced("node") && settings.nodeIPOverride.length === 0) {
      return this.#wait("node");
    }
    if (!this.#ctx) return await this.#start();
    const resync = await this.#takeResync();
    if (resync === "restart") return await this.#start();
    if (!resync && this.#local.retryDue()) {
      this.#useLookup(await this.#local.lookUp(this.#ctx, this.#desired));
    }
    if (!resync && this.#waits.readDue()) await this.#readRoutesForWaits();
    const report = await this.#run(resync ?? NO_REPAIRS, resync !== undefined);
    const next = this.#next(report.result);
    this.#settled(report, next);
    return { ...report, next };
  }

  /**
   * After a run: whether it left everything applied; an idle run of a
   * complete state records the synced-inputs digest when no run wrote HNS
   * for a sync period (a run that writes makes it invalid first), so
   * changes' runs pay for neither.
   */
  #settled(report: RunReport, next: NextRun): void {
    const r = report.result;
    const applied = r === undefined ||
      r.failed.length + r.deferred.length + r.conflicts.length === 0;
    this.#complete = this.#ctx !== undefined && (r !== undefined || this.#complete) && applied &&
      next.retryAfterMs === undefined && !this.#needFull && this.#waits.count() === 0 &&
      this.#conflictTracker.size === 0 && !this.#o.ownership.dirty;
    const quiet = this.#clock.now() - this.#lastWriteAt >= this.#o.syncPeriodMs;
    if (report.kind === "start" || (report.kind === "idle" && quiet)) {
      void this.recordSyncedInputs();
    }
  }

  /** The synced-inputs digest of the state now (the desired state's inputs as last taken). */
  #syncedInputs(): SyncedInputs | undefined {
    const si = this.#o.syncedInputs;
    if (!si || !this.#ctx || !this.#clusterDigest.built) return undefined;
    return {
      cluster: this.#clusterDigest.value(),
      context: contextDigest(this.#ctx),
      config: si.config,
      owned: this.#o.ownership.size,
      endpointIds: contextEndpointIds(this.#ctx),
    };
  }

  /**
   * Record the synced-inputs digest if the last run left everything applied
   * (the agent calls it at stop too); never throws (a failure is logged).
   */
  async recordSyncedInputs(): Promise<void> {
    const file = this.#o.syncedInputs?.file;
    if (!file) return;
    const pending = this.#o.cluster.hasPendingChanges?.() ?? true;
    const inputs = this.#complete && !pending ? this.#syncedInputs() : undefined;
    if (!inputs) {
      this.#log.debug(2, "Not recording the synced-inputs digest", {
        complete: this.#complete,
        pendingChanges: pending,
      });
      return;
    }
    try {
      await file.record(inputs);
    } catch (err) {
      this.#log.warn(
        "Cannot record the synced-inputs digest; the next start builds the state first",
        {
          path: file.path,
          err: errorMessage(err),
        },
      );
    }
  }

  /** The cluster's changes, taken (the digest follows what is taken). */
  #takeChanges(): ChangeSet {
    const changes = this.#o.cluster.takeChanges();
    this.#clusterDigest.update(this.#o.cluster, changes.services);
    return changes;
  }

  /** Steps 4 to 9 of a run: take the changes, the context, recompute, reconcile, apply. */
  async #run(repaired: Repairs, resynced: boolean): Promise<RunReport> {
    const changes = this.#takeChanges();
    // Changed services are most likely written to HNS: the digest's invalidation (its
    // fsyncs; a no-op once invalid) starts now, under the computation, and #apply waits for
    // it (and reports its failure) before the first write.
    if (changes.services.size > 0) this.#o.syncedInputs?.file.invalidate().catch(() => {});
    await this.#updateContext(changes);
    if (!this.#needFull && this.#desired && changes.services.size === 0) {
      // Nothing to apply, but a resync may have changed the record, or an earlier write failed.
      await this.#flush();
      this.#conflictTracker.tick();
      return { kind: "idle", resynced, repaired, services: 0, changes };
    }
    const changed = await this.#computeDesired(changes.services);
    const desired = this.#desired!;
    // Once HNS refused an in-place update, plan replacements: the plan (and its metrics) say
    // what apply does.
    const features = this.#o.client.modifyUnsupported
      ? { ...this.#ctx!.features, modifyLoadBalancer: false }
      : this.#ctx!.features;
    this.#diagnostics.update(desired, changed);
    const plan = reconcile(
      desired,
      this.#observed,
      changed ? { features, dirty: changes.services } : { features },
    );
    const result = await this.#apply(plan);
    return {
      kind: changed ? "partial" : "full",
      resynced,
      plan,
      result,
      repaired,
      services: changed ? changed.size : desired.services.size,
      changes,
    };
  }

  /**
   * Step 5: the node context for a changed Node, and the root host endpoint
   * as HNS has it now when health-check VIP LBs are computed (it may have
   * been recreated).
   */
  async #updateContext(changes: ChangeSet): Promise<void> {
    const { cluster, settings } = this.#o;
    if (changes.nodeChanged) {
      const next = contextForNode(this.#ctx!, settings, cluster.node());
      if (next !== this.#ctx) {
        this.#log.info("Node changed; recomputing every service", {
          nodeIPs: next.nodeIPs.join(","),
          zone: next.zone,
        });
        this.#setContext(next);
      }
    }
    if (changes.placementsChanged.size > 0 && cluster.nodePlacements) {
      const next = contextForPlacements(this.#ctx!, settings, cluster.nodePlacements());
      if (next !== this.#ctx) {
        this.#log.info("Node placements changed; recomputing every service", {
          nodes: [...changes.placementsChanged].slice(0, 10).join(","),
          changed: changes.placementsChanged.size,
        });
        this.#setContext(next);
      }
    }
    if (this.#buildsHealthCheckLbs(changes.services)) {
      try {
        this.#setContext(await this.#local.resolveRoot(this.#ctx!));
      } catch (err) {
        this.#log.warn("Cannot look up the root HNS endpoint; using the last one known", {
          name: settings.rootHnsEndpointName,
          err: errorMessage(err),
        });
      }
    }
  }

  /**
   * Step 6: the desired state, of these services or (after drift, failures
   * or a changed context) of all. Returns the changed services' results, or
   * undefined when all were computed. A pod on this node the cluster names
   * but the context lacks most likely has a new CNI endpoint: it is looked
   * up now, so the LBs are programmed once with it rather than twice.
   */
  async #computeDesired(
    services: ReadonlySet<ObjectKey>,
  ): Promise<Map<ObjectKey, ServiceDesired | undefined> | undefined> {
    const { cluster } = this.#o;
    let changed: Map<ObjectKey, ServiceDesired | undefined> | undefined;
    if (this.#needFull || !this.#desired) this.#setDesired(desiredState(cluster, this.#ctx!));
    else changed = this.#recompute(services);
    const before = this.#ctx;
    if (this.#local.hasNewMisses()) {
      try {
        this.#useLookup(await this.#local.lookUp(this.#ctx!, this.#desired));
      } catch (err) {
        // The changes were taken: apply them now without the pod, look it up again later.
        this.#log.warn("Cannot look up new CNI endpoints; will retry", {
          err: errorMessage(err),
        });
        this.#local.failed();
      }
    }
    if (this.#waits.readDue()) await this.#readRoutesForWaits();
    if (this.#ctx !== before) {
      this.#setDesired(desiredState(cluster, this.#ctx!));
      changed = undefined;
    }
    this.#local.lookedUp();
    return changed;
  }

  /** Step 2: read HNS, adopt what matches, program the rest. */
  async #start(): Promise<SyncReport> {
    // The start's read and plan happen in #readAndPlan, whose frame ends before apply: what
    // HNS held as read (the adoption's observed state, the read's ID lists) is garbage by
    // then, not kept alive beside the observed cache while 10,000s of writes are in flight.
    const planned = await this.#readAndPlan();
    if ("kind" in planned) return planned;
    const { plan, services, changes, startedAt, startMode } = planned;
    const result = await this.#apply(plan, plan.ops.length >= START_COLLECT_OPS);
    this.#resync.done(startedAt);
    const report: RunReport = {
      kind: "start",
      resynced: true,
      plan,
      result,
      repaired: NO_REPAIRS,
      services,
      changes,
      startMode,
    };
    const next = this.#next(result);
    this.#settled(report, next);
    return { ...report, next };
  }

  /** The start up to its plan: find the network, read HNS, adopt, plan (or wait for the network). */
  async #readAndPlan(): Promise<
    SyncReport | {
      plan: Plan;
      services: number;
      changes: ChangeSet;
      startedAt: number;
      startMode: StartMode;
    }
  > {
    const { client, cluster, ownership } = this.#o;
    const deferred = this.#deferredBuild;
    this.#deferredBuild = undefined;
    // Taken before reading so that changes arriving meanwhile make a later run (a start that
    // waits for the network drops them: the start that follows computes everything). The
    // digest's cluster part describes the store as taken: hashed now, before any await, while
    // the early read of HNS may still be in flight.
    const changes = this.#takeChanges();
    if (this.#o.syncedInputs && !this.#clusterDigest.built) {
      const t = performance.now();
      this.#clusterDigest.build(cluster);
      this.#log.debug(2, "Hashed the cluster's synced inputs", {
        services: this.#clusterDigest.value().split(":")[1],
        ms: Math.round(performance.now() - t),
      });
    }
    const early = deferred?.early ?? await this.#takeEarly();
    const network = early?.network ??
      await findNetwork(client, this.#o.networkName, this.#o.detectNetwork);
    if (!network) return this.#wait("network");
    this.#waiting = undefined;
    const startedAt = early?.at ?? this.#clock.now();
    const mode = startReadMode(ownership, {
      fullHnsReadOnStart: this.#o.fullHnsReadOnStart ?? false,
    });
    if (!deferred && early) {
      const fast = await this.#fastStart(early, mode, changes);
      if (fast) return fast;
    }
    this.#log.info("Reading HNS", { ...mode, early: early !== undefined });
    const start = await readStart(
      client,
      network,
      cluster,
      ownership,
      this.#o.settings,
      { takeOver: (this.#o.takeOverForeign ?? false) && !this.#startedOnce },
      mode,
      takePreread(early),
      (observed) => {
        // A restart's build (see collectHeap): what its steps so far left behind is
        // collected before the cache fill, its last and largest step, adds to the heap.
        if (deferred || ownership.size > 0) this.#o.collectHeap?.("regular");
        this.#observed.replace(observed);
        return this.#observed;
      },
      deferred ? () => this.#o.collectHeap?.("regular") : undefined,
    );
    this.#startedOnce = true;
    this.#ctx = start.ctx;
    this.#networkName = start.ctx.network.name;
    this.#setDesired(start.desired);
    this.#local.restart(start.endpointIds);
    if (isOverlay(start.ctx)) {
      // Kept open so that re-reading the routes costs one call (resync, waiting pods).
      await this.#routes.open(start.ctx.network.id).catch((err) => {
        this.#log.warn("Cannot open the HNS network to re-read its routes; will retry", {
          network: start.ctx.network.name,
          err: errorMessage(err),
        });
      });
    }
    for (const t of start.adoption.takenOver) {
      this.#log.info("Taking over an HNS object of others on an address a Service claims", {
        kind: t.kind,
        key: t.key,
        id: t.id,
        service: t.serviceKey,
        reason: t.reason,
      });
    }
    for (const skipped of start.adoption.skipped) {
      this.#log.warn("Skipping an HNS object hnsproxy cannot interpret; left alone", {
        kind: skipped.kind,
        id: skipped.id,
        reason: skipped.reason,
      });
    }
    if (start.vanishedOwned.length > 0) {
      // Listed before its create was issued: a create that never happened, or deleted since.
      this.#log.info("Forgetting listed HNS objects that HNS does not hold", {
        count: start.vanishedOwned.length,
      });
      for (const id of start.vanishedOwned) ownership.remove(id);
    }
    this.#local.lookedUp();
    this.#diagnostics.update(start.desired);
    this.#log.info("Programming HNS", {
      network: start.ctx.network.name,
      networkId: start.ctx.network.id,
      type: start.ctx.network.type,
      loadBalancers: start.desired.loadBalancers.size,
      remoteEndpoints: start.desired.remoteEndpoints.size,
      adopted: start.adoption.adopted.length + start.adoption.kept,
      operations: start.plan.ops.length - start.adoption.adopted.length,
      takenOver: start.adoption.takenOver.length,
      trusted: start.trusted,
    });
    if (deferred) this.#checkDeferredBuild(start.plan, changes);
    return {
      plan: start.plan,
      services: start.desired.services.size,
      changes,
      startedAt,
      startMode: mode.mode,
    };
  }

  /**
   * The fast start: when the early read shows HNS as the last complete run
   * left it and the synced inputs (cluster, node context, config, record)
   * equal the recorded digest, HNS holds exactly what the cluster asks for:
   * the run reports a start (the agent is ready) and the next run builds the
   * state from the same read. Undefined (logged why) when a full start is needed.
   */
  async #fastStart(
    early: Omit<EarlyStart, "preread"> & { preread?: HnsPreread; at: number },
    mode: StartReadMode,
    changes: ChangeSet,
  ): Promise<SyncReport | undefined> {
    const si = this.#o.syncedInputs;
    if (!si) return undefined;
    const { client, cluster, ownership, settings } = this.#o;
    const recorded = await si.file.read();
    const t = performance.now();
    const check = recorded
      ? await fastStartCheck({
        client,
        network: early.network,
        cluster,
        ownership,
        settings,
        mode,
        preread: early.preread,
      })
      : { reason: "no synced-inputs digest recorded" };
    let reason = "reason" in check ? check.reason : undefined;
    if (recorded && "ctx" in check) {
      const now: SyncedInputs = {
        cluster: this.#clusterDigest.value(),
        context: contextDigest(check.ctx),
        config: si.config,
        owned: ownership.size,
      };
      const differ = differingParts(recorded, now);
      if (differ.length > 0) reason = `changed since the last complete sync: ${differ.join(", ")}`;
    }
    if (reason !== undefined) {
      this.#log.info("Building the state before ready", { reason });
      return undefined;
    }
    this.#deferredBuild = { early };
    this.#log.info("HNS holds what the synced inputs ask for; ready, building the state next", {
      startMode: "fast",
      owned: ownership.size,
      services: this.#clusterDigest.value().split(":")[1],
      checkMs: Math.round(performance.now() - t),
    });
    return {
      kind: "start",
      startMode: "fast",
      resynced: false,
      repaired: NO_REPAIRS,
      services: 0,
      changes,
      next: { retryAfterMs: 0 },
    };
  }

  /**
   * The state built after a fast start must plan no HNS write unless the
   * cluster changed since: any other write means the digest matched a state
   * HNS did not hold (a warning; the writes are made).
   */
  #checkDeferredBuild(plan: Plan, changes: ChangeSet): void {
    const writes = plan.ops.filter((op) => !op.op.startsWith("adopt")).length;
    const changed = changes.services.size > 0 || changes.nodeChanged ||
      changes.placementsChanged.size > 0;
    if (writes > 0 && !changed) {
      this.#log.warn("The state built after a fast start differs from HNS; programming it", {
        writes,
        ops: plan.ops.slice(0, 5).map((op) => op.op).join(","),
      });
    }
  }

  /**
   * Step 3: compare the resync's listing, when one is due (foreground) or
   * has arrived (background). "restart" when the network changed.
   */
  async #takeResync(): Promise<"restart" | Repairs | undefined> {
    const ctx = this.#ctx!;
    const arrived = this.#o.resyncInBackground
      ? this.#resync.take(ctx.network.id)
      : this.#resync.due()
      ? await this.#resync.list(this.#networkName, ctx.network.id)
      : undefined;
    return arrived ? await this.#compare(arrived) : undefined;
  }

  async #compare(arrived: ArrivedListing): Promise<"restart" | Repairs> {
    try {
      return await this.#compareListing(arrived);
    } finally {
      arrived.since?.mark.end();
    }
  }

  async #compareListing({ listing, since }: ArrivedListing): Promise<"restart" | Repairs> {
    const { lbIds, epIds } = listing;
    if (!lbIds || !epIds) {
      this.#log.warn("HNS network changed or vanished (HNS restarted?); reading HNS afresh", {
        network: this.#networkName,
        oldId: this.#ctx!.network.id,
        newIds: listing.networkIds.join(","),
      });
      this.#reset();
      return "restart";
    }
    this.#log.debug(2, "Periodic resync: comparing HNS IDs with the observed cache");
    const { ownership } = this.#o;
    const vanished = vanishedFrom(lbIds, epIds, since, this.#observed, ownership);
    const repaired = forgetVanished(vanished, this.#observed, ownership, this.#log);
    const scan = since ? listingScan(since) : undefined;
    this.#useLookup(await this.#local.refresh(this.#ctx!, this.#desired, epIds, false, scan));
    if (listing.routes) {
      this.#waits.reading();
      this.#useRoutes(listing.routes);
    }
    // Objects of others (and strays) that vanished: the LBs and endpoints they blocked or
    // stood in for are decided differently now. Without drift the next run stays partial.
    if (repaired.loadBalancers + repaired.endpoints + vanished.others.length > 0) {
      this.#needFull = true;
    }
    this.#resync.done(listing.startedAt);
    return repaired;
  }

  /**
   * Whether this run computes health-check VIP LBs: with
   * `forwardHealthCheckVip`, a full run, or a changed service with ingress IPs.
   */
  #buildsHealthCheckLbs(changed: ReadonlySet<ObjectKey>): boolean {
    if (!this.#o.settings.forwardHealthCheckVip) return false;
    if (this.#needFull || !this.#desired) return true;
    for (const key of changed) {
      if ((this.#o.cluster.service(key)?.ingress.length ?? 0) > 0) return true;
    }
    return false;
  }

  /**
   * The network's routes, read (one call) because remote pods wait for their
   * placement; a failure or unchanged routes read again by backoff.
   */
  async #readRoutesForWaits(): Promise<void> {
    this.#waits.reading();
    const routes = await this.#readRoutesQuietly(this.#ctx!.network.id);
    if (!routes || !this.#useRoutes(routes)) this.#waits.failed();
  }

  /**
   * On overlay, the network's RemoteSubnetRoute policies now; undefined on
   * other networks, when HNS no longer has the network, or when the read
   * failed (logged; the next read opens the network again).
   */
  async #readRoutesQuietly(networkId: string): Promise<RemoteSubnetRoute[] | undefined> {
    if (!this.#ctx || !isOverlay(this.#ctx)) return undefined;
    const seq = ++this.#routesReads;
    try {
      const routes = await this.#routes.read(networkId);
      if (routes) this.#routesReadSeq.set(routes, seq);
      return routes;
    } catch (err) {
      this.#log.warn("Cannot read the HNS network's routes; will retry", {
        network: this.#networkName,
        err: errorMessage(err),
      });
      return undefined;
    }
  }

  /** Take the network's routes as HNS has them now; true when they changed (all is recomputed). */
  #useRoutes(routes: readonly RemoteSubnetRoute[]): boolean {
    // A background listing's routes may be older than those a run read since.
    const seq = this.#routesReadSeq.get(routes) ?? 0;
    if (seq < this.#routesTaken) return false;
    this.#routesTaken = seq;
    const next = contextWithRoutes(this.#ctx!, routes);
    if (next === this.#ctx) return false;
    this.#log.info("HNS network routes changed; recomputing every service", {
      network: this.#networkName,
      before: this.#ctx!.network.remoteSubnetRoutes.length,
      after: routes.length,
    });
    this.#setContext(next);
    return true;
  }

  /** Take a lookup's node context; a change (or others holding a wanted key) recomputes all. */
  #useLookup(lookup: LookupResult): void {
    this.#setContext(lookup.ctx);
    if (lookup.othersHoldWanted) this.#needFull = true;
  }

  #setContext(ctx: NodeContext): void {
    if (ctx === this.#ctx) return;
    this.#ctx = ctx;
    this.#needFull = true;
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

  /** Take a new desired state: of all services, or (`changed`) patched for those. */
  #setDesired(
    desired: DesiredState | undefined,
    changed?: ReadonlyMap<ObjectKey, ServiceDesired | undefined>,
  ): void {
    this.#desired = desired;
    this.#local.track(desired, changed);
    this.#waits.track(desired, changed);
  }

  /** Step 1: not started yet; say what it waits for (once a minute). */
  #wait(what: WaitingFor): SyncReport {
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
      repaired: NO_REPAIRS,
      services: 0,
      next: what === "network"
        ? { retryAfterMs: NETWORK_RETRY_MS }
        : { periodicAfterMs: this.#o.syncPeriodMs },
    };
  }

  /**
   * When the next run should come without a cluster change: the one place
   * that decides it. Called as a run ends; in the background it starts the
   * resync's listing when due.
   */
  #next(result?: ApplyResult): NextRun {
    const next: NextRun = {};
    const retries: number[] = [];
    if (result?.retryAfterMs !== undefined) retries.push(result.retryAfterMs);
    if (this.#o.ownership.dirty) retries.push(this.#flushRetry.nextDelay() ?? FLUSH_RETRY_MS);
    const lookup = this.#local.retryInMs();
    if (lookup !== undefined) retries.push(lookup);
    const routes = this.#waits.retryInMs();
    if (routes !== undefined) retries.push(routes);
    const conflictStep = this.#conflictTracker.nextDelay();
    if (conflictStep !== undefined) retries.push(conflictStep);
    if (retries.length > 0) next.retryAfterMs = Math.min(...retries);
    if (this.#o.resyncInBackground) {
      const ctx = this.#ctx!;
      const listing = this.#resync.start(
        this.#networkName,
        ctx.network.id,
        () => this.#markIds(),
        {
          observed: this.#observed,
          ownership: this.#o.ownership,
          knownIds: () => this.#local.knownIds(),
          knows: (id) => this.#local.knows(id),
        },
        result !== undefined,
      );
      if (listing) next.listingArrived = listing;
    }
    const resync = this.#resync.dueInMs();
    if (resync !== undefined) next.periodicAfterMs = resync;
    return next;
  }

  /**
   * Mark the IDs of every object the syncer knows of now (the cache, the
   * classified endpoints, the node context's local endpoints), by journals
   * of what it learns and forgets from now on: O(1) now, O(change) later.
   * Owned IDs the cache lacks do not count as known: such a record entry
   * then outlives one resync more, nothing worse.
   */
  #markIds(): IdMark {
    // The context's map is replaced, never changed: its IDs are those at the mark, read later.
    const local = this.#ctx?.localEndpoints ?? new Map<string, string>();
    return markKnownIds(this.#observed, this.#local, { [Symbol.iterator]: () => local.values() });
  }

  #reset(): void {
    this.#ctx = undefined;
    this.#setDesired(undefined);
    this.#observed.clear();
    this.#local.clear();
    this.#uncertain.clear();
    this.#needFull = true;
    this.#resync.drop();
    // The next start opens the new network; closes and opens run in order.
    void this.#routes.close();
  }

  /**
   * Apply `plan` and write the record. `largeStart`: a start of
   * {@link START_COLLECT_OPS} operations or more, which collects the heap
   * after its endpoint creates and after its writes (module notes).
   */
  async #apply(plan: Plan, largeStart = false): Promise<ApplyResult> {
    const collect = largeStart && this.#o.collectHeap
      ? () => this.#o.collectHeap!("regular")
      : undefined;
    const hooks = this.#o.applyHooks;
    let writesAllowed: Promise<void> | undefined;
    let notAllowed: { err: unknown } | undefined;
    if (plan.ops.some((op) => !op.op.startsWith("adopt"))) {
      // HNS is about to change: no recorded digest may describe the state it leaves. If that
      // cannot be made durable, nothing is written; the retry reconciles everything. Apply
      // waits for it before its first HNS call, its own record write meanwhile.
      writesAllowed = this.#o.syncedInputs?.file.invalidate().catch((err) => {
        notAllowed = { err };
        throw err;
      });
      writesAllowed?.catch(() => {});
      this.#lastWriteAt = this.#clock.now();
    }
    let result: ApplyResult;
    try {
      result = await applyPlan(plan, {
        client: this.#o.client,
        observed: this.#observed,
        ownership: this.#o.ownership,
        backoff: this.#backoff,
        existingEndpoints: this.#desired?.existingEndpoints ?? new Map(),
        logger: this.#log,
        concurrency: this.#o.concurrency,
        hooks,
        uncertain: this.#uncertain,
        conflicts: this.#conflictTracker,
        writesAllowed,
        // A large start's endpoints are made: their garbage goes before the load balancers add
        // theirs on top of it, and the load balancers fill the pages it frees.
        afterEndpointCreates: collect,
      });
    } catch (err) {
      if (notAllowed !== undefined && notAllowed.err === err) {
        this.#needFull = true;
        this.#log.error("Cannot invalidate the synced-inputs digest; not writing HNS", {
          path: this.#o.syncedInputs!.file.path,
          err: errorMessage(err),
        });
      }
      throw err;
    }
    this.#settleConflicts();
    // A conflict needs no full run: it ends when the holder vanishes (a resync) or the service changes.
    const pending = result.failed.length + result.deferred.length;
    this.#needFull = pending > 0;
    if (result.failed.some((f) => networkGone(f.error))) {
      this.#log.warn("HNS reports the network missing; reading HNS afresh on the next run");
      this.#resync.dueNow();
    }
    this.#local.settle();
    this.#waits.settle();
    // A large start's writes are done and its garbage is at the heap's limit: collected before
    // the record's write and what follows allocate on top of it.
    collect?.();
    await this.#flush();
    if (plan.ops.length > 0 || pending + result.conflicts.length > 0) {
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

  /** Report conflicts that are over, then those due for a reminder. */
  #settleConflicts(): void {
    const observed = this.#observed;
    this.#conflictTracker.settle({
      wantedBy: (key) => this.#desired?.loadBalancers.get(key)?.serviceKey,
      programmed: (key) => observed.loadBalancers.has(key),
      holder: (key) => observed.foreignLoadBalancers.get(key)?.id,
    });
    this.#conflictTracker.tick();
  }

  /** Step 9: write the ownership record if it changed; a failure is logged and retried with backoff. */
  async #flush(): Promise<void> {
    try {
      await this.#o.ownership.flush();
      this.#flushRetry.reset();
    } catch (err) {
      const retryInMs = this.#flushRetry.fail();
      this.#log.error("Cannot write the ownership record; will retry", {
        path: this.#o.ownership.path,
        err: errorMessage(err),
        retryInMs,
      });
    }
  }
}

function networkGone(err: unknown): boolean {
  return err instanceof HnsError && err.hresult === HResult.NETWORK_NOT_FOUND;
}

/** Operation counts by kind, for log lines. */
function countOps(ops: readonly PlanOp[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < ops.length; i++) out[ops[i].op] = (out[ops[i].op] ?? 0) + 1;
  return out;
}

/**
 * The early read's result, taken from `early` so that the start's frame does
 * not hold it once the read start is done with it.
 */
function takePreread(early: { preread?: HnsPreread } | undefined): HnsPreread | undefined {
  const preread = early?.preread;
  if (early) early.preread = undefined;
  return preread;
}
