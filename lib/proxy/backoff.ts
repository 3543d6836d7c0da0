/**
 * Exponential backoff with jitter, by the formula of lib/backoff.ts:
 *
 * - {@link Backoff}, per object: a failing HNS object waits 1 s, 2 s, 4 s …
 *   (capped at 5 min) before it is tried again, while every other object
 *   goes ahead.
 * - {@link RetryBackoff}, for one thing retried as a whole (the ownership
 *   record's write, the resync's listing, the lookup of new CNI endpoints):
 *   it never shares a map with objects' keys.
 *
 * Time comes from an injectable clock so tests need no real waiting.
 *
 * @module
 */

import { backoffDelay, type BackoffPolicy } from "../backoff.ts";

/** A source of the current time in milliseconds. */
export interface Clock {
  /** Milliseconds since an arbitrary epoch; never goes backwards. */
  now(): number;
}

/** The wall clock. */
export const systemClock: Clock = { now: () => Date.now() };

/** Options for {@link Backoff}. */
export interface BackoffOptions {
  /** Delay after the first failure in ms (default 1000). */
  initialMs?: number;
  /** Upper bound of the delay in ms (default 300000 = 5 min). */
  maxMs?: number;
  /** Growth factor per consecutive failure (default 2). */
  factor?: number;
  /**
   * Jitter as a fraction of the delay (default 0.1): the delay is scaled by a
   * random factor in [1 - jitter, 1 + jitter], then capped at `maxMs`.
   */
  jitter?: number;
  /** Clock (default the wall clock). */
  clock?: Clock;
  /** Random source in [0, 1) (default Math.random). */
  random?: () => number;
}

/** The backoff state of one key. */
export interface BackoffEntry {
  /** Consecutive failures so far. */
  failures: number;
  /** Earliest time (clock ms) of the next attempt. */
  notBefore: number;
  /** The last error, for logs and plans. */
  lastError?: unknown;
}

/**
 * Exponential backoff per key (a stable object key such as
 * `lb/tcp/10.96.0.10:80`). Keys without failures are always ready.
 */
export class Backoff {
  readonly #policy: BackoffPolicy;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #entries = new Map<string, BackoffEntry>();

  /** A backoff with the given tuning (defaults: 1 s, ×2, capped at 5 min, ±10 %). */
  constructor(options: BackoffOptions = {}) {
    this.#policy = policyOf(options);
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
  }

  /**
   * Record a failure of `key`; returns the delay in ms before it may be tried
   * again.
   */
  fail(key: string, error?: unknown): number {
    const failures = (this.#entries.get(key)?.failures ?? 0) + 1;
    const delay = Math.round(backoffDelay(failures, this.#policy, this.#random));
    this.#entries.set(key, { failures, notBefore: this.#clock.now() + delay, lastError: error });
    return delay;
  }

  /** Forget the failures of `key` (it succeeded or no longer matters). */
  reset(key: string): void {
    this.#entries.delete(key);
  }

  /** Whether `key` may be tried now. */
  ready(key: string): boolean {
    const entry = this.#entries.get(key);
    return entry === undefined || entry.notBefore <= this.#clock.now();
  }

  /** The backoff state of `key`, if it has failed. */
  get(key: string): BackoffEntry | undefined {
    return this.#entries.get(key);
  }

  /** Keys that have failed and not yet succeeded. */
  keys(): string[] {
    return [...this.#entries.keys()];
  }

  /** Number of keys currently backing off or awaiting a retry. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Milliseconds until the earliest failed key becomes ready (0 when one is
   * ready now), or undefined when nothing has failed.
   */
  nextDelay(): number | undefined {
    let earliest: number | undefined;
    for (const entry of this.#entries.values()) {
      if (earliest === undefined || entry.notBefore < earliest) earliest = entry.notBefore;
    }
    return earliest === undefined ? undefined : Math.max(0, earliest - this.#clock.now());
  }
}

/**
 * The backoff of one thing retried as a whole: how long to wait after its
 * consecutive failures, and whether it may be tried now.
 */
export class RetryBackoff {
  readonly #policy: BackoffPolicy;
  readonly #clock: Clock;
  readonly #random: () => number;
  #failures = 0;
  #notBefore = -Infinity;

  /** A backoff with the given tuning (defaults as {@link Backoff}'s). */
  constructor(options: BackoffOptions = {}) {
    this.#policy = policyOf(options);
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
  }

  /** Record a failure; returns the delay in ms before the next attempt. */
  fail(): number {
    this.#failures++;
    const delay = Math.round(backoffDelay(this.#failures, this.#policy, this.#random));
    this.#notBefore = this.#clock.now() + delay;
    return delay;
  }

  /** Forget the failures (it succeeded or no longer matters). */
  reset(): void {
    this.#failures = 0;
    this.#notBefore = -Infinity;
  }

  /** Whether it has failed and not yet succeeded. */
  get failing(): boolean {
    return this.#failures > 0;
  }

  /** Whether it may be tried now. */
  ready(): boolean {
    return this.#notBefore <= this.#clock.now();
  }

  /** Milliseconds until it may be tried (0 when ready), or undefined when not failing. */
  nextDelay(): number | undefined {
    return this.#failures > 0 ? Math.max(0, this.#notBefore - this.#clock.now()) : undefined;
  }
}

/** The formula's policy for these options (±jitter around the exponential delay). */
function policyOf(options: BackoffOptions): BackoffPolicy {
  const jitter = options.jitter ?? 0.1;
  return {
    initialMs: options.initialMs ?? 1000,
    maxMs: options.maxMs ?? 300_000,
    factor: options.factor ?? 2,
    jitter: [1 - jitter, 1 + jitter],
  };
}
