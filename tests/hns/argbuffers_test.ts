/** The slab allocator of FFI argument buffers. */

import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { ArgBuffers } from "../../lib/hns/argbuffers.ts";
import { guidToBytes } from "../../lib/hns/guid.ts";
import { decodeWide } from "../../lib/hns/wstr.ts";

Deno.test("argbuffers: wide strings are NUL-terminated UTF-16 and never share memory", () => {
  const buffers = new ArgBuffers();
  const texts = ["", "x", "😀 ü €", "a".repeat(5000), "b".repeat(40_000)];
  const views = texts.map((t) => buffers.wide(t));
  for (const [i, view] of views.entries()) {
    equal(view.length, texts[i].length + 1);
    equal(view[view.length - 1], 0, "NUL terminator");
    equal(decodeWide(view.subarray(0, -1)), texts[i]);
    equal(view.byteOffset % 8, 0, "8-byte aligned");
  }
  // Writing one buffer leaves every other intact.
  views[1].fill(0xffff);
  equal(decodeWide(views[2].subarray(0, -1)), texts[2]);
  equal(decodeWide(views[3].subarray(0, -1)), texts[3]);
  equal(views[0][0], 0);
});

Deno.test("argbuffers: long text, ASCII or not, comes out unit for unit", () => {
  const buffers = new ArgBuffers();
  const json = JSON.stringify({ IpConfigurations: [{ IpAddress: "10.244.2.7" }], Flags: 1 });
  const texts = [
    json,
    json + "é", // one non-ASCII character at the very end
    "€" + json,
    json.slice(0, 20) + "😀" + json.slice(20),
    json + "\ud800", // a lone surrogate is kept, not replaced
    "\u007f".repeat(40) + "\u0080",
  ];
  for (const text of texts) {
    const view = buffers.wide(text);
    equal(view.length, text.length + 1);
    equal(view[text.length], 0, "NUL terminator");
    for (let i = 0; i < text.length; i++) equal(view[i], text.charCodeAt(i), `unit ${i}`);
  }
});

Deno.test("argbuffers: out-parameters start NULL, GUIDs match guidToBytes, slabs roll over", () => {
  const buffers = new ArgBuffers();
  const seen = new Set<ArrayBufferLike>();
  const outs: BigUint64Array[] = [];
  for (let i = 0; i < 20_000; i++) {
    const out = buffers.pointerOut();
    equal(out[0], 0n);
    out[0] = BigInt(i + 1);
    outs.push(out);
    seen.add(out.buffer);
  }
  ok(seen.size > 1, "more than one slab");
  outs.forEach((out, i) => equal(out[0], BigInt(i + 1), "no region handed out twice"));

  const id = "00112233-4455-6677-8899-aabbccddeeff";
  deepEqual([...buffers.guid(id)], [...guidToBytes(id)]);
  deepEqual([...buffers.guid("")], new Array(16).fill(0));
  const a = buffers.guid(id);
  const b = buffers.guid(`{${id.toUpperCase()}}`);
  ok(a.buffer !== b.buffer || a.byteOffset !== b.byteOffset, "two GUIDs, two regions");
  throws(() => buffers.guid("cbr0"), TypeError);
});

Deno.test("argbuffers: after a reset the slab's regions are handed out again, zero-filled", () => {
  const buffers = new ArgBuffers();
  const out = buffers.pointerOut();
  out[0] = 0xdeadn;
  const long = buffers.wide("x".repeat(100));
  const id = buffers.guid("00112233-4455-6677-8899-aabbccddeeff");
  buffers.reset();
  const again = buffers.pointerOut();
  equal(again.buffer, out.buffer, "the same slab");
  equal(again.byteOffset, out.byteOffset, "the same region");
  equal(again[0], 0n, "NULL again");
  // Shorter text over the longer one's memory: terminated, nothing of the old text left.
  const short = buffers.wide("ab");
  equal(short.buffer, long.buffer);
  deepEqual([...short], [0x61, 0x62, 0]);
  const inOldText = buffers.pointerOut();
  equal(inOldText.buffer, long.buffer);
  equal(inOldText[0], 0n, "an out-parameter where the old text was starts NULL");
  deepEqual([...buffers.guid("")], new Array(16).fill(0));
  ok(id.some((b) => b !== 0), "a buffer held over a reset is not freed (only overwritten later)");
});
