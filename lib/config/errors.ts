/**
 * The one error type of lib/config: a single line naming the flag or field
 * and the offending value.
 *
 * @module
 */

/** Bad configuration input: a flag, an environment variable or a config file field. */
export class ConfigError extends Error {
  /** Where the value came from, e.g. `--sync-period`, `winkernel.sourceVip` or `KUBE_NETWORK`. */
  readonly field: string;
  /** The offending value as given (undefined when the problem is a missing value). */
  readonly value: unknown;

  /**
   * An error for `field`. With a value the message reads
   * `field: "value" reason`, without one `field: reason`.
   */
  constructor(field: string, reason: string, value?: unknown, options?: ErrorOptions) {
    super(
      value === undefined ? `${field}: ${reason}` : `${field}: ${showValue(value)} ${reason}`,
      options,
    );
    this.name = "ConfigError";
    this.field = field;
    this.value = value;
  }
}

/** A value rendered for an error message: strings quoted, the rest as JSON. */
export function showValue(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
