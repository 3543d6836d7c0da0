/**
 * Kubernetes Events (events.k8s.io/v1), written as client-go's events
 * broadcaster (k8s.io/client-go/tools/events) writes them, and never on the
 * caller's path.
 *
 * Rules:
 * - Events with the same key (regarding, related, reason, action,
 *   reportingController; not the note) form one series. The first is
 *   created (POST, named `<regarding name>.<hex nanoseconds>`, in the
 *   regarding object's namespace or `default`); a repeat sets `series`
 *   {count, lastObservedTime} (count 2 on the first repeat: the API server
 *   refuses less) and is written as a strategic merge patch of `series`; a
 *   patch answered 404 creates the event anew.
 * - An event not repeated for 6 minutes is forgotten, so a later occurrence
 *   is a new Event (client-go's finishTime).
 * - Writes go through a bounded queue (1000 keys) served by one worker, and
 *   at most one write per key waits at a time: a repeat while one waits only
 *   raises the count that write will send. Callers never wait.
 * - A write the API server refuses (a Status: 403, 422, 500, ...) is dropped;
 *   a transport error or timeout is retried after 1 s and 2 s, then dropped.
 *   Every drop is counted by reason (`rejected`, `unreachable`, `queueFull`)
 *   and logged: the first of each reason, then at most once a minute.
 *
 * @module
 */

import { type Logger, nullLogger } from "../log/types.ts";
import { ApiError } from "./api.ts";
import type { KubeClient } from "./client.ts";
import { errorMessage } from "../errors.ts";

/** A reference to the object an event is about (core/v1 ObjectReference). */
export interface ObjectReference {
  /** `v1`, ... */
  apiVersion?: string;
  /** `Service`, `Node`, ... */
  kind: string;
  /** Name. */
  name: string;
  /** Namespace (absent for cluster-scoped objects). */
  namespace?: string;
  /** UID. */
  uid?: string;
}

/** `series` of an events.k8s.io/v1 Event. */
export interface EventSeries {
  /** Occurrences so far (at least 2). */
  count: number;
  /** The last occurrence (MicroTime). */
  lastObservedTime: string;
}

/** An events.k8s.io/v1 Event. */
export interface KubeEvent {
  /** Always `events.k8s.io/v1`. */
  apiVersion: "events.k8s.io/v1";
  /** Always `Event`. */
  kind: "Event";
  /** Name and namespace. */
  metadata: { name: string; namespace: string; [field: string]: unknown };
  /** When it first happened (MicroTime). */
  eventTime: string;
  /** Repeats, once there are any. */
  series?: EventSeries;
  /** Who reports it, e.g. `hnsproxy`. */
  reportingController: string;
  /** Which instance, e.g. `hnsproxy-node-1`. */
  reportingInstance: string;
  /** What was done or failed, e.g. `ProgramLoadBalancer`. */
  action: string;
  /** Why, e.g. `HNSConflict`. */
  reason: string;
  /** The object it is about. */
  regarding: ObjectReference;
  /** A second object, if any. */
  related?: ObjectReference;
  /** Human-readable detail (at most 1 KiB). */
  note?: string;
  /** `Normal` or `Warning`. */
  type: "Normal" | "Warning";
}

/** Where events are written (the API server, or a test double). */
export interface EventSink {
  /** POST the event into its namespace; `signal` aborts the request. */
  create(event: KubeEvent, signal?: AbortSignal): Promise<unknown>;
  /** Strategic merge patch of an existing event; `signal` aborts the request. */
  patch(
    namespace: string,
    name: string,
    patch: Record<string, unknown>,
    signal?: AbortSignal,
  ): Promise<unknown>;
}

/** Why an event was not written. */
export type EventDropReason = "rejected" | "unreachable" | "queueFull";

/** The API server as an {@link EventSink}; each write times out after `timeoutMs`. */
export function kubeEventSink(client: KubeClient, timeoutMs = 10_000): EventSink {
  const base = (ns: string) => `/apis/events.k8s.io/v1/namespaces/${encodeURIComponent(ns)}/events`;
  return {
    create: (event, signal) =>
      client.send("POST", base(event.metadata.namespace), event, {
        what: "create event",
        timeoutMs,
        signal,
      }),
    patch: (ns, name, patch, signal) =>
      client.send("PATCH", `${base(ns)}/${encodeURIComponent(name)}`, patch, {
        what: "patch event",
        contentType: "application/strategic-merge-patch+json",
        timeoutMs,
        signal,
      }),
  };
}

