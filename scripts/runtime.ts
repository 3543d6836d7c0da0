/**
 * The Windows runtime `deno compile` needs for the CI build check.
 *
 * `deno compile --target x86_64-pc-windows-msvc` downloads `denort.exe` from
 * dl.deno.land, which these machines cannot reach, and no registry package
 * ships denort. The full Windows `deno.exe` (npm package `@deno/win32-x64`)
 * can stand in through `DENORT_BIN`: the compile then resolves the whole
 * module graph and the npm packages for Windows, but the output is plain
 * deno with hnsproxy's files attached, so it is a build check and never an
 * artifact (shared/reference/windows-under-wine.md, "deno compile").
 *
 * Where the runtime comes from, first match wins:
 * 1. `DENORT_BIN` already set by the caller;
 * 2. the Wine tier's cache (`tests/windows/wine.sh`):
 *    `${HNSPROXY_WINE_CACHE:-/var/cache/hnsproxy-wine}/state/deno/deno.exe`;
 * 3. this script's own cache, `${HNSPROXY_COMPILE_CACHE:-~/.cache/hnsproxy/denort}/<version>/deno.exe`,
 *    filled once with `npm pack @deno/win32-x64@<version>`: the running deno's
 *    version if the registry has it, else the newest one of the same major
 *    that is not newer.
 *
 * @module
 */

import { dirname, join } from "node:path";

/** The npm package that ships the Windows x64 deno.exe. */
export const WIN32_PACKAGE = "@deno/win32-x64";

/** A runtime for the build check. */
export interface CheckRuntime {
  /** Absolute path of the Windows deno.exe. */
  path: string;
  /** Where it came from, in words. */
  source: string;
}

