/**
 * UTF-16LE wide strings (`PCWSTR` / `PWSTR`) between JS and foreign memory.
 *
 * JS strings are sequences of UTF-16 code units already, so conversion is a
 * copy of code units; unpaired surrogates survive the round trip unchanged.
 *
 * @module
 */

/** `s` as a NUL-terminated UTF-16 buffer, ready to pass as a `PCWSTR`. */
export function encodeWide(s: string): Uint16Array<ArrayBuffer> {
  const out = new Uint16Array(s.length + 1);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** The JS string of UTF-16 code units (no terminator expected). */
export function decodeWide(units: Uint16Array): string {
  const CHUNK = 8192;
  let out = "";
  for (let i = 0; i < units.length; i += CHUNK) {
    out += String.fromCharCode(...units.subarray(i, i + CHUNK));
  }
  return out;
}

/**
 * Copy the NUL-terminated UTF-16 string at `ptr` out of foreign memory.
 * The result owns its storage, so the foreign buffer may be freed right after.
 */
export function readWide(ptr: Deno.PointerObject): string {
  const view = new Deno.UnsafePointerView(ptr);
  let n = 0;
  while (view.getUint16(n * 2) !== 0) n++;
  const units = new Uint16Array(n);
  if (n > 0) view.copyInto(units);
  return decodeWide(units);
}
