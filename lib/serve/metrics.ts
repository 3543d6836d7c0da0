/**
 * Prometheus metrics: kube-proxy's (same names, types, labels and buckets
 * as kubernetes `pkg/proxy/metrics`, including the two winkernel registers
 * but never fills) and hnsproxy's own (HNS calls, owned objects, plan
 * sizes, drift repairs), in a registry per instance, plus the metrics HTTP
 * server.
 *
 * @module
 */

import { Counter, Gauge, Histogram, Registry } from "./exposition.ts";
import { formatHResult } from "../hns/errors.ts";
import { type HttpServer, listen } from "./http.ts";
import { LabeledHistogram } from "./labeled_histogram.ts";

/** kube-proxy's IP family label values. */
export type IPFamily = "IPv4" | "IPv6";

/** Which kind of sync a duration belongs to. */
export type SyncKind = "full" | "partial";

/** Options for {@link ProxyMetrics}. */
export interface ProxyMetricsOptions {
  /** Wall clock in epoch milliseconds, for the `*_timestamp_seconds` gauges (default `Date.now`). */
  now?: () => number;
  /** Value of `hnsproxy_build_info{version}` (default `unknown`). */
  version?: string;
}

/** `prometheus.ExponentialBuckets(start, factor, count)`. */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => start * factor ** i);
}

/** `prometheus.LinearBuckets(start, width, count)`. */
export function linearBuckets(start: number, width: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => start + width * i);
}

const SYNC_BUCKETS = exponentialBuckets(0.001, 2, 15);
// As upstream's merge(): a leading 0, then 0.25s, 0.5s, 1..59s, 60..115s, 2..5min.
const NETWORK_PROGRAMMING_BUCKETS = [
  0,
  ...linearBuckets(0.25, 0.25, 2),
  ...linearBuckets(1, 1, 59),
  ...linearBuckets(60, 5, 12),
  ...linearBuckets(120, 30, 7),
];
const HNS_CALL_BUCKETS = exponentialBuckets(0.0005, 2, 15);
const PLAN_BUCKETS = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

/**
 * The metrics the agent updates. One instance owns one registry, so tests
 * can make as many as they like.
 */
export class ProxyMetrics {
  /** The registry holding every metric below. */
  readonly registry: Registry = new Registry();
  readonly #now: () => number;

  readonly #syncDuration: Histogram<"ip_family">;
  readonly #syncFull: Histogram<"ip_family">;
  readonly #syncPartial: Histogram<"ip_family">;
  readonly #lastSync: Gauge<"ip_family">;
  readonly #lastQueued: Gauge<"ip_family">;
  readonly #networkProgramming: Histogram<"ip_family">;
  readonly #endpointPending: Gauge;
  readonly #endpointTotal: Counter;
  readonly #servicePending: Gauge;
  readonly #serviceTotal: Counter;
  readonly #noLocal: Gauge<"traffic_policy" | "ip_family">;
  readonly #healthz: Counter<"code">;
  readonly #livez: Counter<"code">;
  readonly #hnsCalls: LabeledHistogram;
  readonly #hnsErrors: Counter<"operation" | "hresult">;
  readonly #owned: Gauge<"kind">;
  readonly #plan: Histogram<"op">;
  readonly #planTotal: Counter<"op">;
  readonly #drift: Counter<"kind">;
  readonly #syncFailures: Counter;
  readonly #waitingPlacement: Gauge;
  readonly #conflicts: Gauge<"kind">;
  readonly #eventsDropped: Counter<"reason">;

