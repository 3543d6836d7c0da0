/**
 * The typed HNS client: {@link HnsClient} over any {@link HcnApi} (the FFI
 * binding or the in-memory HNS).
 *
 * - Lists are Enumerate + (Open, Query, Close) per ID, like hcsshim's `hcn`
 *   package; an object that vanished in between is left out.
 * - `get*` answers undefined when HNS does not have the object.
 * - Creates pass an ID the client makes (or the caller's `ID`) and are not
 *   read back: they answer the object as sent, with that ID in HNS's
 *   upper-case form. Create + Close, two calls per object (one request where
 *   the API runs both, {@link HcnApi.createAndClose}; reads likewise use
 *   {@link HcnApi.openQueryClose}).
 * - Every handle is closed on every path, errors included. Inside
 *   {@link HnsClient.batch} endpoint creates share one network handle, closed
 *   when the batch ends.
 * - Failures are {@link HnsError}s whose operation names the client operation
 *   and the C function (`createLoadBalancer (HcnCreateLoadBalancer)`) and whose
 *   object names what was operated on.
 * - Objects HNS returns that are not JSON objects are left out of lists and
 *   reported to {@link HnsClientOptions.onSkip}, so the caller can log them.
 *
 * @module
 */

import { HnsError, HResult, isNotFound, isUnsupported } from "./errors.ts";
import { describeEndpoint, describeLoadBalancer } from "./describe.ts";
import { featuresOf } from "./features.ts";
import { IdListing, invalidListing, type Pacer } from "./id_listing.ts";
import { canonicalGuid, newGuid, ZERO_GUID } from "./guid.ts";
import { kindWords } from "./names.ts";
import type {
  CreatedBatch,
  HcnApi,
  HcnEndpoint,
  HcnHandle,
  HcnKind,
  HcnLoadBalancer,
  HcnNetwork,
  HnsClient,
  HnsFeatures,
  HnsVersion,
  ItemFailure,
  OpenNetwork,
  ReadOptions,
} from "./types.ts";
import { yieldToEventLoop } from "../event_loop.ts";

/** The query every QueryXProperties call sends (schema 2.0, no flags, no filter). */
export const PROPERTIES_QUERY = JSON.stringify({ SchemaVersion: { Major: 2, Minor: 0 }, Flags: 0 });

/** An Enumerate query with an optional filter (the filter travels as a JSON string). */
export function enumerateQuery(filter?: Record<string, string>): string {
  return JSON.stringify({
    SchemaVersion: { Major: 2, Minor: 0 },
    Flags: 0,
    ...(filter ? { Filter: JSON.stringify(filter) } : {}),
  });
}

/** Objects read per request where the API runs many ({@link HcnApi.openQueryCloseMany}). */
export const READS_PER_REQUEST = 48;

/**
 * Requests of many reads kept in flight at least: the HNS thread runs the
 * next while the event loop's thread takes in the answer of one.
 */
const READ_REQUESTS_IN_FLIGHT = 3;

/**
 * Run `task(0)` .. `task(count - 1)`, `width()` at once (asked again as each
 * task ends: the width may grow or shrink), in order of index; after a
 * failure no further task starts, and the first failure is thrown once
 * every task started has settled (so no handle is left open).
 */
