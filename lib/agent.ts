/**
 * The agent: config → logger → HNS backend → cluster watch → ownership record
 * → syncer and bounded-frequency runner → health and metrics servers, and a
 * graceful stop that closes the watches, compacts the ownership record and
 * leaves HNS as it is (traffic keeps flowing while hnsproxy is down).
 *
 * The runner runs the syncer for every change (bounded by minSyncPeriod);
 * every other run (retries, the periodic resync) is the syncer's decision,
 * handed to the runner as it is ({@link NextRun}). The resync's HNS listing
 * runs in the background (the syncer's `resyncInBackground`): runs for
 * changes go on while it is in flight, and the run after it arrived compares
 * it with the cache.
 *
 * A start overlaps what does not depend on the cluster with the cluster's
 * initial lists: the ownership record loads and HNS is read (start.ts
 * `readEarly`: the network and the ID listings before the record is in, the
 * rest once it is; handed to `Syncer.readHnsEarly`) while the lists come in.
 *
 * A restart whose synced inputs (cluster, node context, config, record:
 * proxy/synced_inputs.ts) equal those recorded after the last complete sync,
 * with HNS as that sync left it, is ready before the state is built; the
 * run after it builds the state from the same read (syncer.ts, the fast start).
 *
 * Once ready, what would hold a change's run happens only in the runner's
 * holds (after a change's run, until minSyncPeriod from its start, when no
 * change's run can start): full garbage collections (heap_collector.ts). The
 * resync's listings go to an HNS thread until the agent is ready, and from
 * then on run on the runtime's blocking pool, read in paced slices
 * (hns/pool_calls.ts). After a fast start, as the state build ends with no
 * change waiting, a compacting collection gives back the room the build grew
 * the heap to. What follows the run that made the agent ready waits until
 * those waiting for ready have heard it.
 *
 * @module
 */

import type { Config } from "./config/types.ts";
import { VERSION } from "./config/version.ts";
import { withYaml } from "./config/yaml.ts";
import { createHnsClient } from "./hns/client.ts";
import { HnsError } from "./hns/errors.ts";
import { instrumentHcnApi } from "./hns/instrument.ts";
import { HeapCollector } from "./heap_collector.ts";
import { openHnsBackend } from "./hns/open.ts";
import { checkHnsSupport } from "./hns/requirements.ts";
import { yieldToEventLoop } from "./event_loop.ts";
import type { HcnApi, HnsClient } from "./hns/types.ts";
import { enumerateQuery } from "./hns/client.ts";
import { reflectorTimingFromEnv, watchCluster } from "./kube/cluster.ts";
import { KubeClient } from "./kube/client.ts";
import { EventRecorder, kubeEventSink } from "./kube/events.ts";
import {
  recordConflicts,
  recordStarting,
  REPORTING_CONTROLLER,
  reportingInstance,
} from "./agent_events.ts";
import type { ReflectorClient, ReflectorTiming } from "./kube/reflector.ts";
import type { IpFamily } from "./kube/model.ts";
import { ClusterStore } from "./kube/store.ts";
import type { Logger } from "./log/types.ts";
import { cleanupOwned, type CleanupResult } from "./proxy/cleanup.ts";
import type { ContextSettings } from "./proxy/context.ts";
import { HealthCheckServers } from "./proxy/healthchecks.ts";
import type { DesiredState, PlanOp } from "./proxy/model.ts";
import { systemInterfaces } from "./net/host_mac.ts";
import { OwnershipRecord } from "./proxy/ownership.ts";
import { StartupError } from "./proxy/preconditions.ts";
import { BoundedFrequencyRunner } from "./proxy/runner.ts";
import { systemClock } from "./proxy/backoff.ts";
import { readEarly } from "./proxy/start.ts";
import { configDigest, SyncedInputsFile } from "./proxy/synced_inputs.ts";
import { type NextRun, nextRunInMs, Syncer, type SyncReport } from "./proxy/syncer.ts";
import { isNodeEligible, ProxyHealth, serveHealthz } from "./serve/healthz.ts";
import type { HttpServer } from "./serve/http.ts";
import { ProxyMetrics, serveMetrics } from "./serve/metrics.ts";
import { errorMessage } from "./errors.ts";