  /** Registers every metric in a fresh registry. */
  constructor(options: ProxyMetricsOptions = {}) {
    this.#now = options.now ?? Date.now;
    const registers = [this.registry];
    const histogram = <L extends string>(
      name: string,
      help: string,
      buckets: number[],
      labelNames: L[],
    ) => new Histogram<L>({ name, help, buckets, labelNames, registers });
    const gauge = <L extends string>(name: string, help: string, labelNames: L[]) =>
      new Gauge<L>({ name, help, labelNames, registers });
    const counter = <L extends string>(name: string, help: string, labelNames: L[]) =>
      new Counter<L>({ name, help, labelNames, registers });

    this.#syncDuration = histogram(
      "kubeproxy_sync_proxy_rules_duration_seconds",
      "SyncProxyRules latency in seconds",
      SYNC_BUCKETS,
      ["ip_family"],
    );
    this.#syncFull = histogram(
      "kubeproxy_sync_full_proxy_rules_duration_seconds",
      "SyncProxyRules latency in seconds for full resyncs",
      SYNC_BUCKETS,
      ["ip_family"],
    );
    this.#syncPartial = histogram(
      "kubeproxy_sync_partial_proxy_rules_duration_seconds",
      "SyncProxyRules latency in seconds for partial resyncs",
      SYNC_BUCKETS,
      ["ip_family"],
    );
    this.#lastSync = gauge(
      "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
      "The last time proxy rules were successfully synced",
      ["ip_family"],
    );
    this.#lastQueued = gauge(
      "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
      "The last time a sync of proxy rules was queued",
      ["ip_family"],
    );
    this.#networkProgramming = histogram(
      "kubeproxy_network_programming_duration_seconds",
      "In Cluster Network Programming Latency in seconds",
      NETWORK_PROGRAMMING_BUCKETS,
      ["ip_family"],
    );
    this.#endpointPending = gauge(
      "kubeproxy_sync_proxy_rules_endpoint_changes_pending",
      "Pending proxy rules Endpoint changes",
      [],
    );
    this.#endpointTotal = counter(
      "kubeproxy_sync_proxy_rules_endpoint_changes_total",
      "Cumulative proxy rules Endpoint changes",
      [],
    );
    this.#servicePending = gauge(
      "kubeproxy_sync_proxy_rules_service_changes_pending",
      "Pending proxy rules Service changes",
      [],
    );
    this.#serviceTotal = counter(
      "kubeproxy_sync_proxy_rules_service_changes_total",
      "Cumulative proxy rules Service changes",
      [],
    );
    this.#noLocal = gauge(
      "kubeproxy_sync_proxy_rules_no_local_endpoints_total",
      "Number of services with a Local traffic policy and no endpoints",
      ["traffic_policy", "ip_family"],
    );
    this.#healthz = counter(
      "kubeproxy_proxy_healthz_total",
      "Cumulative proxy healthz HTTP status",
      ["code"],
    );
    this.#livez = counter(
      "kubeproxy_proxy_livez_total",
      "Cumulative proxy livez HTTP status",
      ["code"],
    );
    // Every HNS call passes here: counted and timed without prom-client's per-call label hashing.
    this.#hnsCalls = new LabeledHistogram({
      labelName: "operation",
      buckets: HNS_CALL_BUCKETS,
      counter: {
        name: "hnsproxy_hns_calls_total",
        help: "HNS (HCN API) calls made, by operation",
      },
      histogram: {
        name: "hnsproxy_hns_call_duration_seconds",
        help: "HNS call latency in seconds, by operation",
      },
    });
    this.#hnsCalls.registerCounter(this.registry);
    this.#hnsErrors = counter(
      "hnsproxy_hns_call_errors_total",
      "HNS calls that failed, by operation and HRESULT",
      ["operation", "hresult"],
    );
    this.#hnsCalls.registerHistogram(this.registry);
    this.#owned = gauge(
      "hnsproxy_owned_objects",
      "HNS objects hnsproxy owns, by kind",
      ["kind"],
    );
    this.#plan = histogram(
      "hnsproxy_sync_plan_operations",
      "Operations in one sync's plan, by operation",
      PLAN_BUCKETS,
      ["op"],
    );
    this.#planTotal = counter(
      "hnsproxy_sync_plan_operations_total",
      "Plan operations applied, by operation",
      ["op"],
    );
    this.#drift = counter(
      "hnsproxy_drift_repairs_total",
      "HNS objects found missing or changed out of band and repaired, by kind",
      ["kind"],
    );
    this.#syncFailures = counter(
      "hnsproxy_sync_failures_total",
      "Syncs that failed and will be retried",
      [],
    );
    this.#waitingPlacement = gauge(
      "hnsproxy_endpoints_waiting_placement",
      "Remote pod IPs on overlay not programmed because no RemoteSubnetRoute and no Node places them yet",
      [],
    );
    this.#conflicts = gauge(
      "hnsproxy_conflicts",
      "Service load balancer keys held by an HNS object hnsproxy does not own, by kind of address",
      ["kind"],
    );
    this.#eventsDropped = counter(
      "hnsproxy_events_dropped_total",
      "Kubernetes Events not written, by reason (rejected, unreachable, queueFull)",
      ["reason"],
    );
    gauge("hnsproxy_build_info", "A metric with a constant '1' value labeled by version", [
      "version",
    ]).set({ version: options.version ?? "unknown" }, 1);
    new Gauge({
      name: "process_start_time_seconds",
      help: "Start time of the process since unix epoch in seconds.",
      registers,
    }).set(Math.round(performance.timeOrigin) / 1000);
    new Gauge({
      name: "process_resident_memory_bytes",
      help: "Resident memory size in bytes.",
      registers,
      collect() {
        this.set(Deno.memoryUsage().rss);
      },
    });
  }

  /**
   * A successful sync took `seconds`: observe the sync histograms (all
   * syncs, and the full or partial one) and stamp the last-sync gauge.
   */
  observeSync(seconds: number, kind: SyncKind, ipFamily: IPFamily = "IPv4"): void {
    this.#syncDuration.observe({ ip_family: ipFamily }, seconds);
    (kind === "full" ? this.#syncFull : this.#syncPartial).observe(
      { ip_family: ipFamily },
      seconds,
    );
    this.#lastSync.set({ ip_family: ipFamily }, this.#now() / 1000);
  }

  /** A sync was requested (a change arrived): stamp the last-queued gauge. */
  syncQueued(ipFamily: IPFamily = "IPv4"): void {
    this.#lastQueued.set({ ip_family: ipFamily }, this.#now() / 1000);
  }

  /** A sync failed (it will be retried). */
  syncFailed(): void {
    this.#syncFailures.inc();
  }

  /** Changes seen but not yet synced. */
  setPending(services: number, endpoints: number): void {
    this.#servicePending.set(services);
    this.#endpointPending.set(endpoints);
  }

  /** Count changes as they arrive (the `_changes_total` counters). */
  countChanges(services: number, endpoints: number): void {
    if (services > 0) this.#serviceTotal.inc(services);
    if (endpoints > 0) this.#endpointTotal.inc(endpoints);
  }

  /**
   * Network programming latency: from an EndpointSlice's
   * `endpoints.kubernetes.io/last-change-trigger-time` to the sync that
   * programmed it.
   */
  observeNetworkProgramming(seconds: number, ipFamily: IPFamily = "IPv4"): void {
    this.#networkProgramming.observe({ ip_family: ipFamily }, Math.max(0, seconds));
  }

  /** Services with a Local traffic policy and no local endpoints, after a sync. */
  setNoLocalEndpoints(internal: number, external: number, ipFamily: IPFamily = "IPv4"): void {
    this.#noLocal.set({ traffic_policy: "internal", ip_family: ipFamily }, internal);
    this.#noLocal.set({ traffic_policy: "external", ip_family: ipFamily }, external);
  }

  /**
   * One HNS call: count it, observe its latency, and count it as an error
   * when `hresult` is a failure (negative as int32). `hresult` may be a
   * number or an already formatted `0x803B0013`. A `seconds` that is not
   * a finite number throws a TypeError and nothing is recorded.
   */
  observeHnsCall(operation: string, seconds: number, hresult?: number | string): void {
    this.#hnsCalls.observe(operation, seconds);
    if (hresult === undefined) return;
    const code = typeof hresult === "number" ? hresult : Number.parseInt(hresult, 16);
    if ((code | 0) < 0) this.#hnsErrors.inc({ operation, hresult: formatHResult(code) });
  }

  /** The number of owned HNS objects of each kind (kinds not listed keep their value). */
  setOwnedObjects(counts: Record<string, number>): void {
    for (const [kind, n] of Object.entries(counts)) this.#owned.set({ kind }, n);
  }

  /** One sync's plan: operations by kind (e.g. `{create: 3, update: 1, delete: 0}`). */
  observePlan(ops: Record<string, number>): void {
    for (const [op, n] of Object.entries(ops)) {
      this.#plan.observe({ op }, n);
      if (n > 0) this.#planTotal.inc({ op }, n);
    }
  }

  /** Objects found missing or changed out of band and repaired. */
  driftRepaired(kind: string, count = 1): void {
    if (count > 0) this.#drift.inc({ kind }, count);
  }

  /** Keys blocked by foreign HNS objects now, by kind (kinds not listed keep their value). */
  setConflicts(counts: Record<string, number>): void {
    for (const [kind, n] of Object.entries(counts)) this.#conflicts.set({ kind }, n);
  }

  /** Remote pod IPs waiting for their placement now. */
  setWaitingPlacement(n: number): void {
    this.#waitingPlacement.set(n);
  }

  /** A Kubernetes Event was dropped for `reason`. */
  eventDropped(reason: string): void {
    this.#eventsDropped.inc({ reason });
  }

  /** A /healthz response was sent with this status. */
  healthzServed(code: number): void {
    this.#healthz.inc({ code: String(code) });
  }

  /** A /livez response was sent with this status. */
  livezServed(code: number): void {
    this.#livez.inc({ code: String(code) });
  }

  /** Prometheus text exposition of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** The content type of {@link text}. */
  get contentType(): string {
    return this.registry.contentType;
  }
}