/** Messages for the person running the check. */
export type Log = (line: string) => void;

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** `2.9.6` → `[2, 9, 6]`; prerelease and build suffixes are ignored. */
export function parseVersion(v: string): [number, number, number] | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(v.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

function compareVersions(a: [number, number, number], b: [number, number, number]): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

/**
 * The version to use for `wanted` among `available`: `wanted` itself, else
 * the newest plain release of the same major that is not newer; undefined
 * when there is none.
 */
export function pickVersion(wanted: string, available: readonly string[]): string | undefined {
  if (available.includes(wanted)) return wanted;
  const w = parseVersion(wanted);
  if (!w) return undefined;
  let best: { v: string; p: [number, number, number] } | undefined;
  for (const v of available) {
    if (!/^\d+\.\d+\.\d+$/.test(v)) continue;
    const p = parseVersion(v)!;
    if (p[0] !== w[0] || compareVersions(p, w) > 0) continue;
    if (!best || compareVersions(p, best.p) > 0) best = { v, p };
  }
  return best?.v;
}

/** The default cache directory of fetched runtimes. */
export function compileCacheDir(env: Record<string, string | undefined>): string {
  if (env.HNSPROXY_COMPILE_CACHE) return env.HNSPROXY_COMPILE_CACHE;
  const base = env.XDG_CACHE_HOME ??
    join(env.HOME ?? env.USERPROFILE ?? Deno.cwd(), ".cache");
  return join(base, "hnsproxy", "denort");
}

/** Find (or fetch once) the Windows deno.exe for the build check. */
export async function resolveCheckRuntime(
  env: Record<string, string | undefined>,
  log: Log,
  denoVersion: string = Deno.version.deno,
): Promise<CheckRuntime> {
  if (env.DENORT_BIN) {
    if (!exists(env.DENORT_BIN)) throw new Error(`DENORT_BIN=${env.DENORT_BIN} is not a file`);
    return { path: env.DENORT_BIN, source: "DENORT_BIN" };
  }
  const wine = join(env.HNSPROXY_WINE_CACHE ?? "/var/cache/hnsproxy-wine", "state/deno/deno.exe");
  if (exists(wine)) return { path: wine, source: "the Wine tier's cache" };

  const cache = compileCacheDir(env);
  const cached: string[] = [];
  try {
    for (const e of Deno.readDirSync(cache)) {
      if (e.isDirectory && exists(join(cache, e.name, "deno.exe"))) cached.push(e.name);
    }
  } catch { /* no cache yet */ }
  const hit = pickVersion(denoVersion, cached);
  if (hit) {
    return { path: join(cache, hit, "deno.exe"), source: `${cache} (${WIN32_PACKAGE}@${hit})` };
  }

  let version = denoVersion;
  let tgz: Uint8Array;
  try {
    tgz = await npmPack(`${WIN32_PACKAGE}@${version}`, log);
  } catch (first) {
    const available = await npmVersions(WIN32_PACKAGE);
    const fallback = pickVersion(denoVersion, available.filter((v) => v !== denoVersion));
    if (!fallback) {
      throw new Error(
        `cannot fetch ${WIN32_PACKAGE}@${denoVersion} (${(first as Error).message}) ` +
          `and the registry has no older ${parseVersion(denoVersion)?.[0]}.x to use instead`,
      );
    }
    log(`${WIN32_PACKAGE}@${denoVersion} is not in the registry; using ${fallback}`);
    version = fallback;
    tgz = await npmPack(`${WIN32_PACKAGE}@${version}`, log);
  }
  const exe = await extractFromTarGz(tgz, "package/deno.exe");
  const path = join(cache, version, "deno.exe");
  await Deno.mkdir(dirname(path), { recursive: true });
  await Deno.writeFile(`${path}.part`, exe);
  await Deno.rename(`${path}.part`, path);
  return { path, source: `${cache} (${WIN32_PACKAGE}@${version}, just fetched)` };
}

const NPM = Deno.build.os === "windows" ? "npm.cmd" : "npm";

async function npmPack(spec: string, log: Log): Promise<Uint8Array> {
  const dir = await Deno.makeTempDir({ prefix: "hnsproxy-denort-" });
  try {
    log(`fetching ${spec} with npm pack (once; cached afterwards)`);
    const out = await new Deno.Command(NPM, {
      args: ["pack", "--silent", "--pack-destination", dir, spec],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-2).join(" ");
      throw new Error(`npm pack ${spec} failed: ${err || `exit ${out.code}`}`);
    }
    const name = [...Deno.readDirSync(dir)].find((e) => e.name.endsWith(".tgz"))?.name;
    if (!name) throw new Error(`npm pack ${spec} wrote no .tgz`);
    return await Deno.readFile(join(dir, name));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function npmVersions(pkg: string): Promise<string[]> {
  const out = await new Deno.Command(NPM, {
    args: ["view", pkg, "versions", "--json"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) return [];
  try {
    const v = JSON.parse(new TextDecoder().decode(out.stdout));
    return Array.isArray(v) ? v.map(String) : typeof v === "string" ? [v] : [];
  } catch {
    return [];
  }
}

/** One file's bytes out of a gzipped tar (ustar, with GNU/pax long names skipped). */
export async function extractFromTarGz(tgz: Uint8Array, name: string): Promise<Uint8Array> {
  const stream = new Blob([tgz as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new DecompressionStream("gzip"));
  const tar = new Uint8Array(await new Response(stream).arrayBuffer());
  const text = new TextDecoder();
  const field = (at: number, len: number) => {
    const raw = tar.subarray(at, at + len);
    const end = raw.indexOf(0);
    return text.decode(end < 0 ? raw : raw.subarray(0, end));
  };
  let longName: string | undefined;
  for (let at = 0; at + 512 <= tar.length;) {
    if (tar[at] === 0) break; // end-of-archive block
    const size = parseInt(field(at + 124, 12).trim() || "0", 8);
    const type = String.fromCharCode(tar[at + 156]);
    const prefix = field(at + 345, 155);
    const entry = longName ?? (prefix ? `${prefix}/${field(at, 100)}` : field(at, 100));
    longName = undefined;
    const data = at + 512;
    if (type === "L") {
      longName = text.decode(tar.subarray(data, data + size)).replace(/\0+$/, "");
    } else if ((type === "0" || type === "\0") && entry === name) {
      return tar.slice(data, data + size);
    }
    at = data + Math.ceil(size / 512) * 512;
  }
  throw new Error(`${name} is not in the package`);
}