/** Replaceable parts of the agent (tests, the demo). */
export interface AgentDeps {
  /** Logger (required: the CLI makes it from the config). */
  logger: Logger;
  /** The HCN API to use instead of opening the configured backend. */
  hcnApi?: HcnApi;
  /** The API client to use instead of connecting with the configured kubeconfig. */
  kubeClient?: ReflectorClient;
  /** Reflector timer overrides. */
  reflectorTiming?: Partial<ReflectorTiming>;
  /** Open the service health-check servers (default true). */
  serviceHealthChecks?: boolean;
  /** The heap collector to use instead of one on V8's exposed `gc` (tests observe its collections). */
  heapCollector?: HeapCollector;
}

/** A running agent. */
export interface Agent {
  /** The cluster state. */
  readonly store: ClusterStore;
  /** The sync cycle (observed cache, desired state). */
  readonly syncer: Syncer;
  /** Health state behind /healthz and /livez. */
  readonly health: ProxyHealth;
  /** The metrics. */
  readonly metrics: ProxyMetrics;
  /** The healthz server, when enabled. */
  readonly healthzServer?: HttpServer;
  /** The metrics server, when enabled. */
  readonly metricsServer?: HttpServer;
  /** Resolves after the first successful programming of HNS. */
  readonly ready: Promise<void>;
  /**
   * Resolves (never rejects) when the agent cannot run on this node (a
   * {@link StartupError}: no network name, overlay without a source VIP or
   * host MAC). It then programs nothing more; the caller stops it and exits.
   */
  readonly failed: Promise<StartupError>;
  /**
   * Resolves when no sync is running and none is due right now. A change the
   * store has seen makes a sync due (with `minSyncPeriod` 0, at once), so a
   * caller that changed the cluster can wait until the agent acted on it.
   */
  idle(): Promise<void>;
  /** Stop gracefully; idempotent. */
  stop(): Promise<void>;
}

/** The context settings a config implies. */
export function contextSettings(config: Config): ContextSettings {
  const bind = config.bindAddress;
  const specific = bind !== "" && bind !== "0.0.0.0" && bind !== "::";
  return {
    nodeName: config.hostnameOverride,
    nodeIPOverride: specific ? [bind] : [],
    sourceVips: config.sourceVip ? [config.sourceVip] : [],
    enableDSR: config.enableDSR,
    forwardHealthCheckVip: config.forwardHealthCheckVip,
    rootHnsEndpointName: config.rootHnsEndpointName,
    healthzPort: portOf(config.healthzBindAddress) ?? 10256,
    ...(config.hostMac ? { hostMac: config.hostMac } : {}),
    hostInterfaces: systemInterfaces,
    ...(config.clusterCIDR.length > 0 ? { clusterCidrs: config.clusterCIDR } : {}),
  };
}

function portOf(address: string): number | undefined {
  const m = /:(\d+)$/.exec(address);
  return m ? Number(m[1]) : undefined;
}

/** The HNS backend the config names, instrumented into `metrics` when given. */
export function openHns(
  config: Config,
  logger: Logger,
  metrics?: ProxyMetrics,
  api?: HcnApi,
): { api: HcnApi; client: HnsClient } {
  const raw = api ?? openHnsBackend({
    backend: config.hnsBackend,
    library: config.hnsLibrary || undefined,
    threads: config.hnsConcurrency,
  });
  const instrumented = instrumentHcnApi(raw, (fn, seconds, error) => {
    metrics?.observeHnsCall(
      fn,
      seconds,
      error instanceof HnsError ? error.hresult : error ? "error" : undefined,
    );
  });
  const client = createHnsClient(instrumented, {
    // The FFI backend queues calls for its threads; keep enough in flight.
    listConcurrency: raw.callsInFlight ?? config.hnsConcurrency,
    onSkip: (s) =>
      logger.warn("HNS returned an object hnsproxy cannot read; skipped", {
        kind: s.kind,
        id: s.id,
        reason: s.reason,
      }),
  });
  return { api: instrumented, client };
}

