/**
 * {@link HcnApi} over the HCN libraries in two ways: small work (a change's
 * few calls, a resync, single creates, retries) is called `nonblocking` from
 * the event loop's thread and runs on the runtime's blocking pool
 * (lib/hns/pool_calls.ts: no isolate, nothing started); large batches (a start's
 * reads, a first sync's creates, any burst of many calls) run on HNS
 * threads: Deno workers that each load the HCN libraries and call them
 * synchronously (lib/hns/ffi.ts `HcnCalls`), so that the event loop's thread does
 * no marshalling and pays no per-call cost for them. A worker costs an
 * isolate (about 10 MiB) while it runs, so none runs when no batch does.
 *
 * Rules:
 * - Where an operation goes: while listings are not kept apart (an agent's
 *   start, when no event waits for HNS; see
 *   {@link ThreadedHcnApi.keepListingsApart}), to an HNS thread: a start's
 *   listings, reads and first creates are one large batch, and the thread
 *   parses the listings off the event loop's thread. Else to a thread while
 *   one runs (a batch's thread: what comes within its idle time joins it,
 *   as the continuations of its answers do), or once the operations made
 *   since HNS was last idle reach {@link THREAD_FROM_OPS} (a request of many
 *   items counts each: a large step of a sync, a burst); else to the pool. A request of many on the pool runs its items in order,
 *   one after the other. On the pool, as on the threads, at most `threads`
 *   calls (`--hns-concurrency`) run at once; the others wait their turn in
 *   the order they were made (a listing is not counted: it never waits).
 * - Kept apart, a listing runs on the pool like any small call, and
 *   `enumerateIds` answers the answer itself, which the caller reads in
 *   place in slices ({@link import("./id_listing.ts").IdListing.read}).
 * - On the threads, a call is queued on one thread and sent once the
 *   microtask queue has gone round a few times without a new call, together
 *   with the calls queued beside it (the continuations of one batch of
 *   answers make their next calls a few microtasks apart): a call never
 *   waits for others to arrive. A thread runs what it is sent in order and
 *   answers in batches: when the batch is done, right after a request of
 *   many items, or after any call once its oldest unsent answer has waited
 *   1 ms (a call in progress cannot be interrupted, so an answer can wait for
 *   the one call after it; fast calls gather only on a thread whose calls
 *   are fast).
 * - A request of many items ({@link ThreadedHcnApi.createAndCloseMany},
 *   {@link ThreadedHcnApi.openQueryCloseMany}) on the threads counts as that
 *   many calls wherever a queue's cost is weighed, and goes in parts of as
 *   many items as a thread runs within half of {@link SPAWN_MICROS} (one
 *   part while HNS answers in microseconds), each part placed like a call:
 *   slow items spread over the threads.
 * - Which thread takes a call follows how long calls on one object take (the
 *   fastest call of the last {@link TIMED_BATCHES} batches, so a thread the
 *   OS set aside, even for a whole batch, does not make HNS look slow and
 *   start threads for nothing; listings, which grow with what HNS holds, do
 *   not count). Until that many batches were timed, the first calls of a
 *   batch (code not yet compiled, say) start no further thread.
 *   A busy thread that will be done within a wake-up ({@link WAKE_MICROS})
 *   takes it, the fullest such: while HNS answers in microseconds, calls
 *   gather on one thread and travel in large batches. Otherwise the thread
 *   expected to finish it first takes it, an idle one costing a wake-up: once
 *   calls take a millisecond or more, they run on every thread at once.
 * - The first thread starts when a batch needs one; another one once a call
 *   would wait more than {@link SPAWN_MICROS}, up to the number asked for. A
 *   new worker holds the event loop for a few milliseconds, once.
 * - At a start, while items are fast (under {@link WAKE_MICROS} each,
 *   timed), a reader of many may keep {@link READ_AHEAD_MICROS} of them
 *   ahead ({@link ThreadedHcnApi.readsInFlight}; the client does for a read
 *   ahead, a restart's early read), and a read of many starts no further
 *   thread: its queue is depth for the one thread to work through while the
 *   event loop's thread reads the cluster, not calls waiting to be answered.
 *   Slow items, or not yet timed ones, are kept in flight and spread like
 *   other calls.
 * - A thread that has had no call for {@link IDLE_END_MS} ends, the last one
 *   too, but for the start's: that one ends when listings are kept apart
 *   again (the agent is ready), once its calls are answered. No thread is
 *   left to a restart's state build or to the changes served after a start.
 * - Threads answer in the order they were asked, so each keeps a queue of
 *   pending calls, no IDs.
 * - Handles travel as pointer addresses (bigint); the HNS objects and their
 *   handles are the process's, so any thread may use or close a handle.
 * - Failures come back as {@link HnsError}s with every field. A thread that
 *   cannot load the library fails each call with that error; one that dies
 *   fails its unanswered calls, and the API refuses later ones.
 * - Dispose refuses further calls; calls already made still run and are
 *   answered (whatever they open or allocate is handed over or freed), on
 *   the threads and on the pool; then the threads end and, once every
 *   listing answered was released, the libraries are released.
 *
 * @module
 */

