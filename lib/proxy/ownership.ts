/**
 * The ownership record: the HNS objects hnsproxy created (kind, HNS ID,
 * stable key). hnsproxy modifies and deletes only what is listed here, so a
 * missing or unreadable record makes it own nothing and delete nothing.
 *
 * Rules that keep every object hnsproxy created listed, whenever the process
 * dies (kill -9, power loss, a crash):
 *
 * - Create: hnsproxy picks the object's GUID itself and lists the object
 *   ({@link OwnershipRecord.intend}: appended and fsync'd, once for a whole
 *   batch of creates) before it asks HNS to create it. A listed object that
 *   HNS does not hold is a create that never happened (or failed, or an
 *   object deleted since): at start it is dropped, and `--cleanup-and-exit`
 *   counts it as absent.
 * - Delete: an object stays listed until HNS confirmed its delete (or said it
 *   is not there); only then is its removal written. Killed in between, the
 *   object is still listed, so at start it is still owned: adopted if it is
 *   what is wanted, else deleted.
 * - Everything else (adoptions, removals) is written once per sync.
 * - At start, hnsproxy owns exactly the listed objects that HNS holds.
 *
 * Each listed object may carry a fingerprint (`fp`) of its content as
 * hnsproxy last wrote or read it (payload.ts `loadBalancerFingerprint`,
 * `endpointFingerprint`), so that a start can trust an owned object it does
 * not read (trusted_start.ts). Rules that keep a fingerprint never wrong:
 * - a create is listed with no fingerprint; once HNS made it, the fingerprint
 *   of what was sent is written with the sync's other changes;
 * - before a modify is issued its fingerprint is dropped on disk
 *   ({@link OwnershipRecord.distrust}); the new one is written after it;
 * - an object without a fingerprint is read at start.
 * The fingerprints are trusted only when the whole record is
 * ({@link OwnershipRecord.untrusted}): written in format 3, and its journal
 * readable to the end.
 *
 * Two files, both written only by this module:
 *
 * - the record `<path>`, written whole and atomically (temp file, fsync,
 *   rename), one object per line:
 *
 *   ```json
 *   {"version":3,"generation":7,"objects":[
 *   {"kind":"LoadBalancer","id":"…","key":"lb/tcp/10.96.0.10:80","fp":"1x2y3z"}
 *   ]}
 *   ```
 *
 * - the journal `<path>.journal`: the changes since that record was written,
 *   appended and fsync'd per write (a batch of creates, or a sync's other
 *   changes), so a sync's cost is its changes, not the cluster's size. Its
 *   first line names the record generation it continues; each further line
 *   is `{"op":"add","kind":…,"id":…,"key":…,"fp":…}` or `{"op":"remove","id":…}`.
 *
 * Compaction writes a new record (next generation) with everything, then a
 * fresh journal for it; it runs when the journal grows past half the record
 * (at least {@link DEFAULT_COMPACT_AFTER} entries), on the first write after
 * a load that found no record or a journal not fit for appending, and on
 * {@link OwnershipRecord.compact} (the agent's stop). Loading replays the
 * journal over the record when the generations match: a crash between the
 * two writes of a compaction leaves the previous journal, which the new
 * record already contains, so it is skipped. A torn last journal line (a
 * crash during an append) is ignored: its creates were never issued, since
 * they wait for the fsync. An add or remove is idempotent, so replay order is
 * all that matters. Records of format 1 (no journal) and 2 (no fingerprints)
 * still load, untrusted; the first write replaces them with format 3.
 *
 * @module
 */

import { dirname } from "node:path";
import { type Logger, nullLogger } from "../log/types.ts";
import { errorMessage } from "../errors.ts";

/** The HNS object kinds hnsproxy creates. */
export type OwnedKind = "LoadBalancer" | "Endpoint";

