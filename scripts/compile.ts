/**
 * Builds hnsproxy as one Windows executable with `deno compile`, and checks
 * what came out.
 *
 * ```sh
 * deno task compile         # dist/hnsproxy.exe (deno downloads its Windows runtime, denort)
 * deno task compile:check   # CI build check: build/compile-check/hnsproxy.exe, never shipped
 * ```
 *
 * Both run the same `deno compile` (see {@link compileArgs}): target
 * x86_64-pc-windows-msvc, the permissions hnsproxy needs baked in
 * ({@link PERMISSIONS}), `--no-prompt`, a generated icon, the lockfile
 * frozen, only the npm packages the program reaches. Then the output is
 * read back and must be a PE32+ image for x86-64 (machine 0x8664) holding
 * every module of main.ts's runtime graph, the dynamically imported
 * subcommand modules included, every npm package it reaches, the intended
 * permissions and the icon. One summary line is printed.
 *
 * `--check` differs only in the runtime and the output path: machines here
 * cannot download denort, so it uses the full Windows deno.exe through
 * `DENORT_BIN` (see runtime.ts). That output is plain deno with hnsproxy's
 * files attached: a build check, not an artifact.
 *
 * @module
 */

import { basename, dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { AGENT_V8_FLAGS, v8FlagsArgument } from "../lib/v8_flags.ts";
import { hnsproxyIcon } from "./icon.ts";
import {
  listResources,
  MACHINE_AMD64,
  parsePeHeaders,
  type PeHeaders,
  readDenoStandalone,
  readVersionInfo,
  RT,
} from "./pe.ts";
import { type CheckRuntime, resolveCheckRuntime } from "./runtime.ts";
import { errorMessage } from "../lib/errors.ts";

/** The repository root. */
export const ROOT: string = fileURLToPath(new URL("..", import.meta.url));
/** The program compiled. */
export const ENTRY = "main.ts";

/**
 * Worker entry points, relative to the root. `deno compile` does not follow
 * `new Worker(...)`, so each is embedded with `--include` (its imports are in
 * main.ts's graph already).
 */
export const WORKER_MODULES: readonly string[] = ["lib/hns/hcn_thread.ts"];
/** The Rust target triple of Windows x64. */
export const TARGET = "x86_64-pc-windows-msvc";
/** The artifact of `deno task compile`, relative to the root. */
export const ARTIFACT = "dist/hnsproxy.exe";
/** The output of `deno task compile:check`, relative to the root. */
export const CHECK_OUTPUT = "build/compile-check/hnsproxy.exe";
/** The generated icon, relative to the root. */
export const ICON = "build/hnsproxy.ico";

/** One permission baked into the executable, and what hnsproxy uses it for. */
export interface Permission {
  /** The `deno compile` flag. */
  flag: string;
  /** The key of Deno's standalone metadata that records it. */
  key: string;
  /** Allowed values, or `[]` for all. */
  values: string[];
  /** What needs it. */
  why: string;
}

/**
 * The permissions of the compiled hnsproxy: the least it needs. FFI gives
 * native code full power anyway, so scoping the rest guards against slips,
 * not attacks; they are scoped where the need is known and fixed.
 */
export const PERMISSIONS: readonly Permission[] = [
  {
    flag: "--allow-ffi",
    key: "allow_ffi",
    values: [],
    why: "the HCN API (computenetwork.dll, vmcompute.dll, ole32.dll or --hns-library) " +
      "and advapi32.dll for the Service Control Manager",
  },
  {
    flag: "--allow-net",
    key: "allow_net",
    values: [],
    why: "the API server; the healthz, metrics and health-check node port servers",
  },
  {
    flag: "--allow-read",
    key: "allow_read",
    values: [],
    why: "kubeconfig, service account token and CA, --config, the state file",
  },
  {
    flag: "--allow-write",
    key: "allow_write",
    values: [],
    why: "the state file, --log-file and its rotation, --write-config-to",
  },
  {
    flag: "--allow-env",
    key: "allow_env",
    values: [],
    why: "NODE_NAME, KUBE_NETWORK, HNSPROXY_*, KUBECONFIG, KUBERNETES_SERVICE_*, ProgramData",
  },
  {
    flag: "--allow-sys=hostname,networkInterfaces",
    key: "allow_sys",
    values: ["hostname", "networkInterfaces"],
    why: "the node name from the OS hostname; the host's MAC on overlay from its interfaces",
  },
  {
    flag: "--allow-run=sc.exe",
    key: "allow_run",
    values: ["sc.exe"],
    why: "sc.exe for `service install` and `service uninstall`",
  },
];

/** The permission flags, in order. */
export const PERMISSION_FLAGS: readonly string[] = PERMISSIONS.map((p) => p.flag);

/**
 * Top-level folders of npm packages that are never loaded at run time and
 * are left out of the executable: besides their size, Deno 2.9's compile
 * can overflow its stack analysing a package's large test data files (it
 * did on bintrees' `test/perf/100k`, 2 MB of newline-separated numbers).
 */
export const NPM_NON_RUNTIME_DIRS: readonly string[] = [
  "test",
  "tests",
  "__tests__",
  "example",
  "examples",
  "benchmark",
  "benchmarks",
  "docs",
];

/** What `deno compile` gets, after `compile`. */
export interface CompileOptions {
  /** Output path. */
  output: string;
  /** The .ico to embed, if any. */
  icon?: string;
  /** Paths to leave out of the embedded file system. */
  excludes?: readonly string[];
  /** The program (default {@link ENTRY}). */
  entry?: string;
}

/** The `deno` arguments of the compile, shared by the artifact and the build check. */
export function compileArgs(o: CompileOptions): string[] {
  return [
    "compile",
    "--target",
    TARGET,
    "--output",
    o.output,
    "--no-prompt",
    ...PERMISSION_FLAGS,
    v8FlagsArgument(),
    "--frozen",
    "--exclude-unused-npm",
    ...(o.icon ? ["--icon", o.icon] : []),
    ...WORKER_MODULES.flatMap((m) => ["--include", m]),
    ...(o.excludes ?? []).flatMap((e) => ["--exclude", e]),
    o.entry ?? ENTRY,
  ];
}

/** The runtime module graph of the entry, as `deno info --json` describes it. */
export interface Graph {
  /** Local modules reached through code (not type-only) imports, relative to the root, `/`-separated. */
  localModules: string[];
  /** Those of them imported dynamically (`await import("./lib/cli/….ts")`). */
  dynamicModules: string[];
  /** npm packages reached at run time, with their dependencies: `name@version`. */
  npmPackages: string[];
  /** Local folders of every npm package in the graph's snapshot. */
  npmPackageDirs: string[];
}

interface InfoDependency {
  code?: { specifier?: string };
  isDynamic?: boolean;
}
interface InfoModule {
  specifier: string;
  kind?: string;
  npmPackage?: string;
  dependencies?: InfoDependency[];
}
interface InfoJson {
  roots: string[];
  modules: InfoModule[];
  redirects?: Record<string, string>;
  npmPackages?: Record<
    string,
    { name: string; version: string; dependencies?: string[]; localPath?: string }
  >;
}

function toRelative(specifier: string, root: string): string | undefined {
  if (!specifier.startsWith("file:")) return undefined;
  const rel = relative(root, fileURLToPath(specifier));
  if (rel.startsWith("..")) return undefined;
  return rel.split(sep).join("/");
}

/** Read the runtime graph out of `deno info --json` output (pure). */
export function readGraph(info: InfoJson, root: string): Graph {
  const modules = new Map(info.modules.map((m) => [m.specifier, m]));
  const redirect = (s: string) => info.redirects?.[s] ?? s;
  const seen = new Set<string>();
  const dynamic = new Set<string>();
  const npmRoots = new Set<string>();
  const queue = info.roots.map(redirect);
  while (queue.length > 0) {
    const spec = queue.pop()!;
    if (seen.has(spec)) continue;
    seen.add(spec);
    const m = modules.get(spec);
    if (!m) continue;
    if (m.kind === "npm" && m.npmPackage) npmRoots.add(m.npmPackage);
    for (const d of m.dependencies ?? []) {
      if (!d.code?.specifier) continue;
      const target = redirect(d.code.specifier);
      if (d.isDynamic) dynamic.add(target);
      queue.push(target);
    }
  }
  const snapshot = info.npmPackages ?? {};
  const npm = new Set<string>();
  const pending = [...npmRoots];
  while (pending.length > 0) {
    const id = pending.pop()!;
    if (npm.has(id)) continue;
    npm.add(id);
    pending.push(...(snapshot[id]?.dependencies ?? []));
  }
  const rel = (specs: Iterable<string>) =>
    [...specs].map((s) => toRelative(s, root)).filter((s): s is string => s !== undefined).sort();
  return {
    localModules: rel(seen),
    dynamicModules: rel(dynamic),
    npmPackages: [...npm].map((id) => {
      const p = snapshot[id];
      return p ? `${p.name}@${p.version}` : id.replace(/_.*$/, "");
    }).sort(),
    npmPackageDirs: Object.values(snapshot).map((p) => p.localPath).filter((p): p is string => !!p)
      .sort(),
  };
}

/** `--exclude` paths for the non-runtime folders of the given npm package folders that exist. */
export function npmExcludes(
  packageDirs: readonly string[],
  isDir: (path: string) => boolean,
): string[] {
  return packageDirs.flatMap((dir) =>
    NPM_NON_RUNTIME_DIRS.map((name) => join(dir, name)).filter((p) => isDir(p))
  );
}

/** What was found in a compiled executable. */
export interface Inspection {
  headers: PeHeaders;
  /** Embedded file paths (see {@link readDenoStandalone}). */
  files: string[];
  /** Deno's metadata: permissions, entrypoint, app name and version. */
  metadata: Record<string, unknown> & { permissions: Record<string, unknown> };
  /** Sizes (pixels) in the main icon group; empty when there is no icon. */
  iconSizes: number[];
  /** Everything that is not as intended; empty when all is well. */
  problems: string[];
}

/**
 * Read a compiled executable back and compare it with the intent: PE32+ for
 * x86-64, the graph's modules and npm packages embedded, the permissions of
 * {@link PERMISSIONS}, the entrypoint, the app version, an icon.
 */
export function inspectExecutable(
  bytes: Uint8Array,
  graph: Graph,
  expect: { entry?: string; appVersion?: string; icon: boolean },
): Inspection {
  const headers = parsePeHeaders(bytes);
  const problems: string[] = [];
  if (headers.machine !== MACHINE_AMD64) {
    problems.push(
      `machine is ${headers.machineName} (0x${headers.machine.toString(16)}), not x86-64 (0x8664)`,
    );
  }
  if (headers.format !== "PE32+") problems.push(`the image is ${headers.format}, not PE32+`);
  if (headers.subsystemName !== "console") {
    problems.push(`subsystem is ${headers.subsystemName}, not console (the agent logs to it)`);
  }
  const { metadata, files } = readDenoStandalone(bytes, headers);
  const embedded = new Set(files);
  const missing = [...graph.localModules, ...WORKER_MODULES].filter((m) => !embedded.has(m));
  if (missing.length > 0) problems.push(`modules not embedded: ${missing.join(", ")}`);
  const npmDirs = new Set(
    files.filter((f) => f.startsWith(".deno_compile_node_modules/")).map((f) => {
      const parts = f.split("/").slice(2); // after the registry host
      return parts[0].startsWith("@") ? parts.slice(0, 3).join("/") : parts.slice(0, 2).join("/");
    }),
  );
  const missingNpm = graph.npmPackages.filter((id) => {
    const at = id.lastIndexOf("@");
    return !npmDirs.has(`${id.slice(0, at)}/${id.slice(at + 1)}`);
  });
  if (missingNpm.length > 0) problems.push(`npm packages not embedded: ${missingNpm.join(", ")}`);

  const permissions = metadata.permissions;
  for (const p of PERMISSIONS) {
    const got = permissions[p.key];
    if (JSON.stringify(got) !== JSON.stringify(p.values)) {
      problems.push(
        `permission ${p.key} is ${JSON.stringify(got)}, want ${JSON.stringify(p.values)}`,
      );
    }
  }
  for (const [key, value] of Object.entries(permissions)) {
    if (
      key.startsWith("allow_") && key !== "allow_import" && value !== null &&
      !PERMISSIONS.some((p) => p.key === key)
    ) {
      problems.push(`permission ${key} is granted (${JSON.stringify(value)}) but not intended`);
    }
  }
  if (permissions.prompt !== false) problems.push("permission prompts are not disabled");
  const v8Flags = Array.isArray(metadata.v8_flags) ? metadata.v8_flags : [];
  for (const flag of AGENT_V8_FLAGS) {
    if (!v8Flags.includes(flag)) problems.push(`V8 flag ${flag} is not baked in`);
  }
  const entry = (expect.entry ?? ENTRY).split(sep).join("/");
  if (metadata.entrypoint_key !== entry) {
    problems.push(`entrypoint is ${JSON.stringify(metadata.entrypoint_key)}, not ${entry}`);
  }
  if (expect.appVersion && metadata.app_version !== expect.appVersion) {
    problems.push(
      `app version is ${JSON.stringify(metadata.app_version)}, not ${expect.appVersion}`,
    );
  }

  const iconSizes: number[] = [];
  const group = listResources(bytes, headers).find((r) => r.type === RT.GROUP_ICON);
  if (group) {
    const dv = new DataView(bytes.buffer, bytes.byteOffset + group.offset, group.size);
    const count = dv.getUint16(4, true);
    for (let i = 0; i < count && 6 + 14 * i + 14 <= group.size; i++) {
      iconSizes.push(dv.getUint8(6 + 14 * i) || 256);
    }
  }
  if (expect.icon && iconSizes.length === 0) problems.push("no icon was embedded");
  return { headers, files, metadata: metadata as Inspection["metadata"], iconSizes, problems };
}

function mb(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

async function denoInfo(entry: string): Promise<InfoJson> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  if (!out.success) {
    throw new Error(`deno info ${entry} failed:\n${new TextDecoder().decode(out.stderr)}`);
  }
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

function isDir(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

function fail(message: string): never {
  console.error(`compile: error: ${message}`);
  Deno.exit(1);
}

/** Command-line options of this script. */
export interface ScriptOptions {
  /** Build check (`--check`) rather than the artifact. */
  check: boolean;
  /** `--entry PATH` (relative to the root): compile another program; for tests. */
  entry: string;
  /** `--output PATH`: write elsewhere than the default. */
  output?: string;
}

/** Parse `[--check] [--entry PATH] [--output PATH]`; throws on anything else. */
export function parseArgs(args: readonly string[]): ScriptOptions {
  const o: ScriptOptions = { check: false, entry: ENTRY };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--check") o.check = true;
    else if ((a === "--entry" || a === "--output") && i + 1 < args.length) {
      if (a === "--entry") o.entry = args[++i];
      else o.output = args[++i];
    } else {
      throw new Error(`unknown argument ${a} (usage: [--check] [--entry PATH] [--output PATH])`);
    }
  }
  return o;
}

/** `deno task compile [--check]`. */
async function main(args: string[]): Promise<void> {
  const { check, entry, output: outputArg } = parseArgs(args);
  const label = check ? "compile:check" : "compile";
  const log = (line: string) => console.error(`${label}: ${line}`);

  const info = await denoInfo(entry);
  const graph = readGraph(info, ROOT);
  const excludes = npmExcludes(graph.npmPackageDirs, isDir);

  const icon = join(ROOT, ICON);
  await Deno.mkdir(dirname(icon), { recursive: true });
  // Atomically: a concurrent compile may be reading it.
  await Deno.writeFile(`${icon}.${Deno.pid}`, hnsproxyIcon());
  await Deno.rename(`${icon}.${Deno.pid}`, icon);

  const output = resolve(ROOT, outputArg ?? (check ? CHECK_OUTPUT : ARTIFACT));
  await Deno.mkdir(dirname(output), { recursive: true });
  const env: Record<string, string> = { NO_COLOR: "1" };
  let runtime: CheckRuntime | undefined;
  if (check) {
    try {
      runtime = await resolveCheckRuntime(Deno.env.toObject(), log);
    } catch (e) {
      fail(`no Windows runtime for the build check: ${(e as Error).message}`);
    }
    env.DENORT_BIN = runtime.path;
  } else {
    const given = Deno.env.get("DENORT_BIN");
    if (given && /^deno(\.exe)?$/i.test(given.split(/[\\/]/).pop()!)) {
      log(
        `warning: DENORT_BIN=${given} looks like the full deno CLI, not denort: ` +
          "the output would run as plain deno, not as hnsproxy",
      );
    }
  }

  const compile = await new Deno.Command(Deno.execPath(), {
    args: compileArgs({ output, icon, excludes, entry }),
    cwd: ROOT,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!compile.success) {
    // A crashed compile leaves its temporary file behind.
    const base = basename(output);
    for (const e of Deno.readDirSync(dirname(output))) {
      if (e.name.startsWith(`${base}.tmp-`)) await Deno.remove(join(dirname(output), e.name));
    }
    const text = new TextDecoder().decode(compile.stdout) +
      new TextDecoder().decode(compile.stderr);
    console.error(text.trimEnd());
    if (!check && /dl\.deno\.land|download/i.test(text)) {
      log(
        "deno could not download its Windows runtime (denort). Without internet access, " +
          "`deno task compile:check` checks the build, or set DENORT_BIN to a denort.exe of " +
          `deno ${Deno.version.deno}.`,
      );
    }
    fail(`deno compile failed (exit ${compile.code})`);
  }

  const bytes = await Deno.readFile(output);
  const denoJson = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
  let result: Inspection;
  try {
    result = inspectExecutable(bytes, graph, { entry, appVersion: denoJson.version, icon: true });
  } catch (e) {
    fail(`${relative(ROOT, output)}: ${(e as Error).message}`);
  }
  if (result.problems.length > 0) {
    for (const p of result.problems) log(`${relative(ROOT, output)}: ${p}`);
    fail(`${relative(ROOT, output)} is not what was intended`);
  }

  const h = result.headers;
  const parts = [
    `${relative(ROOT, output)} is a ${h.format} ${h.machineName} (machine 0x${
      h.machine.toString(16)
    }) ${h.subsystemName} executable, ${mb(bytes.length)}`,
    `${graph.localModules.length} modules embedded (dynamic: ${
      graph.dynamicModules.join(", ") || "none"
    })`,
    `${graph.npmPackages.length} npm packages`,
    `permissions ${PERMISSION_FLAGS.map((f) => f.replace(/^--allow-/, "")).join(" ")}`,
    `icon ${result.iconSizes.join("/")} px`,
  ];
  if (runtime) {
    let version = "";
    try {
      const rt = await Deno.readFile(runtime.path);
      const v = readVersionInfo(rt, parsePeHeaders(rt));
      if (v) version = ` ${v.strings.ProductVersion ?? v.fileVersion}`;
    } catch { /* the version is only informative */ }
    parts.push(`runtime: full deno.exe${version} from ${runtime.source}`);
    console.log(`${label}: ok, BUILD CHECK ONLY, NOT AN ARTIFACT: ${parts.join("; ")}`);
  } else {
    console.log(`${label}: ok: ${parts.join("; ")}`);
  }
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (e) {
    fail(errorMessage(e));
  }
}