import { HnsError, type HnsErrorInit } from "./errors.ts";
import { hcnFunctionName, type HcnOperation, HNS_CALL } from "./names.ts";
import type { HcnApi, HcnHandle, HcnKind, ItemFailure } from "./types.ts";
import type { IdListingAnswer } from "./id_listing.ts";
import type { PoolCalls } from "./pool_calls.ts";

/** HNS threads when none are asked for. */
export const DEFAULT_HNS_THREADS = 4;

/** Calls a caller should keep in flight per thread so that batches stay large when HNS is fast. */
export const CALLS_IN_FLIGHT_PER_THREAD = 8;

/**
 * What handing a call to an idle thread costs, in µs: a message each way and
 * two wake-ups, more on a busy machine.
 */
export const WAKE_MICROS = 200;

/**
 * The expected wait, in µs, above which another thread is started: a thread
 * costs memory while it runs, so only calls that queue for milliseconds get
 * one.
 */
export const SPAWN_MICROS = 5000;

/**
 * How long a thread may go without a call before it ends, ms: long enough
 * for the gaps within one batch (between a sync's steps), short enough that
 * no worker outlives it by much (a start's thread ends at ready instead).
 */
export const IDLE_END_MS = 250;

/**
 * Operations made since HNS was last idle (a request of many counts its
 * items) from which work is a large batch and goes to an HNS thread: on the
 * pool each costs the event loop's thread a round trip, on a thread a share
 * of a message, and a thread's start costs a few milliseconds and its
 * memory; a change's run, even of a hundred changes, stays below.
 */
export const THREAD_FROM_OPS = 1000;

/**
 * How much work, µs, a read ahead at a start keeps queued on its
 * thread while items are fast ({@link ThreadedHcnApi.readsInFlight}):
 * longer than the event loop's thread is busy with one page of a cluster
 * listing, so that the thread does not run dry meanwhile.
 */
export const READ_AHEAD_MICROS = 50_000;

/**
 * Batches whose fastest call tells how long a call takes (module notes); a
 * thread is started for the calls' time only once this many were timed.
 */
export const TIMED_BATCHES = 8;

/** Microtask rounds without a new call after which queued calls are sent. */
const SEND_IDLE_ROUNDS = 8;
/** Microtask rounds after which queued calls are sent even while calls keep coming. */
const MAX_SEND_ROUNDS = 256;

/** The operations a thread runs, in the order of {@link OPS}. */
const OPS = [
  "enumerate",
  "open",
  "create",
  "modify",
  "query",
  "delete",
  "close",
  "hnsCall",
  "createAndClose",
  "openQueryClose",
  "enumerateIds",
  "createAndCloseMany",
  "openQueryCloseMany",
] as const;

/** An operation of {@link OPS}. */
export type ThreadOp = typeof OPS[number];

/** Values per request in a batch: the operation's index, then up to four arguments. */
export const REQUEST_WIDTH = 5;

/** A reply's status: the value, an {@link HnsErrorInit}, or another error's message. */
export const ReplyStatus = { Ok: 0, HnsFailure: 1, Failure: 2 } as const;

/** The first message to a thread: what to load. */
export interface ThreadInit {
  /** `--hns-library`, else the System32 DLLs. */
  library?: string;
}

