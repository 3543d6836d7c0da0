/**
 * Running under the Windows Service Control Manager: the service side of the protocol.
 *
 * START_PENDING (with progress) until the agent says it is up, then RUNNING; on STOP or
 * SHUTDOWN, STOP_PENDING is reported inside the control handler, which returns at once;
 * the agent's signal is aborted, and STOPPED is reported once it has finished, from a
 * worker thread. Reporting STOPPED from inside the handler deadlocks under Wine: its
 * dispatcher holds a lock around the handler that SetServiceStatus(STOPPED) also takes
 * (shared/reference/windows-under-wine.md).
 *
 * Service mode is chosen by the {@link WINDOWS_SERVICE_FLAG} flag, never by trying the
 * dispatcher: run from a console it fails only after about ten seconds under Wine.
 *
 * @module
 */
import { type Logger, nullLogger } from "../log/types.ts";
import {
  openAdvapi32,
  type ScmBackend,
  ServiceAccept,
  ServiceControl,
  ServiceState,
  type ServiceStatus,
  Win32Error,
} from "./advapi32.ts";

/** The default service name. */
export const DEFAULT_SERVICE_NAME = "hnsproxy";

/** The command-line flag that tells hnsproxy the SCM started it. */
export const WINDOWS_SERVICE_FLAG = "--windows-service";

/**
 * The service's work. It must call `ready()` once it is up (the service then reports
 * RUNNING) and return once `signal` is aborted. Throwing reports a service-specific exit
 * code: the error's numeric `exitCode` property, or 1.
 */
export type ServiceRun = (signal: AbortSignal, ready: () => void) => Promise<void>;

/** Tuning and test seams for {@link runAsWindowsService}. */
export interface WindowsServiceOptions {
  /** Where the protocol's own messages go (a service has no console). */
  log?: Logger;
  /** Wait hint reported with START_PENDING, in ms. Default 30 s. */
  startWaitHintMs?: number;
  /** Wait hint reported with STOP_PENDING, in ms. Default 20 s. */
  stopWaitHintMs?: number;
  /**
   * After this long in START_PENDING the service reports RUNNING even if `ready()` was not
   * called, so that it can be stopped (the SCM sends no STOP to a starting service).
   * 0 waits for `ready()` forever. Default 60 s.
   */
  readyTimeoutMs?: number;
  /** After a stop request, how long `run` may take before STOPPED is reported anyway. Default 25 s. */
  stopTimeoutMs?: number;
  /** How often progress (the checkpoint) is reported while pending, in ms. Default 2 s. */
  progressIntervalMs?: number;
  /** The process side of the SCM; default advapi32.dll. */
  backend?: ScmBackend;
}

/** Why the service stopped. */
export type StopReason = "stop" | "shutdown" | "exited" | "failed" | "stop-timeout";

/** How the service ended, as reported to the SCM with STOPPED. */
export interface ServiceOutcome {
  /** What ended it: a control, `run` returning or throwing, or the stop timeout. */
  reason: StopReason;
  /** The Win32 exit code reported. */
  win32ExitCode: number;
  /** The service-specific exit code reported (with ERROR_SERVICE_SPECIFIC_ERROR). */
  serviceSpecificExitCode: number;
  /** What `run` threw, if it did. */
  error?: unknown;
}

/** Whether these command-line arguments ask for service mode. */
export function isWindowsServiceMode(args: readonly string[]): boolean {
  return args.includes(WINDOWS_SERVICE_FLAG);
}

function exitCodeOf(error: unknown): number {
  const code = (error as { exitCode?: unknown } | null)?.exitCode;
  return typeof code === "number" && Number.isInteger(code) && code > 0 ? code >>> 0 : 1;
}

/**
 * Runs `run` as the Windows service `name` under the Service Control Manager and resolves
 * once STOPPED has been reported; the caller should then exit the process. Rejects when
 * the process was not started by the SCM or cannot report to it.
 */
