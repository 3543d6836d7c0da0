/**
 * IdListing holds a listing's IDs as a Set of their upper-case forms would:
 * the same membership, size and members, for GUIDs in either case, IDs that
 * are not GUIDs (or nearly are), and duplicates; and it survives the
 * structured clone an HNS thread hands it over by; an answer read in place
 * (as HNS hands it over to the event loop's thread) lists the same, is
 * released once, and is read in steps of a pacer that may make it wait.
 *
 * @module
 */

import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import { HnsError, HResult } from "../../lib/hns/errors.ts";
import {
  IdListing,
  idListingBuffers,
  idListingFromText,
  idListingOfAnswer,
  isIdListingData,
  type Pacer,
} from "../../lib/hns/id_listing.ts";
import { handedOver } from "./handed_over.ts";
import { prng } from "../prng.ts";

const HEX = "0123456789abcdefABCDEF";

function guid(rand: () => number): string {
  let s = "";
  for (let i = 0; i < 36; i++) {
    s += i === 8 || i === 13 || i === 18 || i === 23 ? "-" : HEX[Math.floor(rand() * HEX.length)];
  }
  return s;
}

/** Strings that are GUIDs but for one character or their length. */
function nearGuid(rand: () => number): string {
  const g = guid(rand);
  const i = Math.floor(rand() * 36);
  const bad = ["g", "-", " ", "é", "\u0130", "0"][Math.floor(rand() * 6)];
  return rand() < 0.2 ? g.slice(1) : rand() < 0.2 ? `{${g}}` : g.slice(0, i) + bad + g.slice(i + 1);
}

Deno.test("IdListing: membership, size and members as a Set of the upper-case IDs", () => {
  for (let seed = 1; seed <= 60; seed++) {
    const rand = prng(seed);
    const listed: string[] = [];
    const n = Math.floor(rand() * (seed % 10 === 0 ? 3000 : 60));
    for (let i = 0; i < n; i++) {
      const r = rand();
      if (r < 0.7) listed.push(guid(rand));
      else if (r < 0.8) listed.push(nearGuid(rand));
      else if (r < 0.9 && listed.length > 0) {
        // Listed again, maybe in the other case.
        const again = listed[Math.floor(rand() * listed.length)];
        listed.push(rand() < 0.5 ? again : again.toLowerCase());
      } else listed.push(`EP-${i}-${Math.floor(rand() * 1000)}`);
    }
    const expected = new Set(listed.map((id) => id.toUpperCase()));
    const text = JSON.stringify(listed);
    // Built on a thread and handed over: a structured clone, buffers transferred.
    const data = idListingFromText(text);
    const cloned = structuredClone(data, { transfer: idListingBuffers(data) });
    ok(isIdListingData(cloned));
    for (const listing of [IdListing.from(cloned), IdListing.of(listed)]) {
      equal(listing.size, expected.size, `seed ${seed}`);
      deepEqual([...listing].sort(), [...expected].sort(), `seed ${seed}`);
      for (const id of expected) ok(listing.has(id), `seed ${seed}: ${id} listed`);
      for (let i = 0; i < 50; i++) {
        const other = (rand() < 0.5 ? guid(rand) : nearGuid(rand)).toUpperCase();
        equal(listing.has(other), expected.has(other), `seed ${seed}: ${other}`);
      }
    }
  }
});

Deno.test("IdListing: an answer of GUIDs only (read without JSON.parse) lists what JSON.parse reads, or is refused as it is", () => {
  const rand = prng(11);
  const ids = Array.from({ length: 500 }, () => guid(rand));
  ids.push(ids[3], ids[7].toLowerCase());
  const texts = [
    JSON.stringify(ids),
    JSON.stringify(ids, null, 2),
    ` [ ${ids.map((id) => `"${id}"`).join(" ,\n\t")} ]\r\n`,
    "[]",
    " [ ] ",
    JSON.stringify(ids.slice(0, 1)),
  ];
  const bad = [
    `[${JSON.stringify(ids[0])},]`,
    `[${JSON.stringify(ids[0])}`,
    `${JSON.stringify(ids)}x`,
    `[${JSON.stringify(ids[0])} ${JSON.stringify(ids[1])}]`,
    `["${ids[0]}]`,
    `[,"${ids[0]}"]`,
    `["${ids[0]}"]]`,
  ];
  for (const text of [...texts, ...bad]) {
    let expected: string[] | undefined;
    try {
      expected = [...new Set((JSON.parse(text) as string[]).map((id) => id.toUpperCase()))];
    } catch {
      expected = undefined;
    }
    if (expected === undefined) {
      throws(() => idListingFromText(text), SyntaxError, text);
      continue;
    }
    const listing = IdListing.from(idListingFromText(text));
    deepEqual([...listing].sort(), expected.sort(), text.slice(0, 60));
  }
});