/** IDs of the networks named `name`, in one Enumerate call. */
export function networkIdsByName(api: HcnApi): (name: string) => Promise<string[]> {
  return async (name) => {
    const text = await api.enumerate("Network", enumerateQuery({ Name: name }));
    const ids = JSON.parse(text === "" ? "[]" : text);
    return Array.isArray(ids) ? ids.filter((x): x is string => typeof x === "string") : [];
  };
}

/** `--cleanup-and-exit`: delete what the ownership record lists; 0 when all of it went. */
export async function runCleanup(config: Config, deps: AgentDeps): Promise<number> {
  const log = deps.logger;
  const ownership = await OwnershipRecord.load(config.stateFile, { logger: log });
  if (ownership.loadError) {
    log.error("Not cleaning up: the ownership record is unusable, so nothing is known to be ours", {
      problem: ownership.loadError,
    });
    return 1;
  }
  const { client } = openHns(config, log, undefined, deps.hcnApi);
  let result: CleanupResult;
  try {
    // What is deleted leaves HNS unlike any recorded sync.
    await new SyncedInputsFile(config.stateFile).invalidate();
    result = await cleanupOwned(client, ownership, { logger: log });
  } finally {
    client.close();
  }
  try {
    await ownership.compact();
  } catch (err) {
    // cleanupOwned wrote each round to the journal already; this only tidies up.
    log.warn("Cannot compact the ownership record", {
      path: ownership.path,
      err: errorMessage(err),
    });
  }
  log.info("Cleanup finished", {
    deleted: result.deleted.length,
    absent: result.absent.length,
    remaining: result.remaining.length,
  });
  return result.remaining.length === 0 ? 0 : 1;
}

