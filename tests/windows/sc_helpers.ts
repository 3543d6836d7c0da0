/**
 * Helpers the Service Control Manager tests under Wine share: running sc.exe,
 * waiting for a service state, and the time bounds the issue sets.
 *
 * @module
 */
import assert from "node:assert/strict";
import { queryServiceState, runSc } from "../../lib/windows/install.ts";

/** How long the SCM gets to take a running service to STOPPED (the bound). */
export const STOP_BOUND_MS = 10_000;
/** Generous: the first start of deno.exe under Wine loads and compiles the module graph. */
export const START_BOUND_MS = 60_000;

/** A service name no other test uses. */
export function uniqueServiceName(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

/** Runs `sc ARGS...`, asserting it succeeds; returns its output. */
export async function sc(...args: string[]): Promise<string> {
  const r = await runSc(args);
  assert.equal(r.code, 0, `sc ${args.join(" ")} exited ${r.code}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** Polls `sc query` until the service is in `want` or `boundMs` passed; returns the last state. */
export async function waitForState(
  name: string,
  want: number,
  boundMs: number,
): Promise<number | null> {
  const deadline = Date.now() + boundMs;
  for (;;) {
    const state = await queryServiceState(name);
    if (state === want || Date.now() > deadline) return state;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
