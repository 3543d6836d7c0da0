/**
 * bench/memory_peak.ts: the agent's peak pairs the host's RSS with the
 * emulated HNS's heap of the same moment.
 *
 * @module
 */

import assert from "node:assert/strict";
import { AgentPeak, pairingNote } from "../../bench/memory_peak.ts";

const MiB = 1 << 20;
const reading = (rss: number, hwm: number, emu: number) => ({
  rss: rss * MiB,
  hwm: hwm * MiB,
  emu: emu * MiB,
});

/** A peak fed these readings (RSS, high-water mark, emulated HNS's heap; MiB), in order. */
function peakOf(...readings: [number, number, number][]): AgentPeak {
  const peak = new AgentPeak();
  for (const [rss, hwm, emu] of readings) peak.add(reading(rss, hwm, emu));
  return peak;
}

Deno.test("agent peak: a host peak before the emulated HNS grew is the agent's, not net of the later heap", () => {
  // A cold start: the agent peaks while planning, then the creates fill the emulated HNS.
  const f = peakOf([100, 100, 25], [185, 185, 25], [250, 250, 100], [308, 308, 157]).figure;
  // Host peak 308 minus the heap at its end (157) would say 151.
  assert.equal(f.agent, 160 * MiB);
  assert.equal(f.rss, 185 * MiB);
  assert.equal(f.emu, 25 * MiB);
  assert.equal(f.hostPeak, 308 * MiB);
  assert.equal(f.readings, 4);
  assert.equal(f.emuLow, 25 * MiB);
  assert.equal(f.emuHigh, 157 * MiB);
});

Deno.test("agent peak: a host peak while the emulated HNS held less counts against that heap, not the end's", () => {
  // Churn: the host's RSS is flat while the emulated HNS's heap grows under it.
  assert.equal(peakOf([310, 310, 157], [312, 312, 158], [312, 312, 165]).figure.agent, 154 * MiB);
});

Deno.test("agent peak: a high-water mark set between readings counts against the smaller heap of the two", () => {
  const peak = peakOf([300, 300, 150]);
  // RSS went up to 320 and back between the readings while the heap went from 150 to 160.
  peak.add(reading(305, 320, 160));
  assert.equal(peak.figure.agent, 170 * MiB);
  // A mark that did not move is not counted again against a smaller heap.
  peak.add(reading(300, 320, 140));
  assert.equal(peak.figure.agent, 170 * MiB);
  // After a reset (the mark went down), a mark set anew counts.
  peak.add(reading(290, 315, 130));
  assert.equal(peak.figure.agent, 185 * MiB);
});

Deno.test("agent peak: with the emulated HNS's heap held still (a reserve), a mark between readings is exact", () => {
  // A transient between the first and the second reading: the heap is the same at every moment.
  const f = peakOf([250, 250, 111], [255, 262, 111], [258, 262, 111]).figure;
  assert.equal(f.agent, 151 * MiB);
  assert.equal(f.emu, 111 * MiB);
  assert.equal(f.emuLow, f.emuHigh);
  assert.equal(
    pairingNote(f),
    "the emulated HNS held 111 MiB at every reading (a reserve): each pairing exact",
  );
});

Deno.test("agent peak: a heap that moved is named with its range, and the figure as an upper bound", () => {
  const note = pairingNote(peakOf([300, 300, 97], [305, 320, 98.6]).figure);
  assert.match(note, /^the emulated HNS held 97–98\.6 MiB over the window: .*\(an upper bound\)$/);
});

Deno.test("agent peak: no reading, no figure", () => {
  const f = new AgentPeak().figure;
  assert.ok(Number.isNaN(f.agent));
  assert.ok(Number.isNaN(f.emuLow) && Number.isNaN(f.emuHigh));
});
