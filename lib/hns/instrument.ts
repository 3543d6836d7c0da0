/**
 * An {@link HcnApi} decorator that counts and times every call per C function
 * name (`HcnCreateLoadBalancer`, `HNSCall`, ...) and tells listeners about
 * each one, so metrics and benchmarks see exactly what hnsproxy asked of HNS.
 *
 * @module
 */

import { hcnFunctionName, type HcnOperation, HNS_CALL } from "./names.ts";
import type { HcnApi, HcnHandle, HcnKind, ItemFailure } from "./types.ts";

/**
 * Called after every call with the C function name, its duration in seconds
 * and, when it failed, the error (an {@link import("./errors.ts").HnsError}
 * for HNS failures).
 */
export type HcnCallHook = (fn: string, seconds: number, error?: Error) => void;

/** Totals for one C function. */
export interface HcnCallStats {
  /** Calls made, failed ones included. */
  calls: number;
  /** Calls that failed. */
  errors: number;
  /** Time spent in the calls, in seconds. */
  seconds: number;
}

/** An {@link HcnApi} that also keeps per-function statistics. */
export interface InstrumentedHcnApi extends HcnApi {
  /** Totals per C function name, for every function called at least once. */
  stats(): Record<string, HcnCallStats>;
  /** Total calls over all functions. */
  totalCalls(): number;
  /** Start counting afresh. */
  resetStats(): void;
  /** Add a listener; returns the function that removes it. */
  onCall(hook: HcnCallHook): () => void;
}

/** `body()`, a synchronous throw turned into a rejection. */
function settle<T>(body: () => Promise<T>): Promise<T> {
  try {
    return body();
  } catch (err) {
    return Promise.reject(err);
  }
}

/** Seconds from `started` (a `performance.now()`) to now. */
function since(started: number): number {
  return (performance.now() - started) / 1000;
}

