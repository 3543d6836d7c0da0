/**
 * The two HNS backends under one test surface: the FFI binding over the HNS
 * emulator library (build/hnsemu.so, or the library named by env
 * HNSPROXY_HNS_LIBRARY, e.g. build/hnsemu.dll under Wine) and the in-memory
 * HNS. Each test gets a fresh backend and, after it, the leak counters must
 * be zero: open handles, strings not freed, and (FFI) invalid frees.
 *
 * Free of Linux-only assumptions: paths come from URLs, nothing is shelled out.
 *
 * @module
 */

import { deepEqual } from "node:assert/strict";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { privateCopy } from "../hns-emulator/build.ts";
import { openFfiHcnApi } from "../../lib/hns/ffi.ts";
import { MemoryHcnApi } from "../../lib/hns/memory.ts";
import type { HcnApi, HcnKind } from "../../lib/hns/types.ts";

/** The emulator's control surface, which the in-memory HNS mirrors. */
export interface HnsControl {
  /** Forget all objects, handles, counters and injected failures. */
  reset(): void;
  /** Report HNS major.minor (0.0: unreadable). */
  setVersion(major: number, minor: number): void;
  /** Fail the nth call of `fn` from now (0: every call) with `hresult`. */
  failCall(fn: string, nth: number, hresult: number): void;
  /** Drop injected failures. */
  clearFailures(): void;
  /** Handles not yet closed. */
  openHandles(): number;
  /** Returned strings not yet freed. */
  outstandingStrings(): number;
  /** CoTaskMemFree calls on pointers that were not outstanding (double or foreign frees). */
  invalidFrees(): number;
  /** Calls of one C function. */
  callCount(fn: string): number;
  /** Objects held of a kind. */
  objectCount(kind: HcnKind): number;
}

/** One backend instance for one test. */
export interface Backend {
  /** `ffi` or `memory`. */
  name: string;
  /** The HCN API under test. */
  api: HcnApi;
  /** Its control surface. */
  control: HnsControl;
  /** Release it. */
  dispose(): void;
}

/** The built emulator library: env HNSPROXY_HNS_LIBRARY, else build/hnsemu.so of this repository. */
export function builtEmulatorLibrary(): string {
  return Deno.env.get("HNSPROXY_HNS_LIBRARY") ||
    fileURLToPath(new URL("../../build/hnsemu.so", import.meta.url));
}

/**
 * This test file's own copy of the emulator library: parallel test files run
 * in one process, and one library file is loaded once per process, so a
 * shared path would share the emulator's state between files.
 */
const privateLibrary = await privateCopy(builtEmulatorLibrary());
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(dirname(privateLibrary), { recursive: true });
  } catch {
    // Still mapped (Windows) or already gone: the temp dir is left to the OS.
  }
});

/** The emulator library this test file uses (a private copy of the built one). */
export function emulatorLibrary(): string {
  return privateLibrary;
}

/** A NUL-terminated C string. */
export function cString(s: string): Uint8Array<ArrayBuffer> {
  const bytes = new TextEncoder().encode(s);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

const CONTROL_SYMBOLS = {
  HnsEmuReset: { parameters: [], result: "void" },
  HnsEmuSetVersion: { parameters: ["u32", "u32"], result: "void" },
  HnsEmuFailCall: { parameters: ["buffer", "u32", "i32"], result: "i32" },
  HnsEmuClearFailures: { parameters: [], result: "void" },
  HnsEmuOpenHandles: { parameters: [], result: "i64" },
  HnsEmuOutstandingStrings: { parameters: [], result: "i64" },
  HnsEmuInvalidFrees: { parameters: [], result: "i64" },
  HnsEmuCallCount: { parameters: ["buffer"], result: "i64" },
  HnsEmuObjectCount: { parameters: ["buffer"], result: "i64" },
} as const;

/** The emulator's HnsEmu* control functions, loaded from `library`. */
export function openEmulatorControl(library: string): HnsControl & { close(): void } {
  const lib = Deno.dlopen(library, CONTROL_SYMBOLS);
  const s = lib.symbols;
  return {
    reset: () => s.HnsEmuReset(),
    setVersion: (major, minor) => s.HnsEmuSetVersion(major, minor),
    failCall(fn, nth, hresult) {
      if (s.HnsEmuFailCall(cString(fn), nth, hresult | 0) !== 0) {
        throw new TypeError(`unknown HCN function "${fn}"`);
      }
    },
    clearFailures: () => s.HnsEmuClearFailures(),
    openHandles: () => Number(s.HnsEmuOpenHandles()),
    outstandingStrings: () => Number(s.HnsEmuOutstandingStrings()),
    invalidFrees: () => Number(s.HnsEmuInvalidFrees()),
    callCount: (fn) => Number(s.HnsEmuCallCount(cString(fn))),
    objectCount: (kind) => Number(s.HnsEmuObjectCount(cString(kind))),
    close: () => lib.close(),
  };
}

/** How to make each backend. */
export const BACKENDS: ReadonlyArray<{ name: string; open(): Backend }> = [
  {
    name: "ffi",
    open() {
      const library = emulatorLibrary();
      const control = openEmulatorControl(library);
      control.reset();
      const api = openFfiHcnApi({ library });
      return {
        name: "ffi",
        api,
        control,
        dispose() {
          api.dispose();
          control.close();
        },
      };
    },
  },
  {
    name: "memory",
    open() {
      const api = new MemoryHcnApi();
      return {
        name: "memory",
        api,
        control: Object.assign(api, { invalidFrees: () => 0 }),
        dispose: () => api.dispose(),
      };
    },
  },
];

/** Assert that nothing leaked: no open handle, no unfreed string, no bad free. */
export function assertNoLeaks(control: HnsControl): void {
  deepEqual(
    {
      openHandles: control.openHandles(),
      outstandingStrings: control.outstandingStrings(),
      invalidFrees: control.invalidFrees(),
    },
    { openHandles: 0, outstandingStrings: 0, invalidFrees: 0 },
    "HNS leak counters after the test",
  );
}

/**
 * Register `body` as one test per backend (`ffi: name`, `memory: name`), on a
 * fresh backend, with the leak check after it, error paths included.
 */
export function backendTest(name: string, body: (b: Backend) => Promise<void>): void {
  for (const factory of BACKENDS) {
    Deno.test(`${factory.name}: ${name}`, async () => {
      const backend = factory.open();
      try {
        await body(backend);
        assertNoLeaks(backend.control);
      } finally {
        backend.dispose();
      }
    });
  }
}
