/**
 * A bounded-frequency runner in the manner of kube-proxy's: the sync function
 * runs at least once per `maxIntervalMs`, and for requests at most once per
 * `minIntervalMs`; requests that arrive while a run is waiting or in flight
 * coalesce into one further run. Runs never overlap. Timers are injectable so
 * tests drive time by hand.
 *
 * Unlike kube-proxy's runner, only requested runs ({@link
 * BoundedFrequencyRunner.run}) count against `minIntervalMs` for the next
 * request: a change that arrives just after a scheduled run (the max
 * interval, or one asked for with {@link BoundedFrequencyRunner.runAfter})
 * started is handled as soon as that run ends instead of waiting out the min
 * interval. Scheduled runs still wait `minIntervalMs` after the previous run
 * of any kind, so they add at most one run between two requested ones.
 *
 * The runner decides only how runs are spaced; when work is due without a
 * request (a retry, a resync) is for its caller to say with `runAfter`.
 *
 * @module
 */

import { RetryBackoff } from "./backoff.ts";
import { type Logger, nullLogger } from "../log/types.ts";
import { errorMessage } from "../errors.ts";

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
  /**
   * Shortest time between the starts of two requested runs, and between any
   * run and a retry or periodic one, in ms (kube-proxy's minSyncPeriod,
   * default 1000).
   */
  minIntervalMs?: number;
  /**
   * Longest time between the starts of two runs, in ms (kube-proxy's
   * syncPeriod, default 30000); `Infinity` when the caller schedules every
   * run that is due without a request ({@link BoundedFrequencyRunner.runAfter}).
   */
  maxIntervalMs?: number;
  /** Timers (default the real ones). */
  timers?: Timers;
  /** Logger for failed runs. */
  logger?: Logger;
  /** Name in log lines (default `sync`). */
  name?: string;
  /** Backoff for runs that throw (default 1 s doubling to 30 s, on the runner's clock). */
  errorBackoff?: RetryBackoff;
}

/**
 * Runs an async function with bounded frequency. Call {@link start} once,
 * {@link run} whenever something changed, {@link runAfter} for work due
 * later without a change (a retry, a resync), and {@link stop} to finish.
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
  readonly #errorBackoff: RetryBackoff;

  #started = false;
  #stopped = false;
  #requested = false;
  /** When a run asked for with {@link runAfter} is due. */
  #dueAt: number | undefined;
  /** Start of the last run of any kind. */
  #lastStart: number | undefined;
  /** Start of the last run that served a request (what `minIntervalMs` spaces requests from). */
  #lastRequestedStart: number | undefined;
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
      new RetryBackoff({ initialMs: 1000, maxMs: 30_000, clock: this.#timers });
  }

  /** Start the loop; the first run happens right away. */
  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    this.#requested = true;
    this.#schedule();
  }

  /** Request a run: as soon as `minIntervalMs` since the last requested run's start allows. */
  run(): void {
    if (this.#stopped) return;
    this.#requested = true;
    this.#schedule();
  }

  /**
   * Schedule a run no later than `ms` from now (work due to time or a retry
   * rather than to a change); an earlier pending one wins. It waits
   * `minIntervalMs` after the previous run of any kind, and does not hold
   * back later requested runs.
   */
  runAfter(ms: number): void {
    if (this.#stopped) return;
    const at = this.#timers.now() + Math.max(0, ms);
    if (this.#dueAt === undefined || at < this.#dueAt) this.#dueAt = at;
    this.#schedule();
  }

  /** Number of runs started so far. */
  get runs(): number {
    return this.#runs;
  }

  /**
   * Until when no requested run can start (`minIntervalMs` after the last
   * requested run's start), on the timers' clock; undefined before the first.
   */
  get requestsHeldUntil(): number | undefined {
    const last = this.#lastRequestedStart;
    return last === undefined ? undefined : last + this.#min;
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
    const after = (start: number | undefined) =>
      start === undefined ? -Infinity : start + this.#min;
    const anyAllowed = after(this.#lastStart);
    let at: number | undefined;
    const consider = (t: number) => (at = at === undefined ? t : Math.min(at, t));
    if (this.#requested) consider(after(this.#lastRequestedStart));
    if (this.#dueAt !== undefined) consider(Math.max(this.#dueAt, anyAllowed));
    if (this.#lastStart !== undefined && this.#max !== Infinity) {
      consider(this.#lastStart + this.#max);
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
    const now = this.#timers.now();
    // A run does all pending work: it serves a pending request whatever made it start.
    if (this.#requested) this.#lastRequestedStart = now;
    this.#requested = false;
    this.#dueAt = undefined;
    this.#lastStart = now;
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
      this.#errorBackoff.reset();
    } catch (err) {
      const delay = this.#errorBackoff.fail();
      this.#logger.error("Run failed; retrying", {
        runner: this.#name,
        err: errorMessage(err),
        retryInMs: delay,
      });
      this.runAfter(delay);
    }
  }

  #notifyIdle(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
