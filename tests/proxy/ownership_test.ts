import assert from "node:assert/strict";
import { join } from "node:path";
import { journalPath, OwnershipRecord } from "../../lib/proxy/ownership.ts";
import { RecordingLogger } from "../kube/helpers.ts";
import { prng } from "../prng.ts";

const LB = {
  kind: "LoadBalancer" as const,
  id: "A1B2C3D4-0000-0000-0000-000000000001",
  key: "lb/tcp/10.96.0.10:80",
};
const EP = {
  kind: "Endpoint" as const,
  id: "a1b2c3d4-0000-0000-0000-000000000002",
  key: "ep/remote/10.244.2.15",
};

Deno.test("ownership: a missing file is an empty record, and nothing is written until a change", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "sub", "state.json");
  const record = await OwnershipRecord.load(path);
  assert.equal(record.size, 0);
  assert.equal(record.loadError, undefined);
  await record.flush();
  await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ownership: add/remove round-trips through the file; IDs compare case-insensitively", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "sub", "state.json");
  const record = await OwnershipRecord.load(path);
  record.add(LB);
  record.add(EP);
  assert.equal(record.dirty, true);
  await record.flush();
  assert.equal(record.dirty, false);
  assert.ok(record.owns(LB.id.toLowerCase()));
  assert.ok(record.owns(EP.id.toUpperCase()));
  assert.ok(!record.owns("ffffffff-0000-0000-0000-000000000000"));

  const again = await OwnershipRecord.load(path);
  assert.deepEqual(again.list(), [LB, EP], "LBs first, then endpoints");
  assert.deepEqual(again.list("Endpoint"), [EP]);
  again.remove(LB.id.toLowerCase());
  again.add(EP); // unchanged: not dirty
  await again.flush();
  assert.deepEqual((await OwnershipRecord.load(path)).list(), [EP]);
  const entries = [...Deno.readDirSync(join(dir, "sub"))].map((e) => e.name).sort();
  assert.deepEqual(entries, ["state.json", "state.json.journal"], "no temp files left behind");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ownership: writes are batched — changes reach the files only on flush", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "state.json");
  const record = await OwnershipRecord.load(path);
  for (let i = 0; i < 100; i++) {
    record.add({ kind: "Endpoint", id: `id-${i}`, key: `ep/remote/10.0.0.${i}` });
  }
  await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
  await record.flush();
  assert.equal(JSON.parse(await Deno.readTextFile(path)).objects.length, 100);
  record.remove("id-0");
  record.remove("id-1");
  assert.equal((await OwnershipRecord.load(path)).size, 100);
  await record.flush();
  assert.equal((await OwnershipRecord.load(path)).size, 98);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ownership: a corrupt file is a clear error and an empty record; it is kept aside on the next write", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "state.json");
  await Deno.writeTextFile(path, '{"version":1,"objects":[{"kind":"LoadBal');
  const logger = new RecordingLogger();
  const { lines } = logger;
  const record = await OwnershipRecord.load(path, { logger });
  assert.equal(record.size, 0, "owns nothing, so deletes nothing");
  assert.match(record.loadError ?? "", /corrupt ownership record .*state\.json: not JSON/);
  assert.ok(lines.some((l) => l.level === "error" && /corrupt/.test(l.message)));
  record.add(LB);
  await record.flush();
  assert.deepEqual((await OwnershipRecord.load(path)).list(), [LB]);
  assert.equal(
    await Deno.readTextFile(path + ".corrupt"),
    '{"version":1,"objects":[{"kind":"LoadBal',
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ownership: wrong shape or version is rejected; malformed entries are skipped", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "state.json");
  for (
    const [text, pattern] of [
      ["[]", /not a JSON object/],
      ['{"version":4,"generation":1,"objects":[]}', /unsupported version 4/],
      ['{"version":2,"objects":[]}', /"generation" is not a non-negative integer/],
      ['{"version":1,"objects":{}}', /"objects" is not an array/],
    ] as const
  ) {
    await Deno.writeTextFile(path, text);
    const record = await OwnershipRecord.load(path);
    assert.equal(record.size, 0);
    assert.match(record.loadError ?? "", pattern);
  }
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      version: 1,
      objects: [LB, { kind: "Network", id: "x", key: "y" }, { id: 3 }],
    }),
  );
  const logger = new RecordingLogger();
  const { lines } = logger;
  const record = await OwnershipRecord.load(path, { logger });
  assert.equal(record.loadError, undefined);
  assert.deepEqual(record.list(), [LB]);
  assert.equal(lines.filter((l) => l.level === "warn").length, 2);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ownership: a failed write keeps the record dirty and the old files intact", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "state.json");
  const record = await OwnershipRecord.load(path);
  record.add(LB);
  await record.flush();
  // A directory where the journal should be makes the append fail.
  await Deno.remove(journalPath(path));
  await Deno.mkdir(journalPath(path));
  record.add(EP);
  await assert.rejects(record.flush());
  assert.equal(record.dirty, true);
  assert.deepEqual((await OwnershipRecord.load(path)).list(), [LB]);
  await Deno.remove(journalPath(path));
  await record.flush();
  assert.deepEqual((await OwnershipRecord.load(path)).list(), [LB, EP]);
  // A directory where the temp file would go makes a compaction fail.
  await Deno.mkdir(`${path}.tmp-${Deno.pid}`);
  record.remove(LB.id);
  await assert.rejects(record.compact());
  assert.equal(record.dirty, true);
  assert.deepEqual((await OwnershipRecord.load(path)).list(), [LB, EP]);
  await Deno.remove(`${path}.tmp-${Deno.pid}`);
  await record.flush();
  assert.deepEqual((await OwnershipRecord.load(path)).list(), [EP]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ownership: an in-memory record never touches the filesystem", async () => {
  const record = OwnershipRecord.inMemory([LB]);
  assert.equal(record.path, null);
  assert.ok(record.owns(LB.id));
  record.add(EP);
  await record.flush();
  assert.equal(record.dirty, false);
});

