/**
 * Full garbage collections of the agent's heap, made only where no change
 * waits for them, so that V8 collects before its heap grows to its own limit
 * (1 + `--heap-growing-percent` × what the last full collection left; with
 * the memory reducer off, V8 keeps whatever room it grew).
 *
 * Rules:
 * - Only where V8's `gc` is exposed (`--expose-gc`, among the agent's flags);
 *   without it nothing is ever collected here.
 * - Only in a window where the runner holds every change anyway: after a run
 *   that served a change, until `minSyncPeriod` after that run's start. A
 *   collection is made only when the window left is at least
 *   {@link WINDOW_FACTOR} times what it is expected to take, so a change
 *   that arrives meanwhile starts its run no later than without it.
 * - A collection's time grows with the heap it collects: it is expected to
 *   take the used heap's size times the slowest time per MiB measured so far
 *   ({@link FIRST_GUESS_MS_PER_MIB} before the first).
 * - The first window after a start collects what the start left behind;
 *   after that, only once the used heap has grown by {@link GROWTH} over
 *   what the last collection left (V8's own or this one's): each costs a
 *   full mark-compact on the event loop's thread, so they come as often as
 *   the agent allocates, not as often as it runs.
 *
 * @module
 */

/** The used heap's growth over the last collection's that makes one due (0.25: a quarter). */
export const GROWTH = 0.25;

/** How many times a collection's expected time a window must last to take one. */
export const WINDOW_FACTOR = 2;

/** What a collection is taken to last per MiB of used heap, ms, before one was timed. */
export const FIRST_GUESS_MS_PER_MIB = 1.5;

const MiB = 1 << 20;

/** What {@link HeapCollector} reads and calls; the defaults are the runtime's. */
export interface HeapCollectorOptions {
  /** A full, synchronous collection; undefined: none can be made. */
  collect?: () => void;
  /** The used heap now, bytes. */
  heapUsed?: () => number;
  /** Milliseconds on the runner's clock. */
  now?: () => number;
}

/** V8's `gc`, when the runtime exposes it. */
function exposedGc(): (() => void) | undefined {
  const gc = (globalThis as { gc?: () => void }).gc;
  return typeof gc === "function" ? () => gc() : undefined;
}

/** Collects the heap in the windows the runner gives (module notes). */
export class HeapCollector {
  readonly #collect: (() => void) | undefined;
  readonly #heapUsed: () => number;
  readonly #now: () => number;
  /** Used heap after the last collection seen, bytes (0: none yet). */
  #floor = 0;
  /** The slowest collection so far, ms per MiB of the heap it collected. */
  #msPerMiB = FIRST_GUESS_MS_PER_MIB;
  #collections = 0;

  constructor(options: HeapCollectorOptions = {}) {
    this.#collect = "collect" in options ? options.collect : exposedGc();
    this.#heapUsed = options.heapUsed ?? (() => Deno.memoryUsage().heapUsed);
    this.#now = options.now ?? (() => performance.now());
  }

  /** Whether collections can be made at all. */
  get enabled(): boolean {
    return this.#collect !== undefined;
  }

  /** Collections made so far. */
  get collections(): number {
    return this.#collections;
  }

  /** What a collection of a used heap of `bytes` is expected to take, ms. */
  expectedMs(bytes: number): number {
    return this.#msPerMiB * bytes / MiB;
  }

  /**
   * A run ended; no change's run can start before `heldUntil` (on the
   * clock of `now`; undefined: one may start at once). Collect if one is
   * due and fits the window. Returns whether it collected.
   */
  afterRun(heldUntil: number | undefined): boolean {
    const collect = this.#collect;
    if (!collect || heldUntil === undefined) return false;
    const used = this.#heapUsed();
    // V8 collected on its own since: what it left is the new floor.
    if (used < this.#floor) this.#floor = used;
    // The first collection is due at once: the start's garbage.
    if (this.#floor > 0 && used < this.#floor * (1 + GROWTH)) return false;
    const started = this.#now();
    if (heldUntil - started < WINDOW_FACTOR * this.expectedMs(used)) return false;
    collect();
    const msPerMiB = (this.#now() - started) / Math.max(used / MiB, 1);
    if (msPerMiB > this.#msPerMiB || this.#collections === 0) this.#msPerMiB = msPerMiB;
    this.#collections++;
    this.#floor = this.#heapUsed();
    return true;
  }
}
