/**
 * Compact indexes of HNS IDs for the tables that hold tens of thousands of
 * them (the ownership record, the observed cache).
 *
 * {@link SlotIndex} finds the slot (a small integer the caller allocates) of
 * an ID through one Int32Array: open addressing with linear probing and
 * backward-shift deletion (no tombstones), at most 3/4 full; each cell keeps
 * 8 bits of its ID's hash beside the slot, and each slot its whole hash in a
 * second Int32Array, so that growing the table or shifting an entry back
 * never reads an ID again. It holds no strings: the caller keeps each
 * slot's ID and gives it back through `idAt` (asked only when a cell's 8
 * bits match), so an index of n IDs costs 9-15 bytes per ID where a
 * `Map<string, …>` costs 28-56 (and a Map that doubles leaves its old table
 * behind as garbage).
 * {@link SlotMap} is a Map-like on top of it for values that carry their ID,
 * {@link SlotSubset} a second index of some of a SlotMap's values by another
 * key (in the SlotMap's slots), {@link SlotStringMap} one for any values.
 *
 * Rules: IDs compare exactly, so callers normalize them first (upper case);
 * `idAt(slot)` must give the slot's ID for as long as the slot is in the
 * index (remove it from the index before forgetting its ID); iteration is by
 * slot, read live, so an entry present throughout is visited once however
 * the map changes meanwhile (like a Map's), and an entry added or removed
 * meanwhile may or may not be.
 *
 * @module
 */

/** Most entries per table cell, as a fraction (3/4). */
const MAX_LOAD = 0.75;
/** The bits of a cell that hold its slot + 1; the top 8 hold its ID's hash's top 8. */
const SLOT_BITS = 0xffffff;
/** Slots an index can hold: a slot + 1 must fit {@link SLOT_BITS}. */
const MAX_SLOTS = SLOT_BITS;

/** A hash of an ID's UTF-16 code units (FNV-1a, then mixed so that its low bits vary too). */
export function idHash(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  return h ^ (h >>> 13);
}

/** The top 8 bits of `hash`, where a cell keeps them. */
function tagOf(hash: number): number {
  return hash & ~SLOT_BITS;
}

/** ID → slot, in typed arrays; see the module notes. */
export class SlotIndex {
  /**
   * Per cell, 0 when empty, else the slot + 1 in {@link SLOT_BITS} and the
   * top 8 bits of its ID's hash above them: most probes of other IDs stop
   * at the cell itself.
   */
  #table: Int32Array;
  #mask: number;
  #size = 0;
  /** Slot → its ID's {@link idHash}: a grow or a backward shift places it without its ID. */
  #hashes: Int32Array;
  readonly #idAt: (slot: number) => string;

  /**
   * An empty index; `idAt` gives the ID of a slot in it, `capacity` the
   * entries expected (it grows past that as needed).
   */
  constructor(idAt: (slot: number) => string, capacity = 0) {
    this.#idAt = idAt;
    const cells = cellsFor(capacity);
    this.#table = new Int32Array(cells);
    this.#mask = cells - 1;
    this.#hashes = new Int32Array(Math.max(16, capacity));
  }

  /** Number of IDs indexed. */
  get size(): number {
    return this.#size;
  }

