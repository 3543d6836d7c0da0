/**
 * Argument buffers for FFI calls (GUID structs, wide strings, out-parameters)
 * carved out of shared slabs.
 *
 * A small typed array with its own `ArrayBuffer` is expensive to make (about
 * 0.6 µs here); a view into a larger buffer is a few tens of nanoseconds.
 * Every HCN call takes two to four such buffers.
 *
 * Until {@link ArgBuffers.reset}, regions are never reused: a slab is
 * collected once no view into it is left, so a buffer stays valid (and
 * unshared) for as long as its holder keeps it, exactly as a fresh typed
 * array would. A holder whose buffers live only during one synchronous C call
 * (the HNS threads' calls) resets before each call instead, so that the same
 * slab serves every call and none is allocated, and later freed, per call.
 * Every region is zero-filled when handed out, reused or not.
 *
 * @module
 */

import { guidToBytes } from "./guid.ts";

/** Bytes per slab. */
const SLAB_BYTES = 64 * 1024;
/** Larger requests get an `ArrayBuffer` of their own instead of a slab region. */
const OWN_BUFFER_ABOVE = SLAB_BYTES / 4;

/** Strings this long or longer are encoded natively ({@link ArgBuffers.wide}). */
const ENCODE_FROM = 32;
const ENCODER = new TextEncoder();

/** A bump allocator of zero-filled, 8-byte aligned argument buffers. */
export class ArgBuffers {
  #slab = new ArrayBuffer(SLAB_BYTES);
  /** The slab's bytes, for zeroing a region handed out before. */
  #bytes = new Uint8Array(this.#slab);
  #used = 0;
  /** Bytes of the slab handed out since it was made: beyond them it is still zero. */
  #dirty = 0;

  /**
   * Hand out the regions of the current slab again: every buffer handed out
   * so far may then be overwritten, so the caller must hold none of them.
   */
  reset(): void {
    this.#used = 0;
  }

  /** A zero-filled region of `bytes` bytes: its buffer and byte offset. */
  #region(bytes: number): [ArrayBuffer, number] {
    const size = (bytes + 7) & ~7;
    if (size > OWN_BUFFER_ABOVE) return [new ArrayBuffer(size), 0];
    if (this.#used + size > SLAB_BYTES) {
      this.#slab = new ArrayBuffer(SLAB_BYTES);
      this.#bytes = new Uint8Array(this.#slab);
      this.#used = 0;
      this.#dirty = 0;
    }
    const at = this.#used;
    this.#used += size;
    if (at < this.#dirty) this.#bytes.fill(0, at, Math.min(this.#used, this.#dirty));
    if (this.#used > this.#dirty) this.#dirty = this.#used;
    return [this.#slab, at];
  }

  /** An out-parameter for one pointer (`PWSTR*`, `HCN_X*`), initially NULL. */
  pointerOut(): BigUint64Array<ArrayBuffer> {
    const [buffer, at] = this.#region(8);
    return new BigUint64Array(buffer, at, 1);
  }

  /** The 16-byte GUID struct of `text` (see {@link guidToBytes}; throws the same). */
  guid(text: string): Uint8Array<ArrayBuffer> {
    const [buffer, at] = this.#region(16);
    return guidToBytes(text, new Uint8Array(buffer, at, 16));
  }

  /** `s` as a NUL-terminated UTF-16 buffer (a `PCWSTR`). */
  wide(s: string): Uint16Array<ArrayBuffer> {
    const n = s.length;
    const [buffer, at] = this.#region((n + 1) * 2);
    const out = new Uint16Array(buffer, at, n + 1);
    if (n >= ENCODE_FROM) {
      // ASCII text (the JSON hnsproxy sends): encoded natively as UTF-8 into
      // the region's upper half, then widened in place from the front (a
      // unit is written below the bytes still to be read). Any other text
      // encodes to more bytes than characters, or does not fit: char by char.
      const bytes = new Uint8Array(buffer, at + n, n);
      const { read, written } = ENCODER.encodeInto(s, bytes);
      if (read === n && written === n) {
        for (let i = 0; i < n; i++) out[i] = bytes[i];
        return out;
      }
    }
    for (let i = 0; i < n; i++) out[i] = s.charCodeAt(i);
    return out;
  }
}