/** The index of an operation in a request. */
export function opIndex(op: ThreadOp): number {
  return OPS.indexOf(op);
}

/** The operation at `index` of a request. */
export function opAt(index: number): ThreadOp | undefined {
  return OPS[index];
}

/** The HCN operation a thread operation starts with (a compound one makes several). */
function firstCall(op: Exclude<ThreadOp, "hnsCall">): HcnOperation {
  return op === "createAndClose" || op === "createAndCloseMany"
    ? "create"
    : op === "openQueryClose" || op === "openQueryCloseMany"
    ? "open"
    : op === "enumerateIds"
    ? "enumerate"
    : op;
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: unknown): void;
  /** The HNS calls' worth of work it is (a request of many items counts each). */
  calls: number;
}

/** The error a failed call's reply (status and value; see {@link ReplyStatus}) stands for. */
function replyError(status: number, value: unknown): Error {
  return status === ReplyStatus.HnsFailure
    ? new HnsError(value as HnsErrorInit)
    : new Error(value as string);
}

/** One HNS thread as the event loop's thread sees it. */
class HnsThread {
  readonly worker: Worker;
  /** Requests queued since the last send, {@link REQUEST_WIDTH} values each. */
  outbox: unknown[] = [];
  /** Calls sent or queued and not answered, oldest first, from `head`. */
  pending: Pending[] = [];
  head = 0;
  /** The pending requests' calls (a request of many items counts each): what its queue costs. */
  load = 0;
  /** Terminated. */
  ended = false;
  /** It has answered once (its code is compiled). */
  warm = false;
  /** When it last had no call pending (`performance.now()`). */
  idleSince = performance.now();

  constructor(
    init: ThreadInit,
    onMessage: (t: HnsThread, data: unknown) => void,
    onDead: (t: HnsThread, why: string) => void,
  ) {
    this.worker = new Worker(new URL("./hcn_thread.ts", import.meta.url), { type: "module" });
    this.worker.onmessage = (e: MessageEvent) => onMessage(this, e.data);
    this.worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      onDead(this, e.message);
    };
    this.worker.onmessageerror = () => onDead(this, "an HNS thread's answer could not be read");
    this.worker.postMessage(init);
  }

  get outstanding(): number {
    return this.pending.length - this.head;
  }

  /** The oldest pending call, removed. */
  shift(): Pending {
    const p = this.pending[this.head++];
    this.load -= p.calls;
    if (this.head === this.pending.length) {
      this.pending = [];
      this.head = 0;
      this.idleSince = performance.now();
    }
    return p;
  }
}

/** {@link HcnApi} over the blocking pool and HNS threads; see the module notes. */
export class ThreadedHcnApi implements HcnApi {
  readonly hasModifyLoadBalancer: boolean;
  /** Calls callers should keep in flight to keep the threads busy. */
  readonly callsInFlight: number;
  /** The threads running (ended ones leave). */
  readonly #threads: HnsThread[] = [];
  readonly #maxThreads: number;
  readonly #idleEndMs: number;
  readonly #threadFrom: number;
  #idleTimer: ReturnType<typeof setInterval> | undefined;
  #started = 0;
  readonly #init: ThreadInit;
  #sendScheduled = false;
  /** Whether a call was queued since the scheduled send last looked. */
  #queuedSinceCheck = false;
  #rounds = 0;
  #idleRounds = 0;
  /**
   * Recent duration of a call on a thread, µs: the fastest call of the last
   * {@link TIMED_BATCHES} batches (`#batchMicros`, a ring), so that a thread
   * the OS set aside for a while does not make HNS look slow. None measured
   * yet: calls gather on one thread.
   */
  #callMicros = 0;
  readonly #batchMicros: number[] = [];
  #batchAt = 0;
  /** Batches timed so far (capped at {@link TIMED_BATCHES}). */
  #timedBatches = 0;
  #closed: string | undefined;
  /** Listings run on the runtime's blocking pool (module notes). */
  #listingsApart = true;
  readonly #pool: PoolCalls;
  /** Operations on the pool now (a request of many counts its items). */
  #poolOps = 0;
  /** Calls (not listings) running on the pool now, at most `#maxThreads`. */
  #poolCalls = 0;
  /** The most calls that ran on the pool at once. */
  #poolCallsPeak = 0;
  /** Calls waiting for a turn on the pool, first come first served. */
  readonly #poolWaiting: Array<() => void> = [];
  /** Operations made since HNS was last idle (module notes). */
  #burstOps = 0;
  #released = false;
  readonly #send = () => this.#sendAll();

