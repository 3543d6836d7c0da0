/**
 * V8 settings the agent is meant to run with: baked into the compiled
 * executable by scripts/compile.ts, passed by the benchmarks, and shown in
 * the README's `deno run` command.
 *
 * - `--max-semi-space-size=4`: a sync allocates many short-lived objects
 *   quickly, and V8 would grow each young-generation semi-space to its 16 MiB
 *   default, resident memory that holds only garbage.
 * - `--no-memory-reducer`: the reducer starts a full mark-compact whenever the
 *   agent looks idle (between two changes) only to shrink the heap, and its
 *   marking steps on the main thread delay the next change's sync; a cold
 *   start's peak comes before any idle time, so the peak is unchanged.
 *
 * What each measured is in bench/analysis.md.
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
