/**
 * A fake kube-apiserver for tests and the demo: a real HTTP(S) server on
 * loopback that serves list and watch of any registered resource with the
 * semantics of a v1.26+ API server.
 *
 * - Lists: `kind`/`apiVersion` (`ServiceList`, ...), items without
 *   kind/apiVersion, the list's resourceVersion, pagination with `limit` and
 *   opaque `continue` tokens that read a consistent snapshot and expire (410)
 *   once history was compacted past them; `resourceVersion=0` ignores `limit`
 *   like the watch cache does.
 * - Watches: a chunked `application/json` stream of newline-delimited
 *   `{"type","object"}` frames; replay from a resourceVersion, synthetic
 *   ADDED events when started without one, `DELETED`/`ADDED` when an update
 *   moves an object out of/into the selector, BOOKMARKs to watches that allow
 *   them (about every minute once the resource was written since the server
 *   started, as the watch cache sends them, and on demand),
 *   the server-side timeout (`timeoutSeconds`), and an ERROR event
 *   with a 410 `Status` for a compacted resourceVersion (or, on a knob, an
 *   HTTP 410).
 * - Response compression as kube-apiserver's (APIResponseCompression, on
 *   by default since v1.16): a get or list answer (each page of a paginated
 *   list on its own) whose body is larger than 128 KiB is sent gzipped at
 *   level 1 (`Content-Encoding: gzip`, `Vary: Accept-Encoding`) when the
 *   request's Accept-Encoding allows it ({@linkcode acceptsGzip}); smaller
 *   answers, watch streams and non-API paths are never compressed.
 * - Protocols as kube-apiserver's: over TLS the fake offers HTTP/2 and
 *   HTTP/1.1 by ALPN (`h2` preferred), so a client that negotiates h2 runs
 *   its lists and watches as streams multiplexed on one connection
 *   (lib/fake-apiserver/tls_front.ts relays them to `Deno.serve`); plain
 *   HTTP is HTTP/1.1 only (node:http), like the old insecure port. Each
 *   request records its protocol and connection ({@linkcode RequestRecord}).
 * - One resourceVersion counter across all resources.
 * - Errors are `Status` objects: 400 for bad selectors, 401 without a valid
 *   bearer token or client certificate (when tokens are configured), 404,
 *   and injected failures ({@linkcode FakeApiServer.failNext}).
 * - Faults: {@linkcode FakeApiServer.compactBefore},
 *   {@linkcode FakeApiServer.disconnectWatches} (connection reset mid-stream),
 *   {@linkcode FakeApiServer.silenceWatches} (a half-open connection),
 *   {@linkcode FakeApiServer.freezeConnections} (TLS connections that went
 *   dead without a reset, all their HTTP/2 streams with them),
 *   {@linkcode FakeApiServer.goAway} (HTTP/2 GOAWAY, as a terminating
 *   kube-apiserver or its `--goaway-chance` sends),
 *   {@linkcode FakeApiServer.outage} (connections refused until
 *   {@linkcode FakeApiServer.endOutage}),
 *   {@linkcode FakeApiServer.restoreFromBackup} (storage gone back in time)
 *   and {@linkcode FakeApiServer.afterNextListPage} (a fault between two
 *   pages of a list).
 * - A resourceVersion newer than the server's, as clients of a restored
 *   server ask for: a list answers 504 "Too large resource version"; a watch
 *   is accepted and stays silent (no events, no bookmarks) until the
 *   server's resourceVersion passes it, as a v1.26 watch cache does; a
 *   continue token minted before a restore, at a resourceVersion the server
 *   has not reached, answers 500 (etcd's "required revision is a future
 *   revision", passed on as is).
 *
 * @module
 */

import http from "node:http";
import { Buffer } from "node:buffer";
import type { AddressInfo } from "node:net";
import zlib from "node:zlib";
import {
  type Answer,
  AnswerReset,
  type Exchange,
  type FetchAnswer,
  fetchExchange,
  nodeExchange,
  resetAnswer,
} from "./exchange.ts";
import { TlsFront } from "./tls_front.ts";
import {
  type Matcher,
  parseFieldSelector,
  parseLabelSelector,
  SelectorError,
} from "./selectors.ts";
import { EVENT_PATCH_TYPES, eventProblems, EVENTS_RESOURCE, mergePatch } from "./events.ts";

/** A resource the fake serves. */
export interface FakeResource {
  /** Plural name, e.g. `services`. */
  plural: string;
  /** API group ("" for core). */
  group: string;
  /** Version, e.g. `v1`. */
  version: string;
  /** Kind, e.g. `Service`. */
  kind: string;
  /** Whether objects live in namespaces. */
  namespaced: boolean;
}

