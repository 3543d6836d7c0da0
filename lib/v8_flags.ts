/**
 * V8 settings the agent is meant to run with: baked into the compiled
 * executable by scripts/compile.ts, passed by the benchmarks, and shown in
 * the README's `deno run` command.
 *
 * A sync allocates quickly (a cold start at 10,000 services builds some
 * 100 MB of short-lived objects), and V8 then grows each young-generation
 * semi-space to its 16 MiB default maximum, which shows up as resident memory
 * that holds only garbage. A 4 MiB cap measured 30–40 MiB less peak RSS at
 * 10,000 services with no change in time to converge (bench/RESULTS.md).
 *
 * V8's memory reducer starts a full mark-compact whenever the agent looks
 * idle (between two changes), only to shrink the heap limit, so that the next
 * ordinary one follows soon: with it, about two thirds of the mark-compacts
 * of a 10,000-service agent taking one change a second were the reducer's,
 * with incremental marking steps of up to ~100 ms on the main thread, the
 * largest part of the event-to-HNS latency tail (bench/analysis.md). Without
 * it the peak RSS is the same: a cold start's peak comes before any idle time.
 *
 * @module
 */

/** The V8 flags of the agent, each as `--name=value`. */
export const AGENT_V8_FLAGS: readonly string[] = [
  "--max-semi-space-size=4",
  "--no-memory-reducer",
];

/** The `--v8-flags=…` argument for `deno run` / `deno compile`, with extra flags appended. */
export function v8FlagsArgument(...extra: string[]): string {
  return `--v8-flags=${[...AGENT_V8_FLAGS, ...extra].join(",")}`;
}
