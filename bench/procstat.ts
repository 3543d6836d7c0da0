/**
 * CPU time and memory of this process, from /proc on Linux (the bench
 * machine) with portable fallbacks: total CPU (all threads, exited ones
 * included), CPU of the main thread (the agent's JavaScript), current and
 * peak RSS.
 *
 * @module
 */

/** A CPU-time reading in milliseconds. */
export interface CpuTimes {
  /** All threads of the process: JS, FFI worker threads running HNS calls, GC, I/O. */
  processMs: number;
  /** The main thread only (the agent's JavaScript and blocking FFI calls), or NaN when unknown. */
  mainThreadMs: number;
}

const CLOCK_TICKS_PER_SECOND = 100;

/** utime + stime in ms of a /proc stat file, or NaN. */
function statCpuMs(path: string): number {
  try {
    const text = Deno.readTextFileSync(path);
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    // Fields after the comm: state(0) ... utime(11) stime(12).
    return (Number(fields[11]) + Number(fields[12])) * 1000 / CLOCK_TICKS_PER_SECOND;
  } catch {
    return NaN;
  }
}

/** CPU used so far by this process and by its main thread. */
export function cpuTimes(): CpuTimes {
  let processMs = statCpuMs("/proc/self/stat");
  if (Number.isNaN(processMs)) {
    const usage =
      (globalThis as { process?: { cpuUsage?: () => { user: number; system: number } } })
        .process?.cpuUsage?.();
    if (usage) processMs = (usage.user + usage.system) / 1000;
  }
  return { processMs, mainThreadMs: statCpuMs(`/proc/self/task/${Deno.pid}/stat`) };
}

/** CPU used between two readings. */
export function cpuDelta(a: CpuTimes, b: CpuTimes): CpuTimes {
  return { processMs: b.processMs - a.processMs, mainThreadMs: b.mainThreadMs - a.mainThreadMs };
}

/** A value in kB from /proc/self/status (`VmRSS`, `VmHWM`), in bytes; NaN when unavailable. */
function statusBytes(field: string): number {
  try {
    const text = Deno.readTextFileSync("/proc/self/status");
    const m = text.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Current resident set size, bytes. */
export function rssBytes(): number {
  return Deno.memoryUsage().rss;
}

/**
 * Peak resident set size since the last {@link resetPeakRss} (or process
 * start), bytes; falls back to the current RSS where /proc is missing.
 */
export function peakRssBytes(): number {
  const hwm = statusBytes("VmHWM");
  return Number.isNaN(hwm) ? rssBytes() : hwm;
}

/** Restart peak-RSS accounting at the current RSS (Linux: writes 5 to clear_refs). */
export function resetPeakRss(): boolean {
  try {
    Deno.writeTextFileSync("/proc/self/clear_refs", "5");
    return true;
  } catch {
    return false;
  }
}

/** Run a full GC when the process was started with `--v8-flags=--expose-gc`; false otherwise. */
export function collectGarbage(): boolean {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return false;
  gc();
  return true;
}

/** Bytes → MiB with one decimal. */
export function mib(bytes: number): number {
  return Math.round(bytes / 1024 / 1024 * 10) / 10;
}
