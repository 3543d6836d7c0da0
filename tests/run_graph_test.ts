/**
 * What `hnsproxy run` loads: main.ts and the static imports of lib/cli/run.ts,
 * read from `deno info --json main.ts` (the graph `deno compile` builds too).
 * Every module loaded stays resident for the agent's lifetime, so modules
 * only other commands, the demo, the tests or YAML files need must be
 * dynamic imports, and still in the graph (a compiled executable holds only
 * what the graph has).
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

interface Dependency {
  code?: { specifier: string };
  isDynamic?: boolean;
}

interface InfoModule {
  specifier: string;
  dependencies?: Dependency[];
}

interface Info {
  modules: InfoModule[];
  redirects: Record<string, string>;
}

async function denoInfo(entry: string): Promise<Info> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/** The modules `from` loads before it runs (static imports only), redirects followed. */
function staticClosure(info: Info, from: string): Set<string> {
  const byName = new Map(info.modules.map((m) => [m.specifier, m]));
  const seen = new Set<string>();
  const todo = [from];
  while (todo.length > 0) {
    const name = todo.pop()!;
    const resolved = info.redirects[name] ?? name;
    if (seen.has(resolved)) continue;
    seen.add(resolved);
    for (const dep of byName.get(resolved)?.dependencies ?? []) {
      if (dep.code && !dep.isDynamic) todo.push(dep.code.specifier);
    }
  }
  return seen;
}

/** Specifiers anywhere in the graph (dynamic imports included), redirects followed. */
function wholeGraph(info: Info): Set<string> {
  const all = new Set(info.modules.map((m) => m.specifier));
  for (const [from, to] of Object.entries(info.redirects)) {
    all.add(from);
    all.add(to);
  }
  return all;
}

/** Modules the run command must not load; each is what makes the match. */
const NOT_ON_THE_RUN_PATH: [string, (s: string) => boolean][] = [
  ["the YAML package (loaded for YAML files only)", (s) => s.startsWith("npm:/yaml@")],
  ["@kubernetes/client-node", (s) => s.includes("@kubernetes/client-node")],
  ["prom-client (lib/serve/exposition.ts writes the metrics)", (s) => s.includes("prom-client")],
  [
    "node: built-ins (Node compatibility; lib/path.ts has the path operations)",
    (s) => s.startsWith("node:"),
  ],
  ["the demo", (s) => s.includes("/lib/demo/")],
  ["the fake API server", (s) => s.includes("/lib/fake-apiserver/")],
  ["the service installer", (s) => s.endsWith("/lib/windows/install.ts")],
  ["the other subcommands", (s) => /\/lib\/cli\/(hns|plan|service)\.ts$/.test(s)],
];

Deno.test("run graph: `hnsproxy run` loads none of what only other commands or YAML files need", async () => {
  const info = await denoInfo("main.ts");
  const main = new URL("../main.ts", import.meta.url).href;
  const run = new URL("../lib/cli/run.ts", import.meta.url).href;
  const loaded = new Set([...staticClosure(info, main), ...staticClosure(info, run)]);
  assert.ok(loaded.has(new URL("../lib/agent.ts", import.meta.url).href), "the agent is loaded");
  for (const [what, matches] of NOT_ON_THE_RUN_PATH) {
    const found = [...loaded].filter(matches);
    assert.deepEqual(found, [], `run loads ${what}`);
  }
});

Deno.test("run graph: what run loads lazily is still in the graph a compiled executable holds", async () => {
  const all = wholeGraph(await denoInfo("main.ts"));
  for (const lazy of ["npm:/yaml@", "/lib/demo/mod.ts", "/lib/windows/install.ts"]) {
    assert.ok([...all].some((s) => s.includes(lazy)), `${lazy} is in main.ts's graph`);
  }
});
