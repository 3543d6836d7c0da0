/**
 * A reflector in the manner of client-go's: keeps a handler current with one
 * resource of the API server.
 *
 * - Lists with pagination (`limit` + `continue`); an expired continue token
 *   restarts the list without pagination. The next page is asked for before
 *   the handler gets the current one, so the server prepares it meanwhile.
 * - Watches from the list's resourceVersion with `allowWatchBookmarks=true`
 *   and a randomized `timeoutSeconds`; when a watch ends or breaks it resumes
 *   from the last resourceVersion seen (events and bookmarks), without a
 *   relist.
 * - On 410 Gone (HTTP status or an ERROR event) it relists and emits deletes
 *   for the objects that vanished and updates only for the ones that changed.
 * - It relists from scratch (a consistent read: no resourceVersion) when the
 *   server's history no longer contains what the reflector holds: a watch
 *   that brought no event and no bookmark for longer than the progress limit
 *   (a v1.26+ server sends a bookmark about every minute; a server restored
 *   from backup or with wiped storage holds a watch from a newer
 *   resourceVersion open and silent), a "Too large resource version" error,
 *   or a list whose resourceVersion is older than the one held (compared as
 *   integers when both are). Such a relist, and the periodic one
 *   (`resyncPeriodMs`), hands every listed object to the handler as an
 *   update, since resourceVersions of another history say nothing; the
 *   handler drops what did not change.
 * - Backs off exponentially with jitter on errors, capped at a few seconds
 *   so that a server that is back is used again promptly; a successful list
 *   or watch connection resets the backoff. Failures are logged at the 1st,
 *   2nd, 4th, 8th, ... consecutive one (logarithmic in an outage's length),
 *   and the recovery once. 401/403 are logged as errors saying what to
 *   check, and retried. A `Retry-After` from the server is honoured.
 * - Aborts and resumes a watch that stayed silent longer than its timeout
 *   plus a margin (a half-open connection).
 *
 * The reflector remembers only `key → resourceVersion`; the handler decides
 * what to keep of each object.
 *
 * @module
 */

import { backoffDelay } from "../backoff.ts";
import type { Logger } from "../log/types.ts";
import {
  ApiError,
  isStatus,
  keyOf,
  type KubeList,
  type KubeObject,
  type ResourceInfo,
  type WatchEvent,
} from "./api.ts";
import type { ListParams, WatchParams } from "./client.ts";
import { errorMessage } from "../errors.ts";

/** What a reflector needs of the API client ({@linkcode KubeClient} provides it). */
export interface ReflectorClient {
  /**
   * Lists one page: a new object each time, which the reflector owns (it
   * clears the page's `items` as it delivers them).
   */
  list(resource: ResourceInfo, params: ListParams, signal?: AbortSignal): Promise<KubeList>;
  /** Opens a watch; resolves once the server accepted it. */
  watch(
    resource: ResourceInfo,
    params: WatchParams,
    signal?: AbortSignal,
    onActivity?: () => void,
  ): Promise<AsyncIterable<WatchEvent>>;
}

/** Receives the changes of one resource. */
export interface ReflectorHandler {
  /**
   * An object appeared (in a list or an ADDED/MODIFIED event for an unknown
   * key); `key` is its `namespace/name` (or name), as {@linkcode keyOf} makes it.
   */
  onAdd(obj: KubeObject, key: string): void;
  /** A known object changed (its resourceVersion differs); `key` as for onAdd. */
  onUpdate(obj: KubeObject, key: string): void;
  /**
   * An object went away: `obj` is its last state from a DELETED event, or
   * absent when a relist found it missing.
   */
  onDelete(key: string, obj?: KubeObject): void;
  /**
   * Called before (`start`) and after (`end`) the onAdd/onUpdate calls of
   * one list page: the handler may hold back what it does after each
   * change until the page's end.
   */
  onListPage?(at: "start" | "end"): void;
  /** The initial list was delivered completely (called once). */
  onSynced?(): void;
}

