/**
 * A reflector in the manner of client-go's: keeps a handler current with one
 * resource of the API server.
 *
 * - Lists with pagination (`limit` + `continue`); an expired continue token
 *   restarts the list without pagination.
 * - Watches from the list's resourceVersion with `allowWatchBookmarks=true`
 *   and a randomized `timeoutSeconds`; when a watch ends or breaks it resumes
 *   from the last resourceVersion seen (events and bookmarks), without a
 *   relist.
 * - On 410 Gone (HTTP status or an ERROR event) it relists and emits deletes
 *   for the objects that vanished and updates only for the ones that changed.
 * - Backs off exponentially with jitter (capped at 30 s) on errors; 401/403
 *   are logged as errors saying what to check, and retried.
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

/** What a reflector needs of the API client ({@linkcode KubeClient} provides it). */
export interface ReflectorClient {
  /** Lists one page. */
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
  /** An object appeared (in a list or an ADDED/MODIFIED event for an unknown key). */
  onAdd(obj: KubeObject): void;
  /** A known object changed (its resourceVersion differs). */
  onUpdate(obj: KubeObject): void;
  /**
   * An object went away: `obj` is its last state from a DELETED event, or
   * absent when a relist found it missing.
   */
  onDelete(key: string, obj?: KubeObject): void;
  /** The initial list was delivered completely (called once). */
  onSynced?(): void;
}

/** Timers and randomness of a reflector, injectable so tests run fast. */
export interface ReflectorTiming {
  /** First backoff delay (default 800 ms, as client-go). */
  backoffInitialMs: number;
  /** Backoff cap (default 30 s). */
  backoffMaxMs: number;
  /** Range of the watch `timeoutSeconds`, picked at random per watch (default 300–600 s). */
  watchTimeoutSeconds: [number, number];
  /** Silence allowed beyond the watch timeout before the stream counts as dead (default 30 s). */
  silenceMarginMs: number;
  /** Overrides the silence limit (timeout + margin) when set. */
  silenceMs?: number;
  /** Random numbers in [0, 1) for jitter and timeouts. */
  random: () => number;
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
  /** Page size of lists (default 500). */
  pageSize?: number;
  /** Timer overrides. */
  timing?: Partial<ReflectorTiming>;
}

/** "Equal jitter": between half and all of the exponential delay. */
const EQUAL_JITTER = [0.5, 1] as const;

const DEFAULT_TIMING: ReflectorTiming = {
  backoffInitialMs: 800,
  backoffMaxMs: 30_000,
  watchTimeoutSeconds: [300, 600],
  silenceMarginMs: 30_000,
  random: Math.random,
};

