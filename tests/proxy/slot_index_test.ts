import * as assert from "node:assert/strict";
import { idHash, SlotIndex, SlotMap, SlotStringMap } from "../../lib/proxy/slot_index.ts";

/** A deterministic pseudo-random sequence (xorshift32). */
function random(seed: number): () => number {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

function guid(n: number): string {
  const hex = (n * 2654435761 >>> 0).toString(16).toUpperCase().padStart(8, "0");
  return `${hex}-0000-4000-8000-${String(n).padStart(12, "0")}`;
}

/**
 * A SlotIndex beside a Map model of it, slots allocated as its callers do
 * (freed ones first): each operation is made on both and checked against the
 * model.
 */
class ModelledIndex {
  readonly ids: (string | undefined)[] = [];
  readonly index = new SlotIndex((slot) => this.ids[slot]!);
  readonly model = new Map<string, number>();
  readonly #free: number[] = [];

  /** Index `id` in a free slot, unless it is indexed already. */
  insert(id: string): void {
    if (this.model.has(id)) return;
    const slot = this.#free.pop() ?? this.ids.length;
    this.ids[slot] = id;
    this.index.insert(id, slot);
    this.model.set(id, slot);
  }

  /** Remove `id`; `where` names the step in a failure. */
  remove(id: string, where: string): void {
    const slot = this.index.remove(id);
    assert.equal(slot, this.model.get(id) ?? -1, `remove ${id} at ${where}`);
    if (slot < 0) return;
    this.ids[slot] = undefined;
    this.#free.push(slot);
    this.model.delete(id);
  }

  /** Find `id`; `where` names the step in a failure. */
  find(id: string, where: string): void {
    assert.equal(this.index.find(id), this.model.get(id) ?? -1, `find ${id} at ${where}`);
  }

  /** Every ID of the model found in its slot, and as many in the index. */
  checkAll(): void {
    assert.equal(this.index.size, this.model.size);
    for (const [id, slot] of this.model) assert.equal(this.index.find(id), slot);
  }
}

Deno.test("slot index: finds, inserts and removes as a Map does, through growth and long probe runs", () => {
  for (const seed of [1, 2, 3]) {
    const next = random(seed);
    const m = new ModelledIndex();
    for (let step = 0; step < 20_000; step++) {
      // Few distinct IDs at first (many removes of present IDs), more later (growth).
      const id = guid(Math.floor(next() * (step < 10_000 ? 300 : 5_000)));
      const r = next();
      if (r < 0.55) m.insert(id);
      else if (r < 0.85) m.remove(id, `step ${step}`);
      else m.find(id, `step ${step}`);
      assert.equal(m.index.size, m.model.size);
    }
    m.checkAll();
    assert.equal(m.index.find("not there"), -1);
  }
});

Deno.test("slot index: room reserved at any point keeps every ID found; inserts past it grow on", () => {
  const next = random(7);
  const m = new ModelledIndex();
  for (let step = 0; step < 30_000; step++) {
    if (next() < 0.002) {
      // For more entries and slots than come, or fewer (then inserts grow the index again).
      m.index.reserve(
        m.model.size + Math.floor(next() * 6_000),
        m.ids.length + Math.floor(next() * 6_000),
      );
    }
    const id = guid(Math.floor(next() * 12_000));
    const r = next();
    if (r < 0.6) m.insert(id);
    else if (r < 0.8) m.remove(id, `step ${step}`);
    else m.find(id, `step ${step}`);
  }
  m.checkAll();
});

Deno.test("slot index: IDs whose hashes collide are told apart, and removing one keeps the rest found", () => {
  // Every ID in one home cell: a single probe run through the whole table.
  const ids = Array.from({ length: 11 }, (_, i) => `id-${i}`);
  const cells = 16;
  const home = (id: string) => idHash(id) & (cells - 1);
  const colliding: string[] = [];
  for (let n = 0; colliding.length < 11; n++) {
    const id = `x${n}`;
    if (home(id) === home(ids[0])) colliding.push(id);
  }
  const index = new SlotIndex((slot) => colliding[slot], 11);
  colliding.forEach((id, slot) => index.insert(id, slot));
  for (const [slot, id] of colliding.entries()) assert.equal(index.find(id), slot);
  for (const gone of [0, 5, 10, 1]) {
    assert.equal(index.remove(colliding[gone]), gone);
    assert.equal(index.find(colliding[gone]), -1);
    assert.equal(index.remove(colliding[gone]), -1);
  }
  for (const [slot, id] of colliding.entries()) {
    if (![0, 5, 10, 1].includes(slot)) assert.equal(index.find(id), slot, id);
  }
  assert.equal(index.size, 7);
  index.clear();
  assert.equal(index.size, 0);
  assert.equal(index.find(colliding[2]), -1);
});

Deno.test("slot index: IDs with the same home cell and hash bits in their cells are told apart by their IDs, through growth", () => {
  // A cell keeps 8 bits of its ID's hash: these IDs agree in those and in
  // their home cell of a 16-cell table, so only their IDs tell them apart.
  const cellBits = (id: string) => idHash(id) & 0xff00000f;
  const alike: string[] = [];
  for (let n = 0; alike.length < 8; n++) {
    const id = `y${n}`;
    if (alike.length === 0 || cellBits(id) === cellBits(alike[0])) alike.push(id);
  }
  const ids = [...alike];
  const index = new SlotIndex((slot) => ids[slot]);
  alike.forEach((id, slot) => index.insert(id, slot));
  for (const [slot, id] of alike.entries()) assert.equal(index.find(id), slot);
  assert.equal(index.remove(alike[3]), 3);
  assert.equal(index.find(alike[3]), -1);
  // Growth re-places every cell from the kept hashes (16 cells → 4,096).
  for (let n = 0; n < 2_000; n++) {
    ids.push(guid(n));
    index.insert(guid(n), ids.length - 1);
  }
  for (const [slot, id] of alike.entries()) assert.equal(index.find(id), slot === 3 ? -1 : slot);
  for (let n = 0; n < 2_000; n++) assert.equal(index.find(guid(n)), alike.length + n);
  assert.equal(index.size, 2_007);
});

Deno.test("slot index: a slot past what a cell can hold is refused, naming the ID", () => {
  const index = new SlotIndex(() => "A");
  assert.throws(() => index.insert("A", 0xffffff), /slot 16777215 of A is too large/);
  assert.equal(index.size, 0);
  assert.equal(index.find("A"), -1);
});

Deno.test("slot map: a Map of values that carry their ID; iteration is live and visits a value present throughout once", () => {
  const map = new SlotMap<{ id: string; n: number }>((v) => v.id);
  for (let n = 0; n < 1000; n++) map.set(guid(n), { id: guid(n), n });
  assert.equal(map.size, 1000);
  assert.equal(map.get(guid(7))?.n, 7);
  map.set(guid(7), { id: guid(7), n: -7 });
  assert.equal(map.get(guid(7))?.n, -7);
  assert.equal(map.size, 1000);
  assert.ok(map.delete(guid(8)));
  assert.ok(!map.delete(guid(8)));
  assert.ok(!map.has(guid(8)) && map.has(guid(9)));

  // Entries dropped and added while iterating: those present throughout are seen once.
  const seen = new Map<string, number>();
  let added = 1000;
  for (const [id, value] of map) {
    assert.equal(value.id, id);
    seen.set(id, (seen.get(id) ?? 0) + 1);
    if (value.n % 3 === 0 && value.n < 999) map.delete(guid(value.n + 1));
    if (added < 1500) map.set(guid(added), { id: guid(added), n: added++ });
  }
  for (let n = 0; n < 1000; n++) {
    if (n === 8 || n % 3 === 1) continue; // dropped (maybe before they were reached)
    assert.equal(seen.get(guid(n)), 1, guid(n));
  }
  assert.equal(map.size, 1500 - 1 - 333);
  for (let n = 1000; n < 1500; n++) assert.equal(map.get(guid(n))?.n, n);
  assert.equal([...map.keys()].length, map.size);
  map.clear();
  assert.equal(map.size, 0);
  assert.deepEqual([...map.values()], []);
});

Deno.test("slot string map: gets, sets, replaces and deletes as a Map does, through growth and reuse of slots", () => {
  for (const seed of [7, 8, 9]) {
    const next = random(seed);
    const map = new SlotStringMap<string, number | string>();
    const model = new Map<string, number | string>();
    for (let step = 0; step < 20_000; step++) {
      // Service keys and IDs alike; few distinct at first, more later.
      const n = Math.floor(next() * (step < 10_000 ? 200 : 4_000));
      const key = n % 3 === 0 ? `ns-${n % 17}/svc-${n}` : guid(n);
      const r = next();
      if (r < 0.45) {
        const value = r < 0.2 ? `lb/${n}/${step}` : step;
        map.set(key, value);
        model.set(key, value);
      } else if (r < 0.75) {
        assert.equal(map.delete(key), model.delete(key), `delete ${key} at step ${step}`);
      } else if (r < 0.999) {
        assert.equal(map.get(key), model.get(key), `get ${key} at step ${step}`);
        assert.equal(map.has(key), model.has(key), `has ${key} at step ${step}`);
      } else {
        map.clear();
        model.clear();
      }
      assert.equal(map.size, model.size);
      if (step % 997 === 0) {
        assert.deepEqual(sortedEntries(map), sortedEntries(model), `step ${step}`);
      }
    }
    assert.deepEqual(sortedEntries(map), sortedEntries(model));
    assert.equal(map.get("not there"), undefined);
  }
});

function sortedEntries<V>(map: Iterable<[string, V]>): [string, V][] {
  return [...map].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0);
}