Deno.test("ownership: upperCaseIds lists the IDs of one kind, upper case, live", async () => {
  const dir = await Deno.makeTempDir();
  const record = await OwnershipRecord.load(join(dir, "state.json"));
  record.add({ kind: "LoadBalancer", id: "ab-lb", key: "lb/1" });
  record.add({ kind: "Endpoint", id: "Ab-Ep", key: "ep/1" });
  record.add({ kind: "Endpoint", id: "CD-EP", key: "ep/2" });
  assert.deepEqual([...record.upperCaseIds("LoadBalancer")], ["AB-LB"]);
  assert.deepEqual([...record.upperCaseIds("Endpoint")].sort(), ["AB-EP", "CD-EP"]);
  record.remove("cd-ep");
  assert.deepEqual([...record.upperCaseIds("Endpoint")], ["AB-EP"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ownership: a handle reads kind, key and fingerprint value of an owned object after a load", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "state.json");
  const first = await OwnershipRecord.load(path);
  first.add({ ...LB, fp: "1x2y3z" });
  first.add({ ...EP, fp: "Not-Base36" });
  first.add({
    kind: "Endpoint",
    id: "C0FFEE00-0000-0000-0000-000000000003",
    key: "ep/remote/10.0.0.3",
  });
  await first.compact();
  const record = await OwnershipRecord.load(path);
  assert.equal(record.handle("not-owned"), -1);
  const lb = record.handle(LB.id.toLowerCase());
  assert.ok(lb >= 0);
  assert.equal(record.kindAt(lb), "LoadBalancer");
  assert.equal(record.keyAt(lb), LB.key);
  assert.ok(record.hasFingerprintValueAt(lb, parseInt("1x2y3z", 36)));
  assert.ok(!record.hasFingerprintValueAt(lb, parseInt("1x2y3y", 36)));
  const ep = record.handle(EP.id);
  assert.equal(record.kindAt(ep), "Endpoint");
  // A fingerprint that is no base-36 number, or none, matches no value.
  assert.ok(!record.hasFingerprintValueAt(ep, -1));
  assert.ok(!record.hasFingerprintValueAt(ep, 0));
  const bare = record.handle("C0FFEE00-0000-0000-0000-000000000003");
  assert.ok(!record.hasFingerprintValueAt(bare, -2) && !record.hasFingerprintValueAt(bare, 0));
  // An equal key given to keep changes nothing that is read or written.
  record.shareKeyAt(lb, ["lb/tcp/10.96.0.10", ":80"].join(""));
  record.shareKeyAt(lb, "lb/other");
  assert.equal(record.keyAt(lb), LB.key);
  assert.ok(!record.dirty);
  record.remove(LB.id);
  assert.equal(record.handle(LB.id), -1);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ownership: fingerprints survive the file exactly, whatever their spelling", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "state.json");
  const fps = [
    "1x2y3z",
    "0",
    "2gosa7pa2gv",
    "00",
    "1X2Y",
    "zzzzzzzzzzzz",
    "-5",
    "",
    "not a hash",
    "3.5",
  ];
  const objects = fps.map((fp, i) => ({
    kind: i % 2 ? "Endpoint" as const : "LoadBalancer" as const,
    id: `A1B2C3D4-0000-0000-0000-${String(i).padStart(12, "0")}`,
    key: `k/${i}`,
    fp,
  }));
  const record = await OwnershipRecord.load(path);
  for (const o of objects) record.add(o);
  record.add({ kind: "Endpoint", id: "A1B2C3D4-0000-0000-0000-0000000000FF", key: "k/none" });
  for (const o of objects) {
    assert.equal(record.fingerprintOf(o.id), o.fp, o.fp);
    assert.ok(record.hasFingerprint(o.id.toLowerCase(), o.fp), o.fp);
    for (const other of fps) {
      if (other !== o.fp) assert.ok(!record.hasFingerprint(o.id, other), `${o.fp} is not ${other}`);
    }
  }
  assert.ok(!record.hasFingerprint("A1B2C3D4-0000-0000-0000-0000000000FF", "0"));
  assert.ok(!record.hasFingerprint("A1B2C3D4-0000-0000-0000-0000000000EE", "0"));
  record.add({ ...objects[0] }); // the same: not a change
  await record.flush();
  record.add({ ...objects[0] });
  assert.equal(record.dirty, false, "an unchanged fingerprint is no change");
  record.add({ ...objects[1], fp: "00" });
  assert.equal(record.dirty, true, "another spelling of the same number is a change");
  await record.compact();
  const again = await OwnershipRecord.load(path);
  assert.equal(again.untrusted, undefined);
  for (const [i, o] of objects.entries()) {
    assert.equal(again.fingerprintOf(o.id), i === 1 ? "00" : o.fp, o.fp);
  }
  assert.equal(again.fingerprintOf("a1b2c3d4-0000-0000-0000-0000000000ff"), undefined);
  assert.equal(again.get(objects[2].id)?.fp, objects[2].fp);
  assert.ok(again.distrust([objects[2].id]));
  assert.equal(again.fingerprintOf(objects[2].id), undefined);
  assert.ok(!again.distrust([objects[2].id]), "nothing left to drop");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ownership: a large record loads the same whatever its layout; a bad line makes it corrupt", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "state.json");
  const objects = [];
  // Past several read chunks, with multi-byte characters that straddle their boundaries.
  for (let i = 0; i < 3000; i++) {
    objects.push({
      kind: i % 3 ? "Endpoint" as const : "LoadBalancer" as const,
      id: `${i % 2 ? "a" : "A"}1B2C3D4-0000-0000-0000-${String(i).padStart(12, "0")}`,
      key: `k/${"é€".repeat(i % 7)}/${i}`,
      fp: (i * 7919).toString(36),
    });
  }
  const record = await OwnershipRecord.load(path);
  for (const o of objects) record.add(o);
  await record.compact();
  const written = await Deno.readTextFile(path);
  assert.ok(written.split("\n").length > 3000, "one object per line");
  const expected = (await OwnershipRecord.load(path)).list();
  assert.equal(expected.length, 3000);
  assert.deepEqual(expected, record.list());

  const data = JSON.parse(written);
  for (
    const text of [
      JSON.stringify(data), // one line
      JSON.stringify(data, null, 2), // another layout
      written.replaceAll("\n", "\r\n"), // edited on Windows
      written.replace(/\n$/, ""), // no final newline
    ]
  ) {
    await Deno.writeTextFile(path, text);
    await Deno.remove(journalPath(path)).catch(() => {});
    const loaded = await OwnershipRecord.load(path);
    assert.equal(loaded.loadError, undefined);
    assert.deepEqual(loaded.list(), expected);
  }

  const lines = written.split("\n");
  lines[1500] = lines[1500].replace(/"fp":/, '"fp"');
  await Deno.writeTextFile(path, lines.join("\n"));
  const corrupt = await OwnershipRecord.load(path);
  assert.equal(corrupt.size, 0, "owns nothing, so deletes nothing");
  assert.match(corrupt.loadError ?? "", /not JSON/);

  const skipped = written.split("\n");
  skipped[10] = '{"kind":"Network","id":"x","key":"y"},';
  await Deno.writeTextFile(path, skipped.join("\n"));
  const logger = new RecordingLogger();
  const partial = await OwnershipRecord.load(path, { logger });
  assert.equal(partial.size, 2999);
  assert.match(partial.untrusted ?? "", /malformed entries/);
  assert.equal(logger.lines.filter((l) => l.level === "warn").length, 1);

  const truncated = written.slice(0, written.indexOf("\n", written.length / 2));
  await Deno.writeTextFile(path, truncated);
  assert.match((await OwnershipRecord.load(path)).loadError ?? "", /not JSON/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ownership: changes made while a large record is being compacted are all on disk after the next flush", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "state.json");
  const record = await OwnershipRecord.load(path);
  const id = (i: number) => `A1B2C3D4-0000-0000-0000-${String(i).padStart(12, "0")}`;
  for (let i = 0; i < 5000; i++) {
    record.add({
      kind: "Endpoint",
      id: id(i),
      key: `ep/remote/10.0.${i >> 8}.${i & 255}`,
      fp: "1x",
    });
  }
  await record.flush();
  const compacting = record.compact();
  for (let step = 0; step < 50; step++) {
    await new Promise((resolve) => setTimeout(resolve, 0));
    record.remove(id(step * 97));
    record.add({ kind: "LoadBalancer", id: id(10_000 + step), key: `lb/tcp/10.96.0.${step}:80` });
    record.distrust([id(step * 89 + 1)]);
  }
  await compacting;
  await record.flush();
  const again = await OwnershipRecord.load(path);
  assert.equal(again.untrusted, undefined);
  assert.deepEqual(again.list(), record.list());
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ownership: a large record and a large journal append are encoded into one reused buffer, not a buffer per chunk", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "state.json");
  const id = (i: number) => `A1B2C3D4-0000-0000-0000-${String(i).padStart(12, "0")}`;
  const record = await OwnershipRecord.load(path);
  for (let i = 0; i < 3000; i++) {
    // Multi-byte keys, one longer than the encoding buffer: a chunk is encoded in parts.
    const key = i === 1234 ? `ep/${"€".repeat(100_000)}` : `ep/remote/é€/${i}`;
    record.add({ kind: "Endpoint", id: id(i), key, fp: (i * 7919).toString(36) });
  }
  const encode = TextEncoder.prototype.encode;
  let encoded = 0;
  TextEncoder.prototype.encode = function (this: TextEncoder, input?: string) {
    encoded++;
    return encode.call(this, input);
  };
  try {
    await record.compact();
    // Below the journal's limit: appended, several chunks of lines.
    for (let i = 0; i < 1200; i++) {
      record.add({
        kind: "LoadBalancer",
        id: id(10_000 + i),
        key: `lb/tcp/10.96.${i >> 8}.${i & 255}:80`,
      });
    }
    await record.flush();
  } finally {
    TextEncoder.prototype.encode = encode;
  }
  assert.equal(encoded, 0, "no buffer made per chunk");
  const journal = await Deno.readTextFile(journalPath(path));
  assert.equal(journal.trim().split("\n").length, 1 + 1200, "appended, not compacted");
  const again = await OwnershipRecord.load(path);
  assert.equal(again.loadError, undefined);
  assert.equal(again.untrusted, undefined);
  assert.deepEqual(again.list(), record.list());
  assert.equal(again.get(id(1234))?.key.length, 3 + 100_000);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ownership: a loaded record holds, removes and adds objects past the size its file suggested", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "state.json");
  // Short lines (the load sizes its table for fewer objects than it reads) and
  // long ones (for more): both load whole, and grow past that size after.
  for (const keyLength of [1, 400]) {
    const record = await OwnershipRecord.load(path);
    for (let i = 0; i < 2500; i++) {
      record.add({ kind: "Endpoint", id: `E${i}`, key: `${"k".repeat(keyLength)}${i}` });
    }
    await record.compact();
    const loaded = await OwnershipRecord.load(path);
    assert.deepEqual(loaded.list(), record.list());
    for (let i = 0; i < 2500; i += 2) loaded.remove(`E${i}`);
    for (let i = 0; i < 5000; i++) {
      loaded.add({ kind: "LoadBalancer", id: `L${i}`, key: `lb/${i}`, fp: i.toString(36) });
    }
    assert.equal(loaded.count("Endpoint"), 1250);
    assert.equal([...loaded.upperCaseIds("Endpoint")].length, 1250);
    assert.equal([...loaded.upperCaseIds("LoadBalancer")].length, 5000);
    assert.equal(loaded.keyOf("e2499"), `${"k".repeat(keyLength)}2499`);
    assert.equal(loaded.fingerprintOf("L4999"), (4999).toString(36));
    await loaded.flush();
    assert.deepEqual((await OwnershipRecord.load(path)).list(), loaded.list());
    await Deno.remove(path);
    await Deno.remove(journalPath(path));
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ownership: room reserved ahead, as a plan's creates reserve it, holds and writes what a record grown step by step does", async () => {
  const dir = await Deno.makeTempDir();
  const paths = [join(dir, "grown.json"), join(dir, "reserved.json")];
  const [grown, reserved] = await Promise.all(paths.map((p) => OwnershipRecord.load(p)));
  const both = [grown, reserved];
  const next = prng(15);
  let made = 0;
  const owned: string[] = [];
  for (let round = 0; round < 6; round++) {
    // Removals first: their slots are free for the adds that follow (a reserve counts them).
    for (let i = 0; i < owned.length / 3; i++) {
      const [id] = owned.splice(Math.floor(next() * owned.length), 1);
      for (const r of both) r.remove(id);
    }
    const adds = 50 + Math.floor(next() * 1500);
    // Reserved for more or fewer than come: the record still takes them all.
    reserved.reserve(Math.floor(adds * (0.5 + next())));
    const intents = [];
    for (let i = 0; i < adds; i++) {
      const id = `${made++}-${Math.floor(next() * 1e9)}`;
      owned.push(id);
      const kind = next() < 0.5 ? "LoadBalancer" as const : "Endpoint" as const;
      const object = { kind, id, key: `${kind}/${id}` };
      if (next() < 0.5) intents.push(object);
      else {
        const fp = Math.floor(next() * 1e9).toString(36);
        for (const r of both) r.add({ ...object, fp });
      }
    }
    for (const r of both) await r.intend(intents);
    for (const r of both) await r.flush();
  }
  assert.equal(reserved.size, owned.length);
  assert.deepEqual(reserved.list(), grown.list());
  for (const id of owned) assert.ok(reserved.owns(id), id);
  const journals = await Promise.all(
    paths.map(async (p) => (await Deno.readTextFile(journalPath(p))).split("\n").slice(1)),
  );
  assert.deepEqual(journals[1], journals[0], "the same changes written, in the same order");
  assert.deepEqual((await OwnershipRecord.load(paths[1])).list(), grown.list());
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ownership: room reserved one object at a time, as each change's create reserves it, grows by doubling", () => {
  const started = OwnershipRecord.inMemory();
  started.reserve(52_000); // a cold start's creates, at once
  assert.ok(started.capacity >= 52_000 && started.capacity < 2 * 52_000, `${started.capacity}`);
  const record = OwnershipRecord.inMemory();
  const capacities = [record.capacity];
  for (let i = 0; i < 10_000; i++) {
    record.reserve(1);
    record.add({ kind: "Endpoint", id: `E${i}`, key: `ep/${i}` });
    if (record.capacity !== capacities.at(-1)) capacities.push(record.capacity);
  }
  assert.equal(record.size, 10_000);
  // A copy of the table per doubling, not per object.
  for (let i = 1; i < capacities.length; i++) {
    assert.ok(capacities[i] >= 2 * capacities[i - 1], capacities.join(" → "));
  }
  assert.ok(capacities.length <= 9, `${capacities.length} sizes`);
});

Deno.test("ownership: a fingerprint given as its number is owned and written as its text would be", async () => {
  const dir = await Deno.makeTempDir();
  const [byText, byNumber] = await Promise.all(
    ["text.json", "number.json"].map((name) => OwnershipRecord.load(join(dir, name))),
  );
  const values = [0, 35, 36, 2 ** 31, Number.MAX_SAFE_INTEGER];
  for (const [i, value] of values.entries()) {
    const kind = i % 2 ? "LoadBalancer" as const : "Endpoint" as const;
    byText.add({ kind, id: `id-${i}`, key: `key/${i}`, fp: value.toString(36) });
    byNumber.addFingerprinted(kind, `id-${i}`, `key/${i}`, value);
  }
  // Changing only the fingerprint of an owned object is a change, and the same one.
  byText.add({ kind: "Endpoint", id: "ID-0", key: "key/0", fp: (7).toString(36) });
  byNumber.addFingerprinted("Endpoint", "ID-0", "key/0", 7);
  assert.deepEqual(byNumber.list(), byText.list());
  assert.ok(byNumber.hasFingerprint("id-4", Number.MAX_SAFE_INTEGER.toString(36)));
  await Promise.all([byText.flush(), byNumber.flush()]);
  assert.deepEqual(
    (await OwnershipRecord.load(join(dir, "number.json"))).list(),
    (await OwnershipRecord.load(join(dir, "text.json"))).list(),
  );
  for (const bad of [-1, 0.5, 2 ** 53, NaN]) {
    assert.throws(() => byNumber.addFingerprinted("Endpoint", "id-bad", "k", bad), /id-bad/);
  }
  assert.ok(!byNumber.owns("id-bad"));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ownership: an ID asked for again after its removal is not owned, even when its slot is reused", () => {
  const record = OwnershipRecord.inMemory([LB]);
  assert.equal(record.idString(LB.id), LB.id);
  assert.notEqual(record.handle(LB.id), -1);
  record.remove(LB.id);
  record.add(EP);
  assert.equal(record.owns(LB.id), false);
  assert.equal(record.handle(LB.id), -1);
  assert.equal(record.kindOf(LB.id.toLowerCase()), undefined);
  assert.equal(record.kindOf(EP.id), "Endpoint");
  assert.equal(record.keyAt(record.handle(EP.id.toUpperCase())), EP.key);
  record.add({ ...LB, key: "lb/other" });
  assert.equal(record.keyOf(LB.id), "lb/other");
});
