/**
 * A listing's answer as HNS hands it over to the event loop's thread
 * ({@link ListingAnswer}), made from a text in memory outside the JS heap's
 * strings: NUL-terminated UTF-16, wiped when released, so that a read after
 * the release finds nothing.
 *
 * @module
 */

import type { ListingAnswer } from "../../lib/hns/id_listing.ts";

/** `text` handed over; `releases` counts the releases. */
export function handedOver(text: string): { answer: ListingAnswer; releases: () => number } {
  const units = new Uint16Array(text.length + 1);
  for (let i = 0; i < text.length; i++) units[i] = text.charCodeAt(i);
  let releases = 0;
  return {
    answer: {
      answer: Deno.UnsafePointer.of(units),
      release: () => {
        releases++;
        units.fill(0);
      },
    },
    releases: () => releases,
  };
}
