import assert from "node:assert/strict";
import { helpText, parseConfig } from "../../lib/config/mod.ts";
import { hasMessage } from "./helpers.ts";

const host = { hostname: () => "win-node-1", os: "linux" };
const noFile = (path: string): string => {
  throw new Deno.errors.NotFound(`No such file: ${path}`);
};
const parse = (args: string[]) => parseConfig(args, {}, noFile, host).config;

Deno.test("--take-over-foreign: on by default, false turns the takeover at start off", () => {
  assert.equal(parse([]).takeOverForeign, true);
  assert.equal(parse(["--take-over-foreign"]).takeOverForeign, true);
  assert.equal(parse(["--take-over-foreign=false"]).takeOverForeign, false);
  assert.equal(parse(["--take-over-foreign=true"]).takeOverForeign, true);
  assert.throws(() => parse(["--take-over-foreign=maybe"]), hasMessage("take-over-foreign"));
});

Deno.test("--take-over-foreign is in --help with its default", () => {
  const line = helpText().split("\n").find((l) => l.includes("--take-over-foreign"));
  assert.ok(line, "listed in --help");
  assert.match(helpText(), /--take-over-foreign[\s\S]*kube-proxy's[\s\S]*default true/);
});
