/**
 * lib/heap_collector.ts: a collection only in a window the runner holds
 * changes for, long enough for what a collection of the heap's size is
 * expected to take: the first one at once, later ones once the heap grew over
 * what the last collection left; a compacting one when the resident heap has
 * room to give back and the window fits it; none without `gc`.
 */

import { equal, ok } from "node:assert/strict";
import {
  COMPACT_ROOM,
  FIRST_GUESS_COMPACT_MS_PER_MIB,
  FIRST_GUESS_MS_PER_MIB,
  GROWTH,
  HeapCollector,
  MIN_GROWTH,
  RELAX,
  WINDOW_FACTOR,
} from "../lib/heap_collector.ts";

const MiB = 1 << 20;

/**
 * A heap and a clock by hand; a collection leaves `live` and takes `msPerMiB`
 * × the used heap (a compacting one `compactMsPerMiB`, and leaves the
 * resident heap at `live`; none with `noCompact`); the resident heap is
 * `resident` (0: the used heap).
 */
function scene(
  opts: { live: number; msPerMiB: number; compactMsPerMiB?: number; noCompact?: boolean },
) {
  const s = {
    used: opts.live,
    external: 0,
    resident: 0,
    now: 1000,
    gcs: 0,
    compactions: 0,
    live: opts.live,
    msPerMiB: opts.msPerMiB,
    compactMsPerMiB: opts.compactMsPerMiB ?? 4 * opts.msPerMiB,
  };
  const collector = new HeapCollector({
    collect: () => {
      s.gcs++;
      s.now += s.msPerMiB * s.used / MiB;
      s.used = s.live;
    },
    compact: opts.noCompact ? undefined : () => {
      s.compactions++;
      s.now += s.compactMsPerMiB * s.used / MiB;
      s.used = s.live;
      s.resident = s.live;
    },
    heapUsed: () => s.used,
    external: () => s.external,
    heapResident: () => s.resident || s.used,
    now: () => s.now,
  });
  return { s, collector };
}

Deno.test("heap collector: collects once the heap grew, in a window long enough, then waits for growth again", () => {
  const { s, collector } = scene({ live: 80 * MiB, msPerMiB: 0.25, noCompact: true });
  // The first window collects what the start left, if long enough for a first guess at 130 MiB.
  s.used = 130 * MiB;
  const window = WINDOW_FACTOR * FIRST_GUESS_MS_PER_MIB * 130;
  equal(
    collector.afterRun(s.now + window - 1),
    undefined,
    "the window is too short for a first guess",
  );
  equal(collector.afterRun(undefined), undefined, "no change is held: none");
  equal(collector.afterRun(s.now - 5), undefined, "the hold is over: none");
  ok(collector.afterRun(s.now + window));
  equal(s.gcs, 1);
  equal(collector.collections, 1);
  // What it left is the floor: nothing is due until the heap grows by GROWTH.
  equal(collector.afterRun(s.now + 1000), undefined);
  s.used = 80 * MiB * (1 + GROWTH) - 1;
  equal(collector.afterRun(s.now + 1000), undefined, "not grown enough yet");
  // Once timed (0.25 ms per MiB), a window of twice that for the heap's size suffices.
  s.used = 80 * MiB * (1 + GROWTH);
  const due = WINDOW_FACTOR * 0.25 * s.used / MiB;
  equal(collector.afterRun(s.now + due - 1), undefined);
  ok(collector.afterRun(s.now + due));
  equal(s.gcs, 2);
});

Deno.test("heap collector: the window a collection needs grows with the heap it collects", () => {
  const { s, collector } = scene({ live: 40 * MiB, msPerMiB: 1, noCompact: true });
  s.used = 50 * MiB;
  ok(collector.afterRun(s.now + 10_000));
  equal(collector.expectedMs(50 * MiB), 50);
  // Measured on 50 MiB; a heap twice the size is expected to take twice as long.
  equal(collector.expectedMs(100 * MiB), 100);
  s.live = 100 * MiB;
  s.used = 100 * MiB;
  ok(collector.afterRun(s.now + 10_000), "the floor was 40 MiB: due");
  s.used = 200 * MiB;
  equal(collector.afterRun(s.now + WINDOW_FACTOR * 200 - 1), undefined, "too short for 200 MiB");
  ok(collector.afterRun(s.now + WINDOW_FACTOR * 200));
  equal(s.gcs, 3);
});

