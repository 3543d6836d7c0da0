import { errorMessage } from "../errors.ts";
/**
 * Credential redaction for log output: values under sensitive keys, and
 * bearer tokens, basic auth, JWTs, private keys, URL passwords and
 * `token=...` pairs inside strings, never reach a log line.
 *
 * @module
 */

/** What replaces a redacted value. */
export const REDACTED = "[REDACTED]";

// Matched against the key lower-cased with `-`, `_` and `.` removed.
const SENSITIVE_KEY =
  /token|passw(or)?d|secret|authorization|credential|certdata|certificatedata|keydata|privatekey|apikey|cookie|bearer/;

/** True when values under this key must not be logged (`token`, `client-key-data`, ...). */
export function isSensitiveKey(key: string): boolean {
  return SENSITIVE_KEY.test(key.toLowerCase().replace(/[-_.]/g, ""));
}

const STRING_RULES: [RegExp, string][] = [
  [
    /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g,
    "[REDACTED PRIVATE KEY]",
  ],
  [
    /\b(Authorization|Proxy-Authorization)(\s*[:=]\s*)(?!\[REDACTED)[^\s",;]+(\s+[^\s",;]+)?/gi,
    `$1$2${REDACTED}`,
  ],
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi, `$1 ${REDACTED}`],
  [/\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, REDACTED],
  [/\b([a-z][a-z0-9+.-]*:\/\/[^\s/:@]+:)[^\s/@]+@/gi, `$1${REDACTED}@`],
  [
    /\b((?:access_|refresh_|id_|bearer_)?token|password|passwd|secret|client_secret|api_?key)=([^&\s"',;]+)/gi,
    `$1=${REDACTED}`,
  ],
  [
    /("(?:[\w-]*token|password|secret|authorization|client-key-data|client-certificate-data)"\s*:\s*)"(?:[^"\\]|\\.)*"/gi,
    `$1"${REDACTED}"`,
  ],
];

/** A string with credentials in it replaced by {@link REDACTED}. */
export function redactString(text: string): string {
  let out = text;
  for (const [pattern, replacement] of STRING_RULES) out = out.replace(pattern, replacement);
  return out;
}

/**
 * A copy of `value` safe to log: strings scrubbed with {@link redactString},
 * values under sensitive keys replaced, Errors reduced to their (scrubbed)
 * message, nested objects and arrays walked (cycles and depth bounded).
 */
export function redactValue(value: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (typeof value === "string") return redactString(value);
  if (value instanceof Error) return redactString(errorText(value));
  if (value === null || typeof value !== "object") return value;
  if (value instanceof Date) return value;
  if (seen.has(value) || depth > 8) return "[...]";
  seen.add(value);
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1, seen));
  if (value instanceof Map) {
    return redactFields(Object.fromEntries(value), depth + 1, seen);
  }
  if (value instanceof Set) return [...value].map((v) => redactValue(v, depth + 1, seen));
  if (ArrayBuffer.isView(value)) return `[${value.byteLength} bytes]`;
  return redactFields(value as Record<string, unknown>, depth + 1, seen);
}

/** {@link redactValue} over each field of a record. */
export function redactFields(
  fields: Record<string, unknown>,
  depth = 0,
  seen = new WeakSet<object>(),
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) {
    out[key] = isSensitiveKey(key) && value !== undefined && value !== null && value !== ""
      ? REDACTED
      : redactValue(value, depth, seen);
  }
  return out;
}

/** An Error's message, with its cause chain (`outer: inner`). */
export function errorText(error: Error): string {
  let text = error.message || error.name;
  let cause = error.cause;
  for (let i = 0; i < 4 && cause !== undefined; i++) {
    const next = errorMessage(cause);
    if (!text.includes(next)) text += `: ${next}`;
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return text;
}
