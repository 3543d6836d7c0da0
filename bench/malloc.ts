/**
 * Native heap in use (glibc `mallinfo2().uordblks`), to tell the emulated
 * HNS's memory apart from the agent's. glibc reports only the main arena,
 * so scenario processes run with `MALLOC_ARENA_MAX=1` (bench/main.ts sets
 * it) and every thread allocates there. NaN where glibc is not available.
 *
 * @module
 */

const MALLINFO2 = {
  mallinfo2: {
    parameters: [],
    result: {
      struct: [
        "usize",
        "usize",
        "usize",
        "usize",
        "usize",
        "usize",
        "usize",
        "usize",
        "usize",
        "usize",
      ],
    },
  },
} as const;

let libc: Deno.DynamicLibrary<typeof MALLINFO2> | null | undefined;

/** Bytes allocated with malloc and not freed, or NaN when unknown. */
export function mallocInUse(): number {
  if (libc === undefined) {
    try {
      libc = Deno.build.os === "linux" ? Deno.dlopen("libc.so.6", MALLINFO2) : null;
    } catch {
      libc = null;
    }
  }
  if (!libc) return NaN;
  const raw = libc.symbols.mallinfo2() as Uint8Array;
  const fields = new BigUint64Array(raw.buffer, raw.byteOffset, 10);
  return Number(fields[7]);
}
