/**
 * Packaging: the compile script's pieces (PE reading, the module graph, the
 * icon, the runtime fetch helpers), the baked-in permissions against what
 * the code uses and what hnsproxy needs when it runs, and, when a Windows
 * runtime is at hand, a real compile of a program that reaches every npm
 * package.
 */

import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  CHECK_OUTPUT,
  compileArgs,
  ENTRY,
  type Graph,
  inspectExecutable,
  npmExcludes,
  parseArgs,
  PERMISSION_FLAGS,
  PERMISSIONS,
  readGraph,
  ROOT,
  TARGET,
  WORKER_MODULES,
} from "../../scripts/compile.ts";
import { hnsproxyIcon, ICON_SIZES, renderIcon } from "../../scripts/icon.ts";
import {
  listResources,
  parsePeHeaders,
  PeError,
  readDenoStandalone,
  readVersionInfo,
  RT,
} from "../../scripts/pe.ts";
import { compileCacheDir, extractFromTarGz, pickVersion } from "../../scripts/runtime.ts";
import { AGENT_V8_FLAGS, v8FlagsArgument } from "../../lib/v8_flags.ts";
import { denoInfo } from "../module_graph.ts";

const MAIN = join(ROOT, "main.ts");
const enc = new TextEncoder();
const dec = new TextDecoder();

// ---------------------------------------------------------------------------
// A synthetic PE32+ image: headers, a resource section with one icon group,
// and a data section with Deno's d3n0l4nd block (metadata + file list).

interface FakeOptions {
  machine?: number;
  magic?: number;
  subsystem?: number;
  icon?: boolean;
  permissions?: Record<string, unknown>;
  files?: unknown[];
  entry?: string;
  appVersion?: string;
  v8Flags?: string[];
}

const GOOD_PERMISSIONS: Record<string, unknown> = {
  allow_env: [],
  deny_env: null,
  allow_net: [],
  allow_ffi: [],
  allow_read: [],
  allow_run: ["sc.exe"],
  allow_sys: ["hostname", "networkInterfaces"],
  allow_write: [],
  allow_import: ["deno.land:443"],
  prompt: false,
};

const GOOD_FILES = [
  { File: { n: "deno.json" } },
  {
    Dir: {
      n: "lib",
      e: [
        { Dir: { n: "cli", e: [{ File: { n: "hns.ts" } }] } },
        { Dir: { n: "hns", e: [{ File: { n: "hcn_thread.ts" } }] } },
        { File: { n: "x.ts" } },
      ],
    },
  },
  { File: { n: "main.ts" } },
  {
    Dir: {
      n: ".deno_compile_node_modules",
      e: [{
        Dir: {
          n: "localhost",
          e: [
            { Dir: { n: "yaml", e: [{ Dir: { n: "2.9.1", e: [{ File: { n: "index.js" } }] } }] } },
            {
              Dir: {
                n: "@scope",
                e: [{
                  Dir: {
                    n: "pkg",
                    e: [{ Dir: { n: "1.0.0", e: [{ File: { n: "package.json" } }] } }],
                  },
                }],
              },
            },
          ],
        },
      }],
    },
  },
];

const GRAPH: Graph = {
  localModules: ["deno.json", "lib/cli/hns.ts", "lib/x.ts", "main.ts"],
  dynamicModules: ["lib/cli/hns.ts"],
  npmPackages: ["@scope/pkg@1.0.0", "yaml@2.9.1"],
  npmPackageDirs: [],
};

