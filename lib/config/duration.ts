/**
 * Go `time.Duration` strings (`30s`, `1m0s`, `1h2m3.5s`, `250ms`), as used
 * by kube-proxy's flags and KubeProxyConfiguration, to and from milliseconds.
 *
 * @module
 */

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  "μs": 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parse a Go duration into milliseconds, or return undefined when the text
 * is not one. A bare `0` is accepted, as Go does; any other number needs a unit.
 */
export function parseDuration(text: string): number | undefined {
  let s = text.trim();
  if (s === "") return undefined;
  let sign = 1;
  if (s[0] === "-" || s[0] === "+") {
    if (s[0] === "-") sign = -1;
    s = s.slice(1);
  }
  if (s === "0") return 0;
  if (s === "") return undefined;
  const part = /^(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/;
  let total = 0;
  while (s.length > 0) {
    const m = part.exec(s);
    if (!m) return undefined;
    total += Number(m[1]) * UNIT_MS[m[2]];
    s = s.slice(m[0].length);
  }
  return sign * total;
}

/**
 * Format milliseconds the way Go prints a duration: `30s`, `1m0s`,
 * `1h0m0s`, `1.5s`, `250ms`, `0s`.
 */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  const sign = ms < 0 ? "-" : "";
  let rest = Math.abs(ms);
  if (rest < 1000) {
    if (rest >= 1) return sign + trim(rest) + "ms";
    if (rest >= 1e-3) return sign + trim(rest * 1e3) + "µs";
    return sign + trim(rest * 1e6) + "ns";
  }
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  const secs = trim(rest / 1000) + "s";
  if (h > 0) return `${sign}${h}h${m}m${secs}`;
  if (m > 0) return `${sign}${m}m${secs}`;
  return sign + secs;
}

function trim(n: number): string {
  // At most nanosecond precision, no trailing zeros (Go prints 1.5s, not 1.500s).
  return String(Number(n.toFixed(9)));
}
