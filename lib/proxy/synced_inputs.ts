/**
 * The synced-inputs digest: a content hash of everything the desired state
 * is derived from, recorded once HNS holds exactly what those inputs ask
 * for, so that a restart that finds the same inputs (and HNS as it was
 * left) can be ready before it builds the state again (syncer.ts, the fast
 * start).
 *
 * Rules:
 * - It covers the cluster's inputs (every Service the store holds with its
 *   EndpointSlices, all their converted fields but `resourceVersion` and the
 *   trigger time: a restored API server may reuse resourceVersions with other
 *   content), the node context (node IPs and zone, placements, the network
 *   and its routes, HNS features, the CNI endpoints by IP and ID, the root
 *   endpoint, the settings it carries), the agent's effective config with
 *   its version, and how many objects the ownership record lists. The config
 *   is hashed whole but for a short list of fields that cannot shape what
 *   HNS holds ({@link CONFIG_NOT_HASHED}: how the agent connects, logs,
 *   paces and serves metrics; the healthz port is in the node context): a
 *   new field counts until it is listed there, so any other flag changed
 *   between runs makes the restart take the full path.
 * - Content only, order-independent where the order is not the content's:
 *   Services, a Service's EndpointSlices, the CNI endpoints and the node
 *   placements combine by a sum of 2 × 32-bit hashes of each (key included),
 *   so a store filled by a list and one kept by a watch hash alike.
 * - The cluster part is kept per Service and updated only for the Services a
 *   run takes as changed ({@link ClusterDigest}): it then always describes
 *   the inputs of the desired state last computed, never changes not yet taken.
 * - On disk ({@link SyncedInputsFile}): one small file beside the ownership
 *   record, written atomically (temp file, fsync, rename). It is made
 *   invalid (durably) before the first HNS write of any run that writes, and
 *   written only after a run that left everything applied; so it never
 *   describes a state HNS may not hold.
 *
 * @module
 */

import type { ClusterView, EndpointSliceInfo, ObjectKey, ServiceInfo } from "../kube/model.ts";
import { EndpointList } from "../kube/model.ts";
import type { NodeContext } from "./model.ts";
import { dirname } from "../path.ts";
import { writeAtomic } from "./ownership.ts";

/**
 * The fields of a Service and of an EndpointSlice record, each marked hashed
 * or not: a field added to the record type must be added here (the type
 * checker insists), and is then hashed unless marked false. The cluster
 * part hashes these in this order, each under its index, instead of walking
 * each record's keys by name.
 */
const SERVICE_FIELDS = {
  namespace: true,
  name: true,
  resourceVersion: false,
  type: true,
  clusterIPs: true,
  ipFamilies: true,
  ports: true,
  externalIPs: true,
  ingress: true,
  loadBalancerSourceRanges: true,
  externalTrafficPolicy: true,
  internalTrafficPolicy: true,
  sessionAffinity: true,
  sessionAffinityTimeoutSeconds: true,
  healthCheckNodePort: true,
  trafficDistribution: true,
  preserveDestination: true,
} satisfies Record<keyof ServiceInfo, boolean>;
const SLICE_FIELDS = {
  namespace: true,
  name: true,
  serviceName: true,
  resourceVersion: false,
  addressType: true,
  ports: true,
  endpoints: true,
  triggerTimeMs: false,
} satisfies Record<keyof EndpointSliceInfo, boolean>;

function hashedFields<T>(fields: Record<string, boolean>): readonly (keyof T)[] {
  return Object.keys(fields).filter((k) => fields[k]) as (keyof T)[];
}
const SERVICE_KEYS = hashedFields<ServiceInfo>(SERVICE_FIELDS);
const SLICE_KEYS = hashedFields<EndpointSliceInfo>(SLICE_FIELDS);

/** Fields of converted objects that do not shape the desired state. */
const SKIPPED_KEYS = new Set(["resourceVersion", "triggerTimeMs"]);
/** Arrays whose order is not their content (hashed as sets). */
const UNORDERED_KEYS = new Set(["nodePlacements"]);

// The running hash: two 32-bit lanes (FNV-1a-like with different primes).
let ha = 0;
let hb = 0;

function mix(c: number): void {
  ha = Math.imul(ha ^ c, 0x01000193);
  hb = Math.imul(hb ^ c, 0x5bd1e995);
  hb ^= hb >>> 13;
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * Mix a string's length, then its UTF-16 units two per step. The steps are
 * {@link mix}'s, written out on local lanes: a restart hashes every string
 * of the store once, in code not yet optimized, where a call per step and
 * the module's lanes cost more than the arithmetic.
 */
function mixString(s: string): void {
  const n = s.length;
  let a = ha, b = hb;
  let c = n + 0x60000000;
  a = Math.imul(a ^ c, 0x01000193);
  b = Math.imul(b ^ c, 0x5bd1e995);
  b ^= b >>> 13;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    c = s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 13;
  }
  if (i < n) {
    c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 13;
  }
  ha = a;
  hb = b;
}

