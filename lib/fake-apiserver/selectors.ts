/**
 * Label and field selectors with the syntax and semantics of
 * k8s.io/apimachinery: `key`, `!key`, `key=value`, `key==value`,
 * `key!=value`, `key in (a,b)`, `key notin (a,b)`; field selectors on
 * `metadata.name` and `metadata.namespace`. Parse errors carry the message
 * the fake API server returns with 400 BadRequest.
 *
 * @module
 */

/** A parsed selector: tells whether an object matches. */
export type Matcher = (obj: { metadata?: Record<string, unknown> }) => boolean;

/** A selector that does not parse (the API server answers 400). */
export class SelectorError extends Error {
  /** A selector error with the API server's wording. */
  constructor(message: string) {
    super(message);
    this.name = "SelectorError";
  }
}

const KEY =
  /^([A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

type Requirement =
  | { op: "exists" | "!exists"; key: string }
  | { op: "=" | "!="; key: string; value: string }
  | { op: "in" | "notin"; key: string; values: Set<string> };

/** Splits at commas outside parentheses. */
function splitTop(selector: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < selector.length; i++) {
    const c = selector[i];
    if (c === "(") depth++;
    else if (c === ")") depth--;
    else if (c === "," && depth === 0) {
      parts.push(selector.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(selector.slice(start));
  return parts;
}

function checkKey(key: string, whole: string): string {
  if (!KEY.test(key) || key.length > 317) {
    throw new SelectorError(
      `unable to parse requirement: invalid label key "${key}" in selector "${whole}"`,
    );
  }
  return key;
}

function checkValue(value: string, whole: string): string {
  if (!VALUE.test(value) || value.length > 63) {
    throw new SelectorError(
      `unable to parse requirement: invalid label value "${value}" in selector "${whole}"`,
    );
  }
  return value;
}

function parseRequirement(text: string, whole: string): Requirement {
  const t = text.trim();
  if (t === "") {
    throw new SelectorError(`unable to parse requirement: found '', expected: identifier`);
  }
  if (t.startsWith("!")) return { op: "!exists", key: checkKey(t.slice(1).trim(), whole) };
  const set = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(t);
  if (set) {
    const values = set[3].split(",").map((v) => checkValue(v.trim(), whole));
    return { op: set[2] as "in" | "notin", key: checkKey(set[1], whole), values: new Set(values) };
  }
  const eq = /^([^=!\s]+)\s*(==|=|!=)\s*(.*)$/.exec(t);
  if (eq) {
    return {
      op: eq[2] === "!=" ? "!=" : "=",
      key: checkKey(eq[1], whole),
      value: checkValue(eq[3].trim(), whole),
    };
  }
  if (/[\s=!()<>]/.test(t)) {
    throw new SelectorError(`unable to parse requirement: found '${t}', expected: operator`);
  }
  return { op: "exists", key: checkKey(t, whole) };
}

function labelsOf(obj: { metadata?: Record<string, unknown> }): Record<string, string> {
  const labels = obj.metadata?.labels;
  return typeof labels === "object" && labels !== null ? labels as Record<string, string> : {};
}

/** Parses a label selector; the empty selector matches everything. */
export function parseLabelSelector(selector: string | null | undefined): Matcher {
  if (!selector || selector.trim() === "") return () => true;
  const reqs = splitTop(selector).map((part) => parseRequirement(part, selector));
  return (obj) => {
    const labels = labelsOf(obj);
    return reqs.every((r) => {
      const has = Object.hasOwn(labels, r.key);
      switch (r.op) {
        case "exists":
          return has;
        case "!exists":
          return !has;
        case "=":
          return has && labels[r.key] === r.value;
        case "!=":
          return !has || labels[r.key] !== r.value;
        case "in":
          return has && r.values.has(labels[r.key]);
        case "notin":
          return !has || !r.values.has(labels[r.key]);
      }
    });
  };
}

const FIELDS = new Set(["metadata.name", "metadata.namespace"]);

/** Parses a field selector over `metadata.name` and `metadata.namespace`. */
export function parseFieldSelector(selector: string | null | undefined): Matcher {
  if (!selector || selector.trim() === "") return () => true;
  const reqs = selector.split(",").map((part) => {
    const m = /^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(part);
    if (!m) throw new SelectorError(`invalid selector: '${selector}'; can't understand '${part}'`);
    if (!FIELDS.has(m[1])) {
      throw new SelectorError(
        `"${m[1]}" is not a known field selector: only "metadata.name", "metadata.namespace"`,
      );
    }
    return { field: m[1].slice("metadata.".length), negate: m[2] === "!=", value: m[3] };
  });
  return (obj) =>
    reqs.every((r) => {
      const actual = String(obj.metadata?.[r.field] ?? "");
      return r.negate ? actual !== r.value : actual === r.value;
    });
}
