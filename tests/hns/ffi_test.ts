/**
 * The FFI binding itself: loading (wrong path, missing symbols, the optional
 * HcnModifyLoadBalancer), error records, UTF-16 and GUID marshalling, and
 * calls that leave the event loop free.
 */

import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createHnsClient } from "../../lib/hns/client.ts";
import { HResult } from "../../lib/hns/errors.ts";
import {
  E_FAIL,
  hcnFailure,
  HnsLibraryError,
  openFfiHcnApi,
  system32Path,
} from "../../lib/hns/ffi.ts";
import {
  bytesToGuid,
  canonicalGuid,
  guidToBytes,
  isZeroGuid,
  normalizeGuid,
  ZERO_GUID,
} from "../../lib/hns/guid.ts";
import { decodeWide, encodeWide, readWide } from "../../lib/hns/wstr.ts";
import { compile, LIBRARY_SOURCES, LINUX_CC } from "../hns-emulator/build.ts";
import { assertNoLeaks, emulatorLibrary, openEmulatorControl } from "./harness.ts";
import { clusterIpLb, expectHnsError, makeNetwork } from "./fixtures.ts";

function oneLine(err: Error): void {
  ok(!err.message.includes("\n"), `one line: ${err.message}`);
}

Deno.test("load: a wrong library path is one line naming the path", () => {
  const path = join(Deno.cwd(), "no-such-dir", "hnsemu-missing.lib");
  const err = throwsLibraryError(() => openFfiHcnApi({ library: path }));
  match(err.message, /^cannot load HNS library /);
  ok(err.message.includes(path), err.message);
  equal(err.library, path);
  oneLine(err);
});

Deno.test("load: a library without the HCN functions is one line naming the symbols", () => {
  const library = Deno.build.os === "windows" ? system32Path("kernel32.dll") : "libc.so.6";
  const err = throwsLibraryError(() => openFfiHcnApi({ library }));
  match(
    err.message,
    /^HNS library \S+ does not export HcnEnumerateNetworks, HcnCreateNetwork, HcnOpenNetwork and 19 more HNS functions$/,
  );
  ok(err.missingSymbols.includes("CoTaskMemFree"));
  ok(err.missingSymbols.includes("HNSCall"));
  ok(!err.missingSymbols.includes("HcnModifyLoadBalancer"), "the optional symbol is not required");
  oneLine(err);
});

Deno.test(
  "load: without a library, only Windows has HNS",
  { ignore: Deno.build.os === "windows" },
  () => {
    const err = throwsLibraryError(() => openFfiHcnApi({}));
    match(err.message, /--hns-library/);
    oneLine(err);
  },
);

