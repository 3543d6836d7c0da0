/**
 * lib/heap_collector.ts: a collection only in a window the runner holds
 * changes for, long enough for the longest collection so far: the first one
 * at once, later ones once the heap grew over what the last collection left;
 * none without `gc`.
 */

import { equal, ok } from "node:assert/strict";
import { FIRST_GUESS_MS, GROWTH, HeapCollector, WINDOW_FACTOR } from "../lib/heap_collector.ts";

const MiB = 1 << 20;

/** A heap and a clock by hand; a collection leaves `live` and takes `gcMs`. */
function scene(opts: { live: number; gcMs: number }) {
  const s = { used: opts.live, now: 1000, gcs: 0, live: opts.live, gcMs: opts.gcMs };
  const collector = new HeapCollector({
    collect: () => {
      s.gcs++;
      s.used = s.live;
      s.now += s.gcMs;
    },
    heapUsed: () => s.used,
    now: () => s.now,
  });
  return { s, collector };
}

Deno.test("heap collector: collects once the heap grew, in a window long enough, then waits for growth again", () => {
  const { s, collector } = scene({ live: 80 * MiB, gcMs: 30 });
  const window = WINDOW_FACTOR * FIRST_GUESS_MS;
  // The first window collects what the start left, if long enough for a first guess.
  s.used = 130 * MiB;
  equal(collector.afterRun(s.now + window - 1), false, "the window is too short for a first guess");
  equal(collector.afterRun(undefined), false, "no change is held: none");
  equal(collector.afterRun(s.now - 5), false, "the hold is over: none");
  ok(collector.afterRun(s.now + window));
  equal(s.gcs, 1);
  equal(collector.collections, 1);
  // What it left is the floor: nothing is due until the heap grows by GROWTH.
  equal(collector.afterRun(s.now + 1000), false);
  s.used = 80 * MiB * (1 + GROWTH) - 1;
  equal(collector.afterRun(s.now + 1000), false, "not grown enough yet");
  // Once timed (30 ms), a window of twice that suffices.
  s.used = 80 * MiB * (1 + GROWTH);
  equal(collector.afterRun(s.now + WINDOW_FACTOR * 30 - 1), false);
  ok(collector.afterRun(s.now + WINDOW_FACTOR * 30));
  equal(s.gcs, 2);
});

Deno.test("heap collector: what V8's own collection left lowers the floor", () => {
  const { s, collector } = scene({ live: 60 * MiB, gcMs: 10 });
  s.used = 100 * MiB;
  ok(collector.afterRun(s.now + 1000));
  // The heap grew to 70 MiB, then V8 collected on its own: 50 MiB left, and growth counts from there.
  s.used = 50 * MiB;
  equal(collector.afterRun(s.now + 1000), false);
  s.used = 50 * MiB * (1 + GROWTH) - 1;
  equal(collector.afterRun(s.now + 1000), false);
  s.used = 50 * MiB * (1 + GROWTH);
  ok(collector.afterRun(s.now + 1000));
  equal(s.gcs, 2);
});

Deno.test("heap collector: without gc exposed it never collects", () => {
  const collector = new HeapCollector({ collect: undefined, heapUsed: () => 1e12 });
  equal(collector.enabled, false);
  equal(collector.afterRun(performance.now() + 1e6), false);
  equal(collector.afterRun(performance.now() + 1e6), false);
});
