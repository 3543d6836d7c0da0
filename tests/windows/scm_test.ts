/**
 * The service-side SCM protocol (lib/windows/scm.ts) against a double of the SCM that
 * behaves like Wine's dispatcher: controls are delivered while it holds its lock, so a
 * synchronous STOPPED report from inside a control is a deadlock (here: a recorded fault).
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  ServiceAccept,
  ServiceControl,
  ServiceState,
  Win32Error,
} from "../../lib/windows/advapi32.ts";
import {
  isWindowsServiceMode,
  runAsWindowsService,
  type ServiceOutcome,
  type ServiceRun,
  type WindowsServiceOptions,
} from "../../lib/windows/scm.ts";
import { FakeScm } from "./doubles.ts";

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(cond(), `timed out waiting for ${what}`);
}

const fast: WindowsServiceOptions = { progressIntervalMs: 5, readyTimeoutMs: 0 };

/** An agent that reports ready at once and returns when asked to stop. */
const wellBehaved: ServiceRun = async (signal, ready) => {
  ready();
  await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve()));
};

function start(run: ServiceRun, options: WindowsServiceOptions = {}) {
  const scm = new FakeScm();
  const outcome: Promise<ServiceOutcome> = runAsWindowsService("hnsproxy", run, {
    ...fast,
    ...options,
    backend: scm,
  });
  return { scm, outcome };
}

Deno.test("scm: service mode is chosen by the flag", () => {
  assert.equal(isWindowsServiceMode(["--windows-service", "--v=2"]), true);
  assert.equal(isWindowsServiceMode(["run", "--v=2"]), false);
});

Deno.test("scm: START_PENDING, RUNNING on ready, STOP_PENDING inside the stop control, STOPPED after", async () => {
  let aborted = false;
  const { scm, outcome } = start(async (signal, ready) => {
    await wellBehaved(signal, ready);
    aborted = signal.aborted;
  }, { startWaitHintMs: 12_000, stopWaitHintMs: 7_000 });
  assert.equal(scm.dispatcherName, "hnsproxy");
  scm.start();
  assert.deepEqual(scm.statuses[0], {
    state: ServiceState.START_PENDING,
    controlsAccepted: 0,
    win32ExitCode: 0,
    serviceSpecificExitCode: 0,
    checkPoint: 1,
    waitHint: 12_000,
  });
  await until(() => scm.last?.state === ServiceState.RUNNING, "RUNNING");
  assert.equal(scm.last?.controlsAccepted, ServiceAccept.STOP | ServiceAccept.SHUTDOWN);

  const stop = scm.control(ServiceControl.STOP);
  assert.equal(stop.result, Win32Error.NO_ERROR);
  assert.deepEqual(stop.reported, [ServiceState.STOP_PENDING]);
  assert.equal(scm.last?.waitHint, 7_000);

  const result = await outcome;
  assert.equal(aborted, true);
  assert.deepEqual(result, { reason: "stop", win32ExitCode: 0, serviceSpecificExitCode: 0 });
  assert.deepEqual(scm.stateSequence, [
    ServiceState.START_PENDING,
    ServiceState.RUNNING,
    ServiceState.STOP_PENDING,
    ServiceState.STOPPED,
  ]);
  assert.deepEqual(scm.faults, []);
});

Deno.test("scm: the signal is aborted only after the control handler returned", async () => {
  let abortedDuringControl: boolean | undefined;
  let signalRef: AbortSignal | undefined;
  const { scm, outcome } = start((signal, ready) => {
    signalRef = signal;
    return wellBehaved(signal, ready);
  });
  scm.start();
  await until(() => scm.last?.state === ServiceState.RUNNING, "RUNNING");
  assert.ok(scm.handlers);
  const original = scm.handlers.control;
  scm.handlers.control = (code, type) => {
    const r = original(code, type);
    abortedDuringControl = signalRef?.aborted;
    return r;
  };
  scm.control(ServiceControl.STOP);
  assert.equal(abortedDuringControl, false);
  await outcome;
});

Deno.test("scm: SHUTDOWN stops the service like STOP, and a second stop is a no-op", async () => {
  const { scm, outcome } = start(wellBehaved);
  scm.start();
  await until(() => scm.last?.state === ServiceState.RUNNING, "RUNNING");
  assert.deepEqual(scm.control(ServiceControl.SHUTDOWN).reported, [ServiceState.STOP_PENDING]);
  const again = scm.control(ServiceControl.STOP);
  assert.equal(again.result, Win32Error.NO_ERROR);
  assert.deepEqual(again.reported, []);
  assert.equal((await outcome).reason, "shutdown");
  assert.deepEqual(scm.faults, []);
});

