/**
 * Registering hnsproxy with the Windows Service Control Manager through `sc.exe`:
 * `service install [--name hnsproxy] -- <agent flags>` and `service uninstall [--name]`.
 *
 * The service command line is this program (a compiled hnsproxy.exe, or
 * `deno.exe run -A [--config deno.json] main.ts`), then the agent's flags, then
 * `--windows-service`. Restart-on-failure actions are set with `sc failure`; where the
 * local sc.exe lacks a sub-command (Wine lacks `failureflag`), install warns and goes on.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Logger, nullLogger } from "../log/types.ts";
import { DEFAULT_SERVICE_NAME, WINDOWS_SERVICE_FLAG } from "./scm.ts";

export { DEFAULT_SERVICE_NAME };

/** Win32 errors sc.exe exits with that install and uninstall handle. */
export const ScExit = {
  SUCCESS: 0,
  SERVICE_DOES_NOT_EXIST: 1060,
  CANNOT_ACCEPT_CTRL: 1061,
  SERVICE_NOT_ACTIVE: 1062,
  SERVICE_MARKED_FOR_DELETE: 1072,
  SERVICE_EXISTS: 1073,
} as const;

/** `dwCurrentState` values as `sc query` prints them. */
export const ScState = { STOPPED: 1, START_PENDING: 2, STOP_PENDING: 3, RUNNING: 4 } as const;

/** What one sc.exe call returned. */
export interface ScResult {
  /** The exit code: 0, or the Win32 error of the failed call. */
  code: number;
  /** Standard output, decoded. */
  stdout: string;
  /** Standard error, decoded. */
  stderr: string;
}

/** Runs sc.exe with these arguments (a seam for tests). */
export type ScRunner = (args: string[]) => Promise<ScResult>;

/** An sc.exe call that failed. */
export class ScError extends Error {
  /** The sc.exe exit code (a Win32 error). */
  readonly code: number;
  /** The arguments sc.exe was called with. */
  readonly args: readonly string[];

  /** Describes the failed call `sc <args>` that exited with `code`. */
  constructor(args: readonly string[], result: ScResult, hint = "") {
    const output = (result.stdout + result.stderr).trim().replace(/\s+/g, " ");
    super(`sc ${args.join(" ")} failed with ${result.code}${hint}${output ? `: ${output}` : ""}`);
    this.name = "ScError";
    this.code = result.code;
    this.args = args;
  }
}

/** Runs the system's sc.exe. */
export const runSc: ScRunner = async (args) => {
  const out = await new Deno.Command("sc.exe", {
    args,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  })
    .output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
};

/**
 * Quotes one argument so that CommandLineToArgvW (and the C runtime) read it back unchanged.
 */
