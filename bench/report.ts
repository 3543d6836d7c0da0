/**
 * Turns scenario results into text: the console lines of a run and the
 * Markdown of bench/RESULTS.md (machine, date, Deno version, every figure
 * with its target and verdict, the call tables).
 *
 * @module
 */

import {
  type Figure,
  fmt,
  meets,
  type ScenarioResult,
  type Table,
  targetText,
  verdict,
} from "./results.ts";

/** Facts about the machine and runtime the numbers come from. */
export interface MachineInfo {
  /** CPU model name. */
  cpu: string;
  /** Logical CPUs. */
  cores: number;
  /** Total memory, GiB. */
  memoryGiB: number;
  /** OS and kernel. */
  os: string;
  /** Deno, V8 and TypeScript versions. */
  deno: string;
  /** ISO date and time of the run. */
  date: string;
  /** Git commit of the tree measured. */
  commit: string;
}

/** Read the machine facts (Linux /proc where available). */
export async function machineInfo(): Promise<MachineInfo> {
  const read = (p: string) => {
    try {
      return Deno.readTextFileSync(p);
    } catch {
      return "";
    }
  };
  const cpu = read("/proc/cpuinfo").match(/^model name\s*:\s*(.+)$/m)?.[1] ?? "unknown";
  const memKb = Number(read("/proc/meminfo").match(/^MemTotal:\s+(\d+)/m)?.[1] ?? 0);
  let commit = "unknown";
  try {
    const out = await new Deno.Command("git", {
      args: ["rev-parse", "--short", "HEAD"],
      stdout: "piped",
      stderr: "null",
    })
      .output();
    if (out.success) commit = new TextDecoder().decode(out.stdout).trim();
    const status = await new Deno.Command("git", {
      args: ["status", "--porcelain", "--untracked-files=no"],
      stdout: "piped",
      stderr: "null",
    }).output();
    const dirty = new TextDecoder().decode(status.stdout).split("\n").filter((l) => l.trim());
    if (status.success && dirty.length > 0) {
      commit += ` plus uncommitted changes in ${dirty.length} tracked files`;
    }
  } catch {
    // No git: the commit stays unknown.
  }
  const pretty = read("/etc/os-release").match(/^PRETTY_NAME="?([^"\n]+)"?$/m)?.[1] ??
    Deno.build.os;
  return {
    cpu,
    cores: navigator.hardwareConcurrency,
    memoryGiB: Math.round(memKb / 1024 / 1024 * 10) / 10,
    os: `${pretty}, kernel ${Deno.osRelease()}`,
    deno: `Deno ${Deno.version.deno}, V8 ${Deno.version.v8}, TypeScript ${Deno.version.typescript}`,
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    commit,
  };
}

function value(f: Figure): string {
  return `${
    fmt(f.value, f.unit === "ms" || f.unit === "MiB" || f.unit === "MiB/min" ? 1 : 2)
  } ${f.unit}`;
}

/**
 * The sentence on the machine probe around the scenario process that
 * measured a result (bench/machine_probe.ts), or "" when it did not run.
 * One process measures several sections (the cluster scenario's cold start,
 * changes, restart and resync), so the sentence names the process, not the
 * section.
 */
export function machineProbeText(r: ScenarioResult): string {
  const ms = (v: number | undefined) => v === undefined ? "—" : `${fmt(v, 0)} ms`;
  const times = (p: { before?: number; after?: number } | undefined) =>
    p?.before === undefined && p?.after === undefined
      ? undefined
      : `${ms(p.before)} before it started, ${ms(p.after)} after it ended`;
  const compute = times(r.machineProbeMs);
  const memory = times(r.memoryProbeMs);
  if (!compute && !memory) return "";
  const what = [compute && `compute ${compute}`, memory && `memory ${memory}`].filter(Boolean);
  return `Machine probe (bench/machine_probe.ts: the same fixed work in a fresh process, lower is ` +
    `faster) around the scenario process that measured this: ${what.join("; ")}.`;
}

/** Console lines for one scenario. */
export function consoleLines(r: ScenarioResult): string[] {
  const lines = [`\n== ${r.title} (${fmt(r.wallMs / 1000)} s)`];
  const probe = machineProbeText(r);
  if (probe) lines.push(`  ${probe}`);
  for (const f of r.figures) {
    const t = f.target ? `  [target ${targetText(f)}: ${verdict(f)}]` : "";
    lines.push(`  ${f.name.padEnd(64)} ${value(f).padStart(16)}${t}`);
  }
  for (const t of r.tables) {
    lines.push(`  -- ${t.title}`);
    lines.push(`     ${t.header.join(" | ")}`);
    for (const row of t.rows) lines.push(`     ${row.join(" | ")}`);
  }
  for (const n of r.notes) lines.push(`  note: ${n}`);
  for (const f of r.failures) lines.push(`  FAILURE: ${f}`);
  return lines;
}

