/**
 * HCN calls made from the event loop's thread with no isolate of their own:
 * every HCN function bound `nonblocking`, so that each call runs on a thread
 * of the runtime's blocking pool while the event loop turns. The operations
 * are lib/hns/ffi.ts's {@link HcnOperations}, the HNS threads' own, so the
 * marshalling, the freeing of what HNS hands over and the errors are the same
 * on both paths. A listing's answer may stay where HNS put it until it is
 * read ({@link import("./id_listing.ts").IdListing.read}).
 *
 * Rules:
 * - The libraries are the HNS threads' (lib/hns/ffi.ts loads them), bound
 *   `nonblocking`, but for `CoTaskMemFree`, which is called synchronously.
 * - A call's argument buffers are carved anew for each call and live until it
 *   returns; the strings HNS hands over are read and freed as it returns, a
 *   listing's answer when it is released (exactly once).
 * - An operation's C calls run one after the other (a compound one's Close
 *   after its Create); operations made together run at once.
 * - {@link PoolCalls.busy} counts operations in flight and answers not yet
 *   released: the libraries must not be closed before it is 0.
 *
 * @module
 */

import { ArgBuffers } from "./argbuffers.ts";
import {
  type AnyFn,
  type HandleAddress,
  type HcnLibraries,
  HcnOperations,
  type HcnSteps,
  openHcnLibraries,
  type StepRunner,
} from "./ffi.ts";
import type { ListingAnswer } from "./id_listing.ts";
import { CO_TASK_MEM_FREE } from "./names.ts";
import type { HcnKind } from "./types.ts";

/** The HCN operations, called `nonblocking` from the event loop's thread; see the module notes. */
export class PoolCalls implements StepRunner {
  readonly hasModifyLoadBalancer: boolean;
  readonly modifySource: string;
  readonly #libs: HcnLibraries;
  readonly #fns: Record<string, AnyFn | null> = {};
  readonly #free: AnyFn;
  readonly #ops: HcnOperations;
  /** Never reset: a buffer stays valid while its nonblocking call runs. */
  readonly #buffers = new ArgBuffers();
  #busy = 0;
  #onIdle: (() => void) | undefined;

  private constructor(libs: HcnLibraries) {
    this.#libs = libs;
    for (const lib of libs.libs) Object.assign(this.#fns, lib.symbols);
    this.hasModifyLoadBalancer = this.#fns["HcnModifyLoadBalancer"] != null;
    this.modifySource = libs.source;
    this.#free = this.#fns[CO_TASK_MEM_FREE]!;
    this.#ops = new HcnOperations(this);
  }

  /**
   * Load `library` (else the System32 DLLs) with every HCN function bound
   * `nonblocking`; throws lib/hns/ffi.ts's one-line `HnsLibraryError` when a
   * library cannot be used.
   */
  static open(library?: string): PoolCalls {
    return new PoolCalls(openHcnLibraries({ library }, true));
  }

  args(): ArgBuffers {
    return this.#buffers;
  }

  free(ptr: Deno.PointerObject): void {
    this.#free(ptr);
  }

  /** Operations in flight and answers not yet released. */
  get busy(): number {
    return this.#busy;
  }

  /** Call `fn` each time {@link busy} drops to 0. */
  set onIdle(fn: (() => void) | undefined) {
    this.#onIdle = fn;
  }

  /** Make the steps' C calls one after the other, each on the blocking pool. */
  async #run<T>(steps: HcnSteps<T>): Promise<T> {
    this.#busy++;
    try {
      let step = steps.next();
      while (!step.done) {
        const [name, args] = step.value;
        let hr: unknown;
        try {
          const f = this.#fns[name];
          if (!f) throw new Error(`${name} is not bound`);
          hr = await f(...args);
        } catch (err) {
          step = steps.throw(err);
          continue;
        }
        step = steps.next(hr);
      }
      return step.value;
    } finally {
      this.#done();
    }
  }

  /**
   * `HcnEnumerateX(query)`: the answer where HNS put it, to release once
   * read. Failures are {@link import("./errors.ts").HnsError}s as the HNS
   * threads'.
   */
  async answer(kind: HcnKind, query: string): Promise<ListingAnswer> {
    // The answer's hold, taken before the call's own ends.
    this.#busy++;
    let answer: Deno.PointerObject | null;
    try {
      answer = await this.#run(this.#ops.enumerateAnswer(kind, query));
    } catch (err) {
      this.#done();
      throw err;
    }
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      if (answer) this.#free(answer);
      this.#done();
    };
    return { answer, release };
  }

  /** `HcnEnumerateX(query)` as text. */
  enumerate(kind: HcnKind, query: string): Promise<string> {
    return this.#run(this.#ops.enumerate(kind, query));
  }

  /** `HcnOpenX(id)`. */
  open(kind: HcnKind, id: string): Promise<HandleAddress> {
    return this.#run(this.#ops.open(kind, id));
  }

  /** `HcnCreateX(id, settings)`; endpoints take the network handle. */
  create(kind: HcnKind, id: string, settings: string, network?: unknown): Promise<HandleAddress> {
    return this.#run(this.#ops.create(kind, id, settings, network));
  }

  /** `HcnModifyX(handle, settings)`. */
  modify(kind: HcnKind, handle: unknown, settings: string): Promise<void> {
    return this.#run(this.#ops.modify(kind, handle, settings));
  }

  /** `HcnQueryXProperties(handle, query)`: the object's JSON. */
  query(kind: HcnKind, handle: unknown, query: string): Promise<string> {
    return this.#run(this.#ops.query(kind, handle, query));
  }

  /** `HcnDeleteX(id)`. */
  delete(kind: HcnKind, id: string): Promise<void> {
    return this.#run(this.#ops.delete(kind, id));
  }

  /** `HcnCloseX(handle)`. */
  close(kind: HcnKind, handle: unknown): Promise<void> {
    return this.#run(this.#ops.close(kind, handle));
  }

  /** `HcnCreateX` then `HcnCloseX` of its handle. */
  createAndClose(kind: HcnKind, id: string, settings: string, network?: unknown): Promise<void> {
    return this.#run(this.#ops.createAndClose(kind, id, settings, network));
  }

  /** `HcnOpenX`, `HcnQueryXProperties`, `HcnCloseX`. */
  openQueryClose(kind: HcnKind, id: string, query: string): Promise<string> {
    return this.#run(this.#ops.openQueryClose(kind, id, query));
  }

  /** `HNSCall(method, path, request)`: the response JSON. */
  hnsCall(method: string, path: string, request: string): Promise<string> {
    return this.#run(this.#ops.hnsCall(method, path, request));
  }

  /** Close the libraries; only once {@link busy} is 0. */
  unload(): void {
    for (const lib of this.#libs.libs) lib.close();
  }

  #done(): void {
    if (--this.#busy === 0) this.#onIdle?.();
  }
}
