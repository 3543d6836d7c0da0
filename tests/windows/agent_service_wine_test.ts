/**
 * The real agent as a Windows service under Wine's Service Control Manager, end to end:
 * `sc create` → `sc start` → RUNNING with the agent programming the HNS emulator DLL from
 * the fake API server → `sc stop` → STOPPED within 10 s, the ownership record intact and
 * HNS left as it is → `sc delete`; the same through `hnsproxy service install` /
 * `service uninstall`; and a service whose flags are wrong stops with its exit code.
 *
 * The service process gets no environment from this test: the emulator reads its state
 * file's path from the library's `.env` sidecar, deno its cache (DENO_DIR) from the Wine
 * registry (tests/windows/wine.sh), and everything else comes from the flags.
 *
 * Run with `deno task test:windows`; on other systems these tests are ignored.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  sc,
  START_BOUND_MS,
  STOP_BOUND_MS,
  uniqueServiceName,
  waitForState,
} from "./sc_helpers.ts";
import {
  queryServiceState,
  ScState,
  serviceCommandLine,
  uninstallService,
} from "../../lib/windows/install.ts";
import { eventually } from "../agent/harness.ts";
import { ServiceWorld, WANT_LBS } from "./service_world.ts";

const onWindows = Deno.build.os === "windows";
const MAIN = fileURLToPath(new URL("../../main.ts", import.meta.url));
const DENO_CONFIG = fileURLToPath(new URL("../../deno.json", import.meta.url));

function exitCodes(queryOutput: string): { win32: number; service: number } {
  const win32 = /WIN32_EXIT_CODE\s*:\s*(\d+)/.exec(queryOutput);
  const service = /SERVICE_EXIT_CODE\s*:\s*(\d+)/.exec(queryOutput);
  assert.ok(win32 && service, `no exit codes in: ${queryOutput}`);
  return { win32: Number(win32[1]), service: Number(service[1]) };
}

/** `deno run main.ts ARGS` as a separate Windows process (the hnsproxy CLI). */
async function hnsproxy(...args: string[]): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", DENO_CONFIG, MAIN, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
}

/** Runs `fn` with a fresh world and service name; the service is removed afterwards. */
function withWorld(fn: (world: ServiceWorld, name: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const name = uniqueServiceName("hnsproxy-e2e");
    const world = await ServiceWorld.create();
    try {
      await fn(world, name).catch(async (err) => {
        throw new Error(`${err}\n--- agent log ---\n${await world.log()}`, { cause: err });
      });
    } finally {
      await uninstallService({ name, stopTimeoutMs: STOP_BOUND_MS }).catch(() => {});
      await world.close();
    }
  };
}

/**
 * Waits until the running service has programmed the seeded service's load balancers and
 * recorded them as its own; returns the record and the LB IDs HNS holds.
 */
async function waitProgrammed(world: ServiceWorld): Promise<{ owned: unknown; lbIds: string[] }> {
  await eventually(
    "the agent service programs HNS from the fake API server",
    async () =>
      JSON.stringify(await world.lbTable()) === JSON.stringify(WANT_LBS) &&
      (await world.owned()).filter((o) => o.kind === "LoadBalancer").length === WANT_LBS.length,
    async () => `HNS: ${(await world.lbTable()).join("; ")}`,
    START_BOUND_MS,
  );
  return {
    owned: await world.owned(),
    lbIds: (await world.hns()).LoadBalancers.map((lb) => String(lb.ID)).sort(),
  };
}

/** After a graceful stop: the record as it was, HNS untouched, the agent's stop logged. */
async function assertLeftAsItWas(
  world: ServiceWorld,
  before: { owned: unknown; lbIds: string[] },
): Promise<void> {
  assert.deepEqual(await world.owned(), before.owned, "ownership record intact");
  assert.deepEqual(
    (await world.hns()).LoadBalancers.map((lb) => String(lb.ID)).sort(),
    before.lbIds,
    "HNS left as it is",
  );
  assert.deepEqual(await world.lbTable(), WANT_LBS);
  const log = await world.log();
  assert.match(log, /Service stop requested/);
  assert.match(log, /Stopping hnsproxy; HNS is left as it is/);
  assert.match(log, /Service stopped/);
}