/** Start the agent. Throws when a part cannot start (bad kubeconfig, unusable HNS library, port taken). */
export async function startAgent(config: Config, deps: AgentDeps): Promise<Agent> {
  // Network programming latency is observed only for changes made after this (kube-proxy's rule).
  const startedAtMs = Date.now();
  const log = deps.logger;
  log.info("Starting hnsproxy", {
    version: VERSION,
    node: config.hostnameOverride,
    network: config.networkName || (config.detectNetwork ? "(detect)" : "(none)"),
    hnsBackend: config.hnsBackend,
    stateFile: config.stateFile,
  });
  const metrics = new ProxyMetrics({ version: VERSION });
  const health = new ProxyHealth({ healthTimeoutMs: 2 * config.syncPeriodMs });
  // Loaded while HNS opens and the cluster's lists come in.
  const loading = OwnershipRecord.load(config.stateFile, { logger: log });
  const { api, client } = openHns(config, log, metrics, deps.hcnApi);
  const cleanups: Array<() => Promise<void> | void> = [() => client.close()];
  const closeAll = async () => {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        log.warn("Error while stopping", { err: errorMessage(err) });
      }
    }
  };

  try {
    let kubeClient = deps.kubeClient;
    if (!kubeClient) {
      // The agent made it, so the agent releases its HTTP connections (after the watches).
      const own = await withYaml(() =>
        KubeClient.connect({
          kubeconfig: config.kubeconfig || undefined,
          master: config.master || undefined,
          logger: log,
        })
      );
      cleanups.push(() => own.close());
      kubeClient = own;
    }
    // Events go out in the background; a refusing API server costs them, never the sync.
    const recorder = kubeClient instanceof KubeClient
      ? new EventRecorder({
        sink: kubeEventSink(kubeClient),
        reportingController: REPORTING_CONTROLLER,
        reportingInstance: reportingInstance(config.hostnameOverride),
        logger: log,
        onDrop: (reason) => metrics.eventDropped(reason),
      })
      : undefined;
    if (recorder) {
      cleanups.push(() => recorder.close());
      recordStarting(recorder, config.hostnameOverride);
    }
    const watch = watchCluster({
      client: kubeClient,
      store: new ClusterStore({ trackingSinceMs: startedAtMs }),
      nodeName: config.hostnameOverride,
      logger: log,
      resyncPeriodMs: config.configSyncPeriodMs,
      timing: { ...reflectorTimingFromEnv((name) => Deno.env.get(name)), ...deps.reflectorTiming },
    });
    cleanups.push(() => watch.stop());
    const store = watch.store;
    // The lists' requests are made before the HNS thread starts: starting it holds this thread
    // for tens of ms, and this thread also writes them to the sockets, so they reach the API
    // server once it has started. Waiting for them to be written first brings no gain
    // (bench/analysis.md, restart section): the main thread is the bottleneck either way.
    await yieldToEventLoop();
    // Until the agent is ready no event waits for HNS: listings share the calls'
    // thread (parsed there, off the main thread) and leave it once ready.
    api.keepListingsApart?.(false);
    await checkHnsSupport(client, { enableDSR: config.enableDSR }, log);
    // What HNS holds is read while the record loads and the lists come in: the network and
    // the ID listings at once, the rest as the record decides; the first run plans with it.
    const earlyAt = systemClock.now();
    const syncedFile = new SyncedInputsFile(config.stateFile);
    const earlyRead = readEarly(client, config.networkName, config.detectNetwork, loading, {
      fullHnsReadOnStart: config.fullHnsReadOnStart,
      endpointHint: syncedFile.takeEndpointIds(),
    });
    // No HNS call of it may be in flight when the client closes (a failed start included).
    // The cleanup holds only its settling: a closure here shares this scope with the agent's
    // long-lived closures, and what the read returned (every CNI endpoint as HNS gave it)
    // must go once the start used it.
    const earlySettled = earlyRead.then(() => {}, () => {});
    cleanups.push(() => earlySettled);
    const ownership = await loading;

    const healthzServer = config.healthzBindAddress
      ? serveHealthz(config.healthzBindAddress, health, metrics)
      : undefined;
    if (healthzServer) cleanups.push(() => healthzServer.close());
    const metricsServer = config.metricsBindAddress
      ? serveMetrics(config.metricsBindAddress, metrics, { configz: () => config })
      : undefined;
    if (metricsServer) cleanups.push(() => metricsServer.close());
    const healthChecks = deps.serviceHealthChecks === false
      ? undefined
      : new HealthCheckServers({ logger: log, healthy: () => health.isHealthy() });
    if (healthChecks) cleanups.push(() => healthChecks.close());

    // Cleanups run in reverse: unsubscribe, runner (waits for the sync and the
    // resync listing in flight), this compaction, health checks, servers, watch, API client, HNS client.
    cleanups.push(async () => {
      try {
        await ownership.compact();
      } catch (err) {
        log.error("Cannot write the ownership record at stop", {
          path: ownership.path,
          err: errorMessage(err),
        });
      }
    });

    const heapCollector = deps.heapCollector ?? new HeapCollector();
    const syncer = new Syncer({
      client,
      cluster: store,
      ownership,
      networkName: config.networkName,
      detectNetwork: config.detectNetwork,
      settings: contextSettings(config),
      syncPeriodMs: config.syncPeriodMs,
      concurrency: api.callsInFlight ?? config.hnsConcurrency,
      logger: log,
      networkIds: networkIdsByName(api),
      resyncInBackground: true,
      takeOverForeign: config.takeOverForeign,
      fullHnsReadOnStart: config.fullHnsReadOnStart,
      syncedInputs: {
        file: syncedFile,
        config: configDigest(config, VERSION),
      },
      collectHeap: (kind) => heapCollector.collect(kind),
      applyHooks: {
        onConflict: () => metrics.observePlan({ conflict: 1 }),
      },
      conflicts: {
        onReports: (reports) => {
          metrics.setConflicts(syncer.conflicts.countsByKind());
          // What HNS holds is read while the lists come in; the first run plans with it.
          syncer.readHnsEarly();
          if (recorder) recordConflicts(recorder, reports);
        },
      },
    });
    metrics.setConflicts(syncer.conflicts.countsByKind());
    syncer.readHnsEarly({ at: earlyAt, read: earlyRead });

    let markReady: () => void = () => {};
    const ready = new Promise<void>((resolve) => (markReady = resolve));
    let markFailed: (err: StartupError) => void = () => {};
    const failed = new Promise<StartupError>((resolve) => (markFailed = resolve));
    let stopped = false;
    let serving = false;
    let afterReady: ReturnType<typeof setTimeout> | undefined;
    const useHold = (heldUntil: number | undefined, built: boolean) => {
      if (built && !store.hasPendingChanges()) {
        // The state was built and no change waits: the room the start's heap grew to is
        // given back.
        if (heapCollector.collect("compacting")) {
          log.debug(2, "Collected the heap after building the state", {
            heapUsedMiB: Math.round(Deno.memoryUsage().heapUsed / 1048576),
          });
        }
        return;
      }
      if (heldUntil !== undefined && heapCollector.afterRun(heldUntil)) {
        log.debug(2, "Collected the heap while changes were held", {
          collections: heapCollector.collections,
          heapUsedMiB: Math.round(Deno.memoryUsage().heapUsed / 1048576),
        });
      }
    };
    const runner = new BoundedFrequencyRunner(async () => {
      if (stopped) return;
      const started = performance.now();
      const building = syncer.buildPending;
      let report: SyncReport;
      try {
        report = await syncer.sync();
      } catch (err) {
        if (err instanceof StartupError) {
          // Retrying cannot help: no more runs, and the caller stops the agent.
          stopped = true;
          log.error("hnsproxy cannot run on this node", { err: err.message });
          markFailed(err);
          return;
        }
        metrics.syncFailed();
        throw err;
      }
      record(report, (performance.now() - started) / 1000);
      const becameReady = report.kind !== "waiting" && !serving;
      if (report.kind !== "waiting") {
        serving = true;
        health.updated();
        markReady();
        // Once ready, an event may wait for HNS: the listings leave the calls' thread.
        if (becameReady) api.keepListingsApart?.(true);
        if (healthChecks && syncer.desired) await healthChecks.update(syncer.desired.healthChecks);
      }
      scheduleNext(report.next);
      if (!serving) return;
      const heldUntil = runner.requestsHeldUntil;
      // The state is built: by this run at a start that is not fast (ready), or by the
      // build that follows a fast start.
      const built = (building || becameReady) && !syncer.buildPending;
      // Ready is heard before the hold's collection.
      if (becameReady) {
        afterReady = setTimeout(() => {
          afterReady = undefined;
          useHold(heldUntil, built);
        }, 0);
      } else useHold(heldUntil, built);
    }, {
      minIntervalMs: config.minSyncPeriodMs,
      // The syncer schedules the periodic resync itself (report.next).
      maxIntervalMs: Infinity,
      logger: log,
    });
    const scheduleNext = (next: NextRun) => {
      const inMs = nextRunInMs(next);
      if (inMs !== undefined) runner.runAfter(inMs);
      next.listingArrived?.then(() => runner.runAfter(0));
    };
    // The resync's listing runs outside the runner's runs: let it finish before HNS is closed.
    cleanups.push(async () => {
      clearTimeout(afterReady);
      await runner.stop();
      await syncer.listingSettled();
      await syncer.close();
      // After the last run: a state left complete is recorded for the next start.
      await syncer.recordSyncedInputs();
    });

    const record = (report: SyncReport, seconds: number) => {
      if (report.changes) {
        metrics.countChanges(
          report.changes.serviceChanges,
          report.changes.endpointChanges,
        );
      }
      metrics.setPending(store.pendingServiceChanges(), store.pendingEndpointChanges());
      if (report.kind === "waiting") return;
      // Every successful run counts, idle ones included (kube-proxy stamps every sync, so its
      // "time since last sync" alerts hold on a quiet node); an idle run recomputes nothing.
      metrics.observeSync(
        seconds,
        report.kind === "partial" || report.kind === "idle" ? "partial" : "full",
      );
      if (report.plan) metrics.observePlan(planCounts(report.plan.ops));
      if (report.repaired.loadBalancers > 0) {
        metrics.driftRepaired("LoadBalancer", report.repaired.loadBalancers);
      }
      if (report.repaired.endpoints > 0) {
        metrics.driftRepaired("Endpoint", report.repaired.endpoints);
      }
      metrics.setOwnedObjects({
        LoadBalancer: ownership.count("LoadBalancer"),
        Endpoint: ownership.count("Endpoint"),
      });
      metrics.setWaitingPlacement(syncer.waitingPlacement);
      if (syncer.desired) {
        for (const [family, n] of noLocalEndpointCounts(syncer.desired)) {
          metrics.setNoLocalEndpoints(n.internal, n.external, family);
        }
      }
      const now = Date.now();
      for (const t of report.changes?.triggerTimes?.values() ?? []) {
        metrics.observeNetworkProgramming((now - t) / 1000);
      }
    };

    // /healthz: the node is ineligible while being deleted or tainted for deletion, and
    // once its Node object is gone; eligible before it was first seen (as kube-proxy).
    let nodeSeen = false;
    const syncNodeEligibility = () => {
      const node = store.node();
      if (node) nodeSeen = true;
      health.setNodeEligible(node ? isNodeEligible(node) : !nodeSeen);
    };
    const unsubscribe = store.onChange(() => {
      syncNodeEligibility();
      health.queued();
      metrics.syncQueued();
      runner.run();
    });
    cleanups.push(unsubscribe);
    health.queued();
    // The first run waits for the initial lists, so it is not spent waiting
    // (and does not delay the first programming by minSyncPeriod).
    watch.synced.then(() => runner.start(), () => {});

    let stopping: Promise<void> | undefined;
    return {
      store,
      syncer,
      health,
      metrics,
      healthzServer,
      metricsServer,
      ready,
      failed,
      idle: () => runner.idle(),
      stop() {
        stopping ??= (async () => {
          log.info("Stopping hnsproxy; HNS is left as it is");
          await closeAll();
          log.info("Stopped");
        })();
        return stopping;
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/**
 * Service ports with a Local traffic policy and no local endpoint, per family
 * and policy (both families always listed, so a count can drop back to 0).
 */
export function noLocalEndpointCounts(
  desired: DesiredState,
): Map<IpFamily, { internal: number; external: number }> {
  const out = new Map<IpFamily, { internal: number; external: number }>([
    ["IPv4", { internal: 0, external: 0 }],
    ["IPv6", { internal: 0, external: 0 }],
  ]);
  for (const sd of desired.services.values()) {
    for (const n of sd.noLocalEndpoints ?? []) out.get(n.family)![n.trafficPolicy]++;
  }
  return out;
}

function planCounts(ops: readonly PlanOp[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const op of ops) {
    const kind = op.op.startsWith("create")
      ? "create"
      : op.op.startsWith("modify")
      ? "update"
      : op.op.startsWith("delete")
      ? "delete"
      : "adopt";
    out[kind] = (out[kind] ?? 0) + 1;
  }
  return out;
}