/** One HNS object hnsproxy owns. */
export interface OwnedObject {
  /** HNS object kind. */
  kind: OwnedKind;
  /** HNS ID (GUID) as HNS reported it. */
  id: string;
  /** Stable key of the desired object it implements, e.g. `ep/remote/10.244.2.15`. */
  key: string;
  /** Fingerprint of its content as hnsproxy last wrote or read it; absent when unknown. */
  fp?: string;
}

/** Current file format version (record and journal); 3 added fingerprints. */
export const OWNERSHIP_FORMAT_VERSION = 3;

/** Fewest journal entries that make a compaction (more when the record is large). */
export const DEFAULT_COMPACT_AFTER = 1024;

/** The journal's path for the record at `path`. */
export function journalPath(path: string): string {
  return `${path}.journal`;
}

/** Options for {@link OwnershipRecord.load}. */
export interface OwnershipLoadOptions {
  /** Logger for the load outcome (default: silent). */
  logger?: Logger;
  /**
   * Compact once the journal would hold more than this many entries, or half
   * the number of owned objects if that is more (default
   * {@link DEFAULT_COMPACT_AFTER}).
   */
  compactAfter?: number;
}

/**
 * The set of HNS objects hnsproxy owns, backed by a file and its journal (or
 * by nothing, for tests and the `plan` command). IDs compare
 * case-insensitively.
 */
export class OwnershipRecord {
  /** The backing file, or null for an in-memory record. */
  readonly path: string | null;
  /**
   * Why the file could not be used (corrupt, unreadable, unknown version),
   * or undefined when it loaded or did not exist. A record with a load
   * error starts empty; the unusable file (and its journal) is kept beside
   * the new one as `<path>.corrupt` (`<path>.journal.corrupt`) on the first
   * write.
   */
  readonly loadError?: string;
  /**
   * Why the fingerprints cannot be trusted (no record, a load error, an older
   * format, a journal unreadable or with malformed lines), or undefined when
   * they can: a start then reads only what it cannot vouch for.
   */
  readonly untrusted?: string;

  // Compact storage (one entry per object, no per-object record): normalized ID → key, by
  // kind, and the ID as given only where it differs from its normalized (upper-case) form.
  readonly #lbs = new Map<string, string>();
  readonly #eps = new Map<string, string>();
  readonly #spelled = new Map<string, string>();
  /** Normalized ID → fingerprint, for owned objects whose content is known. */
  readonly #fps = new Map<string, string>();
  /**
   * Normalized IDs changed since the last write. What is written for one is
   * its state at the write (owned: an add; not: a remove), i.e. its last change.
   */
  #pending = new Set<string>();
  #writing: Promise<void> = Promise.resolve();
  /** Move the unusable record (journal) aside before the first write. */
  #preserveRecord: boolean;
  #preserveJournal: boolean;
  readonly #compactAfter: number;
  /** Generation of the record on disk; undefined when there is no usable one. */
  #generation: number | undefined;
  /** Entries in the journal on disk after its header. */
  #journalEntries = 0;
  /** Whether the next write must compact (no record yet, or the journal's end is not known good). */
  #mustCompact: boolean;

  private constructor(
    path: string | null,
    objects: Iterable<OwnedObject>,
    state: {
      loadError?: string;
      untrusted?: string;
      generation?: number;
      journalEntries?: number;
      appendable?: boolean;
      preserveJournal?: boolean;
      compactAfter?: number;
    } = {},
  ) {
    this.path = path;
    this.loadError = state.loadError;
    this.untrusted = state.untrusted;
    this.#preserveRecord = state.loadError !== undefined;
    this.#preserveJournal = state.loadError !== undefined || state.preserveJournal === true;
    this.#generation = state.generation;
    this.#journalEntries = state.journalEntries ?? 0;
    this.#mustCompact = state.generation === undefined || state.appendable !== true;
    this.#compactAfter = Math.max(1, state.compactAfter ?? DEFAULT_COMPACT_AFTER);
    for (const object of objects) this.#put(normalizeId(object.id), object);
  }

  /** An empty record that is never written anywhere. */
  static inMemory(objects: OwnedObject[] = []): OwnershipRecord {
    return new OwnershipRecord(null, objects);
  }