/** Timers and randomness of a reflector, injectable so tests run fast. */
export interface ReflectorTiming {
  /** First backoff delay (default 800 ms, as client-go). */
  backoffInitialMs: number;
  /**
   * Backoff cap (default 3 s): the longest wait between attempts, hence the
   * longest a server that is back goes unused.
   */
  backoffMaxMs: number;
  /** Longest wait a `Retry-After` header can impose (default 60 s). */
  retryAfterMaxMs: number;
  /**
   * How long a connected watch may bring neither an event nor a bookmark
   * before the reflector relists from scratch (default 3 min: three of the
   * API server's one-minute bookmark intervals).
   */
  progressTimeoutMs: number;
  /** Range of the watch `timeoutSeconds`, picked at random per watch (default 300–600 s). */
  watchTimeoutSeconds: [number, number];
  /** Silence allowed beyond the watch timeout before the stream counts as dead (default 30 s). */
  silenceMarginMs: number;
  /** Overrides the silence limit (timeout + margin) when set. */
  silenceMs?: number;
  /** Random numbers in [0, 1) for jitter and timeouts. */
  random: () => number;
  /** Waits `ms` or until `signal` aborts (the backoff's sleep). */
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  /** A monotonic clock in ms (for the progress limit and the periodic relist). */
  now: () => number;
}

/** Options of a {@linkcode Reflector}. */
export interface ReflectorOptions {
  /** API client. */
  client: ReflectorClient;
  /** The resource to reflect. */
  resource: ResourceInfo;
  /** Label selector, e.g. `!service.kubernetes.io/service-proxy-name`. */
  labelSelector?: string;
  /** Field selector, e.g. `metadata.name=node-1`. */
  fieldSelector?: string;
  /** Receives the changes. */
  handler: ReflectorHandler;
  /** Logger. */
  logger: Logger;
  /** Page size of lists (default {@link LIST_PAGE_SIZE}). */
  pageSize?: number;
  /**
   * Relists in full this often (kube-proxy's `configSyncPeriod`); 0 or
   * absent: never.
   */
  resyncPeriodMs?: number;
  /** Timer overrides. */
  timing?: Partial<ReflectorTiming>;
}

/**
 * Objects per list page when the options name none. Half client-go's 500: a
 * page's parsed objects all live until the page is applied, so smaller pages
 * leave the old generation less of them to carry into a cold start's plan
 * (bench/analysis.md, peak section: the cold start's peak 1.6 MiB lower, as
 * fast); a restart, whose lists are its tail, was as fast with twice the
 * requests.
 */
export const LIST_PAGE_SIZE = 250;

/** "Equal jitter": between half and all of the exponential delay. */
const EQUAL_JITTER = [0.5, 1] as const;

const DEFAULT_TIMING: ReflectorTiming = {
  backoffInitialMs: 800,
  backoffMaxMs: 3_000,
  retryAfterMaxMs: 60_000,
  progressTimeoutMs: 180_000,
  watchTimeoutSeconds: [300, 600],
  silenceMarginMs: 30_000,
  random: Math.random,
  sleep,
  now: () => performance.now(),
};

/**
 * Why a watch stopped: ended by the server, 410 Gone, a half-open connection,
 * no progress for too long, or time for the periodic relist.
 */
type WatchOutcome = "ended" | "gone" | "silent" | "stalled" | "resync";

/** Why the reflector lists: the first time, after 410 Gone, or from scratch. */
type ListReason = "initial" | "gone" | "refresh";

/** Whether `n` is 1, 2, 4, 8, ... (failures logged in an outage). */
function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

/**
 * Whether resourceVersion `listed` is older than `held`. resourceVersions are
 * opaque; etcd-backed ones are integers and are compared only when both are.
 */
export function resourceVersionWentBack(held: string, listed: string): boolean {
  const int = /^\d+$/;
  return int.test(held) && int.test(listed) && BigInt(listed) < BigInt(held);
}