/** Options for {@link serveMetrics}. */
export interface MetricsServerOptions {
  /** Body of `/proxyMode` (default `kernelspace`). */
  proxyMode?: string;
  /** Returns the object served as JSON on `/configz`; absent: no /configz. */
  configz?: () => unknown;
}

/**
 * The metrics server, as kube-proxy's: `/metrics` (Prometheus text),
 * `/healthz` (`ok`), `/proxyMode` and, when given, `/configz`.
 */
export function serveMetrics(
  address: string,
  metrics: ProxyMetrics,
  options: MetricsServerOptions = {},
): HttpServer {
  const proxyMode = options.proxyMode ?? "kernelspace";
  const text = (body: string, status = 200) =>
    new Response(body, {
      status,
      headers: { "content-type": "text/plain; charset=utf-8", "x-content-type-options": "nosniff" },
    });
  return listen("metrics", address, async (request) => {
    const path = new URL(request.url).pathname;
    switch (path) {
      case "/metrics":
        return new Response(await metrics.text(), {
          headers: { "content-type": metrics.contentType },
        });
      case "/healthz":
        return text("ok");
      case "/proxyMode":
        return text(proxyMode);
      case "/configz":
        if (options.configz) {
          return new Response(JSON.stringify(options.configz()), {
            headers: { "content-type": "application/json" },
          });
        }
    }
    return text("404 page not found\n", 404);
  });
}
