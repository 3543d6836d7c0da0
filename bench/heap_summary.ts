/**
 * A heap snapshot (`.heapsnapshot`, V8's JSON) summarised the way the
 * DevTools "Summary" view groups it: objects by constructor, V8's internal
 * arrays by what they back (named by V8, or by the edge from their first
 * owner: `(array) table of Map`), everything else by node type (strings,
 * code, ...), with their count and shallow
 * size (the objects themselves, not what they keep alive: retained sizes
 * need the dominator tree, which is too slow for a benchmark at this size).
 *
 * The file is read as bytes and the node, edge and string tables are
 * decoded apart, so a snapshot of a few hundred MB does not need a string of
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

/**
 * The unsigned integers of the JSON array that starts at `from` (just after
 * its `[`), `count` of them, as V8 writes its node and edge tables.
 */
function readNumbers(bytes: Uint8Array, from: number, count: number): Float64Array {
  const out = new Float64Array(count);
  let k = 0;
  let value = 0;
  let inNumber = false;
  for (let i = from; k < count && i < bytes.length; i++) {
    const b = bytes[i];
    if (b >= 48 && b <= 57) {
      value = value * 10 + (b - 48);
      inNumber = true;
    } else if (inNumber) {
      out[k++] = value;
      value = 0;
      inNumber = false;
    }
    if (b === 93 /* ] */) break;
  }
  return out;
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
      meta: {
        node_fields: string[];
        node_types: [string[], ...unknown[]];
        edge_fields: string[];
        edge_types: [string[], ...unknown[]];
      };
      node_count: number;
      edge_count: number;
    };
  };
  const meta = header.snapshot.meta;
  const width = meta.node_fields.length;
  const typeAt = meta.node_fields.indexOf("type");
  const nameAt = meta.node_fields.indexOf("name");
  const sizeAt = meta.node_fields.indexOf("self_size");
  const edgeCountAt = meta.node_fields.indexOf("edge_count");
  const types = meta.node_types[0];
  const count = header.snapshot.node_count;
  const nodes = readNumbers(bytes, nodesAt + `"nodes":[`.length, count * width);

  const edgesAt = indexOfBytes(bytes, `"edges":[`, nodesAt);
  if (edgesAt < 0) throw new Error(`${path}: no "edges" in the heap snapshot`);
  const edgeWidth = meta.edge_fields.length;
  const edgeTypeAt = meta.edge_fields.indexOf("type");
  const edgeNameAt = meta.edge_fields.indexOf("name_or_index");
  const toAt = meta.edge_fields.indexOf("to_node");
  const edgeTypes = meta.edge_types[0];
  const edges = readNumbers(
    bytes,
    edgesAt + `"edges":[`.length,
    header.snapshot.edge_count * edgeWidth,
  );

  const stringsAt = lastIndexOfBytes(bytes, `"strings":[`);
  if (stringsAt < 0) throw new Error(`${path}: no "strings" in the heap snapshot`);
  const strings = JSON.parse(
    new TextDecoder().decode(bytes.subarray(stringsAt + `"strings":`.length, bytes.length))
      .replace(/\}\s*$/, ""),
  ) as string[];

  const typeOf = (n: number) => types[nodes[n * width + typeAt]] ?? "unknown";
  const nameOf = (n: number) => strings[nodes[n * width + nameAt]] ?? "?";
  // Objects by constructor, internal arrays by what they back, the rest by type.
  const ownName = (n: number) => {
    const type = typeOf(n);
    if (type === "object" || type === "native") return nameOf(n);
    if (type === "array" && nameOf(n)) return `(array) ${nameOf(n)}`;
    return `(${type})`;
  };
  // An internal array without a name (a Map's hash table, say) is named by its first owner.
  const owner = new Int32Array(count).fill(-1);
  const ownerEdge = new Int32Array(count).fill(-1);
  for (let n = 0, e = 0; n < count; n++) {
    const end = e + nodes[n * width + edgeCountAt] * edgeWidth;
    for (; e < end; e += edgeWidth) {
      const to = edges[e + toAt] / width;
      if (owner[to] >= 0 || typeOf(to) !== "array" || nameOf(to)) continue;
      owner[to] = n;
      const edgeType = edgeTypes[edges[e + edgeTypeAt]];
      ownerEdge[to] = edgeType === "element" || edgeType === "hidden" ? -1 : edges[e + edgeNameAt];
    }
  }

  // Constructors of the same name (one per realm or map) are one group, as in DevTools.
  const groups = new Map<string, HeapGroup>();
  for (let n = 0; n < count; n++) {
    let name = ownName(n);
    if (name === "(array)" && owner[n] >= 0) {
      const edge = ownerEdge[n] >= 0 ? strings[ownerEdge[n]] ?? "?" : "element";
      name = `(array) ${edge} of ${ownName(owner[n])}`;
    }
    let group = groups.get(name);
    if (!group) groups.set(name, group = { name, count: 0, selfSize: 0 });
    group.count++;
    group.selfSize += nodes[n * width + sizeAt];
  }
  return [...groups.values()].sort((a, b) => b.selfSize - a.selfSize);
}
