/**
 * Listings made from the event loop's thread with no isolate of their own:
 * the HCN Enumerate functions bound `nonblocking`, so that each call runs on
 * a thread of the runtime's blocking pool while the event loop turns, and
 * the answer stays where HNS put it until it is read
 * ({@link import("./id_listing.ts").IdListing.read}) or copied out as text.
 *
 * Rules:
 * - The libraries are the HNS threads' (lib/hns/ffi.ts names them), bound
 *   again with only the Enumerate functions and `CoTaskMemFree`.
 * - The runtime keeps a call's argument buffers alive until it returns; the
 *   error record is read and freed as it returns, the answer when it is
 *   released (exactly once).
 * - {@link PoolListings.busy} counts calls in flight and answers not yet
 *   released: the libraries must not be closed before it is 0.
 *
 * @module
 */

import { hcnFailure, system32Path } from "./ffi.ts";
import type { ListingAnswer } from "./id_listing.ts";
import { CO_TASK_MEM_FREE, HCN_KINDS, hcnFunctionName } from "./names.ts";
import type { HcnKind } from "./types.ts";
import { encodeWide, readWide } from "./wstr.ts";

type Enumerate = (
  query: Uint16Array,
  ids: BigUint64Array,
  error: BigUint64Array,
) => Promise<number>;
type Free = (ptr: Deno.PointerValue) => void;
type Library = { close(): void; symbols: Record<string, unknown> };

/** `HcnEnumerateX(PCWSTR query, PWSTR* ids, PWSTR* error)`, run on the runtime's blocking pool. */
const ENUMERATE: Deno.ForeignFunction = {
  parameters: ["buffer", "buffer", "buffer"],
  result: "i32",
  nonblocking: true,
};

/** The HCN Enumerate functions, called from the event loop's thread; see the module notes. */
export class PoolListings {
  readonly #libs: Library[];
  readonly #enumerate = new Map<HcnKind, Enumerate>();
  readonly #free: Free;
  #busy = 0;
  #onIdle: (() => void) | undefined;

  private constructor(libs: Library[]) {
    this.#libs = libs;
    const symbols: Record<string, unknown> = {};
    for (const lib of libs) Object.assign(symbols, lib.symbols);
    for (const kind of HCN_KINDS) {
      this.#enumerate.set(kind, symbols[hcnFunctionName("enumerate", kind)] as Enumerate);
    }
    this.#free = symbols[CO_TASK_MEM_FREE] as Free;
  }

  /**
   * Bind the Enumerate functions of `library` (else of the System32 DLLs).
   * The caller has loaded the same libraries already, so these load.
   */
  static open(library?: string): PoolListings {
    const enumerates = Object.fromEntries(
      HCN_KINDS.map((kind) => [hcnFunctionName("enumerate", kind), ENUMERATE]),
    );
    const free = { [CO_TASK_MEM_FREE]: { parameters: ["pointer"], result: "void" } } as const;
    if (library) return new PoolListings([Deno.dlopen(library, { ...enumerates, ...free })]);
    const libs: Library[] = [];
    try {
      libs.push(Deno.dlopen(system32Path("computenetwork.dll"), enumerates));
      libs.push(Deno.dlopen(system32Path("ole32.dll"), free));
      return new PoolListings(libs);
    } catch (err) {
      for (const lib of libs) lib.close();
      throw err;
    }
  }

  /** Calls in flight and answers not yet released. */
  get busy(): number {
    return this.#busy;
  }

  /** Call `fn` each time {@link busy} drops to 0. */
  set onIdle(fn: (() => void) | undefined) {
    this.#onIdle = fn;
  }

  /**
   * `HcnEnumerateX(query)`: the answer where HNS put it, to release once
   * read. Failures are {@link import("./errors.ts").HnsError}s as the HNS
   * threads' (lib/hns/ffi.ts `hcnFailure`).
   */
  async answer(kind: HcnKind, query: string): Promise<ListingAnswer> {
    const name = hcnFunctionName("enumerate", kind);
    const q = encodeWide(query);
    const out = new BigUint64Array(1);
    const errOut = new BigUint64Array(1);
    this.#busy++;
    let hr: number;
    try {
      hr = await this.#enumerate.get(kind)!(q, out, errOut);
    } catch (err) {
      this.#done();
      throw err;
    }
    const record = this.#take(errOut);
    const failure = hcnFailure(name, hr, record);
    const answer = out[0] === 0n ? null : Deno.UnsafePointer.create(out[0]);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      if (answer) this.#free(answer);
      this.#done();
    };
    if (failure) {
      release();
      throw failure;
    }
    return { answer, release };
  }

  /** `HcnEnumerateX(query)` as text (small listings: the networks of one name). */
  async text(kind: HcnKind, query: string): Promise<string> {
    const { answer, release } = await this.answer(kind, query);
    try {
      return answer ? readWide(answer) : "";
    } finally {
      release();
    }
  }

  /** Close the libraries; only once {@link busy} is 0. */
  close(): void {
    for (const lib of this.#libs) lib.close();
  }

  /** The string an out-parameter points to, copied out and freed; undefined for NULL. */
  #take(out: BigUint64Array): string | undefined {
    const ptr = out[0] === 0n ? null : Deno.UnsafePointer.create(out[0]);
    if (!ptr) return undefined;
    try {
      return readWide(ptr);
    } finally {
      this.#free(ptr);
    }
  }

  #done(): void {
    if (--this.#busy === 0) this.#onIdle?.();
  }
}