Deno.test("slot map subset: holds what two Maps would, its values leaving with the map's", () => {
  interface Obj {
    id: string;
    key: string;
  }
  for (const seed of [11, 12, 13]) {
    const next = random(seed);
    const map = new SlotMap<Obj>((o) => o.id);
    const subset = map.subset<string>((o) => o.key);
    // The reference: a Map by ID, and a Map by key of some of its values.
    const byId = new Map<string, Obj>();
    const byKey = new Map<string, Obj>();
    const leave = (o: Obj | undefined) => {
      if (o !== undefined && byKey.get(o.key) === o) byKey.delete(o.key);
    };
    for (let step = 0; step < 20_000; step++) {
      const scale = step < 10_000 ? 150 : 3_000;
      const id = guid(Math.floor(next() * scale));
      const key = `lb/tcp/10.96.${Math.floor(next() * scale)}:80`;
      const r = next();
      if (r < 0.3) {
        // A new object under an ID (a replaced one leaves the subset), or the same again.
        const old = byId.get(id);
        const o = old !== undefined && next() < 0.2 ? old : { id, key };
        if (o !== old) leave(old);
        map.set(id, o);
        byId.set(id, o);
      } else if (r < 0.5) {
        leave(byId.get(id));
        assert.equal(map.delete(id), byId.delete(id), `delete ${id} at step ${step}`);
      } else if (r < 0.7) {
        const o = byId.get(id);
        if (o === undefined) {
          assert.throws(() => subset.set(key, { id, key }), /not in its SlotMap/);
          continue;
        }
        subset.set(o.key, o);
        byKey.set(o.key, o);
      } else if (r < 0.8) {
        assert.equal(subset.delete(key), byKey.delete(key), `subset delete ${key} at step ${step}`);
      } else if (r < 0.9995) {
        assert.equal(subset.get(key), byKey.get(key), `get ${key} at step ${step}`);
        assert.equal(subset.has(key), byKey.has(key));
        assert.equal(map.get(id), byId.get(id), `map get ${id} at step ${step}`);
      } else {
        map.clear();
        byId.clear();
        byKey.clear();
      }
      assert.equal(subset.size, byKey.size, `subset size at step ${step}`);
      assert.equal(map.size, byId.size);
      if (step % 997 === 0) {
        assert.deepEqual(sortedEntries(subset), sortedEntries(byKey), `step ${step}`);
        assert.deepEqual(sortedEntries(map), sortedEntries(byId), `step ${step}`);
      }
    }
    assert.deepEqual(sortedEntries(subset), sortedEntries(byKey));
    assert.throws(() => map.subset((o) => o.key), /one subset/);
  }
});
