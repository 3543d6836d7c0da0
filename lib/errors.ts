/**
 * The one way hnsproxy turns a caught value into text for a log line or an
 * error message: an Error's message, anything else as `String(value)`.
 *
 * @module
 */

/** The message of `err`: `err.message` for an Error, else `String(err)`. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