/** Options of {@link EventRecorder}. */
export interface EventRecorderOptions {
  /** Where events go. */
  sink: EventSink;
  /** `reportingController`, e.g. `hnsproxy`. */
  reportingController: string;
  /** `reportingInstance`, e.g. `hnsproxy-node-1`. */
  reportingInstance: string;
  /** Logger for drops. */
  logger?: Logger;
  /** Wall clock, epoch ms (default `Date.now`). */
  now?: () => number;
  /** Most event keys waiting for a write (default 1000, client-go's maxQueuedEvents). */
  queueLimit?: number;
  /** Waits before retrying a write that got no answer (default 1 s, 2 s). */
  retryDelaysMs?: number[];
  /** A write was made. */
  onWrite?(kind: "create" | "patch"): void;
  /** An event was dropped. */
  onDrop?(reason: EventDropReason): void;
}

/** How long an event without repeats stays in the cache (client-go's finishTime). */
const FINISH_MS = 6 * 60_000;
/** Shortest time between two log lines about drops of one reason. */
const DROP_LOG_MS = 60_000;

interface Cached {
  event: KubeEvent;
  /** Last occurrence, epoch ms. */
  last: number;
  /** Whether the API server holds it (a create succeeded). */
  written: boolean;
  /** Whether a write of it is waiting in the queue or in flight. */
  queued: boolean;
}

