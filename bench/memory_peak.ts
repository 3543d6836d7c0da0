/**
 * The agent's peak RSS without the emulated HNS over a window, from readings
 * of the agent host taken at the same moment: its RSS, its high-water mark
 * (VmHWM) and the emulated HNS's heap (HnsEmuHeapBytes). The host's RSS
 * holds both the agent and the emulated HNS, whose heap moves as the agent
 * writes to it, so a peak is the agent's only net of the emulator's heap of
 * that moment, never of one read before or after.
 *
 * Rules:
 * - Each reading counts its own RSS less its own emulator heap.
 * - When the high-water mark moved between two readings (it rose, or was
 *   reset and set anew) to above the later reading's RSS, the RSS reached it
 *   at some moment between them, while the emulator held at least the
 *   smaller of the two readings' heaps: the mark less that smaller heap
 *   counts too (an upper bound of the agent's part at that moment, as the
 *   heap is not known in between). A mark no higher than the reading's RSS
 *   is that reading's own.
 * - A mark that did not move was counted when it was set.
 * - The figure says how far the emulator's heap moved over the window: not
 *   at all when the emulator had a reserve that held its blocks
 *   (bench/emulator.ts `reserveHeap`), and every pairing is then exact.
 *
 * @module
 */

import { mib } from "./procstat.ts";

/** One reading of the agent host, bytes. */
export interface PeakReading {
  /** The host's RSS now. */
  rss: number;
  /** The host's peak RSS since it was last reset (VmHWM). */
  hwm: number;
  /** The emulated HNS's heap now. */
  emu: number;
}

/** The highest agent figure of a window and what it was made of. */
export interface AgentPeakFigure {
  /** Peak of the agent without the emulated HNS, bytes (NaN: no reading yet). */
  agent: number;
  /** The host's RSS (or high-water mark) of that moment. */
  rss: number;
  /** The emulated HNS's heap subtracted from it. */
  emu: number;
  /** The host's highest high-water mark seen (the old, unpaired figure's minuend). */
  hostPeak: number;
  /** Readings taken. */
  readings: number;
  /** The smallest emulated HNS's heap read in the window (NaN: no reading yet). */
  emuLow: number;
  /** The largest one: equal to {@link emuLow} when it never moved (every pairing exact). */
  emuHigh: number;
}

/** Accumulates {@link PeakReading}s into the agent's peak; see the module notes. */
export class AgentPeak {
  #last: PeakReading | undefined;
  #best: AgentPeakFigure = {
    agent: NaN,
    rss: NaN,
    emu: NaN,
    hostPeak: 0,
    readings: 0,
    emuLow: NaN,
    emuHigh: NaN,
  };

  /** Count a reading taken now. */
  add(r: PeakReading): void {
    this.#consider(r.rss, r.emu);
    const last = this.#last;
    if (r.hwm > r.rss && (last === undefined || r.hwm !== last.hwm)) {
      this.#consider(r.hwm, last === undefined ? r.emu : Math.min(last.emu, r.emu));
    }
    this.#best.hostPeak = Math.max(this.#best.hostPeak, r.hwm, r.rss);
    this.#best.readings++;
    if (!(r.emu >= this.#best.emuLow)) this.#best.emuLow = r.emu;
    if (!(r.emu <= this.#best.emuHigh)) this.#best.emuHigh = r.emu;
    this.#last = r;
  }

  #consider(rss: number, emu: number): void {
    const agent = rss - emu;
    if (!(agent <= this.#best.agent)) this.#best = { ...this.#best, agent, rss, emu };
  }

  /** The peak so far. */
  get figure(): AgentPeakFigure {
    return { ...this.#best };
  }
}

/**
 * How exact a figure's pairing is, for a note: the emulated HNS's heap held
 * still over the window (a reserve), or how far it moved.
 */
export function pairingNote(f: AgentPeakFigure): string {
  return f.emuLow === f.emuHigh
    ? `the emulated HNS held ${mib(f.emuLow)} MiB at every reading (a reserve): each pairing exact`
    : `the emulated HNS held ${mib(f.emuLow)}–${mib(f.emuHigh)} MiB over the window: a mark ` +
      `set between two readings counts less the smaller of their heaps (an upper bound)`;
}
