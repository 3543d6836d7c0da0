/**
 * Event-to-HNS latency: each endpoint change written to the API server is
 * tracked until every load balancer of its service has been written to HNS
 * with the service's new backend count (the probe in the agent host reports
 * LB writes). Used by the incremental, churn and realistic-HNS scenarios.
 *
 * @module
 */

import type { AgentHost } from "./agent_host.ts";
import type { LbWrite } from "./probe.ts";
import { lbIdentity } from "./probe.ts";
import { clusterIpOf, nodePortOf, type ScenarioSpec, SERVICE_PORT } from "./scenario.ts";

/** One change in flight. */
interface Pending {
  service: number;
  writtenAt: number;
  backends: number;
  waiting: Set<string>;
  resolve: (ms: number) => void;
  /** Earlier changes of the same service still pending: the later state includes them. */
  superseded: Pending[];
}

/** Tracks changes until HNS reflects them; see the module notes. */
export class LatencyTracker {
  readonly #spec: ScenarioSpec;
  readonly #pending = new Set<Pending>();
  /** Latencies of the changes done, ms, in completion order. */
  readonly done: number[] = [];

  private constructor(spec: ScenarioSpec) {
    this.#spec = spec;
  }

  /** A tracker listening to the agent's LB writes (until the host's listener is cleared). */
  static async attach(spec: ScenarioSpec, host: AgentHost): Promise<LatencyTracker> {
    const tracker = new LatencyTracker(spec);
    await host.onLbWrite((w) => tracker.#seen(w));
    return tracker;
  }

  /** The LB identities of service `i`. */
  identities(i: number): string[] {
    const ids = [lbIdentity(clusterIpOf(i), SERVICE_PORT)];
    const np = nodePortOf(this.#spec, i);
    if (np !== undefined) ids.push(lbIdentity(undefined, np));
    return ids;
  }

  /**
   * Track a change of service `i` written at `writtenAt` after which the
   * service has `backends` endpoints; resolves with its latency, ms.
   */
  track(i: number, writtenAt: number, backends: number): Promise<number> {
    return new Promise((resolve) => {
      const superseded: Pending[] = [];
      for (const p of this.#pending) {
        if (p.service !== i) continue;
        this.#pending.delete(p);
        superseded.push(p, ...p.superseded);
        p.superseded = [];
      }
      this.#pending.add({
        service: i,
        writtenAt,
        backends,
        waiting: new Set(this.identities(i)),
        resolve,
        superseded,
      });
    });
  }

  /** Changes not yet reflected in HNS. */
  get backlog(): number {
    let n = 0;
    for (const p of this.#pending) n += 1 + p.superseded.length;
    return n;
  }

  /** Forget changes still pending (at the end of a run); returns how many. */
  abandon(): number {
    const n = this.backlog;
    this.#pending.clear();
    return n;
  }

  #seen(w: LbWrite): void {
    for (const p of this.#pending) {
      // A write that began before the API write cannot carry it.
      if (w.startedAt < p.writtenAt || w.backends !== p.backends) continue;
      if (!p.waiting.delete(w.identity)) continue;
      if (p.waiting.size === 0) {
        this.#pending.delete(p);
        for (const q of [...p.superseded, p]) {
          const ms = w.endedAt - q.writtenAt;
          this.done.push(ms);
          q.resolve(ms);
        }
      }
    }
  }
}
