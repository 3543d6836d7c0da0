/**
 * Decoder of the watch wire format: a chunked `application/json` body of
 * newline-delimited `{"type": ..., "object": {...}}` frames. Frames may be
 * split across chunks or share one; a frame that is not valid JSON or not an
 * event ends the stream with a {@linkcode WatchDecodeError}.
 *
 * @module
 */

import type { WatchEvent, WatchEventType } from "./api.ts";

const EVENT_TYPES: ReadonlySet<string> = new Set<WatchEventType>([
  "ADDED",
  "MODIFIED",
  "DELETED",
  "BOOKMARK",
  "ERROR",
]);

/** A watch stream carried something that is not a watch event. */
export class WatchDecodeError extends Error {
  /** A decode error with a short excerpt of the bad frame. */
  constructor(message: string, frame: string) {
    super(`${message}: ${frame.length > 120 ? `${frame.slice(0, 120)}...` : frame}`);
    this.name = "WatchDecodeError";
  }
}

/** Parses one frame of a watch stream. */
export function parseWatchFrame(frame: string): WatchEvent {
  let value: unknown;
  try {
    value = JSON.parse(frame);
  } catch {
    throw new WatchDecodeError("watch frame is not JSON", frame);
  }
  if (typeof value !== "object" || value === null) {
    throw new WatchDecodeError("watch frame is not an object", frame);
  }
  const { type, object } = value as { type?: unknown; object?: unknown };
  if (typeof type !== "string" || !EVENT_TYPES.has(type)) {
    throw new WatchDecodeError("watch frame has no known type", frame);
  }
  if (typeof object !== "object" || object === null || Array.isArray(object)) {
    throw new WatchDecodeError(`watch ${type} frame has no object`, frame);
  }
  return { type: type as WatchEventType, object: object as WatchEvent["object"] };
}

/**
 * Yields the events of a watch response body. `onActivity` is called for
 * every chunk received, so a caller can tell a quiet stream from a dead one.
 * Ends when the body ends; throws when the body errors (connection reset),
 * when `signal` aborts, or when a frame is bad.
 */
export async function* decodeWatchStream(
  body: ReadableStream<Uint8Array>,
  onActivity?: () => void,
  signal?: AbortSignal,
): AsyncGenerator<WatchEvent> {
  const decoder = new TextDecoder();
  const reader = body.getReader();
  // fetch's own abort does not always end a body that keeps receiving data
  // (seen with Deno 2.9 under load), so the abort also cancels the reader and
  // every read checks the signal.
  const cancel = () => reader.cancel(signal?.reason).catch(() => {});
  signal?.addEventListener("abort", cancel);
  let buffered = "";
  try {
    while (true) {
      signal?.throwIfAborted();
      const { done, value } = await reader.read();
      signal?.throwIfAborted();
      if (done) break;
      onActivity?.();
      buffered += decoder.decode(value, { stream: true });
      let start = 0;
      let newline: number;
      while ((newline = buffered.indexOf("\n", start)) >= 0) {
        const frame = buffered.slice(start, newline).trim();
        start = newline + 1;
        if (frame !== "") yield parseWatchFrame(frame);
      }
      buffered = buffered.slice(start);
    }
    const rest = (buffered + decoder.decode()).trim();
    if (rest !== "") yield parseWatchFrame(rest);
  } finally {
    signal?.removeEventListener("abort", cancel);
    // Cancelling releases the connection when the consumer stops early.
    await reader.cancel().catch(() => {});
  }
}