Deno.test("heap collector: the slowest collection per MiB so far sets the expectation", () => {
  const { s, collector } = scene({ live: 60 * MiB, msPerMiB: 2, noCompact: true });
  s.used = 100 * MiB;
  ok(collector.afterRun(s.now + 10_000));
  equal(collector.expectedMs(100 * MiB), 200);
  // A faster collection does not lower it.
  s.msPerMiB = 0.5;
  s.used = 100 * MiB;
  ok(collector.afterRun(s.now + 10_000));
  equal(collector.expectedMs(100 * MiB), 200);
  // A slower one raises it.
  s.msPerMiB = 3;
  s.used = 100 * MiB;
  ok(collector.afterRun(s.now + 10_000));
  equal(collector.expectedMs(100 * MiB), 300);
});

Deno.test("heap collector: what V8's own collection left lowers the floor", () => {
  const { s, collector } = scene({ live: 60 * MiB, msPerMiB: 0.1, noCompact: true });
  s.used = 100 * MiB;
  ok(collector.afterRun(s.now + 1000));
  // The heap grew to 70 MiB, then V8 collected on its own: 50 MiB left, and growth counts from there.
  s.used = 50 * MiB;
  equal(collector.afterRun(s.now + 1000), undefined);
  s.used = 50 * MiB * (1 + GROWTH) - 1;
  equal(collector.afterRun(s.now + 1000), undefined);
  s.used = 50 * MiB * (1 + GROWTH);
  ok(collector.afterRun(s.now + 1000));
  equal(s.gcs, 2);
});

Deno.test("heap collector: without gc exposed it never collects", () => {
  const collector = new HeapCollector({ collect: undefined, heapUsed: () => 1e12 });
  equal(collector.enabled, false);
  equal(collector.afterRun(performance.now() + 1e6), undefined);
  equal(collector.afterRun(performance.now() + 1e6), undefined);
});

Deno.test("heap collector: a due collection compacts when the resident heap has room to give back and the window fits it", () => {
  const { s, collector } = scene({ live: 60 * MiB, msPerMiB: 1, compactMsPerMiB: 4 });
  // The first collection is a regular one, whatever the resident heap: no floor yet.
  s.used = 80 * MiB;
  s.resident = 200 * MiB;
  equal(collector.afterRun(s.now + 10_000), "regular");
  // Due again, the resident heap within COMPACT_ROOM of the floor: regular.
  s.used = 80 * MiB;
  s.resident = 60 * MiB * (1 + COMPACT_ROOM);
  equal(collector.afterRun(s.now + 10_000), "regular");
  equal(s.compactions, 0);
  // Beyond it, with a window long enough for a first guess at a compacting one: compacting.
  s.used = 80 * MiB;
  s.resident = 60 * MiB * (1 + COMPACT_ROOM) + MiB;
  const guess = WINDOW_FACTOR * FIRST_GUESS_COMPACT_MS_PER_MIB * 80;
  equal(collector.afterRun(s.now + guess), "compacting");
  equal(s.compactions, 1);
  equal(s.resident, 60 * MiB, "the resident heap given back");
  // Timed at 4 ms per MiB: a window that fits only a regular one gets a regular one.
  s.used = 80 * MiB;
  s.resident = 100 * MiB;
  equal(collector.afterRun(s.now + WINDOW_FACTOR * 4 * 80 - 1), "regular");
  s.used = 80 * MiB;
  s.resident = 100 * MiB;
  equal(collector.afterRun(s.now + WINDOW_FACTOR * 4 * 80), "compacting");
  equal(s.compactions, 2);
  equal(collector.collections, 5);
});

Deno.test("heap collector: one slow compaction does not stop compactions for good: windows it did not fit relax its expectation", () => {
  const { s, collector } = scene({ live: 60 * MiB, msPerMiB: 1, compactMsPerMiB: 10 });
  s.used = 80 * MiB;
  equal(collector.afterRun(s.now + 1), undefined, "no window");
  collector.collect();
  // A compaction on a busy moment: 10 ms per MiB, twice the first guess.
  s.used = 80 * MiB;
  s.resident = 100 * MiB;
  equal(collector.afterRun(s.now + 10_000), "compacting");
  equal(collector.expectedMs(80 * MiB, "compacting"), 800);
  // 1 s windows fit a regular collection but not that compaction; each one it is due and
  // does not fit takes 10% off, until it fits again.
  s.compactMsPerMiB = 4;
  const kinds: (string | undefined)[] = [];
  for (let i = 0; i < 8 && s.compactions < 2; i++) {
    s.used = 80 * MiB;
    s.resident = 100 * MiB;
    kinds.push(collector.afterRun(s.now + 1000));
  }
  // 800 → 720 → 648 → 583 → 525 → 472 ms: 2 × 472 fits 1 s.
  equal(kinds.join(), "regular,regular,regular,regular,regular,compacting");
  equal(s.compactions, 2);
  // Never below the first guess, however many windows it misses.
  for (let i = 0; i < 50; i++) {
    s.used = 80 * MiB;
    s.resident = 100 * MiB;
    collector.afterRun(s.now + 1);
  }
  equal(collector.expectedMs(MiB, "compacting"), FIRST_GUESS_COMPACT_MS_PER_MIB);
  ok(RELAX < 1);
});

