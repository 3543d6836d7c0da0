/**
 * V8 settings the agent is meant to run with: baked into the compiled
 * executable by scripts/compile.ts, passed by the benchmarks, and shown in
 * the README's `deno run` command.
 *
 * - `--max-semi-space-size=2`: a sync allocates many short-lived objects
 *   quickly, and V8 would grow each young-generation semi-space to its 16 MiB
 *   default, resident memory that holds only garbage. It reaches its maximum
 *   during a cold start's lists and keeps it, so all of it is resident at the
 *   start's peak. At 2 MiB its scavenges cost the start no more CPU time and
 *   a change no more latency than at 4 (V8 rounds 3 up to 4).
 * - `--no-memory-reducer`: the reducer starts a full mark-compact whenever the
 *   agent looks idle (between two changes) only to shrink the heap, and its
 *   marking steps on the main thread delay the next change's sync; a cold
 *   start's peak comes before any idle time, so the peak is unchanged.
 * - `--heap-growing-percent=30`: after each full collection V8 lets the old
 *   generation grow to a multiple of what survived before it collects again,
 *   and while collecting looks cheap it picks up to 4×. A cold start promotes
 *   much short-lived garbage (plans, calls in flight), and its peak is where
 *   the heap reaches that limit at the end of its creates; a fixed 1.3×
 *   collects it sooner, for about the same CPU time.
 * - `--max-opt=2`: optimized code from Maglev only, not TurboFan. A cold start
 *   at 10,000 services runs most of its code once or a few times, and TurboFan
 *   compiled it on V8's helper threads (~700 ms of CPU of a cold start's ~4.4
 *   s), competing with the main thread and the HNS thread for the cores, and
 *   held its compile zones in malloc. Without TurboFan the cold start takes
 *   ~7-10% more main-thread CPU but no longer (the helpers' CPU it frees makes
 *   up for it), and its peak and a restart's are ~4-5 MiB lower (alternated
 *   runs of the cold start as the full benchmark runs it). Code that runs
 *   often is Maglev's, slower: a periodic resync's run at 10,000 services
 *   takes 1-7 ms more (6.7-11.9 ms in the full runs since, against 5-6 ms).
 * - `--expose-gc`: lets the agent make full collections itself, only where the
 *   runner holds every change anyway (lib/heap_collector.ts), so that its heap
 *   is collected before it grows to V8's limit; without it the agent makes
 *   none.
 *
 * What each measured is in bench/analysis.md.
 *
 * @module
 */

/** The V8 flags of the agent, each as `--name=value`. */
export const AGENT_V8_FLAGS: readonly string[] = [
  "--max-semi-space-size=2",
  "--no-memory-reducer",
  "--heap-growing-percent=30",
  "--max-opt=2",
  "--expose-gc",
];

/** The `--v8-flags=…` argument for `deno run` / `deno compile`, with extra flags appended. */
export function v8FlagsArgument(...extra: string[]): string {
  return `--v8-flags=${[...AGENT_V8_FLAGS, ...extra].join(",")}`;
}