async function inParallel(
  count: number,
  width: () => number,
  task: (index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  let running = 0;
  let failure: { reason: unknown } | undefined;
  const started: Promise<void>[] = [];
  const fill = () => {
    while (failure === undefined && next < count && running < Math.max(1, width())) {
      running++;
      started.push(
        task(next++).then(
          () => {
            running--;
            fill();
          },
          (reason) => {
            running--;
            failure ??= { reason };
          },
        ),
      );
    }
  };
  fill();
  // A task's end starts the next ones before its own promise settles: `started` grows meanwhile.
  for (let i = 0; i < started.length; i++) await started[i];
  if (failure !== undefined) throw failure.reason;
}

/** An object HNS returned whose JSON the client could not read (left out of a list or `get*`), and why. */
export interface UnreadableObject {
  /** The object's kind. */
  kind: HcnKind;
  /** The ID it was enumerated under. */
  id: string;
  /** Why it was left out, one line. */
  reason: string;
  /** The text HNS returned for it. */
  text: string;
}

/** Options of {@link createHnsClient}. */
export interface HnsClientOptions {
  /** Called for each object left out of a list or `get*` because its JSON is unusable. */
  onSkip?: (skipped: UnreadableObject) => void;
  /** How many objects a list opens and queries at once (default 4). */
  listConcurrency?: number;
}

/** Parse HNSCall's version answer; null when it is not a successful version document. */
export function parseVersionResponse(text: string): HnsVersion | null {
  try {
    const doc = JSON.parse(text);
    const out = doc?.Output;
    if (doc?.Success === false || !out) return null;
    const major = Number(out.Major);
    const minor = Number(out.Minor);
    if (!Number.isInteger(major) || !Number.isInteger(minor) || major < 0 || minor < 0) {
      return null;
    }
    return { major, minor };
  } catch {
    return null;
  }
}

class Client implements HnsClient {
  readonly #api: HcnApi;
  readonly #onSkip: (s: UnreadableObject) => void;
  readonly #concurrency: number;
  #version: HnsVersion | undefined;
  /** The refusal that showed in-place LB update unsupported, once one came. */
  #modifyRefusal: HnsError | undefined;
  /** The open batch, if any: network handles (lower-case ID → open) reused by createEndpoint. */
  #batch: { depth: number; networks: Map<string, Promise<HcnHandle>> } | undefined;

  constructor(api: HcnApi, options: HnsClientOptions) {
    this.#api = api;
    this.#onSkip = options.onSkip ?? (() => {});
    this.#concurrency = Math.max(1, Math.floor(options.listConcurrency ?? 4));
  }

  /** Run `body` with `handle`, then close it whatever happens; a close error never hides `body`'s. */
  async #using<T>(kind: HcnKind, handle: HcnHandle, body: () => Promise<T>): Promise<T> {
    let result: T;
    try {
      result = await body();
    } catch (err) {
      await this.#api.close(kind, handle).catch(() => {});
      throw err;
    }
    await this.#api.close(kind, handle);
    return result;
  }

  /** Parse an object's JSON; undefined (and reported) when it is not a JSON object. */
  #parse<T>(kind: HcnKind, id: string, text: string): T | undefined {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      this.#onSkip({ kind, id, text, reason: `not JSON: ${(err as Error).message}` });
      return undefined;
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      this.#onSkip({ kind, id, text, reason: "not a JSON object" });
      return undefined;
    }
    return value as T;
  }

  async #enumerate(kind: HcnKind, filter?: Record<string, string>): Promise<string[]> {
    const text = await this.#api.enumerate(kind, enumerateQuery(filter));
    let ids: unknown;
    try {
      ids = await parseIdArray(text === "" ? "[]" : text);
    } catch {
      ids = undefined;
    }
    if (!Array.isArray(ids) || ids.some((id) => typeof id !== "string")) {
      throw invalidListing(kind, text);
    }
    return ids as string[];
  }

  /** Open, query, close one object; undefined when it is gone or unusable. */
  async #fetch<T>(kind: HcnKind, id: string): Promise<T | undefined> {
    if (this.#api.openQueryClose) {
      let text: string;
      try {
        text = await this.#api.openQueryClose(kind, id, PROPERTIES_QUERY);
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
      return this.#parse<T>(kind, id, text);
    }
    let handle: HcnHandle;
    try {
      handle = await this.#api.open(kind, id);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    const text = await this.#using(kind, handle, async () => {
      try {
        return await this.#api.query(kind, handle, PROPERTIES_QUERY);
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    });
    return text === undefined ? undefined : this.#parse<T>(kind, id, text);
  }

  async #list<T>(kind: HcnKind, filter?: Record<string, string>): Promise<T[]> {
    return await this.#fetchAll<T>(kind, await this.#enumerate(kind, filter));
  }

  /**
   * Open, query, close each object, `listConcurrency` at once, or in
   * requests of {@link READS_PER_REQUEST} where the API runs many
   * ({@link HcnApi.openQueryCloseMany}), read `ahead` as far as the API asks
   * ({@link ReadOptions}); gone ones are left out. The first other failure
   * fails the read once everything in flight has settled.
   */
  async #fetchAll<T>(kind: HcnKind, ids: readonly string[], ahead = false): Promise<T[]> {
    const found: Array<T | undefined> = new Array(ids.length);
    const many = this.#api.openQueryCloseMany?.bind(this.#api);
    if (many) {
      const requests = Math.ceil(ids.length / READS_PER_REQUEST);
      // Asked as the read goes: a backend may want more ahead once it has timed its calls.
      const reads = () => Math.max(this.#concurrency, (ahead && this.#api.readsInFlight) || 0);
      const inFlight = () =>
        Math.max(READ_REQUESTS_IN_FLIGHT, Math.ceil(reads() / READS_PER_REQUEST));
      await inParallel(requests, inFlight, async (r) => {
        const from = r * READS_PER_REQUEST;
        const to = Math.min(ids.length, from + READS_PER_REQUEST);
        const read = await many(kind, ids.slice(from, to), PROPERTIES_QUERY);
        for (let i = from; i < to; i++) {
          const item = read[i - from];
          if (typeof item === "string") found[i] = this.#parse<T>(kind, ids[i], item);
          else if (!isNotFound(item)) throw item;
        }
      });
    } else {
      await inParallel(ids.length, () => this.#concurrency, async (i) => {
        found[i] = await this.#fetch<T>(kind, ids[i]);
      });
    }
    return found.filter((o): o is Awaited<T> => o !== undefined);
  }

  /** Wrap a failure with the client operation and object. */
  #context<T>(
    operation: string,
    object: string | (() => string) | undefined,
    body: () => Promise<T>,
  ): Promise<T> {
    let running: Promise<T>;
    try {
      running = body();
    } catch (err) {
      running = Promise.reject(err);
    }
    return running.catch((err) => {
      throw named(operation, object, err);
    });
  }

  async version(): Promise<HnsVersion | null> {
    if (this.#version) return this.#version;
    let text: string;
    try {
      text = await this.#api.hnsCall("GET", "/globals/version", "");
    } catch (err) {
      if (err instanceof HnsError) return null;
      throw err;
    }
    const version = parseVersionResponse(text);
    // Only a readable version is cached: an unreadable one is asked again next time.
    if (version) this.#version = version;
    return version;
  }

  async features(): Promise<HnsFeatures> {
    const features = featuresOf(await this.version());
    features.modifyLoadBalancer &&= this.#api.hasModifyLoadBalancer && !this.#modifyRefusal;
    return features;
  }

  get modifyUnsupported(): boolean {
    return this.#modifyRefusal !== undefined;
  }

  listNetworks(): Promise<HcnNetwork[]> {
    return this.#context("listNetworks", "networks", () => this.#list<HcnNetwork>("Network"));
  }

  findNetworkByName(name: string): Promise<HcnNetwork | undefined> {
    return this.#context("findNetworkByName", `network ${name}`, async () => {
      const found = await this.#list<HcnNetwork>("Network", { Name: name });
      // HNS compares names without case; prefer an exact match when several differ only in case.
      return found.find((n) => n.Name === name) ?? found[0];
    });
  }

  openNetwork(id: string): Promise<OpenNetwork> {
    const object = `network ${id}`;
    return this.#context("openNetwork", object, async () => {
      const handle = await this.#api.open("Network", id);
      let closed = false;
      return {
        id,
        read: () =>
          this.#context("readNetwork", object, async () => {
            if (closed) throw new Error(`network ${id} read after close`);
            let text: string;
            try {
              text = await this.#api.query("Network", handle, PROPERTIES_QUERY);
            } catch (err) {
              if (isNotFound(err)) return undefined;
              throw err;
            }
            return this.#parse<HcnNetwork>("Network", id, text);
          }),
        close: async () => {
          if (closed) return;
          closed = true;
          await this.#api.close("Network", handle);
        },
      };
    });
  }

  listEndpointIds(networkId?: string, name?: string): Promise<string[]> {
    const filter: Record<string, string> = {};
    if (networkId) filter.VirtualNetwork = networkId;
    if (name !== undefined) filter.Name = name;
    const object = (name !== undefined ? `endpoints named ${name}` : "endpoints") +
      (networkId ? ` of network ${networkId}` : "");
    return this.#context(
      "listEndpointIds",
      object,
      () => this.#enumerate("Endpoint", Object.keys(filter).length > 0 ? filter : undefined),
    );
  }

  listEndpoints(networkId?: string): Promise<HcnEndpoint[]> {
    const object = networkId ? `endpoints of network ${networkId}` : "endpoints";
    return this.#context(
      "listEndpoints",
      object,
      () =>
        this.#list<HcnEndpoint>("Endpoint", networkId ? { VirtualNetwork: networkId } : undefined),
    );
  }

  getEndpoint(id: string): Promise<HcnEndpoint | undefined> {
    return this.#context("getEndpoint", `endpoint ${id}`, () => this.#fetch("Endpoint", id));
  }

  getEndpoints(ids: readonly string[], options?: ReadOptions): Promise<HcnEndpoint[]> {
    return this.#context(
      "getEndpoints",
      `${ids.length} endpoints`,
      () => this.#fetchAll<HcnEndpoint>("Endpoint", ids, options?.ahead),
    );
  }

  createEndpoint(networkId: string, endpoint: HcnEndpoint): Promise<HcnEndpoint> {
    // Described only for an error: a cold start creates tens of thousands.
    return this.#context(
      "createEndpoint",
      () => describeEndpoint(endpoint),
      () =>
        this.#withNetwork(networkId, async (network) => {
          const { ID: given, ...fields } = endpoint;
          const id = idForCreate(given);
          const sent: HcnEndpoint = { ID: id, ...fields, HostComputeNetwork: networkId };
          await this.#createAndClose("Endpoint", id, JSON.stringify(sent), network);
          return sent;
        }),
    );
  }

  createEndpoints(
    networkId: string,
    endpoints: readonly HcnEndpoint[],
  ): Promise<CreatedBatch<HcnEndpoint>> {
    return this.#createMany(
      "Endpoint",
      "createEndpoint",
      endpoints,
      describeEndpoint,
      (id, endpoint) => withId(id, { ID: id, ...endpoint, HostComputeNetwork: networkId }),
      (body) => this.#withNetwork(networkId, body),
    );
  }

  /**
   * Create each item as the single create of `operation` does (`send` makes
   * what is sent under the item's ID), in one request where the API offers
   * it; each failure named as that create names its own.
   */
  async #createMany<T extends { ID?: string }>(
    kind: HcnKind,
    operation: string,
    items: readonly T[],
    describe: (item: T) => string,
    send: (id: string, item: T) => T,
    around: (body: (network?: HcnHandle) => Promise<ItemFailure[]>) => Promise<ItemFailure[]>,
  ): Promise<CreatedBatch<T>> {
    const n = items.length;
    const sent: T[] = new Array(n);
    const ids: string[] = new Array(n);
    const settings: string[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const id = ids[i] = idForCreate(items[i].ID);
      sent[i] = send(id, items[i]);
      settings[i] = JSON.stringify(sent[i]);
    }
    const failures = await this.#createAndCloseMany(kind, ids, settings, around);
    for (const f of failures) f.error = named(operation, () => describe(items[f.index]), f.error);
    return { sent, failures };
  }

  /**
   * Create and Close each item, in one request where the API offers it;
   * `around` runs the request (with the network's handle, for endpoints).
   * When it fails as a whole (the network's Open, or the request refused),
   * every item failed with that error.
   */
  async #createAndCloseMany(
    kind: HcnKind,
    ids: readonly string[],
    settings: readonly string[],
    around: (body: (network?: HcnHandle) => Promise<ItemFailure[]>) => Promise<ItemFailure[]>,
  ): Promise<ItemFailure[]> {
    const api = this.#api;
    try {
      return await around(async (network) => {
        if (api.createAndCloseMany) {
          return await api.createAndCloseMany(kind, ids, settings, network);
        }
        const settled = await Promise.allSettled(
          ids.map((id, i) => this.#createAndClose(kind, id, settings[i], network)),
        );
        const failures: ItemFailure[] = [];
        for (let index = 0; index < settled.length; index++) {
          const s = settled[index];
          if (s.status === "rejected") failures.push({ index, error: s.reason as Error });
        }
        return failures;
      });
    } catch (err) {
      return ids.map((_, index) => ({ index, error: err as Error }));
    }
  }

  /** Create and Close: one request where the API offers it (the same two HNS calls). */
  #createAndClose(kind: HcnKind, id: string, settings: string, network?: HcnHandle): Promise<void> {
    if (this.#api.createAndClose) return this.#api.createAndClose(kind, id, settings, network);
    return this.#api.create(kind, id, settings, network).then((h) => this.#api.close(kind, h));
  }

  /** Run `body` with an open handle of the network: the batch's, else one of its own. */
  async #withNetwork<T>(networkId: string, body: (network: HcnHandle) => Promise<T>): Promise<T> {
    const batch = this.#batch;
    if (!batch) {
      const network = await this.#api.open("Network", networkId);
      return await this.#using("Network", network, () => body(network));
    }
    const key = networkId.toLowerCase();
    let opened = batch.networks.get(key);
    if (!opened) {
      const opening = this.#api.open("Network", networkId);
      batch.networks.set(key, opening);
      // A failed open is not kept: the next create of the batch tries again.
      opening.catch(() => {
        if (batch.networks.get(key) === opening) batch.networks.delete(key);
      });
      opened = opening;
    }
    return await body(await opened);
  }

  async batch<T>(body: () => Promise<T>): Promise<T> {
    const batch = this.#batch ??= { depth: 0, networks: new Map() };
    batch.depth++;
    try {
      return await body();
    } finally {
      if (--batch.depth === 0) {
        this.#batch = undefined;
        for (const opening of batch.networks.values()) {
          const network = await opening.catch(() => undefined);
          // A close failure must not turn a finished batch into a failed one.
          if (network !== undefined) await this.#api.close("Network", network).catch(() => {});
        }
      }
    }
  }

  deleteEndpoint(id: string): Promise<void> {
    return this.#context(
      "deleteEndpoint",
      `endpoint ${id}`,
      () => this.#api.delete("Endpoint", id),
    );
  }

  listLoadBalancerIds(): Promise<string[]> {
    return this.#context(
      "listLoadBalancerIds",
      "load balancers",
      () => this.#enumerate("LoadBalancer"),
    );
  }

  listIds(kind: "LoadBalancer" | "Endpoint", pace?: Pacer): Promise<IdListing> {
    const lbs = kind === "LoadBalancer";
    return this.#context(
      lbs ? "listLoadBalancerIds" : "listEndpointIds",
      lbs ? "load balancers" : "endpoints",
      async () => IdListing.read(kind, await this.#api.enumerateIds(kind, enumerateQuery()), pace),
    );
  }

  listLoadBalancers(): Promise<HcnLoadBalancer[]> {
    return this.#context(
      "listLoadBalancers",
      "load balancers",
      () => this.#list<HcnLoadBalancer>("LoadBalancer"),
    );
  }

  getLoadBalancers(ids: readonly string[], options?: ReadOptions): Promise<HcnLoadBalancer[]> {
    return this.#context(
      "getLoadBalancers",
      `${ids.length} load balancers`,
      () => this.#fetchAll<HcnLoadBalancer>("LoadBalancer", ids, options?.ahead),
    );
  }

  getLoadBalancer(id: string): Promise<HcnLoadBalancer | undefined> {
    return this.#context(
      "getLoadBalancer",
      `load balancer ${id}`,
      () => this.#fetch("LoadBalancer", id),
    );
  }

  createLoadBalancer(lb: HcnLoadBalancer): Promise<HcnLoadBalancer> {
    return this.#context("createLoadBalancer", () => describeLoadBalancer(lb), async () => {
      const { ID: given, ...fields } = lb;
      const id = idForCreate(given);
      const sent: HcnLoadBalancer = { ID: id, ...fields };
      await this.#createAndClose("LoadBalancer", id, JSON.stringify(sent));
      return sent;
    });
  }

  createLoadBalancers(lbs: readonly HcnLoadBalancer[]): Promise<CreatedBatch<HcnLoadBalancer>> {
    return this.#createMany(
      "LoadBalancer",
      "createLoadBalancer",
      lbs,
      describeLoadBalancer,
      (id, lb) => withId(id, { ID: id, ...lb }),
      (body) => body(),
    );
  }

  modifyLoadBalancer(id: string, lb: HcnLoadBalancer): Promise<HcnLoadBalancer> {
    const object = `${describeLoadBalancer(lb)} (${id})`;
    return this.#context("modifyLoadBalancer", object, async () => {
      if (this.#modifyRefusal) throw this.#modifyRefusal;
      const handle = await this.#api.open("LoadBalancer", id);
      return await this.#using("LoadBalancer", handle, async () => {
        try {
          await this.#api.modify("LoadBalancer", handle, JSON.stringify({ ...lb, ID: id }));
        } catch (err) {
          if (isUnsupported(err)) this.#modifyRefusal = err as HnsError;
          throw err;
        }
        const text = await this.#api.query("LoadBalancer", handle, PROPERTIES_QUERY);
        return this.#created<HcnLoadBalancer>("LoadBalancer", text);
      });
    });
  }

  deleteLoadBalancer(id: string): Promise<void> {
    return this.#context(
      "deleteLoadBalancer",
      `load balancer ${id}`,
      () => this.#api.delete("LoadBalancer", id),
    );
  }

  close(): void {
    this.#api.dispose();
  }

  /** The properties of an object just created or modified; unusable JSON is an error here. */
  #created<T>(kind: HcnKind, text: string): T {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = undefined;
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new HnsError({
        hresult: HResult.INVALID_JSON,
        operation: `HcnQuery${kind}Properties`,
        hnsMessage: `the new ${kindWords(kind)} is not a JSON object: ${text.slice(0, 200)}`,
      });
    }
    return value as T;
  }
}