Deno.test("heap collector: without a compacting collection, only regular ones", () => {
  const used = { v: 100 * MiB };
  let gcs = 0;
  const collector = new HeapCollector({
    collect: () => {
      gcs++;
      used.v = 50 * MiB;
    },
    compact: undefined,
    heapUsed: () => used.v,
    heapResident: () => 500 * MiB,
    now: () => 0,
  });
  equal(collector.afterRun(1e6), "regular");
  used.v = 100 * MiB;
  equal(collector.afterRun(1e6), "regular");
  equal(gcs, 2);
});

Deno.test("heap collector: a collection asked for is made at once, whatever is due, timed and counted", () => {
  const { s, collector } = scene({ live: 60 * MiB, msPerMiB: 2, compactMsPerMiB: 5 });
  s.used = 61 * MiB;
  equal(collector.collect(), "regular", "made though the heap has not grown");
  equal(collector.collect("compacting"), "compacting", "no window needed");
  equal(s.gcs, 1);
  equal(s.compactions, 1);
  equal(collector.collections, 2);
  equal(collector.expectedMs(60 * MiB, "compacting"), 300, "timed: 5 ms per MiB");
  // What it left is the floor of afterRun's growth rule.
  s.used = 60 * MiB * (1 + GROWTH) - 1;
  equal(collector.afterRun(s.now + 10_000), undefined);
  // None without gc; a compacting one asked for where only regular ones exist: none either.
  const none = new HeapCollector({ collect: undefined, compact: undefined });
  equal(none.collect(), undefined);
  equal(none.collect("compacting"), undefined);
  const regularOnly = scene({ live: MiB, msPerMiB: 1, noCompact: true });
  equal(regularOnly.collector.collect("compacting"), undefined);
  equal(regularOnly.s.gcs, 0);
});

Deno.test("heap collector: memory V8 counts outside the heap (ArrayBuffers) makes a collection due as the heap does", () => {
  const { s, collector } = scene({ live: 50 * MiB, msPerMiB: 0.1, noCompact: true });
  s.external = 10 * MiB;
  ok(collector.afterRun(s.now + 1000), "the first: the start's garbage");
  // The heap stays level; buffers outside it pile up (garbage only a full collection frees).
  s.used = 51 * MiB;
  s.external = 60 * MiB * (1 + GROWTH) - 51 * MiB - 1;
  equal(collector.afterRun(s.now + 1000), undefined, "not grown enough yet");
  s.external += 1;
  ok(collector.afterRun(s.now + 1000), "heap and buffers together grew by GROWTH");
  equal(s.gcs, 2);
  // A collection of V8's own that freed the buffers lowers that floor too.
  s.external = 5 * MiB;
  s.used = 50 * MiB;
  equal(collector.afterRun(s.now + 1000), undefined);
  s.external = 55 * MiB * (1 + GROWTH) - 50 * MiB;
  ok(collector.afterRun(s.now + 1000));
});

Deno.test("heap collector: due at a tenth's growth over the floor, never at less than MIN_GROWTH", () => {
  const { s, collector } = scene({ live: 50 * MiB, msPerMiB: 1, compactMsPerMiB: 4 });
  ok(collector.afterRun(s.now + 10_000));
  // 11% over a 50 MiB floor, the resident heap 22% over it: a compacting collection.
  s.used = 55.5 * MiB;
  s.resident = 61 * MiB;
  equal(collector.afterRun(s.now + 10_000), "compacting");
  equal(GROWTH, 0.1);
  equal(COMPACT_ROOM, 0.2);
  // A small heap: its young generation's garbage alone (under MIN_GROWTH) makes none due.
  const small = scene({ live: 8 * MiB, msPerMiB: 1, compactMsPerMiB: 4 });
  ok(small.collector.afterRun(small.s.now + 10_000));
  small.s.used = 8 * MiB + MIN_GROWTH - 1;
  equal(small.collector.afterRun(small.s.now + 10_000), undefined, "under MIN_GROWTH");
  small.s.used = 8 * MiB + MIN_GROWTH;
  ok(small.collector.afterRun(small.s.now + 10_000));
  equal(small.s.gcs + small.s.compactions, 2);
});
