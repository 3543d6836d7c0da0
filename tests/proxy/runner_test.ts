import assert from "node:assert/strict";
import { BoundedFrequencyRunner } from "../../lib/proxy/runner.ts";
import { RetryBackoff } from "../../lib/proxy/backoff.ts";
import { ManualTimers, settle } from "./fake_timers.ts";

/** A sync function that records start times and can be held open. */
function recorder(timers: ManualTimers) {
  const starts: number[] = [];
  let release: (() => void) | undefined;
  let hold = false;
  let failNext = 0;
  const fn = async () => {
    starts.push(timers.now());
    if (failNext > 0) {
      failNext--;
      throw new Error("boom");
    }
    if (hold) await new Promise<void>((resolve) => (release = resolve));
  };
  return {
    fn,
    starts,
    hold() {
      hold = true;
    },
    release() {
      hold = false;
      release?.();
    },
    failTimes(n: number) {
      failNext = n;
    },
  };
}

/**
 * A runner over a {@link recorder} on manual timers, started at time 0 (its
 * first run held open with `hold`, failing `failTimes` times first).
 */
async function started(
  min = 1000,
  max = 30_000,
  options: { hold?: boolean; failTimes?: number } = {},
) {
  const timers = new ManualTimers();
  const rec = recorder(timers);
  const runner = new BoundedFrequencyRunner(rec.fn, {
    minIntervalMs: min,
    maxIntervalMs: max,
    timers,
    errorBackoff: new RetryBackoff({ initialMs: 1000, maxMs: 8000, jitter: 0, clock: timers }),
  });
  if (options.hold) rec.hold();
  if (options.failTimes) rec.failTimes(options.failTimes);
  runner.start();
  await timers.advance(0);
  return { timers, rec, runner };
}

Deno.test("runner: start runs once right away", async () => {
  const { rec, runner } = await started();
  assert.deepEqual(rec.starts, [0]);
  await runner.stop();
});

Deno.test("runner: a burst of requests within minInterval coalesces into one run", async () => {
  const { timers, rec, runner } = await started();
  for (let i = 0; i < 10; i++) {
    runner.run();
    await timers.advance(50);
  }
  assert.deepEqual(rec.starts, [0]);
  await timers.advance(1000);
  assert.deepEqual(rec.starts, [0, 1000]);
  await timers.advance(5000);
  assert.deepEqual(rec.starts, [0, 1000], "no further run without a request");
  await runner.stop();
});

Deno.test("runner: a request after minInterval has passed runs immediately", async () => {
  const { timers, rec, runner } = await started();
  await timers.advance(5000);
  runner.run();
  await timers.advance(0);
  assert.deepEqual(rec.starts, [0, 5000]);
  await runner.stop();
});

Deno.test("runner: requests during a run give exactly one more run, never overlapping", async () => {
  const { timers, rec, runner } = await started(1000, 30_000, { hold: true });
  assert.equal(runner.running, true);
  runner.run();
  runner.run();
  await timers.advance(3000);
  assert.deepEqual(rec.starts, [0], "no second run while the first is in flight");
  rec.release();
  await timers.advance(0);
  assert.deepEqual(rec.starts, [0, 3000]);
  await timers.advance(10_000);
  assert.deepEqual(rec.starts, [0, 3000]);
  await runner.stop();
});

Deno.test("runner: runs at least once per maxInterval without requests", async () => {
  const { timers, rec, runner } = await started(1000, 30_000);
  await timers.advance(95_000);
  assert.deepEqual(rec.starts, [0, 30_000, 60_000, 90_000]);
  await runner.stop();
});

Deno.test("runner: with maxInterval Infinity only requests and runAfter make runs", async () => {
  const { timers, rec, runner } = await started(1000, Infinity);
  await timers.advance(100_000);
  assert.deepEqual(rec.starts, [0]);
  runner.runAfter(5000);
  await timers.advance(10_000);
  assert.deepEqual(rec.starts, [0, 105_000]);
  await runner.stop();
});

Deno.test("runner: a request pushes the periodic run back", async () => {
  const { timers, rec, runner } = await started(1000, 30_000);
  await timers.advance(20_000);
  runner.run();
  await timers.advance(30_000);
  assert.deepEqual(rec.starts, [0, 20_000, 50_000]);
  await runner.stop();
});

Deno.test("runner: a periodic run (maxInterval) does not hold back the next request", async () => {
  const { timers, rec, runner } = await started(1000, 30_000);
  await timers.advance(30_100);
  assert.deepEqual(rec.starts, [0, 30_000]);
  runner.run();
  await timers.advance(0);
  assert.deepEqual(rec.starts, [0, 30_000, 30_100], "not held until 31,000");
  runner.run();
  await timers.advance(999);
  assert.deepEqual(
    rec.starts,
    [0, 30_000, 30_100],
    "requested runs are still spaced by minInterval",
  );
  await timers.advance(1);
  assert.deepEqual(rec.starts, [0, 30_000, 30_100, 31_100]);
  await runner.stop();
});