/** Sleeps `ms`, or less when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}

/** Lists and watches one resource, feeding a handler. */
export class Reflector {
  readonly #opts: ReflectorOptions;
  readonly #timing: ReflectorTiming;
  readonly #logger: Logger;
  readonly #known = new Map<string, string>();
  readonly #stop = new AbortController();
  #rv = "";
  #synced = false;
  #running?: Promise<void>;
  #resolveSynced!: () => void;
  #rejectSynced!: (err: Error) => void;
  /** Consecutive failed attempts since the last successful list or watch connection (the backoff). */
  #failures = 0;
  /** Consecutive failed attempts since the last progress (what is logged). */
  #troubles = 0;
  /** When the current run of failures began. */
  #troubledSince = 0;
  /** When the last event, bookmark or list arrived, or a watch connected after a failure. */
  #quietSince = 0;
  /** Set by a failure: the next watch connection restarts the progress clock. */
  #restartQuietClock = false;
  /** When the last list completed. */
  #listedAt = 0;
  #relists = 0;
  /** Resolves when the initial list was delivered; rejects if stopped before. */
  readonly synced: Promise<void>;

  /** A reflector; call {@linkcode start}. */
  constructor(options: ReflectorOptions) {
    this.#opts = options;
    this.#timing = { ...DEFAULT_TIMING, ...options.timing };
    this.#logger = options.logger.with({ resource: options.resource.plural });
    this.synced = new Promise<void>((resolve, reject) => {
      this.#resolveSynced = resolve;
      this.#rejectSynced = reject;
    });
    // Nobody has to wait for `synced`; avoid an unhandled rejection on stop.
    this.synced.catch(() => {});
  }

