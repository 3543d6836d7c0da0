/**
 * bench/heap_summary.ts: a real heap snapshot of this process, summarised.
 *
 * @module
 */

import assert from "node:assert/strict";
import { writeHeapSnapshot } from "node:v8";
import { summarizeHeapSnapshot } from "../../bench/heap_summary.ts";

class HeapSummaryMarker {
  constructor(readonly n: number, readonly tag: string) {}
}

Deno.test("heap summary: objects are grouped by constructor with their count and size", async () => {
  const kept = Array.from({ length: 5000 }, (_, n) => new HeapSummaryMarker(n, `m${n}`));
  const byTag = new Map(kept.map((m) => [m.tag, m]));
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/test.heapsnapshot`;
    writeHeapSnapshot(path);
    const groups = await summarizeHeapSnapshot(path);
    const marker = groups.find((g) => g.name === "HeapSummaryMarker");
    assert.ok(marker, "the marker class is a group");
    assert.equal(marker.count, kept.length);
    // Each instance holds at least a header and two fields.
    assert.ok(marker.selfSize >= kept.length * 12, `size ${marker.selfSize}`);
    assert.ok(groups.some((g) => g.name === "(string)"), "strings are one group");
    // A Map's hash table is an unnamed internal array: it is named by its owner.
    const tables = groups.find((g) => g.name === "(array) table of Map");
    assert.ok(tables, groups.slice(0, 10).map((g) => g.name).join(", "));
    assert.ok(tables.selfSize >= byTag.size * 8, `Map tables ${tables.selfSize} bytes`);
    for (let i = 1; i < groups.length; i++) {
      assert.ok(groups[i - 1].selfSize >= groups[i].selfSize, "largest first");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("heap summary: a file that is not a heap snapshot is an error naming it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/not.heapsnapshot`;
    await Deno.writeTextFile(path, `{"something":"else"}`);
    await assert.rejects(summarizeHeapSnapshot(path), /not\.heapsnapshot: no "nodes"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
