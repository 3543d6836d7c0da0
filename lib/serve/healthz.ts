/**
 * kube-proxy's health server semantics (`pkg/proxy/healthcheck`,
 * proxier_health.go): the proxy is healthy unless a sync was queued and has
 * not completed within the health timeout (kube-proxy uses 2 × syncPeriod);
 * `/healthz` is additionally unhealthy while the node is being deleted.
 * Both answer 200 or 503 with kube-proxy's JSON body, and count their
 * responses in `kubeproxy_proxy_healthz_total` / `kubeproxy_proxy_livez_total`.
 *
 * @module
 */

import { type HttpServer, listen } from "./http.ts";
import type { ProxyMetrics } from "./metrics.ts";

/** The taint the cluster autoscaler puts on a node it is about to delete. */
export const TO_BE_DELETED_TAINT = "ToBeDeletedByClusterAutoscaler";

/**
 * kube-proxy's node eligibility: not being deleted and not tainted
 * {@link TO_BE_DELETED_TAINT}.
 */
export function isNodeEligible(node: {
  deletionTimestamp?: string | null;
  taints?: readonly { key: string }[] | null;
}): boolean {
  if (node.deletionTimestamp) return false;
  return !(node.taints ?? []).some((t) => t.key === TO_BE_DELETED_TAINT);
}

/** Options for {@link ProxyHealth}. */
export interface ProxyHealthOptions {
  /** A queued sync older than this makes the proxy unhealthy, in ms (kube-proxy: 2 × syncPeriod). */
  healthTimeoutMs: number;
  /** Wall clock in epoch milliseconds (default `Date.now`). */
  now?: () => number;
}

/** What /healthz and /livez report. */
export interface HealthStatus {
  /** The proxy itself is healthy (no late queued sync). */
  healthy: boolean;
  /** The node is eligible (not being deleted). */
  nodeEligible: boolean;
  /** Last successful sync, epoch ms, or undefined before the first. */
  lastUpdatedMs: number | undefined;
  /** Time of the check, epoch ms. */
  currentTimeMs: number;
}

/**
 * The proxy's health state. The sync loop calls {@link queued} when a
 * change arrives and {@link updated} after each successful sync; the node
 * watcher calls {@link setNodeEligible}.
 */
export class ProxyHealth {
  readonly #timeoutMs: number;
  readonly #now: () => number;
  #oldestPendingQueued: number | undefined;
  #lastUpdated: number | undefined;
  #nodeEligible = true;

  /** Healthy and eligible until told otherwise (as kube-proxy while starting). */
  constructor(options: ProxyHealthOptions) {
    if (!(options.healthTimeoutMs > 0)) {
      throw new RangeError(`healthTimeoutMs: ${options.healthTimeoutMs} must be > 0`);
    }
    this.#timeoutMs = options.healthTimeoutMs;
    this.#now = options.now ?? Date.now;
  }

  /** A change needs a sync. Only the oldest pending request counts. */
  queued(nowMs: number = this.#now()): void {
    this.#oldestPendingQueued ??= nowMs;
  }

  /** A sync completed successfully: nothing is pending any more. */
  updated(nowMs: number = this.#now()): void {
    this.#oldestPendingQueued = undefined;
    this.#lastUpdated = nowMs;
  }

  /** Whether the node may receive traffic (false while it is being deleted). */
  setNodeEligible(eligible: boolean): void {
    this.#nodeEligible = eligible;
  }

  /** Current node eligibility. */
  get nodeEligible(): boolean {
    return this.#nodeEligible;
  }

  /** The proxy's own health (ignoring the node), as kube-proxy's IsHealthy. */
  isHealthy(nowMs: number = this.#now()): boolean {
    return this.status(nowMs).healthy;
  }

  /** Everything /healthz and /livez need, at one instant. */
  status(nowMs: number = this.#now()): HealthStatus {
    const pending = this.#oldestPendingQueued;
    return {
      healthy: pending === undefined || nowMs - pending < this.#timeoutMs,
      nodeEligible: this.#nodeEligible,
      lastUpdatedMs: this.#lastUpdated,
      currentTimeMs: nowMs,
    };
  }
}

/** An HTTP answer before it becomes a Response. */
export interface HealthResponse {
  /** 200 or 503. */
  status: number;
  /** kube-proxy's JSON body. */
  body: string;
}

/**
 * The /healthz answer: 503 when the proxy is unhealthy or the node is not
 * eligible. As kube-proxy, a healthy answer reports the current time as
 * `lastUpdated` (old clients read it as "the sync loop is alive").
 */
export function healthzResponse(s: HealthStatus): HealthResponse {
  const ok = s.healthy && s.nodeEligible;
  const last = ok ? s.currentTimeMs : s.lastUpdatedMs;
  return {
    status: ok ? 200 : 503,
    body: `{"lastUpdated": ${JSON.stringify(goTime(last))},"currentTime": ${
      JSON.stringify(goTime(s.currentTimeMs))
    }, "nodeEligible": ${s.nodeEligible}}`,
  };
}

/** The /livez answer: like /healthz but ignoring node eligibility. */
export function livezResponse(s: HealthStatus): HealthResponse {
  const last = s.healthy ? s.currentTimeMs : s.lastUpdatedMs;
  return {
    status: s.healthy ? 200 : 503,
    body: `{"lastUpdated": ${JSON.stringify(goTime(last))},"currentTime": ${
      JSON.stringify(goTime(s.currentTimeMs))
    }}`,
  };
}

/**
 * A time as Go's `time.Time.String()` prints it in UTC
 * (`2024-11-22 02:56:54.123 +0000 UTC`); undefined is Go's zero time.
 */
export function goTime(ms: number | undefined): string {
  if (ms === undefined) return "0001-01-01 00:00:00 +0000 UTC";
  const d = new Date(Math.floor(ms));
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  const nanos = Math.round((ms - Math.floor(ms / 1000) * 1000) * 1e6);
  const frac = nanos === 0 ? "" : "." + p(nanos, 9).replace(/0+$/, "");
  return `${p(d.getUTCFullYear(), 4)}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ` +
    `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}${frac} +0000 UTC`;
}

/**
 * The health server: `/healthz` and `/livez` on `address`, counting
 * responses in `metrics` when given. Other paths get 404.
 */
export function serveHealthz(
  address: string,
  health: ProxyHealth,
  metrics?: ProxyMetrics,
): HttpServer {
  return listen("healthz", address, (request) => {
    const path = new URL(request.url).pathname;
    let answer: HealthResponse;
    if (path === "/healthz") {
      answer = healthzResponse(health.status());
      metrics?.healthzServed(answer.status);
    } else if (path === "/livez") {
      answer = livezResponse(health.status());
      metrics?.livezServed(answer.status);
    } else {
      return new Response("404 page not found\n", {
        status: 404,
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    }
    return new Response(answer.body, {
      status: answer.status,
      headers: { "content-type": "application/json", "x-content-type-options": "nosniff" },
    });
  });
}
