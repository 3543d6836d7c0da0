/**
 * What the tests read from a heap snapshot of their own isolate.
 *
 * @module
 */

import { writeHeapSnapshot } from "node:v8";

/** How many string objects in this isolate's heap hold exactly each of `values`. */
export function stringsInHeap(...values: string[]): number[] {
  const path = Deno.makeTempFileSync({ suffix: ".heapsnapshot" });
  try {
    writeHeapSnapshot(path);
    const snap = JSON.parse(Deno.readTextFileSync(path));
    const meta = snap.snapshot.meta;
    const width = meta.node_fields.length;
    const typeAt = meta.node_fields.indexOf("type");
    const nameAt = meta.node_fields.indexOf("name");
    const types: string[] = meta.node_types[typeAt];
    const stringTypes = new Set(
      ["string", "concatenated string", "sliced string"].map((t) => types.indexOf(t)),
    );
    const nodes: number[] = snap.nodes;
    const counts = values.map(() => 0);
    for (let i = 0; i < nodes.length; i += width) {
      if (!stringTypes.has(nodes[i + typeAt])) continue;
      const at = values.indexOf(snap.strings[nodes[i + nameAt]]);
      if (at >= 0) counts[at]++;
    }
    return counts;
  } finally {
    Deno.removeSync(path);
  }
}
