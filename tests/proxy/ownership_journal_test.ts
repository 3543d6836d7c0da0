import assert from "node:assert/strict";
import { join } from "node:path";
import {
  journalPath,
  type OwnedObject,
  OWNERSHIP_FORMAT_VERSION,
  OwnershipRecord,
  writeAtomic,
} from "../../lib/proxy/ownership.ts";
import { RecordingLogger } from "../kube/helpers.ts";

function ep(i: number): OwnedObject {
  return { kind: "Endpoint", id: `EP-${i}`, key: `ep/remote/10.0.0.${i}` };
}

function lb(i: number): OwnedObject {
  return { kind: "LoadBalancer", id: `LB-${i}`, key: `lb/tcp/10.96.0.${i}:80` };
}

async function withDir(fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(join(dir, "state.json"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The record file's objects, without the journal. */
async function recordFileObjects(path: string): Promise<OwnedObject[]> {
  return JSON.parse(await Deno.readTextFile(path)).objects;
}

async function journalLines(path: string): Promise<string[]> {
  return (await Deno.readTextFile(journalPath(path))).split("\n").filter((l) => l !== "");
}

/** The record at `path` written whole with LB-1, then EP-1 appended to its journal. */
async function recordWithJournal(path: string): Promise<OwnershipRecord> {
  const record = await OwnershipRecord.load(path);
  record.add(lb(1));
  await record.flush();
  record.add(ep(1));
  await record.flush();
  return record;
}

/** The record at `path` loaded with a logger, and the lines it logged. */
async function loadLogged(path: string) {
  const logger = new RecordingLogger();
  const loaded = await OwnershipRecord.load(path, { logger });
  return { loaded, lines: logger.lines };
}

Deno.test("ownership journal: a flush after the first appends only the changes; load replays them", async () => {
  await withDir(async (path) => {
    const record = await OwnershipRecord.load(path);
    for (let i = 0; i < 10; i++) record.add(ep(i));
    record.add(lb(1));
    await record.flush(); // no record yet: written whole
    assert.equal((await recordFileObjects(path)).length, 11);
    assert.equal((await journalLines(path)).length, 1, "a fresh journal: its header only");

    record.add(ep(10));
    record.remove("ep-0");
    record.add({ ...lb(1), key: "lb/tcp/10.96.0.1:81" }); // same ID, new key
    record.add(ep(5)); // unchanged: nothing to write
    await record.flush();
    assert.equal((await recordFileObjects(path)).length, 11, "the record file is not rewritten");
    const lines = await journalLines(path);
    assert.equal(lines.length, 1 + 3);
    assert.deepEqual(JSON.parse(lines[2]), { op: "remove", id: "ep-0" });

    const again = await OwnershipRecord.load(path);
    assert.deepEqual(again.list(), record.list());
    assert.equal(again.get("LB-1")?.key, "lb/tcp/10.96.0.1:81");
    assert.ok(!again.owns("EP-0"));
    assert.ok(again.owns("ep-10"));
  });
});

Deno.test("ownership journal: a crash before compaction (no stop) loses nothing written", async () => {
  await withDir(async (path) => {
    const first = await OwnershipRecord.load(path);
    first.add(lb(1));
    await first.flush();
    for (let round = 0; round < 5; round++) {
      first.add(ep(round));
      if (round > 0) first.remove(`EP-${round - 1}`);
      await first.flush();
    }
    // "Crash": the first instance is simply dropped, never compacted.
    const second = await OwnershipRecord.load(path);
    assert.deepEqual(second.list(), [lb(1), ep(4)]);
    // The second instance appends to the same journal and survives a crash too.
    second.add(ep(9));
    await second.flush();
    assert.equal((await recordFileObjects(path)).length, 1);
    assert.deepEqual((await OwnershipRecord.load(path)).list(), [lb(1), ep(4), ep(9)]);
  });
});

Deno.test("ownership journal: a torn last line is ignored, and the next write starts a fresh journal", async () => {
  await withDir(async (path) => {
    await recordWithJournal(path);
    // A crash in the middle of appending the next batch.
    await Deno.writeTextFile(journalPath(path), '{"op":"add","kind":"Endpoint","id":"EP-2"', {
      append: true,
    });
    const { loaded, lines } = await loadLogged(path);
    assert.equal(loaded.loadError, undefined);
    assert.deepEqual(loaded.list(), [lb(1), ep(1)]);
    assert.ok(lines.some((l) => l.level === "warn" && /incomplete last line/.test(l.message)));

    loaded.add(ep(3));
    await loaded.flush();
    assert.equal((await journalLines(path)).length, 1, "a fresh journal");
    assert.equal((await recordFileObjects(path)).length, 3, "compacted with the new change");
    assert.deepEqual((await OwnershipRecord.load(path)).list(), [lb(1), ep(1), ep(3)]);
  });
});

Deno.test("ownership journal: a malformed line in the middle is skipped with a warning", async () => {
  await withDir(async (path) => {
    const record = await recordWithJournal(path);
    await Deno.writeTextFile(journalPath(path), "garbage\n", { append: true });
    record.add(ep(2));
    await record.flush();
    const { loaded, lines } = await loadLogged(path);
    assert.deepEqual(loaded.list(), [lb(1), ep(1), ep(2)]);
    assert.ok(lines.some((l) => l.level === "warn" && l.fields?.entry === "garbage"));
  });
});

Deno.test("ownership journal: compacts once the journal passes the limit, and on compact()", async () => {
  await withDir(async (path) => {
    const record = await OwnershipRecord.load(path, { compactAfter: 3 });
    record.add(lb(1));
    await record.flush();
    record.add(ep(1));
    record.add(ep(2));
    await record.flush();
    assert.equal((await journalLines(path)).length, 1 + 2);
    record.add(ep(3));
    await record.flush();
    assert.equal((await journalLines(path)).length, 1 + 3);
    record.add(ep(4)); // the 4th entry would pass 3: compaction instead
    await record.flush();
    assert.equal((await journalLines(path)).length, 1);
    assert.equal((await recordFileObjects(path)).length, 5);

    record.remove("EP-4");
    await record.flush();
    assert.equal((await journalLines(path)).length, 2);
    await record.compact();
    assert.equal((await journalLines(path)).length, 1);
    assert.deepEqual(await recordFileObjects(path), [lb(1), ep(1), ep(2), ep(3)]);
    const before = await Deno.stat(path);
    await record.compact(); // nothing in the journal, nothing pending: no write
    assert.deepEqual((await Deno.stat(path)).mtime, before.mtime);
    assert.deepEqual((await OwnershipRecord.load(path)).list(), [lb(1), ep(1), ep(2), ep(3)]);
  });
});

Deno.test("ownership journal: a crash between the two writes of a compaction loses nothing", async () => {
  await withDir(async (path) => {
    const record = await OwnershipRecord.load(path);
    record.add(lb(1));
    record.add(ep(1));
    await record.flush();
    record.remove("EP-1");
    record.add(ep(2));
    await record.flush();
    const oldJournal = await Deno.readTextFile(journalPath(path));
    record.add(ep(1)); // back again after its removal in the old journal
    await record.compact();
    // The crash: the new record is in place, the old journal was not yet replaced.
    await Deno.writeTextFile(journalPath(path), oldJournal);
    const { loaded, lines } = await loadLogged(path);
    assert.deepEqual(loaded.list(), [lb(1), ep(1), ep(2)]);
    assert.ok(lines.some((l) => /older record; ignored/.test(l.message)));
    // And the next write does not append to the old journal.
    loaded.add(ep(3));
    await loaded.flush();
    assert.equal((await journalLines(path)).length, 1);
    assert.deepEqual((await OwnershipRecord.load(path)).list(), [lb(1), ep(1), ep(2), ep(3)]);
  });
});

Deno.test("ownership journal: a format 1 record loads, and the first write upgrades it", async () => {
  await withDir(async (path) => {
    await writeAtomic(path, JSON.stringify({ version: 1, objects: [lb(1), ep(1)] }, null, 1));
    // A journal cannot belong to a format 1 record; one lying about is not replayed.
    await Deno.writeTextFile(
      journalPath(path),
      '{"version":2,"generation":0}\n{"op":"add","kind":"Endpoint","id":"EP-7","key":"k"}\n',
    );
    const record = await OwnershipRecord.load(path);
    assert.equal(record.loadError, undefined);
    assert.deepEqual(record.list(), [lb(1), ep(1)]);
    record.add(ep(2));
    await record.flush();
    const saved = JSON.parse(await Deno.readTextFile(path));
    assert.equal(saved.version, OWNERSHIP_FORMAT_VERSION);
    assert.ok(Number.isSafeInteger(saved.generation));
    assert.deepEqual(saved.objects, [lb(1), ep(1), ep(2)]);
    assert.deepEqual((await OwnershipRecord.load(path)).list(), [lb(1), ep(1), ep(2)]);
  });
});

Deno.test("ownership journal: a journal without its record is not replayed", async () => {
  await withDir(async (path) => {
    await recordWithJournal(path);
    await Deno.remove(path);
    const loaded = await OwnershipRecord.load(path);
    assert.equal(loaded.size, 0, "no record: hnsproxy owns nothing");
    loaded.add(ep(2));
    await loaded.flush();
    assert.deepEqual((await OwnershipRecord.load(path)).list(), [ep(2)]);
  });
});

Deno.test("ownership journal: a corrupt record keeps its journal aside too", async () => {
  await withDir(async (path) => {
    await recordWithJournal(path);
    const journal = await Deno.readTextFile(journalPath(path));
    await Deno.writeTextFile(path, "{not json");
    const loaded = await OwnershipRecord.load(path);
    assert.match(loaded.loadError ?? "", /corrupt/);
    assert.equal(loaded.size, 0);
    loaded.add(ep(2));
    await loaded.flush();
    assert.equal(await Deno.readTextFile(path + ".corrupt"), "{not json");
    assert.equal(await Deno.readTextFile(journalPath(path) + ".corrupt"), journal);
    assert.deepEqual((await OwnershipRecord.load(path)).list(), [ep(2)]);
  });
});

Deno.test("ownership journal: counts per kind follow adds, re-keys and removes", () => {
  const record = OwnershipRecord.inMemory([lb(1), ep(1)]);
  assert.equal(record.count("LoadBalancer"), 1);
  assert.equal(record.count("Endpoint"), 1);
  record.add(lb(2));
  record.add({ ...ep(1), kind: "LoadBalancer" }); // same ID, other kind
  record.remove("EP-404");
  assert.equal(record.count("LoadBalancer"), 3);
  assert.equal(record.count("Endpoint"), 0);
  record.remove("lb-2");
  assert.equal(record.count("LoadBalancer"), 2);
  assert.equal(record.count(), 2);
  assert.deepEqual(
    [...record.values("LoadBalancer")].map((o) => o.id).sort(),
    ["EP-1", "LB-1"],
  );
});

Deno.test("ownership journal: changes made while a write is in flight are written by the next one", async () => {
  await withDir(async (path) => {
    const record = await OwnershipRecord.load(path);
    record.add(lb(1));
    const first = record.flush();
    await Promise.resolve();
    record.add(ep(1)); // the first write's batch may or may not hold it
    const second = record.flush();
    await Promise.all([first, second]);
    assert.equal(record.dirty, false);
    assert.deepEqual((await OwnershipRecord.load(path)).list(), [lb(1), ep(1)]);
  });
});

Deno.test("ownership journal: intend writes the objects and the dropped fingerprints before it returns; other changes wait", async () => {
  await withDir(async (path) => {
    const record = await OwnershipRecord.load(path);
    record.add(ep(1));
    record.add({ ...lb(7), fp: "abc" });
    await record.flush();
    record.remove("EP-1"); // a delete HNS confirmed, not yet written
    record.add({ ...ep(2), fp: "1x2y" }); // a create done, its fingerprint not yet written
    record.distrust(["LB-7"]); // about to be modified: must be on disk first
    await record.intend([lb(1), lb(2)]);
    const lines = await journalLines(path);
    assert.equal(lines.length, 1 + 3, "one append: the dropped fingerprint and both intents");
    const onDisk = await OwnershipRecord.load(path);
    assert.deepEqual(onDisk.list(), [lb(1), lb(2), lb(7), ep(1)]);
    assert.equal(record.dirty, true, "the removal and the fingerprint are still to write");

    await record.flush();
    assert.equal(record.dirty, false);
    assert.deepEqual((await OwnershipRecord.load(path)).list(), record.list());
    assert.deepEqual(record.list(), [lb(1), lb(2), lb(7), { ...ep(2), fp: "1x2y" }]);
  });
});

Deno.test("ownership journal: what an intend leaves pending is written by the next flush, in the order it changed", async () => {
  await withDir(async (path) => {
    const record = await OwnershipRecord.load(path);
    for (let i = 0; i < 6; i++) record.add(ep(i));
    await record.flush();
    // Interleaved: changes that wait for the next flush, and intents written at once.
    record.add({ ...ep(4), fp: "4" });
    record.remove("EP-1");
    record.add(lb(1));
    record.add({ ...ep(2), fp: "2" });
    await record.intend([lb(2), lb(3)]);
    const ids = async () => (await journalLines(path)).slice(1).map((l) => JSON.parse(l).id);
    assert.deepEqual(await ids(), ["LB-1", "LB-2", "LB-3"]);
    record.add({ ...ep(0), fp: "0" });
    await record.flush();
    assert.deepEqual(await ids(), ["LB-1", "LB-2", "LB-3", "EP-4", "ep-1", "EP-2", "EP-0"]);
    assert.deepEqual((await OwnershipRecord.load(path)).list(), record.list());
  });
});

Deno.test("ownership journal: an intend that compacts writes every pending change", async () => {
  await withDir(async (path) => {
    const record = await OwnershipRecord.load(path); // no record yet: the first write compacts
    record.add({ ...ep(1), fp: "1" });
    await record.intend([lb(1)]);
    assert.equal(record.dirty, false);
    assert.deepEqual((await recordFileObjects(path)).length, 2);
    assert.deepEqual((await OwnershipRecord.load(path)).list(), record.list());
  });
});

Deno.test("ownership journal: an intent that cannot be written is not listed and throws", async () => {
  await withDir(async (path) => {
    await Deno.writeTextFile(path + "-dir", "a file");
    const record = await OwnershipRecord.load(`${path}-dir/state.json`);
    await assert.rejects(() => record.intend([lb(1)]));
    assert.ok(!record.owns("LB-1"), "not on disk, so not to be created");
    assert.equal(record.size, 0);
  });
});

Deno.test("ownership journal: each changed object is written once per write, as it is at the write", async () => {
  await withDir(async (path) => {
    const record = await OwnershipRecord.load(path);
    for (let i = 0; i < 4; i++) record.add(ep(i));
    await record.flush(); // the first write: a record, and an empty journal
    // In one batch: a removal undone, a re-key of a removed ID, a freed slot taken by
    // another object, removals of unowned IDs, and the same object changed many times.
    for (let i = 0; i < 100; i++) {
      record.remove("EP-0");
      record.add({ ...ep(0), fp: String(i) });
    }
    record.add(ep(0));
    record.remove("ep-1");
    record.add(lb(9)); // takes EP-1's slot
    record.remove("EP-2");
    record.add({ ...ep(2), key: "ep/remote/10.0.0.99" });
    record.remove("EP-404");
    record.add({ ...ep(3), fp: "1" });
    record.add({ ...ep(3), fp: "2" });
    record.remove("LB-9");
    record.add({ ...lb(9), key: "lb/tcp/10.96.0.9:81" });
    record.add(ep(7));
    record.remove("EP-7"); // its slot stays free
    await record.flush();
    const entries = (await journalLines(path)).slice(1).map((l) => JSON.parse(l));
    const ids = entries.map((e) => e.id.toUpperCase());
    assert.deepEqual(
      [...ids].sort(),
      ["EP-0", "EP-1", "EP-2", "EP-3", "EP-7", "LB-9"],
      "each once",
    );
    assert.deepEqual(entries.find((e) => e.id === "ep-7"), { op: "remove", id: "ep-7" });
    assert.deepEqual(entries.find((e) => e.id === "ep-1"), { op: "remove", id: "ep-1" });
    assert.deepEqual(entries.find((e) => e.id === "EP-3"), { op: "add", ...ep(3), fp: "2" });
    assert.deepEqual(entries.find((e) => e.id === "LB-9"), {
      op: "add",
      ...lb(9),
      key: "lb/tcp/10.96.0.9:81",
    });
    const again = await OwnershipRecord.load(path);
    assert.equal(again.untrusted, undefined);
    assert.deepEqual(again.list(), record.list());
    assert.equal(again.get("EP-2")?.key, "ep/remote/10.0.0.99");
  });
});

Deno.test("ownership journal: record and journal entries are the JSON of their objects, as every version wrote them", async () => {
  await withDir(async (path) => {
    const odd = [
      {
        kind: "LoadBalancer" as const,
        id: 'lb-"quoted"\\',
        key: "lb/\u2028\n\t\u0001é€😀",
        fp: 'x"y',
      },
      { kind: "Endpoint" as const, id: "Ep-1", key: "ep/remote/10.0.0.1", fp: "2gosa7pa2gv" },
      { kind: "Endpoint" as const, id: "EP-2", key: "", fp: "" },
      { kind: "Endpoint" as const, id: "EP-3", key: "ep/remote/10.0.0.3" },
    ];
    const record = await OwnershipRecord.load(path);
    for (const o of odd) record.add(o);
    await record.flush(); // written whole
    const text = await Deno.readTextFile(path);
    const lines = text.split("\n");
    const body = lines.slice(1, -2).map((l) => l.replace(/,$/, ""));
    assert.deepEqual(
      [...body].sort(),
      odd.map((o) => JSON.stringify({ kind: o.kind, id: o.id, key: o.key, fp: o.fp })).sort(),
    );
    assert.equal(lines.at(-2), "]}");
    const again = await OwnershipRecord.load(path);
    assert.deepEqual(again.list(), record.list());

    again.add({ ...odd[0], key: 'lb/2"' });
    again.remove("ep-1");
    again.add({ kind: "Endpoint", id: "ep-4", key: "k\\" });
    await again.flush();
    assert.deepEqual((await journalLines(path)).slice(1), [
      JSON.stringify({ op: "add", kind: odd[0].kind, id: odd[0].id, key: 'lb/2"', fp: 'x"y' }),
      JSON.stringify({ op: "remove", id: "ep-1" }),
      JSON.stringify({ op: "add", kind: "Endpoint", id: "ep-4", key: "k\\" }),
    ]);
    assert.deepEqual((await OwnershipRecord.load(path)).list(), again.list());
  });
});

Deno.test("ownership journal: a record and a journal larger than the write buffer, with an entry larger than it, are written exactly", async () => {
  await withDir(async (path) => {
    // Fingerprints across base 36's digits and lengths; keys of every width of UTF-8.
    const fps = ["0", "z", "10", "zz", "2gosa7pa2gv", "1x2y3z", "abc", "9zz"];
    const keys = ["ep/remote/10.0.0.1", "é", "€", "😀", "\u0001", '"', "\\", ""];
    const objects: OwnedObject[] = [];
    for (let i = 0; i < 6000; i++) {
      objects.push({
        kind: i % 3 === 0 ? "LoadBalancer" : "Endpoint",
        id: `${(0x10000000 + i).toString(16).toUpperCase()}-1234-5678-9ABC-DEF012345678`,
        key: `${keys[i % keys.length]}/${i}`,
        ...(i % 5 === 4 ? {} : { fp: fps[i % fps.length] }),
      });
    }
    // Larger than the whole write buffer (256 KiB) even as one-byte characters.
    objects[3000] = { ...objects[3000], key: "k".repeat(300_000) + "é" };
    const expected = (o: OwnedObject, op?: string) =>
      JSON.stringify({ ...(op ? { op } : {}), kind: o.kind, id: o.id, key: o.key, fp: o.fp });

    const record = await OwnershipRecord.load(path);
    for (const o of objects.slice(0, 4000)) record.add(o);
    await record.flush(); // written whole
    const text = await Deno.readTextFile(path);
    assert.equal(
      text,
      `{"version":${OWNERSHIP_FORMAT_VERSION},"generation":${
        JSON.parse(text.slice(0, text.indexOf("\n")) + "]}").generation
      },"objects":[\n` + objects.slice(0, 4000).map((o) => expected(o)).join(",\n") + "\n]}\n",
    );

    for (const o of objects.slice(4000)) record.add(o);
    record.remove(objects[7].id);
    await record.flush(); // appended
    assert.deepEqual(
      (await journalLines(path)).slice(1),
      [
        ...objects.slice(4000).map((o) => expected(o, "add")),
        JSON.stringify({ op: "remove", id: objects[7].id.toLowerCase() }),
      ],
    );
    const again = await OwnershipRecord.load(path);
    assert.equal(again.untrusted, undefined);
    assert.deepEqual(again.list(), record.list());
  });
});

Deno.test("ownership journal: a record in the order earlier versions wrote (sorted) loads, and takes appends", async () => {
  await withDir(async (path) => {
    // As written by a version that sorted by kind, key, then ID.
    await Deno.writeTextFile(
      path,
      `{"version":${OWNERSHIP_FORMAT_VERSION},"generation":7,"objects":[\n` +
        `{"kind":"LoadBalancer","id":"LB-2","key":"lb/tcp/10.96.0.1:80","fp":"1"},\n` +
        `{"kind":"LoadBalancer","id":"LB-1","key":"lb/tcp/10.96.0.2:80","fp":"2"},\n` +
        `{"kind":"Endpoint","id":"EP-1","key":"ep/remote/10.0.0.1","fp":"3"}\n]}\n`,
    );
    await Deno.writeTextFile(
      journalPath(path),
      `{"version":${OWNERSHIP_FORMAT_VERSION},"generation":7}\n` +
        `{"op":"remove","id":"lb-2"}\n`,
    );
    const record = await OwnershipRecord.load(path);
    assert.equal(record.untrusted, undefined);
    assert.deepEqual(record.list(), [
      { ...lb(1), key: "lb/tcp/10.96.0.2:80", fp: "2" },
      { ...ep(1), fp: "3" },
    ]);
    record.add(ep(2));
    await record.flush();
    assert.equal((await journalLines(path)).length, 3, "appended to the same journal");
    assert.deepEqual((await OwnershipRecord.load(path)).list(), record.list());
  });
});
