/**
 * The IDs of one Enumerate answer, held compactly: each GUID as four 32-bit
 * words in a typed array with an open-addressing index beside it, so that
 * tens of thousands of IDs cost the JS heap a few small objects (the arrays'
 * memory is outside it) and a lookup parses the GUID asked for instead of
 * hashing a string. IDs that are not GUIDs in the canonical 8-4-4-4-12 form
 * are kept as strings.
 *
 * Rules:
 * - IDs are in index form (upper case, as lib/proxy's `idKey`): a lookup matches a GUID whatever its
 *   case, and iteration yields GUIDs in upper case (HNS's spelling), other
 *   IDs upper-cased.
 * - An ID listed twice is held once.
 * - {@link IdListingData} is structured-cloneable: an HNS thread builds it
 *   from the answer (lib/hns/hcn_thread.ts) and hands over only that, its
 *   buffers transferred; {@link IdListing.from} wraps it without a copy.
 * - An answer still in the memory HNS put it in ({@link ListingAnswer}: a
 *   listing made from the event loop's thread) is read in place by
 *   {@link IdListing.read}, no string made of it, and freed once read; the
 *   read steps a {@link Pacer} per page scanned and per ID, so that it runs
 *   in slices between other work.
 *
 * @module
 */

import { HnsError, HResult } from "./errors.ts";
import { hcnFunctionName } from "./names.ts";
import type { HcnKind } from "./types.ts";
import { decodeWide, readWide } from "./wstr.ts";

/** Something that tells whether it holds an ID (index form: upper case): a listing or a Set. */
export interface IdLookup extends Iterable<string> {
  /** Whether `id` (index form: upper case) is held. */
  has(id: string): boolean;
  /** How many IDs are held. */
  readonly size: number;
  /** `has`, noting the ID found ({@link IdListing.touch}). */
  touch?(id: string): boolean;
  /** The IDs `touch` has not found, at least ({@link IdListing.untouched}). */
  untouched?(): Iterable<string>;
}

/** The data of an {@link IdListing}, as built where the answer was read. */
export interface IdListingData {
  /** GUIDs held, four words each (the first `count * 4` words). */
  words: Uint32Array;
  /** Open-addressing index: 1 + the GUID's number, 0 for a free slot; a power of two long. */
  index: Int32Array;
  /** GUIDs held. */
  count: number;
  /** IDs that are not canonical GUIDs (index form: upper case). */
  others: string[];
}

/**
 * An Enumerate answer still in the memory HNS handed it over in: a
 * NUL-terminated UTF-16 string the receiver must {@link ListingAnswer.release}
 * exactly once (it is not read after). {@link IdListing.read} does both.
 */
export interface ListingAnswer {
  /** The answer's first code unit; null for no answer (an empty listing). */
  readonly answer: Deno.PointerObject | null;
  /** Free the answer. */
  release(): void;
}

/** What {@link import("./types.ts").HcnApi.enumerateIds} answers: the listing's data, or the answer to read. */
export type IdListingAnswer = IdListingData | ListingAnswer;

/** Something that paces a loop: call `step` once per item; a promise means: await it first. */
export interface Pacer {
  /** Called once per item; a promise means: await it before the next item. */
  step(): Promise<void> | undefined;
}

/** UTF-16 code units of text. */
type Units = Uint16Array;
/** Text: a string, or its UTF-16 code units. */
type Text = string | Units;

/** The code unit at `i` of `t` (not a number past the end). */
function codeAt(t: Text, i: number): number {
  return typeof t === "string" ? t.charCodeAt(i) : t[i];
}

/** Hex digit values by char code, -1 for others. */
const HEX = new Int8Array(128).fill(-1);
for (let i = 0; i < 10; i++) HEX[48 + i] = i;
for (let i = 0; i < 6; i++) HEX[65 + i] = HEX[97 + i] = 10 + i;
const DIGITS = [..."0123456789ABCDEF"].map((c) => c.charCodeAt(0));
/** Where each hex digit of a GUID goes in its 36 characters, most significant first. */
const DIGIT_AT = [...Array(36).keys()].filter((i) => i !== 8 && i !== 13 && i !== 18 && i !== 23);

/** Words of the GUID parsed last (JS runs one thing at a time per thread). */
const scratch = new Uint32Array(4);
/** The code units of the ID looked up last. */
const idUnits = new Uint16Array(36);

/** Hex digits of `u[from, to)` into a 32-bit word, or -1 (as any negative) for a non-digit. */
function word(u: Units, from: number, to: number): number {
  let v = 0;
  let bad = 0;
  for (let i = from; i < to; i++) {
    const c = u[i];
    const d = HEX[c & 127] | (c >> 7 !== 0 ? -1 : 0);
    bad |= d;
    v = (v << 4) | (d & 15);
  }
  return bad < 0 ? -1 : v;
}

