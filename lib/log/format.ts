/**
 * Line formats: klog's text header with structured key=value pairs, and
 * component-base's JSON lines. Both take an already redacted record.
 *
 * @module
 */

/** One log line before formatting. */
export interface LogRecord {
  /** `I`nfo, `W`arning or `E`rror, as in klog's header. */
  severity: "I" | "W" | "E";
  /** Verbosity of an info line (0 for warnings and errors). */
  level: number;
  /** Milliseconds since the Unix epoch, with a fractional part. */
  timeMs: number;
  /** Process id. */
  pid: number;
  /** The message. */
  message: string;
  /** The error of an error line (rendered as `err`), if any. */
  err?: string;
  /** Structured pairs, in order. */
  fields: Record<string, unknown>;
}

/** The name in the text header where klog puts `file.go:123`. */
export const SOURCE = "hnsproxy";

/**
 * klog's text format:
 * `I1122 02:56:54.123456    1234 hnsproxy] "message" key="value" n=3`.
 * The time is local, as klog's; the pid is right-aligned in 7 columns.
 */
export function formatText(r: LogRecord): string {
  const d = new Date(Math.floor(r.timeMs));
  const micros = Math.floor((r.timeMs - Math.floor(r.timeMs / 1000) * 1000) * 1000);
  const head = r.severity + pad2(d.getMonth() + 1) + pad2(d.getDate()) + " " +
    pad2(d.getHours()) + ":" + pad2(d.getMinutes()) + ":" + pad2(d.getSeconds()) + "." +
    String(micros).padStart(6, "0") + " " + String(r.pid).padStart(7, " ") + " " + SOURCE + "] ";
  let line = head + goQuote(r.message);
  if (r.err !== undefined) line += " " + textPair("err", r.err);
  for (const [key, value] of Object.entries(r.fields)) line += " " + textPair(key, value);
  return line + "\n";
}

/**
 * component-base's JSON format: `{"ts":<epoch ms>,"msg":"...","v":0,...}`
 * for info lines; error lines carry `"err"` instead of `"v"`. As with
 * klog's JSON backend, warnings are info lines at v=0.
 */
export function formatJson(r: LogRecord): string {
  const obj: Record<string, unknown> = { ts: Math.round(r.timeMs * 1000) / 1000, msg: r.message };
  if (r.severity === "E") obj.err = r.err ?? null;
  else obj.v = r.level;
  for (const [key, value] of Object.entries(r.fields)) {
    if (!(key in obj)) obj[key] = jsonValue(value);
  }
  return JSON.stringify(obj) + "\n";
}

function pad2(n: number): string {
  return n < 10 ? "0" + n : String(n);
}

function textPair(key: string, value: unknown): string {
  if (typeof value === "string") {
    if (value.includes("\n")) {
      // klog prints multi-line strings as an indented block.
      const body = value.replace(/\n$/, "").split("\n").map((l) => "\t" + l).join("\n");
      return `${key}=<\n${body}\n >`;
    }
    return `${key}=${goQuote(value)}`;
  }
  if (value === null || value === undefined) return `${key}=<nil>`;
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") {
    return `${key}=${String(value)}`;
  }
  if (value instanceof Date) return `${key}=${goQuote(value.toISOString())}`;
  return `${key}=${JSON.stringify(jsonValue(value))}`;
}

function jsonValue(value: unknown): unknown {
  if (value === undefined) return null;
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "number" && !Number.isFinite(value)) return String(value);
  if (Array.isArray(value)) return value.map(jsonValue);
  if (value instanceof Date) return value.toISOString();
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonValue(v)]));
  }
  return value;
}

/** A string quoted the way Go's strconv.Quote does it. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    switch (ch) {
      case '"':
        out += '\\"';
        continue;
      case "\\":
        out += "\\\\";
        continue;
      case "\n":
        out += "\\n";
        continue;
      case "\r":
        out += "\\r";
        continue;
      case "\t":
        out += "\\t";
        continue;
      case "\x07":
        out += "\\a";
        continue;
      case "\b":
        out += "\\b";
        continue;
      case "\f":
        out += "\\f";
        continue;
      case "\v":
        out += "\\v";
        continue;
    }
    if (c < 0x20 || c === 0x7f) out += "\\x" + c.toString(16).padStart(2, "0");
    else if (c >= 0x80 && c < 0xa0) out += "\\u" + c.toString(16).padStart(4, "0");
    else if (c >= 0xd800 && c <= 0xdfff) out += "\\ufffd";
    else out += ch;
  }
  return out + '"';
}