  /** Starts listing and watching in the background. */
  start(): void {
    if (this.#running) return;
    this.#running = this.#run();
  }

  /** Stops promptly (aborts the open request) and resolves once the loop ended. */
  async stop(): Promise<void> {
    this.#stop.abort();
    if (!this.#synced) {
      this.#rejectSynced(new Error(`${this.#opts.resource.plural}: stopped before sync`));
    }
    await this.#running;
  }

  /** Whether the initial list was delivered. */
  hasSynced(): boolean {
    return this.#synced;
  }

  /** The resourceVersion the reflector would resume a watch from ("" before the first list). */
  lastSyncResourceVersion(): string {
    return this.#rv;
  }

  /** How many objects the reflector knows. */
  get size(): number {
    return this.#known.size;
  }

  /** How many lists after the initial one completed (410 Gone, from scratch, periodic). */
  get relists(): number {
    return this.#relists;
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    let list: ListReason | undefined = "initial";
    while (!signal.aborted) {
      try {
        if (list) {
          await this.#list(signal, list);
          list = undefined;
        }
        const started = this.#timing.now();
        const { outcome, events } = await this.#watch(signal);
        if (outcome === "gone") {
          this.#logger.info("watch resourceVersion expired (410 Gone); relisting", {
            resourceVersion: this.#rv,
          });
          list = "gone";
          continue;
        }
        if (outcome === "stalled") {
          this.#logger.warn(
            "no event and no bookmark from the API server for longer than the progress limit " +
              "(an API server restored from backup or with wiped storage is silent like this); " +
              "relisting from scratch",
            {
              resourceVersion: this.#rv,
              progressTimeoutMs: this.#timing.progressTimeoutMs,
            },
          );
          list = "refresh";
          continue;
        }
        if (outcome === "resync") {
          this.#logger.debug(2, "periodic relist", { resyncPeriodMs: this.#opts.resyncPeriodMs });
          list = "refresh";
          continue;
        }
        if (outcome === "silent") {
          this.#logger.warn("watch stream went silent; reconnecting", {
            resourceVersion: this.#rv,
          });
          continue;
        }
        if (events === 0 && this.#timing.now() - started < 1000) {
          // A watch that ends at once without events is a fault (client-go's
          // "very short watch"): back off instead of spinning.
          throw new Error("watch ended immediately without events");
        }
        this.#logger.debug(4, "watch ended; resuming", { resourceVersion: this.#rv, events });
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof ApiError && err.isGone && !list) {
          this.#logger.info("watch resourceVersion expired (410 Gone); relisting", {
            resourceVersion: this.#rv,
          });
          list = "gone";
          continue;
        }
        const verb = list ? "list" : "watch";
        if (err instanceof ApiError && err.isResourceVersionTooLarge && !list) {
          // Relisting is the cure, after the backoff: a lagging cache must not cause a list storm.
          list = "refresh";
        }
        this.#failures++;
        if (this.#troubles++ === 0) this.#troubledSince = this.#timing.now();
        this.#restartQuietClock = true;
        const delay = err instanceof ApiError && err.retryAfterSeconds
          ? Math.min(err.retryAfterSeconds * 1000, this.#timing.retryAfterMaxMs)
          : backoffDelay(this.#failures, {
            initialMs: this.#timing.backoffInitialMs,
            maxMs: this.#timing.backoffMaxMs,
            jitter: EQUAL_JITTER,
          }, this.#timing.random);
        if (isPowerOfTwo(this.#troubles)) this.#logFailure(err, verb, delay, this.#troubles);
        await this.#timing.sleep(delay, signal);
      }
    }
  }

  /** The server answered: attempts start again from the first backoff step. */
  #connected(): void {
    this.#failures = 0;
    if (this.#restartQuietClock) {
      // An outage is not silence: the progress limit counts from the reconnection.
      this.#restartQuietClock = false;
      this.#quietSince = this.#timing.now();
    }
  }

  /** An event, a bookmark or a list arrived. */
  #progress(): void {
    this.#quietSince = this.#timing.now();
    if (this.#troubles === 0) return;
    this.#logger.info(`${this.#opts.resource.plural}: API server answers again`, {
      failures: this.#troubles,
      afterMs: Math.round(this.#timing.now() - this.#troubledSince),
    });
    this.#troubles = 0;
  }

  #logFailure(err: unknown, verb: string, delayMs: number, failures: number): void {
    const fields = {
      verb,
      retryInMs: Math.round(delayMs),
      failures,
      error: errorMessage(err),
    };
    const plural = this.#opts.resource.plural;
    if (err instanceof ApiError && err.isResourceVersionTooLarge) {
      this.#logger.warn(
        `the API server is behind the resourceVersion held for ${plural} (restored from ` +
          "backup or storage wiped?); relisting from scratch",
        { ...fields, resourceVersion: this.#rv },
      );
    } else if (err instanceof ApiError && err.code === 401) {
      this.#logger.error(
        `API server rejected the credentials (401 Unauthorized) to ${verb} ${plural}; ` +
          "check the kubeconfig user or the service account token",
        fields,
      );
    } else if (err instanceof ApiError && err.code === 403) {
      this.#logger.error(
        `not allowed to ${verb} ${plural} (403 Forbidden); check RBAC: the proxy needs ` +
          "list and watch on services, endpointslices and nodes",
        fields,
      );
    } else {
      this.#logger.warn(
        `${verb} ${plural} failed; retrying (logged at the 1st, 2nd, 4th, 8th, ... failure)`,
        fields,
      );
    }
  }

  /**
   * Lists all pages, then reconciles the handler with what is known. A
   * relist from scratch, or one whose resourceVersion went back, hands every
   * object over as an update; otherwise only objects whose resourceVersion
   * changed are.
   */
  async #list(signal: AbortSignal, reason: ListReason): Promise<void> {
    const o = this.#opts;
    const initial = !this.#synced;
    // Which keys were listed matters only for finding the known ones that
    // were not: with none known (the first list) nothing is tracked.
    let track = this.#known.size > 0;
    let seen = new Set<string>();
    let listed = 0;
    let limit: number | undefined = o.pageSize ?? LIST_PAGE_SIZE;
    let cont: string | undefined;
    let listRv = "";
    let pages = 0;
    let everything = reason === "refresh";
    const fetchPage = () =>
      o.client.list(o.resource, {
        labelSelector: o.labelSelector,
        fieldSelector: o.fieldSelector,
        limit,
        continue: cont,
      }, signal);
    let next: Promise<KubeList> | undefined;
    while (true) {
      let page: KubeList;
      try {
        page = await (next ?? fetchPage());
      } catch (err) {
        if (err instanceof ApiError && err.isGone && cont !== undefined) {
          // The snapshot behind the continue token was compacted: take one
          // consistent list without pagination, as client-go's pager does.
          this.#logger.info("list continue token expired; listing again without pagination");
          seen = new Set();
          listed = 0;
          track = this.#known.size > 0;
          limit = undefined;
          cont = undefined;
          next = undefined;
          listRv = "";
          continue;
        }
        throw err;
      }
      if (pages++ === 0) this.#connected();
      if (listRv === "") {
        listRv = page.metadata?.resourceVersion ?? "";
        if (!initial && resourceVersionWentBack(this.#rv, listRv)) {
          this.#logger.warn(
            "the API server's resourceVersion went back in time (restored from backup or " +
              "storage wiped?); reconciling with every listed object",
            { held: this.#rv, listed: listRv },
          );
          everything = true;
        }
      }
      cont = page.metadata?.continue || undefined;
      next = cont ? fetchPage() : undefined;
      // Settled (and its failure handled) at the top of the loop.
      next?.catch(() => {});
      // Delivered in this loop, not from a callback the handler calls: the
      // page's decoded objects then die young.
      this.#call("onListPage", "", () => o.handler.onListPage?.("start"));
      try {
        const items = page.items ?? [];
        for (let i = 0; i < items.length; i++) {
          const item = items[i];
          // Dropped once delivered: a collection during the rest of the
          // page then keeps only the objects not yet converted.
          (items as unknown[])[i] = undefined;
          if (this.#apply(item, track ? seen : undefined, everything)) listed++;
        }
      } finally {
        this.#call("onListPage", "", () => o.handler.onListPage?.("end"));
      }
      if (!cont) break;
    }
    if (listRv === "") {
      throw new Error(`list ${o.resource.plural}: no resourceVersion in the answer`);
    }
    let deleted = 0;
    if (track) {
      for (const key of [...this.#known.keys()]) {
        if (seen.has(key)) continue;
        this.#known.delete(key);
        deleted++;
        this.#call("onDelete", key, () => o.handler.onDelete(key));
      }
    }
    this.#rv = listRv;
    this.#listedAt = this.#timing.now();
    this.#progress();
    if (!initial) this.#relists++;
    this.#logger.debug(2, "listed", {
      objects: listed,
      pages,
      deleted,
      resourceVersion: listRv,
      reason,
    });
    if (initial) {
      this.#synced = true;
      this.#call("onSynced", "", () => o.handler.onSynced?.());
      this.#resolveSynced();
    }
  }

  /**
   * Delivers a listed object: add, or update when its resourceVersion changed
   * (or `always`), or nothing. Adds its key to `seen` when given; returns
   * whether the object had a key.
   */
  #apply(obj: KubeObject, seen: Set<string> | undefined, always: boolean): boolean {
    const key = keyOf(obj);
    if (!key) {
      this.#logger.warn("object without metadata.name skipped");
      return false;
    }
    seen?.add(key);
    const rv = obj.metadata?.resourceVersion ?? "";
    const before = this.#known.get(key);
    if (before === rv && rv !== "" && !always) return true;
    this.#known.set(key, rv);
    const h = this.#opts.handler;
    try {
      if (before === undefined) h.onAdd(obj, key);
      else h.onUpdate(obj, key);
    } catch (err) {
      this.#handlerFailed(before === undefined ? "onAdd" : "onUpdate", key, err);
    }
    return true;
  }

  #call(what: string, key: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#handlerFailed(what, key, err);
    }
  }

  #handlerFailed(what: string, key: string, err: unknown): void {
    this.#logger.error("event handler failed", { handler: what, key, error: errorMessage(err) });
  }

  /**
   * When the open watch must end without news from the server: the progress
   * limit, or the periodic relist (whichever comes first).
   */
  #watchDeadline(): { at: number; outcome: "stalled" | "resync" } {
    const stalled = this.#quietSince + this.#timing.progressTimeoutMs;
    const period = this.#opts.resyncPeriodMs ?? 0;
    const resync = period > 0 ? this.#listedAt + period : Infinity;
    return resync <= stalled
      ? { at: resync, outcome: "resync" }
      : { at: stalled, outcome: "stalled" };
  }

  async #watch(stop: AbortSignal): Promise<{ outcome: WatchOutcome; events: number }> {
    const o = this.#opts;
    const t = this.#timing;
    const [min, max] = t.watchTimeoutSeconds;
    const timeoutSeconds = Math.floor(min + t.random() * (max - min + 1));
    const silenceMs = t.silenceMs ?? timeoutSeconds * 1000 + t.silenceMarginMs;
    // One controller per watch, aborted from `stop` by an explicit listener:
    // a signal from AbortSignal.any() is only weakly held by its sources and
    // was seen to be collected mid-stream, leaving a stopped watch running.
    const local = new AbortController();
    const forward = () => local.abort();
    stop.addEventListener("abort", forward);
    if (stop.aborted) local.abort();
    const signal = local.signal;
    let ended: WatchOutcome | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        ended = "silent";
        // A TimeoutError makes the client open a new connection (client.ts).
        local.abort(new DOMException("watch stream went silent", "TimeoutError"));
      }, silenceMs);
    };
    // Checked when due and re-armed for what is left: events move the
    // deadline without a timer per event.
    let deadlineTimer: ReturnType<typeof setTimeout> | undefined;
    const armDeadline = () => {
      const { at, outcome } = this.#watchDeadline();
      const left = at - t.now();
      if (left <= 0) {
        ended = outcome;
        // Nothing for the progress limit may also be a dead connection: a
        // TimeoutError makes the relist go over a new one.
        local.abort(
          outcome === "stalled"
            ? new DOMException("no progress from the API server", "TimeoutError")
            : undefined,
        );
        return;
      }
      deadlineTimer = setTimeout(armDeadline, Math.min(left, 2 ** 31 - 1));
    };
    let events = 0;
    arm();
    try {
      const stream = await o.client.watch(
        o.resource,
        {
          labelSelector: o.labelSelector,
          fieldSelector: o.fieldSelector,
          resourceVersion: this.#rv,
          timeoutSeconds,
          allowWatchBookmarks: true,
        },
        signal,
        arm,
      );
      this.#connected();
      armDeadline();
      for await (const ev of stream) {
        events++;
        if (ev.type === "ERROR") {
          const status = ev.object;
          if (isStatus(status) && status.code === 410) return { outcome: "gone", events };
          throw isStatus(status)
            ? new ApiError(`watch ${o.resource.plural}`, status.code, status.reason, status.message)
            : new Error(`watch ${o.resource.plural}: ERROR event without a Status`);
        }
        this.#event(ev);
        this.#progress();
      }
      const { at, outcome } = this.#watchDeadline();
      if (t.now() >= at) return { outcome, events };
      return { outcome: "ended", events };
    } catch (err) {
      if (ended && !stop.aborted) return { outcome: ended, events };
      throw err;
    } finally {
      clearTimeout(timer);
      clearTimeout(deadlineTimer);
      stop.removeEventListener("abort", forward);
      local.abort();
    }
  }

  #event(ev: WatchEvent): void {
    const rv = ev.object.metadata?.resourceVersion;
    if (ev.type === "BOOKMARK") {
      if (rv) this.#rv = rv;
      return;
    }
    const key = keyOf(ev.object);
    if (!key) {
      this.#logger.warn("watch event for an object without metadata.name skipped", {
        type: ev.type,
      });
      if (rv) this.#rv = rv;
      return;
    }
    const h = this.#opts.handler;
    if (ev.type === "DELETED") {
      if (this.#known.delete(key)) this.#call("onDelete", key, () => h.onDelete(key, ev.object));
    } else {
      const before = this.#known.get(key);
      this.#known.set(key, rv ?? "");
      if (before === undefined) this.#call("onAdd", key, () => h.onAdd(ev.object, key));
      else if (before !== rv || !rv) this.#call("onUpdate", key, () => h.onUpdate(ev.object, key));
    }
    if (rv) this.#rv = rv;
  }
}
