import assert from "node:assert/strict";
import { Backoff } from "../../lib/proxy/backoff.ts";

function clock(start = 0) {
  let now = start;
  return {
    now: () => now,
    advance(ms: number) {
      now += ms;
    },
  };
}

Deno.test("backoff: doubles from 1 s and caps at 5 min", () => {
  const c = clock();
  const b = new Backoff({ clock: c, jitter: 0 });
  const delays = Array.from({ length: 12 }, () => b.fail("lb/tcp/10.0.0.1:80"));
  assert.deepEqual(delays, [
    1000,
    2000,
    4000,
    8000,
    16000,
    32000,
    64000,
    128000,
    256000,
    300000,
    300000,
    300000,
  ]);
});

Deno.test("backoff: jitter stays within the configured fraction and the cap", () => {
  const c = clock();
  let r = 0;
  const randoms = [0, 0.999999, 0.5];
  const b = new Backoff({ clock: c, jitter: 0.2, random: () => randoms[r++ % 3] });
  assert.equal(b.fail("a"), 800);
  assert.equal(b.fail("b"), 1200);
  assert.equal(b.fail("c"), 1000);
  const capped = new Backoff({ clock: c, jitter: 0.5, maxMs: 1000, random: () => 0.99 });
  capped.fail("x");
  assert.ok(capped.fail("x") <= 1000);
});

Deno.test("backoff: keys are independent; ready follows the clock; reset forgets", () => {
  const c = clock(1000);
  const b = new Backoff({ clock: c, jitter: 0 });
  assert.equal(b.ready("a"), true);
  assert.equal(b.nextDelay(), undefined);
  b.fail("a", new Error("x"));
  b.fail("a");
  assert.equal(b.ready("a"), false);
  assert.equal(b.ready("b"), true);
  assert.equal(b.nextDelay(), 2000);
  assert.equal(b.get("a")?.failures, 2);
  c.advance(1999);
  assert.equal(b.ready("a"), false);
  c.advance(1);
  assert.equal(b.ready("a"), true);
  assert.equal(b.nextDelay(), 0);
  assert.deepEqual(b.keys(), ["a"]);
  b.reset("a");
  assert.equal(b.size, 0);
  assert.equal(b.fail("a"), 1000, "starts over after a reset");
});
