/**
 * The HNS emulator library as the benchmark uses it: its control exports
 * (object counts, per-function call counters, latency, reset, saved state)
 * and a synchronous HCN API over it for the bench's own reads and writes.
 *
 * One library file loaded into one process is one HNS, so the agent's FFI
 * binding (which dlopens the same path) and this control see the same state.
 *
 * @module
 */

import { openHcnCalls } from "../lib/hns/ffi.ts";
import { idListingOfAnswer } from "../lib/hns/id_listing.ts";
import { allHcnFunctionNames, HNS_CALL } from "../lib/hns/names.ts";
import type { HcnApi, HcnKind } from "../lib/hns/types.ts";

/** Calls per C function name. */
export type CallCounts = Record<string, number>;

/** Every function the emulator counts: the Hcn* functions and HNSCall. */
export const COUNTED_FUNCTIONS: readonly string[] = [...allHcnFunctionNames(), HNS_CALL];

/** Names of the write functions (create, modify, delete). */
export const WRITE_FUNCTIONS: readonly string[] = COUNTED_FUNCTIONS.filter((f) =>
  /^Hcn(Create|Modify|Delete)/.test(f)
);

const SYMBOLS = {
  HnsEmuReset: { parameters: [], result: "void" },
  HnsEmuSetVersion: { parameters: ["u32", "u32"], result: "void" },
  HnsEmuSetLatencyMicros: { parameters: ["u32"], result: "void" },
  HnsEmuSetLatencyModel: { parameters: ["u32", "u32", "i32"], result: "void" },
  HnsEmuHeapBytes: { parameters: [], result: "i64" },
  HnsEmuHeapInUse: { parameters: [], result: "i64" },
  HnsEmuReserveHeap: { parameters: ["i64"], result: "i64" },
  HnsEmuSaveState: { parameters: ["buffer"], result: "i32" },
  HnsEmuLoadState: { parameters: ["buffer"], result: "i32" },
  HnsEmuOpenHandles: { parameters: [], result: "i64" },
  HnsEmuOutstandingStrings: { parameters: [], result: "i64" },
  HnsEmuCallCount: { parameters: ["buffer"], result: "i64" },
  HnsEmuObjectCount: { parameters: ["buffer"], result: "i64" },
} as const;

