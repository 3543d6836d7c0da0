/**
 * The demo's text output: aligned tables (cells may span several lines), the
 * HNS state table (VIP:port/protocol → backends, flags in words), the list of
 * HNS operations a step made, and the call-count comparison.
 *
 * @module
 */

import { type CallCounts, type CallSummary, isWriteCall, summarizeCalls } from "./calls.ts";
import { type LbView, serviceLabel } from "./inventory.ts";
import type { HnsCallRecord } from "./recorder.ts";

/** Render rows under headers; a cell with newlines takes several lines. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const split = rows.map((row) => headers.map((_, i) => (row[i] ?? "").split("\n")));
  const widths = headers.map((h, i) =>
    Math.max(h.length, ...split.flatMap((row) => row[i].map((line) => line.length)))
  );
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join("  ").trimEnd();
  const out = [line(headers), widths.map((w) => "─".repeat(w)).join("  ")];
  for (const row of split) {
    const height = Math.max(...row.map((c) => c.length));
    for (let k = 0; k < height; k++) out.push(line(row.map((c) => c[k] ?? "")));
  }
  return out;
}

/**
 * The HNS load balancers as a table: service, frontend, backends (local or
 * remote), flags. `foreign`: upper-case IDs of others' load balancers and
 * whose they are (e.g. `another tool's`).
 */
export function hnsStateTable(
  views: readonly LbView[],
  foreign: ReadonlyMap<string, string>,
  thisNode: string,
): string[] {
  let previous = "";
  const rows = views.map((v) => {
    const owner = foreign.get(v.id.toUpperCase());
    const label = owner !== undefined ? `(${owner})` : serviceLabel(v);
    const service = label === previous ? "" : label;
    previous = label;
    const what = v.role ? `${v.frontend}  ${roleWords(v)}` : v.frontend;
    const backends = v.backends.length === 0 ? "(none)" : v.backends.map((b) => {
      // A remote endpoint placed on this node is outside the pod network (kube-proxy's "public IP").
      const where = b.where === "local"
        ? "local"
        : b.via === thisNode
        ? "remote, outside the pod network"
        : `remote, ${b.via ?? "?"}`;
      const ip = b.ip.includes(":") ? `[${b.ip}]` : b.ip;
      return `${ip}:${v.internalPort}  ${where}`;
    }).join("\n");
    const flags = [...v.flags, ...(owner !== undefined ? ["left alone by hnsproxy"] : [])];
    return [service, what, backends, flags.length ? flags.join(", ") : "-"];
  });
  return table(["service", "frontend", "→ backends", "flags"], rows);
}

function roleWords(v: LbView): string {
  switch (v.role) {
    case "ClusterIP":
      return "";
    case "NodePort":
      return "(NodePort)";
    case "Ingress":
      return "(LB ingress)";
    case "HealthCheck":
      return "(health check)";
    default:
      return "";
  }
}

const VERBS: Record<string, string> = {
  create: "create",
  modify: "update in place",
  delete: "delete",
};

/**
 * The HNS operations of a step: each write on a line (`create load balancer
 * 10.96.0.10:53/UDP (2 backends)`), then the reads as counts per function.
 */
export function operationLines(records: readonly HnsCallRecord[], maxListed = 10): string[] {
  const out: string[] = [];
  const writes = records.filter((r) => isWriteCall(r.fn));
  if (writes.length <= maxListed) {
    for (const r of writes) {
      const failed = r.error ? `  FAILED: ${r.error}` : "";
      out.push(`${VERBS[r.op] ?? r.op} ${r.object ?? r.kind ?? ""}${failed}`);
    }
  } else {
    // Many writes: one line per operation and kind, listing the objects briefly.
    const groups = new Map<string, HnsCallRecord[]>();
    for (const r of writes) {
      const key = `${r.op}|${r.kind}`;
      groups.set(key, [...(groups.get(key) ?? []), r]);
    }
    for (const group of groups.values()) {
      const { op, kind } = group[0];
      const noun = kind === "LoadBalancer" ? "load balancers" : `${String(kind).toLowerCase()}s`;
      const failed = group.filter((r) => r.error).length;
      const names = group.map((r) =>
        (r.object ?? "").replace(/^(load balancer|endpoint|network) /, "").replace(/ (\(|→).*$/, "")
      );
      out.push(
        `${VERBS[op] ?? op} ${group.length} ${noun}${failed ? ` (${failed} FAILED)` : ""}: ` +
          names.join(", "),
      );
    }
  }
  if (out.length === 0) out.push("no writes: HNS was not changed");
  const reads: CallCounts = {};
  for (const r of records) if (!isWriteCall(r.fn)) reads[r.fn] = (reads[r.fn] ?? 0) + 1;
  const n = Object.values(reads).reduce((a, b) => a + b, 0);
  out.push(n === 0 ? "reads: none" : `reads: ${n} (${callList(reads)})`);
  return out;
}

/**
 * Break `text` into lines of at most `width` characters at spaces;
 * continuation lines are indented by `indent` spaces.
 */
export function wrap(text: string, width: number, indent = 2): string[] {
  const words = text.split(" ");
  const out: string[] = [];
  let line = "";
  for (const w of words) {
    const next = line === "" ? w : `${line} ${w}`;
    if (next.length > width && line !== "") {
      out.push(line);
      line = " ".repeat(indent) + w;
    } else {
      line = next;
    }
  }
  if (line !== "") out.push(line);
  return out;
}

/** `HcnCreateLoadBalancer 2, HcnDeleteEndpoint 1` in a stable order (writes first). */
export function callList(calls: CallCounts): string {
  return Object.entries(calls)
    .filter(([, n]) => n > 0)
    .sort(([a], [b]) => Number(isWriteCall(b)) - Number(isWriteCall(a)) || (a < b ? -1 : 1))
    .map(([fn, n]) => `${fn} ${n}`)
    .join(", ");
}

/** Only the write calls of a tally. */
export function writesOf(calls: CallCounts): CallCounts {
  return Object.fromEntries(Object.entries(calls).filter(([fn]) => isWriteCall(fn)));
}

/** `95 (31 writes)`. */
export function summaryText(s: CallSummary): string {
  return `${s.total} (${s.writes} write${s.writes === 1 ? "" : "s"})`;
}

/** One row of the comparison. */
export interface ComparisonRow {
  /** What happened. */
  step: string;
  /** hnsproxy's measured calls. */
  hnsproxy: CallCounts;
  /** kube-proxy's modelled calls. */
  kubeProxy: CallCounts;
}

/** The comparison table with a total row. */
export function comparisonTable(rows: readonly ComparisonRow[]): string[] {
  const sum = (pick: (r: ComparisonRow) => CallCounts) => {
    const total: CallSummary = { reads: 0, writes: 0, total: 0 };
    for (const r of rows) {
      const s = summarizeCalls(pick(r));
      total.reads += s.reads;
      total.writes += s.writes;
      total.total += s.total;
    }
    return total;
  };
  const body = rows.map((r) => [
    r.step,
    summaryText(summarizeCalls(r.hnsproxy)),
    summaryText(summarizeCalls(r.kubeProxy)),
  ]);
  const h = sum((r) => r.hnsproxy);
  const k = sum((r) => r.kubeProxy);
  body.push(["total", summaryText(h), summaryText(k)]);
  return table(["step", "hnsproxy: HNS calls (writes)", "kube-proxy: HNS calls (writes)"], body);
}