Deno.test("IdListing: an answer that is not a JSON array of ID strings is INVALID_JSON, naming the call", () => {
  equal(IdListing.from(idListingFromText("")).size, 0, "an empty answer lists nothing");
  for (const answer of ["{}", '["A", 1]', "[not json", "null"]) {
    throws(() => idListingFromText(answer), SyntaxError);
    throws(() => idListingOfAnswer("Endpoint", answer), (err) => {
      ok(err instanceof HnsError);
      equal(err.hresult, HResult.INVALID_JSON);
      match(err.message, /HcnEnumerateEndpoints/);
      return true;
    });
  }
});

Deno.test("IdListing: untouched lists what touch has not found, and touch answers as has", () => {
  const rand = prng(5);
  const ids = Array.from({ length: 200 }, () => guid(rand).toUpperCase());
  const listing = IdListing.of([...ids, "EP-1"]);
  deepEqual([...listing.untouched()].sort(), [...ids, "EP-1"].sort(), "nothing touched yet");
  const touched = ids.filter(() => rand() < 0.5);
  for (const id of touched) ok(listing.touch(id));
  equal(listing.touch(guid(rand).toUpperCase()), false, "not listed");
  ok(listing.touch("EP-1"));
  const rest = ids.filter((id) => !touched.includes(id));
  // IDs that are not GUIDs stay among the untouched (a superset is what callers need).
  deepEqual([...listing.untouched()].sort(), [...rest, "EP-1"].sort());
  equal(listing.size, 201);
});

Deno.test("IdListing.read: an answer handed over is read in place as its text would be, and released once", async () => {
  const rand = prng(21);
  // Long enough to span many memory pages (39 units, 78 bytes per ID).
  const ids = Array.from({ length: 2000 }, () => guid(rand));
  const texts = [
    JSON.stringify(ids),
    ` [ ${ids.slice(0, 50).map((id) => `"${id}"`).join(" ,\n\t")} ]\r\n`,
    "[]",
    "",
    JSON.stringify([...ids.slice(0, 20), "EP-1", "Ünïcode"]),
    `["${ids[0]}", "${ids[1]}"`,
    '["A", 1]',
    "{}",
  ];
  for (const [n, text] of [...texts, JSON.stringify(ids.slice(0, 300))].entries()) {
    // The last one at an odd address, as HNS never hands one over: read all the same.
    const { answer, releases } = handedOver(text, n === texts.length);
    let expected: IdListing | Error;
    try {
      expected = IdListing.from(idListingOfAnswer("Endpoint", text));
    } catch (err) {
      expected = err as Error;
    }
    let read: IdListing | Error;
    try {
      read = await IdListing.read("Endpoint", answer);
    } catch (err) {
      read = err as Error;
    }
    if (expected instanceof Error) {
      ok(read instanceof HnsError, text.slice(0, 40));
      equal(read.hresult, HResult.INVALID_JSON);
      equal(read.message, expected.message);
    } else {
      ok(read instanceof IdListing, text.slice(0, 40));
      deepEqual([...read].sort(), [...expected].sort(), text.slice(0, 40));
    }
    equal(releases(), 1, `released once: ${text.slice(0, 40)}`);
  }
  const none = { answer: null, release: () => nulls++ };
  let nulls = 0;
  equal((await IdListing.read("LoadBalancer", none)).size, 0, "no answer lists nothing");
  equal(nulls, 1);
});

Deno.test("IdListing.read: the read steps the pacer per page and per ID, and waits whenever it says so", async () => {
  const rand = prng(22);
  const ids = Array.from({ length: 5000 }, () => guid(rand));
  const { answer, releases } = handedOver(JSON.stringify(ids));
  let steps = 0;
  let waits = 0;
  let between = 0;
  const pace: Pacer = {
    step: () => {
      if (++steps % 100 !== 0) return undefined;
      waits++;
      // Work the event loop runs while the read waits (a run, say).
      return new Promise((resolve) => setTimeout(() => (between++, resolve()), 0));
    },
  };
  const listing = await IdListing.read("Endpoint", answer, pace);
  equal(listing.size, 5000);
  for (const id of ids) ok(listing.has(id.toUpperCase()));
  // A step after each ID but the last, and after each page scanned but the terminator's:
  // 390,000 bytes span at least 95 pages.
  ok(steps >= 4999 + 94, `steps: ${steps}`);
  equal(waits, Math.floor(steps / 100));
  equal(between, waits, "each wait let the event loop run before the read went on");
  equal(releases(), 1);
});
