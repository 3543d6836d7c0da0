/**
 * `createLogger`: the {@link Logger} implementation — klog-style text or
 * JSON lines, to stderr, a size-rotated file and/or a callback, with
 * credentials redacted from messages and fields.
 *
 * @module
 */

import type { LogFields, Logger } from "./types.ts";
import { formatJson, formatText, type LogRecord } from "./format.ts";
import { errorText, redactFields, redactString } from "./redact.ts";
import { RotatingFile } from "./rotate.ts";

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** `text` (klog header lines, the default) or `json` (JSON lines). */
  format?: "text" | "json";
  /** Debug lines at or below this level are written (default 0). */
  verbosity?: number;
  /** Also write to this file, rotated by size. */
  file?: { path: string; maxBytes: number; maxBackups: number };
  /** Write to stderr (default true). */
  stderr?: boolean;
  /** Also hand every formatted line (with its newline) to this function. */
  write?: (line: string) => void;
  /** Clock: milliseconds since the epoch, fractional (default: performance clock). */
  now?: () => number;
  /** Process id in the text header (default `Deno.pid`). */
  pid?: number;
}

/** A {@link Logger} that owns a file and must be closed. */
export interface ClosableLogger extends Logger {
  /** Close the log file (idempotent). Lines logged afterwards go to the other sinks only. */
  close(): void;
}

/** The options that turn a validated `LoggingConfig` into a logger. */
export function loggerOptionsFrom(logging: {
  format: "text" | "json";
  verbosity: number;
  file: string;
  fileMaxBytes: number;
  fileMaxBackups: number;
  stderr: boolean;
}): LoggerOptions {
  return {
    format: logging.format,
    verbosity: logging.verbosity,
    stderr: logging.stderr,
    file: logging.file
      ? {
        path: logging.file,
        maxBytes: logging.fileMaxBytes > 0 ? logging.fileMaxBytes : Infinity,
        maxBackups: logging.fileMaxBackups,
      }
      : undefined,
  };
}

/**
 * Create a logger. Opening the log file may throw (bad path, no
 * permission); after that, logging never throws: a failing sink is reported
 * once on stderr and skipped.
 */
export function createLogger(options: LoggerOptions = {}): ClosableLogger {
  const encoder = new TextEncoder();
  const format = options.format === "json" ? formatJson : formatText;
  const verbosity = options.verbosity ?? 0;
  const now = options.now ?? (() => performance.timeOrigin + performance.now());
  const pid = options.pid ?? Deno.pid;
  let file = options.file ? new RotatingFile(options.file) : undefined;
  const toStderr = options.stderr ?? true;
  let fileFailed = false;

  const emit = (
    severity: LogRecord["severity"],
    level: number,
    message: string,
    base: LogFields,
    fields: LogFields | undefined,
  ): void => {
    const all: Record<string, unknown> = fields ? { ...base, ...fields } : { ...base };
    let err: string | undefined;
    if (severity === "E") {
      // klog's ErrorS(err, msg, ...) prints err right after the message.
      for (const key of ["err", "error"]) {
        if (key in all) {
          const value = all[key];
          delete all[key];
          if (err === undefined && value !== undefined && value !== null) {
            err = value instanceof Error ? errorText(value) : String(value);
          }
        }
      }
      if (err !== undefined) err = redactString(err);
    }
    const line = format({
      severity,
      level,
      timeMs: now(),
      pid,
      message: redactString(message),
      err,
      fields: redactFields(all),
    });
    const bytes = encoder.encode(line);
    if (file && !fileFailed) {
      try {
        file.write(bytes);
      } catch (e) {
        fileFailed = true;
        writeStderr(
          encoder.encode(`hnsproxy: log file ${file.path} failed, not writing it: ${e}\n`),
        );
      }
    }
    if (toStderr) writeStderr(bytes);
    if (options.write) {
      try {
        options.write(line);
      } catch { /* a sink must not break the caller */ }
    }
  };

  const make = (base: LogFields): ClosableLogger => ({
    error: (message, fields) => emit("E", 0, message, base, fields),
    warn: (message, fields) => emit("W", 0, message, base, fields),
    info: (message, fields) => emit("I", 0, message, base, fields),
    debug: (level, message, fields) => {
      if (level <= verbosity) emit("I", level, message, base, fields);
    },
    enabled: (level) => level <= verbosity,
    with: (fields) => make({ ...base, ...fields }),
    close: () => {
      file?.close();
      file = undefined;
    },
  });
  return make({});
}

function writeStderr(bytes: Uint8Array): void {
  try {
    let written = 0;
    while (written < bytes.length) written += Deno.stderr.writeSync(bytes.subarray(written));
  } catch { /* no console (e.g. a service): nothing to do */ }
}
