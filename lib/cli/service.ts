/**
 * `hnsproxy service`: register hnsproxy with the Windows Service Control Manager, or
 * remove it.
 *
 * ```sh
 * hnsproxy service install [--name hnsproxy] [--start-type auto|demand] -- <agent flags>
 * hnsproxy service uninstall [--name hnsproxy]
 * ```
 *
 * `install` checks the agent flags as the service will read them (with no environment:
 * a service gets none from the installer), then runs `sc create` with this program, the
 * flags and `--windows-service`, and sets restart-on-failure actions (lib/windows/install.ts).
 * `uninstall` stops the service if it runs, waits for STOPPED and deletes it. Failures
 * are one line on stderr: exit code 2 for a bad command line, 1 otherwise.
 *
 * @module
 */

import { win32 } from "node:path";
import { ConfigError, parseConfig } from "../config/mod.ts";
import { withYaml } from "../config/yaml.ts";
import type { Config } from "../config/types.ts";
import {
  DEFAULT_SERVICE_NAME,
  installService,
  type ScRunner,
  uninstallService,
} from "../windows/install.ts";
import { WINDOWS_SERVICE_FLAG } from "../windows/scm.ts";
import { errorMessage } from "../errors.ts";

/** The usage text of `service`. */
export const SERVICE_USAGE = `Usage:
  hnsproxy service install [--name NAME] [--start-type auto|demand] -- <agent flags>
  hnsproxy service uninstall [--name NAME]

install registers hnsproxy with the Service Control Manager: the service runs this program
with the agent flags and --windows-service, and restarts after a failure. A service has no
console: give --log-file, and absolute paths (it starts in C:\\Windows\\System32).
uninstall stops the service if it runs, then removes it.

Options:
  --name NAME            service name (default ${DEFAULT_SERVICE_NAME})
  --start-type TYPE      auto (default: start with Windows) or demand (only when asked)
  -h, --help             show this help
`;

/** Where the command writes, the platform and sc.exe: replaceable for tests. */
export interface ServiceCommandDeps {
  /** Normal output. */
  stdout?: (text: string) => void;
  /** Errors and warnings. */
  stderr?: (text: string) => void;
  /** The operating system; default `Deno.build.os`. */
  os?: string;
  /** Runs sc.exe; default the system's. */
  sc?: ScRunner;
  /** How the service command line names this program (tests); default this process's. */
  commandLine?: { execPath?: string; mainModule?: string; config?: string | null };
}

/** A bad command line; the message is one line. */
class UsageError extends Error {}

interface Parsed {
  action: "install" | "uninstall" | "help";
  name: string;
  startType: "auto" | "demand";
  agentArgs: string[];
}

