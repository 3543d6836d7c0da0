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
 *   for its kind ({@link FIRST_GUESS_MS_PER_MIB} or
 *   {@link FIRST_GUESS_COMPACT_MS_PER_MIB} before the first), less what
 *   windows it did not fit took off (below).
 * - The first window after a start collects what the start left behind (a
 *   regular collection: a start that is built asks for a compacting one
 *   itself, {@link HeapCollector.collect}); after that, only once the used
 *   heap has grown
 *   by {@link GROWTH} over what the last collection left (V8's own or this
 *   one's), but by no less than {@link MIN_GROWTH}, or the used heap and
 *   the memory V8 counts outside it (ArrayBuffers: the HNS listings'
 *   buffers) together by as much. The resident heap, which is the agent's
 *   memory, peaks just before a due collection, so the growth is a small
 *   part of the heap: well before V8 starts marking on its own, on the
 *   event loop's thread and inside changes' runs, when either nears its
 *   limit (30% over what its last collection left, with
 *   `--heap-growing-percent=30`). Each costs a full mark-compact on the
 *   event loop's thread, so they come as often as the agent allocates, not
 *   as often as it runs.
 * - A regular full collection frees objects but keeps the pages they were
 *   on, partly filled: as changes replace objects the resident heap creeps
 *   up while the live heap stays level. A due collection is a compacting one
 *   (V8's last-resort collection: objects moved together, free pages and
 *   the young generation's spare room given back to the OS) when the
 *   resident heap exceeds what the last collection left by
 *   {@link COMPACT_ROOM}, and its longer expected time fits the window;
 *   otherwise a regular one, if that fits.
 * - A kind that was due but did not fit a window expects {@link RELAX} of
 *   its time at the next, down to its first guess: one collection slowed by
 *   a busy moment does not stop that kind for the rest of the run.
 * - A caller that knows no change's run waits for it now (a restart's
 *   state build; the end of the build after a fast start, no change
 *   pending) asks for a collection of a kind at once
 *   ({@link HeapCollector.collect}); it is timed and counted the same way.
 *
 * @module
 */

/**
 * The growth over the last collection's of the used heap, or of it and the
 * memory outside it together, that makes one due (0.1: a tenth; V8 starts
 * marking 22–30% over).
 */
export const GROWTH = 0.1;

/**
 * The least growth that makes a collection due, bytes: the young generation
 * holds up to about this much (`--max-semi-space-size`, lib/v8_flags.ts),
 * so that its garbage alone does not make one due after every run of a
 * small heap.
 */
export const MIN_GROWTH = 4 * 1024 * 1024;

/** How many times a collection's expected time a window must last to take one. */
export const WINDOW_FACTOR = 2;

/** What a regular collection is taken to last per MiB of used heap, ms, before one was timed. */
export const FIRST_GUESS_MS_PER_MIB = 1.5;

/** What a compacting collection is taken to last per MiB of used heap, ms, before one was timed. */
export const FIRST_GUESS_COMPACT_MS_PER_MIB = 5;

/** The resident heap's excess over what the last collection left that makes a due collection compact (0.2: 20%). */
export const COMPACT_ROOM = 0.2;

/** What a due kind that did not fit a window expects of its time at the next (0.9: 10% less). */
export const RELAX = 0.9;

const MiB = 1 << 20;

/** What {@link HeapCollector} reads and calls; the defaults are the runtime's. */
export interface HeapCollectorOptions {
  /** A full, synchronous collection; undefined: none can be made. */
  collect?: () => void;
  /** A full, synchronous collection that compacts and gives free memory back; undefined: none. */
  compact?: () => void;
  /** The used heap now, bytes. */
  heapUsed?: () => number;
  /** Memory outside the heap that V8 counts against its limits (ArrayBuffers), bytes. */
  external?: () => number;
  /** The heap's committed (resident) size now, bytes. */
  heapResident?: () => number;
  /** Milliseconds on the runner's clock. */
  now?: () => number;
}

type Gc = (options?: { type: "major"; execution: "sync"; flavor: "last-resort" }) => void;

/** V8's `gc`, when the runtime exposes it. */
function exposedGc(): Gc | undefined {
  const gc = (globalThis as { gc?: Gc }).gc;
  return typeof gc === "function" ? gc : undefined;
}

/** One kind of collection: how to make it and the slowest it was per MiB. */
interface Kind {
  run: () => void;
  msPerMiB: number;
  firstGuess: number;
  timed: boolean;
}

/** What a heap that a collection left at `floor` bytes grows to before the next is due, bytes. */
function grown(floor: number): number {
  return floor + Math.max(floor * GROWTH, MIN_GROWTH);
}

/** A due collection of this kind did not fit its window: expect it a little faster next time. */
function relax(k: Kind): void {
  k.msPerMiB = Math.max(Math.min(k.firstGuess, k.msPerMiB), k.msPerMiB * RELAX);
}

/** What a collection made in a window was. */
export type Collected = "regular" | "compacting";

/** Collects the heap in the windows the runner gives (module notes). */
export class HeapCollector {
  readonly #regular: Kind | undefined;
  readonly #compacting: Kind | undefined;
  readonly #heapUsed: () => number;
  readonly #external: () => number;
  readonly #heapResident: () => number;
  readonly #now: () => number;
  /** Used heap after the last collection seen, bytes (0: none yet). */
  #floor = 0;
  /** Used heap and external memory after the last collection seen, bytes. */
  #globalFloor = 0;
  #collections = 0;

  constructor(options: HeapCollectorOptions = {}) {
    const gc = exposedGc();
    const collect = "collect" in options ? options.collect : gc && (() => gc());
    const compact = "compact" in options
      ? options.compact
      : gc && (() => gc({ type: "major", execution: "sync", flavor: "last-resort" }));
    this.#regular = collect && {
      run: collect,
      msPerMiB: FIRST_GUESS_MS_PER_MIB,
      firstGuess: FIRST_GUESS_MS_PER_MIB,
      timed: false,
    };
    this.#compacting = compact && {
      run: compact,
      msPerMiB: FIRST_GUESS_COMPACT_MS_PER_MIB,
      firstGuess: FIRST_GUESS_COMPACT_MS_PER_MIB,
      timed: false,
    };
    this.#heapUsed = options.heapUsed ?? (() => Deno.memoryUsage().heapUsed);
    this.#external = options.external ?? (() => Deno.memoryUsage().external);
    this.#heapResident = options.heapResident ?? (() => Deno.memoryUsage().heapTotal);
    this.#now = options.now ?? (() => performance.now());
  }

  /** Whether collections can be made at all. */
  get enabled(): boolean {
    return this.#regular !== undefined;
  }

  /** Collections made so far. */
  get collections(): number {
    return this.#collections;
  }

  /** What a collection of a used heap of `bytes` is expected to take, ms. */
  expectedMs(bytes: number, kind: Collected = "regular"): number {
    const k = kind === "regular" ? this.#regular : this.#compacting;
    return (k?.msPerMiB ?? Infinity) * bytes / MiB;
  }

  /**
   * A collection of `kind` now, whatever is due: for a caller that knows no
   * change's run waits for it (module notes). Timed and counted like those
   * of {@link afterRun}. Returns what it made (undefined: none can be made).
   */
  collect(kind: Collected = "regular"): Collected | undefined {
    const k = kind === "compacting" ? this.#compacting : this.#regular;
    if (!k) return undefined;
    this.#run(k, this.#heapUsed());
    return kind;
  }

  /** Make a collection of `k` on a used heap of `used` bytes: time it, count it, take the floor. */
  #run(k: Kind, used: number): void {
    const started = this.#now();
    k.run();
    const msPerMiB = (this.#now() - started) / Math.max(used / MiB, 1);
    if (msPerMiB > k.msPerMiB || !k.timed) k.msPerMiB = msPerMiB;
    k.timed = true;
    this.#collections++;
    this.#floor = this.#heapUsed();
    this.#globalFloor = this.#floor + this.#external();
  }

  /**
   * A run ended; no change's run can start before `heldUntil` (on the
   * clock of `now`; undefined: one may start at once). Collect if one is
   * due and fits the window. Returns what it made (undefined: none).
   */
  afterRun(heldUntil: number | undefined): Collected | undefined {
    if (!this.#regular || heldUntil === undefined) return undefined;
    const used = this.#heapUsed();
    const global = used + this.#external();
    // V8 collected on its own since: what it left is the new floor.
    if (used < this.#floor) this.#floor = used;
    if (global < this.#globalFloor) this.#globalFloor = global;
    // The first collection is due at once: the start's garbage.
    if (this.#floor > 0 && used < grown(this.#floor) && global < grown(this.#globalFloor)) {
      return undefined;
    }
    const started = this.#now();
    const window = heldUntil - started;
    const fits = (kind: Collected) => window >= WINDOW_FACTOR * this.expectedMs(used, kind);
    const roomy = this.#floor > 0 && this.#heapResident() > this.#floor * (1 + COMPACT_ROOM);
    const compacting = roomy && this.#compacting !== undefined;
    const kind: Collected | undefined = compacting && fits("compacting")
      ? "compacting"
      : fits("regular")
      ? "regular"
      : undefined;
    if (compacting && kind !== "compacting") relax(this.#compacting!);
    if (!kind) {
      relax(this.#regular);
      return undefined;
    }
    this.#run(kind === "regular" ? this.#regular : this.#compacting!, used);
    return kind;
  }
}