  /** The slot of this ID, or -1; `hash` is its {@link idHash}. */
  find(id: string, hash = idHash(id)): number {
    const cell = this.#cellOf(id, hash);
    return cell < 0 ? -1 : (this.#table[cell] & SLOT_BITS) - 1;
  }

  /** The table cell that holds this ID, or -1; `hash` is its {@link idHash}. */
  #cellOf(id: string, hash: number): number {
    const t = this.#table;
    const tag = tagOf(hash);
    const mask = this.#mask;
    for (let i = hash & mask;; i = (i + 1) & mask) {
      const e = t[i];
      if (e === 0) return -1;
      if (tagOf(e) === tag && this.#idAt((e & SLOT_BITS) - 1) === id) return i;
    }
  }

  /**
   * Make room for `entries` IDs in all, in slots below `slots`, at once:
   * inserting up to that many then grows nothing. Grown as inserting grows
   * it (doubling), so that reserving a little at a time costs no more.
   */
  reserve(entries: number, slots = entries): void {
    if (entries > (this.#mask + 1) * MAX_LOAD) this.#grow(cellsFor(entries));
    this.#hashRoom(slots);
  }

  /** Keep the hashes of slots below `slots`, the array doubled until it fits. */
  #hashRoom(slots: number): void {
    if (slots <= this.#hashes.length) return;
    let length = this.#hashes.length;
    while (length < slots) length *= 2;
    const hashes = new Int32Array(length);
    hashes.set(this.#hashes);
    this.#hashes = hashes;
  }

  /** Index `slot` under `id`, which must not be indexed yet; `hash` is its {@link idHash}. */
  insert(id: string, slot: number, hash = idHash(id)): void {
    if (slot >= MAX_SLOTS) throw new RangeError(`SlotIndex: slot ${slot} of ${id} is too large`);
    if (this.#size + 1 > (this.#mask + 1) * MAX_LOAD) this.#grow();
    this.#hashRoom(slot + 1);
    this.#hashes[slot] = hash;
    this.#place(hash, tagOf(hash) | (slot + 1));
    this.#size++;
  }

  /** Take this ID out of the index; its slot, or -1 when it was not in it. */
  remove(id: string, hash = idHash(id)): number {
    let i = this.#cellOf(id, hash);
    if (i < 0) return -1;
    const t = this.#table;
    const hashes = this.#hashes;
    const mask = this.#mask;
    const slot = (t[i] & SLOT_BITS) - 1;
    // Backward shift: move up each later entry of the run that may sit at i.
    for (let j = (i + 1) & mask;; j = (j + 1) & mask) {
      const e = t[j];
      if (e === 0) break;
      const home = hashes[(e & SLOT_BITS) - 1] & mask;
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        t[i] = e;
        i = j;
      }
    }
    t[i] = 0;
    this.#size--;
    return slot;
  }

  /** Forget every ID. */
  clear(): void {
    this.#table = new Int32Array(cellsFor(0));
    this.#mask = this.#table.length - 1;
    this.#hashes = new Int32Array(16);
    this.#size = 0;
  }

  #place(hash: number, cell: number): void {
    const t = this.#table;
    const mask = this.#mask;
    let i = hash & mask;
    while (t[i] !== 0) i = (i + 1) & mask;
    t[i] = cell;
  }

  #grow(cells = this.#table.length * 2): void {
    const old = this.#table;
    const hashes = this.#hashes;
    this.#table = new Int32Array(cells);
    this.#mask = this.#table.length - 1;
    for (let i = 0; i < old.length; i++) {
      const e = old[i];
      if (e !== 0) this.#place(hashes[(e & SLOT_BITS) - 1], e);
    }
  }
}

/** Table cells (a power of two) for `entries` at most {@link MAX_LOAD} full. */
function cellsFor(entries: number): number {
  let cells = 16;
  while (entries > cells * MAX_LOAD) cells *= 2;
  return cells;
}

/**
 * Values by slot, found by key through a {@link SlotIndex}: what
 * {@link SlotMap} and {@link SlotStringMap} share. `keyAt(slot)` gives a
 * slot's key.
 */
abstract class SlotValues<K extends string, V> {
  protected readonly slotValues: (V | undefined)[] = [];
  protected readonly index = new SlotIndex((slot) => this.keyAt(slot));
  readonly #free: number[] = [];

  /** The key of a slot in the index. */
  protected abstract keyAt(slot: number): string;

  /** Number of entries. */
  get size(): number {
    return this.index.size;
  }

  /** The value under this key, if any. */
  get(key: K): V | undefined {
    const slot = this.index.find(key);
    return slot < 0 ? undefined : this.slotValues[slot];
  }

  /** Whether a value is kept under this key. */
  has(key: K): boolean {
    return this.index.find(key) >= 0;
  }

  /**
   * Keep `value` under `key`: in the slot of the key, after `replacing(slot)`,
   * or in a free slot, after `naming(slot)` (so that `keyAt` gives its key).
   */
  protected put(
    key: K,
    value: V,
    replacing?: (slot: number) => void,
    naming?: (slot: number) => void,
  ): void {
    const hash = idHash(key);
    const slot = this.index.find(key, hash);
    if (slot >= 0) {
      replacing?.(slot);
      this.slotValues[slot] = value;
      return;
    }
    const fresh = this.#free.pop() ?? this.slotValues.length;
    naming?.(fresh);
    this.slotValues[fresh] = value;
    this.index.insert(key, fresh, hash);
  }

  /** Free a slot taken out of the index. */
  protected release(slot: number): void {
    this.slotValues[slot] = undefined;
    this.#free.push(slot);
  }

  /** Drop every entry. */
  protected clearSlots(): void {
    this.index.clear();
    this.slotValues.length = 0;
    this.#free.length = 0;
  }
}

/** The keys of values that carry their key (`keyOf`), in the values' order. */
function* keysOf<K, V>(values: Iterable<V>, keyOf: (value: V) => K): MapIterator<K> {
  for (const value of values) yield keyOf(value);
}

/** The entries of values that carry their key (`keyOf`), in the values' order. */
function* entriesOf<K, V>(values: Iterable<V>, keyOf: (value: V) => K): MapIterator<[K, V]> {
  for (const value of values) yield [keyOf(value), value];
}

/**
 * A Map from a string key (an ID in normalized form, or a stable key) to a
 * value that carries it (`keyOf(value)` is its key): the values in an array
 * by slot, found through a {@link SlotIndex}. No entry object or table of
 * strings per key. It is a `ReadonlyMap` to readers; iteration is by slot.
 */
export class SlotMap<V, K extends string = string> extends SlotValues<K, V>
  implements ReadonlyMap<K, V> {
  readonly #keyOf: (value: V) => K;
  /** The {@link subset}, if one was made. */
  #subset: SlotSubset<V, string> | undefined;

  /** An empty map whose value `v` is kept under `keyOf(v)`. */
  constructor(keyOf: (value: V) => K) {
    super();
    this.#keyOf = keyOf;
  }

  protected keyAt(slot: number): string {
    return this.#keyOf(this.slotValues[slot]!);
  }

  /** Keep `value` under `key` (its `keyOf`), replacing what was under it. */
  set(key: K, value: V): this {
    this.put(key, value, (slot) => {
      if (this.slotValues[slot] !== value) this.#subset?.leave(slot);
    });
    return this;
  }

  /** Drop the value under this key; whether there was one. */
  delete(key: K): boolean {
    let slot: number;
    if (this.#subset === undefined) {
      slot = this.index.remove(key);
      if (slot < 0) return false;
    } else {
      slot = this.index.find(key);
      if (slot < 0) return false;
      this.#subset.leave(slot);
      this.index.remove(key);
    }
    this.release(slot);
    return true;
  }

  /** Drop everything. */
  clear(): void {
    this.#subset?.clear();
    this.clearSlots();
  }

  /**
   * A map of some of this map's values under another key (`keyOf2(v)`),
   * kept in this map's slots: one array of values for both. A value leaves
   * it when it leaves this map or is replaced in it. One per map.
   */
  subset<K2 extends string>(keyOf2: (value: V) => K2): SlotSubset<V, K2> {
    if (this.#subset !== undefined) throw new Error("a SlotMap has one subset");
    const subset = new SlotSubset<V, K2>(
      keyOf2,
      (slot) => this.slotValues[slot],
      (value) => {
        const slot = this.index.find(this.#keyOf(value));
        return slot >= 0 && this.slotValues[slot] === value ? slot : -1;
      },
      () => this.slotValues.length,
    );
    this.#subset = subset as unknown as SlotSubset<V, string>;
    return subset;
  }

  /** The values, by slot, read live (see the module notes). */
  *values(): MapIterator<V> {
    const values = this.slotValues;
    for (let slot = 0; slot < values.length; slot++) {
      const value = values[slot];
      if (value !== undefined) yield value;
    }
  }

  /** The keys, by slot, read live. */
  keys(): MapIterator<K> {
    return keysOf(this.values(), this.#keyOf);
  }

  /** The entries, by slot, read live. */
  entries(): MapIterator<[K, V]> {
    return entriesOf(this.values(), this.#keyOf);
  }

  /** The entries, by slot, read live. */
  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries();
  }

  /** `fn` for each entry, by slot, read live. */
  forEach(fn: (value: V, key: K, map: ReadonlyMap<K, V>) => void, thisArg?: unknown): void {
    for (const [key, value] of this.entries()) fn.call(thisArg, value, key, this);
  }
}

/**
 * Some of a {@link SlotMap}'s values by another key (see
 * {@link SlotMap.subset}): an index of their slots in the SlotMap, and a
 * flag per slot; no array of values of its own. A value is added by
 * {@link set} once it is in the SlotMap. It is a `ReadonlyMap` to readers;
 * iteration is by slot, read live.
 */
export class SlotSubset<V, K extends string> implements ReadonlyMap<K, V> {
  readonly #index: SlotIndex;
  #member = new Uint8Array(16);
  readonly #keyOf: (value: V) => K;
  readonly #valueAt: (slot: number) => V | undefined;
  readonly #slotOf: (value: V) => number;
  readonly #slots: () => number;

  /** Made by {@link SlotMap.subset} only. */
  constructor(
    keyOf: (value: V) => K,
    valueAt: (slot: number) => V | undefined,
    slotOf: (value: V) => number,
    slots: () => number,
  ) {
    this.#keyOf = keyOf;
    this.#valueAt = valueAt;
    this.#slotOf = slotOf;
    this.#slots = slots;
    this.#index = new SlotIndex((slot) => keyOf(valueAt(slot)!));
  }

  /** Number of entries. */
  get size(): number {
    return this.#index.size;
  }

  /** The value under this key, if any. */
  get(key: K): V | undefined {
    const slot = this.#index.find(key);
    return slot < 0 ? undefined : this.#valueAt(slot);
  }

  /** Whether a value is kept under this key. */
  has(key: K): boolean {
    return this.#index.find(key) >= 0;
  }

  /**
   * Keep `value`, which the SlotMap holds, under `key` (its `keyOf`),
   * replacing what was under it. Throws when the SlotMap does not hold it.
   */
  set(key: K, value: V): this {
    const slot = this.#slotOf(value);
    if (slot < 0) throw new Error(`SlotSubset: the value under ${key} is not in its SlotMap`);
    const hash = idHash(key);
    const held = this.#index.find(key, hash);
    if (held === slot) return this;
    if (held >= 0) this.delete(key);
    if (slot >= this.#member.length) {
      const member = new Uint8Array(Math.max(slot + 1, this.#member.length * 2));
      member.set(this.#member);
      this.#member = member;
    }
    this.#member[slot] = 1;
    this.#index.insert(key, slot, hash);
    return this;
  }

  /** Drop the value under this key (it stays in the SlotMap); whether there was one. */
  delete(key: K): boolean {
    const slot = this.#index.remove(key);
    if (slot < 0) return false;
    this.#member[slot] = 0;
    return true;
  }

  /** Drop the slot's value, if it is in this subset (the SlotMap is about to drop or replace it). */
  leave(slot: number): void {
    if (slot < this.#member.length && this.#member[slot] === 1) {
      this.delete(this.#keyOf(this.#valueAt(slot)!));
    }
  }

  /** Drop everything (the SlotMap keeps its values). */
  clear(): void {
    this.#index.clear();
    this.#member = new Uint8Array(16);
  }

  /** The values, by slot, read live (see the module notes). */
  *values(): MapIterator<V> {
    for (let slot = 0; slot < this.#slots(); slot++) {
      if (slot < this.#member.length && this.#member[slot] === 1) yield this.#valueAt(slot)!;
    }
  }

  /** The keys, by slot, read live. */
  keys(): MapIterator<K> {
    return keysOf(this.values(), this.#keyOf);
  }

  /** The entries, by slot, read live. */
  entries(): MapIterator<[K, V]> {
    return entriesOf(this.values(), this.#keyOf);
  }

  /** The entries, by slot, read live. */
  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries();
  }

  /** `fn` for each entry, by slot, read live. */
  forEach(fn: (value: V, key: K, map: ReadonlyMap<K, V>) => void, thisArg?: unknown): void {
    for (const [key, value] of this.entries()) fn.call(thisArg, value, key, this);
  }
}

/**
 * A Map from a string key to any value, for maps of tens of thousands of
 * entries: the keys and values in arrays by slot, found through a
 * {@link SlotIndex}. No entry per key: ~20-30 bytes per entry where a `Map`
 * takes ~45-56 (its table at the next power of two, three words per entry).
 * Iteration is by slot, read live (see the module notes), not in insertion
 * order.
 */
export class SlotStringMap<K extends string, V> extends SlotValues<K, V> {
  readonly #keys: (K | undefined)[] = [];

  protected keyAt(slot: number): string {
    return this.#keys[slot]!;
  }

  /** Keep `value` under `key`, replacing what was under it. */
  set(key: K, value: V): this {
    this.put(key, value, undefined, (slot) => this.#keys[slot] = key);
    return this;
  }

  /** Drop the entry under this key; whether there was one. */
  delete(key: K): boolean {
    const slot = this.index.remove(key);
    if (slot < 0) return false;
    this.#keys[slot] = undefined;
    this.release(slot);
    return true;
  }

  /** Drop everything. */
  clear(): void {
    this.clearSlots();
    this.#keys.length = 0;
  }

  /** The entries, by slot, read live. */
  *entries(): IterableIterator<[K, V]> {
    const keys = this.#keys;
    for (let slot = 0; slot < keys.length; slot++) {
      const key = keys[slot];
      if (key !== undefined) yield [key, this.slotValues[slot] as V];
    }
  }

  /** The entries, by slot, read live. */
  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries();
  }
}
