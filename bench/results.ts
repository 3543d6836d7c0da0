/**
 * What a benchmark scenario reports: figures (each measured or counted,
 * optionally against a target), tables of HNS calls, notes, and
 * correctness failures (which make the run exit non-zero). Plain data, so
 * scenario processes can hand it to the orchestrator as JSON.
 *
 * @module
 */

/** How a figure compares with its target. */
export type TargetOp = "<" | "<=" | "==";

/** A target a figure is held against. */
export interface Target {
  /** Comparison. */
  op: TargetOp;
  /** Bound. */
  value: number;
}

/** One number the benchmark reports. */
export interface Figure {
  /** What it is, e.g. `time to converge`. */
  name: string;
  /** The measured value. */
  value: number;
  /** Unit, e.g. `ms`, `MiB`, `calls`. */
  unit: string;
  /** The target from issue 7, when there is one. */
  target?: Target;
  /** Short remark (how it was measured, why it missed). */
  note?: string;
}

/** A table: header row and body rows. */
export interface Table {
  /** Caption. */
  title: string;
  /** Column names. */
  header: string[];
  /** Rows of cells. */
  rows: (string | number)[][];
}

/** The outcome of one scenario. */
export interface ScenarioResult {
  /** Scenario id, e.g. `cold-10000`. */
  id: string;
  /** Heading, e.g. `1. Cold start, 10,000 services`. */
  title: string;
  /** Key numbers. */
  figures: Figure[];
  /** Call tables and the like. */
  tables: Table[];
  /** Observations worth a sentence. */
  notes: string[];
  /** Correctness failures (not converging, wrong HNS content, leaks). */
  failures: string[];
  /** Wall time of the scenario, ms. */
  wallMs: number;
  /**
   * bench/machine_probe.ts's compute probe: its time just before and just
   * after the scenario's process, ms (set by bench/main.ts; absent when it
   * did not run).
   */
  machineProbeMs?: { before?: number; after?: number };
  /** The same for its memory probe. */
  memoryProbeMs?: { before?: number; after?: number };
}

/** Whether a figure meets its target (true when it has none). */
export function meets(f: Figure): boolean {
  if (!f.target) return true;
  const { op, value } = f.target;
  return op === "<" ? f.value < value : op === "<=" ? f.value <= value : f.value === value;
}

/** The figure's target as text, e.g. `< 10000 ms`. */
export function targetText(f: Figure): string {
  return f.target
    ? `${f.target.op === "==" ? "=" : f.target.op} ${fmt(f.target.value)} ${f.unit}`
    : "";
}

/** A number with thousands separators and at most `digits` decimals. */
export function fmt(n: number, digits = 1): string {
  if (!Number.isFinite(n)) return String(n);
  const r = Math.round(n * 10 ** digits) / 10 ** digits;
  return r.toLocaleString("en-US", { maximumFractionDigits: digits });
}

/** "met" or "missed by X (Y%)" for a figure with a target. */
export function verdict(f: Figure): string {
  if (!f.target) return "";
  if (meets(f)) return "met";
  const over = f.value - f.target.value;
  const pct = f.target.value !== 0 ? ` (${fmt(over / f.target.value * 100, 0)}% over)` : "";
  return `missed by ${fmt(over)} ${f.unit}${pct}`;
}

/** The p-th percentile (0–100) of `values` by nearest rank; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil(p / 100 * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** Least-squares slope of `ys` over `xs` (units of y per unit of x). */
export function slope(xs: readonly number[], ys: readonly number[]): number {
  const n = xs.length;
  if (n < 2) return 0;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0, den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/** A new empty result. */
export function newResult(id: string, title: string): ScenarioResult {
  return { id, title, figures: [], tables: [], notes: [], failures: [], wallMs: 0 };
}
