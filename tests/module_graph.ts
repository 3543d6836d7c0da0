/**
 * A module graph as `deno info --json` reads it (the graph `deno compile`
 * builds too): what a process loads before it runs, for the tests that keep
 * a process's footprint small (tests/run_graph_test.ts,
 * tests/bench/host_graph_test.ts).
 *
 * @module
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

/** `deno info --json` output, the parts read here and by scripts/compile.ts's `readGraph`. */
export interface Info {
  roots: string[];
  modules: InfoModule[];
  redirects: Record<string, string>;
}

/** The graph of `entry` (a path from the repository root). */
export async function denoInfo(entry: string): Promise<Info> {
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
export function staticClosure(info: Info, from: string): Set<string> {
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
export function wholeGraph(info: Info): Set<string> {
  const all = new Set(info.modules.map((m) => m.specifier));
  for (const [from, to] of Object.entries(info.redirects)) {
    all.add(from);
    all.add(to);
  }
  return all;
}
