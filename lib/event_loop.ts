/**
 * Yielding the main thread to the event loop, so that timers, I/O callbacks
 * and requests already made go on between two pieces of long work.
 *
 * @module
 */

/** Yield to the event loop (a macrotask: timers and I/O callbacks run in between). */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
