/**
 * The Windows tier's watchdog (tests/windows/wine.sh `run_windows_tests`): a
 * test run that hangs fails, unless its last output is a summary of 0 failed
 * tests and only the process does not exit. Runs on Linux with the script's
 * own functions (it is sourced) and a stand-in for deno.exe under Wine: a
 * bash process that prints what deno prints and then hangs, ended by the
 * Wine timeout (`timeout`, as `in_chroot` runs every Wine command) or by
 * stopping Wine (`cmd_stop`, here: killing the stand-in).
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const WINE_SH = fileURLToPath(new URL("./wine.sh", import.meta.url));
/** The Wine timeout for the stand-in: long enough for the watchdog's 2 s polls on a busy machine. */
const WINE_TIMEOUT_S = 20;

/** The stand-in's bash: print `output` (printf format), then hang or exit with `exit`. */
interface Scenario {
  output: string;
  exit?: number;
}

/** Run `run_windows_tests` with the stand-in; its exit status and what it logged. */
async function watchdog(s: Scenario): Promise<{ code: number; log: string }> {
  const cache = await Deno.makeTempDir({ prefix: "hnsproxy-wine-watchdog-" });
  const script = `
    set -euo pipefail
    source "$WINE_SH"
    mkdir -p "$STATE"
    # deno.exe under Wine: as in_chroot runs it, under timeout(1) with the Wine timeout.
    cmd_deno() {
      timeout "$WINE_TIMEOUT" bash -c 'printf "$1"; [[ -n "$2" ]] && exit "$2"; echo $$ >"$3"; exec sleep 600' \\
        stand-in "$OUTPUT" "$EXIT" "$CACHE/stand-in.pid"
    }
    # Stopping Wine ends every Windows process.
    cmd_stop() { kill "$(cat "$CACHE/stand-in.pid")"; }
    run_windows_tests
  `;
  try {
    const out = await new Deno.Command("bash", {
      args: ["-c", script],
      env: {
        WINE_SH,
        HNSPROXY_WINE_CACHE: cache,
        HNSPROXY_WINE_TIMEOUT: String(WINE_TIMEOUT_S),
        HNSPROXY_WINE_TEARDOWN_GRACE: "2",
        OUTPUT: s.output,
        EXIT: s.exit === undefined ? "" : String(s.exit),
      },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    return { code: out.code, log: new TextDecoder().decode(out.stderr) };
  } finally {
    await Deno.remove(cache, { recursive: true });
  }
}

const SUMMARY_PASSED = "\\033[32mok\\033[0m | 3 passed | 0 failed | 1 ignored (2s)\\r\\n";

Deno.test({
  name: "wine.sh watchdog: only a hang on exit after a passing summary passes",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const [teardown, failed, unfinished, moreAfter, exited, exitedFailing] = await Promise.all([
      // Every test passed; the process does not exit.
      watchdog({ output: `running 3 tests\\n${SUMMARY_PASSED}\\n` }),
      // A test failed and the process hangs.
      watchdog({ output: "running 3 tests\\nFAILED | 2 passed | 1 failed (2s)\\n" }),
      // No summary: the run hangs in a test.
      watchdog({ output: "running 3 tests from ./a_test.ts\\nstep ...\\n" }),
      // A summary-like line (a nested run's), then more tests, then the hang.
      watchdog({ output: `${SUMMARY_PASSED}running 2 tests from ./b_test.ts\\n` }),
      // Exits by itself: its status decides.
      watchdog({ output: SUMMARY_PASSED, exit: 0 }),
      watchdog({ output: `${SUMMARY_PASSED}error: leaked resources\\n`, exit: 1 }),
    ]);
    assert.equal(teardown.code, 0, teardown.log);
    assert.match(teardown.log, /only the process hangs on exit; stopping Wine, the run passes/);
    assert.match(teardown.log, /"ok \| 3 passed \| 0 failed \| 1 ignored \(2s\)"/);
    const hangs = { failed, unfinished, moreAfter };
    for (const [what, r] of Object.entries(hangs)) {
      assert.equal(r.code, 124, `${what}: ${r.log}`);
      assert.match(
        r.log,
        new RegExp(`did not finish within ${WINE_TIMEOUT_S} s .* the run fails`, "s"),
      );
      assert.doesNotMatch(r.log, /the run passes/, what);
    }
    assert.match(moreAfter.log, /"running 2 tests from \.\/b_test\.ts"/);
    assert.equal(exited.code, 0, exited.log);
    assert.equal(exited.log, "");
    assert.equal(exitedFailing.code, 1, exitedFailing.log);
  },
});