function cString(s: string): Uint8Array<ArrayBuffer> {
  const bytes = new TextEncoder().encode(s);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/** The emulator library path: env HNSPROXY_HNS_LIBRARY, else build/hnsemu.so (built if needed). */
export async function emulatorLibrary(): Promise<string> {
  const fromEnv = Deno.env.get("HNSPROXY_HNS_LIBRARY");
  if (fromEnv) return fromEnv;
  // Loaded only here: the agent host gets the path from its environment and never builds.
  const { buildEmulator } = await import("../tests/hns-emulator/build.ts");
  await buildEmulator();
  // Not node:url: the agent host loads no node: built-in (bench/agent_host_proc.ts).
  return decodeURIComponent(new URL("../build/hnsemu.so", import.meta.url).pathname);
}

/**
 * What the emulated HNS is given as a reserve before an agent is measured
 * ({@link Emulator.reserveHeap}): room for the objects the agent will
 * create (0.94 KiB each at a cold start of 10,000 services; 1 KiB counted)
 * and 16 MiB for the large blocks of listings and of tables that grow.
 */
export function emulatorReserveBytes(creates: number): number {
  return 16 * 2 ** 20 + 1024 * creates;
}

/** The emulator's control surface. */
export class Emulator {
  /** The library path (what the agent's `--hns-library` gets). */
  readonly library: string;
  readonly #lib: Deno.DynamicLibrary<typeof SYMBOLS>;
  readonly #names = new Map<string, Uint8Array<ArrayBuffer>>();

  private constructor(library: string) {
    this.library = library;
    this.#lib = Deno.dlopen(library, SYMBOLS);
  }

  /** Load the control exports of the built emulator. */
  static async open(): Promise<Emulator> {
    return new Emulator(await emulatorLibrary());
  }

  #c(name: string): Uint8Array<ArrayBuffer> {
    let b = this.#names.get(name);
    if (!b) this.#names.set(name, b = cString(name));
    return b;
  }

  /** Forget every object, handle and counter. */
  reset(): void {
    this.#lib.symbols.HnsEmuReset();
  }

  /** Sleep this long in every HCN call (outside the emulator's lock). */
  setLatencyMicros(us: number): void {
    this.#lib.symbols.HnsEmuSetLatencyMicros(us);
  }

  /**
   * Every HCN call takes `baseUs` µs + `slopeNs` ns × the objects HNS holds;
   * `serial` makes calls wait for each other, as HNS's serialised work does.
   */
  setLatencyModel(baseUs: number, slopeNs: number, serial: boolean): void {
    this.#lib.symbols.HnsEmuSetLatencyModel(baseUs, slopeNs, serial ? 1 : 0);
  }

  /**
   * The memory the emulated HNS holds now (its objects, indexes and buffers):
   * on Linux the pages it mapped for its blocks, off malloc and resident.
   */
  heapBytes(): number {
    return Number(this.#lib.symbols.HnsEmuHeapBytes());
  }

  /** Bytes asked for in the emulated HNS's blocks in use now. */
  heapInUse(): number {
    return Number(this.#lib.symbols.HnsEmuHeapInUse());
  }

  /**
   * Have the emulated HNS map `bytes` (whole MiB) of resident pages at once
   * for the blocks it makes from now, so that {@link heapBytes} does not
   * move while they fit (HnsEmuReserveHeap; Linux): the process's RSS less
   * it is then the rest of the process's at every moment. The bytes
   * reserved: 0 when this process reserved before.
   */
  reserveHeap(bytes: number): number {
    return Number(this.#lib.symbols.HnsEmuReserveHeap(BigInt(Math.ceil(bytes))));
  }

  /** Write every HNS object to `path`; throws when it cannot. */
  saveState(path: string): void {
    if (this.#lib.symbols.HnsEmuSaveState(cString(path)) !== 0) {
      throw new Error(`the emulator could not save its state to ${path} (its stderr says why)`);
    }
  }

  /** Replace every HNS object with those saved in `path`; throws when it cannot. */
  loadState(path: string): void {
    if (this.#lib.symbols.HnsEmuLoadState(cString(path)) !== 0) {
      throw new Error(
        `the emulator could not load a saved state from ${path} (its stderr says why)`,
      );
    }
  }

  /** The HNS version reported. */
  setVersion(major: number, minor: number): void {
    this.#lib.symbols.HnsEmuSetVersion(major, minor);
  }

  /** Objects of a kind HNS holds. */
  objectCount(kind: HcnKind): number {
    return Number(this.#lib.symbols.HnsEmuObjectCount(this.#c(kind)));
  }

  /** Calls of one function so far (failed ones included). */
  callCount(fn: string): number {
    return Number(this.#lib.symbols.HnsEmuCallCount(this.#c(fn)));
  }

  /** Every counted function's calls so far. */
  callCounts(): CallCounts {
    const out: CallCounts = {};
    for (const fn of COUNTED_FUNCTIONS) out[fn] = this.callCount(fn);
    return out;
  }

  /** Handles not closed and strings not freed (both 0 when the agent leaks nothing). */
  leaks(): { openHandles: number; outstandingStrings: number } {
    return {
      openHandles: Number(this.#lib.symbols.HnsEmuOpenHandles()),
      outstandingStrings: Number(this.#lib.symbols.HnsEmuOutstandingStrings()),
    };
  }

  /** Release the control exports. */
  close(): void {
    this.#lib.close();
  }
}

/** Calls made between two snapshots, only the functions that were called. */
export function callDelta(before: CallCounts, after: CallCounts): CallCounts {
  const out: CallCounts = {};
  for (const fn of Object.keys(after)) {
    const d = after[fn] - (before[fn] ?? 0);
    if (d !== 0) out[fn] = d;
  }
  return out;
}

/** Sum of the calls in `counts`, optionally only those of `fns`. */
export function totalCalls(counts: CallCounts, fns?: readonly string[]): number {
  return Object.entries(counts).filter(([fn]) => !fns || fns.includes(fn))
    .reduce((n, [, c]) => n + c, 0);
}

/** HNS write calls (create, modify, delete) in `counts`. */
export function writeCalls(counts: CallCounts): number {
  return totalCalls(counts, WRITE_FUNCTIONS);
}

/**
 * The HCN API of `library` called synchronously on this thread, no HNS
 * threads: how the agent host seeds and reads back HNS outside the measured
 * window without starting threads (and their memory) of its own.
 */
export function openSyncHcnApi(library: string): HcnApi {
  const calls = openHcnCalls({ library });
  return {
    hasModifyLoadBalancer: calls.hasModifyLoadBalancer,
    enumerate: (kind, query) => Promise.resolve(calls.enumerate(kind, query)),
    enumerateIds: (kind, query) =>
      Promise.resolve(idListingOfAnswer(kind, calls.enumerate(kind, query))),
    open: (kind, id) => Promise.resolve(calls.open(kind, id)),
    create: (kind, id, settings, network) =>
      Promise.resolve(calls.create(kind, id, settings, network)),
    modify: (kind, handle, settings) => Promise.resolve(calls.modify(kind, handle, settings)),
    query: (kind, handle, query) => Promise.resolve(calls.query(kind, handle, query)),
    delete: (kind, id) => Promise.resolve(calls.delete(kind, id)),
    close: (kind, handle) => Promise.resolve(calls.close(kind, handle)),
    hnsCall: (method, path, request) => Promise.resolve(calls.hnsCall(method, path, request)),
    dispose: () => calls.dispose(),
  };
}
