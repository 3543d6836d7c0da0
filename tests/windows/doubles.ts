/**
 * Test doubles for the Windows service code: the SCM side of the service protocol (behaving
 * like Wine's dispatcher, which holds a lock around controls), sc.exe over a small service
 * table, and the CommandLineToArgvW rules for checking quoted command lines.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type ScmBackend,
  type ServiceHandlers,
  ServiceState,
  type ServiceStatus,
} from "../../lib/windows/advapi32.ts";
import { type ScResult, ScState } from "../../lib/windows/install.ts";

/** Splits a command line the way CommandLineToArgvW does for arguments after the first. */
export function parseWindowsArgs(line: string): string[] {
  const args: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === " " || line[i] === "\t") i++;
    if (i >= line.length) break;
    let arg = "";
    let quoted = false;
    for (; i < line.length; i++) {
      const ch = line[i];
      if (!quoted && (ch === " " || ch === "\t")) break;
      if (ch === "\\") {
        let n = 0;
        while (line[i] === "\\") (n++, i++);
        if (line[i] === '"') {
          arg += "\\".repeat(n >> 1);
          if (n % 2 === 1) arg += '"';
          else quoted = !quoted;
        } else {
          arg += "\\".repeat(n);
          i--;
        }
      } else if (ch === '"') {
        if (quoted && line[i + 1] === '"') (arg += '"', i++);
        else quoted = !quoted;
      } else {
        arg += ch;
      }
    }
    args.push(arg);
  }
  return args;
}

/**
 * A double of the SCM: controls run while it "holds its lock", so a STOPPED reported
 * synchronously inside one is recorded as a fault (under Wine: a deadlock).
 */
export class FakeScm implements ScmBackend {
  readonly statuses: ServiceStatus[] = [];
  readonly faults: string[] = [];
  handlers?: ServiceHandlers;
  dispatcherName?: string;
  private inControl = false;
  private readonly dispatcher = Promise.withResolvers<boolean>();

  runDispatcher(name: string, handlers: ServiceHandlers): Promise<boolean> {
    this.dispatcherName = name;
    this.handlers = handlers;
    return this.dispatcher.promise;
  }

  setStatus(status: ServiceStatus): boolean {
    if (status.state === ServiceState.STOPPED) {
      this.faults.push(
        `STOPPED reported synchronously${this.inControl ? " inside a control" : ""}`,
      );
    }
    this.statuses.push({ ...status });
    return true;
  }

  async setStatusAsync(status: ServiceStatus): Promise<boolean> {
    await Promise.resolve();
    this.statuses.push({ ...status });
    if (status.state === ServiceState.STOPPED) this.dispatcher.resolve(true);
    return true;
  }

  /** The SCM starting the service (ServiceMain). */
  start(error?: Error): void {
    assert.ok(this.handlers, "dispatcher not running");
    this.handlers.serviceMain([this.dispatcherName ?? ""], error);
  }

  /** The SCM sending a control; also reports what was reported while it ran. */
  control(code: number): { result: number; reported: number[] } {
    assert.ok(this.handlers, "dispatcher not running");
    const before = this.statuses.length;
    this.inControl = true;
    try {
      const result = this.handlers.control(code, 0);
      return { result, reported: this.statuses.slice(before).map((s) => s.state) };
    } finally {
      this.inControl = false;
    }
  }

  /** The process was not started by the SCM. */
  refuse(): void {
    this.dispatcher.resolve(false);
  }

  get last(): ServiceStatus | undefined {
    return this.statuses.at(-1);
  }

  /** States in order, with repeats (progress reports) collapsed. */
  get stateSequence(): number[] {
    return this.statuses.map((s) => s.state).filter((s, i, all) => i === 0 || all[i - 1] !== s);
  }
}

/** A double of sc.exe over a table of services, with per-command overrides. */
export class FakeSc {
  readonly calls: string[][] = [];
  readonly services = new Map<string, { state: number; binPath: string }>();
  /** sc sub-commands that fail with this exit code. */
  readonly failing = new Map<string, number>();
  /** How many queries a stopping service stays in STOP_PENDING. */
  stopPendingQueries = 2;
  private pending = 0;

  readonly run = (args: string[]): Promise<ScResult> => {
    this.calls.push(args);
    const [cmd, name] = args;
    const ok = (stdout = ""): Promise<ScResult> => Promise.resolve({ code: 0, stdout, stderr: "" });
    const fail = (code: number): Promise<ScResult> =>
      Promise.resolve({ code, stdout: `[SC] ${cmd} FAILED ${code}`, stderr: "" });
    const failCode = this.failing.get(cmd);
    if (failCode !== undefined) return fail(failCode);
    const svc = this.services.get(name);
    switch (cmd) {
      case "create":
        if (svc) return fail(1073);
        this.services.set(name, {
          state: ScState.STOPPED,
          binPath: args[args.indexOf("binPath=") + 1],
        });
        return ok("[SC] CreateService SUCCESS");
      case "query":
        if (!svc) return fail(1060);
        if (svc.state === ScState.STOP_PENDING && this.pending-- <= 0) svc.state = ScState.STOPPED;
        return ok(
          `SERVICE_NAME: ${name}\n        TYPE               : 10  WIN32_OWN_PROCESS\n` +
            `        STATE              : ${svc.state}  X\n`,
        );
      case "stop":
        if (!svc) return fail(1060);
        if (svc.state !== ScState.RUNNING) return fail(1062);
        svc.state = ScState.STOP_PENDING;
        this.pending = this.stopPendingQueries;
        return ok();
      case "delete":
        if (!svc) return fail(1060);
        this.services.delete(name);
        return ok();
      default:
        return svc ? ok() : fail(1060);
    }
  };

  commands(): string[] {
    return this.calls.map((c) => c[0]);
  }
}
