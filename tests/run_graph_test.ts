/**
 * What `hnsproxy run` loads: main.ts and the static imports of lib/cli/run.ts,
 * read from `deno info --json main.ts` (the graph `deno compile` builds too).
 * Every module loaded stays resident for the agent's lifetime, so modules
 * only other commands, the demo, the tests or YAML files need must be
 * dynamic imports, and still in the graph (a compiled executable holds only
 * what the graph has).
 */

import assert from "node:assert/strict";
import { denoInfo, staticClosure, wholeGraph } from "./module_graph.ts";

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
