/**
 * Manual timers and clock for tests of time-driven code: time moves only when
 * the test calls {@link ManualTimers.advance}.
 *
 * @module
 */

import type { Timers } from "../../lib/proxy/runner.ts";

interface Pending {
  id: number;
  at: number;
  fn: () => void;
}

/** Timers whose clock the test advances by hand. */
export class ManualTimers implements Timers {
  #now = 0;
  #nextId = 1;
  #pending: Pending[] = [];

  /** The current fake time in ms. */
  now(): number {
    return this.#now;
  }

  /** Schedule `fn` at now + ms. */
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#nextId++;
    this.#pending.push({ id, at: this.#now + Math.max(0, ms), fn });
    return id;
  }

  /** Cancel a scheduled call. */
  clearTimeout(handle: unknown): void {
    this.#pending = this.#pending.filter((p) => p.id !== handle);
  }

  /** Number of scheduled calls. */
  get pendingCount(): number {
    return this.#pending.length;
  }

  /** Time of the earliest scheduled call, if any. */
  get nextAt(): number | undefined {
    return this.#pending.reduce<number | undefined>(
      (min, p) => (min === undefined || p.at < min ? p.at : min),
      undefined,
    );
  }

  /**
   * Move time forward by `ms`, firing due calls in time order and letting
   * promise callbacks settle after each.
   */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    await settle();
    for (;;) {
      const due = this.#pending.filter((p) =>
        p.at <= target
      ).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.#pending = this.#pending.filter((p) => p !== due);
      this.#now = Math.max(this.#now, due.at);
      due.fn();
      await settle();
    }
    this.#now = target;
    await settle();
  }
}

/** Let pending promise callbacks (and one macrotask turn) run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}