/** Parse a canonical GUID into {@link scratch}; false when `s` is not one. */
function parseGuid(s: string): boolean {
  return s.length === 36 && parseGuidIn(s, 0);
}

/** Parse the canonical GUID at `t[o, o + 36)` into {@link scratch}; false when there is none. */
function parseGuidIn(t: Text, o: number): boolean {
  if (o + 36 > t.length) return false;
  if (typeof t !== "string") return parseGuidAt(t, o);
  for (let i = 0; i < 36; i++) idUnits[i] = t.charCodeAt(o + i);
  return parseGuidAt(idUnits, 0);
}

/** Parse the canonical GUID at `u[o, o + 36)` into {@link scratch}; false when there is none. */
function parseGuidAt(u: Units, o: number): boolean {
  if (u[o + 8] !== 45 || u[o + 13] !== 45 || u[o + 18] !== 45 || u[o + 23] !== 45) return false;
  // Words as int32 (a GUID's upper bit makes them negative): -1 is a valid word, so each
  // part is checked for non-digits apart.
  const b1 = word(u, o + 9, o + 13);
  const b2 = word(u, o + 14, o + 18);
  const c1 = word(u, o + 19, o + 23);
  const c2 = word(u, o + 24, o + 28);
  if ((b1 | b2 | c1 | c2) < 0 || !digits(u, o, o + 8) || !digits(u, o + 28, o + 36)) return false;
  scratch[0] = word(u, o, o + 8);
  scratch[1] = (b1 << 16) | b2;
  scratch[2] = (c1 << 16) | c2;
  scratch[3] = word(u, o + 28, o + 36);
  return true;
}

/** Whether `u[from, to)` holds hex digits only. */
function digits(u: Units, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = u[i];
    if (c > 127 || HEX[c] < 0) return false;
  }
  return true;
}

