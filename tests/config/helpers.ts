/**
 * Assertion helpers for the config tests.
 *
 * @module
 */

import { ConfigError } from "../../lib/config/errors.ts";

/**
 * A validator for `assert.throws`: the error is a ConfigError, on one line,
 * and its message contains `part`.
 */
export function hasMessage(part: string): (e: unknown) => boolean {
  return (e: unknown) => {
    if (!(e instanceof ConfigError)) throw new Error(`not a ConfigError: ${e}`);
    if (e.message.includes("\n")) throw new Error(`message spans lines: ${e.message}`);
    if (!e.message.includes(part)) throw new Error(`"${e.message}" lacks "${part}"`);
    return true;
  };
}