export async function runAsWindowsService(
  name: string,
  run: ServiceRun,
  options: WindowsServiceOptions = {},
): Promise<ServiceOutcome> {
  const log = options.log ?? nullLogger;
  const startWaitHint = options.startWaitHintMs ?? 30_000;
  const stopWaitHint = options.stopWaitHintMs ?? 20_000;
  const readyTimeout = options.readyTimeoutMs ?? 60_000;
  const stopTimeout = options.stopTimeoutMs ?? 25_000;
  const progressInterval = options.progressIntervalMs ?? 2_000;
  if (!options.backend && Deno.build.os !== "windows") {
    throw new Error("a Windows service can only run on Windows");
  }
  const backend = options.backend ?? openAdvapi32();

  const controller = new AbortController();
  const outcome = Promise.withResolvers<ServiceOutcome>();
  let status: ServiceStatus = {
    state: ServiceState.STOPPED,
    controlsAccepted: 0,
    win32ExitCode: 0,
    serviceSpecificExitCode: 0,
    checkPoint: 0,
    waitHint: 0,
  };
  let stopReason: "stop" | "shutdown" | undefined;
  let stopped = false;
  let progressTimer: ReturnType<typeof setInterval> | undefined;
  let readyTimer: ReturnType<typeof setTimeout> | undefined;
  let stopTimer: ReturnType<typeof setTimeout> | undefined;

  const report = (next: Partial<ServiceStatus>): void => {
    status = { ...status, ...next };
    if (!backend.setStatus(status)) {
      log.warn("SetServiceStatus failed", { service: name, state: status.state });
    }
  };

  const stopProgress = (): void => {
    clearInterval(progressTimer);
    progressTimer = undefined;
  };

  // While pending, the SCM expects the checkpoint to advance within each wait hint.
  const startProgress = (): void => {
    stopProgress();
    progressTimer = setInterval(
      () => report({ checkPoint: status.checkPoint + 1 }),
      progressInterval,
    );
  };

  const becomeRunning = (): void => {
    clearTimeout(readyTimer);
    if (status.state !== ServiceState.START_PENDING || stopReason) return;
    stopProgress();
    report({
      state: ServiceState.RUNNING,
      controlsAccepted: ServiceAccept.STOP | ServiceAccept.SHUTDOWN,
      checkPoint: 0,
      waitHint: 0,
    });
    log.info("service running", { service: name });
  };

  const complete = async (reason: StopReason, error?: unknown): Promise<void> => {
    if (stopped) return;
    stopped = true;
    stopProgress();
    clearTimeout(readyTimer);
    clearTimeout(stopTimer);
    const failed = reason === "failed";
    status = {
      state: ServiceState.STOPPED,
      controlsAccepted: 0,
      win32ExitCode: failed ? Win32Error.ERROR_SERVICE_SPECIFIC_ERROR : Win32Error.NO_ERROR,
      serviceSpecificExitCode: failed ? exitCodeOf(error) : 0,
      checkPoint: 0,
      waitHint: 0,
    };
    if (failed) log.error("service failed", { service: name, error: String(error) });
    if (reason === "stop-timeout") {
      log.error("service did not stop in time; reporting STOPPED anyway", {
        service: name,
        timeoutMs: stopTimeout,
      });
    }
    // From a worker thread: the dispatcher may be inside a control call holding its lock.
    const ok = await backend.setStatusAsync(status);
    if (!ok) log.warn("SetServiceStatus(STOPPED) failed", { service: name });
    outcome.resolve({
      reason,
      win32ExitCode: status.win32ExitCode,
      serviceSpecificExitCode: status.serviceSpecificExitCode,
      ...(error === undefined ? {} : { error }),
    });
  };

  const requestStop = (reason: "stop" | "shutdown"): void => {
    if (stopReason || stopped) return;
    stopReason = reason;
    clearTimeout(readyTimer);
    report({
      state: ServiceState.STOP_PENDING,
      controlsAccepted: 0,
      checkPoint: 1,
      waitHint: stopWaitHint,
    });
    startProgress();
    stopTimer = setTimeout(() => complete("stop-timeout"), stopTimeout);
    // Abort after the handler has returned, so that abort listeners never run inside it.
    setTimeout(() => controller.abort(new Error(`service ${reason} requested`)), 0);
  };

  const handlers = {
    serviceMain(_args: string[], error?: Error): void {
      if (error) {
        outcome.reject(error);
        return;
      }
      report({
        state: ServiceState.START_PENDING,
        controlsAccepted: 0,
        checkPoint: 1,
        waitHint: startWaitHint,
      });
      startProgress();
      if (readyTimeout > 0) {
        readyTimer = setTimeout(() => {
          log.warn("service not ready in time; reporting RUNNING so it can be stopped", {
            service: name,
            timeoutMs: readyTimeout,
          });
          becomeRunning();
        }, readyTimeout);
      }
      // Start the work after ServiceMain has returned to the SCM's thread.
      setTimeout(() => {
        Promise.resolve()
          .then(() => run(controller.signal, becomeRunning))
          .then(
            () => complete(stopReason ?? "exited"),
            (err) => complete("failed", err),
          );
      }, 0);
    },
    control(code: number, _eventType: number): number {
      try {
        switch (code) {
          case ServiceControl.STOP:
            requestStop("stop");
            return Win32Error.NO_ERROR;
          case ServiceControl.SHUTDOWN:
          case ServiceControl.PRESHUTDOWN:
            requestStop("shutdown");
            return Win32Error.NO_ERROR;
          case ServiceControl.INTERROGATE:
            return Win32Error.NO_ERROR;
          default:
            return Win32Error.ERROR_CALL_NOT_IMPLEMENTED;
        }
      } catch (err) {
        // A throw would escape into the SCM's thread; report and carry on.
        log.error("service control handler failed", {
          service: name,
          control: code,
          error: String(err),
        });
        return Win32Error.NO_ERROR;
      }
    },
  };

  const dispatched = backend.runDispatcher(name, handlers).then((ok) => {
    if (!ok) {
      throw new Error(
        `the Service Control Manager did not start this process (service ${name}); ` +
          `${WINDOWS_SERVICE_FLAG} is for the SCM only`,
      );
    }
    return outcome.promise;
  });
  return await Promise.race([dispatched, outcome.promise]);
}