/**
 * `sent` with its `ID` (its first property, overwritten by a spread) set to
 * `id` again: what a destructuring `{ ID, ...fields }` would give, without
 * the intermediate object (a cold start sends tens of thousands).
 */
function withId<T extends { ID?: string }>(id: string, sent: T): T {
  sent.ID = id;
  return sent;
}

/**
 * `err` named after the client operation and its object (an {@link HnsError}
 * gets both; any other error is left as it is).
 */
function named(
  operation: string,
  object: string | (() => string) | undefined,
  err: unknown,
): Error {
  if (!(err instanceof HnsError)) return err as Error;
  const name = typeof object === "function" ? object() : object;
  return err.withContext(`${operation} (${err.operation})`, name ?? err.object);
}

/**
 * The ID to create an object under: the caller's, else a new random GUID.
 * The client picks the ID (HNS takes a caller's ID as the new object's, as
 * hcsshim passes one when set) so that the create need not be followed by a
 * query to learn it. A GUID comes back in HNS's upper-case form; a caller's
 * ID that is not a GUID is passed on as it is, for the HCN layer to refuse
 * (E_INVALIDARG) like any other.
 */
function idForCreate(given: string | undefined): string {
  if (given === undefined || given === "") return newGuid();
  const id = canonicalGuid(given);
  if (id === undefined) return given;
  return id === ZERO_GUID ? newGuid() : id;
}