/** Why a watch stopped. */
type WatchOutcome = "ended" | "gone" | "silent";

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

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    let needList = true;
    let failures = 0;
    while (!signal.aborted) {
      try {
        if (needList) {
          await this.#list(signal);
          needList = false;
          failures = 0;
        }
        const started = performance.now();
        const { outcome, events } = await this.#watch(signal);
        if (outcome === "gone") {
          this.#logger.info("watch resourceVersion expired (410 Gone); relisting", {
            resourceVersion: this.#rv,
          });
          needList = true;
          continue;
        }
        if (outcome === "silent") {
          this.#logger.warn("watch stream went silent; reconnecting", {
            resourceVersion: this.#rv,
          });
          failures = 0;
          continue;
        }
        if (events === 0 && performance.now() - started < 1000) {
          // A watch that ends at once without events is a fault (client-go's
          // "very short watch"): back off instead of spinning.
          throw new Error("watch ended immediately without events");
        }
        failures = 0;
        this.#logger.debug(4, "watch ended; resuming", { resourceVersion: this.#rv, events });
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof ApiError && err.isGone && !needList) {
          this.#logger.info("watch resourceVersion expired (410 Gone); relisting", {
            resourceVersion: this.#rv,
          });
          needList = true;
          continue;
        }
        failures++;
        const delay = err instanceof ApiError && err.retryAfterSeconds
          ? Math.min(err.retryAfterSeconds * 1000, this.#timing.backoffMaxMs)
          : backoffDelay(failures, {
            initialMs: this.#timing.backoffInitialMs,
            maxMs: this.#timing.backoffMaxMs,
            jitter: EQUAL_JITTER,
          }, this.#timing.random);
        this.#logFailure(err, needList ? "list" : "watch", delay, failures);
        await sleep(delay, signal);
      }
    }
  }

  #logFailure(err: unknown, verb: string, delayMs: number, failures: number): void {
    const fields = {
      verb,
      retryInMs: Math.round(delayMs),
      failures,
      error: err instanceof Error ? err.message : String(err),
    };
    const plural = this.#opts.resource.plural;
    if (err instanceof ApiError && err.code === 401) {
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
      this.#logger.warn(`${verb} ${plural} failed; retrying`, fields);
    }
  }

  /** Lists all pages, then reconciles the handler with what is known. */
  async #list(signal: AbortSignal): Promise<void> {
    const o = this.#opts;
    const initial = !this.#synced;
    let seen = new Set<string>();
    let limit: number | undefined = o.pageSize ?? 500;
    let cont: string | undefined;
    let listRv = "";
    let pages = 0;
    while (true) {
      let page: KubeList;
      try {
        page = await o.client.list(o.resource, {
          labelSelector: o.labelSelector,
          fieldSelector: o.fieldSelector,
          limit,
          continue: cont,
        }, signal);
      } catch (err) {
        if (err instanceof ApiError && err.isGone && cont !== undefined) {
          // The snapshot behind the continue token was compacted: take one
          // consistent list without pagination, as client-go's pager does.
          this.#logger.info("list continue token expired; listing again without pagination");
          seen = new Set();
          limit = undefined;
          cont = undefined;
          listRv = "";
          continue;
        }
        throw err;
      }
      pages++;
      if (listRv === "") listRv = page.metadata?.resourceVersion ?? "";
      for (const item of page.items ?? []) this.#apply(item, seen);
      cont = page.metadata?.continue || undefined;
      if (!cont) break;
    }
    if (listRv === "") {
      throw new Error(`list ${o.resource.plural}: no resourceVersion in the answer`);
    }
    let deleted = 0;
    for (const key of [...this.#known.keys()]) {
      if (seen.has(key)) continue;
      this.#known.delete(key);
      deleted++;
      this.#call("onDelete", key, () => o.handler.onDelete(key));
    }
    this.#rv = listRv;
    this.#logger.debug(2, "listed", {
      objects: seen.size,
      pages,
      deleted,
      resourceVersion: listRv,
    });
    if (initial) {
      this.#synced = true;
      this.#call("onSynced", "", () => o.handler.onSynced?.());
      this.#resolveSynced();
    }
  }

  /** Delivers a listed object: add, update when its resourceVersion changed, or nothing. */
  #apply(obj: KubeObject, seen: Set<string>): void {
    const key = keyOf(obj);
    if (!key) {
      this.#logger.warn("object without metadata.name skipped");
      return;
    }
    seen.add(key);
    const rv = obj.metadata?.resourceVersion ?? "";
    const before = this.#known.get(key);
    if (before === rv && rv !== "") return;
    this.#known.set(key, rv);
    if (before === undefined) this.#call("onAdd", key, () => this.#opts.handler.onAdd(obj));
    else this.#call("onUpdate", key, () => this.#opts.handler.onUpdate(obj));
  }

  #call(what: string, key: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#logger.error("event handler failed", {
        handler: what,
        key,
        error: err instanceof Error ? err.message : String(err),
      });
    }
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
    let silent = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        silent = true;
        local.abort();
      }, silenceMs);
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
      }
      return { outcome: "ended", events };
    } catch (err) {
      if (silent && !stop.aborted) return { outcome: "silent", events };
      throw err;
    } finally {
      clearTimeout(timer);
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
      if (before === undefined) this.#call("onAdd", key, () => h.onAdd(ev.object));
      else if (before !== rv || !rv) this.#call("onUpdate", key, () => h.onUpdate(ev.object));
    }
    if (rv) this.#rv = rv;
  }
}
