/**
 * File paths, Windows and POSIX: the few operations the agent needs
 * (dirname, join, resolve, isAbsolute, sep, delimiter), with node:path's
 * results (tests/path_test.ts compares them), so that the run command loads
 * no Node compatibility layer for them.
 *
 * Rules (as node:path): POSIX paths have `/` separators and are absolute
 * when they start with `/`. Windows paths take `\` and `/` as separators and
 * have a root: a drive (`C:` relative to that drive, `C:\` absolute), a UNC
 * share (`\\server\share\`) or a lone separator (absolute on the current
 * drive); results use `\`. `join` and `resolve` normalize (`.` dropped, `..`
 * removes the segment before it, never above a root, repeated separators
 * collapsed); `resolve` starts from the current directory when no part is
 * absolute and drops a trailing separator; `join` keeps one. Windows
 * `resolve` skips parts on another drive than the one found, does not
 * read the per-drive current directories (`=C:` variables) and gives long
 * paths (`\\?\`) no special meaning. A relative Windows result that would
 * read as one with a drive (`C:a`, `x:\`) gets `.\` in front.
 *
 * @module
 */

/** The operations of one path flavour. */
export interface PathFlavour {
  /** The separator results use. */
  readonly sep: string;
  /** The separator of path lists (`PATH`, `KUBECONFIG`). */
  readonly delimiter: string;
  /** Whether `path` does not depend on the current directory (a Windows `C:x` does). */
  isAbsolute(path: string): boolean;
  /** The path without its last segment (trailing separators ignored); `.` when none is left. */
  dirname(path: string): string;
  /** The parts joined with the separator, normalized; `.` for nothing. */
  join(...parts: string[]): string;
  /** The absolute path the parts lead to, from right to left, then from the current directory. */
  resolve(...parts: string[]): string;
}

/** `segments` normalized: `.` and empty ones dropped, `..` applied (kept in front when `aboveRoot`). */
function normalizeSegments(segments: string[], aboveRoot: boolean): string[] {
  const out: string[] = [];
  for (const s of segments) {
    if (s === "" || s === ".") continue;
    if (s === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (aboveRoot) out.push("..");
    } else {
      out.push(s);
    }
  }
  return out;
}

const isPosixSep = (c: string | undefined) => c === "/";

/** POSIX paths. */
export const posix: PathFlavour = {
  sep: "/",
  delimiter: ":",
  isAbsolute: (path) => path.startsWith("/"),
  dirname(path) {
    if (path === "") return ".";
    const rooted = isPosixSep(path[0]);
    let end = -1;
    let inTrailing = true;
    for (let i = path.length - 1; i >= 1; i--) {
      if (isPosixSep(path[i])) {
        if (!inTrailing) {
          end = i;
          break;
        }
      } else {
        inTrailing = false;
      }
    }
    if (end === -1) return rooted ? "/" : ".";
    if (rooted && end === 1) return "//";
    return path.slice(0, end);
  },
  join(...parts) {
    const joined = parts.filter((p) => p !== "").join("/");
    if (joined === "") return ".";
    const absolute = joined.startsWith("/");
    let tail = normalizeSegments(joined.split("/"), !absolute).join("/");
    if (tail === "" && !absolute) tail = ".";
    if (tail !== "" && joined.endsWith("/")) tail += "/";
    return absolute ? `/${tail}` : tail;
  },
  resolve(...parts) {
    let resolved = "";
    let absolute = false;
    for (let i = parts.length - 1; i >= -1 && !absolute; i--) {
      const part = i >= 0 ? parts[i] : Deno.cwd();
      if (part === "") continue;
      resolved = `${part}/${resolved}`;
      absolute = part.startsWith("/");
    }
    const tail = normalizeSegments(resolved.split("/"), !absolute).join("/");
    if (absolute) return `/${tail}`;
    return tail === "" ? "." : tail;
  },
};

const isWinSep = (c: string | undefined) => c === "\\" || c === "/";