/** A value's hash as two 32-bit lanes, independent of any hash in progress. */
function hashOf(value: unknown): [number, number] {
  const sa = ha, sb = hb;
  ha = 0x811c9dc5;
  hb = 0x9747b28c;
  walk(value);
  const out: [number, number] = [fmix(ha), fmix(hb ^ 0x5bd1e995)];
  ha = sa;
  hb = sb;
  return out;
}

/** Mix an unordered collection: the sum of its members' hashes, and their count. */
function mixUnordered(items: Iterable<unknown>): void {
  let a = 0, b = 0, n = 0;
  for (const item of items) {
    const [x, y] = hashOf(item);
    a = (a + x) >>> 0;
    b = (b + y) >>> 0;
    n++;
  }
  mix(8);
  mix(n);
  mix(a);
  mix(b);
}

/**
 * Mix a Map as {@link mixUnordered} mixes its entries (each the pair
 * `[key, value]`), without making the pairs: the node context's CNI
 * endpoints are 10,000s of them.
 */
function mixUnorderedMap(m: ReadonlyMap<unknown, unknown>): void {
  const sa = ha, sb = hb;
  let a = 0, b = 0;
  m.forEach((value, key) => {
    ha = 0x811c9dc5;
    hb = 0x9747b28c;
    // walk([key, value])
    mix(7);
    mix(2);
    walk(key);
    walk(value);
    a = (a + fmix(ha)) >>> 0;
    b = (b + fmix(hb ^ 0x5bd1e995)) >>> 0;
  });
  ha = sa;
  hb = sb;
  mix(8);
  mix(m.size);
  mix(a);
  mix(b);
}

/** An EndpointList's cells (strings, small integers, undefined), in one loop: most of the store. */
function mixCells(cells: readonly unknown[]): void {
  mix(cells.length);
  for (let i = 0; i < cells.length; i++) {
    const c = cells[i];
    if (typeof c === "string") mixString(c);
    else if (c === undefined) mix(1);
    else walk(c);
  }
}

function walk(v: unknown): void {
  switch (typeof v) {
    case "undefined":
      return mix(1);
    case "boolean":
      return mix(v ? 3 : 4);
    case "number":
      if (Number.isInteger(v) && v >= -0x80000000 && v <= 0x7fffffff) {
        mix(5);
        return mix(v | 0);
      }
      return mixString(String(v));
    case "string":
      return mixString(v);
    case "object":
      break;
    default:
      return mix(2); // functions, symbols, bigints: not content the desired state reads
  }
  if (v === null) return mix(2);
  if (Array.isArray(v)) {
    mix(7);
    mix(v.length);
    for (let i = 0; i < v.length; i++) walk(v[i]);
    return;
  }
  if (v instanceof EndpointList) {
    mix(10);
    mixCells(v.cells);
    return walk(v.hints);
  }
  if (v instanceof Map) return mixUnorderedMap(v);
  if (v instanceof Set) return mixUnordered(v.values());
  mix(9);
  const o = v as Record<string, unknown>;
  for (const key in o) {
    const x = o[key];
    if (x === undefined || SKIPPED_KEYS.has(key)) continue;
    mixString(key);
    if (UNORDERED_KEYS.has(key) && Array.isArray(x)) mixUnordered(x);
    else walk(x);
  }
}

/** Mix a record's `keys` (each under its index; unset ones left out). */
function mixFields<T>(record: T, keys: readonly (keyof T)[]): void {
  mix(11);
  for (let i = 0; i < keys.length; i++) {
    const x = record[keys[i]];
    if (x === undefined) continue;
    mix(0x100 + i);
    walk(x);
  }
}

/** The hash of a Service record under its key (two 32-bit lanes). */
function serviceHash(key: ObjectKey, svc: ServiceInfo): [number, number] {
  const sa = ha, sb = hb;
  ha = 0x811c9dc5;
  hb = 0x9747b28c;
  mixString(key);
  mixFields(svc, SERVICE_KEYS);
  const out: [number, number] = [fmix(ha), fmix(hb ^ 0x5bd1e995)];
  ha = sa;
  hb = sb;
  return out;
}