/** An object as stored by the fake (any shape; only metadata is interpreted). */
export interface FakeObject {
  /** Group/version. */
  apiVersion?: string;
  /** Kind. */
  kind?: string;
  /** Metadata: name (required), namespace (for namespaced resources), labels. */
  metadata: { name: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
  /** Anything else. */
  [field: string]: unknown;
}

/** One request the fake served, for assertions. */
export interface RequestRecord {
  /** `list`, `watch`, `get`, `create` (POST), `patch` or `other`. */
  verb: "list" | "watch" | "get" | "create" | "patch" | "other";
  /** Resource plural, when the path named one. */
  resource?: string;
  /** Path without query. */
  path: string;
  /** Query parameters. */
  query: Record<string, string>;
  /** Status code answered. */
  status: number;
  /** `token`, `cert:<CN>` or `anonymous`. */
  user: string;
  /** The request's (first) Accept-Encoding header, when it had one. */
  acceptEncoding?: string;
  /** `gzip` when the answer was compressed. */
  contentEncoding?: "gzip";
  /** The request's protocol: `h2` or `http/1.1`. */
  protocol: "h2" | "http/1.1";
  /** Which connection carried the request (numbered from 1 in the order of their first requests). */
  connection: number;
}

/** A failure to inject into upcoming requests. */
export interface InjectedFailure {
  /** How many requests fail (default 1). */
  count?: number;
  /** Only requests for this resource plural. */
  resource?: string;
  /** Only this verb. */
  verb?: "list" | "watch" | "get" | "create" | "patch";
  /** Status message. */
  message?: string;
  /** `Retry-After` header in seconds. */
  retryAfterSeconds?: number;
}

/** TLS settings of the fake (PEM strings). */
export interface FakeTlsOptions {
  /** Server certificate chain. */
  cert: string;
  /** Server private key. */
  key: string;
  /** CA whose client certificates authenticate requests. */
  clientCA?: string;
}

/**
 * How often a watch that allows bookmarks gets one by default, ms: about every
 * minute, as kube-apiserver's watch cache sends them (its
 * `defaultBookmarkFrequency`). A client that relists a watch that brought
 * nothing for a while must see the progress a real server shows.
 */
export const DEFAULT_BOOKMARK_INTERVAL_MS = 60_000;

/** Options of {@linkcode FakeApiServer}. */
export interface FakeApiServerOptions {
  /** Bearer tokens accepted; when set, requests without one (or a client cert) get 401. */
  tokens?: string[];
  /** Serve HTTPS. */
  tls?: FakeTlsOptions;
  /**
   * Send BOOKMARK events this often to watches that allow them, of the
   * resources written since the server (re)started (default
   * {@linkcode DEFAULT_BOOKMARK_INTERVAL_MS}, as kube-apiserver's watch cache,
   * which sends none before it has seen an event of its resource; 0: only on
   * demand, as a server that sends none).
   */
  bookmarkIntervalMs?: number;
  /** Server-side timeout of watches that send no `timeoutSeconds` (default 1800). */
  defaultWatchTimeoutSeconds?: number;
  /** Answer a watch from a compacted resourceVersion with an HTTP 410 instead of an ERROR event. */
  expiredWatchAsHttpStatus?: boolean;
  /** First resourceVersion handed out (default 1000). */
  initialResourceVersion?: number;
  /**
   * Events kept for watch replay and continue tokens (default 100,000), like
   * the API server's watch cache window: older history is compacted.
   */
  historyLimit?: number;
}

/**
 * kube-apiserver's compression threshold: only a response body of more than
 * this many bytes is gzipped (kubernetes/kubernetes#77449).
 */
export const GZIP_THRESHOLD_BYTES = 128 * 1024;

/**
 * kube-apiserver's gzip level: 1 (best speed) since v1.26 and the patch
 * releases of v1.22-v1.25 (kubernetes/kubernetes#112296), 4 before.
 */
export const GZIP_LEVEL = 1;

/**
 * Whether kube-apiserver may gzip an answer to a request with this
 * Accept-Encoding (the first such header only): one of its comma-separated
 * tokens, trimmed, must be exactly `gzip`. Like the real server it parses no
 * parameters, so `gzip;q=0` (and `gzip;q=1`) does not ask for gzip, and
 * `identity`, `br` or no header asks for none.
 */
export function acceptsGzip(acceptEncoding: string | undefined): boolean {
  if (!acceptEncoding) return false;
  return acceptEncoding.split(",").some((token) => token.trim() === "gzip");
}

/** The resources served out of the box. */
export const BUILTIN_RESOURCES: readonly FakeResource[] = [
  { plural: "services", group: "", version: "v1", kind: "Service", namespaced: true },
  {
    plural: "endpointslices",
    group: "discovery.k8s.io",
    version: "v1",
    kind: "EndpointSlice",
    namespaced: true,
  },
  { plural: "nodes", group: "", version: "v1", kind: "Node", namespaced: false },
  { plural: "namespaces", group: "", version: "v1", kind: "Namespace", namespaced: false },
  { plural: "pods", group: "", version: "v1", kind: "Pod", namespaced: true },
  EVENTS_RESOURCE,
];

const REASONS: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  405: "MethodNotAllowed",
  409: "Conflict",
  410: "Expired",
  422: "Invalid",
  429: "TooManyRequests",
  500: "InternalError",
  503: "ServiceUnavailable",
  504: "Timeout",
};

interface HistoryEntry {
  rv: number;
  resource: string;
  key: string;
  /** The object after the change (undefined after a delete). */
  next?: FakeObject;
  /** The object before the change. */
  prev?: FakeObject;
}

interface Watcher {
  resource: string;
  /** The resourceVersion the watch started from: nothing at or below it is sent. */
  fromRv: number;
  namespace?: string;
  labels: Matcher;
  fields: Matcher;
  bookmarks: boolean;
  silenced: boolean;
  /** The connection carrying the watch ({@linkcode RequestRecord.connection}). */
  connection: number;
  res: Answer;
  timer?: ReturnType<typeof setTimeout>;
}

function apiVersionOf(r: FakeResource): string {
  return r.group ? `${r.group}/${r.version}` : r.version;
}

function keyOf(obj: FakeObject): string {
  const ns = obj.metadata.namespace;
  return ns ? `${ns}/${obj.metadata.name}` : obj.metadata.name;
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

/** A Status object as the API server sends it. */
export function statusObject(
  code: number,
  message: string,
  reason = REASONS[code] ?? "",
  details?: Record<string, unknown>,
): Record<string, unknown> {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    // Go's StatusReasonUnknown is "", and the field is omitempty.
    ...(reason ? { reason } : {}),
    ...(details ? { details } : {}),
    code,
  };
}