Deno.test({
  name:
    "agent service under Wine: sc create, start, RUNNING programming HNS, stop, STOPPED in 10 s, delete",
  ignore: !onWindows,
  fn: withWorld(async (world, name) => {
    const binPath = serviceCommandLine({ agentArgs: world.agentArgs(), mainModule: MAIN });
    await sc("create", name, "binPath=", binPath, "start=", "demand");
    assert.equal(await queryServiceState(name), ScState.STOPPED);

    await sc("start", name);
    assert.equal(await waitForState(name, ScState.RUNNING, START_BOUND_MS), ScState.RUNNING);
    const before = await waitProgrammed(world);

    const stopAsked = Date.now();
    await sc("stop", name);
    assert.equal(await waitForState(name, ScState.STOPPED, STOP_BOUND_MS), ScState.STOPPED);
    const stopMs = Date.now() - stopAsked;
    assert.deepEqual(exitCodes(await sc("query", name)), { win32: 0, service: 0 });
    await assertLeftAsItWas(world, before);

    await sc("delete", name);
    assert.equal(await queryServiceState(name), null);
    console.log(`sc stop -> STOPPED in ${stopMs} ms`);
  }),
});

Deno.test({
  name: "agent service under Wine: hnsproxy service install, sc start, service uninstall",
  ignore: !onWindows,
  fn: withWorld(async (world, name) => {
    const installed = await hnsproxy(
      "service",
      "install",
      "--name",
      name,
      "--start-type",
      "demand",
      "--",
      ...world.agentArgs(),
    );
    assert.equal(installed.code, 0, installed.out);
    assert.match(installed.out, new RegExp(`installed service ${name} \\(start type demand\\)`));
    assert.match(installed.out, /--windows-service/);
    assert.equal(await queryServiceState(name), ScState.STOPPED);
    // Installing the same name again is refused in one line.
    const again = await hnsproxy("service", "install", "--name", name, "--", ...world.agentArgs());
    assert.equal(again.code, 1, again.out);
    assert.match(again.out, /failed with 1073 \(already installed: uninstall it first\)/);

    await sc("start", name);
    assert.equal(await waitForState(name, ScState.RUNNING, START_BOUND_MS), ScState.RUNNING);
    const before = await waitProgrammed(world);

    // uninstall stops the service (waiting for STOPPED), then deletes it.
    const stopAsked = Date.now();
    const removed = await hnsproxy("service", "uninstall", "--name", name);
    const uninstallMs = Date.now() - stopAsked;
    assert.equal(removed.code, 0, removed.out);
    assert.match(removed.out, new RegExp(`removed service ${name}`));
    assert.equal(await queryServiceState(name), null);
    await assertLeftAsItWas(world, before);

    const twice = await hnsproxy("service", "uninstall", "--name", name);
    assert.equal(twice.code, 1, twice.out);
    assert.match(twice.out, new RegExp(`service ${name} is not installed`));
    console.log(`service uninstall of a running service took ${uninstallMs} ms`);
  }),
});

Deno.test({
  name: "agent service under Wine: a service with a bad flag stops at once with exit code 2",
  ignore: !onWindows,
  fn: withWorld(async (world, name) => {
    const binPath = serviceCommandLine({
      agentArgs: [...world.agentArgs(), "--no-such-flag"],
      mainModule: MAIN,
    });
    await sc("create", name, "binPath=", binPath, "start=", "demand");
    await sc("start", name);
    assert.equal(await waitForState(name, ScState.STOPPED, START_BOUND_MS), ScState.STOPPED);
    // ERROR_SERVICE_SPECIFIC_ERROR with the command line's exit code.
    assert.deepEqual(exitCodes(await sc("query", name)), { win32: 1066, service: 2 });
    assert.deepEqual(await world.lbTable(), [], "HNS untouched");
    await sc("delete", name);
  }),
});
