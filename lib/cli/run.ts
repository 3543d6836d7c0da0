/**
 * `hnsproxy run` (the default command): parse flags and config, then run the
 * agent until SIGINT/SIGTERM (SIGBREAK on Windows), or clean up and exit with
 * `--cleanup-and-exit`. With `--windows-service` the agent runs under the Service
 * Control Manager instead (lib/windows/agent_service.ts) and stops on its STOP.
 *
 * @module
 */

import { runCleanup, startAgent } from "../agent.ts";
import {
  ConfigError,
  helpText,
  parseConfig,
  renderConfigFile,
  versionText,
} from "../config/mod.ts";
import type { ParseResult } from "../config/mod.ts";
import { loadYaml, withYaml } from "../config/yaml.ts";
import { createLogger, loggerOptionsFrom } from "../log/mod.ts";
import { failWindowsService, runAgentAsWindowsService } from "../windows/agent_service.ts";
import { isWindowsServiceMode } from "../windows/scm.ts";
import { errorMessage } from "../errors.ts";

/**
 * Parse the command line; prints and returns an exit code when there is nothing to run.
 * The YAML parser is loaded only for a `--config` file in YAML.
 */
export async function parseArgs(args: readonly string[]): Promise<ParseResult | number> {
  let parsed: ParseResult;
  try {
    parsed = await withYaml(() => parseConfig(args, Deno.env.toObject(), Deno.readTextFileSync));
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`hnsproxy: ${err.message}`);
      return 2;
    }
    throw err;
  }
  if (parsed.help) {
    console.log(helpText());
    return 0;
  }
  if (parsed.version) {
    console.log(versionText());
    return 0;
  }
  return parsed;
}

/** Resolves on the first stop signal this platform has. */
function stopSignal(): { promise: Promise<string>; dispose(): void } {
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT", "SIGBREAK"]
    : ["SIGINT", "SIGTERM"];
  let resolve: (s: string) => void = () => {};
  const promise = new Promise<string>((r) => (resolve = r));
  const handlers = signals.map((sig) => {
    const handler = () => resolve(sig);
    Deno.addSignalListener(sig, handler);
    return [sig, handler] as const;
  });
  return {
    promise,
    dispose() {
      for (const [sig, handler] of handlers) Deno.removeSignalListener(sig, handler);
    },
  };
}

/** Run the agent with these arguments; resolves to the process exit code. */
export async function runCommand(args: string[]): Promise<number> {
  const parsed = await parseArgs(args);
  if (typeof parsed === "number") {
    // A service that exits without reporting leaves the SCM waiting: report the failure.
    return parsed !== 0 && isWindowsServiceMode(args)
      ? await failWindowsService(parsed, "the command line is not valid")
      : parsed;
  }
  const { config } = parsed;
  if (config.writeConfigTo) {
    await loadYaml();
    await Deno.writeTextFile(config.writeConfigTo, renderConfigFile(config));
    return 0;
  }
  let logger;
  try {
    logger = createLogger(loggerOptionsFrom(config.logging));
  } catch (err) {
    console.error(`hnsproxy: cannot open the log file: ${(err as Error).message}`);
    return config.windowsService ? await failWindowsService(2, "cannot open the log file") : 2;
  }
  for (const warning of parsed.warnings) logger.warn(warning);
  if (config.windowsService && !config.cleanupAndExit) {
    try {
      return await runAgentAsWindowsService(config, { logger });
    } finally {
      logger.close();
    }
  }
  const signal = stopSignal();
  try {
    if (config.cleanupAndExit) return await runCleanup(config, { logger });
    const agent = await startAgent(config, { logger });
    const outcome = await Promise.race([
      signal.promise.then((sig) => ({ sig })),
      agent.failed.then((err) => ({ err })),
    ]);
    if ("err" in outcome) {
      await agent.stop();
      return 1;
    }
    logger.info("Received signal", { signal: outcome.sig });
    await agent.stop();
    return 0;
  } catch (err) {
    logger.error("hnsproxy cannot run", { err: errorMessage(err) });
    return 1;
  } finally {
    signal.dispose();
    logger.close();
  }
}

if (import.meta.main) Deno.exit(await runCommand(Deno.args));