/** The typed client over `api`; see the module notes for its guarantees. */
export function createHnsClient(api: HcnApi, options: HnsClientOptions = {}): HnsClient {
  return new Client(api, options);
}

/** Characters of a listing parsed between two yields ({@link parseIdArray}). */
const ID_ARRAY_CHUNK = 128 * 1024;

/**
 * Parse a large JSON array of strings chunk by chunk, handing each chunk's
 * elements to `part` and awaiting `pause` between chunks. Without a
 * backslash in the text, `","` occurs only between two elements, so the
 * text is cut there; a cut is never wrong without being invalid JSON on its
 * own (it would end in a lone quote). Returns false, having handed over
 * only whole chunks of the true elements, when the text is small, not
 * bracketed, holds a backslash or a chunk is not valid alone: then the
 * caller parses the whole at once.
 */
async function eachChunk(
  text: string,
  part: (elements: unknown[]) => void,
  pause: () => Promise<void>,
): Promise<boolean> {
  const last = text.length - 1;
  if (text.length < 2 * ID_ARRAY_CHUNK || text[0] !== "[" || text[last] !== "]") return false;
  if (text.includes("\\")) return false;
  for (let from = 1; from < last;) {
    const cut = from + ID_ARRAY_CHUNK >= last ? -1 : text.indexOf('","', from + ID_ARRAY_CHUNK);
    const end = cut < 0 ? last : cut + 1;
    let elements: unknown[];
    try {
      elements = JSON.parse(`[${text.slice(from, end)}]`);
    } catch {
      return false;
    }
    part(elements);
    from = cut < 0 ? last : cut + 2;
    await pause();
  }
  return true;
}

/**
 * `JSON.parse` of a JSON array of strings (an Enumerate's answer), a large
 * one in chunks with a yield to the event loop between them; the outcome is
 * always JSON.parse's.
 */
export async function parseIdArray(text: string): Promise<unknown> {
  const out: unknown[] = [];
  const chunked = await eachChunk(text, (xs) => {
    for (const x of xs) out.push(x);
  }, yieldToEventLoop);
  return chunked ? out : JSON.parse(text);
}
