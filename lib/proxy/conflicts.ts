/**
 * Load balancer keys a foreign HNS object holds ("conflicts"), tracked across
 * syncs so that they are reported, not fought and not spammed.
 *
 * Rules:
 * - A conflict is reported (a warning and an `appeared` report) when it is
 *   first seen, or when another foreign object holds the key now.
 * - While it lasts it is reported again (`persists`) at most once per step
 *   of an exponential backoff per key (default 5 s doubling, capped at
 *   5 min, no jitter: keys that appeared together are reported together).
 *   Seeing it again in a sync reports nothing.
 * - It is over once the service no longer wants the key, hnsproxy holds the
 *   key, or no foreign object does: reported once (`cleared`, an info line).
 * - Reports reach the listener in batches, one per call of {@link
 *   ConflictTracker.note}/{@link ConflictTracker.tick}/{@link
 *   ConflictTracker.settle}, so a listener can act once per service per batch.
 *
 * @module
 */

import { type Logger, nullLogger } from "../log/types.ts";
import type { ObjectKey } from "../kube/model.ts";
import { Backoff, type Clock, systemClock } from "./backoff.ts";
import type { LbKey, LbKind, LoadBalancerConflict } from "./model.ts";

/** Every kind of load balancer key, for gauges that must drop back to 0. */
export const LB_KINDS: readonly LbKind[] = [
  "clusterIP",
  "nodePort",
  "externalIP",
  "ingress",
  "healthCheck",
];

/** One key a foreign object holds, as tracked. */
export interface TrackedConflict {
  /** The load balancer key, e.g. `lb/tcp/10.96.0.10:80`. */
  key: LbKey;
  /** The service that wants it (`namespace/name`; "" when unknown). */
  serviceKey: ObjectKey;
  /** What address of the service it is. */
  kind: LbKind;
  /** HNS ID of the foreign object holding the key. */
  holderId: string;
  /** When it was first seen (clock ms). */
  since: number;
  /** How many times it was reported (`appeared` counts as the first). */
  reports: number;
}

/** What a report says about a conflict. */
export type ConflictChange = "appeared" | "persists" | "cleared";

/** One report. */
export interface ConflictReport {
  /** What changed. */
  change: ConflictChange;
  /** The conflict (a snapshot). */
  conflict: TrackedConflict;
  /** Why it cleared (`cleared` only). */
  reason?: "programmed" | "holderGone" | "notWanted";
}

/** What a conflict's key looks like now, for {@link ConflictTracker.settle}. */
export interface ConflictFacts {
  /** The service that wants the key now, if any. */
  wantedBy(key: LbKey): ObjectKey | undefined;
  /** Whether hnsproxy holds the key now. */
  programmed(key: LbKey): boolean;
  /** The foreign object holding the key, as far as hnsproxy knows. */
  holder(key: LbKey): string | undefined;
}

/** Options of {@link ConflictTracker}. */
export interface ConflictTrackerOptions {
  /** Logger for the warnings. */
  logger?: Logger;
  /** Clock (default the wall clock). */
  clock?: Clock;
  /** First wait before a conflict is reported again, ms (default 5000). */
  initialMs?: number;
  /** Longest wait between two reports of a conflict, ms (default 300000). */
  maxMs?: number;
  /** The desired load balancer of a key: its kind (the gauge's label) and service. */
  wanted?(key: LbKey): { kind: LbKind; serviceKey: ObjectKey } | undefined;
  /** Receives each batch of reports (events, metrics). */
  onReports?(reports: readonly ConflictReport[]): void;
}

/** The conflicts of one agent; see the module notes. */
export class ConflictTracker {
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #steps: Backoff;
  readonly #entries = new Map<LbKey, TrackedConflict>();
  readonly #onReports?: (reports: readonly ConflictReport[]) => void;
  readonly #wanted?: (key: LbKey) => { kind: LbKind; serviceKey: ObjectKey } | undefined;

