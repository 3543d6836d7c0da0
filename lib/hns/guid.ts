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

const GUID_RE = /^\{?([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})\}?$/i;

/** True when `text` is a GUID in text form (braces optional, any case). */
export function isGuid(text: string): boolean {
  return GUID_RE.test(text);
}

/**
 * The canonical upper-case text of a GUID (braces dropped); the empty string
 * stands for the zero GUID. Throws a one-line `TypeError` for anything else.
 */
export function normalizeGuid(text: string): string {
  if (text === "") return ZERO_GUID;
  const m = GUID_RE.exec(text);
  if (!m) throw new TypeError(`"${text}" is not a GUID`);
  return m.slice(1).join("-").toUpperCase();
}

/** True for the empty string and the all-zero GUID. */
export function isZeroGuid(text: string): boolean {
  return text === "" || (isGuid(text) && normalizeGuid(text) === ZERO_GUID);
}

/** The 16-byte GUID struct for `text` (empty text gives the zero GUID). */
export function guidToBytes(text: string): Uint8Array<ArrayBuffer> {
  const canonical = normalizeGuid(text);
  const hex = canonical.replaceAll("-", "");
  const out = new Uint8Array(16);
  const view = new DataView(out.buffer);
  view.setUint32(0, parseInt(hex.slice(0, 8), 16), true);
  view.setUint16(4, parseInt(hex.slice(8, 12), 16), true);
  view.setUint16(6, parseInt(hex.slice(12, 16), 16), true);
  for (let i = 0; i < 8; i++) out[8 + i] = parseInt(hex.slice(16 + 2 * i, 18 + 2 * i), 16);
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
