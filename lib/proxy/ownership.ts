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
 *   batch of creates, with every other pending change that must precede a
 *   write: those of objects owned without a fingerprint) before it asks HNS
 *   to create it. A listed object that HNS does not hold is a create that
 *   never happened (or failed, or an object deleted since): at start it is
 *   dropped, and `--cleanup-and-exit` counts it as absent.
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
 * In memory the record keeps no object per owned object (see `OwnedTable`),
 * and a load reads the record a chunk and a line at a time, so the file is
 * never held whole, as text or as objects (other layouts of valid JSON, e.g.
 * a record edited by hand, are parsed whole).
 *
 * @module
 */

import { dirname } from "../path.ts";
import { type Logger, nullLogger } from "../log/types.ts";
import { errorMessage } from "../errors.ts";
import { idHash, SlotIndex } from "./slot_index.ts";

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

  /** The owned objects, and which of them changed since the last write (see `OwnedTable`). */
  readonly #table: OwnedTable;
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
    table: OwnedTable,
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
    this.#table = table;
  }

  /** An empty record that is never written anywhere. */
  static inMemory(objects: OwnedObject[] = []): OwnershipRecord {
    const table = new OwnedTable();
    for (const object of objects) table.put(normalizeId(object.id), object);
    return new OwnershipRecord(null, table);
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
    let parsed: ParsedRecord | string;
    try {
      parsed = await readRecord(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        logger.info("No ownership record yet; hnsproxy owns no HNS objects", { path });
        return new OwnershipRecord(path, new OwnedTable(), {
          untrusted: "no ownership record yet",
          compactAfter,
        });
      }
      const problem = `cannot read ownership record ${path}: ${errorMessage(err)}`;
      logger.error("Ownership record unreadable; owning nothing, deleting nothing", {
        path,
        err: errorMessage(err),
      });
      return new OwnershipRecord(path, new OwnedTable(), {
        loadError: problem,
        untrusted: problem,
        compactAfter,
      });
    }
    if (typeof parsed === "string") {
      const problem = `corrupt ownership record ${path}: ${parsed}`;
      logger.error("Ownership record corrupt; owning nothing, deleting nothing", {
        path,
        problem: parsed,
      });
      return new OwnershipRecord(path, new OwnedTable(), {
        loadError: problem,
        untrusted: problem,
        compactAfter,
      });
    }
    for (const skipped of parsed.skipped) {
      logger.warn("Skipping malformed entry in ownership record", { path, entry: skipped });
    }
    const objects = parsed.table;

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
      objects: objects.count(),
      journalEntries: replayed?.applied ?? 0,
    });
    const untrusted = parsed.version !== OWNERSHIP_FORMAT_VERSION
      ? `ownership record of format ${parsed.version} has no fingerprints`
      : journalUnreadable
      ? "ownership journal unreadable"
      : parsed.skipped.length > 0 || (replayed?.skipped.length ?? 0) > 0
      ? "ownership record has malformed entries"
      : undefined;
    return new OwnershipRecord(path, objects, {
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
    return this.#table.slot(n) !== undefined;
  }

  /** The kind of the owned object with this ID, if any (allocates nothing). */
  kindOf(id: string): OwnedKind | undefined {
    return this.#table.kindOf(normalizeId(id));
  }

  /** The key of the owned object with this ID, if any (allocates nothing). */
  keyOf(id: string): string | undefined {
    const slot = this.#table.slot(normalizeId(id));
    return slot === undefined ? undefined : this.#table.key(slot);
  }

  /**
   * The record's own string of this ID when it is owned and spelled exactly
   * so, else `id` itself: holders of IDs that take it (the observed cache)
   * share one string per ID with the record instead of keeping a copy.
   */
  idString(id: string): string {
    const slot = this.#table.slot(normalizeId(id));
    if (slot === undefined) return id;
    const own = this.#table.spellingAt(slot);
    return own === id ? own : id;
  }

  /**
   * The fingerprint recorded for the owned object with this ID, if any (its
   * text is made on each call; {@link hasFingerprint} compares without).
   */
  fingerprintOf(id: string): string | undefined {
    const slot = this.#table.slot(normalizeId(id));
    return slot === undefined ? undefined : this.#table.fingerprint(slot);
  }

  /** Whether the owned object with this ID has the fingerprint `fp` recorded. */
  hasFingerprint(id: string, fp: string): boolean {
    const slot = this.#table.slot(normalizeId(id));
    return slot !== undefined && this.#table.hasFingerprint(slot, fp);
  }

  /**
   * A handle on the owned object with this ID for the `…At` reads (one
   * lookup for several reads), or -1 when not owned. Valid until the object
   * is removed.
   */
  handle(id: string): number {
    return this.#table.slot(normalizeId(id)) ?? -1;
  }

  /** The kind of the owned object a {@link handle} names. */
  kindAt(handle: number): OwnedKind {
    return KINDS[this.#table.kindAt(handle)]!;
  }

  /** The key of the owned object a {@link handle} names. */
  keyAt(handle: number): string {
    return this.#table.key(handle);
  }

  /**
   * Whether the owned object a {@link handle} names has the fingerprint whose
   * base-36 number is `value` (payload.ts `…FingerprintValue`) recorded.
   */
  hasFingerprintValueAt(handle: number, value: number): boolean {
    return value >= 0 && this.#table.fingerprintValue(handle) === value;
  }

  /**
   * Keep `key` (held elsewhere, e.g. by the desired state) as the key string
   * of the owned object a {@link handle} names, when it is equal to the one
   * kept: one string per key instead of two. Changes nothing on disk.
   */
  shareKeyAt(handle: number, key: string): void {
    this.#table.shareKey(handle, key);
  }

  /** The IDs (as given) of the owned objects, optionally of one kind, in no particular order. */
  *ids(kind?: OwnedKind): IterableIterator<string> {
    for (const id of this.#table.ids(kind)) yield this.#table.spelling(id);
  }

  /** The owned object with this ID, if any (a fresh object each call). */
  get(id: string): OwnedObject | undefined {
    return this.#table.object(normalizeId(id));
  }

  /** Record that hnsproxy created (or adopted as its own) this object. */
  add(object: OwnedObject): void {
    const id = normalizeId(object.id);
    const slot = this.#table.put(id, object);
    if (slot >= 0) this.#table.changedAt(id, slot);
  }

  /**
   * {@link add} of an object whose fingerprint is known as the number it
   * spells (payload.ts `…FingerprintValue`): the same as adding it with the
   * fingerprint `value.toString(36)`, without making or reading that text.
   */
  addFingerprinted(kind: OwnedKind, id: string, key: string, value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`fingerprint value ${value} of ${id} is not a safe integer ≥ 0`);
    }
    const normalized = normalizeId(id);
    const slot = this.#table.putNumbered(normalized, { kind, id, key }, value, undefined);
    if (slot >= 0) this.#table.changedAt(normalized, slot);
  }

  /**
   * List objects hnsproxy is about to create, and write them to disk now
   * (with the other pending changes of objects owned without a fingerprint,
   * e.g. fingerprints dropped by {@link distrust}: one append and fsync for
   * all), so that the creates may be issued. The other pending changes
   * (fingerprints written after a create or modify, removals) wait for the
   * next {@link flush}: until then the record on disk vouches for less, never
   * for more. Call it before the create calls, never after:
   * an object HNS holds and the record lacks is foreign for good. An object
   * whose create then certainly failed is {@link remove}d again. Throws when
   * the files cannot be written; the objects are then not listed (issue none
   * of the creates). For an in-memory record this is {@link add}.
   */
  async intend(objects: readonly OwnedObject[]): Promise<void> {
    this.#table.reserve(objects.length);
    for (let i = 0; i < objects.length; i++) this.add(objects[i]);
    try {
      await this.flush(false, true);
    } catch (err) {
      for (let i = 0; i < objects.length; i++) this.remove(objects[i].id);
      throw err;
    }
  }

  /**
   * Make room for `n` more owned objects (e.g. the creates of a plan) before
   * they are listed: the record then takes them without growing step by step.
   */
  reserve(n: number): void {
    this.#table.reserve(n);
  }

  /** Objects the record holds without growing its tables. */
  get capacity(): number {
    return this.#table.capacity;
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
      if (this.#table.dropFingerprint(normalized)) {
        this.#table.changed(normalized);
        dropped = true;
      }
    }
    return dropped;
  }

  /** Forget an object (deleted, or vanished from HNS). */
  remove(id: string): void {
    const normalized = normalizeId(id);
    if (!this.#table.delete(normalized)) return;
    this.#table.changed(normalized);
  }

  /** All owned objects, optionally of one kind, sorted by kind then key then ID (O(n log n)). */
  list(kind?: OwnedKind): OwnedObject[] {
    return [...this.values(kind)].sort(compareObjects);
  }

  /** The owned objects, optionally of one kind, in no particular order. */
  *values(kind?: OwnedKind): IterableIterator<OwnedObject> {
    for (const id of this.#table.ids(kind)) yield this.#table.object(id)!;
  }

  /**
   * The IDs of the owned objects of one kind, upper case, in no particular
   * order: read live (no copy, no object per entry).
   */
  upperCaseIds(kind: OwnedKind): IterableIterator<string> {
    return this.#table.ids(kind);
  }

  /** Number of owned objects of one kind, or of all (O(1)). */
  count(kind?: OwnedKind): number {
    return this.#table.count(kind);
  }

  /** Number of owned objects. */
  get size(): number {
    return this.#table.count();
  }

  /** Whether there are changes not yet written. */
  get dirty(): boolean {
    return this.#table.hasChanges();
  }

  /**
   * Write the changes since the last write, if any (with `force`, write the
   * whole record even when nothing changed): appended to the journal, or as
   * a compaction when one is due. Concurrent calls are serialized. Throws
   * when the files cannot be written (the changes stay pending so the next
   * flush tries again). A no-op for in-memory records. With
   * `unfingerprinted`, an append writes only the changes of objects owned
   * without a fingerprint (what {@link intend} must have on disk); the others
   * stay pending.
   */
  flush(force = false, unfingerprinted = false): Promise<void> {
    return this.#serialized(() => this.#write(force, unfingerprinted));
  }

  /**
   * Fold the journal into the record: write the whole record with the
   * pending changes when the journal holds entries or changes are pending
   * (the agent does this at stop, so the record alone is complete). Throws
   * like {@link flush}.
   */
  compact(): Promise<void> {
    return this.#serialized(() => {
      const needed = this.#table.hasChanges() || this.#journalEntries > 0 ||
        (this.#mustCompact && this.#generation !== undefined);
      return this.#write(needed);
    });
  }

  #serialized(fn: () => Promise<void>): Promise<void> {
    const next = this.#writing.then(fn);
    this.#writing = next.catch(() => {});
    return next;
  }

  /** When the journal is this long, the next write compacts instead. */
  #journalLimit(): number {
    return Math.max(this.#compactAfter, Math.ceil(this.size / 2));
  }

  /**
   * Write the pending changes: with `unfingerprinted`, only those of objects
   * owned without a fingerprint (what {@link intend} needs on disk) when they
   * can be appended; a compaction writes everything.
   */
  async #write(force: boolean, unfingerprinted = false): Promise<void> {
    if (this.path === null) {
      this.#table.takeChanges();
      return;
    }
    if (!this.#table.hasChanges() && !force) return;
    // Taken before the first await: later changes belong to the next write.
    const compact = force || this.#mustCompact;
    let batch = this.#table.takeChanges(unfingerprinted && !compact);
    try {
      if (compact || this.#journalEntries + batch.length > this.#journalLimit()) {
        // The whole record is written: every pending change with it.
        if (unfingerprinted && !compact) batch = batch.concat(this.#table.takeChanges());
        await this.#compactNow(this.path);
      } else {
        await this.#append(this.path, batch);
      }
    } catch (err) {
      // Not written: the batch stays pending, under the changes made since.
      for (const id of batch) this.#table.changed(id);
      throw err;
    }
  }

  /** Write the whole current state as the next generation's record, then its empty journal. */
  async #compactNow(path: string): Promise<void> {
    const generation = this.#generation === undefined ? firstGeneration() : this.#generation + 1;
    // The order is this state's; each line is read as its chunk is written. A change
    // made meanwhile is pending, so the next write puts it in the new journal too.
    const text = recordChunks(generation, this.#table);
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
  async #append(path: string, batch: readonly string[]): Promise<void> {
    // A failed append may leave a partial line: the next write starts a fresh journal.
    this.#mustCompact = true;
    // No create: the journal exists since the last compaction (if it was removed, compact).
    const file = await Deno.open(journalPath(path), { write: true, append: true });
    try {
      await writeChunks(file, journalChunks(batch, this.#table));
      await file.syncData();
    } finally {
      file.close();
    }
    this.#journalEntries += batch.length;
    this.#mustCompact = false;
  }
}

/** A fingerprint slot's value when the object has none. */
const NO_FP = -2;
/** A fingerprint slot's value when the fingerprint is kept as text (not a base-36 number). */
const TEXT_FP = -1;

/** A kind slot's value when the slot is free, and for each kind. */
const FREE = 0;
const LOAD_BALANCER = 1;
const ENDPOINT = 2;
const KINDS = [undefined, "LoadBalancer", "Endpoint"] as const;

/**
 * The owned objects, compactly: a {@link SlotIndex} from normalized ID to a
 * slot, and by slot the ID, the kind, the key and the fingerprint as a number
 * (payload.ts writes a 53-bit hash in base 36, which a double holds exactly;
 * any other text is kept apart as it is). The ID as given is kept only where
 * it differs from its normalized form. No object or Map entry per owned
 * object: one cell in each slot array and in the index's table. A slot freed
 * by a removal is reused, so the table's order is its slots' (a load keeps
 * the file's order).
 *
 * It also keeps which objects changed since the changes were last taken
 * ({@link changed}, {@link takeChanges}), in the order of their first change:
 * a list of slots (owned objects) and IDs (objects no longer owned), with a
 * mark per slot and a set of those IDs so that each is taken once. What is
 * written for a change is the object's state when the changes are taken
 * (owned: an add; not: a remove), i.e. its last change.
 */
class OwnedTable {
  /** Normalized ID → slot, objects of both kinds. */
  readonly #slots: SlotIndex;
  /** Slot → {@link LOAD_BALANCER}, {@link ENDPOINT}, or {@link FREE}. */
  #kinds: Uint8Array;
  #keys: (string | undefined)[];
  /** Slot → normalized ID (the Map's own key string). */
  #ids: (string | undefined)[];
  #fps: Float64Array;
  readonly #textFps = new Map<number, string>();
  readonly #spelled = new Map<string, string>();
  readonly #free: number[] = [];
  /** Slots ever used: the free ones among them are in {@link #free}. */
  #end = 0;
  readonly #counts = [0, 0, 0];
  /**
   * What changed, in the order of the first change: the slot of an owned
   * object, or the normalized ID of one dropped (and maybe owned again since).
   * A slot entry may be stale (unmarked since): it is then skipped. It holds
   * each change once, however often an object is dropped and owned again.
   */
  #changes: (number | string)[] = [];
  /** Slot → 1 when its object's change is listed in {@link #changes} and not yet taken. */
  #marked: Uint8Array;
  /** Normalized IDs dropped since the changes were taken (listed by ID in {@link #changes}). */
  #deleted = new Set<string>();
  /** The normalized ID last found by {@link slot} and its slot (forgotten when it is dropped). */
  #lastId: string | undefined;
  #lastSlot = -1;

  /**
   * An empty table; `capacity` is the objects expected (e.g. a record's, by
   * its size), so that a load fills it without growing it step by step.
   */
  constructor(capacity = 0) {
    const slots = Math.max(64, capacity);
    this.#slots = new SlotIndex((slot) => this.#ids[slot]!, capacity);
    this.#keys = new Array(slots);
    this.#ids = new Array(slots);
    this.#kinds = new Uint8Array(slots);
    this.#fps = new Float64Array(slots).fill(NO_FP);
    this.#marked = new Uint8Array(slots);
  }

  /** The slot of the object with this normalized ID, if owned. */
  slot(id: string): number | undefined {
    // The same ID is often asked for again at once (its spelling, then a handle on it).
    if (id === this.#lastId) return this.#lastSlot;
    const slot = this.#find(id);
    if (slot !== undefined) {
      this.#lastId = this.#ids[slot];
      this.#lastSlot = slot;
    }
    return slot;
  }

  /** The kind of the owned object with this normalized ID, if any. */
  kindOf(id: string): OwnedKind | undefined {
    const slot = this.slot(id);
    return slot === undefined ? undefined : KINDS[this.#kinds[slot]];
  }

  /** The key in a slot. */
  key(slot: number): string {
    return this.#keys[slot]!;
  }

  /** The kind in a slot ({@link LOAD_BALANCER} or {@link ENDPOINT}). */
  kindAt(slot: number): number {
    return this.#kinds[slot];
  }

  /** Keep `key` as the key string of a slot when it equals the one kept. */
  shareKey(slot: number, key: string): void {
    if (this.#keys[slot] === key) this.#keys[slot] = key;
  }

  /** The fingerprint in a slot as its number, or {@link TEXT_FP} or {@link NO_FP}. */
  fingerprintValue(slot: number): number {
    return this.#fps[slot];
  }

  /** Whether a slot holds this fingerprint. */
  hasFingerprint(slot: number, fp: string): boolean {
    const n = fingerprintNumber(fp);
    return this.#fps[slot] === n && (n !== TEXT_FP || this.#textFps.get(slot) === fp);
  }

  /** The fingerprint in a slot, if any. */
  fingerprint(slot: number): string | undefined {
    const n = this.#fps[slot];
    return n >= 0 ? n.toString(36) : n === TEXT_FP ? this.#textFps.get(slot) : undefined;
  }

  /** The ID as given of the object with this normalized ID. */
  spelling(id: string): string {
    return this.#spelled.size === 0 ? id : this.#spelled.get(id) ?? id;
  }

  /** The ID as given of the object in a slot (the table's own string). */
  spellingAt(slot: number): string {
    return this.spelling(this.#ids[slot]!);
  }

  /**
   * Own `object` under its normalized ID, replacing what was owned under it;
   * its slot when that changed anything (kind, key or fingerprint: the ID's
   * spelling alone is no change, and is then left as it was), else -1.
   */
  put(id: string, object: OwnedObject): number {
    const fp = object.fp;
    return this.putNumbered(id, object, fp === undefined ? NO_FP : fingerprintNumber(fp), fp);
  }

  /**
   * {@link put} with the fingerprint given as its number `fp`
   * ({@link fingerprintNumber}; {@link NO_FP} for none) and `text`, its text
   * when that is {@link TEXT_FP}; `object.fp` is not read.
   */
  putNumbered(id: string, object: OwnedObject, fp: number, text: string | undefined): number {
    const kind = object.kind === "LoadBalancer" ? LOAD_BALANCER : ENDPOINT;
    const hash = idHash(id);
    let slot = this.#find(id, hash);
    if (slot !== undefined) {
      if (
        this.#kinds[slot] === kind && this.#keys[slot] === object.key && this.#fps[slot] === fp &&
        (fp !== TEXT_FP || this.#textFps.get(slot) === text)
      ) return -1;
      this.#counts[this.#kinds[slot]]--;
    } else {
      slot = this.#newSlot();
      this.#ids[slot] = id;
      this.#slots.insert(id, slot, hash);
    }
    this.#kinds[slot] = kind;
    this.#counts[kind]++;
    this.#keys[slot] = object.key;
    this.#setFingerprintNumber(slot, fp, text);
    if (object.id !== id) this.#spelled.set(id, object.id);
    else if (this.#spelled.size > 0) this.#spelled.delete(id);
    return slot;
  }

  /** Forget the object with this normalized ID; false when it was not owned. */
  delete(id: string): boolean {
    const slot = this.#slots.remove(id);
    if (slot < 0) return false;
    if (slot === this.#lastSlot) this.#lastId = undefined;
    this.#counts[this.#kinds[slot]]--;
    this.#kinds[slot] = FREE;
    // Its change (if listed) is now a removal; the slot's next object is another.
    this.#marked[slot] = 0;
    this.#keys[slot] = undefined;
    this.#ids[slot] = undefined;
    this.#setFingerprint(slot, undefined);
    if (this.#spelled.size > 0) this.#spelled.delete(id);
    this.#free.push(slot);
    return true;
  }

  /** Drop the fingerprint of the object with this normalized ID; whether it had one. */
  dropFingerprint(id: string): boolean {
    const slot = this.slot(id);
    if (slot === undefined || this.#fps[slot] === NO_FP) return false;
    this.#setFingerprint(slot, undefined);
    return true;
  }

  /** Note that the object with this normalized ID changed (owned now or not). */
  changed(id: string): void {
    // Listed by its ID since it was dropped (owned again or not): listed once.
    if (this.#deleted.size > 0 && this.#deleted.has(id)) return;
    const slot = this.#find(id);
    if (slot === undefined) {
      this.#deleted.add(id);
      this.#changes.push(id);
    } else if (this.#marked[slot] === 0) {
      this.#marked[slot] = 1;
      this.#changes.push(slot);
    }
  }

  /** {@link changed} for an owned object whose slot is known (no lookup). */
  changedAt(id: string, slot: number): void {
    if (this.#deleted.size > 0 && this.#deleted.has(id)) return;
    if (this.#marked[slot] === 0) {
      this.#marked[slot] = 1;
      this.#changes.push(slot);
    }
  }

  /** Whether anything changed since the changes were last taken. */
  hasChanges(): boolean {
    return this.#changes.length > 0;
  }

  /**
   * The normalized IDs that changed, each once, in the order of their first
   * change; from now on none has. With `unfingerprinted`, only those of
   * objects now owned without a fingerprint: the others stay pending.
   */
  takeChanges(unfingerprinted = false): string[] {
    const changes = this.#changes;
    // Made at its largest and cut to what it holds, the pending ones kept in place, and
    // walked by index: a start takes tens of thousands of changes, an array grown by push
    // leaves its outgrown stores behind, and without TurboFan (lib/v8_flags.ts) a for-of loop
    // allocates an iterator result per element.
    const out: string[] = new Array(changes.length);
    let taken = 0;
    let kept = 0;
    for (let c = 0; c < changes.length; c++) {
      const change = changes[c];
      if (typeof change === "string") {
        if (!this.#deleted.has(change)) continue;
        if (unfingerprinted && !this.#unfingerprinted(this.#find(change))) {
          changes[kept++] = change;
          continue;
        }
        this.#deleted.delete(change);
        out[taken++] = change;
      } else if (this.#marked[change] === 1) {
        if (unfingerprinted && !this.#unfingerprinted(change)) {
          changes[kept++] = change;
          continue;
        }
        this.#marked[change] = 0;
        out[taken++] = this.#ids[change]!;
      }
    }
    // What stays pending keeps its order, at the front of the same array.
    if (kept === 0) this.#changes = [];
    else changes.length = kept;
    out.length = taken;
    return out;
  }

  /** Whether a slot holds an owned object without a fingerprint. */
  #unfingerprinted(slot: number | undefined): boolean {
    return slot !== undefined && this.#kinds[slot] !== FREE && this.#fps[slot] === NO_FP;
  }

  /** The owned object with this normalized ID, if any (a fresh object each call). */
  object(id: string): OwnedObject | undefined {
    const slot = this.#find(id);
    if (slot === undefined) return undefined;
    const object: OwnedObject = {
      kind: KINDS[this.#kinds[slot]]!,
      id: this.spelling(id),
      key: this.#keys[slot]!,
    };
    const fp = this.fingerprint(slot);
    if (fp !== undefined) object.fp = fp;
    return object;
  }

  /**
   * The slot of the object `id` names by `slot` when it is still there (no
   * lookup), else the slot the table finds for `id`; -1 when not owned.
   */
  slotOf(slot: number, id: string): number {
    return this.#ids[slot] === id ? slot : this.#find(id) ?? -1;
  }

  /**
   * Most bytes the record entry in a slot takes as UTF-8 after a prefix of
   * at most {@link ENTRY_PREFIX_MAX} characters: JSON writes a UTF-16 unit
   * of a string in at most 6 bytes (`\u001f`, a lone surrogate).
   */
  entryBound(slot: number): number {
    const text = this.#fps[slot] === TEXT_FP ? this.#textFps.get(slot)!.length : 0;
    return ENTRY_FIXED_MAX + 6 * (this.spellingAt(slot).length + this.#keys[slot]!.length + text);
  }

  /**
   * The owned object in a slot as the JSON text of its record entry, after
   * `prefix` (e.g. a journal line's op): the text `JSON.stringify` gives for
   * {@link object}'s result, without making it.
   */
  entryTextAt(slot: number, prefix: string): string {
    const n = this.#fps[slot];
    const fp = n >= 0
      ? `,"fp":"${n.toString(36)}"`
      : n === TEXT_FP
      ? `,"fp":${JSON.stringify(this.#textFps.get(slot))}`
      : "";
    return `{${prefix}"kind":"${KINDS[this.#kinds[slot]]}","id":${
      JSON.stringify(this.spellingAt(slot))
    },"key":${JSON.stringify(this.#keys[slot])}${fp}}`;
  }

  /**
   * {@link entryTextAt}'s text written as UTF-8 to `out`, which must have
   * {@link entryBound} bytes of room: no string is made.
   */
  writeEntry(out: JsonBytes, slot: number, prefix: string): void {
    out.ascii("{");
    out.ascii(prefix);
    out.ascii(
      this.#kinds[slot] === LOAD_BALANCER
        ? `"kind":"LoadBalancer","id":`
        : `"kind":"Endpoint","id":`,
    );
    out.json(this.spellingAt(slot));
    out.ascii(`,"key":`);
    out.json(this.#keys[slot]!);
    const n = this.#fps[slot];
    if (n >= 0) {
      out.ascii(`,"fp":"`);
      out.base36(n);
      out.ascii(`"`);
    } else if (n === TEXT_FP) {
      out.ascii(`,"fp":`);
      out.json(this.#textFps.get(slot)!);
    }
    out.ascii("}");
  }

  /**
   * The normalized IDs, optionally of one kind, read live (no copy, no
   * object per entry): an object owned throughout is visited once, one owned
   * or dropped meanwhile may or may not be.
   */
  *ids(kind?: OwnedKind): IterableIterator<string> {
    const want = kind === undefined ? FREE : kind === "LoadBalancer" ? LOAD_BALANCER : ENDPOINT;
    for (let slot = 0; slot < this.#end; slot++) {
      const k = this.#kinds[slot];
      if (want === FREE ? k !== FREE : k === want) yield this.#ids[slot]!;
    }
  }

  /** The slots of the owned objects, in order, and their normalized IDs. */
  snapshot(): { slots: Int32Array; ids: string[] } {
    const slots = new Int32Array(this.#slots.size);
    const ids: string[] = new Array(slots.length);
    let n = 0;
    for (let slot = 0; slot < this.#end && n < slots.length; slot++) {
      if (this.#kinds[slot] === FREE) continue;
      slots[n] = slot;
      ids[n++] = this.#ids[slot]!;
    }
    return { slots, ids };
  }

  /** Number of owned objects, optionally of one kind. */
  count(kind?: OwnedKind): number {
    return kind === "LoadBalancer"
      ? this.#counts[LOAD_BALANCER]
      : kind === "Endpoint"
      ? this.#counts[ENDPOINT]
      : this.#slots.size;
  }

  /** The slot of the object with this normalized ID, if owned. */
  #find(id: string, hash = idHash(id)): number | undefined {
    const slot = this.#slots.find(id, hash);
    return slot < 0 ? undefined : slot;
  }

  /**
   * Make room for `n` more owned objects at once: adding them then grows
   * nothing step by step (a cold start owns tens of thousands, and each step
   * would leave its outgrown arrays behind as garbage).
   */
  reserve(n: number): void {
    const slots = this.#end + Math.max(0, n - this.#free.length);
    // Doubled until it fits, as adding one at a time grows it: reserving one more object at
    // a time (a change's create) then costs a copy of the table only at each doubling.
    let capacity = this.#fps.length;
    while (capacity < slots) capacity *= 2;
    if (capacity > this.#fps.length) this.#resize(capacity);
    this.#slots.reserve(this.#slots.size + n, capacity);
  }

  /** Objects the table holds without growing. */
  get capacity(): number {
    return this.#fps.length;
  }

  #newSlot(): number {
    const reused = this.#free.pop();
    if (reused !== undefined) return reused;
    const slot = this.#end++;
    if (slot === this.#fps.length) this.#resize(slot * 2);
    return slot;
  }

  /** Grow every per-slot array to `slots` slots. */
  #resize(slots: number): void {
    const end = this.#end;
    const fps = new Float64Array(slots).fill(NO_FP);
    fps.set(this.#fps.subarray(0, Math.min(end, this.#fps.length)));
    this.#fps = fps;
    const kinds = new Uint8Array(slots);
    kinds.set(this.#kinds.subarray(0, Math.min(end, this.#kinds.length)));
    this.#kinds = kinds;
    const marked = new Uint8Array(slots);
    marked.set(this.#marked.subarray(0, Math.min(end, this.#marked.length)));
    this.#marked = marked;
    // Made at their full length, as the constructor makes them: V8 would otherwise grow
    // them itself, by half at a time, as slots past their end are written.
    const keys: (string | undefined)[] = new Array(slots);
    const ids: (string | undefined)[] = new Array(slots);
    for (let slot = 0; slot < end; slot++) {
      keys[slot] = this.#keys[slot];
      ids[slot] = this.#ids[slot];
    }
    this.#keys = keys;
    this.#ids = ids;
  }

  #setFingerprint(slot: number, fp: string | undefined): void {
    this.#setFingerprintNumber(slot, fp === undefined ? NO_FP : fingerprintNumber(fp), fp);
  }

  /** Set a slot's fingerprint as its number, `text` its text when that is {@link TEXT_FP}. */
  #setFingerprintNumber(slot: number, n: number, text: string | undefined): void {
    if (this.#fps[slot] === TEXT_FP) this.#textFps.delete(slot);
    this.#fps[slot] = n;
    if (n === TEXT_FP) this.#textFps.set(slot, text!);
  }
}

/**
 * A fingerprint as the number it spells in base 36 (the form payload.ts
 * writes), or {@link TEXT_FP} when it is not exactly such a spelling.
 */
function fingerprintNumber(fp: string): number {
  // Digits 0-9 a-z, no leading zero, at most 11 of them, a safe integer: exactly
  // the spellings Number#toString(36) gives (parsed here rather than by parseInt
  // and a round trip, which allocate).
  const length = fp.length;
  if (length === 0 || length > 11 || (length > 1 && fp.charCodeAt(0) === 48)) return TEXT_FP;
  let n = 0;
  for (let i = 0; i < length; i++) {
    const c = fp.charCodeAt(i);
    const digit = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 122 ? c - 87 : -1;
    if (digit < 0) return TEXT_FP;
    n = n * 36 + digit;
  }
  return n <= Number.MAX_SAFE_INTEGER ? n : TEXT_FP;
}

/**
 * Write `text` (or its chunks, text or UTF-8 bytes, one after the other) to
 * `path` atomically: temp file in the same directory, fsync, rename.
 */
export async function writeAtomic(
  path: string,
  text: string | Iterable<string | Uint8Array>,
): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    await writeChunks(file, typeof text === "string" ? [text] : text);
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

/**
 * Write `chunks` to `file` in order: bytes as they are (each written before
 * the next is taken), text encoded as UTF-8 into one buffer reused for every
 * piece, so that a file of many chunks allocates no buffer per chunk.
 */
async function writeChunks(
  file: Deno.FsFile,
  chunks: Iterable<string | Uint8Array>,
): Promise<void> {
  let out: EncodedChunks | undefined;
  for (const chunk of chunks) {
    if (typeof chunk !== "string") {
      await writeAll(file, chunk);
      continue;
    }
    out ??= new EncodedChunks();
    for (const bytes of out.encode(chunk)) await writeAll(file, bytes);
  }
}

/** Text encoded as UTF-8 into one buffer, reused for every piece. */
class EncodedChunks {
  readonly #encoder = new TextEncoder();
  readonly #buffer = new Uint8Array(ENCODE_BUFFER);

  /** The UTF-8 bytes of `text`, in views of the one buffer, each valid until the next is taken. */
  *encode(text: string): Generator<Uint8Array> {
    // encodeInto stops before a character that does not fit (a pair is never split): a
    // buffer of more than 4 bytes always makes progress.
    let rest = text;
    while (rest.length > 0) {
      const { read, written } = this.#encoder.encodeInto(rest, this.#buffer);
      yield this.#buffer.subarray(0, written);
      rest = rest.slice(read);
    }
  }
}

/** Bytes of {@link EncodedChunks}' buffer. */
const ENCODE_BUFFER = 256 * 1024;

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

/**
 * The record file's bytes (UTF-8), in pieces of up to {@link ENCODE_BUFFER}
 * bytes (views of one buffer, each valid until the next is taken): one
 * object per line, so large records stay cheap to write and diff, and a load
 * can read them a line at a time. Objects are in the table's order (see
 * `OwnedTable`) as it is when this starts; each is read (or skipped, when no
 * longer owned) as its piece is made. Entries are written as bytes, not made
 * as strings: a record of tens of thousands of objects is written at a
 * start's memory peaks, and strings per entry would be most of what it
 * allocates. An entry too large for the buffer comes as its text.
 */
function* recordChunks(generation: number, table: OwnedTable): Generator<Uint8Array | string> {
  const { slots, ids } = table.snapshot();
  const out = new JsonBytes();
  out.ascii(`{"version":${OWNERSHIP_FORMAT_VERSION},"generation":${generation},"objects":[`);
  let none = true;
  for (let i = 0; i < ids.length; i++) {
    const slot = table.slotOf(slots[i], ids[i]);
    if (slot < 0) continue;
    const lead = none ? "\n" : ",\n";
    none = false;
    const bound = lead.length + table.entryBound(slot);
    if (out.room < bound && out.length > 0) yield out.take();
    if (out.room < bound) {
      yield lead + table.entryTextAt(slot, "");
      continue;
    }
    out.ascii(lead);
    table.writeEntry(out, slot, "");
  }
  const end = none ? "]}\n" : "\n]}\n";
  if (out.room < end.length) yield out.take();
  out.ascii(end);
  yield out.take();
}

/** A journal line's prefix of an add. */
const ADD_PREFIX = `"op":"add",`;

/**
 * The journal lines of `batch` (IDs of changed objects) as UTF-8, in pieces
 * as {@link recordChunks} makes them: an add per object now owned, a removal
 * per one not.
 */
function* journalChunks(
  batch: readonly string[],
  table: OwnedTable,
): Generator<Uint8Array | string> {
  const out = new JsonBytes();
  for (let b = 0; b < batch.length; b++) {
    const id = batch[b];
    const slot = table.slot(id);
    if (slot === undefined) {
      const line = JSON.stringify({ op: "remove", id: id.toLowerCase() }) + "\n";
      // UTF-8 takes at most 3 bytes per UTF-16 unit.
      if (out.room < 3 * line.length && out.length > 0) yield out.take();
      if (out.room < 3 * line.length) yield line;
      else out.text(line);
      continue;
    }
    const bound = table.entryBound(slot) + 1;
    if (out.room < bound && out.length > 0) yield out.take();
    if (out.room < bound) {
      yield table.entryTextAt(slot, ADD_PREFIX) + "\n";
      continue;
    }
    table.writeEntry(out, slot, ADD_PREFIX);
    out.ascii("\n");
  }
  if (out.length > 0) yield out.take();
}

/** Longest prefix {@link OwnedTable.writeEntry} is given ({@link ADD_PREFIX}). */
const ENTRY_PREFIX_MAX = 16;

/** Most bytes of an entry besides its strings' characters: its fixed text, prefix, quotes and a fingerprint number. */
const ENTRY_FIXED_MAX = 80 + ENTRY_PREFIX_MAX;

/**
 * UTF-8 bytes of JSON text written into one buffer, reused for every piece
 * taken: plain ASCII is copied a character at a time, so writing an entry
 * makes no string. The caller keeps within {@link JsonBytes.room}.
 */
class JsonBytes {
  readonly #buffer = new Uint8Array(ENCODE_BUFFER);
  readonly #encoder = new TextEncoder();
  #length = 0;

  /** Bytes written and not yet taken. */
  get length(): number {
    return this.#length;
  }

  /** Bytes that can still be written before the next take. */
  get room(): number {
    return this.#buffer.length - this.#length;
  }

  /** The bytes written since the last take, as a view valid until the next write; empties the buffer. */
  take(): Uint8Array {
    const bytes = this.#buffer.subarray(0, this.#length);
    this.#length = 0;
    return bytes;
  }

  /** Text of ASCII characters only (the format's own text), as it is. */
  ascii(text: string): void {
    const buffer = this.#buffer;
    let n = this.#length;
    for (let i = 0; i < text.length; i++) buffer[n++] = text.charCodeAt(i);
    this.#length = n;
  }

  /** Any text, as it is. */
  text(text: string): void {
    this.#length += this.#encoder.encodeInto(text, this.#buffer.subarray(this.#length)).written;
  }

  /** `text` as a JSON string, as `JSON.stringify` writes it. */
  json(text: string): void {
    const buffer = this.#buffer;
    let n = this.#length;
    buffer[n++] = 34; // "
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      // Anything JSON escapes, or that UTF-8 writes in more than a byte.
      if (c < 0x20 || c > 0x7e || c === 34 || c === 92) return this.text(JSON.stringify(text));
      buffer[n++] = c;
    }
    buffer[n++] = 34;
    this.#length = n;
  }

  /** A non-negative safe integer in base 36, as `Number#toString(36)` writes it. */
  base36(value: number): void {
    let digits = 1;
    for (let rest = Math.floor(value / 36); rest > 0; rest = Math.floor(rest / 36)) digits++;
    const buffer = this.#buffer;
    let rest = value;
    for (let i = this.#length + digits - 1; i >= this.#length; i--) {
      const digit = rest % 36;
      buffer[i] = digit < 10 ? 48 + digit : 87 + digit;
      rest = Math.floor(rest / 36);
    }
    this.#length += digits;
  }
}

function journalHeader(generation: number): string {
  return JSON.stringify({ version: OWNERSHIP_FORMAT_VERSION, generation }) + "\n";
}

interface ParsedRecord {
  /** The format version. */
  version: number;
  /** Undefined for format 1, which had no journal. */
  generation: number | undefined;
  /** The well-formed entries. */
  table: OwnedTable;
  skipped: unknown[];
}

/**
 * Read and parse the record (format 1 to 3); a string result explains why it
 * is unusable. A record laid out as {@link recordChunks} writes it (one object
 * per line) is read in chunks and parsed a line at a time, straight into the
 * table, so the file is never in memory whole, as text or as objects; any
 * other layout is read and parsed whole. Throws when the file cannot be read.
 */
async function readRecord(path: string): Promise<ParsedRecord | string> {
  const file = await Deno.open(path, { read: true });
  let lines: RecordLines;
  try {
    const size = (await file.stat()).size;
    lines = new RecordLines(Math.min(MAX_PRESIZE, Math.floor(size / RECORD_BYTES_PER_ENTRY)));
    const decoder = new TextDecoder();
    const chunk = new Uint8Array(RECORD_CHUNK);
    let carry = "";
    for (let n = await file.read(chunk); n !== null && lines.fits; n = await file.read(chunk)) {
      const text = carry + decoder.decode(chunk.subarray(0, n), { stream: true });
      let at = 0;
      for (let end = text.indexOf("\n"); end >= 0 && lines.fits; end = text.indexOf("\n", at)) {
        lines.line(text.slice(at, end));
        at = end + 1;
      }
      carry = text.slice(at);
    }
    if (lines.fits) lines.line(carry + decoder.decode());
  } finally {
    file.close();
  }
  return lines.result() ?? parseRecordText(await Deno.readTextFile(path));
}

/** Bytes read at a time by {@link readRecord}. */
const RECORD_CHUNK = 64 * 1024;

/**
 * About the fewest bytes of a record line (a GUID, a key of a few addresses,
 * a fingerprint): a record's size divided by it is the table's first capacity.
 */
const RECORD_BYTES_PER_ENTRY = 100;

/** Most entries a table is sized for up front (a larger record grows it as it loads). */
const MAX_PRESIZE = 256 * 1024;

/** The record's header fields checked, or why they are unusable. */
function recordHead(data: unknown): Omit<ParsedRecord, "table" | "skipped"> | string {
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    return "not a JSON object";
  }
  const { version, generation } = data as { version?: unknown; generation?: unknown };
  if (version !== 1 && version !== 2 && version !== OWNERSHIP_FORMAT_VERSION) {
    return `unsupported version ${
      JSON.stringify(version)
    } (expected 1 to ${OWNERSHIP_FORMAT_VERSION})`;
  }
  if (version !== 1 && !isGeneration(generation)) {
    return `"generation" is not a non-negative integer`;
  }
  return { version, generation: version === 1 ? undefined : generation as number };
}

/** Parse the whole text at once (any layout). */
function parseRecordText(text: string): ParsedRecord | string {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    return `not JSON (${errorMessage(err)})`;
  }
  const head = recordHead(data);
  if (typeof head === "string") return head;
  const { objects } = data as { objects?: unknown };
  if (!Array.isArray(objects)) return `"objects" is not an array`;
  const result: ParsedRecord = { ...head, table: new OwnedTable(), skipped: [] };
  for (const entry of objects) addEntry(result, entry);
  return result;
}

/**
 * A record of {@link recordChunks}'s layout parsed a line at a time: the header
 * line, one entry per line (each but the last followed by a comma), and the
 * closing line. Once a line does not fit that layout it stops (then the
 * whole-text parse decides, and names any error).
 */
class RecordLines {
  /** Whether every line so far fits the layout. */
  fits = true;
  #parsed: ParsedRecord | undefined;
  #entries = 0;
  #comma = false;
  #closed = false;
  readonly #capacity: number;

  /** Lines of a record of about `capacity` entries. */
  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  /** Take the next line (without its newline). */
  line(line: string): void {
    if (!this.fits) return;
    const parsed = this.#parsed;
    if (parsed === undefined) {
      const head = line.startsWith("{") && line.endsWith(`"objects":[`)
        ? recordHead(parseJson(line + "]}"))
        : "not the layout";
      if (typeof head === "string") this.fits = false;
      else this.#parsed = { ...head, table: new OwnedTable(this.#capacity), skipped: [] };
    } else if (this.#closed) {
      if (line.trim() !== "") this.fits = false;
    } else if (line === "]}") {
      if (this.#comma) this.fits = false;
      this.#closed = true;
    } else {
      if (this.#entries > 0 && !this.#comma) this.fits = false;
      this.#comma = line.endsWith(",");
      const entry = parseJson(this.#comma ? line.slice(0, -1) : line);
      if (entry === undefined) this.fits = false;
      else addEntry(parsed, entry);
      this.#entries++;
    }
  }

  /** The record, when all of it fitted the layout. */
  result(): ParsedRecord | undefined {
    return this.fits && this.#closed ? this.#parsed : undefined;
  }
}

/** Put a record entry into the table, or note it as skipped when malformed. */
function addEntry(result: ParsedRecord, entry: unknown): void {
  if (isOwnedObject(entry)) result.table.put(normalizeId(entry.id), entry);
  else result.skipped.push(entry);
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
  objects: OwnedTable,
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
      objects.put(normalizeId(entry.id), entry);
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

/** Upper case: HNS spells GUIDs so, and `toUpperCase` then returns the string itself. */
function normalizeId(id: string): string {
  return id.toUpperCase();
}

function compareObjects(a: OwnedObject, b: OwnedObject): number {
  if (a.kind !== b.kind) return a.kind < b.kind ? 1 : -1; // LoadBalancer before Endpoint
  if (a.key !== b.key) return a.key < b.key ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}