/** The hash of an EndpointSlice record (two 32-bit lanes). */
function sliceHash(slice: EndpointSliceInfo): [number, number] {
  const sa = ha, sb = hb;
  ha = 0x811c9dc5;
  hb = 0x9747b28c;
  mixFields(slice, SLICE_KEYS);
  const out: [number, number] = [fmix(ha), fmix(hb ^ 0x5bd1e995)];
  ha = sa;
  hb = sb;
  return out;
}

/** Hex of two 32-bit lanes. */
function hex(a: number, b: number): string {
  return a.toString(16).padStart(8, "0") + b.toString(16).padStart(8, "0");
}

/** The content hash (16 hex digits) of any JSON-like value; Maps and Sets as unordered. */
export function contentHash(value: unknown): string {
  const [a, b] = hashOf(value);
  return hex(a, b);
}

const contextHashes = new WeakMap<NodeContext, string>();

/**
 * The hash of a node context (every field; CNI endpoints and placements in
 * any order). Contexts are replaced, never changed, so it is kept per object.
 */
export function contextDigest(ctx: NodeContext): string {
  let h = contextHashes.get(ctx);
  if (h === undefined) contextHashes.set(ctx, h = contentHash(ctx));
  return h;
}

/**
 * Config fields that cannot change what HNS should hold: connection,
 * logging, pacing, servers (the healthz port is hashed with the node
 * context), files, and modes that exit.
 */
export const CONFIG_NOT_HASHED: ReadonlySet<string> = new Set([
  "configFile",
  "kubeconfig",
  "master",
  "kubeApiQps",
  "kubeApiBurst",
  "healthzBindAddress",
  "metricsBindAddress",
  "syncPeriodMs",
  "minSyncPeriodMs",
  "configSyncPeriodMs",
  "windowsService",
  "logging",
  "hnsConcurrency",
  "stateFile",
  "cleanupAndExit",
  "writeConfigTo",
  "output",
]);

/** The hash of the effective config (but {@link CONFIG_NOT_HASHED}) and the agent's version. */
export function configDigest(config: object, version: string): string {
  const shaping = Object.entries(config).filter(([k]) => !CONFIG_NOT_HASHED.has(k));
  return contentHash({ version, config: Object.fromEntries(shaping) });
}

/**
 * The cluster's part of the digest: per Service, the hash of its converted
 * fields and its EndpointSlices' (in any order), summed over the Services.
 * Built from the store in full once, then updated per changed Service.
 */
export class ClusterDigest {
  readonly #entries = new Map<ObjectKey, [number, number]>();
  #a = 0;
  #b = 0;
  #built = false;

  /** Whether {@link build} ran. */
  get built(): boolean {
    return this.#built;
  }

  /** Hash every Service of `cluster` (and its slices) afresh. */
  build(cluster: ClusterView): void {
    this.#entries.clear();
    this.#a = this.#b = 0;
    if (cluster.forEachService) {
      cluster.forEachService((svc, key) => this.#set(key, cluster, svc));
    } else {
      for (const svc of cluster.services()) this.#set(`${svc.namespace}/${svc.name}`, cluster, svc);
    }
    this.#built = true;
  }

  /** Rehash these Services (gone ones drop out); nothing before {@link build}. */
  update(cluster: ClusterView, keys: Iterable<ObjectKey>): void {
    if (!this.#built) return;
    for (const key of keys) {
      const old = this.#entries.get(key);
      if (old) {
        this.#a = (this.#a - old[0]) >>> 0;
        this.#b = (this.#b - old[1]) >>> 0;
        this.#entries.delete(key);
      }
      this.#set(key, cluster);
    }
  }

  #set(key: ObjectKey, cluster: ClusterView, svc = cluster.service(key)): void {
    if (!svc) return;
    let [a, b] = serviceHash(key, svc);
    for (const slice of cluster.slicesFor(key)) {
      const [x, y] = sliceHash(slice);
      a = (a + x) >>> 0;
      b = (b + y) >>> 0;
    }
    this.#entries.set(key, [a, b]);
    this.#a = (this.#a + a) >>> 0;
    this.#b = (this.#b + b) >>> 0;
  }

  /** The digest: the sum of the Services' hashes and their count. */
  value(): string {
    return `${hex(this.#a, this.#b)}:${this.#entries.size}`;
  }
}

/** A synced-inputs digest, part by part (a mismatch says which part differs). */
export interface SyncedInputs {
  /** {@link ClusterDigest.value}. */
  cluster: string;
  /** {@link contextDigest}. */
  context: string;
  /** {@link configDigest}. */
  config: string;
  /** Objects the ownership record lists. */
  owned: number;
  /**
   * The IDs of the network's endpoints hnsproxy does not own that the node
   * context names (CNI endpoints, the root endpoint; {@link contextEndpointIds}):
   * not part of the digest, a hint for the next start, which may read them
   * before it knows which endpoints are not owned.
   */
  endpointIds?: readonly string[];
}

/** The HNS endpoint IDs a node context names: its local endpoints and the root endpoint. */
export function contextEndpointIds(ctx: NodeContext): string[] {
  const ids = new Set(ctx.localEndpoints.values());
  if (ctx.rootHnsEndpointId !== undefined) ids.add(ctx.rootHnsEndpointId);
  return [...ids];
}

/** The parts in which `a` and `b` differ (empty: equal). */
export function differingParts(a: SyncedInputs, b: SyncedInputs): (keyof SyncedInputs)[] {
  return (["cluster", "context", "config", "owned"] as const).filter((k) => a[k] !== b[k]);
}

const FILE_VERSION = 1;

/**
 * The recorded digest on disk, beside the ownership record it belongs to
 * (`<record>.synced`, naming the record's path). Writes are serialized.
 */
export class SyncedInputsFile {
  /** The file's path. */
  readonly path: string;
  readonly #record: string;
  #chain: Promise<void> = Promise.resolve();
  /** What the file holds as far as this process knows (undefined: no valid digest). */
  #current: SyncedInputs | undefined;
  #known = false;
  /** The file's endpoint IDs as read, until taken ({@link takeEndpointIds}). */
  #endpointIds: readonly string[] | undefined;