  /**
   * Calls on `pool` (whose libraries the caller loaded, so a bad library
   * failed already, with its message), and on up to `threads` HNS threads
   * that load what `init` names, started as batches need them and ended
   * after `idleEndMs` without a call (default {@link IDLE_END_MS}); work is a
   * batch from `threadFrom` operations (default {@link THREAD_FROM_OPS};
   * module notes). The pool's libraries are unloaded once disposed and
   * everything made was answered.
   */
  constructor(
    init: ThreadInit & { threads?: number; idleEndMs?: number; threadFrom?: number },
    pool: PoolCalls,
  ) {
    this.#pool = pool;
    this.hasModifyLoadBalancer = pool.hasModifyLoadBalancer;
    this.#maxThreads = Math.max(1, Math.floor(init.threads ?? DEFAULT_HNS_THREADS));
    this.callsInFlight = this.#maxThreads * CALLS_IN_FLIGHT_PER_THREAD;
    this.#idleEndMs = init.idleEndMs ?? IDLE_END_MS;
    this.#threadFrom = Math.max(1, init.threadFrom ?? THREAD_FROM_OPS);
    this.#init = init.library ? { library: init.library } : {};
    this.#pool.onIdle = () => this.#releaseOnceDone();
  }

  /** Start one more thread (a new Worker holds the event loop for a few ms, once). */
  #spawn(): HnsThread {
    const thread = new HnsThread(
      this.#init,
      (t, d) => this.#answer(t, d),
      (t, why) => this.#dead(t, why),
    );
    this.#started++;
    this.#threads.push(thread);
    this.#watchIdle();
    return thread;
  }

  /** While threads run, look for idle ones now and then. */
  #watchIdle(): void {
    if (this.#idleTimer !== undefined) return;
    const timer = setInterval(() => this.#endIdle(), Math.max(1, this.#idleEndMs / 4));
    Deno.unrefTimer(timer);
    this.#idleTimer = timer;
  }

  /**
   * End the threads idle for `idleMs` (default `#idleEndMs`) or more; none
   * while listings are not kept apart (a start: one batch, gaps and all).
   */
  #endIdle(idleMs = this.#idleEndMs): void {
    const threads = this.#threads;
    const now = performance.now();
    for (let i = threads.length - 1; i >= 0 && this.#listingsApart; i--) {
      const t = threads[i];
      if (t.outstanding === 0 && t.outbox.length === 0 && now - t.idleSince >= idleMs) {
        threads.splice(i, 1);
        t.ended = true;
        t.worker.terminate();
      }
    }
    if (threads.length === 0 || this.#closed !== undefined) this.#stopWatchingIdle();
  }

  #stopWatchingIdle(): void {
    if (this.#idleTimer === undefined) return;
    clearInterval(this.#idleTimer);
    this.#idleTimer = undefined;
  }

  /**
   * Whether `ops` operations go to an HNS thread: at a start, while one
   * runs, or once the work since HNS was last idle is a batch (module notes).
   */
  #onThread(ops: number): boolean {
    if (!this.#listingsApart || this.#threads.length > 0) return true;
    // No thread, and nothing on the pool: a new burst begins.
    if (this.#poolOps === 0) this.#burstOps = 0;
    this.#burstOps += ops;
    return this.#burstOps >= this.#threadFrom;
  }

  /**
   * Run `op` on the pool, counted as `ops` operations there while it runs.
   * Calls (a listing is not one) run at most `threads` at once, as on the
   * threads (`--hns-concurrency`); the others wait their turn in order.
   */
  async #onPool<T>(op: () => Promise<T>, ops = 1, listing = false): Promise<T> {
    this.#poolOps += ops;
    try {
      if (listing) return await op();
      const turn = this.#poolTurn();
      if (turn) await turn;
      try {
        return await op();
      } finally {
        this.#passPoolTurn();
      }
    } finally {
      this.#poolOps -= ops;
      // A request of many leaves the pool idle between its items: released only after the last.
      if (this.#poolOps === 0) this.#releaseOnceDone();
    }
  }

  /** A turn on the pool: none to wait for while fewer than `threads` calls run there. */
  #poolTurn(): Promise<void> | undefined {
    if (this.#poolCalls < this.#maxThreads) {
      this.#poolCalls++;
      if (this.#poolCalls > this.#poolCallsPeak) this.#poolCallsPeak = this.#poolCalls;
      return undefined;
    }
    return new Promise((resolve) => this.#poolWaiting.push(resolve));
  }

  /** A call on the pool is done: its turn passes to the first waiting, if any. */
  #passPoolTurn(): void {
    const next = this.#poolWaiting.shift();
    if (next) next();
    else this.#poolCalls--;
  }

  /** Queue one call on a thread; see the module notes for which and when it is sent. */
  #call<T>(
    op: ThreadOp,
    kind: HcnKind | undefined,
    a: unknown,
    b?: unknown,
    c?: unknown,
    calls = 1,
  ): Promise<T> {
    if (this.#closed !== undefined) return this.#refused(op, kind);
    let thread: HnsThread;
    try {
      thread = this.#pick(op === "openQueryCloseMany" && this.#readingAhead());
    } catch (err) {
      return Promise.reject(err);
    }
    const { promise, resolve, reject } = Promise.withResolvers<T>();
    thread.load += calls;
    thread.pending.push({ resolve: resolve as (v: unknown) => void, reject, calls });
    thread.outbox.push(OPS.indexOf(op), kind, a, b, c);
    this.#queuedSinceCheck = true;
    if (!this.#sendScheduled) {
      this.#sendScheduled = true;
      queueMicrotask(this.#send);
    }
    return promise;
  }

  /** A call refused after dispose. */
  #refused<T>(op: ThreadOp, kind: HcnKind | undefined): Promise<T> {
    const name = op === "hnsCall" ? HNS_CALL : hcnFunctionName(firstCall(op), kind!);
    return Promise.reject(new Error(`${this.#closed}; cannot call ${name}`));
  }

  /**
   * Whether a start's read of many is kept far ahead: at a start, while its
   * items are timed fast (module notes).
   */
  #readingAhead(): boolean {
    return !this.#listingsApart && this.#callMicros > 0 && this.#callMicros < WAKE_MICROS;
  }

  /**
   * The thread expected to finish a new call first; the first thread is
   * started here, further ones when a call would wait long (module notes),
   * but for a read kept ahead (`readAhead`).
   */
  #pick(readAhead = false): HnsThread {
    const threads = this.#threads;
    if (threads.length === 0) return this.#spawn();
    const callMicros = this.#callMicros;
    // What a queue costs counts towards a new thread only once calls were timed often enough.
    const spawnMicros = this.#timedBatches < TIMED_BATCHES ? 0 : callMicros;
    // A busy thread that finishes its queue within a wake-up takes the call:
    // the fullest such, so that fast calls travel in few, large batches.
    let fill: HnsThread | undefined;
    for (let i = 0; i < threads.length; i++) {
      const t = threads[i];
      const queued = t.load;
      if (queued > 0 && queued * callMicros < WAKE_MICROS && queued > (fill?.load ?? 0)) {
        fill = t;
      }
    }
    if (fill) return fill;
    // Else the thread expected to finish it first; an idle one costs a wake-up.
    let best = threads[0];
    let bestCost = Infinity;
    let bestSpawnCost = Infinity;
    for (let i = 0; i < threads.length; i++) {
      const t = threads[i];
      const queued = t.load;
      const cost = queued === 0 ? WAKE_MICROS : queued * callMicros;
      if (cost < bestCost) {
        best = t;
        bestCost = cost;
        bestSpawnCost = queued === 0 ? WAKE_MICROS : queued * spawnMicros;
      }
    }
    if (!readAhead && bestSpawnCost > SPAWN_MICROS && threads.length < this.#maxThreads) {
      try {
        best = this.#spawn();
      } catch {
        // No further thread now: the busy ones take the call.
      }
    }
    return best;
  }

  #sendAll(): void {
    // The continuations of this turn's answers still make calls, a few
    // microtasks apart: send once the microtask queue has gone round
    // SEND_IDLE_ROUNDS times without a new call (or after MAX_SEND_ROUNDS).
    if (this.#rounds++ < MAX_SEND_ROUNDS) {
      if (this.#queuedSinceCheck) this.#idleRounds = 0;
      if (this.#queuedSinceCheck || this.#idleRounds++ < SEND_IDLE_ROUNDS) {
        this.#queuedSinceCheck = false;
        queueMicrotask(this.#send);
        return;
      }
    }
    this.#sendScheduled = false;
    this.#queuedSinceCheck = false;
    this.#rounds = 0;
    this.#idleRounds = 0;
    this.#sendNow();
  }

  #sendNow(): void {
    for (const t of this.#threads) {
      if (t.outbox.length === 0 || t.ended) continue;
      const batch = t.outbox;
      t.outbox = [];
      t.worker.postMessage(batch);
    }
  }

  /**
   * A thread's answers: its fastest call's µs (-1: only listings, whose time
   * says nothing of a call on one object), then status and value per call.
   */
  #answer(thread: HnsThread, data: unknown): void {
    const replies = data as unknown[];
    const fastest = replies[0] as number;
    // A new thread's first calls include compiling its code: not HNS's time.
    if (fastest >= 0 && thread.warm) {
      this.#batchMicros[this.#batchAt] = fastest;
      this.#batchAt = (this.#batchAt + 1) % TIMED_BATCHES;
      if (this.#timedBatches < TIMED_BATCHES) this.#timedBatches++;
      this.#callMicros = Math.min(...this.#batchMicros);
    }
    thread.warm = true;
    for (let i = 1; i < replies.length; i += 2) {
      const p = thread.shift();
      const status = replies[i];
      const value = replies[i + 1];
      if (status === ReplyStatus.Ok) p.resolve(value);
      else p.reject(replyError(status as number, value));
    }
    if (this.#closed !== undefined && thread.outstanding === 0) this.#end(thread);
  }

  /**
   * A thread died: its unanswered calls fail, later calls are refused, and
   * the other threads end once they have answered what they were sent.
   */
  #dead(thread: HnsThread, why: string): void {
    if (thread.ended) return;
    const message = `HNS thread failed: ${why}`;
    this.#close(message);
    while (thread.outstanding > 0) {
      thread.shift().reject(new Error(`${message}; the call was not answered`));
    }
    this.#end(thread);
  }

  /**
   * Refuse further calls. Calls already made are still sent, run and
   * answered (so whatever they open or allocate is closed and freed); each
   * thread ends when it has answered all of them.
   */
  #close(reason: string): void {
    if (this.#closed !== undefined) return;
    this.#closed = reason;
    this.#stopWatchingIdle();
    this.#sendNow();
    for (const t of [...this.#threads]) if (t.outstanding === 0) this.#end(t);
    this.#releaseOnceDone();
  }

  /** End `thread`; the libraries are released once the last thread has ended. */
  #end(thread: HnsThread): void {
    if (thread.ended) return;
    thread.ended = true;
    thread.worker.terminate();
    const at = this.#threads.indexOf(thread);
    if (at >= 0) this.#threads.splice(at, 1);
    this.#releaseOnceDone();
  }

  /**
   * Once closed, with every thread ended and nothing in flight on the pool
   * or unreleased: release the libraries (once).
   */
  #releaseOnceDone(): void {
    if (this.#released || this.#closed === undefined) return;
    if (this.#pool.busy > 0 || this.#poolOps > 0) return;
    if (this.#threads.length > 0) return;
    this.#released = true;
    this.#pool.unload();
  }

  /**
   * One operation: on a thread (`op` with `a`, `b`, `c`) or on the pool
   * (`onPool`), as the module notes say.
   */
  #one<T>(
    op: ThreadOp,
    kind: HcnKind | undefined,
    onPool: () => Promise<T>,
    a: unknown,
    b?: unknown,
    c?: unknown,
  ): Promise<T> {
    if (this.#closed !== undefined) return this.#refused(op, kind);
    if (this.#onThread(1)) return this.#call(op, kind, a, b, c);
    return this.#onPool(onPool);
  }

  enumerate(kind: HcnKind, query: string): Promise<string> {
    if (!this.#listingsApart) return this.#call("enumerate", kind, query);
    if (this.#closed !== undefined) return this.#refused("enumerate", kind);
    return this.#onPool(() => this.#pool.enumerate(kind, query), 1, true);
  }

  /**
   * The listing, parsed on an HNS thread; while listings are kept apart, the
   * answer itself, to read with {@link import("./id_listing.ts").IdListing.read}.
   */
  enumerateIds(kind: HcnKind, query: string): Promise<IdListingAnswer> {
    if (!this.#listingsApart) return this.#call("enumerateIds", kind, query);
    if (this.#closed !== undefined) return this.#refused("enumerateIds", kind);
    return this.#onPool(() => this.#pool.answer(kind, query), 1, true);
  }

  open(kind: HcnKind, id: string): Promise<HcnHandle> {
    return this.#one("open", kind, () => this.#pool.open(kind, id), id);
  }

  create(kind: HcnKind, id: string, settings: string, network?: HcnHandle): Promise<HcnHandle> {
    const onPool = () => this.#pool.create(kind, id, settings, network);
    return this.#one("create", kind, onPool, id, settings, network);
  }

  modify(kind: HcnKind, handle: HcnHandle, settings: string): Promise<void> {
    return this.#one(
      "modify",
      kind,
      () => this.#pool.modify(kind, handle, settings),
      handle,
      settings,
    );
  }

  query(kind: HcnKind, handle: HcnHandle, query: string): Promise<string> {
    return this.#one("query", kind, () => this.#pool.query(kind, handle, query), handle, query);
  }

  delete(kind: HcnKind, id: string): Promise<void> {
    return this.#one("delete", kind, () => this.#pool.delete(kind, id), id);
  }

  close(kind: HcnKind, handle: HcnHandle): Promise<void> {
    return this.#one("close", kind, () => this.#pool.close(kind, handle), handle);
  }

  hnsCall(method: string, path: string, request: string): Promise<string> {
    const onPool = () => this.#pool.hnsCall(method, path, request);
    return this.#one("hnsCall", undefined, onPool, method, path, request);
  }

  createAndClose(kind: HcnKind, id: string, settings: string, network?: HcnHandle): Promise<void> {
    const onPool = () => this.#pool.createAndClose(kind, id, settings, network);
    return this.#one("createAndClose", kind, onPool, id, settings, network);
  }

  openQueryClose(kind: HcnKind, id: string, query: string): Promise<string> {
    const onPool = () => this.#pool.openQueryClose(kind, id, query);
    return this.#one("openQueryClose", kind, onPool, id, query);
  }

  /**
   * Items per request of many: as many as a thread runs within half of
   * {@link SPAWN_MICROS} (all `n` while HNS answers in microseconds), so
   * that slow calls spread over the threads.
   */
  #itemsPerRequest(n: number): number {
    const callMicros = this.#callMicros;
    return callMicros > 0 ? Math.max(1, Math.floor(SPAWN_MICROS / (2 * callMicros))) : n;
  }

  /**
   * On the pool, the items one after the other; on the threads, in requests
   * of {@link #itemsPerRequest}, each request placed like that many calls.
   */
  async createAndCloseMany(
    kind: HcnKind,
    ids: readonly string[],
    settings: readonly string[],
    network?: HcnHandle,
  ): Promise<ItemFailure[]> {
    const n = ids.length;
    if (this.#closed !== undefined) return this.#refused("createAndCloseMany", kind);
    if (!this.#onThread(n)) {
      return await this.#onPool(async () => {
        const failures: ItemFailure[] = [];
        for (let index = 0; index < n; index++) {
          try {
            await this.#pool.createAndClose(kind, ids[index], settings[index], network);
          } catch (err) {
            failures.push({ index, error: err as Error });
          }
        }
        return failures;
      }, n);
    }
    const per = this.#itemsPerRequest(n);
    const parts: Promise<unknown[]>[] = [];
    for (let from = 0; from < n; from += per) {
      const to = Math.min(n, from + per);
      const part = from === 0 && to === n
        ? [ids, settings]
        : [ids.slice(from, to), settings.slice(from, to)];
      parts.push(this.#call("createAndCloseMany", kind, part[0], part[1], network, to - from));
    }
    const failures: ItemFailure[] = [];
    const answers = await Promise.all(parts);
    for (let p = 0; p < answers.length; p++) {
      // Per failed item: its index in the request, status and value.
      const replies = answers[p];
      for (let i = 0; i < replies.length; i += 3) {
        const index = p * per + (replies[i] as number);
        failures.push({ index, error: replyError(replies[i + 1] as number, replies[i + 2]) });
      }
    }
    return failures;
  }

  /**
   * On the pool, the items one after the other; on the threads, in requests
   * of {@link #itemsPerRequest}, each request placed like that many calls.
   */
  async openQueryCloseMany(
    kind: HcnKind,
    ids: readonly string[],
    query: string,
  ): Promise<Array<string | Error>> {
    const n = ids.length;
    if (this.#closed !== undefined) return this.#refused("openQueryCloseMany", kind);
    if (!this.#onThread(n)) {
      return await this.#onPool(async () => {
        const read: Array<string | Error> = new Array(n);
        for (let i = 0; i < n; i++) {
          try {
            read[i] = await this.#pool.openQueryClose(kind, ids[i], query);
          } catch (err) {
            read[i] = err as Error;
          }
        }
        return read;
      }, n);
    }
    const per = this.#itemsPerRequest(n);
    const parts: Promise<unknown[]>[] = [];
    for (let from = 0; from < n; from += per) {
      const to = Math.min(n, from + per);
      const part = from === 0 && to === n ? ids : ids.slice(from, to);
      parts.push(this.#call("openQueryCloseMany", kind, part, query, undefined, to - from));
    }
    const read: Array<string | Error> = new Array(n);
    const answers = await Promise.all(parts);
    let at = 0;
    for (const replies of answers) {
      // Per item: status and value.
      for (let i = 0; i < replies.length; i += 2) {
        const status = replies[i] as number;
        read[at++] = status === ReplyStatus.Ok
          ? replies[i + 1] as string
          : replyError(status, replies[i + 1]);
      }
    }
    return read;
  }

  /**
   * Whether listings run apart from the calls, on the runtime's blocking
   * pool (true until told otherwise; module notes). An agent starts with
   * them on an HNS thread (no event's calls queue behind one, and the
   * thread parses the answer while the event loop's thread reads the
   * cluster; the start's reads need the thread anyway) and keeps them apart
   * once it serves events. Not kept apart, a thread is started at once and
   * kept through the gaps of the start (planning between its reads and its
   * creates); kept apart again, the threads with no call pending end at
   * once, the others when idle.
   */
  keepListingsApart(apart: boolean): void {
    this.#listingsApart = apart;
    // The start's batch is over: a thread with nothing pending ends now.
    if (apart) this.#endIdle(0);
    // A start's listings and reads are a batch: its thread starts now, while the agent
    // reads the cluster, rather than in the way of the first listing.
    if (!apart && this.#threads.length === 0 && this.#closed === undefined) {
      try {
        this.#spawn();
      } catch {
        // The first listing starts one, or runs on the pool.
      }
    }
  }

  /**
   * Objects a reader of many ({@link openQueryCloseMany}) should keep in
   * flight now: {@link READ_AHEAD_MICROS} of them during a start while items
   * are fast, else {@link callsInFlight} (module notes).
   */
  get readsInFlight(): number {
    if (!this.#readingAhead()) return this.callsInFlight;
    return Math.max(this.callsInFlight, Math.ceil(READ_AHEAD_MICROS / this.#callMicros));
  }

  /** The most calls (listings aside) that ran on the blocking pool at once: at most `threads`. */
  get poolCallsPeak(): number {
    return this.#poolCallsPeak;
  }

  /** HNS threads started so far (those that ended included). */
  get threadsStarted(): number {
    return this.#started;
  }

  /** HNS threads running now. */
  get threadsRunning(): number {
    return this.#threads.length;
  }

  /** Whether the libraries were released (disposed, and everything made was answered). */
  get released(): boolean {
    return this.#released;
  }

  /** Refuse further calls; the threads end once every call made is answered (see #close). */
  dispose(): void {
    this.#close("HNS library is closed");
  }
}