Deno.test("runner: requestsHeldUntil says until when a change's run cannot start", async () => {
  const timers = new ManualTimers();
  const rec = recorder(timers);
  const runner = new BoundedFrequencyRunner(rec.fn, {
    minIntervalMs: 1000,
    maxIntervalMs: 30_000,
    timers,
  });
  assert.equal(runner.requestsHeldUntil, undefined, "before the first run");
  runner.start();
  await timers.advance(0);
  assert.equal(runner.requestsHeldUntil, 1000);
  // A periodic run serves no request: the hold is still the requested run's.
  await timers.advance(30_100);
  assert.deepEqual(rec.starts, [0, 30_000]);
  assert.equal(runner.requestsHeldUntil, 1000);
  runner.run();
  await timers.advance(0);
  assert.equal(runner.requestsHeldUntil, 31_100);
  // A request made now waits exactly that long.
  runner.run();
  await timers.advance(999);
  assert.deepEqual(rec.starts, [0, 30_000, 30_100]);
  await timers.advance(1);
  assert.deepEqual(rec.starts, [0, 30_000, 30_100, 31_100]);
  await runner.stop();
});

Deno.test("runner: runAfter runs when due and does not count against minInterval", async () => {
  const { timers, rec, runner } = await started(1000, 30_000);
  runner.runAfter(5000);
  runner.runAfter(8000); // the earlier one wins
  await timers.advance(4999);
  assert.deepEqual(rec.starts, [0]);
  await timers.advance(1);
  assert.deepEqual(rec.starts, [0, 5000]);
  await timers.advance(100);
  runner.run();
  await timers.advance(0);
  assert.deepEqual(rec.starts, [0, 5000, 5100]);
  await timers.advance(10_000);
  assert.deepEqual(rec.starts, [0, 5000, 5100], "a periodic run is not repeated by itself");
  await runner.stop();
});

Deno.test("runner: a periodic run waits minInterval after the previous run of any kind", async () => {
  const { timers, rec, runner } = await started(1000, 30_000);
  runner.runAfter(100);
  await timers.advance(999);
  assert.deepEqual(rec.starts, [0]);
  await timers.advance(1);
  assert.deepEqual(rec.starts, [0, 1000]);
  runner.runAfter(0);
  await timers.advance(999);
  assert.deepEqual(rec.starts, [0, 1000], "periodic runs do not follow each other sooner either");
  await timers.advance(1);
  assert.deepEqual(rec.starts, [0, 1000, 2000]);
  await runner.stop();
});

Deno.test("runner: a request during a periodic run runs as soon as that run ends", async () => {
  const { timers, rec, runner } = await started(1000, 30_000);
  runner.runAfter(5000);
  rec.hold();
  await timers.advance(5000);
  assert.equal(runner.running, true);
  await timers.advance(100);
  runner.run();
  await timers.advance(200);
  assert.deepEqual(rec.starts, [0, 5000], "never overlapping");
  rec.release();
  await timers.advance(0);
  assert.deepEqual(rec.starts, [0, 5000, 5300]);
  await runner.stop();
});

Deno.test("runner: a periodic run that serves a pending request counts as a requested run", async () => {
  const { timers, rec, runner } = await started(1000, 30_000);
  runner.runAfter(1500);
  await timers.advance(1200);
  runner.run(); // runs at once: nothing requested since 0
  await timers.advance(0);
  assert.deepEqual(rec.starts, [0, 1200]);
  runner.run(); // waits for 2200; the periodic run at 2200 takes it along
  await timers.advance(1000);
  assert.deepEqual(rec.starts, [0, 1200, 2200]);
  runner.run();
  await timers.advance(999);
  assert.deepEqual(rec.starts, [0, 1200, 2200]);
  await timers.advance(1);
  assert.deepEqual(rec.starts, [0, 1200, 2200, 3200]);
  await runner.stop();
});

Deno.test("runner: a scheduled run (runAfter) does not hold back the next request; a request does hold one back", async () => {
  const { timers, rec, runner } = await started(1000, 30_000);
  runner.runAfter(4000);
  await timers.advance(4100);
  assert.deepEqual(rec.starts, [0, 4000]);
  runner.run();
  await timers.advance(0);
  assert.deepEqual(rec.starts, [0, 4000, 4100]);
  runner.runAfter(0);
  await timers.advance(999);
  assert.deepEqual(rec.starts, [0, 4000, 4100], "a retry waits minInterval after any run");
  await timers.advance(1);
  assert.deepEqual(rec.starts, [0, 4000, 4100, 5100]);
  await runner.stop();
});

Deno.test("runner: a failing run is retried with backoff and recovers", async () => {
  const { timers, rec, runner } = await started(500, 60_000, { failTimes: 3 });
  await timers.advance(20_000);
  // fails at 0, retried after 1 s, 2 s, 4 s; the 4th run succeeds.
  assert.deepEqual(rec.starts, [0, 1000, 3000, 7000]);
  await runner.stop();
});

Deno.test("runner: stop waits for the run in flight and prevents further runs", async () => {
  const { timers, rec, runner } = await started(1000, 30_000, { hold: true });
  let stopped = false;
  const stopping = runner.stop().then(() => (stopped = true));
  await settle();
  assert.equal(stopped, false);
  rec.release();
  await stopping;
  runner.run();
  await timers.advance(100_000);
  assert.deepEqual(rec.starts, [0]);
  assert.equal(timers.pendingCount, 0);
});

Deno.test("runner: rejects invalid intervals", () => {
  assert.throws(() =>
    new BoundedFrequencyRunner(() => Promise.resolve(), {
      minIntervalMs: 10,
      maxIntervalMs: 5,
    }), RangeError);
});
