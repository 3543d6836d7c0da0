/**
 * Tallies of HNS calls by C function name (`HcnCreateLoadBalancer`,
 * `HcnEnumerateEndpoints`, `HNSCall`, ...), as counted by
 * lib/hns/instrument.ts for hnsproxy and as computed by the kube-proxy model:
 * adding, subtracting and splitting them into reads and writes.
 *
 * @module
 */

/** Calls per C function name. */
export type CallCounts = Record<string, number>;

/** A tally split into what changes HNS and what only reads it. */
export interface CallSummary {
  /** Enumerate, Open, Query, Close and `HNSCall` calls. */
  reads: number;
  /** Create, Modify and Delete calls. */
  writes: number;
  /** All calls. */
  total: number;
}

/** Whether a C function changes HNS state: `HcnCreate*`, `HcnModify*`, `HcnDelete*`. */
export function isWriteCall(fn: string): boolean {
  return /^Hcn(Create|Modify|Delete)/.test(fn);
}

/** Reads, writes and total of a tally. */
export function summarizeCalls(calls: CallCounts): CallSummary {
  let reads = 0;
  let writes = 0;
  for (const [fn, n] of Object.entries(calls)) {
    if (isWriteCall(fn)) writes += n;
    else reads += n;
  }
  return { reads, writes, total: reads + writes };
}

/** `a + b`, per function. */
export function addCalls(a: CallCounts, b: CallCounts): CallCounts {
  const out: CallCounts = { ...a };
  for (const [fn, n] of Object.entries(b)) out[fn] = (out[fn] ?? 0) + n;
  return out;
}

/** `after - before`, per function, leaving out functions whose difference is zero. */
export function subtractCalls(after: CallCounts, before: CallCounts): CallCounts {
  const out: CallCounts = {};
  for (const fn of new Set([...Object.keys(after), ...Object.keys(before)])) {
    const n = (after[fn] ?? 0) - (before[fn] ?? 0);
    if (n !== 0) out[fn] = n;
  }
  return out;
}

/** Add `n` calls of `fn` to `calls` in place (nothing when `n` is 0). */
export function countCall(calls: CallCounts, fn: string, n = 1): void {
  if (n !== 0) calls[fn] = (calls[fn] ?? 0) + n;
}
