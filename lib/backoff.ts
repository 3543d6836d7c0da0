/**
 * The one exponential backoff formula of hnsproxy: the API watches, the
 * per-object HNS retries, the background resync's listing and the cleanup
 * rounds all wait by it. The delay after the n-th consecutive failure is
 * `initialMs × factor^(n-1)`, capped at `maxMs`, then scaled by a random
 * factor within the policy's jitter range (so many agents do not retry in
 * step) and capped again.
 *
 * @module
 */

/** How a delay grows with consecutive failures. */
export interface BackoffPolicy {
  /** Delay after the first failure, ms. */
  initialMs: number;
  /** Upper bound of the delay, ms. */
  maxMs: number;
  /** Growth per consecutive failure (default 2). */
  factor?: number;
  /**
   * The delay is the exponential one scaled by a random factor in
   * `[low, high]` (default `[1, 1]`: no jitter), then capped at `maxMs`.
   */
  jitter?: readonly [low: number, high: number];
}

/**
 * The delay in ms before retry number `failures` (1-based) under `policy`.
 * `random` returns numbers in [0, 1) (default Math.random).
 */
export function backoffDelay(
  failures: number,
  policy: BackoffPolicy,
  random: () => number = Math.random,
): number {
  const base = Math.min(
    policy.maxMs,
    policy.initialMs * (policy.factor ?? 2) ** Math.max(0, failures - 1),
  );
  const [low, high] = policy.jitter ?? [1, 1];
  const scale = low === high ? low : low + random() * (high - low);
  return Math.max(0, Math.min(policy.maxMs, base * scale));
}
