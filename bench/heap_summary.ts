/**
 * A heap snapshot (`.heapsnapshot`, V8's JSON) summarised the way the
 * DevTools "Summary" view groups it: objects by constructor, V8's internal
 * arrays by what they back, everything else by node type (strings, code,
 * ...), with their count and shallow
 * size (the objects themselves, not what they keep alive: retained sizes
 * need the dominator tree, which is too slow for a benchmark at this size).
 *
 * The file is read as bytes and only the node table and the string table
 * are decoded, so a snapshot of a few hundred MB does not need a string of
 * that size.
 *
 * @module
 */

/** One group of the summary. */
export interface HeapGroup {
  /** Constructor name, `(array) <what it backs>`, or `(type)` for the other nodes. */
  name: string;
  /** Nodes in the group. */
  count: number;
  /** Their shallow size, bytes. */
  selfSize: number;
}

const encoder = new TextEncoder();

function indexOfBytes(haystack: Uint8Array, needle: string, from = 0): number {
  const n = encoder.encode(needle);
  outer: for (let i = haystack.indexOf(n[0], from); i >= 0; i = haystack.indexOf(n[0], i + 1)) {
    for (let k = 1; k < n.length; k++) if (haystack[i + k] !== n[k]) continue outer;
    return i;
  }
  return -1;
}

function lastIndexOfBytes(haystack: Uint8Array, needle: string): number {
  const n = encoder.encode(needle);
  outer: for (let i = haystack.lastIndexOf(n[0]); i >= 0; i = haystack.lastIndexOf(n[0], i - 1)) {
    for (let k = 1; k < n.length; k++) if (haystack[i + k] !== n[k]) continue outer;
    return i;
  }
  return -1;
}

/** The groups of the snapshot at `path`, largest shallow size first. */
export async function summarizeHeapSnapshot(path: string): Promise<HeapGroup[]> {
  const bytes = await Deno.readFile(path);
  const nodesAt = indexOfBytes(bytes, `"nodes":[`);
  if (nodesAt < 0) throw new Error(`${path}: no "nodes" in the heap snapshot`);
  const header = JSON.parse(
    new TextDecoder().decode(bytes.subarray(0, nodesAt)).replace(/,\s*$/, "") + "}",
  ) as {
    snapshot: {
      meta: { node_fields: string[]; node_types: [string[], ...unknown[]] };
      node_count: number;
    };
  };
  const fields = header.snapshot.meta.node_fields;
  const width = fields.length;
  const typeAt = fields.indexOf("type");
  const nameAt = fields.indexOf("name");
  const sizeAt = fields.indexOf("self_size");
  const types = header.snapshot.meta.node_types[0];
  const count = header.snapshot.node_count;

  // The node table: `count × width` unsigned integers, comma-separated.
  const nodes = new Float64Array(count * width);
  let k = 0;
  let value = 0;
  let inNumber = false;
  let i = nodesAt + `"nodes":[`.length;
  for (; k < nodes.length; i++) {
    const b = bytes[i];
    if (b >= 48 && b <= 57) {
      value = value * 10 + (b - 48);
      inNumber = true;
    } else if (inNumber) {
      nodes[k++] = value;
      value = 0;
      inNumber = false;
    }
    if (b === 93 /* ] */) break;
  }

  // Group by (type, name index) first; names are decoded only for what is shown.
  const byKey = new Map<number, { type: string; name: number; count: number; size: number }>();
  for (let n = 0; n < count; n++) {
    const base = n * width;
    const type = types[nodes[base + typeAt]] ?? "unknown";
    // Internal arrays are named by what they back ("(object elements)", a hash table, ...).
    const byName = type === "object" || type === "native" || type === "array";
    const name = byName ? nodes[base + nameAt] : -1;
    const key = byName ? name * 64 + nodes[base + typeAt] : -1 - nodes[base + typeAt];
    let g = byKey.get(key);
    if (!g) byKey.set(key, g = { type, name, count: 0, size: 0 });
    g.count++;
    g.size += nodes[base + sizeAt];
  }

  const stringsAt = lastIndexOfBytes(bytes, `"strings":[`);
  if (stringsAt < 0) throw new Error(`${path}: no "strings" in the heap snapshot`);
  const strings = JSON.parse(
    new TextDecoder().decode(bytes.subarray(stringsAt + `"strings":`.length, bytes.length))
      .replace(/\}\s*$/, ""),
  ) as string[];

  // Constructors of the same name (one per realm or map) are one group, as in DevTools.
  const groups = new Map<string, HeapGroup>();
  for (const g of byKey.values()) {
    const named = g.name >= 0 ? strings[g.name] ?? "?" : "";
    const name = g.type === "array" ? `(array) ${named}`.trim() : named || `(${g.type})`;
    const group = groups.get(name) ?? { name, count: 0, selfSize: 0 };
    group.count += g.count;
    group.selfSize += g.size;
    groups.set(name, group);
  }
  return [...groups.values()].sort((a, b) => b.selfSize - a.selfSize);
}
