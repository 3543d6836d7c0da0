/**
 * bench/report.ts: the README's copy of the targets table, as `--full`
 * writes it, and the machine probe beside each scenario.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  consoleLines,
  type MachineInfo,
  machineProbeText,
  README_TARGETS_END,
  README_TARGETS_START,
  resultsMarkdown,
  targetsTable,
  withReadmeTargets,
} from "../../bench/report.ts";
import { newResult } from "../../bench/results.ts";

const MACHINE: MachineInfo = {
  cpu: "Test CPU",
  cores: 2,
  memoryGiB: 24,
  os: "Linux",
  deno: "Deno 2.9.6, V8 15.0, TypeScript 6.0",
  date: "2026-12-03T21:00:00Z",
  commit: "abc1234",
};

function results() {
  const r = newResult("cold", "1. Cold start");
  r.figures.push(
    { name: "writes", value: 52_000, unit: "calls", target: { op: "==", value: 52_000 } },
    { name: "p99", value: 70, unit: "ms", target: { op: "<", value: 50 } },
    { name: "untargeted", value: 1, unit: "ms" },
  );
  return [r];
}

Deno.test("README targets: the text between the markers is replaced, the rest kept", () => {
  const readme =
    `# Title\n\nbefore\n\n${README_TARGETS_START}\nold table\n${README_TARGETS_END}\n\nafter\n`;
  const table = targetsTable(results());
  const out = withReadmeTargets(readme, MACHINE, table);
  assert.ok(out.startsWith(`# Title\n\nbefore\n\n${README_TARGETS_START}\n`));
  assert.ok(out.endsWith(`${README_TARGETS_END}\n\nafter\n`));
  assert.ok(!out.includes("old table"));
  assert.ok(out.includes("Full run of 2026-12-03 (commit abc1234, 2 CPUs, Deno 2.9.6):"));
  assert.ok(out.includes("| writes "), "targeted figure listed");
  assert.match(out, /\| p99 .*missed by 20 ms/);
  assert.ok(!out.includes("untargeted"), "only figures with a target");
  // A second run replaces its own output.
  assert.equal(withReadmeTargets(out, MACHINE, table), out);
});

Deno.test("README targets: missing or swapped markers are an error naming them", () => {
  assert.throws(
    () => withReadmeTargets("# no markers\n", MACHINE, "t"),
    /README\.md: no "<!-- bench:targets/,
  );
  assert.throws(
    () => withReadmeTargets(`${README_TARGETS_END}\n${README_TARGETS_START}\n`, MACHINE, "t"),
    /README\.md: no/,
  );
});

Deno.test("README targets: the repository's README has the markers", async () => {
  const readme = await Deno.readTextFile(
    fileURLToPath(new URL("../../README.md", import.meta.url)),
  );
  const start = readme.indexOf(README_TARGETS_START);
  assert.ok(start >= 0 && readme.indexOf(README_TARGETS_END) > start);
  assert.ok(readme.slice(0, start).includes("## Performance"), "inside the Performance section");
});

Deno.test("machine probe: its times stand beside the scenario in RESULTS.md and on the console", () => {
  const [r] = results();
  assert.equal(machineProbeText(r), "", "no probe, no sentence");
  assert.ok(!resultsMarkdown(MACHINE, "full", [r], { commandLine: "x" }).includes("Machine probe"));
  r.machineProbeMs = { before: 412.4, after: 871.6 };
  const md = resultsMarkdown(MACHINE, "full", [r], { commandLine: "x" });
  assert.match(
    md,
    /Scenario wall time .* s\. Machine probe .*: compute 412 ms before it started, 872 ms after it ended\./,
  );
  assert.ok(consoleLines(r).some((l) => l.includes("412 ms before it started, 872 ms after it")));
  r.memoryProbeMs = { before: 1703, after: 2210 };
  assert.match(
    machineProbeText(r),
    /compute 412 ms before it started, 872 ms after it ended; memory 1,703 ms before it started, 2,210 ms after it ended\.$/,
  );
  r.machineProbeMs = { after: 500 };
  r.memoryProbeMs = undefined;
  assert.match(machineProbeText(r), /compute — before it started, 500 ms after it ended\.$/);
});