/** A Windows path's root: its device (drive or UNC share), whether it is absolute, and the rest. */
function winRoot(
  path: string,
): { device: string; absolute: boolean; rest: string; uncOnly: boolean } {
  if (path.length === 0) return { device: "", absolute: false, rest: "", uncOnly: false };
  if (isWinSep(path[0])) {
    if (isWinSep(path[1])) {
      // \\server\share: a run of non-separators, separators, a run of non-separators.
      let j = 2;
      const serverStart = j;
      while (j < path.length && !isWinSep(path[j])) j++;
      if (j < path.length && j !== serverStart) {
        const server = path.slice(serverStart, j);
        while (j < path.length && isWinSep(path[j])) j++;
        const shareStart = j;
        while (j < path.length && !isWinSep(path[j])) j++;
        if (j !== shareStart) {
          const device = `\\\\${server}\\${path.slice(shareStart, j)}`;
          // The root takes the separator after the share.
          return { device, absolute: true, rest: path.slice(j + 1), uncOnly: j === path.length };
        }
      }
    }
    return { device: "", absolute: true, rest: path.slice(1), uncOnly: false };
  }
  if (path.length >= 2 && path[1] === ":" && /[A-Za-z]/.test(path[0])) {
    const absolute = isWinSep(path[2]);
    return {
      device: path.slice(0, 2),
      absolute,
      rest: path.slice(absolute ? 3 : 2),
      uncOnly: false,
    };
  }
  return { device: "", absolute: false, rest: path, uncOnly: false };
}

function winNormalize(path: string): string {
  if (path.length === 0) return ".";
  const { device, absolute, rest, uncOnly } = winRoot(path);
  if (uncOnly) return `${device}\\`;
  let tail = normalizeSegments(rest.split(/[\\/]/), !absolute).join("\\");
  if (tail === "" && !absolute) tail = ".";
  if (tail !== "" && isWinSep(path[path.length - 1])) tail += "\\";
  // A relative path must not read as one with a device (`x:\`, `x:`): it gets a `.\` in front.
  if (!absolute && device === "" && (/^[A-Za-z]:/.test(tail) || /:(?:[\\/]|$)/.test(path))) {
    return `.\\${tail}`;
  }
  return `${device}${absolute ? "\\" : ""}${tail}`;
}

/** Windows paths. */
export const win32: PathFlavour = {
  sep: "\\",
  delimiter: ";",
  isAbsolute(path) {
    return isWinSep(path[0]) || (/^[A-Za-z]:/.test(path) && isWinSep(path[2]));
  },
  dirname(path) {
    if (path.length === 0) return ".";
    if (path.length === 1) return isWinSep(path[0]) ? path : ".";
    const { device, absolute, rest, uncOnly } = winRoot(path);
    if (uncOnly) return path;
    const rootEnd = path.length - rest.length;
    let end = -1;
    let inTrailing = true;
    for (let i = path.length - 1; i >= rootEnd; i--) {
      if (isWinSep(path[i])) {
        if (!inTrailing) {
          end = i;
          break;
        }
      } else {
        inTrailing = false;
      }
    }
    if (end === -1) {
      if (device === "" && !absolute) return ".";
      end = rootEnd;
    }
    return path.slice(0, end);
  },
  join(...parts) {
    const present = parts.filter((p) => p !== "");
    if (present.length === 0) return ".";
    let joined = present.join("\\");
    // A first part that does not itself start a UNC path (\\server) never makes one.
    const first = present[0];
    const startsUnc = isWinSep(first[0]) && isWinSep(first[1]) &&
      (first.length === 2 || !isWinSep(first[2]));
    if (!startsUnc) {
      let n = 0;
      while (n < joined.length && isWinSep(joined[n])) n++;
      if (n >= 2) joined = `\\${joined.slice(n)}`;
    }
    return winNormalize(joined);
  },
  resolve(...parts) {
    let device = "";
    let tail = "";
    let absolute = false;
    for (let i = parts.length - 1; i >= -1; i--) {
      const part = i >= 0 ? parts[i] : Deno.cwd();
      if (part === "") continue;
      const root = winRoot(part);
      if (root.device !== "") {
        if (device !== "" && root.device.toLowerCase() !== device.toLowerCase()) continue;
        if (device === "") device = root.device;
      }
      if (!absolute) {
        tail = `${root.rest}\\${tail}`;
        absolute = root.absolute;
      }
      if (absolute && device !== "") break;
    }
    const normalized = normalizeSegments(tail.split(/[\\/]/), !absolute).join("\\");
    const result = `${device}${absolute ? "\\" : ""}${normalized}`;
    return result === "" ? "." : result;
  },
};

/** The flavour of the platform this runs on. */
export const path: PathFlavour = Deno.build.os === "windows" ? win32 : posix;

/** {@link PathFlavour.dirname} of this platform. */
export const dirname: (path: string) => string = path.dirname;
/** {@link PathFlavour.join} of this platform. */
export const join: (...parts: string[]) => string = path.join;
/** {@link PathFlavour.resolve} of this platform. */
export const resolve: (...parts: string[]) => string = path.resolve;
/** {@link PathFlavour.isAbsolute} of this platform. */
export const isAbsolute: (path: string) => boolean = path.isAbsolute;
/** {@link PathFlavour.sep} of this platform. */
export const sep: string = path.sep;
/** {@link PathFlavour.delimiter} of this platform. */
export const delimiter: string = path.delimiter;