Deno.test("scm: INTERROGATE is answered, unknown controls are not implemented", async () => {
  const { scm, outcome } = start(wellBehaved);
  scm.start();
  await until(() => scm.last?.state === ServiceState.RUNNING, "RUNNING");
  assert.deepEqual(scm.control(ServiceControl.INTERROGATE), { result: 0, reported: [] });
  assert.deepEqual(scm.control(0x80), {
    result: Win32Error.ERROR_CALL_NOT_IMPLEMENTED,
    reported: [],
  });
  scm.control(ServiceControl.STOP);
  await outcome;
});

Deno.test("scm: a run that throws reports a service-specific exit code", async () => {
  const { scm, outcome } = start(async (signal, ready) => {
    await wellBehaved(signal, ready);
    throw Object.assign(new Error("state file not flushed"), { exitCode: 42 });
  });
  scm.start();
  await until(() => scm.last?.state === ServiceState.RUNNING, "RUNNING");
  scm.control(ServiceControl.STOP);
  const result = await outcome;
  assert.equal(result.reason, "failed");
  assert.equal(result.win32ExitCode, Win32Error.ERROR_SERVICE_SPECIFIC_ERROR);
  assert.equal(result.serviceSpecificExitCode, 42);
  assert.match(String(result.error), /state file not flushed/);
  assert.equal(scm.last?.state, ServiceState.STOPPED);
  assert.equal(scm.last?.serviceSpecificExitCode, 42);
});

Deno.test("scm: a run that fails at start, without an exit code, stops with code 1", async () => {
  const { scm, outcome } = start(() => Promise.reject(new Error("no kubeconfig")));
  scm.start();
  const result = await outcome;
  assert.equal(result.reason, "failed");
  assert.equal(result.serviceSpecificExitCode, 1);
  assert.deepEqual(scm.stateSequence, [ServiceState.START_PENDING, ServiceState.STOPPED]);
});

Deno.test("scm: a run that returns on its own reports STOPPED with exit code 0", async () => {
  const { scm, outcome } = start((_signal, ready) => {
    ready();
    return Promise.resolve();
  });
  scm.start();
  assert.deepEqual(await outcome, {
    reason: "exited",
    win32ExitCode: 0,
    serviceSpecificExitCode: 0,
  });
  assert.equal(scm.last?.state, ServiceState.STOPPED);
});

Deno.test("scm: progress is reported with a rising checkpoint while pending", async () => {
  const started = Promise.withResolvers<() => void>();
  const { scm, outcome } = start((signal, ready) => {
    started.resolve(ready);
    return wellBehaved(signal, () => {});
  }, { startWaitHintMs: 9_000 });
  scm.start();
  await until(() => scm.statuses.length >= 4, "progress reports");
  (await started.promise)();
  const pending = scm.statuses.filter((s) => s.state === ServiceState.START_PENDING);
  assert.ok(pending.length >= 4);
  pending.forEach((s, i) => {
    assert.equal(s.checkPoint, i + 1);
    assert.equal(s.waitHint, 9_000);
  });
  await until(() => scm.last?.state === ServiceState.RUNNING, "RUNNING");
  assert.equal(scm.last?.checkPoint, 0);
  scm.control(ServiceControl.STOP);
  await outcome;
});

Deno.test("scm: without ready() the service reports RUNNING after the ready timeout", async () => {
  const { scm, outcome } = start((signal) => wellBehaved(signal, () => {}), { readyTimeoutMs: 20 });
  scm.start();
  await until(() => scm.last?.state === ServiceState.RUNNING, "RUNNING");
  scm.control(ServiceControl.STOP);
  assert.equal((await outcome).reason, "stop");
});

Deno.test("scm: a run that ignores the stop is reported STOPPED after the stop timeout", async () => {
  const release = Promise.withResolvers<void>();
  const { scm, outcome } = start(async (_signal, ready) => {
    ready();
    await release.promise;
  }, { stopTimeoutMs: 20 });
  scm.start();
  await until(() => scm.last?.state === ServiceState.RUNNING, "RUNNING");
  scm.control(ServiceControl.STOP);
  const result = await outcome;
  assert.equal(result.reason, "stop-timeout");
  assert.equal(scm.last?.state, ServiceState.STOPPED);
  release.resolve();
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(scm.statuses.filter((s) => s.state === ServiceState.STOPPED).length, 1);
});

Deno.test("scm: a process not started by the SCM is refused with a clear error", async () => {
  const { scm, outcome } = start(wellBehaved);
  scm.refuse();
  await assert.rejects(outcome, /did not start this process.*--windows-service/);
});

Deno.test("scm: a control handler that cannot be registered rejects", async () => {
  const { scm, outcome } = start(wellBehaved);
  scm.start(new Error("RegisterServiceCtrlHandlerExW(hnsproxy) failed"));
  await assert.rejects(outcome, /RegisterServiceCtrlHandlerExW/);
});

Deno.test({
  name: "scm: without a backend, service mode is refused off Windows",
  ignore: Deno.build.os === "windows",
  async fn() {
    await assert.rejects(runAsWindowsService("hnsproxy", wellBehaved), /only run on Windows/);
  },
});