Deno.test({
  name: "load: a library without HcnModifyLoadBalancer loads; modify is E_NOTIMPL",
  // Needs gcc to build the variant; the Windows tier has no compiler inside Wine.
  ignore: Deno.build.os === "windows",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "hnsemu-nomodify-" });
    try {
      const library = join(dir, "hnsemu-nomodify.so");
      const src = fileURLToPath(new URL("../hns-emulator/", import.meta.url));
      await compile(LINUX_CC, [
        "-O2",
        "-shared",
        "-std=gnu11",
        "-fPIC",
        "-pthread",
        "-fvisibility=hidden",
        // Renaming the export leaves a library that lacks just this symbol.
        "-DHcnModifyLoadBalancer=HnsEmuHiddenModifyLoadBalancer",
        ...LIBRARY_SOURCES.map((f) => join(src, f)),
      ], library);
      const control = openEmulatorControl(library);
      const api = openFfiHcnApi({ library });
      try {
        equal(api.hasModifyLoadBalancer, false);
        const client = createHnsClient(api);
        equal(
          (await client.features()).modifyLoadBalancer,
          false,
          "15.5 (the default) but no symbol",
        );
        const net = await makeNetwork(api, { Name: "cbr0" });
        const ep = await client.createEndpoint(net, {
          IpConfigurations: [{ IpAddress: "10.1.0.2" }],
        });
        const lb = await client.createLoadBalancer(clusterIpLb("10.96.0.1", 80, [ep.ID!]));
        const err = await expectHnsError(
          client.modifyLoadBalancer(lb.ID!, clusterIpLb("10.96.0.1", 81, [ep.ID!])),
          HResult.E_NOTIMPL,
        );
        equal(err.operation, "modifyLoadBalancer (HcnModifyLoadBalancer)");
        ok(
          err.hnsMessage?.includes("does not export HcnModifyLoadBalancer"),
          String(err.hnsMessage),
        );
        equal(control.callCount("HcnModifyLoadBalancer"), 0);
        assertNoLeaks(control);
      } finally {
        api.dispose();
        control.close();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("calls run off the JS thread: the event loop turns while HNS works", async () => {
  const library = emulatorLibrary();
  const control = openEmulatorControl(library);
  const lib = Deno.dlopen(library, {
    HnsEmuSetLatencyMicros: { parameters: ["u32"], result: "void" },
  });
  const api = openFfiHcnApi({ library });
  try {
    control.reset();
    lib.symbols.HnsEmuSetLatencyMicros(300_000);
    let settled = false;
    const pending = api.enumerate("Network", "").then((ids) => {
      settled = true;
      return ids;
    });
    // A blocking call would have finished before this macrotask runs.
    await new Promise((resolve) => setTimeout(resolve, 0));
    equal(settled, false);
    equal(await pending, "[]");
    lib.symbols.HnsEmuSetLatencyMicros(0);
    assertNoLeaks(control);
  } finally {
    api.dispose();
    lib.close();
    control.close();
  }
});

Deno.test("a disposed binding refuses calls with a clear error", async () => {
  const api = openFfiHcnApi({ library: emulatorLibrary() });
  api.dispose();
  api.dispose();
  await api.enumerate("Network", "").then(
    () => ok(false, "should fail"),
    (err) => match(err.message, /HNS library is closed; cannot call HcnEnumerateNetworks/),
  );
});

// ---- error records ----

Deno.test("error record: a failed HRESULT carries HNS's message", () => {
  const record =
    '{"Success":false,"Error":"The specified port already exists.","ErrorCode":2151350291}';
  const err = hcnFailure("HcnCreateLoadBalancer", 0x803b0013 | 0, record, "lb");
  equal(err?.hresult, HResult.PORT_ALREADY_EXISTS);
  equal(err?.hnsMessage, "The specified port already exists.");
  equal(err?.errorRecord, record);
  equal(
    err?.message,
    "HcnCreateLoadBalancer failed with 0x803B0013 (port already exists); object lb; HNS says: The specified port already exists.",
  );
});

Deno.test("error record: success HRESULT with a record is still a failure", () => {
  const withCode = hcnFailure("HcnDeleteEndpoint", 0, '{"Error":"busy","ErrorCode":"0x803B0020"}');
  equal(withCode?.hresult, HResult.MANAGER_STOPPED);
  equal(withCode?.hnsMessage, "busy");
  const noCode = hcnFailure("HcnDeleteEndpoint", 0, '{"Error":"odd"}');
  equal(noCode?.hresult, E_FAIL);
  const successCode = hcnFailure("HcnDeleteEndpoint", 0, '{"Error":"odd","ErrorCode":0}');
  equal(successCode?.hresult, E_FAIL);
  const raw = hcnFailure("HcnDeleteEndpoint", 0, "not json\nat all");
  equal(raw?.hresult, E_FAIL);
  equal(raw?.hnsMessage, "not json at all");
  oneLine(raw!);
  equal(hcnFailure("HcnDeleteEndpoint", 0, undefined), undefined);
  equal(hcnFailure("HcnDeleteEndpoint", 0, ""), undefined);
  const bare = hcnFailure("HcnCloseEndpoint", 0x80070006 | 0, undefined);
  equal(bare?.hresult, HResult.E_HANDLE);
  equal(bare?.hnsMessage, undefined);
});

// ---- marshalling ----

Deno.test("GUID: struct layout is Data1/2/3 little-endian, Data4 in order", () => {
  const id = "00112233-4455-6677-8899-AABBCCDDEEFF";
  deepEqual(
    [...guidToBytes(id)],
    [
      0x33,
      0x22,
      0x11,
      0x00,
      0x55,
      0x44,
      0x77,
      0x66,
      0x88,
      0x99,
      0xaa,
      0xbb,
      0xcc,
      0xdd,
      0xee,
      0xff,
    ],
  );
  equal(bytesToGuid(guidToBytes(id.toLowerCase())), id);
  equal(bytesToGuid(guidToBytes(`{${id}}`)), id);
  deepEqual([...guidToBytes("")], new Array(16).fill(0));
  equal(bytesToGuid(new Uint8Array(16)), ZERO_GUID);
  ok(isZeroGuid("") && isZeroGuid(ZERO_GUID) && isZeroGuid(`{${ZERO_GUID}}`));
  ok(!isZeroGuid(id));
  for (let i = 0; i < 50; i++) {
    const random = crypto.randomUUID().toUpperCase();
    equal(bytesToGuid(guidToBytes(random)), random);
  }
  throws(() => normalizeGuid("cbr0"), /"cbr0" is not a GUID/);
  // canonicalGuid: isGuid and normalizeGuid in one pass.
  equal(canonicalGuid(id), id);
  equal(canonicalGuid(id.toLowerCase()), id);
  equal(canonicalGuid(`{${id.toLowerCase()}}`), id);
  equal(canonicalGuid(`{${id}}`), id);
  equal(canonicalGuid(ZERO_GUID), ZERO_GUID);
  for (const bad of ["", "cbr0", `${id}0`, id.replace("-", "+"), id.slice(0, 35) + "G"]) {
    equal(canonicalGuid(bad), undefined, bad);
  }
  throws(() => guidToBytes("00112233-4455-6677-8899-AABBCCDDEEF"), TypeError);
});

Deno.test("UTF-16: encode, read back from foreign memory, decode", () => {
  const cases = [
    "",
    "cbr0",
    "réseau-网络-🚀",
    "\ufeffBOM kept",
    "\ud800 lone",
    "x".repeat(20_000),
    // ASCII is decoded as bytes: the boundary on either side, and a non-ASCII unit last.
    '\u007f\u0001["ID"]',
    "x".repeat(9_000) + "\u0080",
    "x".repeat(9_000) + "\u0100",
    // Longer than the scratch buffer ASCII is narrowed in, then shorter again.
    "y".repeat(70_000),
    "z".repeat(5_000),
    "cbr1",
  ];
  for (const s of cases) {
    const wide = encodeWide(s);
    equal(wide.length, s.length + 1);
    equal(wide[s.length], 0);
    equal(decodeWide(wide.subarray(0, s.length)), s);
    const ptr = Deno.UnsafePointer.of(wide);
    equal(readWide(ptr!), s);
  }
});

function throwsLibraryError(fn: () => unknown): HnsLibraryError {
  try {
    fn();
  } catch (err) {
    ok(err instanceof HnsLibraryError, `expected HnsLibraryError, got ${err}`);
    return err;
  }
  throw new Error("expected an HnsLibraryError");
}