  /**
   * Load the record from `path` and replay its journal. A missing file is an
   * empty record; a file that cannot be read or parsed is logged as an error
   * and gives an empty record with {@link OwnershipRecord.loadError} set (own
   * nothing, so delete nothing). Never throws for file problems.
   */
  static async load(path: string, options: OwnershipLoadOptions = {}): Promise<OwnershipRecord> {
    const logger = options.logger ?? nullLogger;
    const compactAfter = options.compactAfter;
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        logger.info("No ownership record yet; hnsproxy owns no HNS objects", { path });
        return new OwnershipRecord(path, [], {
          untrusted: "no ownership record yet",
          compactAfter,
        });
      }
      const problem = `cannot read ownership record ${path}: ${errorMessage(err)}`;
      logger.error("Ownership record unreadable; owning nothing, deleting nothing", {
        path,
        err: errorMessage(err),
      });
      return new OwnershipRecord(path, [], {
        loadError: problem,
        untrusted: problem,
        compactAfter,
      });
    }
    const parsed = parseRecord(text);
    if (typeof parsed === "string") {
      const problem = `corrupt ownership record ${path}: ${parsed}`;
      logger.error("Ownership record corrupt; owning nothing, deleting nothing", {
        path,
        problem: parsed,
      });
      return new OwnershipRecord(path, [], {
        loadError: problem,
        untrusted: problem,
        compactAfter,
      });
    }
    for (const skipped of parsed.skipped) {
      logger.warn("Skipping malformed entry in ownership record", { path, entry: skipped });
    }
    const objects = new Map<string, OwnedObject>();
    for (const object of parsed.objects) objects.set(normalizeId(object.id), object);

    const journal = journalPath(path);
    let journalText: string | undefined;
    let journalUnreadable = false;
    try {
      // A format 1 record has no journal.
      if (parsed.generation !== undefined) journalText = await Deno.readTextFile(journal);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        // The record alone is still ours (HNS never reuses an ID); what the journal
        // added since is forgotten, which leaks but never claims what is not ours.
        logger.error("Ownership journal unreadable; using the record without it", {
          path: journal,
          err: errorMessage(err),
        });
        journalUnreadable = true;
      }
    }
    let replayed: ReplayResult | undefined;
    if (journalText !== undefined && parsed.generation !== undefined) {
      replayed = replayJournal(journalText, parsed.version, parsed.generation, objects);
      if (replayed.stale) {
        logger.info("Ownership journal belongs to an older record; ignored", {
          path: journal,
          generation: parsed.generation,
        });
      }
      if (replayed.tornTail) {
        logger.warn("Ignoring an incomplete last line of the ownership journal", { path: journal });
      }
      for (const bad of replayed.skipped) {
        logger.warn("Skipping malformed entry in ownership journal", { path: journal, entry: bad });
      }
    }
    logger.info("Loaded ownership record", {
      path,
      objects: objects.size,
      journalEntries: replayed?.applied ?? 0,
    });
    const untrusted = parsed.version !== OWNERSHIP_FORMAT_VERSION
      ? `ownership record of format ${parsed.version} has no fingerprints`
      : journalUnreadable
      ? "ownership journal unreadable"
      : parsed.skipped.length > 0 || (replayed?.skipped.length ?? 0) > 0
      ? "ownership record has malformed entries"
      : undefined;
    return new OwnershipRecord(path, objects.values(), {
      untrusted,
      generation: parsed.generation,
      journalEntries: replayed?.applied ?? 0,
      // An older format is rewritten whole at the first write.
      appendable: (replayed?.appendable ?? false) && parsed.version === OWNERSHIP_FORMAT_VERSION,
      preserveJournal: journalUnreadable,
      compactAfter,
    });
  }

  /** Whether hnsproxy owns the HNS object with this ID. */
  owns(id: string): boolean {
    const n = normalizeId(id);
    return this.#lbs.has(n) || this.#eps.has(n);
  }

  /** The kind of the owned object with this ID, if any (allocates nothing). */
  kindOf(id: string): OwnedKind | undefined {
    const n = normalizeId(id);
    return this.#lbs.has(n) ? "LoadBalancer" : this.#eps.has(n) ? "Endpoint" : undefined;
  }

  /** The key of the owned object with this ID, if any (allocates nothing). */
  keyOf(id: string): string | undefined {
    const n = normalizeId(id);
    return this.#lbs.get(n) ?? this.#eps.get(n);
  }

  /** The fingerprint recorded for the owned object with this ID, if any (allocates nothing). */
  fingerprintOf(id: string): string | undefined {
    return this.#fps.get(normalizeId(id));
  }

  /** The IDs (as given) of the owned objects, optionally of one kind, in no particular order. */
  *ids(kind?: OwnedKind): IterableIterator<string> {
    if (kind !== "Endpoint") {
      for (const id of this.#lbs.keys()) {
        yield this.#spelled.get(id) ?? id;
      }
    }
    if (kind !== "LoadBalancer") {
      for (const id of this.#eps.keys()) yield this.#spelled.get(id) ?? id;
    }
  }

  /** The owned object with this ID, if any (a fresh object each call). */
  get(id: string): OwnedObject | undefined {
    return this.#object(normalizeId(id));
  }

  /** Record that hnsproxy created (or adopted as its own) this object. */
  add(object: OwnedObject): void {
    const id = normalizeId(object.id);
    const mine = object.kind === "LoadBalancer" ? this.#lbs : this.#eps;
    if (mine.get(id) === object.key && this.#fps.get(id) === object.fp) return;
    this.#put(id, object);
    this.#pending.add(id);
  }

  /**
   * List objects hnsproxy is about to create, and write them to disk now
   * (with any other pending change: one append and fsync for all), so that
   * the creates may be issued. Call it before the create calls, never after:
   * an object HNS holds and the record lacks is foreign for good. An object
   * whose create then certainly failed is {@link remove}d again. Throws when
   * the files cannot be written; the objects are then not listed (issue none
   * of the creates). For an in-memory record this is {@link add}.
   */
  async intend(objects: readonly OwnedObject[]): Promise<void> {
    for (const object of objects) this.add(object);
    try {
      await this.flush();
    } catch (err) {
      for (const object of objects) this.remove(object.id);
      throw err;
    }
  }

  /**
   * Drop the fingerprints of owned objects about to be modified, so that a
   * modify whose answer is lost, or that the process does not live to
   * record, is never vouched for by the fingerprint of the content before
   * it. The drop must be on disk before the modifies are issued: it is
   * written by the next {@link flush} or {@link intend}. Returns whether
   * anything was dropped (objects without a fingerprint cost nothing). Write
   * the new fingerprint with {@link add} once a modify succeeded.
   */
  distrust(ids: Iterable<string>): boolean {
    let dropped = false;
    for (const id of ids) {
      const normalized = normalizeId(id);
      if (this.#fps.delete(normalized)) {
        this.#pending.add(normalized);
        dropped = true;
      }
    }
    return dropped;
  }

  /** Forget an object (deleted, or vanished from HNS). */
  remove(id: string): void {
    const normalized = normalizeId(id);
    if (!this.#lbs.delete(normalized) && !this.#eps.delete(normalized)) return;
    this.#spelled.delete(normalized);
    this.#fps.delete(normalized);
    this.#pending.add(normalized);
  }

  /** All owned objects, optionally of one kind, sorted by kind then key then ID (O(n log n)). */
  list(kind?: OwnedKind): OwnedObject[] {
    return [...this.values(kind)].sort(compareObjects);
  }

  /** The owned objects, optionally of one kind, in no particular order. */
  *values(kind?: OwnedKind): IterableIterator<OwnedObject> {
    if (kind !== "Endpoint") {
      for (const [id, key] of this.#lbs) yield this.#with(id, "LoadBalancer", key);
    }
    if (kind !== "LoadBalancer") {
      for (const [id, key] of this.#eps) yield this.#with(id, "Endpoint", key);
    }
  }

  /**
   * The IDs of the owned objects of one kind, upper case, in no particular
   * order: read live (no copy, no object per entry).
   */
  upperCaseIds(kind: OwnedKind): IterableIterator<string> {
    return (kind === "LoadBalancer" ? this.#lbs : this.#eps).keys();
  }

  /** Number of owned objects of one kind, or of all (O(1)). */
  count(kind?: OwnedKind): number {
    return kind === "LoadBalancer"
      ? this.#lbs.size
      : kind === "Endpoint"
      ? this.#eps.size
      : this.#lbs.size + this.#eps.size;
  }

  /** Number of owned objects. */
  get size(): number {
    return this.#lbs.size + this.#eps.size;
  }

  /** Whether there are changes not yet written. */
  get dirty(): boolean {
    return this.#pending.size > 0;
  }

  /**
   * Write the changes since the last write, if any (with `force`, write the
   * whole record even when nothing changed): appended to the journal, or as
   * a compaction when one is due. Concurrent calls are serialized. Throws
   * when the files cannot be written (the changes stay pending so the next
   * flush tries again). A no-op for in-memory records.
   */
  flush(force = false): Promise<void> {
    return this.#serialized(() => this.#write(force));
  }

  /**
   * Fold the journal into the record: write the whole record with the
   * pending changes when the journal holds entries or changes are pending
   * (the agent does this at stop, so the record alone is complete). Throws
   * like {@link flush}.
   */
  compact(): Promise<void> {
    return this.#serialized(() => {
      const needed = this.#pending.size > 0 || this.#journalEntries > 0 ||
        (this.#mustCompact && this.#generation !== undefined);
      return this.#write(needed);
    });
  }

  #serialized(fn: () => Promise<void>): Promise<void> {
    const next = this.#writing.then(fn);
    this.#writing = next.catch(() => {});
    return next;
  }

  #put(normalized: string, object: OwnedObject): void {
    (object.kind === "LoadBalancer" ? this.#eps : this.#lbs).delete(normalized);
    (object.kind === "LoadBalancer" ? this.#lbs : this.#eps).set(normalized, object.key);
    if (object.id === normalized) this.#spelled.delete(normalized);
    else this.#spelled.set(normalized, object.id);
    if (object.fp === undefined) this.#fps.delete(normalized);
    else this.#fps.set(normalized, object.fp);
  }

  #object(normalized: string): OwnedObject | undefined {
    const lbKey = this.#lbs.get(normalized);
    if (lbKey !== undefined) return this.#with(normalized, "LoadBalancer", lbKey);
    const epKey = this.#eps.get(normalized);
    return epKey === undefined ? undefined : this.#with(normalized, "Endpoint", epKey);
  }

  /** The owned object under a normalized ID, with its spelling and fingerprint. */
  #with(normalized: string, kind: OwnedKind, key: string): OwnedObject {
    const object: OwnedObject = { kind, id: this.#spelled.get(normalized) ?? normalized, key };
    const fp = this.#fps.get(normalized);
    if (fp !== undefined) object.fp = fp;
    return object;
  }

  /** When the journal is this long, the next write compacts instead. */
  #journalLimit(): number {
    return Math.max(this.#compactAfter, Math.ceil(this.size / 2));
  }

  async #write(force: boolean): Promise<void> {
    if (this.path === null) {
      this.#pending.clear();
      return;
    }
    if (this.#pending.size === 0 && !force) return;
    // Taken before the first await: later changes belong to the next write.
    const batch = this.#pending;
    this.#pending = new Set();
    try {
      if (
        force || this.#mustCompact || this.#journalEntries + batch.size > this.#journalLimit()
      ) {
        await this.#compactNow(this.path);
      } else {
        await this.#append(this.path, batch);
      }
    } catch (err) {
      // Not written: the batch stays pending, under the changes made since.
      for (const id of batch) this.#pending.add(id);
      throw err;
    }
  }

  /** Write the whole current state as the next generation's record, then its empty journal. */
  async #compactNow(path: string): Promise<void> {
    const generation = this.#generation === undefined ? firstGeneration() : this.#generation + 1;
    const text = recordText(generation, this.list()); // before any await: this state, no later one
    await Deno.mkdir(dirname(path), { recursive: true });
    if (this.#preserveRecord) {
      await Deno.rename(path, path + ".corrupt").catch(() => {});
      this.#preserveRecord = false;
    }
    if (this.#preserveJournal) {
      await Deno.rename(journalPath(path), journalPath(path) + ".corrupt").catch(() => {});
      this.#preserveJournal = false;
    }
    this.#mustCompact = true;
    await writeAtomic(path, text);
    // From here the record on disk is complete; a journal of the old generation is ignored.
    this.#generation = generation;
    this.#journalEntries = 0;
    await writeAtomic(journalPath(path), journalHeader(generation));
    this.#mustCompact = false;
  }

  /** Append the batch to the journal and fsync it. */
  async #append(path: string, batch: Set<string>): Promise<void> {
    let text = "";
    for (const id of batch) text += journalLine(id, this.#object(id)) + "\n";
    // A failed append may leave a partial line: the next write starts a fresh journal.
    this.#mustCompact = true;
    // No create: the journal exists since the last compaction (if it was removed, compact).
    const file = await Deno.open(journalPath(path), { write: true, append: true });
    try {
      await writeAll(file, new TextEncoder().encode(text));
      await file.syncData();
    } finally {
      file.close();
    }
    this.#journalEntries += batch.size;
    this.#mustCompact = false;
  }
}

/** Write `text` to `path` atomically: temp file in the same directory, fsync, rename. */
export async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    await writeAll(file, new TextEncoder().encode(text));
    await file.sync();
  } finally {
    file.close();
  }
  try {
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  await syncDirectory(dirname(path));
}

/** fsync a directory so a rename survives a crash; not possible on Windows, so best effort. */
async function syncDirectory(dir: string): Promise<void> {
  if (Deno.build.os === "windows") return;
  try {
    const handle = await Deno.open(dir, { read: true });
    try {
      await handle.sync();
    } finally {
      handle.close();
    }
  } catch {
    // Some filesystems refuse fsync on directories; the rename itself is still atomic.
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await file.write(bytes.subarray(written));
}

/**
 * A generation for a record that follows no usable one: the clock, so that
 * a journal left by an earlier record at that path is never taken for its own.
 */
function firstGeneration(): number {
  return Date.now();
}

/** The record file's text: one object per line, so large records stay cheap to write and diff. */
function recordText(generation: number, objects: readonly OwnedObject[]): string {
  const head = `{"version":${OWNERSHIP_FORMAT_VERSION},"generation":${generation},"objects":[`;
  if (objects.length === 0) return head + "]}\n";
  const lines = objects.map((o) =>
    JSON.stringify({ kind: o.kind, id: o.id, key: o.key, fp: o.fp })
  );
  return head + "\n" + lines.join(",\n") + "\n]}\n";
}

function journalHeader(generation: number): string {
  return JSON.stringify({ version: OWNERSHIP_FORMAT_VERSION, generation }) + "\n";
}

/** The journal line of a change: the object now owned, or (undefined) its removal. */
function journalLine(normalizedId: string, owned: OwnedObject | undefined): string {
  return JSON.stringify(
    owned
      ? { op: "add", kind: owned.kind, id: owned.id, key: owned.key, fp: owned.fp }
      : { op: "remove", id: normalizedId.toLowerCase() },
  );
}

interface ParsedRecord {
  /** The format version. */
  version: number;
  /** Undefined for format 1, which had no journal. */
  generation: number | undefined;
  objects: OwnedObject[];
  skipped: unknown[];
}

/** Parse the record's text (format 1 or 2); a string result explains why it is unusable. */
function parseRecord(text: string): ParsedRecord | string {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    return `not JSON (${errorMessage(err)})`;
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    return "not a JSON object";
  }
  const { version, generation, objects } = data as {
    version?: unknown;
    generation?: unknown;
    objects?: unknown;
  };
  if (version !== 1 && version !== 2 && version !== OWNERSHIP_FORMAT_VERSION) {
    return `unsupported version ${
      JSON.stringify(version)
    } (expected 1 to ${OWNERSHIP_FORMAT_VERSION})`;
  }
  if (version !== 1 && !isGeneration(generation)) {
    return `"generation" is not a non-negative integer`;
  }
  if (!Array.isArray(objects)) return `"objects" is not an array`;
  const result: ParsedRecord = {
    version,
    generation: version === 1 ? undefined : generation as number,
    objects: [],
    skipped: [],
  };
  for (const entry of objects) {
    if (isOwnedObject(entry)) {
      result.objects.push(ownedObject(entry));
    } else {
      result.skipped.push(entry);
    }
  }
  return result;
}

function isGeneration(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/** What replaying a journal did. */
interface ReplayResult {
  /** The journal continues another record generation and was not replayed. */
  stale: boolean;
  /** Entries applied. */
  applied: number;
  /** Unparsable lines other than the last. */
  skipped: string[];
  /** The last line was incomplete (a crash during an append) and was ignored. */
  tornTail: boolean;
  /** Whether later changes can be appended to it as it is. */
  appendable: boolean;
}

/**
 * Apply the journal's entries to `objects` (keyed by normalized ID) when it
 * continues the record of format `version` and `generation`.
 */
function replayJournal(
  text: string,
  version: number,
  generation: number,
  objects: Map<string, OwnedObject>,
): ReplayResult {
  const result: ReplayResult = {
    stale: false,
    applied: 0,
    skipped: [],
    tornTail: false,
    appendable: false,
  };
  const lines = text.split("\n");
  // Text after the last newline is a line whose append did not finish.
  const tail = lines.pop() ?? "";
  result.tornTail = tail !== "";
  const header = parseJson(lines.shift() ?? "");
  if (
    typeof header !== "object" || header === null ||
    (header as { version?: unknown }).version !== version ||
    (header as { generation?: unknown }).generation !== generation
  ) {
    return { ...result, stale: true, tornTail: false };
  }
  for (const line of lines) {
    const entry = parseJson(line);
    if (isAddEntry(entry)) {
      objects.set(normalizeId(entry.id), ownedObject(entry));
    } else if (isRemoveEntry(entry)) {
      objects.delete(normalizeId(entry.id));
    } else {
      result.skipped.push(line);
      continue;
    }
    result.applied++;
  }
  result.appendable = !result.tornTail && result.skipped.length === 0;
  return result;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isAddEntry(value: unknown): value is OwnedObject & { op: "add" } {
  return isOwnedObject(value) && (value as { op?: unknown }).op === "add";
}

function isRemoveEntry(value: unknown): value is { op: "remove"; id: string } {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return v.op === "remove" && typeof v.id === "string" && v.id.length > 0;
}

function isOwnedObject(value: unknown): value is OwnedObject {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return (v.kind === "LoadBalancer" || v.kind === "Endpoint") &&
    typeof v.id === "string" && v.id.length > 0 && typeof v.key === "string" &&
    (v.fp === undefined || typeof v.fp === "string");
}

/** The owned object of a parsed entry (only its own fields). */
function ownedObject(entry: OwnedObject): OwnedObject {
  const object: OwnedObject = { kind: entry.kind, id: entry.id, key: entry.key };
  if (entry.fp !== undefined) object.fp = entry.fp;
  return object;
}

/** Upper case: HNS spells GUIDs so, and `toUpperCase` then returns the string itself. */
function normalizeId(id: string): string {
  return id.toUpperCase();
}

function compareObjects(a: OwnedObject, b: OwnedObject): number {
  if (a.kind !== b.kind) return a.kind < b.kind ? 1 : -1; // LoadBalancer before Endpoint
  if (a.key !== b.key) return a.key < b.key ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}