function hash(w0: number, w1: number, w2: number, w3: number): number {
  let h = Math.imul(w0 ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(w1, 0xc2b2ae35) ^
    Math.imul(w2, 0x27d4eb2f) ^ w3;
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  return h ^ (h >>> 13);
}

/** The slot of the GUID in {@link scratch}: where it is, or the free slot where it would go. */
function slotOf(words: Uint32Array, index: Int32Array): number {
  const mask = index.length - 1;
  const w0 = scratch[0], w1 = scratch[1], w2 = scratch[2], w3 = scratch[3];
  for (let s = hash(w0, w1, w2, w3) & mask;; s = (s + 1) & mask) {
    const e = index[s];
    if (e === 0) return s;
    const o = (e - 1) * 4;
    if (words[o] === w0 && words[o + 1] === w1 && words[o + 2] === w2 && words[o + 3] === w3) {
      return s;
    }
  }
}

/** Builds {@link IdListingData} one ID at a time; `expected` sizes it (it grows past that). */
export class IdListingBuilder {
  #words: Uint32Array;
  #index: Int32Array;
  #count = 0;
  readonly #others = new Set<string>();

  constructor(expected = 0) {
    this.#words = new Uint32Array(Math.max(4, expected) * 4);
    this.#index = new Int32Array(capacityFor(expected));
  }

  /** Add one listed ID. */
  add(id: string): void {
    if (parseGuid(id)) this.#addParsed();
    else this.#others.add(id.toUpperCase());
  }

  /** Add the canonical GUID at `text[at, at + 36)`; false when there is none. */
  addGuidAt(text: Text, at: number): boolean {
    if (!parseGuidIn(text, at)) return false;
    this.#addParsed();
    return true;
  }

  /** Add the GUID in {@link scratch}. */
  #addParsed(): void {
    if (this.#count * 2 >= this.#index.length) this.#grow();
    const slot = slotOf(this.#words, this.#index);
    if (this.#index[slot] !== 0) return;
    if ((this.#count + 1) * 4 > this.#words.length) {
      const words = new Uint32Array(this.#words.length * 2);
      words.set(this.#words);
      this.#words = words;
    }
    this.#words.set(scratch, this.#count * 4);
    this.#index[slot] = ++this.#count;
  }

  /** The data built. */
  done(): IdListingData {
    return {
      words: this.#words,
      index: this.#index,
      count: this.#count,
      others: [...this.#others],
    };
  }

  #grow(): void {
    const index = new Int32Array(this.#index.length * 2);
    const mask = index.length - 1;
    const words = this.#words;
    for (let i = 0; i < this.#count; i++) {
      const o = i * 4;
      let s = hash(words[o], words[o + 1], words[o + 2], words[o + 3]) & mask;
      while (index[s] !== 0) s = (s + 1) & mask;
      index[s] = i + 1;
    }
    this.#index = index;
  }
}

/** Index slots for `n` IDs: a power of two, at most half full. */
function capacityFor(n: number): number {
  let c = 16;
  while (c < n * 2) c *= 2;
  return c;
}

/**
 * The data of a listing from an Enumerate answer (a JSON array of IDs).
 * Throws a SyntaxError when it is not one.
 */
export function idListingFromText(text: string): IdListingData {
  const reader = new GuidArrayReader(text);
  while (reader.next());
  return reader.done() ?? idListingFromJson(text);
}

/** The data of a listing from a JSON array of IDs, by JSON.parse; a SyntaxError when it is not one. */
function idListingFromJson(text: string): IdListingData {
  const all: unknown = JSON.parse(text === "" ? "[]" : text);
  if (!Array.isArray(all)) throw new SyntaxError("not a JSON array");
  const builder = new IdListingBuilder(all.length);
  for (const id of all) {
    if (typeof id !== "string") throw new SyntaxError("not an ID");
    builder.add(id);
  }
  return builder.done();
}

/**
 * Reads HNS's usual answer, a JSON array of canonical GUIDs with nothing but
 * whitespace between the tokens, from its code units directly (no string per
 * ID), one ID per {@link next}; any other text is left to JSON.parse.
 */
class GuidArrayReader {
  readonly #u: Text;
  readonly #builder: IdListingBuilder;
  #i: number;
  /** 1: an ID is next; 0: read to its end; -1: not such an answer. */
  #state: number;

  constructor(u: Text) {
    this.#u = u;
    this.#builder = new IdListingBuilder(Math.floor(u.length / 39));
    const open = blank(u, 0);
    this.#i = blank(u, open + 1);
    this.#state = codeAt(u, open) !== 91 ? -1 : codeAt(u, this.#i) === 93 ? this.#end(this.#i) : 1; // [ ]
  }

  /** Read the next ID; false once the answer is read (or found not to be such). */
  next(): boolean {
    if (this.#state !== 1) return false;
    const u = this.#u;
    const at = this.#i;
    // "GUID"
    if (codeAt(u, at) !== 34 || codeAt(u, at + 37) !== 34 || !this.#builder.addGuidAt(u, at + 1)) {
      this.#state = -1;
      return false;
    }
    const i = blank(u, at + 38);
    if (codeAt(u, i) === 44) { // ,
      this.#i = blank(u, i + 1);
      return true;
    }
    this.#state = codeAt(u, i) === 93 ? this.#end(i) : -1; // ]
    return false;
  }

  /** The state after the closing bracket at `i`: the answer ends there, but for whitespace. */
  #end(i: number): number {
    return blank(this.#u, i + 1) === this.#u.length ? 0 : -1;
  }

  /** The listing read; undefined when the answer is not such (or not read to its end). */
  done(): IdListingData | undefined {
    return this.#state === 0 ? this.#builder.done() : undefined;
  }
}

/** The index of the first non-whitespace character (JSON's) at or after `i`, or the end. */
function blank(u: Text, i: number): number {
  for (; i < u.length; i++) {
    const c = codeAt(u, i);
    if (c !== 32 && c !== 10 && c !== 13 && c !== 9) return i;
  }
  return u.length;
}

/** Bytes in the smallest memory page of the platforms Deno runs on. */
const PAGE = 4096;

/**
 * The length in code units of the NUL-terminated UTF-16 answer at `ptr` (2-byte aligned),
 * scanned a page per step of `pace`: the page holding the current position
 * is mapped (the answer is there), and the scan never reads past the page
 * in which the terminator lies.
 */
async function answerLength(ptr: Deno.PointerObject, pace?: Pacer): Promise<number> {
  const address = BigInt(Deno.UnsafePointer.value(ptr));
  const first = PAGE - Number(address % BigInt(PAGE));
  for (let offset = 0, span = first;; offset += span, span = PAGE) {
    const units = new Uint16Array(Deno.UnsafePointerView.getArrayBuffer(ptr, span, offset));
    const at = units.indexOf(0);
    if (at >= 0) return offset / 2 + at;
    const wait = pace?.step();
    if (wait) await wait;
  }
}

/** Whether `data` is an answer still to read ({@link ListingAnswer}). */
function isListingAnswer(data: IdListingAnswer): data is ListingAnswer {
  return typeof (data as ListingAnswer).release === "function";
}

/**
 * The listing of an Enumerate answer of `kind`; an answer that is not a
 * JSON array of IDs is an {@link HnsError} INVALID_JSON naming the call.
 */
export function idListingOfAnswer(kind: HcnKind, text: string): IdListingData {
  try {
    return idListingFromText(text);
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
    throw invalidListing(kind, text);
  }
}

/** The error of an Enumerate answer that is not a JSON array of IDs. */
export function invalidListing(kind: HcnKind, text: string): HnsError {
  return new HnsError({
    hresult: HResult.INVALID_JSON,
    operation: hcnFunctionName("enumerate", kind),
    hnsMessage: `expected a JSON array of IDs, got ${text.slice(0, 200)}`,
  });
}

/** The buffers of `data`, to transfer rather than copy it to another thread. */
export function idListingBuffers(data: IdListingData): ArrayBuffer[] {
  return [data.words.buffer as ArrayBuffer, data.index.buffer as ArrayBuffer];
}

/** Whether `value` is {@link IdListingData} (as an HNS thread answers a listing). */
export function isIdListingData(value: unknown): value is IdListingData {
  const v = value as IdListingData | null;
  return typeof v === "object" && v !== null && v.words instanceof Uint32Array &&
    v.index instanceof Int32Array && typeof v.count === "number" && Array.isArray(v.others);
}

/** A listing's IDs; see the module notes. */
export class IdListing implements IdLookup {
  readonly #words: Uint32Array;
  readonly #index: Int32Array;
  readonly #count: number;
  readonly #others: ReadonlySet<string>;
  /** Per GUID: whether {@link touch} found it. */
  #touched: Uint8Array | undefined;

  private constructor(data: IdListingData) {
    this.#words = data.words;
    this.#index = data.index;
    this.#count = data.count;
    this.#others = new Set(data.others);
  }

  /** The listing of `data` (not copied). */
  static from(data: IdListingData): IdListing {
    return new IdListing(data);
  }

  /**
   * The listing of what an Enumerate of `kind` answered: its data, or the
   * answer itself, read in place a page and an ID per step of `pace` (in one
   * go without), then released, whatever happens. An answer that is not a
   * JSON array of IDs is an {@link HnsError} INVALID_JSON naming the call.
   */
  static async read(kind: HcnKind, data: IdListingAnswer, pace?: Pacer): Promise<IdListing> {
    if (!isListingAnswer(data)) return new IdListing(data);
    try {
      const ptr = data.answer;
      if (ptr && BigInt(Deno.UnsafePointer.value(ptr)) % 2n !== 0n) {
        // Not 2-byte aligned (never so for HNS strings): copied out as text, read in one go.
        return new IdListing(idListingOfAnswer(kind, readWide(ptr)));
      }
      const n = ptr ? await answerLength(ptr, pace) : 0;
      if (n === 0) return new IdListing(idListingOfAnswer(kind, ""));
      // A view of the answer where it is: valid until released below, not kept.
      const units = new Uint16Array(Deno.UnsafePointerView.getArrayBuffer(ptr!, n * 2));
      const reader = new GuidArrayReader(units);
      while (reader.next()) {
        const wait = pace?.step();
        if (wait) await wait;
      }
      return new IdListing(reader.done() ?? idListingOfAnswer(kind, decodeWide(units)));
    } finally {
      data.release();
    }
  }

  /** The listing of these IDs. */
  static of(ids: Iterable<string>): IdListing {
    const builder = new IdListingBuilder();
    for (const id of ids) builder.add(id);
    return new IdListing(builder.done());
  }

  get size(): number {
    return this.#count + this.#others.size;
  }

  has(id: string): boolean {
    if (!parseGuid(id)) return this.#others.has(id);
    return this.#index[slotOf(this.#words, this.#index)] !== 0;
  }

  /** {@link has}, noting a GUID found, so that {@link untouched} leaves it out. */
  touch(id: string): boolean {
    if (!parseGuid(id)) return this.#others.has(id);
    const e = this.#index[slotOf(this.#words, this.#index)];
    if (e === 0) return false;
    (this.#touched ??= new Uint8Array(this.#count))[e - 1] = 1;
    return true;
  }

  /** The IDs {@link touch} has not found (IDs that are not GUIDs: all of them). */
  *untouched(): IterableIterator<string> {
    const touched = this.#touched;
    for (let i = 0; i < this.#count; i++) {
      if (touched?.[i] !== 1) yield guidText(this.#words, i * 4);
    }
    yield* this.#others;
  }

  *[Symbol.iterator](): IterableIterator<string> {
    const words = this.#words;
    for (let i = 0; i < this.#count; i++) yield guidText(words, i * 4);
    yield* this.#others;
  }
}

/** Char codes of the GUID being formatted (dashes in place). */
const chars: number[] = Array.from({ length: 36 }, () => 45);

/** The GUID at `words[o, o + 4)`, upper case, as one flat string. */
function guidText(words: Uint32Array, o: number): string {
  let d = 0;
  for (let w = 0; w < 4; w++) {
    const v = words[o + w];
    for (let shift = 28; shift >= 0; shift -= 4) chars[DIGIT_AT[d++]] = DIGITS[(v >>> shift) & 15];
  }
  return String.fromCharCode.apply(null, chars);
}
