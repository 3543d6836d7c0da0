/**
 * Remote pod IPs on overlay that wait for their placement (a
 * `PlacementUnknown` diagnostic: in the cluster's pod ranges, but no
 * RemoteSubnetRoute and no Node places them), and when to re-read the
 * network's routes for them.
 *
 * - Each waiting IP is logged once when it starts waiting and once when it
 *   stops (placed, or gone from the cluster), however many services name it
 *   and however many runs recompute them. {@link PlacementWaits.count} is
 *   the number of IPs waiting now (the `hnsproxy_endpoints_waiting_placement`
 *   gauge).
 * - An IP that starts waiting asks for a read of the routes (the CNI most
 *   likely adds the route of a joining node about now), at most once per
 *   {@link MIN_READ_INTERVAL_MS}; while IPs stay waiting after a read, or a
 *   read fails, reads repeat by backoff (2 s doubling to 30 s).
 *
 * @module
 */

import type { ObjectKey } from "../kube/model.ts";
import type { Logger } from "../log/types.ts";
import { type Clock, RetryBackoff } from "./backoff.ts";
import type { DesiredState, ServiceDesired } from "./model.ts";
import { ServiceDiagnostics } from "./service_diagnostics.ts";

/** The diagnostic reason of a remote pod IP that waits for its placement. */
export const PLACEMENT_UNKNOWN = "PlacementUnknown";
/** Shortest time between two reads of the routes asked for by new waiting IPs. */
export const MIN_READ_INTERVAL_MS = 2_000;
/** Longest wait between reads while IPs stay waiting. */
const READ_MAX_MS = 30_000;

/** Options of {@link PlacementWaits}. */
export interface PlacementWaitsOptions {
  /** Clock of the rate limit and backoff. */
  clock: Clock;
  /** Logger. */
  logger: Logger;
}

/** The waiting pod IPs of the desired state. One per syncer. */
export class PlacementWaits {
  readonly #o: PlacementWaitsOptions;
  /** The `PlacementUnknown` diagnostics, by service. */
  readonly #byService = new ServiceDiagnostics(PLACEMENT_UNKNOWN);
  /** IPs logged as waiting, with the services that named them then. */
  readonly #logged = new Map<string, string>();
  /** IPs waiting when the routes were last read. */
  #readFor = new Set<string>();
  #lastRead = -Infinity;
  readonly #backoff: RetryBackoff;

  /** Nothing waits yet. */
  constructor(options: PlacementWaitsOptions) {
    this.#o = options;
    this.#backoff = new RetryBackoff({
      initialMs: MIN_READ_INTERVAL_MS,
      maxMs: READ_MAX_MS,
      clock: options.clock,
    });
  }

  /**
   * Follow a new desired state: the waiting IPs of the changed services
   * only, or (no `changed`) of all of them.
   */
  track(
    desired: DesiredState | undefined,
    changed?: ReadonlyMap<ObjectKey, ServiceDesired | undefined>,
  ): void {
    this.#byService.track(desired, changed);
  }

  /** How many distinct pod IPs wait for their placement now. */
  count(): number {
    return this.#waiting().size;
  }

  /**
   * Whether the routes should be read now: an IP started waiting since the
   * last read and the rate limit allows, or the backoff is due.
   */
  readDue(): boolean {
    const waiting = this.#waiting();
    if (waiting.size === 0) return false;
    if (this.#backoff.failing && this.#backoff.ready()) return true;
    return this.#hasUnread(waiting) &&
      this.#o.clock.now() - this.#lastRead >= MIN_READ_INTERVAL_MS;
  }

  /** Milliseconds until the next read is due, if any IP waits. */
  retryInMs(): number | undefined {
    const waiting = this.#waiting();
    if (waiting.size === 0) return undefined;
    const delays: number[] = [];
    const backoff = this.#backoff.nextDelay();
    if (backoff !== undefined) delays.push(backoff);
    if (this.#hasUnread(waiting)) {
      delays.push(Math.max(0, this.#lastRead + MIN_READ_INTERVAL_MS - this.#o.clock.now()));
    }
    return delays.length > 0 ? Math.min(...delays) : undefined;
  }

  /** The routes are being read now, for the IPs waiting now. */
  reading(): void {
    this.#lastRead = this.#o.clock.now();
    this.#readFor = this.#waiting();
  }

  /** A read failed, or found the routes unchanged: read again by backoff. */
  failed(): void {
    this.#backoff.fail();
  }

  /**
   * After a run: log the IPs that started or stopped waiting; back off
   * while IPs stay waiting after a read, reset once none waits.
   */
  settle(): void {
    const waiting = this.#waiting();
    for (const [ip, services] of this.#logged) {
      if (waiting.has(ip)) continue;
      this.#logged.delete(ip);
      this.#o.logger.info("Endpoint no longer waits for its placement", {
        endpoint: ip,
        services,
      });
    }
    for (const ip of waiting) {
      if (this.#logged.has(ip)) continue;
      const services = this.#servicesOf(ip);
      this.#logged.set(ip, services);
      this.#o.logger.warn(
        "Endpoint waits for its placement: it is in the cluster's pod ranges but no RemoteSubnetRoute and no Node places it yet; not programmed until one does",
        { endpoint: ip, services },
      );
    }
    if (waiting.size === 0) this.#backoff.reset();
    else if (!this.#backoff.failing && !this.#hasUnread(waiting)) this.#backoff.fail();
  }

  #hasUnread(waiting: ReadonlySet<string>): boolean {
    for (const ip of waiting) if (!this.#readFor.has(ip)) return true;
    return false;
  }

  #waiting(): Set<string> {
    return this.#byService.endpointIps();
  }

  #servicesOf(ip: string): string {
    const out: string[] = [];
    for (const [key, list] of this.#byService.entries()) {
      if (list.some((d) => d.endpointIp === ip)) out.push(key);
    }
    return out.sort().join(",");
  }
}
