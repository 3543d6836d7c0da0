/**
 * The emulator's Windows build under Wine: the mingw DLL keeps every rule
 * (the C check program, built for Windows, run under Wine), its heap counts
 * (HnsEmuHeapBytes and HnsEmuHeapInUse, from `_msize`) are the bytes asked
 * for (and HnsEmuReserveHeap reserves nothing), and two Windows
 * processes sharing a state file serialize on its lock, while a Linux process
 * reads what they wrote.
 *
 * Run by the Windows tier (`tests/windows/wine.sh test` sets
 * HNSPROXY_WINE_TIER=1 after it has set up and restarted Wine), with the host's
 * Linux deno driving the Wine processes. Elsewhere it is ignored: Wine left in
 * whatever state by an earlier run is not something the Linux tier relies on.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { buildCheckProgram, buildEmulator, REPO_ROOT } from "./build.ts";

const WINE_SCRIPT = join(REPO_ROOT, "tests", "windows", "wine.sh");
/** Longest a single Wine command may take before it is killed and the test fails. */
const WINE_COMMAND_TIMEOUT_S = 120;

const inWineTier = Deno.env.get("HNSPROXY_WINE_TIER") === "1";

/** One ctl line (the fields this test reads). */
interface CtlLine {
  cmd: string;
  out?: string | null;
  count?: number;
  ok?: number;
  exists?: number;
}

/** Run a Windows command under Wine; stdin is closed and the run is bounded in time. */
async function wine(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command("bash", {
    args: [WINE_SCRIPT, "exec", "--", ...args],
    env: { HNSPROXY_WINE_TIMEOUT: String(WINE_COMMAND_TIMEOUT_S) },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  const result = { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  // timeout(1) exits 124, or 137 once it had to kill.
  if (result.code === 124 || result.code === 137) {
    throw new Error(
      `Wine command did not finish within ${WINE_COMMAND_TIMEOUT_S} s: ${args.join(" ")}\n` +
        result.stderr,
    );
  }
  return result;
}

function winPath(p: string): string {
  return "Z:" + p.replaceAll("/", "\\");
}

Deno.test({
  name: "emulator: the DLL keeps every rule and the state-file lock under Wine",
  ignore: !inWineTier,
  fn: async () => {
    const exe = await buildCheckProgram({ windows: true });
    const dir = join(exe, "..");
    const dll = await buildEmulator({ windows: true, output: join(dir, "hnsemu.dll") });
    const linuxCheck = await buildCheckProgram();
    const linuxLibrary = await buildEmulator();
    const rules = await wine([winPath(exe), winPath(dll), "rules"]);
    assert.equal(rules.code, 0, `rules under Wine failed:\n${rules.stderr}${rules.stdout}`);
    assert.match(rules.stdout, /^\d+ checks, 0 failed/m);

    const state = join(dir, `hns-${crypto.randomUUID()}.json`);
    const ctlWine = async (...cmds: string[]) => {
      const r = await wine([
        winPath(exe),
        winPath(dll),
        "--env",
        `HNSEMU_STATE_FILE=${winPath(state)}`,
        "ctl",
        ...cmds,
      ]);
      assert.equal(r.code, 0, `ctl under Wine failed:\n${r.stderr}`);
      return r.stdout.trim().split(/\r?\n/).map((l) => JSON.parse(l) as CtlLine);
    };
    try {
      const [net] = await ctlWine("create-net", JSON.stringify({ Name: "cbr0" }));
      const n = 150;
      const [a, b] = await Promise.all([
        ctlWine("create-eps", net.out!, "10.244", String(n)),
        ctlWine("create-eps", net.out!, "10.244", String(n)),
      ]);
      assert.equal(a[0].ok! + b[0].ok!, n);
      assert.equal(a[0].exists! + b[0].exists!, n);
      // And a Linux process reads what the Windows processes wrote.
      const count = await new Deno.Command(linuxCheck, {
        args: [linuxLibrary, "ctl", "count", "endpoint"],
        env: { HNSEMU_STATE_FILE: state },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(count.code, 0, new TextDecoder().decode(count.stderr));
      const lines = new TextDecoder().decode(count.stdout).trim().split("\n").map((l) =>
        JSON.parse(l) as CtlLine
      );
      assert.deepEqual(lines, [{ cmd: "count", count: n }]);
    } finally {
      for (const f of [state, `${state}.lock`]) await Deno.remove(f).catch(() => {});
    }
  },
});

Deno.test({
  name: "emulator: the DLL's heap counters under Wine count the bytes asked for (_msize)",
  ignore: !inWineTier,
  fn: async () => {
    const exe = await buildCheckProgram({ windows: true });
    const dll = await buildEmulator({ windows: true, output: join(exe, "..", "hnsemu.dll") });
    const r = await wine([winPath(exe), winPath(dll), "heap"]);
    assert.equal(r.code, 0, `heap under Wine failed:\n${r.stderr}${r.stdout}`);
    // The check printed its figures (it ran, not skipped) and they hold to the byte: an odd
    // number of bytes more in a name costs exactly that many more.
    assert.match(r.stdout, /a name 1001 bytes longer costs 1001 bytes more/);
    assert.match(r.stdout, /^[1-9]\d* checks, 0 failed/m);
    // HnsEmuReserveHeap: the DLL's blocks are the CRT heap's, so nothing is reserved or counted.
    const reserve = await wine([winPath(exe), winPath(dll), "reserve"]);
    assert.equal(reserve.code, 0, `reserve under Wine failed:\n${reserve.stderr}${reserve.stdout}`);
    assert.match(reserve.stdout, /^reserve: none on Windows$/m);
    assert.match(reserve.stdout, /^[1-9]\d* checks, 0 failed/m);
  },
});
