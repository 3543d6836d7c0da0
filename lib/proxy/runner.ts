/**
 * A bounded-frequency runner in the manner of kube-proxy's: the sync function
 * runs at most once per `minIntervalMs` and at least once per
 * `maxIntervalMs`; requests that arrive while a run is waiting or in flight
 * coalesce into one further run. Runs never overlap. Timers are injectable
 * so tests drive time by hand.
 *
 * @module
 */

import { Backoff } from "./backoff.ts";
import { type Logger, nullLogger } from "../log/types.ts";

/** The timer functions the runner needs. */
export interface Timers {
  /** Milliseconds since an arbitrary epoch; never goes backwards. */
  now(): number;
  /** Call `fn` once after `ms` milliseconds; returns a handle for {@link Timers.clearTimeout}. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancel a pending {@link Timers.setTimeout}. */
  clearTimeout(handle: unknown): void;
}

/** Real timers (performance.now and the global setTimeout). */
export const systemTimers: Timers = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as number),
};

/** Options for {@link BoundedFrequencyRunner}. */
export interface RunnerOptions {
  /** Shortest time between the starts of two runs, in ms (kube-proxy's minSyncPeriod, default 1000). */
  minIntervalMs?: number;
  /** Longest time between the starts of two runs, in ms (kube-proxy's syncPeriod, default 30000). */
  maxIntervalMs?: number;
  /** Timers (default the real ones). */
  timers?: Timers;
  /** Logger for failed runs. */
  logger?: Logger;
  /** Name in log lines (default `sync`). */
  name?: string;
  /** Backoff for runs that throw (default 1 s doubling to 30 s, on the runner's clock). */
  errorBackoff?: Backoff;
}

/**
 * Runs an async function with bounded frequency. Call {@link start} once,
 * {@link run} whenever something changed, {@link retryAfter} when a part of
 * the work must be tried again later, and {@link stop} to finish.
 *
 * A run that throws is logged and retried with exponential backoff (never
 * sooner than `minIntervalMs`).
 */
export class BoundedFrequencyRunner {
  readonly #fn: () => Promise<void>;
  readonly #min: number;
  readonly #max: number;
  readonly #timers: Timers;
  readonly #logger: Logger;
  readonly #name: string;
  readonly #errorBackoff: Backoff;

  #started = false;
  #stopped = false;
  #requested = false;
  #retryAt: number | undefined;
  #lastStart: number | undefined;
  #timer: unknown;
  #timerAt: number | undefined;
  #inFlight: Promise<void> | undefined;
  #runs = 0;
  #idleWaiters: Array<() => void> = [];

  /** A runner for `fn`; nothing runs until {@link start}. */
  constructor(fn: () => Promise<void>, options: RunnerOptions = {}) {
    this.#fn = fn;
    this.#min = options.minIntervalMs ?? 1000;
    this.#max = options.maxIntervalMs ?? 30_000;
    if (!(this.#min >= 0) || !(this.#max > 0) || this.#max < this.#min) {
      throw new RangeError(
        `runner intervals invalid: min ${this.#min} ms, max ${this.#max} ms (need 0 <= min <= max, max > 0)`,
      );
    }
    this.#timers = options.timers ?? systemTimers;
    this.#logger = options.logger ?? nullLogger;
    this.#name = options.name ?? "sync";
    this.#errorBackoff = options.errorBackoff ??
      new Backoff({ initialMs: 1000, maxMs: 30_000, clock: this.#timers });
  }

  /** Start the loop; the first run happens right away. */
  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    this.#requested = true;
    this.#schedule();
  }

  /** Request a run: as soon as `minIntervalMs` since the last run's start allows. */
  run(): void {
    if (this.#stopped) return;
    this.#requested = true;
    this.#schedule();
  }

  /**
   * Request a run no later than `ms` from now (still bounded by
   * `minIntervalMs`); an earlier pending request wins.
   */
  retryAfter(ms: number): void {
    if (this.#stopped) return;
    const at = this.#timers.now() + Math.max(0, ms);
    if (this.#retryAt === undefined || at < this.#retryAt) this.#retryAt = at;
    this.#schedule();
  }

  /** Number of runs started so far. */
  get runs(): number {
    return this.#runs;
  }

  /** Whether a run is executing now. */
  get running(): boolean {
    return this.#inFlight !== undefined;
  }

  /** Resolves when no run is executing and none is due right now. */
  idle(): Promise<void> {
    if (this.#inFlight === undefined && !this.#dueNow()) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Stop: no further runs; resolves after the run in flight, if any, has finished. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#clearTimer();
    if (this.#inFlight) await this.#inFlight;
    this.#notifyIdle();
  }

  /** When the next run should start, or undefined when nothing is due. */
  #nextAt(): number | undefined {
    const earliestAllowed = this.#lastStart === undefined ? -Infinity : this.#lastStart + this.#min;
    let at: number | undefined;
    if (this.#requested) at = earliestAllowed;
    if (this.#retryAt !== undefined) {
      const retry = Math.max(this.#retryAt, earliestAllowed);
      at = at === undefined ? retry : Math.min(at, retry);
    }
    if (this.#lastStart !== undefined) {
      const periodic = this.#lastStart + this.#max;
      at = at === undefined ? periodic : Math.min(at, periodic);
    }
    return at;
  }

  #dueNow(): boolean {
    const at = this.#nextAt();
    return at !== undefined && at <= this.#timers.now();
  }

  #schedule(): void {
    if (!this.#started || this.#stopped || this.#inFlight) return;
    const at = this.#nextAt();
    if (at === undefined) return;
    if (this.#timer !== undefined && this.#timerAt !== undefined && this.#timerAt <= at) return;
    this.#clearTimer();
    const delay = Math.max(0, at - this.#timers.now());
    this.#timerAt = at;
    this.#timer = this.#timers.setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = undefined;
      this.#tick();
    }, delay);
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = undefined;
  }

  #tick(): void {
    if (this.#stopped || this.#inFlight) return;
    if (!this.#dueNow()) {
      this.#schedule();
      return;
    }
    this.#requested = false;
    this.#retryAt = undefined;
    this.#lastStart = this.#timers.now();
    this.#runs++;
    this.#inFlight = this.#invoke().finally(() => {
      this.#inFlight = undefined;
      this.#schedule();
      if (!this.#dueNow()) this.#notifyIdle();
    });
  }

  async #invoke(): Promise<void> {
    try {
      await this.#fn();
      this.#errorBackoff.reset(this.#name);
    } catch (err) {
      const delay = this.#errorBackoff.fail(this.#name, err);
      this.#logger.error("Run failed; retrying", {
        runner: this.#name,
        err: err instanceof Error ? err.message : String(err),
        retryInMs: delay,
      });
      this.retryAfter(delay);
    }
  }

  #notifyIdle(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
