/**
 * Native heap in use (glibc `mallinfo2()`: chunks in use in every arena plus
 * chunks of their own mapping), and giving free memory back. NaN where glibc
 * is not available. The emulated HNS is not in it: its blocks are on pages of
 * its own (HnsEmuHeapBytes, tests/hns-emulator/README.md), as a separate HNS's
 * would be.
 *
 * Scenario processes run with `MALLOC_ARENA_MAX=1` (bench/main.ts and
 * bench/agent_host.ts set it): one arena for every thread, so that memory one
 * thread frees is reused by the next that allocates and the host's RSS stays
 * near what its blocks need. It costs some time: the event loop's thread and
 * the HNS thread take turns at that arena's lock (bench/analysis.md, cold
 * start).
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

const SYMBOLS = {
  ...MALLINFO2,
  malloc_trim: { parameters: ["usize"], result: "i32" },
} as const;

let libc: Deno.DynamicLibrary<typeof SYMBOLS> | null | undefined;

function glibc(): Deno.DynamicLibrary<typeof SYMBOLS> | null {
  if (libc === undefined) {
    try {
      libc = Deno.build.os === "linux" ? Deno.dlopen("libc.so.6", SYMBOLS) : null;
    } catch {
      libc = null;
    }
  }
  return libc;
}

/**
 * Give the free memory of the native heap back to the OS (`malloc_trim(0)`),
 * as a fresh process would not hold it; false where glibc is not available.
 */
export function mallocTrim(): boolean {
  const lib = glibc();
  if (!lib) return false;
  lib.symbols.malloc_trim(0n);
  return true;
}

/**
 * Bytes allocated with malloc and not freed, chunk headers included
 * (`uordblks` + `hblkhd`), or NaN when unknown.
 */
export function mallocInUse(): number {
  const libc = glibc();
  if (!libc) return NaN;
  const raw = libc.symbols.mallinfo2() as Uint8Array;
  const fields = new BigUint64Array(raw.buffer, raw.byteOffset, 10);
  // struct mallinfo2: arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, ...
  return Number(fields[7] + fields[4]);
}

/**
 * Bytes of the native heap's arena that are free but not given back to the
 * OS (`fordblks`): resident until reused, unless malloc_trim or the top of
 * the arena lets them go. NaN when unknown.
 */
export function mallocFree(): number {
  const libc = glibc();
  if (!libc) return NaN;
  const raw = libc.symbols.mallinfo2() as Uint8Array;
  return Number(new BigUint64Array(raw.buffer, raw.byteOffset, 10)[8]);
}
