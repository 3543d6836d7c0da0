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

const strictUtf16 = new TextDecoder("utf-16le", { fatal: true, ignoreBOM: true });

/** The JS string of UTF-16 code units (no terminator expected). */
export function decodeWide(units: Uint16Array): string {
  try {
    return strictUtf16.decode(units);
  } catch {
    // Unpaired surrogates: TextDecoder would replace them, so copy unit by unit.
  }
  const CHUNK = 8192;
  let out = "";
  for (let i = 0; i < units.length; i += CHUNK) {
    out += String.fromCharCode(...units.subarray(i, i + CHUNK));
  }
  return out;
}

/** Bytes in the smallest memory page of the platforms Deno runs on. */
const PAGE = 4096;

/**
 * The length in code units of the NUL-terminated UTF-16 string at `ptr`.
 * It scans page by page: the page holding the current position is mapped
 * (the string is there), and the scan never reads past the page in which the
 * terminator lies, so it never touches memory the string does not reach into.
 */
function wideLength(ptr: Deno.PointerObject): number {
  const address = BigInt(Deno.UnsafePointer.value(ptr));
  if (address % 2n !== 0n) {
    // Not 2-byte aligned (never so for HNS strings): read unit by unit.
    const view = new Deno.UnsafePointerView(ptr);
    let n = 0;
    while (view.getUint16(n * 2) !== 0) n++;
    return n;
  }
  let offset = 0;
  for (;;) {
    const span = PAGE - Number((address + BigInt(offset)) % BigInt(PAGE));
    const units = new Uint16Array(Deno.UnsafePointerView.getArrayBuffer(ptr, span, offset));
    const at = units.indexOf(0);
    if (at >= 0) return offset / 2 + at;
    offset += span;
  }
}

/**
 * Copy the NUL-terminated UTF-16 string at `ptr` out of foreign memory.
 * The result owns its storage, so the foreign buffer may be freed right after.
 * The units are read where they lie (no copy of them is made), and ASCII is
 * narrowed into one scratch buffer reused by every read: an HNS thread reads
 * tens of thousands of objects at a start, and per-read typed arrays would be
 * memory for malloc to hand out and the GC to take back.
 */
export function readWide(ptr: Deno.PointerObject): string {
  const n = wideLength(ptr);
  if (n === 0) return "";
  if (BigInt(Deno.UnsafePointer.value(ptr)) % 2n !== 0n) {
    // Not 2-byte aligned (never so for HNS strings): a copy, for a Uint16Array.
    const units = new Uint16Array(n);
    new Deno.UnsafePointerView(ptr).copyInto(units);
    return decodeWide(units);
  }
  const units = new Uint16Array(Deno.UnsafePointerView.getArrayBuffer(ptr, n * 2));
  if (!isAscii(units)) return decodeWide(units);
  let bytes: Uint8Array;
  if (n > SCRATCH_MAX) {
    bytes = new Uint8Array(n); // an ID listing, say: not kept for the thread's life
  } else {
    if (scratch.length < n) scratch = new Uint8Array(Math.min(SCRATCH_MAX, 2 * n));
    bytes = scratch.subarray(0, n);
  }
  bytes.set(units);
  return utf8.decode(bytes);
}

/** The longest text {@link readWide} narrows in its scratch buffer. */
const SCRATCH_MAX = 64 * 1024;

/** Where {@link readWide} narrows ASCII text (grown as longer text comes, up to {@link SCRATCH_MAX}). */
let scratch = new Uint8Array(4096);

const utf8 = new TextDecoder();

/**
 * Whether every unit is ASCII. HNS's JSON (IDs, listings) almost always is,
 * and then narrowing the units to bytes and decoding those is several times
 * faster than decoding UTF-16 (a listing of 50,000 IDs is 4 MB).
 */
function isAscii(units: Uint16Array): boolean {
  for (let i = 0; i < units.length; i++) if (units[i] > 0x7f) return false;
  return true;
}
