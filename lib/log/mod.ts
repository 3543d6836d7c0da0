/**
 * Logging: the {@link Logger} interface and its implementation.
 *
 * @module
 */

export type { LogFields, Logger } from "./types.ts";
export { nullLogger } from "./types.ts";
export { createLogger, loggerOptionsFrom } from "./logger.ts";
export type { ClosableLogger, LoggerOptions } from "./logger.ts";
export { formatJson, formatText, goQuote } from "./format.ts";
export type { LogRecord } from "./format.ts";
export { isSensitiveKey, REDACTED, redactFields, redactString } from "./redact.ts";
export { RotatingFile } from "./rotate.ts";
export type { RotatingFileOptions } from "./rotate.ts";