/** The fake API server. */
export class FakeApiServer {
  readonly #opts: FakeApiServerOptions;
  #port = 0;
  readonly #resources = new Map<string, FakeResource>();
  readonly #objects = new Map<string, Map<string, FakeObject>>();
  /** List item texts by stored object (see `#itemText`). */
  readonly #itemTexts = new WeakMap<FakeObject, string>();
  /** Each resource's keys sorted, while its set of keys is unchanged (a page costs its length). */
  readonly #sortedKeys = new Map<string, string[]>();
  #history: HistoryEntry[] = [];
  /** Per resource, the resourceVersion of its latest write. */
  readonly #writtenAt = new Map<string, number>();
  /**
   * Resources written since the server started (or restarted: an outage's
   * end, a restore): as a watch cache, which sends its periodic bookmarks
   * only once it has seen an event of its resource.
   */
  readonly #eventsSinceStart = new Set<string>();
  #rv: number;
  #compactedBefore = 0;
  /** The plain HTTP/1.1 server (without TLS). */
  #server?: http.Server;
  /** Over TLS: the front that accepts the connections ... */
  #front?: TlsFront;
  /** ... and the server that answers them (replaced by {@linkcode goAway}). */
  #backend?: Deno.HttpServer<Deno.NetAddr>;
  /** Backends shutting down after a GOAWAY, until their last stream ended. */
  readonly #draining: Promise<void>[] = [];
  /** Answers of the backends not ended yet (ended at {@linkcode stop}). */
  readonly #fetchAnswers = new Set<FetchAnswer>();
  #listening = false;
  /** Connection numbers by connection. */
  readonly #connectionIds = new WeakMap<object, number>();
  #connections = 0;
  /** Connections frozen by {@linkcode freezeConnections}, by number. */
  readonly #frozen = new Set<number>();
  #url = "";
  readonly #watchers = new Set<Watcher>();
  readonly #failures: (InjectedFailure & { status: number })[] = [];
  /** What runs once right after the next list page of a resource is answered. */
  readonly #afterListPage = new Map<string, () => void>();
  #bookmarkTimer?: ReturnType<typeof setInterval>;
  #stallEvents = false;
  readonly #stalled = new Set<Answer>();
  #uid = 0;
  /** Every request served, oldest first. */
  readonly requests: RequestRecord[] = [];

  /** A stopped fake server; call {@linkcode start}. */
  constructor(options: FakeApiServerOptions = {}) {
    this.#opts = options;
    this.#rv = options.initialResourceVersion ?? 1000;
    for (const r of BUILTIN_RESOURCES) this.registerResource(r);
  }

