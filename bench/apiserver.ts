/**
 * The harness side of the benchmark's API server process
 * (bench/apiserver_proc.ts): spawn it, seed the generated cluster, and make
 * endpoint changes, each answered once the object is written and its watch
 * events are sent.
 *
 * @module
 */

import { JsonLinesChild } from "./jsonl.ts";
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
  readonly #child: JsonLinesChild;

  private constructor(child: JsonLinesChild) {
    this.#child = child;
  }

  /** Start the process (not yet seeded). */
  static start(): ApiServerProcess {
    return new ApiServerProcess(
      new JsonLinesChild("API server process", [
        "-A",
        "--v8-flags=--expose-gc",
        new URL("./apiserver_proc.ts", import.meta.url).pathname,
      ]),
    );
  }

  #call(cmd: string, args: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    return this.#child.call(cmd, args);
  }

  /** The process's ID (for its CPU time). */
  get pid(): number {
    return this.#child.pid;
  }

  /** Create the node, the services and their slices. */
  async seed(spec: ScenarioSpec): Promise<SeedResult> {
    const msg = await this.#call("seed", { spec });
    return { url: msg.url as string, seedMs: msg.seedMs as number, objects: msg.objects as number };
  }

  /** Add one new remote endpoint to service `i`; resolves with its IP once written. */
  async addEndpoint(i: number): Promise<string> {
    return (await this.addEndpointTimed(i)).ip;
  }

  /**
   * {@link addEndpoint}, with when the server process took the command and
   * when it had written the slice and queued its watch events (the bench's
   * clock, bench/procstat.ts `now`).
   */
  async addEndpointTimed(i: number): Promise<{ ip: string; takenAt: number; writtenAt: number }> {
    const m = await this.#call("add", { service: i });
    return { ip: m.ip as string, takenAt: m.takenAt as number, writtenAt: m.writtenAt as number };
  }

  /** Remove the oldest added endpoint of service `i`; resolves with its IP once written. */
  async removeEndpoint(i: number): Promise<string> {
    return (await this.#call("remove", { service: i })).ip as string;
  }

  /**
   * Collect the process's garbage (a full collection), so that a collection
   * of what earlier steps left does not run on the cores while an agent is
   * measured: a real API server's collections run on its own machine. Resolves with
   * the collection's time, ms.
   */
  async collectGarbage(): Promise<number> {
    return (await this.#call("collect")).ms as number;
  }

  /** The process's RSS and request counts. */
  async stats(): Promise<{ rss: number; watches: number; lists: number; watchRequests: number }> {
    const m = await this.#call("stats");
    return {
      rss: m.rss as number,
      watches: m.watches as number,
      lists: m.lists as number,
      watchRequests: m.watchRequests as number,
    };
  }

  /** Stop the server and wait for the process to exit. */
  stop(): Promise<void> {
    return this.#child.stop();
  }
}
