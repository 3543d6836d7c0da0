/**
 * The logging interface every module takes. Implementations (klog-style text,
 * JSON lines, file sink) live beside it in lib/log.
 *
 * @module
 */

/** Structured key/value pairs attached to a log line. */
export type LogFields = Record<string, unknown>;

/** A leveled, structured logger in the manner of klog. */
export interface Logger {
  /** An error: something failed and was not (yet) recovered. */
  error(message: string, fields?: LogFields): void;
  /** A warning: bad input skipped, a degraded mode, a retry. */
  warn(message: string, fields?: LogFields): void;
  /** Information at verbosity 0 (always shown). */
  info(message: string, fields?: LogFields): void;
  /** Information shown only when the verbosity (`--v`) is at least `level`. */
  debug(level: number, message: string, fields?: LogFields): void;
  /** Whether lines at this verbosity are shown. */
  enabled(level: number): boolean;
  /** A logger that adds these fields to every line. */
  with(fields: LogFields): Logger;
}

/** A logger that drops everything (for tests that do not look at logs). */
export const nullLogger: Logger = {
  error() {},
  warn() {},
  info() {},
  debug() {},
  enabled: () => false,
  with() {
    return nullLogger;
  },
};
