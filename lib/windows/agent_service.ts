/**
 * The agent as a Windows service (`hnsproxy --windows-service`): the Service Control
 * Manager protocol of `scm.ts` around `startAgent`.
 *
 * START_PENDING while the agent starts; RUNNING once `startAgent` has returned (the HNS
 * library is open, the watches and the health and metrics servers are up); on STOP or
 * SHUTDOWN the agent stops gracefully (watches closed, ownership record flushed, HNS left as
 * it is so traffic keeps flowing), then STOPPED. A service has no console: its logs go where
 * `--log-file` says.
 *
 * Exit codes the SCM shows (`sc query`: WIN32_EXIT_CODE 1066, SERVICE_EXIT_CODE n): 1 when
 * the agent could not start or failed, 2 when the command line or the log file was unusable
 * (see {@link failWindowsService}).
 *
 * @module
 */
import type { Agent, AgentDeps } from "../agent.ts";
import { startAgent } from "../agent.ts";
import type { Config } from "../config/types.ts";
import type { Logger } from "../log/types.ts";
import { DEFAULT_SERVICE_NAME, runAsWindowsService, type WindowsServiceOptions } from "./scm.ts";
import { errorMessage } from "../errors.ts";

/** Options of {@link runAgentAsWindowsService}. */
export interface AgentServiceOptions {
  /** Where the agent and the protocol log. */
  logger: Logger;
  /**
   * The service name, for logs. A service that runs alone in its process is dispatched
   * whatever name it gives, so this need not match the installed name. Default `hnsproxy`.
   */
  name?: string;
  /** The agent's dependencies besides the logger (tests). */
  deps?: Omit<AgentDeps, "logger">;
  /** Starts the agent; default {@link startAgent} (a seam for tests). */
  start?: (config: Config, deps: AgentDeps) => Promise<Agent>;
  /** SCM protocol tuning and its backend (tests). */
  scm?: Omit<WindowsServiceOptions, "log">;
}

/** Resolves when `signal` is aborted (at once if it already is). */
function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) =>
    signal.addEventListener("abort", () => resolve(), { once: true })
  );
}

/**
 * Runs the agent under the Service Control Manager until it is stopped; resolves to the
 * process exit code once STOPPED has been reported: 0 after a stop or shutdown, 1 when the
 * agent failed or the process was not started by the SCM.
 */
export async function runAgentAsWindowsService(
  config: Config,
  options: AgentServiceOptions,
): Promise<number> {
  const log = options.logger;
  const name = options.name ?? DEFAULT_SERVICE_NAME;
  const start = options.start ?? startAgent;
  try {
    const outcome = await runAsWindowsService(name, async (signal, ready) => {
      const agent = await start(config, { ...options.deps, logger: log });
      try {
        ready();
        // A StartupError ends the service as failed (exit code 1).
        const failed = agent.failed.then((err) => Promise.reject(err));
        await Promise.race([aborted(signal), failed]);
        log.info("Service stop requested", {
          service: name,
          reason: signal.reason instanceof Error ? signal.reason.message : String(signal.reason),
        });
      } finally {
        await agent.stop();
      }
    }, { ...options.scm, log });
    log.info("Service stopped", { service: name, reason: outcome.reason });
    return outcome.reason === "failed" || outcome.reason === "stop-timeout" ? 1 : 0;
  } catch (err) {
    log.error("hnsproxy cannot run as a Windows service", {
      err: errorMessage(err),
    });
    return 1;
  }
}

/**
 * For a service whose command line cannot be used (bad flags, unusable log file): report
 * START_PENDING then STOPPED with the service-specific exit code `exitCode`, so that the SCM
 * shows the failure at once instead of timing out waiting for the service. Resolves to
 * `exitCode`. Off Windows, or when the SCM did not start this process, it only returns it.
 */
export async function failWindowsService(
  exitCode: number,
  message: string,
  options: { logger?: Logger; name?: string; scm?: Omit<WindowsServiceOptions, "log"> } = {},
): Promise<number> {
  if (!options.scm?.backend && Deno.build.os !== "windows") return exitCode;
  try {
    await runAsWindowsService(options.name ?? DEFAULT_SERVICE_NAME, () => {
      return Promise.reject(Object.assign(new Error(message), { exitCode }));
    }, { ...options.scm, log: options.logger });
  } catch {
    // Not started by the SCM: the caller already printed the error.
  }
  return exitCode;
}