function mdTable(t: Table): string {
  const esc = (c: string | number) => String(c).replace(/\|/g, "\\|");
  return [
    `| ${t.header.map(esc).join(" | ")} |`,
    `| ${t.header.map(() => "---").join(" | ")} |`,
    ...t.rows.map((r) => `| ${r.map(esc).join(" | ")} |`),
  ].join("\n");
}

/** Every figure that has a target, across results. */
export function targetedFigures(results: readonly ScenarioResult[]): Figure[] {
  return results.flatMap((r) => r.figures.filter((f) => f.target));
}

/** The summary table of targets (Markdown). */
export function targetsTable(results: readonly ScenarioResult[]): string {
  return mdTable({
    title: "targets",
    header: ["figure", "target", "measured", "verdict"],
    rows: targetedFigures(results).map((f) => [f.name, targetText(f), value(f), verdict(f)]),
  });
}

/** The whole bench/RESULTS.md. */
export function resultsMarkdown(
  machine: MachineInfo,
  mode: string,
  results: readonly ScenarioResult[],
  extra: { analysis?: string; kubeMemory?: string; commandLine: string },
): string {
  const out: string[] = [];
  out.push("# hnsproxy benchmark results", "");
  out.push(
    `Generated by \`${extra.commandLine}\` (${mode} mode). Every number below was measured or ` +
      "counted in that run: the real agent (lib/agent.ts) in its own process (the agent host, " +
      "bench/agent_host_proc.ts), the fake API server in another over HTTP, HNS through the real " +
      "FFI binding and HNS threads against the C emulator library loaded in the agent's process " +
      "(zero latency unless stated). CPU and RSS are the agent process's; the agent's memory is " +
      "its RSS minus the emulated HNS's own heap (HnsEmuHeapBytes: pages the emulator maps for " +
      "itself, off the process's malloc, as a separate HNS's memory would be; given a reserve " +
      "before each measured agent, so that it does not move while the agent runs and the " +
      "subtraction is exact at every moment). HNS calls are the " +
      "emulator's own per-function counters.",
    "",
  );
  out.push("## Machine", "");
  out.push(`- date: ${machine.date}`);
  out.push(`- commit: ${machine.commit}`);
  out.push(`- CPU: ${machine.cpu}, ${machine.cores} logical CPUs`);
  out.push(`- memory: ${machine.memoryGiB} GiB`);
  out.push(`- OS: ${machine.os}`);
  out.push(`- runtime: ${machine.deno}`, "");
  out.push("## Targets (issues 7 and 15)", "", targetsTable(results), "");
  if (extra.analysis) out.push(extra.analysis.trim(), "");
  for (const r of results) {
    out.push(`## ${r.title}`, "");
    const probe = machineProbeText(r);
    out.push(`Scenario wall time ${fmt(r.wallMs / 1000)} s.${probe ? ` ${probe}` : ""}`, "");
    if (r.figures.length > 0) {
      out.push(
        mdTable({
          title: "",
          header: ["figure", "value", "target", "verdict", "how / remark"],
          rows: r.figures.map((f) => [f.name, value(f), targetText(f), verdict(f), f.note ?? ""]),
        }),
        "",
      );
    }
    for (const t of r.tables) out.push(`**${t.title}**`, "", mdTable(t), "");
    for (const n of r.notes) out.push(`- ${n}`);
    for (const f of r.failures) out.push(`- **FAILURE**: ${f}`);
    if (r.notes.length + r.failures.length > 0) out.push("");
  }
  if (extra.kubeMemory) {
    out.push(
      "## Cluster store memory (bench/kube_memory.ts)",
      "",
      "```",
      extra.kubeMemory.trim(),
      "```",
      "",
    );
  }
  return out.join("\n");
}

/** Whether every targeted figure met its target. */
export function allMet(results: readonly ScenarioResult[]): boolean {
  return targetedFigures(results).every(meets);
}

/** The README's markers around the copy of the targets table that `--full` keeps current. */
export const README_TARGETS_START = "<!-- bench:targets (written by bench/main.ts --full) -->";
/** See {@link README_TARGETS_START}. */
export const README_TARGETS_END = "<!-- /bench:targets -->";

/**
 * `readme` with the text between its targets markers replaced by `table`
 * (a line naming the run, then the table). Throws if the markers are missing
 * or out of order, so a renamed marker is noticed instead of silently skipped.
 */
export function withReadmeTargets(readme: string, machine: MachineInfo, table: string): string {
  const start = readme.indexOf(README_TARGETS_START);
  const end = readme.indexOf(README_TARGETS_END);
  if (start < 0 || end < start) {
    throw new Error(
      `README.md: no "${README_TARGETS_START}" … "${README_TARGETS_END}" section for the targets table`,
    );
  }
  const body = [
    "",
    `Full run of ${machine.date.slice(0, 10)} (commit ${machine.commit}, ${machine.cores} CPUs, ` +
    `${machine.deno.split(",")[0]}):`,
    "",
    table,
    "",
  ].join("\n");
  return readme.slice(0, start + README_TARGETS_START.length) + "\n" + body + "\n" +
    readme.slice(end);
}
