/**
 * A listing's answer as HNS hands it over to the event loop's thread
 * ({@link ListingAnswer}), made from a text in memory outside the JS heap's
 * strings: NUL-terminated UTF-16, wiped when released, so that a read after
 * the release finds nothing.
 *
 * @module
 */

import type { ListingAnswer } from "../../lib/hns/id_listing.ts";

/**
 * `text` handed over (at an odd address when `misaligned`, which HNS never
 * does); `releases` counts the releases.
 */
export function handedOver(
  text: string,
  misaligned = false,
): { answer: ListingAnswer; releases: () => number } {
  const at = misaligned ? 1 : 0;
  const bytes = new Uint8Array(at + 2 * (text.length + 1));
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < text.length; i++) view.setUint16(at + 2 * i, text.charCodeAt(i), true);
  let releases = 0;
  return {
    answer: {
      answer: Deno.UnsafePointer.of(bytes.subarray(at)),
      release: () => {
        releases++;
        bytes.fill(0);
      },
    },
    releases: () => releases,
  };
}
