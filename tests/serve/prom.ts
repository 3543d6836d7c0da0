/**
 * A small parser of the Prometheus text format for tests: samples by
 * `name{label="value",...}` (labels sorted) and the TYPE of each family.
 *
 * @module
 */

/** Parsed exposition. */
export interface Exposition {
  /** Sample values by `name{sorted labels}` (`name` alone without labels). */
  samples: Map<string, number>;
  /** Family types by name (`counter`, `gauge`, `histogram`, ...). */
  types: Map<string, string>;
  /** Family help texts by name. */
  help: Map<string, string>;
}

/** Parse Prometheus text format; throws on a line it cannot read. */
export function parseExposition(text: string): Exposition {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    let m = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (m) {
      types.set(m[1], m[2]);
      continue;
    }
    m = /^# HELP (\S+) (.*)$/.exec(line);
    if (m) {
      help.set(m[1], m[2]);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable exposition line: ${line}`);
    const labels = m[2]
      ? [...m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)]
        .map(([, k, v]) => `${k}="${v}"`).sort()
      : [];
    const key = labels.length ? `${m[1]}{${labels.join(",")}}` : m[1];
    const value = m[3] === "+Inf" ? Infinity : m[3] === "-Inf" ? -Infinity : Number(m[3]);
    samples.set(key, value);
  }
  return { samples, types, help };
}
