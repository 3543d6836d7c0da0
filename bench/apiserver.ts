/**
 * The harness side of the benchmark's API server process
 * (bench/apiserver_proc.ts): spawn it, seed the generated cluster, and make
 * endpoint changes, each answered once the object is written and its watch
 * events are sent.
 *
 * @module
 */

import type { ScenarioSpec } from "./scenario.ts";

/** The answer to `seed`. */
export interface SeedResult {
  /** Base URL of the fake API server. */
  url: string;
  /** Time the process spent creating the objects, ms. */
  seedMs: number;
  /** Objects created (node, services, slices). */
  objects: number;
}

/** A running API server process. */
export class ApiServerProcess {
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #pending = new Map<number, (v: Record<string, unknown>) => void>();
  readonly #encoder = new TextEncoder();
  #nextId = 1;
  #reading: Promise<void>;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#reading = this.#read();
  }

  /** Start the process (not yet seeded). */
  static start(): ApiServerProcess {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("./apiserver_proc.ts", import.meta.url).pathname],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    return new ApiServerProcess(child);
  }

  async #read(): Promise<void> {
    let buffer = "";
    for await (const chunk of this.#child.stdout.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        const msg = JSON.parse(line) as Record<string, unknown>;
        const resolve = this.#pending.get(msg.id as number);
        this.#pending.delete(msg.id as number);
        resolve?.(msg);
      }
    }
  }

  async #call(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = this.#nextId++;
    const answer = new Promise<Record<string, unknown>>((resolve) =>
      this.#pending.set(id, resolve)
    );
    await this.#writer.write(this.#encoder.encode(JSON.stringify({ id, ...cmd }) + "\n"));
    const msg = await answer;
    if (!msg.ok) throw new Error(`API server process: ${cmd.cmd}: ${msg.error}`);
    return msg;
  }

  /** Create the node, the services and their slices. */
  async seed(spec: ScenarioSpec): Promise<SeedResult> {
    const msg = await this.#call({ cmd: "seed", spec });
    return { url: msg.url as string, seedMs: msg.seedMs as number, objects: msg.objects as number };
  }

  /** Add one new remote endpoint to service `i`; resolves with its IP once written. */
  async addEndpoint(i: number): Promise<string> {
    return (await this.#call({ cmd: "add", service: i })).ip as string;
  }

  /** Remove the oldest added endpoint of service `i`; resolves with its IP once written. */
  async removeEndpoint(i: number): Promise<string> {
    return (await this.#call({ cmd: "remove", service: i })).ip as string;
  }

  /** The process's RSS and request counts. */
  async stats(): Promise<{ rss: number; watches: number; lists: number; watchRequests: number }> {
    const m = await this.#call({ cmd: "stats" });
    return {
      rss: m.rss as number,
      watches: m.watches as number,
      lists: m.lists as number,
      watchRequests: m.watchRequests as number,
    };
  }

  /** Stop the server and wait for the process to exit. */
  async stop(): Promise<void> {
    try {
      await this.#call({ cmd: "stop" });
      await this.#writer.close();
    } catch {
      // Already gone: the status below tells.
    }
    await this.#reading.catch(() => {});
    await this.#child.status;
  }
}