/** Records events; see the module notes. */
export class EventRecorder {
  readonly #o: EventRecorderOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #cache = new Map<string, Cached>();
  readonly #queue: string[] = [];
  readonly #dropped: Record<EventDropReason, number> = {
    rejected: 0,
    unreachable: 0,
    queueFull: 0,
  };
  readonly #lastDropLog: Partial<Record<EventDropReason, number>> = {};
  #working: Promise<void> | undefined;
  #closed = false;
  #abort = new AbortController();
  #seq = 0;
  #lastSweep = 0;

  /** A recorder writing to `options.sink`. */
  constructor(options: EventRecorderOptions) {
    this.#o = options;
    this.#log = options.logger ?? nullLogger;
    this.#now = options.now ?? Date.now;
  }

  /** Events dropped so far, by reason. */
  get dropped(): Readonly<Record<EventDropReason, number>> {
    return { ...this.#dropped };
  }

  /**
   * Record an event (client-go's `Eventf(regarding, related, type, reason,
   * action, note)`). Returns at once; the write happens in the background.
   */
  eventf(
    regarding: ObjectReference,
    type: "Normal" | "Warning",
    reason: string,
    action: string,
    note: string,
    related?: ObjectReference,
  ): void {
    if (this.#closed) return;
    const now = this.#now();
    this.#sweep(now);
    const key = JSON.stringify([
      action,
      reason,
      this.#o.reportingController,
      refKey(regarding),
      related ? refKey(related) : null,
    ]);
    const cached = this.#cache.get(key);
    if (cached) {
      const series = cached.event.series;
      cached.event.series = {
        count: series ? series.count + 1 : 2,
        lastObservedTime: microTime(now),
      };
      cached.last = now;
      if (!cached.queued) this.#enqueue(key, cached);
      return;
    }
    const event: KubeEvent = {
      apiVersion: "events.k8s.io/v1",
      kind: "Event",
      metadata: {
        name: `${regarding.name}.${this.#nanos(now)}`,
        namespace: regarding.namespace || "default",
      },
      eventTime: microTime(now),
      reportingController: this.#o.reportingController,
      reportingInstance: this.#o.reportingInstance,
      action,
      reason,
      regarding: { ...regarding },
      type,
    };
    if (related) event.related = { ...related };
    if (note) event.note = truncate(note, 1024);
    const entry: Cached = { event, last: now, written: false, queued: false };
    this.#cache.set(key, entry);
    this.#enqueue(key, entry);
  }

  /** Resolves once no write waits or runs (tests, and a graceful stop). */
  async settled(): Promise<void> {
    while (this.#working) await this.#working;
  }

  /**
   * Stop accepting events and give the writes waiting up to `timeoutMs` to
   * finish; the rest are abandoned and the one in flight is aborted.
   */
  async close(timeoutMs = 2_000): Promise<void> {
    this.#closed = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.settled(),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
    ]);
    clearTimeout(timer);
    this.#queue.length = 0;
    this.#abort.abort();
    await this.settled();
  }

  #enqueue(key: string, entry: Cached): void {
    if (this.#queue.length >= (this.#o.queueLimit ?? 1000)) {
      // A repeat of a cached event keeps its count; the next repeat tries again.
      if (!entry.written && entry.event.series === undefined) this.#cache.delete(key);
      this.#drop("queueFull", new Error("event queue full"));
      return;
    }
    entry.queued = true;
    this.#queue.push(key);
    this.#working ??= this.#work().finally(() => (this.#working = undefined));
  }

  async #work(): Promise<void> {
    while (this.#queue.length > 0) {
      const key = this.#queue.shift()!;
      const entry = this.#cache.get(key);
      if (!entry) continue;
      // A repeat during the write queues one more write, which sends the newer count.
      entry.queued = false;
      await this.#write(entry);
    }
  }

  async #write(entry: Cached): Promise<void> {
    const delays = this.#o.retryDelaysMs ?? [1000, 2000];
    for (let attempt = 0;; attempt++) {
      try {
        await this.#writeOnce(entry);
        return;
      } catch (err) {
        if (err instanceof ApiError || attempt >= delays.length || this.#abort.signal.aborted) {
          this.#drop(err instanceof ApiError ? "rejected" : "unreachable", err, entry.event);
          return;
        }
        await sleep(delays[attempt], this.#abort.signal);
      }
    }
  }

  async #writeOnce(entry: Cached): Promise<void> {
    const { event } = entry;
    if (entry.written && event.series) {
      try {
        await this.#o.sink.patch(
          event.metadata.namespace,
          event.metadata.name,
          { series: { ...event.series } },
          this.#abort.signal,
        );
        this.#o.onWrite?.("patch");
        return;
      } catch (err) {
        if (!(err instanceof ApiError && err.code === 404)) throw err;
        // Deleted meanwhile (events expire after an hour): create it anew.
      }
    }
    await this.#o.sink.create(structuredClone(event), this.#abort.signal);
    entry.written = true;
    this.#o.onWrite?.("create");
  }

  #drop(reason: EventDropReason, err: unknown, event?: KubeEvent): void {
    this.#dropped[reason]++;
    this.#o.onDrop?.(reason);
    const now = this.#now();
    const last = this.#lastDropLog[reason];
    if (last !== undefined && now - last < DROP_LOG_MS) return;
    this.#lastDropLog[reason] = now;
    this.#log.warn("Cannot write a Kubernetes Event; dropped it", {
      reason,
      dropped: this.#dropped[reason],
      event: event
        ? `${event.reason} ${event.regarding.kind} ${refName(event.regarding)}`
        : undefined,
      err: errorMessage(err),
    });
  }

  /** Forget events not repeated for {@link FINISH_MS} (at most one pass a minute). */
  #sweep(now: number): void {
    if (now - this.#lastSweep < 60_000) return;
    this.#lastSweep = now;
    for (const [key, entry] of this.#cache) {
      if (!entry.queued && now - entry.last > FINISH_MS) this.#cache.delete(key);
    }
  }

  /** Hex nanoseconds since the epoch, unique within this recorder. */
  #nanos(now: number): string {
    return (BigInt(now) * 1_000_000n + BigInt(this.#seq++ % 1_000_000)).toString(16);
  }
}

/** The wire form of a time with microseconds (`metav1.MicroTime`). */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

function refKey(ref: ObjectReference): string {
  return [ref.apiVersion ?? "", ref.kind, ref.namespace ?? "", ref.name, ref.uid ?? ""].join("|");
}

function refName(ref: ObjectReference): string {
  return ref.namespace ? `${ref.namespace}/${ref.name}` : ref.name;
}

function truncate(text: string, maxBytes: number): string {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length <= maxBytes) return text;
  return new TextDecoder().decode(bytes.slice(0, maxBytes - 3)).replace(/\uFFFD$/, "") + "...";
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}
