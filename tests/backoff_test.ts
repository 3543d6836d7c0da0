import assert from "node:assert/strict";
import { backoffDelay } from "../lib/backoff.ts";

Deno.test("backoffDelay: exponential from the initial delay, capped, no jitter by default", () => {
  const policy = { initialMs: 1000, maxMs: 5000 };
  assert.deepEqual([1, 2, 3, 4, 5].map((n) => backoffDelay(n, policy)), [
    1000,
    2000,
    4000,
    5000,
    5000,
  ]);
  assert.equal(backoffDelay(0, policy), 1000, "no failure yet counts as the first");
  assert.equal(backoffDelay(2, { ...policy, factor: 3 }), 3000);
});

Deno.test("backoffDelay: jitter scales within its range and never past the cap", () => {
  const lo = () => 0;
  const hi = () => 0.999999;
  const equal = { initialMs: 800, maxMs: 30_000, jitter: [0.5, 1] as const };
  assert.equal(backoffDelay(1, equal, lo), 400);
  assert.ok(backoffDelay(1, equal, hi) < 800);
  assert.equal(backoffDelay(3, equal, lo), 1600);
  assert.ok(backoffDelay(20, equal, hi) <= 30_000);
  assert.equal(backoffDelay(20, equal, lo), 15_000);
  const around = { initialMs: 1000, maxMs: 1000, jitter: [0.5, 1.5] as const };
  assert.equal(backoffDelay(1, around, lo), 500);
  assert.equal(backoffDelay(1, around, hi), 1000, "capped after the jitter");
});