function parseCommandLine(args: readonly string[]): Parsed {
  const dashes = args.indexOf("--");
  const own = dashes >= 0 ? args.slice(0, dashes) : [...args];
  const agentArgs = dashes >= 0 ? args.slice(dashes + 1) : [];
  const out: Parsed = { action: "help", name: DEFAULT_SERVICE_NAME, startType: "auto", agentArgs };
  const positionals: string[] = [];
  for (let i = 0; i < own.length; i++) {
    const arg = own[i];
    if (arg === "-h" || arg === "--help") return { ...out, action: "help" };
    const m = /^--(name|start-type)(?:=(.*))?$/.exec(arg);
    if (m) {
      const value = m[2] ?? own[++i];
      if (value === undefined || value === "") throw new UsageError(`--${m[1]} needs a value`);
      if (m[1] === "name") {
        if (/[\s"/\\]/.test(value)) throw new UsageError(`--name "${value}" is not a service name`);
        out.name = value;
      } else if (value === "auto" || value === "demand") {
        out.startType = value;
      } else {
        throw new UsageError(`--start-type must be auto or demand, not "${value}"`);
      }
      continue;
    }
    if (arg.startsWith("-")) throw new UsageError(`unknown option ${arg}`);
    positionals.push(arg);
  }
  const [action, ...extra] = positionals;
  if (action === undefined) throw new UsageError("missing sub-command: install or uninstall");
  if (action !== "install" && action !== "uninstall") {
    throw new UsageError(`unknown sub-command "${action}": install or uninstall`);
  }
  if (extra.length > 0) {
    throw new UsageError(`unexpected argument "${extra[0]}" (agent flags go after --)`);
  }
  if (action === "uninstall" && dashes >= 0) {
    throw new UsageError("uninstall takes no agent flags");
  }
  if (action === "uninstall" && args.some((a) => a.startsWith("--start-type"))) {
    throw new UsageError("--start-type is for install");
  }
  return { ...out, action };
}

/**
 * The agent flags as the service will get them (without `--windows-service`, which the
 * command line adds), checked by the agent's own parser with no environment. Returns them
 * and the resulting config; throws a one-line error when they are not valid.
 */
function checkAgentArgs(agentArgs: readonly string[], os: string): {
  args: string[];
  config: Config;
} {
  const args = agentArgs.filter((a) => a !== WINDOWS_SERVICE_FLAG);
  if (
    args.some((a) => ["-h", "--help", "--version", "--help=true", "--version=true"].includes(a))
  ) {
    throw new UsageError("--help and --version are not agent flags a service can run with");
  }
  try {
    const parsed = parseConfig(args, {}, Deno.readTextFileSync, { os });
    return { args, config: parsed.config };
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(`agent flags: ${err.message}`);
    throw err;
  }
}

/** Warnings about a service config that would run but lose logs or miss its files. */
function configWarnings(config: Config): string[] {
  const warnings: string[] = [];
  if (!config.logging.file) {
    warnings.push("no --log-file: a service has no console, so its logs would be lost");
  }
  const paths: Array<[string, string]> = [
    ["--kubeconfig", config.kubeconfig],
    ["--log-file", config.logging.file],
    ["--state-file", config.stateFile],
    ["--hns-library", config.hnsLibrary],
  ];
  for (const [flag, path] of paths) {
    if (path && !win32.isAbsolute(path)) {
      warnings.push(`${flag} ${path} is relative: the service starts in C:\\Windows\\System32`);
    }
  }
  return warnings;
}

const encoder = new TextEncoder();

function writeAll(stream: { writeSync(p: Uint8Array): number }, text: string): void {
  let bytes = encoder.encode(text);
  while (bytes.length > 0) bytes = bytes.subarray(stream.writeSync(bytes));
}

/** Run `service ARGS...`; resolves to the exit code (0 ok, 1 failure, 2 bad command line). */
export async function serviceCommand(
  args: string[],
  deps: ServiceCommandDeps = {},
): Promise<number> {
  const stdout = deps.stdout ?? ((t: string) => writeAll(Deno.stdout, t));
  const stderr = deps.stderr ?? ((t: string) => writeAll(Deno.stderr, t));
  const os = deps.os ?? Deno.build.os;
  let parsed: Parsed;
  let checked: { args: string[]; config: Config } | undefined;
  try {
    parsed = parseCommandLine(args);
    if (parsed.action === "help") {
      stdout(SERVICE_USAGE);
      return 0;
    }
    if (parsed.action === "install") {
      const agentArgs = parsed.agentArgs;
      checked = await withYaml(() => checkAgentArgs(agentArgs, "windows"));
    }
  } catch (err) {
    if (err instanceof UsageError) {
      stderr(`hnsproxy: service: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (os !== "windows") {
    stderr(
      `hnsproxy: service ${parsed.action}: Windows services exist only on Windows (this is ${os}); ` +
        `run the agent directly (hnsproxy run)\n`,
    );
    return 1;
  }
  try {
    if (parsed.action === "install") {
      const { args: agentArgs, config } = checked!;
      for (const w of configWarnings(config)) stderr(`hnsproxy: warning: ${w}\n`);
      const installed = await installService({
        ...deps.commandLine,
        name: parsed.name,
        agentArgs,
        startType: parsed.startType,
        sc: deps.sc,
      });
      for (const w of installed.warnings) stderr(`hnsproxy: warning: ${w}\n`);
      stdout(
        `installed service ${installed.name} (start type ${parsed.startType}): ${installed.binPath}\n`,
      );
      return 0;
    }
    const removed = await uninstallService({ name: parsed.name, sc: deps.sc });
    if (!removed) {
      stderr(`hnsproxy: service uninstall: service ${parsed.name} is not installed\n`);
      return 1;
    }
    stdout(`removed service ${parsed.name}\n`);
    return 0;
  } catch (err) {
    const message = (errorMessage(err)).replace(/\s+/g, " ");
    stderr(`hnsproxy: service ${parsed.action}: ${message}\n`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await serviceCommand(Deno.args));
