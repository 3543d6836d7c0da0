/**
 * The ownership record: a small JSON file listing the HNS objects hnsproxy
 * created (kind, HNS ID, stable key). hnsproxy deletes only what is listed
 * here, so a missing or unreadable record makes it own nothing and delete
 * nothing. Changes are collected in memory and written once per sync,
 * atomically (temp file, fsync, rename).
 *
 * File format (version 1):
 *
 * ```json
 * {"version":1,"objects":[{"kind":"LoadBalancer","id":"…","key":"lb/tcp/10.96.0.10:80"}]}
 * ```
 *
 * @module
 */

import { dirname } from "node:path";
import { type Logger, nullLogger } from "../log/types.ts";

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
}

/** Current file format version. */
export const OWNERSHIP_FORMAT_VERSION = 1;

/** Options for {@link OwnershipRecord.load}. */
export interface OwnershipLoadOptions {
  /** Logger for the load outcome (default: silent). */
  logger?: Logger;
}

/**
 * The set of HNS objects hnsproxy owns, backed by a file (or by nothing, for
 * tests and the `plan` command). IDs compare case-insensitively.
 */
export class OwnershipRecord {
  /** The backing file, or null for an in-memory record. */
  readonly path: string | null;
  /**
   * Why the file could not be used (corrupt, unreadable, unknown version),
   * or undefined when it loaded or did not exist. A record with a load
   * error starts empty; the unusable file is kept beside the new one as
   * `<path>.corrupt` on the first write.
   */
  readonly loadError?: string;

  readonly #objects = new Map<string, OwnedObject>();
  #dirty = false;
  #writing: Promise<void> = Promise.resolve();
  #preserveCorrupt: boolean;

  private constructor(path: string | null, objects: OwnedObject[], loadError?: string) {
    this.path = path;
    this.loadError = loadError;
    this.#preserveCorrupt = loadError !== undefined;
    for (const object of objects) this.#objects.set(normalizeId(object.id), { ...object });
  }

  /** An empty record that is never written anywhere. */
  static inMemory(objects: OwnedObject[] = []): OwnershipRecord {
    return new OwnershipRecord(null, objects);
  }

  /**
   * Load the record from `path`. A missing file is an empty record; a file
   * that cannot be read or parsed is logged as an error and gives an empty
   * record with {@link OwnershipRecord.loadError} set (own nothing, so
   * delete nothing). Never throws for file problems.
   */
  static async load(path: string, options: OwnershipLoadOptions = {}): Promise<OwnershipRecord> {
    const logger = options.logger ?? nullLogger;
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        logger.info("No ownership record yet; hnsproxy owns no HNS objects", { path });
        return new OwnershipRecord(path, []);
      }
      const problem = `cannot read ownership record ${path}: ${errorMessage(err)}`;
      logger.error("Ownership record unreadable; owning nothing, deleting nothing", {
        path,
        err: errorMessage(err),
      });
      return new OwnershipRecord(path, [], problem);
    }
    const parsed = parseRecord(text);
    if (typeof parsed === "string") {
      const problem = `corrupt ownership record ${path}: ${parsed}`;
      logger.error("Ownership record corrupt; owning nothing, deleting nothing", {
        path,
        problem: parsed,
      });
      return new OwnershipRecord(path, [], problem);
    }
    for (const skipped of parsed.skipped) {
      logger.warn("Skipping malformed entry in ownership record", { path, entry: skipped });
    }
    logger.info("Loaded ownership record", { path, objects: parsed.objects.length });
    return new OwnershipRecord(path, parsed.objects);
  }

  /** Whether hnsproxy owns the HNS object with this ID. */
  owns(id: string): boolean {
    return this.#objects.has(normalizeId(id));
  }

  /** The owned object with this ID, if any. */
  get(id: string): OwnedObject | undefined {
    return this.#objects.get(normalizeId(id));
  }

  /** Record that hnsproxy created (or adopted as its own) this object. */
  add(object: OwnedObject): void {
    const id = normalizeId(object.id);
    const old = this.#objects.get(id);
    if (old && old.kind === object.kind && old.key === object.key) return;
    this.#objects.set(id, { kind: object.kind, id: object.id, key: object.key });
    this.#dirty = true;
  }

  /** Forget an object (deleted, or vanished from HNS). */
  remove(id: string): void {
    if (this.#objects.delete(normalizeId(id))) this.#dirty = true;
  }

  /** All owned objects, optionally of one kind, sorted by kind then key then ID. */
  list(kind?: OwnedKind): OwnedObject[] {
    const all = [...this.#objects.values()].filter((o) => kind === undefined || o.kind === kind);
    return all.sort(compareObjects);
  }

  /** Number of owned objects. */
  get size(): number {
    return this.#objects.size;
  }

  /** Whether there are changes not yet written. */
  get dirty(): boolean {
    return this.#dirty;
  }

  /**
   * Write the record if it changed since the last write (or `force`), atomically:
   * a temp file beside it, fsync, rename over the old one. Concurrent calls
   * are serialized. Throws when the file cannot be written (the record stays
   * dirty so the next flush tries again). A no-op for in-memory records.
   */
  flush(force = false): Promise<void> {
    const next = this.#writing.then(() => this.#write(force));
    this.#writing = next.catch(() => {});
    return next;
  }

  /** The file contents for the current state. */
  serialize(): string {
    const body = { version: OWNERSHIP_FORMAT_VERSION, objects: this.list() };
    return JSON.stringify(body, null, 1) + "\n";
  }

  async #write(force: boolean): Promise<void> {
    if (this.path === null) {
      this.#dirty = false;
      return;
    }
    if (!this.#dirty && !force) return;
    const path = this.path;
    this.#dirty = false;
    const text = this.serialize();
    try {
      await Deno.mkdir(dirname(path), { recursive: true });
      if (this.#preserveCorrupt) {
        await Deno.rename(path, path + ".corrupt").catch(() => {});
        this.#preserveCorrupt = false;
      }
      await writeAtomic(path, text);
    } catch (err) {
      this.#dirty = true;
      throw err;
    }
  }
}

/** Write `text` to `path` atomically: temp file in the same directory, fsync, rename. */
export async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    const bytes = new TextEncoder().encode(text);
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
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

interface ParsedRecord {
  objects: OwnedObject[];
  skipped: unknown[];
}

/** Parse the file text; a string result explains why it is unusable. */
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
  const { version, objects } = data as { version?: unknown; objects?: unknown };
  if (version !== OWNERSHIP_FORMAT_VERSION) {
    return `unsupported version ${JSON.stringify(version)} (expected ${OWNERSHIP_FORMAT_VERSION})`;
  }
  if (!Array.isArray(objects)) return `"objects" is not an array`;
  const result: ParsedRecord = { objects: [], skipped: [] };
  for (const entry of objects) {
    if (isOwnedObject(entry)) {
      result.objects.push({ kind: entry.kind, id: entry.id, key: entry.key });
    } else {
      result.skipped.push(entry);
    }
  }
  return result;
}

function isOwnedObject(value: unknown): value is OwnedObject {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return (v.kind === "LoadBalancer" || v.kind === "Endpoint") &&
    typeof v.id === "string" && v.id.length > 0 && typeof v.key === "string";
}

function normalizeId(id: string): string {
  return id.toLowerCase();
}

function compareObjects(a: OwnedObject, b: OwnedObject): number {
  if (a.kind !== b.kind) return a.kind < b.kind ? 1 : -1; // LoadBalancer before Endpoint
  if (a.key !== b.key) return a.key < b.key ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