  /** The file of the ownership record at `recordPath`. */
  constructor(recordPath: string) {
    this.#record = recordPath;
    this.path = `${recordPath}.synced`;
  }

  /** The recorded digest, if the file holds a valid one for this record. */
  async read(): Promise<SyncedInputs | undefined> {
    await this.#chain;
    if (!this.#known) await this.#read().catch(() => {});
    return this.#known ? this.#current : undefined;
  }

  async #read(): Promise<void> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.path);
    } catch (err) {
      // Absent is "none"; unreadable must not count as none for an invalidation.
      if (!(err instanceof Deno.errors.NotFound)) throw err;
      text = "";
    }
    const parsed = parse(text, this.#record);
    this.#endpointIds = parsed?.endpointIds;
    if (parsed) delete parsed.endpointIds;
    this.#current = parsed;
    this.#known = true;
  }

  /**
   * The endpoint IDs the recorded digest names ({@link SyncedInputs.endpointIds}),
   * once: later calls return undefined (they are a hint for the start).
   */
  async takeEndpointIds(): Promise<readonly string[] | undefined> {
    await this.read();
    const ids = this.#endpointIds;
    this.#endpointIds = undefined;
    return ids;
  }

  /** Record `inputs` (atomically); a failure leaves no valid digest and is thrown. */
  record(inputs: SyncedInputs): Promise<void> {
    return this.#serial(async () => {
      if (this.#known && this.#current && differingParts(this.#current, inputs).length === 0) {
        return;
      }
      this.#known = true;
      this.#current = undefined;
      const line = JSON.stringify({ version: FILE_VERSION, record: this.#record, ...inputs });
      await Deno.mkdir(dirname(this.path), { recursive: true });
      await writeAtomic(this.path, line + "\n");
      const { endpointIds: _, ...parts } = inputs;
      this.#current = parts;
    });
  }

  /**
   * Make the recorded digest invalid, durably, before HNS is written. A
   * no-op when none is on disk; throws when it cannot be done (the caller
   * must not write HNS then).
   */
  invalidate(): Promise<void> {
    return this.#serial(async () => {
      if (!this.#known) await this.#read().catch(() => {});
      this.#endpointIds = undefined;
      if (this.#known && this.#current === undefined) return;
      await writeAtomic(this.path, "{}\n");
      this.#known = true;
      this.#current = undefined;
    });
  }

  #serial(fn: () => Promise<void>): Promise<void> {
    const next = this.#chain.then(fn);
    this.#chain = next.catch(() => {});
    return next;
  }
}

function parse(text: string, record: string): SyncedInputs | undefined {
  try {
    const d = JSON.parse(text);
    if (
      d?.version !== FILE_VERSION || d.record !== record || typeof d.cluster !== "string" ||
      typeof d.context !== "string" || typeof d.config !== "string" ||
      typeof d.owned !== "number"
    ) return undefined;
    const out: SyncedInputs = {
      cluster: d.cluster,
      context: d.context,
      config: d.config,
      owned: d.owned,
    };
    const ids = d.endpointIds;
    if (Array.isArray(ids) && ids.every((id) => typeof id === "string")) out.endpointIds = ids;
    return out;
  } catch {
    return undefined;
  }
}
