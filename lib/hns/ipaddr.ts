/**
 * IP address text in a canonical form, so that addresses compare as HNS
 * compares them: as addresses, not as strings (`FD00:0::1` is `fd00::1`,
 * `::ffff:10.0.0.1` is `10.0.0.1`, `010.0.0.1` is `10.0.0.1`).
 *
 * @module
 */

const V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** The four bytes of a dotted-quad IPv4 address, or undefined. */
function parseV4(text: string): number[] | undefined {
  const m = V4.exec(text);
  if (!m) return undefined;
  const bytes = m.slice(1).map(Number);
  return bytes.every((b) => b <= 255) ? bytes : undefined;
}

/** True when `text` is a dotted-quad IPv4 address. */
export function isIPv4(text: string): boolean {
  return parseV4(text) !== undefined;
}

/**
 * The canonical text of an IPv4 or IPv6 address (IPv6 compressed, lower
 * case; IPv4-mapped IPv6 as IPv4), or undefined when `text` is not an address.
 */
export function canonicalIp(text: string): string | undefined {
  if (!text.includes(":")) return parseV4(text)?.join(".");
  if (/[^0-9a-fA-F:.]/.test(text)) return undefined;
  let host: string;
  try {
    host = new URL(`http://[${text}]/`).hostname;
  } catch {
    return undefined;
  }
  const v6 = host.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(v6);
  if (mapped) {
    const hi = parseInt(mapped[1], 16);
    const lo = parseInt(mapped[2], 16);
    return [hi >> 8, hi & 255, lo >> 8, lo & 255].join(".");
  }
  return v6;
}
