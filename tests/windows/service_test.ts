/**
 * The Windows service end to end, under Wine's Service Control Manager: a Deno program
 * using `runAsWindowsService` (tests/windows/fixtures/service_fixture.ts) registered,
 * started, stopped and deleted with sc.exe, then the same through the install helpers.
 *
 * Run with `deno task test:windows`; on other systems these tests are ignored.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  sc,
  START_BOUND_MS,
  STOP_BOUND_MS,
  uniqueServiceName,
  waitForState,
} from "./sc_helpers.ts";
import {
  installService,
  queryServiceState,
  quoteWindowsArg,
  ScState,
  uninstallService,
} from "../../lib/windows/install.ts";

const onWindows = Deno.build.os === "windows";
const fixture = fileURLToPath(new URL("./fixtures/service_fixture.ts", import.meta.url));

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/** The fixture's own log, to explain a failure. */
async function serviceLog(dir: string): Promise<string> {
  return (await readIfExists(join(dir, "service.log"))) ?? "(no service.log)";
}

function exitCodes(queryOutput: string): { win32: number; service: number } {
  const win32 = /WIN32_EXIT_CODE\s*:\s*(\d+)/.exec(queryOutput);
  const service = /SERVICE_EXIT_CODE\s*:\s*(\d+)/.exec(queryOutput);
  assert.ok(win32 && service, `no exit codes in: ${queryOutput}`);
  return { win32: Number(win32[1]), service: Number(service[1]) };
}

/** Runs `fn` with a fresh marker folder and a service name, removing both afterwards. */
function withService(fn: (name: string, dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const name = uniqueServiceName("hnsproxy-test");
    const dir = await Deno.makeTempDir({ prefix: "hnsproxy-svc-" });
    try {
      await fn(name, dir).catch(async (err) => {
        throw new Error(`${err}\n--- service.log ---\n${await serviceLog(dir)}`, { cause: err });
      });
    } finally {
      await uninstallService({ name, stopTimeoutMs: STOP_BOUND_MS }).catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  };
}

/** Starts the service and waits until it reports RUNNING and the fixture wrote its marker. */
async function startAndWaitRunning(name: string, dir: string): Promise<void> {
  await sc("start", name);
  assert.equal(await waitForState(name, ScState.RUNNING, START_BOUND_MS), ScState.RUNNING);
  assert.match((await readIfExists(join(dir, "running"))) ?? "", /^\d+$/, "running marker");
}

Deno.test({
  name: "windows service: sc create, start, RUNNING, stop, STOPPED gracefully, delete",
  ignore: !onWindows,
  fn: withService(async (name, dir) => {
    const binPath = [
      Deno.execPath(),
      "run",
      "-A",
      fixture,
      "--windows-service",
      "--name",
      name,
      "--dir",
      dir,
    ]
      .map(quoteWindowsArg).join(" ");
    await sc("create", name, "binPath=", binPath);
    assert.equal(await queryServiceState(name), ScState.STOPPED);

    await startAndWaitRunning(name, dir);
    assert.equal(await readIfExists(join(dir, "stopped")), undefined);

    await sc("stop", name);
    assert.equal(await waitForState(name, ScState.STOPPED, STOP_BOUND_MS), ScState.STOPPED);
    assert.equal(await readIfExists(join(dir, "stopped")), "graceful");
    assert.deepEqual(exitCodes(await sc("query", name)), { win32: 0, service: 0 });

    await sc("delete", name);
    assert.equal(await queryServiceState(name), null);
  }),
});

Deno.test({
  name: "windows service: installService and uninstallService register, stop and remove it",
  ignore: !onWindows,
  fn: withService(async (name, dir) => {
    const installed = await installService({
      name,
      mainModule: fixture,
      agentArgs: ["--name", name, "--dir", dir],
      startType: "demand",
    });
    assert.equal(installed.name, name);
    assert.ok(installed.binPath.includes("--windows-service"), installed.binPath);
    assert.equal(await queryServiceState(name), ScState.STOPPED);
    // A second install of the same name is refused with ERROR_SERVICE_EXISTS.
    await assert.rejects(installService({ name, mainModule: fixture }), { code: 1073 });

    await startAndWaitRunning(name, dir);

    assert.equal(await uninstallService({ name, stopTimeoutMs: STOP_BOUND_MS }), true);
    assert.equal(await readIfExists(join(dir, "stopped")), "graceful");
    assert.equal(await queryServiceState(name), null);
    assert.equal(await uninstallService({ name }), false);
  }),
});

Deno.test({
  name: "windows service: a failed graceful stop reports a service-specific exit code",
  ignore: !onWindows,
  fn: withService(async (name, dir) => {
    await installService({
      name,
      mainModule: fixture,
      agentArgs: ["--name", name, "--dir", dir, "--fail-on-stop"],
      startType: "demand",
    });
    await startAndWaitRunning(name, dir);
    await sc("stop", name);
    assert.equal(await waitForState(name, ScState.STOPPED, STOP_BOUND_MS), ScState.STOPPED);
    // ERROR_SERVICE_SPECIFIC_ERROR, with the fixture's exitCode.
    assert.deepEqual(exitCodes(await sc("query", name)), { win32: 1066, service: 42 });
    assert.equal(await uninstallService({ name }), true);
  }),
});
