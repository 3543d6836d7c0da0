/**
 * The service health-check servers: one HTTP server per healthCheckNodePort
 * of an `externalTrafficPolicy: Local` service, answering as kube-proxy's do
 * (200 with the local endpoint count when this node has local endpoints and
 * the proxy is healthy, 503 otherwise). Servers open and close as the desired
 * state changes; a port that cannot be bound is logged and retried on the
 * next update.
 *
 * @module
 */

import type { ObjectKey } from "../kube/model.ts";
import { type Logger, nullLogger } from "../log/types.ts";
import { type HttpServer, listen } from "../serve/http.ts";
import type { HealthCheckWanted } from "./model.ts";
import { errorMessage } from "../errors.ts";

/** Options of {@link HealthCheckServers}. */
export interface HealthCheckServersOptions {
  /** Logger. */
  logger?: Logger;
  /** Whether the proxy itself is healthy (kube-proxy answers 503 when not). */
  healthy?: () => boolean;
  /** Address to bind (default `0.0.0.0`). */
  bindHost?: string;
}

interface Entry {
  server: HttpServer;
  wanted: HealthCheckWanted;
}

/** The body kube-proxy sends on a service health-check port. */
export function healthCheckBody(wanted: HealthCheckWanted, healthy: boolean): string {
  const [namespace, name] = splitKey(wanted.serviceKey);
  return JSON.stringify({
    service: { namespace, name },
    localEndpoints: wanted.localEndpoints,
    serviceProxyHealthy: healthy,
  });
}

/** The set of health-check servers, kept in line with the desired state. */
export class HealthCheckServers {
  readonly #log: Logger;
  readonly #healthy: () => boolean;
  readonly #host: string;
  readonly #byPort = new Map<number, Entry>();
  #closed = false;

  /** No servers until {@link update}. */
  constructor(options: HealthCheckServersOptions = {}) {
    this.#log = options.logger ?? nullLogger;
    this.#healthy = options.healthy ?? (() => true);
    this.#host = options.bindHost ?? "0.0.0.0";
  }

  /** Ports currently served. */
  ports(): number[] {
    return [...this.#byPort.keys()].sort((a, b) => a - b);
  }

  /** Open, update and close servers to match `wanted` (by service). */
  async update(wanted: ReadonlyMap<ObjectKey, HealthCheckWanted>): Promise<void> {
    if (this.#closed) return;
    const byPort = new Map<number, HealthCheckWanted>();
    for (const w of wanted.values()) byPort.set(w.port, w);
    for (const [port, entry] of [...this.#byPort]) {
      if (byPort.get(port)?.serviceKey === entry.wanted.serviceKey) continue;
      this.#byPort.delete(port);
      await entry.server.close();
      this.#log.info("Closed service health-check server", {
        service: entry.wanted.serviceKey,
        port,
      });
    }
    for (const [port, w] of byPort) {
      const entry = this.#byPort.get(port);
      if (entry) {
        entry.wanted = w;
        continue;
      }
      const address = this.#host.includes(":")
        ? `[${this.#host}]:${port}`
        : `${this.#host}:${port}`;
      try {
        const server = listen("service health check", address, () => this.#answer(port));
        this.#byPort.set(port, { server, wanted: w });
        this.#log.info("Opened service health-check server", { service: w.serviceKey, port });
      } catch (err) {
        this.#log.error("Cannot open service health-check server; will retry", {
          service: w.serviceKey,
          port,
          err: errorMessage(err),
        });
      }
    }
  }

  /** Close every server. */
  async close(): Promise<void> {
    this.#closed = true;
    const entries = [...this.#byPort.values()];
    this.#byPort.clear();
    await Promise.all(entries.map((e) => e.server.close()));
  }

  #answer(port: number): Response {
    const wanted = this.#byPort.get(port)?.wanted;
    if (!wanted) return new Response("service health check closed\n", { status: 503 });
    const healthy = this.#healthy();
    const ok = healthy && wanted.localEndpoints > 0;
    return new Response(healthCheckBody(wanted, healthy), {
      status: ok ? 200 : 503,
      headers: { "content-type": "application/json", "x-content-type-options": "nosniff" },
    });
  }
}

function splitKey(key: ObjectKey): [string, string] {
  const i = key.indexOf("/");
  return i < 0 ? ["", key] : [key.slice(0, i), key.slice(i + 1)];
}