export function quoteWindowsArg(arg: string): string {
  if (arg !== "" && !/[\s"]/.test(arg)) return arg;
  let out = '"';
  let backslashes = 0;
  for (const ch of arg) {
    if (ch === "\\") {
      backslashes++;
      continue;
    }
    if (ch === '"') {
      out += "\\".repeat(backslashes * 2 + 1) + '"';
    } else {
      out += "\\".repeat(backslashes) + ch;
    }
    backslashes = 0;
  }
  return out + "\\".repeat(backslashes * 2) + '"';
}

/** Whether `execPath` is a compiled program rather than the deno runtime itself. */
export function isCompiledExecutable(execPath: string): boolean {
  const name = basename(execPath.replaceAll("\\", "/")).toLowerCase();
  return name !== "deno" && name !== "deno.exe";
}

/** The nearest deno.json or deno.jsonc in `dir` or above it, if any. */
export function findDenoConfig(dir: string): string | undefined {
  for (let d = dir;;) {
    for (const f of ["deno.json", "deno.jsonc"]) {
      const p = join(d, f);
      try {
        if (Deno.statSync(p).isFile) return p;
      } catch {
        // not here; look further up
      }
    }
    const up = dirname(d);
    if (up === d) return undefined;
    d = up;
  }
}

/** How the service command line is formed. */
export interface CommandLineOptions {
  /** The agent's flags, passed on unchanged. */
  agentArgs?: readonly string[];
  /** The program to run; default `Deno.execPath()`. */
  execPath?: string;
  /** The module to run when `execPath` is deno itself: a path or file URL; default `Deno.mainModule`. */
  mainModule?: string;
  /**
   * The deno.json to run with (a service starts in C:\Windows\System32, where none is
   * found): default the nearest one above the main module; null for none.
   */
  config?: string | null;
}

/** The service's command line (sc's `binPath=`), each argument quoted for Windows. */
export function serviceCommandLine(options: CommandLineOptions = {}): string {
  const execPath = options.execPath ?? Deno.execPath();
  const argv = [execPath];
  if (!isCompiledExecutable(execPath)) {
    const main = options.mainModule ?? Deno.mainModule;
    const mainPath = main.startsWith("file:") ? fileURLToPath(main) : main;
    const config = options.config === undefined
      ? findDenoConfig(dirname(mainPath))
      : options.config;
    argv.push("run", "-A", ...(config ? ["--config", config] : []), mainPath);
  }
  argv.push(...(options.agentArgs ?? []), WINDOWS_SERVICE_FLAG);
  return argv.map(quoteWindowsArg).join(" ");
}

/** What {@link installService} needs. */
export interface InstallServiceOptions extends CommandLineOptions {
  /** Service name; default `hnsproxy`. */
  name?: string;
  /** Display name in services.msc. */
  displayName?: string;
  /** Description in services.msc. */
  description?: string;
  /** `auto` (default) starts with Windows; `demand` only when asked. */
  startType?: "auto" | "demand";
  /** Restart actions for `sc failure`; default restart after 5 s, 5 s, then 30 s. */
  failureActions?: string;
  /** Seconds without failure after which the failure count resets; default 86400. */
  failureResetSeconds?: number;
  /** Where progress and warnings go. */
  log?: Logger;
  /** Runs sc.exe; default {@link runSc}. */
  sc?: ScRunner;
}

/** The result of {@link installService}. */
export interface InstalledService {
  /** The service name. */
  name: string;
  /** The command line the SCM will run. */
  binPath: string;
  /** Steps that failed without failing the install (e.g. failure actions under Wine). */
  warnings: string[];
}

/**
 * Registers the service (`sc create`, `sc description`, `sc failure`, `sc failureflag`).
 * Fails with an {@link ScError} if `sc create` fails, e.g. with 1073 when it exists already.
 */
export async function installService(
  options: InstallServiceOptions = {},
): Promise<InstalledService> {
  const sc = options.sc ?? runSc;
  const log = options.log ?? nullLogger;
  const name = options.name ?? DEFAULT_SERVICE_NAME;
  const binPath = serviceCommandLine(options);
  const create = [
    "create",
    name,
    "binPath=",
    binPath,
    "start=",
    options.startType ?? "auto",
    "DisplayName=",
    options.displayName ?? "hnsproxy (Kubernetes service proxy)",
  ];
  const created = await sc(create);
  if (created.code !== ScExit.SUCCESS) {
    const hint = created.code === ScExit.SERVICE_EXISTS
      ? " (already installed: uninstall it first)"
      : "";
    throw new ScError(create, created, hint);
  }
  log.info("service created", { service: name, binPath });

  const warnings: string[] = [];
  const optional = async (args: string[], what: string) => {
    const r = await sc(args);
    if (r.code !== ScExit.SUCCESS) {
      const msg = `${what}: ${new ScError(args, r).message}`;
      warnings.push(msg);
      log.warn("service install step failed; continuing", {
        service: name,
        step: what,
        code: r.code,
      });
    }
  };
  await optional(
    [
      "description",
      name,
      options.description ??
        "Kubernetes service proxy for Windows nodes (programs HNS load balancers)",
    ],
    "description",
  );
  await optional(
    [
      "failure",
      name,
      "reset=",
      String(options.failureResetSeconds ?? 86400),
      "actions=",
      options.failureActions ?? "restart/5000/restart/5000/restart/30000",
    ],
    "failure actions",
  );
  // Also restart when the service stops itself with a non-zero exit code.
  await optional(["failureflag", name, "1"], "failure flag");
  return { name, binPath, warnings };
}

/** Parses the STATE line of `sc query` output. */
export function parseScState(output: string): number | undefined {
  const m = /STATE\s*:\s*(\d+)/.exec(output);
  return m ? Number(m[1]) : undefined;
}

/** The service's state per `sc query`, or null when no such service is installed. */
export async function queryServiceState(
  name: string,
  sc: ScRunner = runSc,
): Promise<number | null> {
  const args = ["query", name];
  const r = await sc(args);
  if (r.code === ScExit.SERVICE_DOES_NOT_EXIST) return null;
  const state = parseScState(r.stdout);
  if (r.code !== ScExit.SUCCESS || state === undefined) throw new ScError(args, r);
  return state;
}

/** What {@link uninstallService} needs. */
export interface UninstallServiceOptions {
  /** Service name; default `hnsproxy`. */
  name?: string;
  /** How long to wait for a running service to stop before deleting it anyway; default 30 s. */
  stopTimeoutMs?: number;
  /** How often to poll the state while it stops; default 250 ms. */
  pollMs?: number;
  /** Where progress and warnings go. */
  log?: Logger;
  /** Runs sc.exe; default {@link runSc}. */
  sc?: ScRunner;
}

/**
 * Stops the service if it runs (waiting for STOPPED) and deletes it. Resolves false when
 * no such service was installed.
 */
export async function uninstallService(options: UninstallServiceOptions = {}): Promise<boolean> {
  const sc = options.sc ?? runSc;
  const log = options.log ?? nullLogger;
  const name = options.name ?? DEFAULT_SERVICE_NAME;
  const pollMs = options.pollMs ?? 250;
  let state = await queryServiceState(name, sc);
  if (state === null) return false;

  if (state !== ScState.STOPPED) {
    const stop = ["stop", name];
    const r = await sc(stop);
    if (
      r.code !== ScExit.SUCCESS && r.code !== ScExit.SERVICE_NOT_ACTIVE &&
      r.code !== ScExit.CANNOT_ACCEPT_CTRL
    ) {
      throw new ScError(stop, r);
    }
    const deadline = Date.now() + (options.stopTimeoutMs ?? 30_000);
    while (state !== ScState.STOPPED && state !== null && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, pollMs));
      state = await queryServiceState(name, sc);
    }
    if (state !== ScState.STOPPED && state !== null) {
      log.warn("service did not stop in time; deleting it anyway", { service: name, state });
    }
  }

  const del = ["delete", name];
  const r = await sc(del);
  if (
    r.code !== ScExit.SUCCESS && r.code !== ScExit.SERVICE_MARKED_FOR_DELETE &&
    r.code !== ScExit.SERVICE_DOES_NOT_EXIST
  ) {
    throw new ScError(del, r);
  }
  log.info("service deleted", { service: name });
  return true;
}