function u64(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
  return b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function fakeExe(o: FakeOptions = {}): Uint8Array {
  const meta = enc.encode(JSON.stringify({
    argv: [],
    permissions: o.permissions ?? GOOD_PERMISSIONS,
    entrypoint_key: o.entry ?? "main.ts",
    app_name: "hnsproxy",
    app_version: o.appVersion ?? "0.1.0",
    v8_flags: o.v8Flags ??
      ["UNUSED_BUT_NECESSARY_ARG0", ...AGENT_V8_FLAGS],
  }));
  const vfs = enc.encode(JSON.stringify(o.files ?? GOOD_FILES));
  const payload = concat(
    enc.encode("d3n0l4nd"),
    u64(meta.length),
    meta,
    u64(0), // an empty section in between, as Deno writes the npm snapshot
    u64(vfs.length),
    vfs,
    enc.encode("d3n0l4nd"),
  );

  const RSRC_RVA = 0x1000, RSRC_OFF = 0x200, RSRC_SIZE = 0x200;
  const DATA_RVA = 0x2000, DATA_OFF = RSRC_OFF + RSRC_SIZE;
  const dataSize = Math.ceil(payload.length / 0x200) * 0x200;
  const bytes = new Uint8Array(DATA_OFF + dataSize);
  const v = new DataView(bytes.buffer);
  bytes.set(enc.encode("MZ"), 0);
  v.setUint32(0x3c, 0x40, true);
  bytes.set(enc.encode("PE\0\0"), 0x40);
  v.setUint16(0x44, o.machine ?? 0x8664, true);
  v.setUint16(0x46, 2, true); // sections
  v.setUint16(0x54, 240, true); // optional header size
  const opt = 0x58;
  v.setUint16(opt, o.magic ?? 0x20b, true);
  v.setUint16(opt + 68, o.subsystem ?? 3, true);
  v.setUint32(opt + 108, 16, true); // data directories
  if (o.icon !== false) {
    v.setUint32(opt + 112 + 16, RSRC_RVA, true);
    v.setUint32(opt + 112 + 20, 108, true);
  }
  const table = opt + 240;
  const section = (i: number, name: string, rva: number, off: number, size: number) => {
    const s = table + 40 * i;
    bytes.set(enc.encode(name), s);
    v.setUint32(s + 8, size, true);
    v.setUint32(s + 12, rva, true);
    v.setUint32(s + 16, size, true);
    v.setUint32(s + 20, off, true);
  };
  section(0, ".rsrc", RSRC_RVA, RSRC_OFF, RSRC_SIZE);
  section(1, ".pedata", DATA_RVA, DATA_OFF, dataSize);

  // type 14 -> name 1 -> language 0x409 -> data entry -> GRPICONDIR with one 32 px image
  const r = RSRC_OFF;
  const dir = (at: number, id: number, target: number) => {
    v.setUint16(r + at + 14, 1, true);
    v.setUint32(r + at + 16, id, true);
    v.setUint32(r + at + 20, target, true);
  };
  dir(0, RT.GROUP_ICON, 0x80000000 | 24);
  dir(24, 1, 0x80000000 | 48);
  dir(48, 0x409, 72);
  v.setUint32(r + 72, RSRC_RVA + 88, true);
  v.setUint32(r + 76, 20, true);
  v.setUint16(r + 88 + 2, 1, true);
  v.setUint16(r + 88 + 4, 1, true);
  bytes[r + 94] = 32;
  bytes[r + 95] = 32;

  bytes.set(payload, DATA_OFF);
  return bytes;
}

// ---------------------------------------------------------------------------

Deno.test("pe: headers, sections, resources and Deno's embedded data of an image", () => {
  const exe = fakeExe();
  const h = parsePeHeaders(exe);
  equal(h.machine, 0x8664);
  equal(h.machineName, "x86-64");
  equal(h.format, "PE32+");
  equal(h.subsystemName, "console");
  deepEqual(h.sections.map((s) => s.name), [".rsrc", ".pedata"]);
  deepEqual(listResources(exe, h).map((r) => [r.type, r.name, r.language, r.size]), [
    [RT.GROUP_ICON, 1, 0x409, 20],
  ]);
  const s = readDenoStandalone(exe, h);
  equal(s.metadata.entrypoint_key, "main.ts");
  deepEqual(s.files, [
    ".deno_compile_node_modules/localhost/@scope/pkg/1.0.0/package.json",
    ".deno_compile_node_modules/localhost/yaml/2.9.1/index.js",
    "deno.json",
    "lib/cli/hns.ts",
    "lib/hns/hcn_thread.ts",
    "lib/x.ts",
    "main.ts",
  ]);
});

Deno.test("pe: what is not a Windows x64 executable is refused in words", () => {
  throws(
    () => parsePeHeaders(enc.encode("#!/bin/sh\necho not a PE\n".padEnd(128))),
    /no MZ header/,
  );
  const noSig = fakeExe();
  noSig[0x40] = 0x45;
  throws(() => parsePeHeaders(noSig), /no PE signature/);
  const cut = fakeExe().subarray(0, 0x100);
  throws(
    () => parsePeHeaders(cut),
    (e) => e instanceof PeError && /outside the file/.test(e.message),
  );
  const plain = fakeExe({ permissions: GOOD_PERMISSIONS });
  plain.fill(0, 0x400); // wipe the d3n0l4nd block
  throws(() => readDenoStandalone(plain, parsePeHeaders(plain)), /no Deno program is embedded/);
});

Deno.test("inspect: a good image passes; each deviation from the intent is named", () => {
  const ok_ = inspectExecutable(fakeExe(), GRAPH, { appVersion: "0.1.0", icon: true });
  deepEqual(ok_.problems, []);
  deepEqual(ok_.iconSizes, [32]);

  const problems = (o: FakeOptions, graph = GRAPH) =>
    inspectExecutable(fakeExe(o), graph, { appVersion: "0.1.0", icon: true }).problems.join("\n");
  match(problems({ machine: 0xaa64 }), /machine is arm64 \(0xaa64\), not x86-64 \(0x8664\)/);
  match(problems({ magic: 0x10b }), /PE32, not PE32\+/);
  match(problems({ subsystem: 2 }), /subsystem is gui/);
  match(problems({ icon: false }), /no icon/);
  match(problems({ entry: "lib/agent.ts" }), /entrypoint is "lib\/agent.ts", not main.ts/);
  match(problems({ appVersion: "0.0.9" }), /app version is "0.0.9", not 0.1.0/);
  match(
    problems({}, { ...GRAPH, localModules: [...GRAPH.localModules, "lib/cli/service.ts"] }),
    /modules not embedded: lib\/cli\/service.ts/,
  );
  match(
    problems({}, { ...GRAPH, npmPackages: [...GRAPH.npmPackages, "prom-client@15.1.3"] }),
    /npm packages not embedded: prom-client@15.1.3/,
  );
  match(
    problems({ permissions: { ...GOOD_PERMISSIONS, allow_run: [] } }),
    /allow_run is \[\], want \["sc.exe"\]/,
  );
  match(
    problems({ permissions: { ...GOOD_PERMISSIONS, allow_sys: null } }),
    /allow_sys is null, want \["hostname","networkInterfaces"\]/,
  );
  match(
    problems({ permissions: { ...GOOD_PERMISSIONS, allow_hrtime: [] } }),
    /allow_hrtime is granted \(\[\]\) but not intended/,
  );
  match(problems({ permissions: { ...GOOD_PERMISSIONS, prompt: true } }), /prompts/);
  match(problems({ v8Flags: [] }), /V8 flag --max-semi-space-size=2 is not baked in/);
});

Deno.test("compile args: Windows x64, the baked-in permissions, no prompt, frozen lock", () => {
  const args = compileArgs({ output: "out.exe", icon: "i.ico", excludes: ["/npm/x/1.0.0/test"] });
  deepEqual(args.slice(0, 5), ["compile", "--target", TARGET, "--output", "out.exe"]);
  equal(TARGET, "x86_64-pc-windows-msvc");
  for (
    const f of [
      ...PERMISSION_FLAGS,
      "--no-prompt",
      "--frozen",
      "--exclude-unused-npm",
      v8FlagsArgument(),
    ]
  ) {
    ok(args.includes(f), f);
  }
  ok(!args.includes("-A") && !args.includes("--allow-all"));
  deepEqual(args.slice(args.indexOf("--icon"), args.indexOf("--icon") + 2), ["--icon", "i.ico"]);
  deepEqual(args.slice(-3), ["--exclude", "/npm/x/1.0.0/test", ENTRY]);
  deepEqual(PERMISSION_FLAGS, [
    "--allow-ffi",
    "--allow-net",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-sys=hostname,networkInterfaces",
    "--allow-run=sc.exe",
  ]);
  deepEqual(parseArgs(["--check"]), { check: true, entry: ENTRY });
  deepEqual(parseArgs(["--entry", "x.ts", "--output", "/tmp/y.exe"]), {
    check: false,
    entry: "x.ts",
    output: "/tmp/y.exe",
  });
  throws(() => parseArgs(["--target", "linux"]), /unknown argument --target/);
  equal(CHECK_OUTPUT, "build/compile-check/hnsproxy.exe");
});

Deno.test("graph: main.ts's runtime modules, the dynamically imported subcommands among them", async () => {
  const graph = readGraph(await denoInfo(ENTRY), ROOT);
  ok(graph.localModules.includes("main.ts"));
  ok(graph.localModules.includes("deno.json"), "version.ts imports deno.json");
  // Every literal `import("./lib/…")` of main.ts is in the graph, as dynamic.
  const literal = [...(await Deno.readTextFile(MAIN)).matchAll(/import\(\s*"\.\/([^"]+)"\s*\)/g)]
    .map((m) => m[1]);
  ok(literal.length > 0, "main.ts loads its subcommands dynamically");
  for (const m of literal) {
    ok(graph.dynamicModules.includes(m), `${m} is a dynamic import of the graph`);
    ok(graph.localModules.includes(m), `${m} is in the graph`);
  }
  ok(graph.localModules.every((m) => !m.startsWith("tests/")), "no test module is compiled in");
});

Deno.test("graph: every worker entry of lib/ is included explicitly; its imports are in the graph", async () => {
  const workers: string[] = [];
  for await (const e of Deno.readDir(join(ROOT, "lib", "hns"))) {
    if (!e.isFile || !e.name.endsWith(".ts")) continue;
    const text = await Deno.readTextFile(join(ROOT, "lib", "hns", e.name));
    for (const m of text.matchAll(/new Worker\(new URL\("\.\/([^"]+)", import\.meta\.url\)/g)) {
      workers.push(`lib/hns/${m[1]}`);
    }
  }
  ok(workers.length > 0, "the HNS threads are workers");
  for (const w of workers) ok(WORKER_MODULES.includes(w), `${w} is in WORKER_MODULES`);
  const args = compileArgs({ output: "out.exe" });
  for (const w of WORKER_MODULES) {
    ok(args.join(" ").includes(`--include ${w}`), `${w} is included`);
    const own = readGraph(await denoInfo(w), ROOT).localModules;
    const inMain = readGraph(await denoInfo(ENTRY), ROOT).localModules;
    deepEqual(
      own.filter((m) => m !== w && !inMain.includes(m)),
      [],
      `${w} imports only main.ts's modules`,
    );
  }
});

Deno.test("graph: type-only imports are not runtime modules; npm packages close over dependencies", () => {
  const f = (p: string) => `file://${join(ROOT, p)}`;
  const graph = readGraph({
    roots: [f("main.ts")],
    redirects: { "npm:a@1": "npm:/a@1.0.0" },
    modules: [
      {
        specifier: f("main.ts"),
        dependencies: [
          { code: { specifier: f("lib/run.ts") }, isDynamic: true },
          { code: { specifier: "npm:a@1" } },
          {},
        ],
      },
      { specifier: f("lib/run.ts"), dependencies: [{ code: { specifier: "node:os" } }] },
      { specifier: f("lib/types.ts") },
      { specifier: "npm:/a@1.0.0", kind: "npm", npmPackage: "a@1.0.0_b@2.0.0" },
    ],
    npmPackages: {
      "a@1.0.0_b@2.0.0": {
        name: "a",
        version: "1.0.0",
        dependencies: ["b@2.0.0"],
        localPath: "/c/a",
      },
      "b@2.0.0": { name: "b", version: "2.0.0", localPath: "/c/b" },
      "unused@3.0.0": { name: "unused", version: "3.0.0", localPath: "/c/unused" },
    },
  }, ROOT);
  deepEqual(graph.localModules, ["lib/run.ts", "main.ts"]);
  deepEqual(graph.dynamicModules, ["lib/run.ts"]);
  deepEqual(graph.npmPackages, ["a@1.0.0", "b@2.0.0"]);
  deepEqual(graph.npmPackageDirs, ["/c/a", "/c/b", "/c/unused"]);
  deepEqual(
    npmExcludes(["/c/a", "/c/b"], (p) => p === "/c/a/test" || p === "/c/b/docs"),
    ["/c/a/test", "/c/b/docs"],
  );
});

Deno.test("icon: a valid 32-bit ICO, transparent corners, white centre, deterministic", () => {
  const ico = hnsproxyIcon();
  const v = new DataView(ico.buffer);
  equal(v.getUint16(0, true), 0);
  equal(v.getUint16(2, true), 1);
  equal(v.getUint16(4, true), ICON_SIZES.length);
  for (let i = 0; i < ICON_SIZES.length; i++) {
    const size = ICON_SIZES[i];
    const e = 6 + 16 * i;
    equal(ico[e] || 256, size);
    equal(v.getUint16(e + 6, true), 32);
    const length = v.getUint32(e + 8, true), offset = v.getUint32(e + 12, true);
    ok(offset + length <= ico.length);
    equal(v.getUint32(offset, true), 40, "BITMAPINFOHEADER");
    equal(v.getInt32(offset + 8, true), size * 2, "height counts the AND mask");
    equal(length, 40 + size * size * 4 + Math.ceil(size / 32) * 4 * size);
  }
  const px = (
    rgba: Uint8Array,
    size: number,
    x: number,
    y: number,
  ) => [...rgba.subarray((y * size + x) * 4, (y * size + x) * 4 + 4)];
  const r = renderIcon(48);
  equal(px(r, 48, 0, 0)[3], 0, "corner transparent");
  deepEqual(px(r, 48, 24, 24), [255, 255, 255, 255], "centre dot white");
  deepEqual(px(r, 48, 24, 4), [0x32, 0x6c, 0xe5, 255], "background Kubernetes blue");
  deepEqual(hnsproxyIcon(), ico);
});

Deno.test("runtime: version choice and the cache location", () => {
  equal(pickVersion("2.9.6", ["2.9.4", "2.9.6", "2.9.5"]), "2.9.6");
  equal(pickVersion("2.9.6", ["2.9.4", "2.9.5", "3.0.0", "2.10.0-rc.1"]), "2.9.5");
  equal(pickVersion("2.9.6", ["2.10.0", "1.46.3"]), undefined);
  equal(pickVersion("2.9.6", []), undefined);
  equal(compileCacheDir({ HNSPROXY_COMPILE_CACHE: "/c" }), "/c");
  equal(compileCacheDir({ XDG_CACHE_HOME: "/x", HOME: "/h" }), join("/x", "hnsproxy", "denort"));
  equal(compileCacheDir({ HOME: "/h" }), join("/h", ".cache", "hnsproxy", "denort"));
});

Deno.test("runtime: deno.exe is taken out of the npm package's tarball", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hnsproxy-tgz-" });
  try {
    const exe = new Uint8Array(70_000).map((_, i) => (i * 31) & 0xff);
    await Deno.mkdir(join(dir, "package"));
    await Deno.writeFile(join(dir, "package", "deno.exe"), exe);
    await Deno.writeTextFile(join(dir, "package", "package.json"), '{"name":"x"}');
    const tar = await new Deno.Command("tar", {
      args: ["-czf", "p.tgz", "package/package.json", "package/deno.exe"],
      cwd: dir,
    }).output();
    equal(tar.code, 0);
    const tgz = await Deno.readFile(join(dir, "p.tgz"));
    deepEqual(await extractFromTarGz(tgz, "package/deno.exe"), exe);
    await extractFromTarGz(tgz, "package/nope").then(
      () => ok(false, "a missing file must be an error"),
      (e) => match(String(e), /package\/nope is not in the package/),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------
// The permissions against the code.

/** Every .ts file of the program (main.ts and lib/). */
async function programSources(): Promise<[string, string][]> {
  const out: [string, string][] = [["main.ts", await Deno.readTextFile(MAIN)]];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(join(ROOT, dir))) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory) await walk(p);
      else if (p.endsWith(".ts")) out.push([p, await Deno.readTextFile(join(ROOT, p))]);
    }
  };
  await walk("lib");
  return out;
}

const SYS_APIS = [
  "hostname",
  "osRelease",
  "osUptime",
  "loadavg",
  "networkInterfaces",
  "systemMemoryInfo",
  "uid",
  "gid",
];

Deno.test("permissions: every sys API and program the code uses is granted, by name", async () => {
  const sys = PERMISSIONS.find((p) => p.key === "allow_sys")!.values;
  const run = PERMISSIONS.find((p) => p.key === "allow_run")!.values;
  for (const [path, text] of await programSources()) {
    const code = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
    for (const api of SYS_APIS) {
      if (new RegExp(`Deno\\.${api}\\b`).test(code)) {
        ok(
          sys.includes(api),
          `${path} uses Deno.${api}: add it to --allow-sys in scripts/compile.ts`,
        );
      }
    }
    ok(
      !/from\s+"(node:)?os"/.test(code),
      `${path} imports node:os, whose calls need --allow-sys names: review scripts/compile.ts`,
    );
    for (const m of code.matchAll(/new Deno\.Command\(\s*([^,)]+)/g)) {
      const program = m[1].trim();
      if (program === "Deno.execPath()") continue;
      // A kubeconfig exec plugin is whatever the user configured; lib/kube/auth.ts
      // checks the run permission first and fails with a clear error without it.
      if (path.endsWith("lib/kube/auth.ts") && program === "exec.command") continue;
      const literal = /^["']([^"']+)["']$/.exec(program)?.[1];
      ok(
        literal !== undefined && run.includes(literal),
        `${path} runs ${program}: --allow-run in scripts/compile.ts allows only ${run.join(", ")}`,
      );
    }
  }
});

const EMULATOR = join(ROOT, "build", Deno.build.os === "windows" ? "hnsemu.dll" : "hnsemu.so");

async function runMain(flags: readonly string[], args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-check", ...flags, MAIN, ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    clearEnv: false,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("permissions: hnsproxy runs with exactly the baked-in permissions", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hnsproxy-perms-" });
  try {
    const state = join(dir, "hns.json");
    await Deno.writeTextFile(
      state,
      JSON.stringify({
        Networks: [{
          ID: "3C4E1E30-1A1B-4C5D-9E8F-0A1B2C3D4E5F",
          Name: "cbr0",
          Type: "L2Bridge",
          SchemaVersion: { Major: 2, Minor: 0 },
        }],
      }),
    );
    const flags = ["--no-prompt", ...PERMISSION_FLAGS];
    const version = await runMain(flags, ["version"]);
    equal(version.code, 0, version.stderr);
    match(version.stdout, /^hnsproxy v\d+\.\d+\.\d+/);

    const hnsArgs = ["hns", "list", "networks", "--json", "--hns-library", EMULATOR];
    const env = { HNSEMU_STATE_FILE: state };
    const list = await runMain(flags, hnsArgs, env);
    equal(list.code, 0, list.stderr);
    equal(JSON.parse(list.stdout)[0].Name, "cbr0");

    // The same call without FFI fails: the check above can fail.
    const noFfi = await runMain(flags.filter((f) => f !== "--allow-ffi"), hnsArgs, env);
    ok(noFfi.code !== 0, "without --allow-ffi the HNS library cannot be loaded");
    match(noFfi.stderr + noFfi.stdout, /ffi|NotCapable|permission/i);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------
// A real compile, when a Windows runtime is already on this machine (the Wine
// tier's cache or this script's own); CI runs `deno task compile:check` too.

function windowsRuntimeAtHand(): boolean {
  const candidates = [
    Deno.env.get("DENORT_BIN"),
    join(
      Deno.env.get("HNSPROXY_WINE_CACHE") ?? "/var/cache/hnsproxy-wine",
      "state/deno/deno.exe",
    ),
  ];
  try {
    for (const e of Deno.readDirSync(compileCacheDir(Deno.env.toObject()))) {
      candidates.push(join(compileCacheDir(Deno.env.toObject()), e.name, "deno.exe"));
    }
  } catch { /* no cache */ }
  return candidates.some((c) => {
    try {
      return !!c && Deno.statSync(c).isFile;
    } catch {
      return false;
    }
  });
}

Deno.test({
  name: "compile:check builds a program that reaches every npm package (yaml, lazily loaded)",
  ignore: !windowsRuntimeAtHand(),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "hnsproxy-compile-", dir: join(ROOT, "build") });
    try {
      // Inside the repository so that deno.json's imports apply.
      const entry = join(dir, "entry.ts");
      await Deno.writeTextFile(
        entry,
        [
          `import "../../lib/config/mod.ts";`,
          `import "../../lib/serve/metrics.ts";`,
          `import "../../lib/kube/client.ts";`,
          `export const hns = await import("../../lib/cli/hns.ts");`,
        ].join("\n"),
      );
      const output = join(dir, "out.exe");
      const rel = entry.slice(ROOT.length).replace(/^[\\/]/, "");
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-read",
          "--allow-write",
          "--allow-run",
          "--allow-env",
          fileURLToPath(new URL("../../scripts/compile.ts", import.meta.url)),
          "--check",
          "--entry",
          rel,
          "--output",
          output,
        ],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = dec.decode(out.stdout) + dec.decode(out.stderr);
      equal(out.code, 0, text);
      match(text, /BUILD CHECK ONLY, NOT AN ARTIFACT/);
      match(text, /PE32\+ x86-64 \(machine 0x8664\)/);
      match(text, /dynamic: lib\/cli\/hns\.ts/);

      const exe = await Deno.readFile(output);
      const h = parsePeHeaders(exe);
      const { files, metadata } = readDenoStandalone(exe, h);
      ok(files.some((f) => /\/yaml\/2\.9\.1\//.test(f)), "yaml embedded");
      deepEqual(metadata.permissions.allow_run, ["sc.exe"]);
      ok(listResources(exe, h).some((r) => r.type === RT.ICON));
      equal(readVersionInfo(exe, h), undefined, "deno compile drops deno.exe's version block");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
