/**
 * GUIDs as the HCN API takes them: text `XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX`
 * (HNS writes upper case) and the 16-byte `GUID` struct behind a `REFGUID`:
 * Data1 u32 little-endian, Data2 u16 LE, Data3 u16 LE, then the 8 bytes of
 * Data4 in the order they appear in the text.
 *
 * @module
 */

/** The all-zero GUID text; passing it to a Create call lets HNS assign the ID. */
export const ZERO_GUID = "00000000-0000-0000-0000-000000000000";

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const DASH = 0x2d;

/** Offsets of the dashes in the 36-character text form. */
const DASH_AT = [8, 13, 18, 23];

/**
 * For each byte of the GUID struct, the offset in the 36-character text of
 * its two hex digits: Data1..3 are little-endian, so their digit pairs are
 * taken back to front; Data4 is in text order.
 */
const BYTE_AT = [6, 4, 2, 0, 11, 9, 16, 14, 19, 21, 24, 26, 28, 30, 32, 34];

/** The value of hex digit code `c`, or -1. */
function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30; // 0-9
  const lower = c | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10; // a-f, A-F
  return -1;
}

/** Where the 36 characters of a GUID lie in `text` (braces optional), or -1 when it is not one. */
function guidStart(text: string): number {
  let start = 0;
  let end = text.length;
  if (text.charCodeAt(0) === OPEN_BRACE) start = 1;
  if (end > start && text.charCodeAt(end - 1) === CLOSE_BRACE) end--;
  if (end - start !== 36) return -1;
  for (let i = 0; i < DASH_AT.length; i++) {
    if (text.charCodeAt(start + DASH_AT[i]) !== DASH) return -1;
  }
  return start;
}

/**
 * Write the struct bytes of the GUID at `start` in `text` into `out` (when
 * given); false when a digit is not hex.
 */
function parseBytes(text: string, start: number, out?: Uint8Array): boolean {
  for (let i = 0; i < 16; i++) {
    const at = start + BYTE_AT[i];
    const hi = hexDigit(text.charCodeAt(at));
    const lo = hexDigit(text.charCodeAt(at + 1));
    if (hi < 0 || lo < 0) return false;
    if (out) out[i] = (hi << 4) | lo;
  }
  return true;
}

/** True when `text` is a GUID in text form (braces optional, any case). */
export function isGuid(text: string): boolean {
  const start = guidStart(text);
  return start >= 0 && parseBytes(text, start);
}

/**
 * The canonical upper-case text of a GUID (braces dropped); the empty string
 * stands for the zero GUID. Throws a one-line `TypeError` for anything else.
 */
export function normalizeGuid(text: string): string {
  if (text === "") return ZERO_GUID;
  const start = guidStart(text);
  if (start < 0 || !parseBytes(text, start)) throw new TypeError(`"${text}" is not a GUID`);
  return text.slice(start, start + 36).toUpperCase();
}

/**
 * The canonical upper-case text of a GUID (braces dropped; `text` itself
 * when it is canonical already), or undefined when `text` is not a GUID:
 * {@link isGuid} and {@link normalizeGuid} in one pass.
 */
export function canonicalGuid(text: string): string | undefined {
  const start = guidStart(text);
  if (start < 0) return undefined;
  let lower = false;
  for (let i = 0; i < 16; i++) {
    const at = start + BYTE_AT[i];
    const hi = text.charCodeAt(at);
    const lo = text.charCodeAt(at + 1);
    if (hexDigit(hi) < 0 || hexDigit(lo) < 0) return undefined;
    if (hi >= 0x61 || lo >= 0x61) lower = true;
  }
  return lower || start > 0 || text.length > 36
    ? text.slice(start, start + 36).toUpperCase()
    : text;
}

/** True for the empty string and the all-zero GUID. */
export function isZeroGuid(text: string): boolean {
  return text === "" || (isGuid(text) && normalizeGuid(text) === ZERO_GUID);
}

/**
 * The 16-byte GUID struct for `text` (empty text gives the zero GUID),
 * written into `into` when given (its first 16 bytes), else into a new array.
 * Throws a one-line `TypeError` when `text` is not a GUID.
 */
export function guidToBytes<T extends Uint8Array = Uint8Array<ArrayBuffer>>(
  text: string,
  into?: T,
): T {
  const out = into ?? new Uint8Array(16) as T;
  if (text === "") {
    out.fill(0, 0, 16);
    return out;
  }
  const start = guidStart(text);
  if (start < 0 || !parseBytes(text, start, out)) throw new TypeError(`"${text}" is not a GUID`);
  return out;
}

/** The upper-case text of a 16-byte GUID struct. */
export function bytesToGuid(bytes: Uint8Array): string {
  if (bytes.length !== 16) throw new TypeError(`a GUID is 16 bytes, got ${bytes.length}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, 16);
  const hex = (n: number, width: number) => n.toString(16).toUpperCase().padStart(width, "0");
  const data4 = Array.from(bytes.subarray(8), (b) => hex(b, 2)).join("");
  return [
    hex(view.getUint32(0, true), 8),
    hex(view.getUint16(4, true), 4),
    hex(view.getUint16(6, true), 4),
    data4.slice(0, 4),
    data4.slice(4),
  ].join("-");
}

/** A new random (version 4) GUID in upper-case text, as HNS assigns them. */
export function newGuid(): string {
  return crypto.randomUUID().toUpperCase();
}