  /** Serves another resource (custom or built-in kinds not listed in {@linkcode BUILTIN_RESOURCES}). */
  registerResource(resource: FakeResource): void {
    this.#resources.set(resource.plural, resource);
    if (!this.#objects.has(resource.plural)) this.#objects.set(resource.plural, new Map());
  }

  /** Starts listening on 127.0.0.1 on a free port. */
  async start(): Promise<this> {
    const tls = this.#opts.tls;
    if (tls) {
      this.#backend = this.#serveBackend();
      this.#front = new TlsFront(tls, () => this.#backend!.addr.port);
    }
    await this.#listen(0);
    this.#url = `${tls ? "https" : "http"}://127.0.0.1:${this.#port}`;
    const every = this.bookmarkIntervalMs;
    if (every > 0) {
      this.#bookmarkTimer = setInterval(() => this.#sendBookmarks(this.#eventsSinceStart), every);
    }
    return this;
  }

  /**
   * The server behind the TLS front: `Deno.serve` (hyper) on a loopback
   * port, speaking HTTP/2 or HTTP/1.1 as each connection starts.
   */
  #serveBackend(): Deno.HttpServer<Deno.NetAddr> {
    const onError = (err: unknown) => {
      // A reset is an answer aborted on purpose; anything else is a bug of the fake.
      if (!(err instanceof AnswerReset)) console.error("FakeApiServer:", err);
      return new Response(null, { status: 500 });
    };
    return Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {}, onError },
      (request, info) => {
        const connection = this.#front?.connectionFrom(info.remoteAddr.port);
        if (!connection) return new Response("not through the TLS front", { status: 421 });
        const exchange = fetchExchange(request, connection);
        const answer = exchange.answer;
        this.#fetchAnswers.add(answer);
        answer.once("close", () => this.#fetchAnswers.delete(answer));
        try {
          this.#handle(exchange);
        } catch (err) {
          answer.destroy(err as Error);
        }
        return answer.response;
      },
    );
  }

  /** Listens on `port` (0: a free one): the TLS front, or the plain HTTP server. */
  async #listen(port: number): Promise<void> {
    if (this.#front) {
      this.#port = await this.#front.listen(port);
    } else {
      const server = http.createServer((req, res) => this.#handle(nodeExchange(req, res)));
      this.#server = server;
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, "127.0.0.1", () => resolve());
      });
      this.#port = (server.address() as AddressInfo).port;
    }
    this.#listening = true;
  }

  /** Stops listening and resets every open connection (a crashed server's). */
  async #closeListener(): Promise<void> {
    this.#listening = false;
    if (this.#front) return await this.#front.close();
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  /** The number of the connection that carried a request. */
  #connectionNumber(connection: object): number {
    let id = this.#connectionIds.get(connection);
    if (id === undefined) {
      id = ++this.#connections;
      this.#connectionIds.set(connection, id);
    }
    return id;
  }

  /** The base URL, e.g. `http://127.0.0.1:41234`. */
  get url(): string {
    if (!this.#url) throw new Error("FakeApiServer: not started");
    return this.#url;
  }

  /** How often watches that allow bookmarks get one, ms (0: only on demand). */
  get bookmarkIntervalMs(): number {
    return this.#opts.bookmarkIntervalMs ?? DEFAULT_BOOKMARK_INTERVAL_MS;
  }

  /** The current (latest handed out) resourceVersion. */
  get resourceVersion(): string {
    return String(this.#rv);
  }

  /** Closes every connection and stops listening. */
  async stop(): Promise<void> {
    if (this.#bookmarkTimer !== undefined) clearInterval(this.#bookmarkTimer);
    this.stallEventWrites(false);
    for (const w of this.#watchers) this.#endWatch(w, "close");
    if (this.#listening) await this.#closeListener();
    for (const answer of this.#fetchAnswers) answer.destroy();
    const backend = this.#backend;
    this.#backend = undefined;
    if (backend) this.#draining.push(backend.shutdown());
    await Promise.all(this.#draining.splice(0));
  }

  // ---- objects ----

  #resource(resource: string): FakeResource {
    const r = this.#resources.get(resource);
    if (!r) throw new Error(`FakeApiServer: unknown resource "${resource}"`);
    return r;
  }

  #store(resource: string): Map<string, FakeObject> {
    this.#resource(resource);
    return this.#objects.get(resource)!;
  }

  #record(resource: string, key: string, prev?: FakeObject, next?: FakeObject): number {
    const rv = ++this.#rv;
    this.#writtenAt.set(resource, rv);
    this.#eventsSinceStart.add(resource);
    const entry: HistoryEntry = { rv, resource, key, prev, next };
    this.#history.push(entry);
    const limit = this.#opts.historyLimit ?? 100_000;
    // Trimmed in batches so that a long run of writes is not O(n) each.
    if (this.#history.length > limit + Math.ceil(limit / 4)) {
      const drop = this.#history.length - limit;
      this.#compactedBefore = Math.max(this.#compactedBefore, this.#history[drop].rv);
      this.#history.splice(0, drop);
    }
    this.#dispatch(entry);
    return rv;
  }

  #stamp(resource: string, obj: FakeObject, prev?: FakeObject): FakeObject {
    const r = this.#resource(resource);
    if (typeof obj?.metadata?.name !== "string" || obj.metadata.name === "") {
      throw new Error(`FakeApiServer: ${resource} object without metadata.name`);
    }
    if (r.namespaced && !obj.metadata.namespace) {
      throw new Error(`FakeApiServer: ${resource} ${obj.metadata.name} without metadata.namespace`);
    }
    const stored: FakeObject = { apiVersion: apiVersionOf(r), kind: r.kind, ...clone(obj) };
    stored.apiVersion = apiVersionOf(r);
    stored.kind = r.kind;
    stored.metadata.uid = prev?.metadata.uid ??
      `00000000-0000-4000-8000-${String(++this.#uid).padStart(12, "0")}`;
    stored.metadata.creationTimestamp = prev?.metadata.creationTimestamp ??
      new Date().toISOString().replace(/\.\d+Z$/, "Z");
    stored.metadata.resourceVersion = String(this.#rv + 1);
    return stored;
  }

  /** Creates an object; throws when it exists. Returns the stored object (with resourceVersion). */
  create(resource: string, obj: FakeObject): FakeObject {
    const store = this.#store(resource);
    const stored = this.#stamp(resource, obj);
    const key = keyOf(stored);
    if (store.has(key)) throw new Error(`FakeApiServer: ${resource} "${key}" already exists`);
    store.set(key, stored);
    this.#itemText(stored);
    this.#sortedKeys.delete(resource);
    this.#record(resource, key, undefined, stored);
    return clone(stored);
  }

  /** Replaces an object; throws when it does not exist. */
  update(resource: string, obj: FakeObject): FakeObject {
    const store = this.#store(resource);
    const key = keyOf(obj);
    const prev = store.get(key);
    if (!prev) throw new Error(`FakeApiServer: ${resource} "${key}" not found`);
    const stored = this.#stamp(resource, obj, prev);
    store.set(key, stored);
    this.#itemText(stored);
    this.#record(resource, key, prev, stored);
    return clone(stored);
  }

  /** Creates or replaces an object. */
  apply(resource: string, obj: FakeObject): FakeObject {
    return this.#store(resource).has(keyOf(obj))
      ? this.update(resource, obj)
      : this.create(resource, obj);
  }

  /** Deletes an object by `namespace/name` (or `name`); throws when it does not exist. */
  delete(resource: string, key: string): FakeObject {
    const store = this.#store(resource);
    const prev = store.get(key);
    if (!prev) throw new Error(`FakeApiServer: ${resource} "${key}" not found`);
    store.delete(key);
    this.#sortedKeys.delete(resource);
    const rv = this.#record(resource, key, prev, undefined);
    const last = clone(prev);
    last.metadata.resourceVersion = String(rv);
    return last;
  }

  /** One object by key, or undefined. */
  get(resource: string, key: string): FakeObject | undefined {
    const obj = this.#store(resource).get(key);
    return obj ? clone(obj) : undefined;
  }

  /** All objects of a resource, sorted by key. */
  list(resource: string): FakeObject[] {
    return [...this.#store(resource).entries()].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
      .map(([, o]) => clone(o));
  }

  // ---- faults ----

  /**
   * Forgets history older than `rv` (default: the current resourceVersion):
   * watches and continue tokens from an older resourceVersion get 410 Gone.
   */
  compactBefore(rv: string | number = this.#rv): void {
    const n = Number(rv);
    this.#compactedBefore = Math.max(this.#compactedBefore, n);
    this.#history = this.#history.filter((e) => e.rv >= n);
  }

  /** Makes the next matching request(s) fail with `status` and a Status body. */
  failNext(status: number, failure: InjectedFailure = {}): void {
    this.#failures.push({ status, count: 1, ...failure });
  }

  /**
   * Runs `action` once, right after the next list page of `resource` is
   * answered: a fault that lands between two pages of a client's list (a
   * restore from backup, say), before the client can ask for the next.
   */
  afterNextListPage(resource: string, action: () => void): void {
    this.#afterListPage.set(resource, action);
  }

  /** Drops every failure injected with {@linkcode failNext} that has not fired yet. */
  clearFailures(): void {
    this.#failures.length = 0;
  }

  /**
   * While on, writes of events are held unanswered (a server that times
   * out); turning it off answers nothing held, the clients have given up.
   */
  stallEventWrites(on: boolean): void {
    this.#stallEvents = on;
    if (!on) { for (const r of this.#stalled) resetAnswer(r); }
    if (!on) this.#stalled.clear();
  }

  /** Resets the connections of open watches (of one resource, or all) mid-stream. */
  disconnectWatches(resource?: string): number {
    return this.#endMatching(resource, "reset");
  }

  /** Ends open watches cleanly, as the server-side timeout does. */
  closeWatches(resource?: string): number {
    return this.#endMatching(resource, "close");
  }

  /**
   * Keeps open watches connected but sends them nothing more, not even the
   * end at their timeout: a half-open connection the client must detect.
   */
  silenceWatches(resource?: string): number {
    let n = 0;
    for (const w of this.#watchers) {
      if (resource && w.resource !== resource) continue;
      w.silenced = true;
      clearTimeout(w.timer);
      n++;
    }
    return n;
  }

  /**
   * Freezes every open TLS connection that carried a request, as one a load
   * balancer or a network fault dropped without a reset: it stays open, but
   * its watches get nothing more and its new requests (HTTP/2 streams) are
   * never answered nor seen; new connections are served as usual. Returns
   * how many connections froze (none over plain HTTP).
   */
  freezeConnections(): number {
    let n = 0;
    for (const connection of this.#front?.connections() ?? []) {
      const id = this.#connectionIds.get(connection);
      if (id === undefined || connection.frozen) continue;
      this.#front!.freeze(connection);
      this.#frozen.add(id);
      n++;
    }
    for (const w of this.#watchers) {
      if (!this.#frozen.has(w.connection)) continue;
      w.silenced = true;
      clearTimeout(w.timer);
    }
    return n;
  }

  /**
   * Sends GOAWAY on every open HTTP/2 connection, as a terminating
   * kube-apiserver does (and a running one, after a request, with
   * `--goaway-chance`): the streams open on it go on to their end, new
   * requests must open a new connection, and the connection closes once its
   * last stream ended (an HTTP/1.1 connection over TLS, once its answer in
   * flight ended). Returns how many HTTP/2 connections were told.
   */
  goAway(): number {
    const old = this.#backend;
    if (!this.#front || !old) return 0;
    const told =
      this.#front.connections().filter((c) =>
        c.protocol === "h2" && !c.frozen && c.backendPort === old.addr.port
      ).length;
    this.#backend = this.#serveBackend();
    this.#draining.push(old.shutdown());
    return told;
  }

  /**
   * An outage: open connections are reset and new ones refused (the port is
   * closed) until {@linkcode endOutage}. Objects can still be changed meanwhile.
   */
  async outage(): Promise<void> {
    if (!this.#listening) throw new Error("FakeApiServer: not started");
    this.#endMatching(undefined, "reset");
    await this.#closeListener();
  }

  /** Ends an {@linkcode outage}: serves again on the same port. */
  async endOutage(): Promise<void> {
    if (this.#listening) return;
    // Restarted: its watch caches start afresh.
    this.#eventsSinceStart.clear();
    await this.#listen(this.#port);
  }

  /**
   * Simulates an API server restored from an etcd backup (or with its
   * storage wiped): open watches end (the API servers restart), history is
   * gone, the objects become exactly `objects` (per resource plural; others
   * empty) and resourceVersions restart at `resourceVersion` (default: the
   * initial one), lower than what clients hold.
   */
  restoreFromBackup(
    objects: Record<string, FakeObject[]>,
    resourceVersion = this.#opts.initialResourceVersion ?? 1000,
  ): void {
    this.#endMatching(undefined, "reset");
    for (const store of this.#objects.values()) store.clear();
    this.#sortedKeys.clear();
    this.#history = [];
    this.#writtenAt.clear();
    this.#compactedBefore = 0;
    this.#rv = resourceVersion;
    for (const [resource, list] of Object.entries(objects)) {
      for (const obj of list) this.create(resource, obj);
    }
    // The restarted caches list what the backup holds: no event of it.
    this.#eventsSinceStart.clear();
  }

  /** Sends a BOOKMARK with the current resourceVersion to every watch that allows them. */
  sendBookmarks(): void {
    this.#sendBookmarks();
  }

  /** {@link sendBookmarks}, to the watches of `resources` only when given. */
  #sendBookmarks(resources?: ReadonlySet<string>): void {
    for (const w of this.#watchers) {
      if (resources && !resources.has(w.resource)) continue;
      // A watch cache sends no bookmark older than the watch's own
      // resourceVersion. (One at the same resourceVersion stands for the
      // progress a live cluster always makes.)
      if (!w.bookmarks || w.silenced || this.#rv < w.fromRv) continue;
      const r = this.#resource(w.resource);
      this.#write(w, {
        type: "BOOKMARK",
        object: {
          kind: r.kind,
          apiVersion: apiVersionOf(r),
          metadata: { resourceVersion: String(this.#rv) },
        },
      });
    }
  }

  /** How many watches are open (of one resource, or all). */
  openWatches(resource?: string): number {
    let n = 0;
    for (const w of this.#watchers) if (!resource || w.resource === resource) n++;
    return n;
  }

  /** How many requests of a verb (and resource) were served. */
  count(verb: RequestRecord["verb"], resource?: string): number {
    return this.requests.filter((r) => r.verb === verb && (!resource || r.resource === resource))
      .length;
  }

  #endMatching(resource: string | undefined, how: "reset" | "close"): number {
    let n = 0;
    for (const w of [...this.#watchers]) {
      if (resource && w.resource !== resource) continue;
      this.#endWatch(w, how);
      n++;
    }
    return n;
  }

  #endWatch(w: Watcher, how: "reset" | "close"): void {
    clearTimeout(w.timer);
    this.#watchers.delete(w);
    if (how === "reset") resetAnswer(w.res);
    else w.res.end();
  }

  // ---- HTTP ----

  #handle(exchange: Exchange): void {
    const res = exchange.answer;
    const connection = this.#connectionNumber(exchange.connection);
    // Relayed before the freeze took hold: never answered, as none after it.
    if (this.#frozen.has(connection)) return void resetAnswer(res);
    const url = new URL(exchange.target, "http://fake");
    const query = Object.fromEntries(url.searchParams);
    const route = this.#route(url.pathname);
    const watch = query.watch === "true" || query.watch === "1";
    const verb: RequestRecord["verb"] = !route
      ? "other"
      : route.name
      ? "get"
      : watch
      ? "watch"
      : "list";
    const record: RequestRecord = {
      verb,
      resource: route?.resource.plural,
      path: url.pathname,
      query,
      status: 200,
      user: "anonymous",
      protocol: exchange.protocol,
      connection,
    };
    const acceptEncoding = exchange.header("accept-encoding");
    if (acceptEncoding !== undefined) record.acceptEncoding = acceptEncoding;
    this.requests.push(record);
    const fail = (
      code: number,
      message: string,
      reason?: string,
      extra?: Record<string, string>,
    ) => {
      record.status = code;
      res.writeHead(code, { "Content-Type": "application/json", ...extra });
      res.end(JSON.stringify(statusObject(code, message, reason)));
    };

    // Authentication: a verified client certificate or a known bearer token.
    if (exchange.verifiedClient) {
      record.user = `cert:${exchange.verifiedClient.cn ?? ""}`;
    } else {
      const auth = exchange.header("authorization") ?? "";
      const token = auth.startsWith("Bearer ") ? auth.slice(7).trim() : undefined;
      if (token && this.#opts.tokens?.includes(token)) record.user = "token";
      else if (this.#opts.tokens && this.#opts.tokens.length > 0) {
        return fail(401, "Unauthorized");
      }
    }

    if (exchange.method === "POST" || exchange.method === "PATCH") {
      return this.#handleEventWrite(exchange, url.pathname, record, fail);
    }
    if (exchange.method !== "GET") {
      return fail(405, `the server does not allow this method on the requested resource`);
    }
    if (url.pathname === "/version") {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ major: "1", minor: "31", gitVersion: "v1.31.0-fake" }));
      return;
    }
    if (url.pathname === "/healthz" || url.pathname === "/readyz" || url.pathname === "/livez") {
      res.writeHead(200, { "Content-Type": "text/plain" });
      res.end("ok");
      return;
    }
    if (!route) return fail(404, "the server could not find the requested resource");

    const injected = this.#takeFailure(route.resource.plural, verb);
    if (injected) {
      const extra: Record<string, string> = {};
      if (injected.retryAfterSeconds) extra["Retry-After"] = String(injected.retryAfterSeconds);
      const what = verb === "get" ? "get" : verb;
      const message = injected.message ??
        (injected.status === 403
          ? `${route.resource.plural} is forbidden: User "${record.user}" cannot ${what} resource "${route.resource.plural}" in API group "${route.resource.group}" at the cluster scope`
          : injected.status === 401
          ? "Unauthorized"
          : `injected failure ${injected.status}`);
      return fail(injected.status, message, undefined, extra);
    }

    let labels: Matcher, fields: Matcher;
    try {
      labels = parseLabelSelector(query.labelSelector);
      fields = parseFieldSelector(query.fieldSelector);
    } catch (err) {
      if (err instanceof SelectorError) return fail(400, err.message);
      throw err;
    }
    if (query.resourceVersion !== undefined && !/^\d*$/.test(query.resourceVersion)) {
      return fail(400, `invalid resource version "${query.resourceVersion}"`);
    }

    if (route.name) {
      const key = route.namespace ? `${route.namespace}/${route.name}` : route.name;
      const obj = this.#objects.get(route.resource.plural)!.get(key);
      if (!obj) {
        record.status = 404;
        res.writeHead(404, { "Content-Type": "application/json" });
        res.end(JSON.stringify(statusObject(
          404,
          `${route.resource.plural} "${route.name}" not found`,
          "NotFound",
          { name: route.name, kind: route.resource.plural },
        )));
        return;
      }
      this.#sendObject(res, record, JSON.stringify(obj));
      return;
    }

    const scoped = (o: FakeObject) =>
      (!route.namespace || o.metadata.namespace === route.namespace) && labels(o) && fields(o);
    if (!watch && this.#tooLargeResourceVersion(query, record, res)) return;
    if (watch) return this.#startWatch(route, query, scoped, labels, fields, res, record);
    this.#serveList(route.resource, query, scoped, res, record);
  }

  /**
   * POST (create) and PATCH (merge or strategic merge patch) of
   * events.k8s.io/v1 Events, validated as the API server does; the only
   * writes the fake serves over HTTP.
   */
  #handleEventWrite(
    exchange: Exchange,
    path: string,
    record: RequestRecord,
    fail: (code: number, message: string, reason?: string) => void,
  ): void {
    const route = this.#route(path);
    if (route?.resource.plural !== EVENTS_RESOURCE.plural || !route.namespace) {
      return fail(405, "the server does not allow this method on the requested resource");
    }
    const res = exchange.answer;
    const create = exchange.method === "POST";
    record.verb = create ? "create" : "patch";
    const injected = this.#takeFailure(EVENTS_RESOURCE.plural, record.verb);
    if (injected) {
      const message = injected.message ??
        (injected.status === 403
          ? `events.events.k8s.io is forbidden: User "${record.user}" cannot ${record.verb} resource "events" in API group "events.k8s.io" in the namespace "${route.namespace}"`
          : `injected failure ${injected.status}`);
      return fail(injected.status, message);
    }
    if (this.#stallEvents) {
      this.#stalled.add(res);
      res.on("close", () => this.#stalled.delete(res));
      return;
    }
    exchange.body().then((text) => {
      let body: FakeObject;
      try {
        body = JSON.parse(text.toString("utf8"));
      } catch {
        return fail(400, "the request body is not JSON");
      }
      const reply = (code: number, obj: FakeObject) => {
        record.status = code;
        res.writeHead(code, { "Content-Type": "application/json" });
        res.end(JSON.stringify(obj));
      };
      const key = (name: string) => `${route.namespace}/${name}`;
      if (create) {
        if (route.name) return fail(405, "POST to a named event");
        const name = body?.metadata?.name;
        if (typeof name !== "string" || name === "") {
          return fail(422, "metadata.name: Required value", "Invalid");
        }
        body.metadata.namespace ??= route.namespace;
        if (body.metadata.namespace !== route.namespace) {
          return fail(
            400,
            "the namespace of the object does not match the namespace of the request",
          );
        }
        const problems = eventProblems(body);
        if (problems.length > 0) {
          return fail(422, `Event "${name}" is invalid: ${problems.join(", ")}`, "Invalid");
        }
        if (this.get(EVENTS_RESOURCE.plural, key(name))) {
          return fail(409, `events.events.k8s.io "${name}" already exists`, "AlreadyExists");
        }
        return reply(201, this.create(EVENTS_RESOURCE.plural, body));
      }
      const type = (exchange.header("content-type") ?? "").split(";")[0].trim();
      if (!EVENT_PATCH_TYPES.includes(type)) {
        return fail(
          415,
          `the body of the request was in an unknown format: ${type}`,
          "UnsupportedMediaType",
        );
      }
      const existing = route.name ? this.get(EVENTS_RESOURCE.plural, key(route.name)) : undefined;
      if (!existing) {
        return fail(404, `events.events.k8s.io "${route.name ?? ""}" not found`, "NotFound");
      }
      const patched = mergePatch(existing, body) as FakeObject;
      patched.metadata = {
        ...patched.metadata,
        name: existing.metadata.name,
        namespace: route.namespace,
      };
      const problems = eventProblems(patched);
      if (problems.length > 0) {
        return fail(422, `Event "${route.name}" is invalid: ${problems.join(", ")}`, "Invalid");
      }
      reply(200, this.update(EVENTS_RESOURCE.plural, patched));
    }, () => resetAnswer(res));
  }

  #route(
    path: string,
  ): { resource: FakeResource; namespace?: string; name?: string } | undefined {
    const parts = path.split("/").filter((p) => p !== "");
    let rest: string[];
    let group = "";
    if (parts[0] === "api" && parts.length >= 3) {
      if (parts[1] !== "v1") return undefined;
      rest = parts.slice(2);
    } else if (parts[0] === "apis" && parts.length >= 4) {
      group = parts[1];
      rest = parts.slice(3);
    } else return undefined;
    const version = parts[0] === "api" ? parts[1] : parts[2];
    let namespace: string | undefined;
    if (rest[0] === "namespaces" && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    if (rest.length < 1 || rest.length > 2) return undefined;
    const resource = this.#resources.get(rest[0]);
    if (!resource || resource.group !== group || resource.version !== version) return undefined;
    if (namespace && !resource.namespaced) return undefined;
    return { resource, namespace, name: rest[1] };
  }

  #takeFailure(resource: string, verb: RequestRecord["verb"]) {
    const i = this.#failures.findIndex((f) =>
      (!f.resource || f.resource === resource) && (!f.verb || f.verb === verb)
    );
    if (i < 0) return undefined;
    const f = this.#failures[i];
    if (--f.count! <= 0) this.#failures.splice(i, 1);
    return f;
  }

  /**
   * A list at a resourceVersion newer than the server's: a real server waits
   * (3 s) for its watch cache to catch up, then answers 504 with Retry-After.
   */
  #tooLargeResourceVersion(
    query: Record<string, string>,
    record: RequestRecord,
    res: Answer,
  ): boolean {
    const asked = query.resourceVersion;
    if (!asked || asked === "0" || query.continue || Number(asked) <= this.#rv) return false;
    record.status = 504;
    res.writeHead(504, { "Content-Type": "application/json", "Retry-After": "1" });
    res.end(JSON.stringify(statusObject(
      504,
      `Timeout: Too large resource version: ${asked}, current: ${this.#rv}`,
      "Timeout",
      {
        causes: [{ reason: "ResourceVersionTooLarge", message: "Too large resource version" }],
        retryAfterSeconds: 1,
      },
    )));
    return true;
  }

  /** The current keys of a resource, sorted (kept until one is added or deleted). */
  #keysSorted(resource: string): string[] {
    let keys = this.#sortedKeys.get(resource);
    if (!keys) {
      keys = [...this.#objects.get(resource)!.keys()].sort();
      this.#sortedKeys.set(resource, keys);
    }
    return keys;
  }

  /** The objects of a resource as they were at `rv` (undoing later history). */
  #stateAt(resource: string, rv: number): Map<string, FakeObject> {
    const state = new Map(this.#objects.get(resource)!);
    for (let i = this.#history.length - 1; i >= 0 && this.#history[i].rv > rv; i--) {
      const e = this.#history[i];
      if (e.resource !== resource) continue;
      if (e.prev) state.set(e.key, e.prev);
      else state.delete(e.key);
    }
    return state;
  }

  /**
   * An object's text as a list item (without apiVersion and kind), made once
   * per stored version, when it is written: stored objects are never changed
   * (a write stores a new one), so the text stays right, and a list costs the
   * server little besides sending it (on a node the API server's CPU is not
   * the node's; here it shares the machine with the agent).
   */
  #itemText(o: FakeObject): string {
    let text = this.#itemTexts.get(o);
    if (text === undefined) {
      const { apiVersion: _a, kind: _k, ...rest } = o;
      text = JSON.stringify(rest);
      this.#itemTexts.set(o, text);
    }
    return text;
  }

  #serveList(
    resource: FakeResource,
    query: Record<string, string>,
    match: (o: FakeObject) => boolean,
    res: Answer,
    record: RequestRecord,
  ): void {
    let snapshotRv = this.#rv;
    let start = "";
    if (query.continue) {
      let token: { v?: string; rv?: number; start?: string };
      try {
        token = JSON.parse(atob(query.continue));
      } catch {
        token = {};
      }
      if (token.v !== "meta.k8s.io/v1" || typeof token.rv !== "number" || !token.start) {
        record.status = 400;
        res.writeHead(400, { "Content-Type": "application/json" });
        res.end(JSON.stringify(statusObject(400, "continue key is not valid")));
        return;
      }
      if (token.rv < this.#compactedBefore) {
        record.status = 410;
        res.writeHead(410, { "Content-Type": "application/json" });
        res.end(JSON.stringify(statusObject(
          410,
          "The provided continue parameter is too old to display a consistent list result. " +
            "You can start a new list without the continue parameter.",
          "Expired",
        )));
        return;
      }
      if (token.rv > this.#rv) {
        // A token from before a restore: kube-apiserver hands a continued list to etcd,
        // which refuses the future revision; the apiserver passes that error on as is,
        // with no reason.
        record.status = 500;
        res.writeHead(500, { "Content-Type": "application/json" });
        res.end(JSON.stringify(
          statusObject(500, "etcdserver: mvcc: required revision is a future revision", ""),
        ));
        return;
      }
      snapshotRv = token.rv;
      start = token.start;
    }
    // The snapshot is the current state when nothing of this resource was written since
    // (writes to others, e.g. the agent's Events, leave its pages as cheap as the first).
    const current = (this.#writtenAt.get(resource.plural) ?? -Infinity) <= snapshotRv;
    const state = current
      ? this.#objects.get(resource.plural)!
      : this.#stateAt(resource.plural, snapshotRv);
    const keys = current ? this.#keysSorted(resource.plural) : [...state.keys()].sort();
    // resourceVersion=0 is served from the watch cache, which ignores limit.
    const limit = query.resourceVersion === "0" ? 0 : Number(query.limit ?? 0);
    const counted = !query.labelSelector && !query.fieldSelector;
    const page: FakeObject[] = [];
    let remaining = 0;
    for (let i = firstAtOrAfter(keys, start); i < keys.length; i++) {
      const obj = state.get(keys[i])!;
      if (!match(obj)) continue;
      if (limit <= 0 || page.length < limit) {
        page.push(obj);
        continue;
      }
      remaining++;
      if (!counted) break; // only whether there is more matters
    }
    const metadata: Record<string, unknown> = { resourceVersion: String(snapshotRv) };
    if (remaining > 0) {
      const last = page[page.length - 1];
      metadata.continue = btoa(
        JSON.stringify({ v: "meta.k8s.io/v1", rv: snapshotRv, start: `${keyOf(last)}\u0000` }),
      );
      if (counted) metadata.remainingItemCount = remaining;
    }
    const head = JSON.stringify({
      kind: `${resource.kind}List`,
      apiVersion: apiVersionOf(resource),
      metadata,
    });
    // The same text as JSON.stringify of the whole list with `items` last.
    const items = page.map((o) => this.#itemText(o)).join(",");
    this.#sendObject(res, record, `${head.slice(0, -1)},"items":[${items}]}`);
    const after = this.#afterListPage.get(resource.plural);
    if (after) {
      this.#afterListPage.delete(resource.plural);
      after();
    }
  }

  /**
   * Sends a 200 answer of the API (an object or a list page), gzipped as
   * kube-apiserver does: when it is larger than
   * {@linkcode GZIP_THRESHOLD_BYTES} and the request accepts gzip. The
   * compressed body streams out as it is made (chunked, no length).
   */
  #sendObject(
    res: Answer,
    record: RequestRecord,
    text: string,
  ): void {
    if (!acceptsGzip(record.acceptEncoding) || Buffer.byteLength(text) <= GZIP_THRESHOLD_BYTES) {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(text);
      return;
    }
    record.contentEncoding = "gzip";
    res.writeHead(200, {
      "Content-Type": "application/json",
      "Content-Encoding": "gzip",
      "Vary": "Accept-Encoding",
    });
    const gzip = zlib.createGzip({ level: GZIP_LEVEL });
    gzip.on("error", () => res.destroy());
    gzip.pipe(res);
    gzip.end(text);
  }

  #startWatch(
    route: { resource: FakeResource; namespace?: string },
    query: Record<string, string>,
    match: (o: FakeObject) => boolean,
    labels: Matcher,
    fields: Matcher,
    res: Answer,
    record: RequestRecord,
  ): void {
    const resource = route.resource;
    const from = query.resourceVersion ?? "";
    const fromRv = from === "" || from === "0" ? undefined : Number(from);
    const expired = fromRv !== undefined && fromRv < this.#compactedBefore;
    const gone = statusObject(
      410,
      `too old resource version: ${from} (${this.#compactedBefore})`,
      "Expired",
    );
    if (expired && this.#opts.expiredWatchAsHttpStatus) {
      record.status = 410;
      res.writeHead(410, { "Content-Type": "application/json" });
      res.end(JSON.stringify(gone));
      return;
    }
    res.writeHead(200, {
      "Content-Type": "application/json",
      "Cache-Control": "no-cache, private",
      // (Over HTTP/2 and Deno.serve the server frames the stream itself.)
      "Transfer-Encoding": "chunked",
    });
    const w: Watcher = {
      resource: resource.plural,
      fromRv: fromRv ?? 0,
      namespace: route.namespace,
      labels: (o) => (!route.namespace || o.metadata?.namespace === route.namespace) && labels(o),
      fields,
      bookmarks: query.allowWatchBookmarks === "true",
      silenced: false,
      connection: record.connection,
      res,
    };
    if (expired) {
      res.end(JSON.stringify({ type: "ERROR", object: gone }) + "\n");
      return;
    }
    this.#watchers.add(w);
    res.on("close", () => {
      clearTimeout(w.timer);
      this.#watchers.delete(w);
    });
    const timeout = Number(query.timeoutSeconds ?? this.#opts.defaultWatchTimeoutSeconds ?? 1800);
    w.timer = setTimeout(() => this.#endWatch(w, "close"), timeout * 1000);
    res.flushHeaders();
    if (fromRv === undefined) {
      for (const obj of this.list(resource.plural)) {
        if (match(obj)) this.#write(w, { type: "ADDED", object: obj });
      }
    } else {
      for (const e of this.#history) {
        if (e.rv > fromRv && e.resource === resource.plural) this.#send(w, e);
      }
    }
  }

  #dispatch(e: HistoryEntry): void {
    for (const w of this.#watchers) if (w.resource === e.resource) this.#send(w, e);
  }

  #send(w: Watcher, e: HistoryEntry): void {
    if (e.rv <= w.fromRv) return;
    const matches = (o?: FakeObject) => o !== undefined && w.labels(o) && w.fields(o);
    const was = matches(e.prev);
    const is = matches(e.next);
    if (e.next) {
      if (is) this.#write(w, { type: was ? "MODIFIED" : "ADDED", object: e.next });
      else if (was) this.#write(w, { type: "DELETED", object: e.next });
    } else if (was) {
      const last = clone(e.prev!);
      last.metadata.resourceVersion = String(e.rv);
      this.#write(w, { type: "DELETED", object: last });
    }
  }

  #write(w: Watcher, event: { type: string; object: unknown }): void {
    if (w.silenced || w.res.writableEnded || w.res.destroyed) return;
    w.res.write(JSON.stringify(event) + "\n");
  }
}

/** The index of the first of the sorted `keys` that is `start` or after it. */
function firstAtOrAfter(keys: readonly string[], start: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid] < start) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