  /** An empty tracker. */
  constructor(options: ConflictTrackerOptions = {}) {
    this.#log = options.logger ?? nullLogger;
    this.#clock = options.clock ?? systemClock;
    this.#steps = new Backoff({
      initialMs: options.initialMs ?? 5_000,
      maxMs: options.maxMs ?? 300_000,
      jitter: 0,
      clock: this.#clock,
    });
    this.#onReports = options.onReports;
    this.#wanted = options.wanted;
  }

  /**
   * Conflicts seen by a sync. New ones (or a new holder) are reported now;
   * known ones are left to {@link tick}.
   */
  note(conflicts: readonly LoadBalancerConflict[]): void {
    const reports: ConflictReport[] = [];
    for (const c of conflicts) {
      const known = this.#entries.get(c.key);
      if (known && sameId(known.holderId, c.foreignId)) {
        if (!known.serviceKey && c.serviceKey) known.serviceKey = c.serviceKey;
        continue;
      }
      const wanted = this.#wanted?.(c.key);
      const entry: TrackedConflict = {
        key: c.key,
        serviceKey: c.serviceKey || wanted?.serviceKey || known?.serviceKey || "",
        kind: wanted?.kind ?? known?.kind ?? kindOfKey(c.key),
        holderId: c.foreignId,
        since: this.#clock.now(),
        reports: 1,
      };
      this.#entries.set(c.key, entry);
      this.#steps.reset(c.key);
      const retryInMs = this.#steps.fail(c.key);
      this.#log.warn(
        "A load balancer hnsproxy does not own holds this service's port; leaving it alone",
        fields(entry, { retryInMs }),
      );
      reports.push({ change: "appeared", conflict: { ...entry } });
    }
    this.#emit(reports);
  }

  /** Report the conflicts whose backoff step is over, and start their next step. */
  tick(): void {
    const reports: ConflictReport[] = [];
    for (const entry of this.#entries.values()) {
      if (!this.#steps.ready(entry.key)) continue;
      entry.reports++;
      const retryInMs = this.#steps.fail(entry.key);
      this.#log.warn(
        "A load balancer hnsproxy does not own still holds this service's port; leaving it alone",
        fields(entry, {
          forSeconds: Math.round((this.#clock.now() - entry.since) / 1000),
          nextReportInMs: retryInMs,
        }),
      );
      reports.push({ change: "persists", conflict: { ...entry } });
    }
    this.#emit(reports);
  }

  /** Forget the conflicts that are over (see the module notes), reporting each once. */
  settle(facts: ConflictFacts): void {
    const reports: ConflictReport[] = [];
    for (const entry of [...this.#entries.values()]) {
      const wantedBy = facts.wantedBy(entry.key);
      const reason = wantedBy === undefined || (entry.serviceKey && wantedBy !== entry.serviceKey)
        ? "notWanted"
        : facts.programmed(entry.key)
        ? "programmed"
        : facts.holder(entry.key) === undefined
        ? "holderGone"
        : undefined;
      if (!reason) continue;
      this.#entries.delete(entry.key);
      this.#steps.reset(entry.key);
      this.#log.info("The conflict on this service's port is over", fields(entry, { reason }));
      reports.push({ change: "cleared", conflict: { ...entry }, reason });
    }
    this.#emit(reports);
  }

  /** Whether `key` is blocked by a foreign object. */
  has(key: LbKey): boolean {
    return this.#entries.has(key);
  }

  /** The conflicts now, by key. */
  list(): TrackedConflict[] {
    return [...this.#entries.values()].map((e) => ({ ...e }));
  }

  /** How many keys are blocked now. */
  get size(): number {
    return this.#entries.size;
  }

  /** Blocked keys by kind, every kind listed (0 when none). */
  countsByKind(): Record<LbKind, number> {
    const out = Object.fromEntries(LB_KINDS.map((k) => [k, 0])) as Record<LbKind, number>;
    for (const e of this.#entries.values()) out[e.kind]++;
    return out;
  }

  /** Milliseconds until the next report is due, or undefined when nothing is blocked. */
  nextDelay(): number | undefined {
    return this.#steps.nextDelay();
  }

  #emit(reports: ConflictReport[]): void {
    if (reports.length > 0) this.#onReports?.(reports);
  }
}

function fields(entry: TrackedConflict, extra: Record<string, unknown>): Record<string, unknown> {
  return {
    key: entry.key,
    service: entry.serviceKey || undefined,
    holder: entry.holderId,
    ...extra,
  };
}

function sameId(a: string, b: string): boolean {
  return a.toUpperCase() === b.toUpperCase();
}

/** The kind a key implies when the desired LB is not at hand (a NodePort has no VIP). */
function kindOfKey(key: LbKey): LbKind {
  return /\/nodeport6?:/.test(key) ? "nodePort" : "clusterIP";
}
