/**
 * The Windows tier's ground truth: under Wine, deno.exe is a Windows program and its FFI
 * speaks the Windows x64 ABI with the shapes HNS needs (UTF-16 strings, GUID buffers,
 * CoTaskMemAlloc'd results freed through ole32, nonblocking calls, foreign-thread callbacks).
 *
 * Run with `deno task test:windows`; on other systems these tests are ignored.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const onWindows = Deno.build.os === "windows";

function testLibraryPath(): string {
  return Deno.env.get("HNSPROXY_WINTEST_DLL") ??
    fileURLToPath(new URL("../../build/windows/wintest.dll", import.meta.url));
}

const symbols = {
  wt_add: { parameters: ["i32", "i32"], result: "i32" },
  wt_wcslen: { parameters: ["buffer"], result: "u32" },
  wt_echo: { parameters: ["buffer", "buffer"], result: "i32" },
  wt_echo_nb: {
    name: "wt_echo",
    parameters: ["buffer", "buffer"],
    result: "i32",
    nonblocking: true,
  },
  wt_guid_to_string: { parameters: ["buffer", "buffer"], result: "i32" },
  wt_is_task_mem: { parameters: ["pointer"], result: "i32" },
  wt_wait_flag: { parameters: ["u32"], result: "i32", nonblocking: true },
  wt_set_flag: { parameters: [], result: "void" },
  wt_reset_flag: { parameters: [], result: "void" },
  wt_call_on_thread: { parameters: ["function", "u32"], result: "u32", nonblocking: true },
} as const satisfies Deno.ForeignLibraryInterface;

const ole32Symbols = {
  CoTaskMemFree: { parameters: ["pointer"], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

/** A NUL-terminated UTF-16LE copy of s. */
function wide(s: string): Uint16Array<ArrayBuffer> {
  const out = new Uint16Array(s.length + 1);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** Reads the NUL-terminated UTF-16 string at p, copying it out of foreign memory. */
function readWide(p: Deno.PointerObject): string {
  const view = new Deno.UnsafePointerView(p);
  const units: number[] = [];
  for (let off = 0;; off += 2) {
    const u = view.getUint16(off);
    if (u === 0) break;
    units.push(u);
  }
  let s = "";
  for (let i = 0; i < units.length; i += 4096) {
    s += String.fromCharCode(...units.slice(i, i + 4096));
  }
  return s;
}

/** The 16 bytes of a GUID as Windows lays it out: Data1-3 little-endian, Data4 in string order. */
function guidBytes(guid: string): Uint8Array<ArrayBuffer> {
  const hex = guid.replace(/[{}-]/g, "");
  assert.deepEqual(hex.length, 32);
  const b = new Uint8Array(16);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, parseInt(hex.slice(0, 8), 16), true);
  dv.setUint16(4, parseInt(hex.slice(8, 12), 16), true);
  dv.setUint16(6, parseInt(hex.slice(12, 16), 16), true);
  for (let i = 0; i < 8; i++) b[8 + i] = parseInt(hex.slice(16 + 2 * i, 18 + 2 * i), 16);
  return b;
}

function withLibraries(
  fn: (
    lib: Deno.DynamicLibrary<typeof symbols>["symbols"],
    ole32: Deno.DynamicLibrary<typeof ole32Symbols>["symbols"],
  ) => Promise<void> | void,
): () => Promise<void> {
  return async () => {
    const lib = Deno.dlopen(testLibraryPath(), symbols);
    const ole32 = Deno.dlopen("ole32.dll", ole32Symbols);
    try {
      await fn(lib.symbols, ole32.symbols);
    } finally {
      lib.close();
      ole32.close();
    }
  };
}

/** Takes the string out of a PWSTR* result slot and frees it through CoTaskMemFree. */
function takeOut(
  slot: BigUint64Array<ArrayBuffer>,
  lib: Deno.DynamicLibrary<typeof symbols>["symbols"],
  ole32: Deno.DynamicLibrary<typeof ole32Symbols>["symbols"],
): string {
  const p = Deno.UnsafePointer.create(slot[0]);
  assert.ok(p !== null, "the DLL returned no string");
  assert.deepEqual(lib.wt_is_task_mem(p), 1, "the string was not allocated by CoTaskMemAlloc");
  const s = readWide(p);
  ole32.CoTaskMemFree(p);
  slot[0] = 0n;
  return s;
}

Deno.test({
  name: "windows tier: deno.exe runs as a Windows program",
  ignore: !onWindows,
  fn() {
    assert.deepEqual(Deno.build.os, "windows");
    assert.deepEqual(Deno.build.arch, "x86_64");
    assert.ok(/\.exe$/i.test(Deno.execPath()), `execPath ${Deno.execPath()}`);
    assert.ok(/^[A-Z]:\\/i.test(Deno.cwd()), `cwd ${Deno.cwd()}`);
  },
});

Deno.test({
  name: "windows tier: dlopen of a mingw DLL, blocking calls with UTF-16 strings",
  ignore: !onWindows,
  fn: withLibraries((lib, ole32) => {
    assert.deepEqual(lib.wt_add(40, 2), 42);
    assert.deepEqual(lib.wt_add(-5, 3), -2);
    const text = 'héllo ☃ 𝄞 {"Name":"cbr0"}';
    assert.deepEqual(lib.wt_wcslen(wide(text)), text.length);
    const slot = new BigUint64Array(1);
    assert.deepEqual(lib.wt_echo(wide(text), slot), 0);
    assert.deepEqual(takeOut(slot, lib, ole32), "echo:" + text);
  }),
});

Deno.test({
  name: "windows tier: a 16-byte GUID buffer reaches the DLL in Windows layout",
  ignore: !onWindows,
  fn: withLibraries((lib, ole32) => {
    const slot = new BigUint64Array(1);
    for (
      const guid of [
        "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
        "00000000-0000-0000-0000-000000000000",
        "ffeeddcc-bbaa-9988-7766-554433221100",
      ]
    ) {
      assert.deepEqual(lib.wt_guid_to_string(guidBytes(guid), slot), 0);
      assert.deepEqual(takeOut(slot, lib, ole32), `{${guid.toUpperCase()}}`);
    }
  }),
});

Deno.test({
  name: "windows tier: nonblocking calls run off the JS thread",
  ignore: !onWindows,
  fn: withLibraries(async (lib, ole32) => {
    const slot = new BigUint64Array(1);
    assert.deepEqual(await lib.wt_echo_nb(wide("nonblocking"), slot), 0);
    assert.deepEqual(takeOut(slot, lib, ole32), "echo:nonblocking");

    // The worker thread waits for a flag that only the JS thread can set: if the call held
    // the JS thread, wt_wait_flag would time out and return 0.
    lib.wt_reset_flag();
    const waiting = lib.wt_wait_flag(30_000);
    lib.wt_set_flag();
    assert.deepEqual(await waiting, 1);
  }),
});

Deno.test({
  name: "windows tier: a thread-safe callback is called from a foreign thread",
  ignore: !onWindows,
  fn: withLibraries(async (lib) => {
    const seen: number[] = [];
    const cb = Deno.UnsafeCallback.threadSafe(
      { parameters: ["u32"], result: "u32" } as const,
      (value: number) => {
        seen.push(value);
        return value * 2;
      },
    );
    try {
      assert.deepEqual(await lib.wt_call_on_thread(cb.pointer, 21), 42);
      assert.deepEqual(seen, [21]);
    } finally {
      cb.close();
    }
  }),
});