/** Wrap `api` so every call is counted, timed and reported to `hook` (and later listeners). */
export function instrumentHcnApi(api: HcnApi, hook?: HcnCallHook): InstrumentedHcnApi {
  const stats = new Map<string, HcnCallStats>();
  // An array replaced on each change, walked by index: a cold start records 100,000s of
  // calls, and a Set's iterator (and its results) would be allocated for each.
  let hooks: readonly HcnCallHook[] = hook ? [hook] : [];

  const record = (fn: string, started: number, error?: Error, seconds = since(started)) => {
    let s = stats.get(fn);
    if (s === undefined) stats.set(fn, s = { calls: 0, errors: 0, seconds: 0 });
    s.calls++;
    if (error) s.errors++;
    s.seconds += seconds;
    const listening = hooks;
    for (let i = 0; i < listening.length; i++) {
      try {
        listening[i](fn, seconds, error);
      } catch {
        // A broken listener must not turn a good HNS call into a failure.
      }
    }
  };

  function timed<T>(fn: string, body: () => Promise<T>): Promise<T> {
    const started = performance.now();
    return settle(body).then(
      (out) => {
        record(fn, started);
        return out;
      },
      (err) => {
        record(fn, started, err instanceof Error ? err : new Error(String(err)));
        throw err;
      },
    );
  }

  const name = (op: HcnOperation, kind: HcnKind) => hcnFunctionName(op, kind);
  /** The names of a compound request's calls, per kind, made once. */
  const compound = (ops: readonly HcnOperation[]) => {
    const byKind = new Map<HcnKind, readonly string[]>();
    return (kind: HcnKind) => {
      let fns = byKind.get(kind);
      if (fns === undefined) byKind.set(kind, fns = ops.map((op) => name(op, kind)));
      return fns;
    };
  };
  const createCloseNames = compound(["create", "close"]);
  const openQueryCloseNames = compound(["open", "query", "close"]);

  /**
   * Run a compound request of `calls` (C function names, in order) and record
   * each call it made: all of them on success, else those up to the one its
   * error names (recorded as failed) and the final Close a handle gets after
   * a failure in between.
   */
  function timedCalls<T>(calls: readonly string[], body: () => Promise<T>): Promise<T> {
    const started = performance.now();
    return settle(body).then((out) => {
      // The request's time, once for all of its calls.
      const seconds = since(started);
      for (let i = 0; i < calls.length; i++) record(calls[i], started, undefined, seconds);
      return out;
    }, (err) => {
      recordFailed(calls, started, err, since(started));
      throw err;
    });
  }

  /** Record the calls of a compound request that failed with `err` (see {@link timedCalls}). */
  function recordFailed(calls: readonly string[], started: number, err: unknown, seconds: number) {
    const error = err instanceof Error ? err : new Error(String(err));
    const at = calls.indexOf((err as { operation?: string }).operation ?? "");
    const failed = at < 0 ? 0 : at;
    for (let i = 0; i < failed; i++) record(calls[i], started, undefined, seconds);
    record(calls[failed], started, error, seconds);
    // A Close made after a failed Query (the handle is always closed) is not in the error.
    if (failed > 0 && failed < calls.length - 1) {
      record(calls[calls.length - 1], started, undefined, seconds);
    }
  }

  /**
   * Run a request of `items` compound requests of `calls` each and record
   * every call of every item, as {@link timedCalls} records one item; each
   * with the request's time. A rejected request tried no item: each is
   * recorded as failed at its first call, as a refused single request is.
   * `failureOf` gives, in order of index, each failed item's error.
   */
  function timedItems<R>(
    calls: readonly string[],
    items: number,
    body: () => Promise<R>,
    failureOf: (out: R, index: number) => Error | undefined,
  ): Promise<R> {
    const started = performance.now();
    return settle(body).then((out) => {
      const seconds = since(started);
      for (let i = 0; i < items; i++) {
        const failure = failureOf(out, i);
        if (failure) recordFailed(calls, started, failure, seconds);
        else for (let c = 0; c < calls.length; c++) record(calls[c], started, undefined, seconds);
      }
      return out;
    }, (err) => {
      const seconds = since(started);
      const error = err instanceof Error ? err : new Error(String(err));
      for (let i = 0; i < items; i++) record(calls[0], started, error, seconds);
      throw err;
    });
  }

  /** The failed item at `index` of a request of many creates, taken in order of index. */
  const createFailures = () => {
    let f = 0;
    return (failures: ItemFailure[], index: number) =>
      f < failures.length && failures[f].index === index ? failures[f++].error : undefined;
  };
  /** The error of the item at `index` of a request of many reads. */
  const readFailure = (read: Array<string | Error>, index: number) => {
    const item = read[index];
    return typeof item === "string" ? undefined : item;
  };

  return {
    get hasModifyLoadBalancer() {
      return api.hasModifyLoadBalancer;
    },
    get callsInFlight() {
      return api.callsInFlight;
    },
    get readsInFlight() {
      return api.readsInFlight;
    },
    keepListingsApart: (apart: boolean) => api.keepListingsApart?.(apart),
    enumerate: (kind: HcnKind, query: string) =>
      timed(name("enumerate", kind), () => api.enumerate(kind, query)),
    enumerateIds: (kind: HcnKind, query: string) =>
      timed(name("enumerate", kind), () => api.enumerateIds(kind, query)),
    open: (kind: HcnKind, id: string) => timed(name("open", kind), () => api.open(kind, id)),
    create: (kind: HcnKind, id: string, settings: string, network?: HcnHandle) =>
      timed(name("create", kind), () => api.create(kind, id, settings, network)),
    modify: (kind: HcnKind, handle: HcnHandle, settings: string) =>
      timed(name("modify", kind), () => api.modify(kind, handle, settings)),
    query: (kind: HcnKind, handle: HcnHandle, query: string) =>
      timed(name("query", kind), () => api.query(kind, handle, query)),
    delete: (kind: HcnKind, id: string) => timed(name("delete", kind), () => api.delete(kind, id)),
    close: (kind: HcnKind, handle: HcnHandle) =>
      timed(name("close", kind), () => api.close(kind, handle)),
    hnsCall: (method: string, path: string, request: string) =>
      timed(HNS_CALL, () => api.hnsCall(method, path, request)),
    createAndClose: api.createAndClose &&
      ((kind: HcnKind, id: string, settings: string, network?: HcnHandle) =>
        timedCalls(
          createCloseNames(kind),
          () => api.createAndClose!(kind, id, settings, network),
        )),
    createAndCloseMany: api.createAndCloseMany &&
      ((kind: HcnKind, ids: readonly string[], settings: readonly string[], network?: HcnHandle) =>
        timedItems(
          createCloseNames(kind),
          ids.length,
          () => api.createAndCloseMany!(kind, ids, settings, network),
          createFailures(),
        )),
    openQueryClose: api.openQueryClose &&
      ((kind: HcnKind, id: string, query: string) =>
        timedCalls(
          openQueryCloseNames(kind),
          () => api.openQueryClose!(kind, id, query),
        )),
    openQueryCloseMany: api.openQueryCloseMany &&
      ((kind: HcnKind, ids: readonly string[], query: string) =>
        timedItems(
          openQueryCloseNames(kind),
          ids.length,
          () => api.openQueryCloseMany!(kind, ids, query),
          readFailure,
        )),
    dispose: () => api.dispose(),
    stats: () => Object.fromEntries([...stats].map(([k, v]) => [k, { ...v }])),
    totalCalls: () => [...stats.values()].reduce((n, s) => n + s.calls, 0),
    resetStats: () => stats.clear(),
    onCall(h: HcnCallHook) {
      if (!hooks.includes(h)) hooks = [...hooks, h];
      return () => {
        hooks = hooks.filter((other) => other !== h);
      };
    },
  };
}
