/**
 * CPU time and memory of a process (this one, or a child such as the agent
 * host, by its PID), from /proc on Linux (the bench machine) with portable
 * fallbacks for this process: total CPU (all threads, exited ones included),
 * CPU of the main thread (the agent's JavaScript), current and peak RSS,
 * and the worker threads running.
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

/** CPU used so far by process `pid` (default: this one) and by its main thread. */
export function cpuTimes(pid: number = Deno.pid): CpuTimes {
  let processMs = statCpuMs(`/proc/${pid}/stat`);
  if (Number.isNaN(processMs) && pid === Deno.pid) {
    const usage =
      (globalThis as { process?: { cpuUsage?: () => { user: number; system: number } } })
        .process?.cpuUsage?.();
    if (usage) processMs = (usage.user + usage.system) / 1000;
  }
  return { processMs, mainThreadMs: statCpuMs(`/proc/${pid}/task/${pid}/stat`) };
}

/**
 * CPU time of the threads process `pid` (default: this one) has now, ms,
 * from /proc/<pid>/task/<tid>/schedstat (nanoseconds, where /proc/<pid>/stat
 * counts 10 ms ticks); threads that have ended are not in it, so it suits
 * short windows in which none ends. NaN where unavailable.
 */
export function liveThreadsCpuMs(pid: number = Deno.pid): number {
  try {
    let ns = 0;
    for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/schedstat`).split(" ")[0]);
      } catch {
        // The thread ended meanwhile.
      }
    }
    return ns / 1e6;
  } catch {
    return NaN;
  }
}

/**
 * CPU time of the main thread of process `pid` so far, ms, and the time it
 * waited for a CPU while runnable, from /proc/<pid>/task/<pid>/schedstat
 * (nanoseconds); NaN where unavailable.
 */
export function mainThreadSchedMs(pid: number = Deno.pid): { cpuMs: number; waitMs: number } {
  try {
    const [run, wait] = Deno.readTextFileSync(`/proc/${pid}/task/${pid}/schedstat`).split(" ");
    return { cpuMs: Number(run) / 1e6, waitMs: Number(wait) / 1e6 };
  } catch {
    return { cpuMs: NaN, waitMs: NaN };
  }
}

/**
 * CPU time of the threads of process `pid` other than its main thread, ms,
 * summed by thread name (`V8 DefaultWorke`: V8's GC and compiler helpers,
 * `tokio-runtime-w`: the runtime's I/O and blocking pool, `worker-N`: Deno
 * Workers), from schedstat; empty where unavailable.
 */
export function otherThreadsCpuMs(pid: number = Deno.pid): Map<string, number> {
  const byName = new Map<string, number>();
  try {
    for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
      if (t.name === String(pid)) continue;
      try {
        const dir = `/proc/${pid}/task/${t.name}`;
        const name = Deno.readTextFileSync(`${dir}/comm`).trim();
        const ms = Number(Deno.readTextFileSync(`${dir}/schedstat`).split(" ")[0]) / 1e6;
        byName.set(name, (byName.get(name) ?? 0) + ms);
      } catch {
        // The thread ended meanwhile.
      }
    }
  } catch {
    // No /proc.
  }
  return byName;
}

/** CPU used between two readings. */
export function cpuDelta(a: CpuTimes, b: CpuTimes): CpuTimes {
  return { processMs: b.processMs - a.processMs, mainThreadMs: b.mainThreadMs - a.mainThreadMs };
}

/** A value in kB from /proc/<pid>/status (`VmRSS`, `VmHWM`), in bytes; NaN when unavailable. */
function statusBytes(field: string, pid: number): number {
  try {
    const text = Deno.readTextFileSync(`/proc/${pid}/status`);
    const m = text.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/**
 * Resident memory of process `pid` (default: this one) by kind, bytes:
 * anonymous (heaps, stacks) and file-backed (the executable's code and
 * data, shared libraries); NaN where /proc is missing.
 */
export function rssByKind(pid: number = Deno.pid): { anon: number; file: number } {
  return { anon: statusBytes("RssAnon", pid), file: statusBytes("RssFile", pid) };
}

/** Current resident set size of process `pid` (default: this one), bytes. */
export function rssBytes(pid: number = Deno.pid): number {
  return pid === Deno.pid ? Deno.memoryUsage().rss : statusBytes("VmRSS", pid);
}

/**
 * Peak resident set size of process `pid` (default: this one) since the last
 * {@link resetPeakRss} (or its start), bytes; falls back to the current RSS
 * where /proc is missing.
 */
export function peakRssBytes(pid: number = Deno.pid): number {
  const hwm = statusBytes("VmHWM", pid);
  return Number.isNaN(hwm) ? rssBytes(pid) : hwm;
}

/**
 * Restart peak-RSS accounting of process `pid` (default: this one) at its
 * current RSS (Linux: writes 5 to clear_refs).
 */
export function resetPeakRss(pid: number = Deno.pid): boolean {
  try {
    Deno.writeTextFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/**
 * Threads of this process by name prefix (Deno names a worker's thread
 * `worker-N`): `{ all, workers }`; NaN where /proc is missing.
 */
export function threadCounts(): { all: number; workers: number } {
  try {
    let all = 0;
    let workers = 0;
    for (const t of Deno.readDirSync("/proc/self/task")) {
      all++;
      try {
        if (Deno.readTextFileSync(`/proc/self/task/${t.name}/comm`).startsWith("worker-")) {
          workers++;
        }
      } catch {
        // The thread ended meanwhile.
      }
    }
    return { all, workers };
  } catch {
    return { all: NaN, workers: NaN };
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

/**
 * The benchmark's clock, ms: `performance.timeOrigin + performance.now()`,
 * monotonic within a process and comparable across the bench's processes
 * (the agent host's sync and HNS-write times against the API write times).
 */
export function now(): number {
  return performance.timeOrigin + performance.now();
}
