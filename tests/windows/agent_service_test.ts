/**
 * The real agent under the service protocol (lib/windows/agent_service.ts), driven by a
 * double of the SCM: RUNNING once the agent is up, HNS programmed from the fake API server
 * through the emulator library, a STOP that stops the agent gracefully (ownership record
 * flushed, HNS left as it is) before STOPPED, and a failed start reported as a
 * service-specific exit code. Runs everywhere; the Wine tier runs the same agent under
 * Wine's real SCM (agent_service_wine_test.ts).
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseConfig } from "../../lib/config/mod.ts";
import { type ClosableLogger, createLogger } from "../../lib/log/mod.ts";
import { ServiceControl, ServiceState, Win32Error } from "../../lib/windows/advapi32.ts";
import {
  type AgentServiceOptions,
  failWindowsService,
  runAgentAsWindowsService,
} from "../../lib/windows/agent_service.ts";
import { eventually } from "../agent/harness.ts";
import { FakeScm } from "./doubles.ts";
import { ServiceWorld, WANT_LBS } from "./service_world.ts";

async function until(cond: () => boolean, what: string): Promise<void> {
  await eventually(what, cond, () => "", 30_000);
}

function configFor(args: string[]) {
  return parseConfig(args, {}, Deno.readTextFileSync).config;
}

/** A service world and a logger that keeps its lines (at `verbosity`); both are closed after `body`. */
async function withWorld(
  body: (world: ServiceWorld, logger: ClosableLogger, lines: string[]) => Promise<void>,
  verbosity?: number,
): Promise<void> {
  const world = await ServiceWorld.create();
  const lines: string[] = [];
  const logger = createLogger({ stderr: false, verbosity, write: (l) => lines.push(l) });
  try {
    await body(world, logger, lines);
  } finally {
    logger.close();
    await world.close();
  }
}

/** Run the agent with `args` as a service under a fake SCM, which starts it once it is dispatched. */
async function startService(
  args: string[],
  options: Omit<AgentServiceOptions, "scm">,
): Promise<{ scm: FakeScm; exit: Promise<number> }> {
  const scm = new FakeScm();
  const exit = runAgentAsWindowsService(configFor(args), {
    ...options,
    scm: { backend: scm, progressIntervalMs: 20, readyTimeoutMs: 0 },
  });
  await until(() => scm.handlers !== undefined, "the dispatcher");
  scm.start();
  return { scm, exit };
}

Deno.test("agent service: RUNNING once up, programs HNS, STOP stops the agent gracefully, then STOPPED", async () => {
  await withWorld(async (world, logger, lines) => {
    const { scm, exit } = await startService(world.agentArgs(), { logger, name: "hnsproxy-test" });
    await until(() => scm.last?.state === ServiceState.RUNNING, "RUNNING");

    // The record lists each create before HNS is asked and adds its fingerprint once HNS
    // answered: wait for the finished record, not the write-ahead one.
    await eventually(
      "the service's load balancers in HNS and in the ownership record",
      async () => {
        const owned = await world.owned();
        return JSON.stringify(await world.lbTable()) === JSON.stringify(WANT_LBS) &&
          owned.filter((o) => o.kind === "LoadBalancer").length === WANT_LBS.length &&
          owned.every((o) => o.fp !== undefined);
      },
      async () => (await world.lbTable()).join("\n") + "\n" + lines.join(""),
    );
    const owned = await world.owned();
    const lbIds = (await world.hns()).LoadBalancers.map((lb) => String(lb.ID)).sort();

    const { result, reported } = scm.control(ServiceControl.STOP);
    assert.equal(result, Win32Error.NO_ERROR);
    assert.deepEqual(reported, [ServiceState.STOP_PENDING]);
    assert.equal(await exit, 0);
    assert.deepEqual(scm.stateSequence, [
      ServiceState.START_PENDING,
      ServiceState.RUNNING,
      ServiceState.STOP_PENDING,
      ServiceState.STOPPED,
    ]);
    assert.deepEqual(scm.faults, []);
    assert.equal(scm.last?.win32ExitCode, 0);

    // Graceful: the record still lists what the agent made, and HNS still holds it.
    assert.deepEqual(await world.owned(), owned);
    assert.deepEqual((await world.hns()).LoadBalancers.map((lb) => String(lb.ID)).sort(), lbIds);
    const log = lines.join("");
    assert.match(log, /Service stop requested/);
    assert.match(log, /Stopping hnsproxy; HNS is left as it is/);
    assert.ok(log.indexOf('Stopped"') < log.indexOf("Service stopped"), log);
  }, 2);
});

Deno.test("agent service: an agent that cannot start is STOPPED with service-specific exit code 1", async () => {
  await withWorld(async (world, logger, lines) => {
    const args = world.agentArgs();
    args[args.indexOf("--hns-library") + 1] = `${world.dir}/no-such-library.dll`;
    const { scm, exit } = await startService(args, { logger });
    assert.equal(await exit, 1);
    assert.deepEqual(scm.stateSequence, [ServiceState.START_PENDING, ServiceState.STOPPED]);
    assert.equal(scm.last?.win32ExitCode, Win32Error.ERROR_SERVICE_SPECIFIC_ERROR);
    assert.equal(scm.last?.serviceSpecificExitCode, 1);
    assert.match(lines.join(""), /service failed/);
  });
});

Deno.test("agent service: a node the agent cannot run on (no network name) ends RUNNING as STOPPED, exit code 1", async () => {
  await withWorld(async (world, logger, lines) => {
    const args = world.agentArgs();
    args.splice(args.indexOf("--network-name"), 2);
    const { scm, exit } = await startService(args, { logger });
    assert.equal(await exit, 1);
    assert.deepEqual(scm.stateSequence, [
      ServiceState.START_PENDING,
      ServiceState.RUNNING,
      ServiceState.STOPPED,
    ]);
    assert.equal(scm.last?.win32ExitCode, Win32Error.ERROR_SERVICE_SPECIFIC_ERROR);
    assert.equal(scm.last?.serviceSpecificExitCode, 1);
    assert.match(lines.join(""), /No HNS network is named/);
  });
});

Deno.test("agent service: a command line that cannot run reports its exit code to the SCM", async () => {
  const scm = new FakeScm();
  const exit = failWindowsService(2, "the command line is not valid", {
    scm: { backend: scm, progressIntervalMs: 20, readyTimeoutMs: 0 },
  });
  await until(() => scm.handlers !== undefined, "the dispatcher");
  scm.start();
  assert.equal(await exit, 2);
  assert.deepEqual(scm.stateSequence, [ServiceState.START_PENDING, ServiceState.STOPPED]);
  assert.equal(scm.last?.serviceSpecificExitCode, 2);
  // Not started by the SCM: it only returns the code.
  const refused = new FakeScm();
  const alone = failWindowsService(2, "x", { scm: { backend: refused } });
  await until(() => refused.handlers !== undefined, "the dispatcher");
  refused.refuse();
  assert.equal(await alone, 2);
});
