/**
 * The HCN C API over `Deno.dlopen`: {@link HcnApi} backed by computenetwork.dll,
 * vmcompute.dll and ole32.dll on Windows, or by one library exporting all of
 * their functions (the project's HNS emulator, `--hns-library PATH`).
 *
 * Marshalling rules kept here and nowhere else:
 * - strings go in as NUL-terminated UTF-16 buffers and come out as `PWSTR`s
 *   that are copied into JS and then freed with `CoTaskMemFree`, exactly once,
 *   result and error record alike, on every path;
 * - IDs go in as 16-byte GUID structs (`REFGUID`); the empty ID is the zero GUID;
 * - out-parameters are 8-byte buffers read back as pointers;
 * - a failed HRESULT or a non-empty error record is an {@link HnsError}.
 *
 * Each operation is written once, as the C calls it makes
 * ({@link HcnOperations}); two runners make them: {@link HcnCalls}, bound
 * blocking, on the HNS threads of {@link import("./hcn_threads.ts")}, and
 * lib/hns/pool_calls.ts, bound `nonblocking`, from the event loop's thread
 * (each call then runs on the runtime's blocking pool). An HCN call can take
 * milliseconds, so the event loop's thread never waits for one.
 *
 * @module
 */

import { HnsError } from "./errors.ts";
import { ArgBuffers } from "./argbuffers.ts";
import {
  CO_TASK_MEM_FREE,
  HCN_KINDS,
  HCN_OPERATIONS,
  hcnFunctionName,
  type HcnOperation,
  HNS_CALL,
} from "./names.ts";
import { ThreadedHcnApi } from "./hcn_threads.ts";
import { PoolCalls } from "./pool_calls.ts";
import type { HcnApi, HcnKind } from "./types.ts";
import { readWide } from "./wstr.ts";
import { errorMessage } from "../errors.ts";

/** E_FAIL: what a success HRESULT with an error record and no usable ErrorCode becomes. */
export const E_FAIL = 0x80004005;

/** A library that could not be loaded or lacks a required symbol; the message is one line. */
export class HnsLibraryError extends Error {
  /** The library path that failed. */
  readonly library: string;
  /** The missing symbols, when that was the cause. */
  readonly missingSymbols: string[];

  /** An error about `library`; `missingSymbols` names what it does not export. */
  constructor(message: string, library: string, missingSymbols: string[] = []) {
    super(message);
    this.name = "HnsLibraryError";
    this.library = library;
    this.missingSymbols = missingSymbols;
  }
}

/** Where the FFI binding loads its functions from. */
export interface FfiHcnOptions {
  /**
   * One library exporting every HCN function, `HNSCall` and `CoTaskMemFree`.
   * Without it the Windows System32 DLLs are used (and other systems fail).
   */
  library?: string;
  /** HNS threads: how many calls run at once (default {@link import("./hcn_threads.ts").DEFAULT_HNS_THREADS}). */
  threads?: number;
}

type Params = Deno.NativeType[];

/**
 * A function bound blocking (the HNS threads call it) or `nonblocking` (the
 * event loop's thread calls it, and it runs on the runtime's blocking pool).
 */
function fn(parameters: Params, optional = false, nonblocking = false): Deno.ForeignFunction {
  return { parameters, result: "i32", optional, nonblocking };
}

/** C parameter lists per operation (the endpoint create takes the network handle first). */
function hcnParams(op: HcnOperation, kind: HcnKind): Params {
  switch (op) {
    case "enumerate": // (PCWSTR query, PWSTR* ids, PWSTR* error)
      return ["buffer", "buffer", "buffer"];
    case "create": // ([HCN_NETWORK network,] REFGUID id, PCWSTR settings, HCN_X* out, PWSTR* error)
      return kind === "Endpoint"
        ? ["pointer", "buffer", "buffer", "buffer", "buffer"]
        : ["buffer", "buffer", "buffer", "buffer"];
    case "open": // (REFGUID id, HCN_X* out, PWSTR* error)
      return ["buffer", "buffer", "buffer"];
    case "modify": // (HCN_X x, PCWSTR settings, PWSTR* error)
      return ["pointer", "buffer", "buffer"];
    case "query": // (HCN_X x, PCWSTR query, PWSTR* properties, PWSTR* error)
      return ["pointer", "buffer", "buffer", "buffer"];
    case "delete": // (REFGUID id, PWSTR* error)
      return ["buffer", "buffer"];
    case "close": // (HCN_X x)
      return ["pointer"];
  }
}

/**
 * The computenetwork.dll symbol table; HcnModifyLoadBalancer is optional
 * (HNS 15.5–15.x, 16.0+). Bound blocking unless `nonblocking`.
 */
export function hcnSymbols(nonblocking = false): Record<string, Deno.ForeignFunction> {
  const out: Record<string, Deno.ForeignFunction> = {};
  for (const kind of HCN_KINDS) {
    for (const op of HCN_OPERATIONS) {
      const name = hcnFunctionName(op, kind);
      out[name] = fn(hcnParams(op, kind), name === "HcnModifyLoadBalancer", nonblocking);
    }
  }
  return out;
}

/** The vmcompute.dll symbol table: `HNSCall(PCWSTR method, PCWSTR path, PCWSTR request, PWSTR* response)`. */
export function hnsCallSymbols(nonblocking = false): Record<string, Deno.ForeignFunction> {
  return { [HNS_CALL]: fn(["buffer", "buffer", "buffer", "buffer"], false, nonblocking) };
}

/** The ole32.dll symbol table: `void CoTaskMemFree(void*)`. */
export function coTaskMemSymbols(): Record<string, Deno.ForeignFunction> {
  return { [CO_TASK_MEM_FREE]: { parameters: ["pointer"], result: "void" } };
}

/** A bound C function. */
export type AnyFn = (...args: unknown[]) => unknown;
/** A loaded library and its bound functions. */
export type Library = { close(): void; symbols: Record<string, AnyFn | null> };

/** The last, most specific part of Deno's "Could not open library: ..." message, on one line. */
function loadCause(err: unknown, path: string): string {
  let msg = errorMessage(err);
  const marker = "Could not open library: ";
  const at = msg.lastIndexOf(marker);
  if (at >= 0) msg = msg.slice(at + marker.length);
  if (msg.startsWith(path + ": ")) msg = msg.slice(path.length + 2);
  return msg.replace(/\s+/g, " ").trim();
}

/**
 * dlopen `path` and bind `symbols`; fail with one line naming the library and
 * the missing required symbols, if any. An optional symbol that is missing is
 * left out (its entry in `symbols` of the result is absent).
 */
function openLibrary(path: string, symbols: Record<string, Deno.ForeignFunction>): Library {
  // Probe which symbols exist with plain blocking lookups first: Deno wraps a
  // missing optional *nonblocking* symbol in a function instead of null.
  const probeDefs: Record<string, Deno.ForeignFunction> = {};
  for (const name of Object.keys(symbols)) {
    probeDefs[name] = { parameters: [], result: "void", optional: true };
  }
  let probe: Library;
  try {
    probe = Deno.dlopen(path, probeDefs) as unknown as Library;
  } catch (err) {
    throw new HnsLibraryError(`cannot load HNS library ${path}: ${loadCause(err, path)}`, path);
  }
  try {
    const present = Object.keys(symbols).filter((name) => probe.symbols[name] !== null);
    const missing = Object.entries(symbols)
      .filter(([name, def]) => !def.optional && !present.includes(name))
      .map(([name]) => name);
    if (missing.length > 0) {
      const named = missing.length > 3
        ? `${missing.slice(0, 3).join(", ")} and ${missing.length - 3} more HNS functions`
        : missing.join(", ");
      throw new HnsLibraryError(`HNS library ${path} does not export ${named}`, path, missing);
    }
    const defs = Object.fromEntries(present.map((name) => [name, symbols[name]]));
    try {
      return Deno.dlopen(path, defs) as unknown as Library;
    } catch (err) {
      throw new HnsLibraryError(`cannot load HNS library ${path}: ${loadCause(err, path)}`, path);
    }
  } finally {
    probe.close();
  }
}

/** `${SystemRoot}\System32\<dll>`, the only place hnsproxy loads Windows DLLs from. */
export function system32Path(dll: string): string {
  const root = Deno.env.get("SystemRoot") ?? Deno.env.get("windir") ?? "C:\\Windows";
  return `${root.replace(/[\\/]+$/, "")}\\System32\\${dll}`;
}

/** The message an error record carries: its `Error` field, else the raw text on one line. */
function recordMessage(record: string): { message: string; code?: number } {
  try {
    const parsed = JSON.parse(record);
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) {
      const message = typeof parsed.Error === "string" && parsed.Error !== ""
        ? parsed.Error
        : record;
      let code: number | undefined;
      if (typeof parsed.ErrorCode === "number" && Number.isInteger(parsed.ErrorCode)) {
        code = parsed.ErrorCode >>> 0;
      } else if (
        typeof parsed.ErrorCode === "string" && /^(0x)?[0-9a-f]{1,8}$/i.test(parsed.ErrorCode)
      ) {
        code = parseInt(parsed.ErrorCode.replace(/^0x/i, ""), 16) >>> 0;
      }
      return { message: message.replace(/\s+/g, " ").trim(), code };
    }
  } catch {
    // Not JSON: the raw text is the message.
  }
  return { message: record.replace(/\s+/g, " ").trim() };
}

/**
 * The error for an HCN call's outcome, or undefined on success. A non-empty
 * error record is a failure even under a success HRESULT; then the record's
 * failure `ErrorCode` is used, else E_FAIL.
 */
export function hcnFailure(
  operation: string,
  hr: number,
  errorRecord: string | undefined,
  object?: string,
): HnsError | undefined {
  const failed = (hr | 0) < 0;
  if (!failed && !errorRecord) return undefined;
  const parsed = errorRecord ? recordMessage(errorRecord) : undefined;
  let hresult = hr >>> 0;
  if (!failed) {
    hresult = parsed?.code !== undefined && (parsed.code | 0) < 0 ? parsed.code : E_FAIL;
  }
  return new HnsError({
    hresult,
    operation,
    object,
    hnsMessage: parsed?.message || undefined,
    errorRecord: errorRecord || undefined,
  });
}

/** The E_INVALIDARG error for an ID that is not a GUID (raised before any C call). */
export function invalidGuidError(operation: string, id: string): HnsError {
  return new HnsError({
    hresult: 0x80070057,
    operation,
    object: id,
    hnsMessage: `"${id}" is not a GUID`,
  });
}

/** An ID as a GUID struct, or an E_INVALIDARG {@link HnsError} naming the C function. */
function guidArg(buffers: ArgBuffers, operation: string, id: string): Uint8Array<ArrayBuffer> {
  try {
    // Parsed once, into the argument's bytes: a text that is no GUID throws.
    return buffers.guid(id);
  } catch {
    throw invalidGuidError(operation, id);
  }
}

/**
 * The error for a failed `HNSCall`: its HRESULT, and the message of the
 * response document (`{"Success":false,"Error":...}`) when there is one.
 */
export function hnsCallFailure(hr: number, response: string, method: string, path: string) {
  const parsed = response ? recordMessage(response) : undefined;
  return new HnsError({
    hresult: hr,
    operation: HNS_CALL,
    object: `${method} ${path}`,
    hnsMessage: parsed?.message || undefined,
    errorRecord: response || undefined,
  });
}

/** A handle as the worker threads carry it: the pointer's address (0n is NULL). */
export type HandleAddress = bigint;

/** One C call of an operation: the bound function's name and its arguments. */
export type CCall = readonly [name: string, args: unknown[]];

/**
 * An HCN operation as the C calls it makes: each call is yielded, its result
 * (the HRESULT) sent back, and the operation returns its value or throws its
 * {@link HnsError}. A runner makes the calls: {@link HcnCalls} synchronously
 * (the HNS threads), lib/hns/pool_calls.ts `nonblocking` from the event
 * loop's thread; a call that throws is thrown into the steps.
 */
export type HcnSteps<T> = Generator<CCall, T, unknown>;

/** What the steps of an operation take from their runner. */
export interface StepRunner {
  /**
   * The argument buffers for the next C call: valid until that call has
   * returned (a synchronous runner hands out the same regions again).
   */
  args(): ArgBuffers;
  /** `CoTaskMemFree`: free a string HNS handed over (called synchronously). */
  free(ptr: Deno.PointerObject): void;
  /** Whether `HcnModifyLoadBalancer` is bound. */
  readonly hasModifyLoadBalancer: boolean;
  /** The library `HcnModifyLoadBalancer` would come from, for the E_NOTIMPL message. */
  readonly modifySource: string;
}

/**
 * The HCN operations as {@link HcnSteps}: every marshalling rule of the
 * module notes, the same whichever runner makes the calls.
 */
export class HcnOperations {
  readonly #run: StepRunner;

  constructor(runner: StepRunner) {
    this.#run = runner;
  }

  /** Copy out and free the string an out-parameter points to; undefined for NULL. */
  #take(out: BigUint64Array): string | undefined {
    const address = out[0];
    if (address === 0n) return undefined; // the usual error record: none
    const ptr = Deno.UnsafePointer.create(address);
    if (ptr === null) return undefined;
    out[0] = 0n;
    try {
      return readWide(ptr);
    } finally {
      this.#run.free(ptr);
    }
  }

  /**
   * Call an HCN function whose last parameter is the error record and, when
   * `result` is given, whose result is a string out-parameter; free both.
   */
  *#callString(
    buffers: ArgBuffers,
    name: string,
    object: string | undefined,
    args: unknown[],
    result?: BigUint64Array,
  ): HcnSteps<string | undefined> {
    const errOut = buffers.pointerOut();
    if (result) args.push(result);
    args.push(errOut);
    const hr = (yield [name, args]) as number;
    let record: string | undefined;
    let text: string | undefined;
    try {
      text = result ? this.#take(result) : undefined;
    } finally {
      record = this.#take(errOut);
    }
    const failure = hcnFailure(name, hr, record, object);
    if (failure) throw failure;
    return text;
  }

  /** Call an HCN function returning a handle through an out-parameter before the error record. */
  *#callHandle(
    buffers: ArgBuffers,
    kind: HcnKind,
    name: string,
    object: string | undefined,
    args: unknown[],
  ): HcnSteps<HandleAddress> {
    const handleOut = buffers.pointerOut();
    const errOut = buffers.pointerOut();
    args.push(handleOut, errOut);
    const hr = (yield [name, args]) as number;
    const handle = handleOut[0];
    const record = this.#take(errOut);
    const failure = hcnFailure(name, hr, record, object);
    if (failure) {
      // A handle handed out alongside an error is still ours to close; the call's error wins.
      if (handle !== 0n) {
        try {
          yield* this.close(kind, handle);
        } catch {
          // The call's error is the one to report.
        }
      }
      throw failure;
    }
    if (handle === 0n) {
      throw new HnsError({
        hresult: E_FAIL,
        operation: name,
        object,
        hnsMessage: "no handle returned",
      });
    }
    return handle;
  }

  /** `HcnEnumerateX(query)`: the JSON array of IDs as text. */
  *enumerate(kind: HcnKind, query: string): HcnSteps<string> {
    const buffers = this.#run.args();
    const out = buffers.pointerOut();
    const name = hcnFunctionName("enumerate", kind);
    return (yield* this.#callString(buffers, name, undefined, [buffers.wide(query)], out)) ?? "";
  }

  /**
   * `HcnEnumerateX(query)`: the answer where HNS put it (null for none), which
   * the caller frees; the error record is read and freed here.
   */
  *enumerateAnswer(kind: HcnKind, query: string): HcnSteps<Deno.PointerObject | null> {
    const buffers = this.#run.args();
    const out = buffers.pointerOut();
    const errOut = buffers.pointerOut();
    const name = hcnFunctionName("enumerate", kind);
    const hr = (yield [name, [buffers.wide(query), out, errOut]]) as number;
    const answer = out[0] === 0n ? null : Deno.UnsafePointer.create(out[0]);
    let failure: HnsError | undefined;
    try {
      failure = hcnFailure(name, hr, this.#take(errOut));
    } finally {
      if (failure && answer) this.#run.free(answer);
    }
    if (failure) throw failure;
    return answer;
  }

  /** `HcnOpenX(id)`. */
  *open(kind: HcnKind, id: string): HcnSteps<HandleAddress> {
    const name = hcnFunctionName("open", kind);
    const buffers = this.#run.args();
    return yield* this.#callHandle(buffers, kind, name, id, [guidArg(buffers, name, id)]);
  }

  /** `HcnCreateX(id, settings)`; endpoints take the network handle. */
  *create(kind: HcnKind, id: string, settings: string, network?: unknown): HcnSteps<HandleAddress> {
    const name = hcnFunctionName("create", kind);
    const buffers = this.#run.args();
    const guid = guidArg(buffers, name, id);
    const args: unknown[] = kind === "Endpoint"
      ? [asPointer(network), guid, buffers.wide(settings)]
      : [guid, buffers.wide(settings)];
    return yield* this.#callHandle(buffers, kind, name, id || undefined, args);
  }

  /** `HcnModifyX(handle, settings)`; E_NOTIMPL when the library lacks the LB modify. */
  *modify(kind: HcnKind, handle: unknown, settings: string): HcnSteps<void> {
    const name = hcnFunctionName("modify", kind);
    if (kind === "LoadBalancer" && !this.#run.hasModifyLoadBalancer) {
      throw new HnsError({
        hresult: 0x80004001,
        operation: name,
        hnsMessage: `${this.#run.modifySource} does not export ${name}`,
      });
    }
    const buffers = this.#run.args();
    yield* this.#callString(buffers, name, undefined, [asPointer(handle), buffers.wide(settings)]);
  }

  /** `HcnQueryXProperties(handle, query)`: the object's JSON. */
  *query(kind: HcnKind, handle: unknown, query: string): HcnSteps<string> {
    const buffers = this.#run.args();
    const out = buffers.pointerOut();
    const name = hcnFunctionName("query", kind);
    const args = [asPointer(handle), buffers.wide(query)];
    return (yield* this.#callString(buffers, name, undefined, args, out)) ?? "";
  }

  /** `HcnDeleteX(id)`. */
  *delete(kind: HcnKind, id: string): HcnSteps<void> {
    const name = hcnFunctionName("delete", kind);
    const buffers = this.#run.args();
    yield* this.#callString(buffers, name, id, [guidArg(buffers, name, id)]);
  }

  /** `HcnCloseX(handle)`. */
  *close(kind: HcnKind, handle: unknown): HcnSteps<void> {
    const name = hcnFunctionName("close", kind);
    const hr = (yield [name, [asPointer(handle)]]) as number;
    const failure = hcnFailure(name, hr, undefined);
    if (failure) throw failure;
  }

  /** `HcnCreateX` then `HcnCloseX` of its handle (see {@link HcnApi.createAndClose}). */
  *createAndClose(kind: HcnKind, id: string, settings: string, network?: unknown): HcnSteps<void> {
    yield* this.close(kind, yield* this.create(kind, id, settings, network));
  }

  /** `HcnOpenX`, `HcnQueryXProperties`, `HcnCloseX` (see {@link HcnApi.openQueryClose}). */
  *openQueryClose(kind: HcnKind, id: string, query: string): HcnSteps<string> {
    const handle = yield* this.open(kind, id);
    let text: string;
    try {
      text = yield* this.query(kind, handle, query);
    } catch (err) {
      try {
        yield* this.close(kind, handle);
      } catch {
        // The query's error is the one to report.
      }
      throw err;
    }
    yield* this.close(kind, handle);
    return text;
  }

  /** `HNSCall(method, path, request)`: the response JSON. */
  *hnsCall(method: string, path: string, request: string): HcnSteps<string> {
    const buffers = this.#run.args();
    const args = [buffers.wide(method), buffers.wide(path), buffers.wide(request)];
    const out = buffers.pointerOut();
    const hr = (yield [HNS_CALL, [...args, out]]) as number;
    const response = this.#take(out) ?? "";
    if ((hr | 0) < 0) throw hnsCallFailure(hr, response, method, path);
    return response;
  }
}

/**
 * `f(...args)` with the arguments spelled out: a call with a fixed number of
 * arguments takes V8's fast path into the bound C function, a spread call
 * the generic one (several microseconds per call).
 */
function callFixed(f: AnyFn, args: unknown[]): unknown {
  switch (args.length) {
    case 1:
      return f(args[0]);
    case 2:
      return f(args[0], args[1]);
    case 3:
      return f(args[0], args[1], args[2]);
    case 4:
      return f(args[0], args[1], args[2], args[3]);
    case 5:
      return f(args[0], args[1], args[2], args[3], args[4]);
    default:
      return f(...args);
  }
}

/**
 * The HCN C API with its marshalling ({@link HcnOperations}), called
 * synchronously: what each HNS thread runs (see
 * {@link import("./hcn_threads.ts")}). Handles are pointer addresses;
 * anything that is not a bigint is passed as NULL (HNS then says E_HANDLE).
 * Failures throw {@link HnsError}.
 */
export class HcnCalls implements StepRunner {
  readonly hasModifyLoadBalancer: boolean;
  readonly modifySource: string;
  readonly #libs: Library[];
  readonly #fns: Record<string, AnyFn | null> = {};
  readonly #ops: HcnOperations;
  /**
   * Where the GUIDs, strings and out-parameters passed to C are carved from;
   * {@link HcnCalls.args} hands them out again for each call, as no buffer
   * outlives the synchronous call it was made for.
   */
  readonly #buffers = new ArgBuffers();
  readonly #free: AnyFn;
  #disposed = false;

  constructor(libs: Library[], modifySource: string) {
    this.#libs = libs;
    for (const lib of libs) Object.assign(this.#fns, lib.symbols);
    this.hasModifyLoadBalancer = this.#fns["HcnModifyLoadBalancer"] != null;
    this.modifySource = modifySource;
    this.#free = this.#fns[CO_TASK_MEM_FREE]!;
    this.#ops = new HcnOperations(this);
  }

  /** The argument buffers for a new call: none of an earlier call is in use any more. */
  args(): ArgBuffers {
    this.#buffers.reset();
    return this.#buffers;
  }

  free(ptr: Deno.PointerObject): void {
    this.#free(ptr);
  }

  /** Make the steps' C calls, one after the other, on this thread. */
  #run<T>(steps: HcnSteps<T>): T {
    let step = steps.next();
    while (!step.done) {
      const [name, args] = step.value;
      let hr: unknown;
      try {
        hr = callFixed(this.#fn(name), args);
      } catch (err) {
        step = steps.throw(err);
        continue;
      }
      step = steps.next(hr);
    }
    return step.value;
  }

  #fn(name: string): AnyFn {
    if (this.#disposed) throw new Error(`HNS library is closed; cannot call ${name}`);
    const f = this.#fns[name];
    if (!f) throw new Error(`${name} is not bound`);
    return f;
  }

  /** `HcnEnumerateX(query)`: the JSON array of IDs as text. */
  enumerate(kind: HcnKind, query: string): string {
    return this.#run(this.#ops.enumerate(kind, query));
  }

  /** `HcnOpenX(id)`. */
  open(kind: HcnKind, id: string): HandleAddress {
    return this.#run(this.#ops.open(kind, id));
  }

  /** `HcnCreateX(id, settings)`; endpoints take the network handle. */
  create(kind: HcnKind, id: string, settings: string, network?: unknown): HandleAddress {
    return this.#run(this.#ops.create(kind, id, settings, network));
  }

  /** `HcnModifyX(handle, settings)`; E_NOTIMPL when the library lacks the LB modify. */
  modify(kind: HcnKind, handle: unknown, settings: string): void {
    this.#run(this.#ops.modify(kind, handle, settings));
  }

  /** `HcnQueryXProperties(handle, query)`: the object's JSON. */
  query(kind: HcnKind, handle: unknown, query: string): string {
    return this.#run(this.#ops.query(kind, handle, query));
  }

  /** `HcnDeleteX(id)`. */
  delete(kind: HcnKind, id: string): void {
    this.#run(this.#ops.delete(kind, id));
  }

  /** `HcnCloseX(handle)`. */
  close(kind: HcnKind, handle: unknown): void {
    this.#run(this.#ops.close(kind, handle));
  }

  /** `HcnCreateX` then `HcnCloseX` of its handle (see {@link HcnApi.createAndClose}). */
  createAndClose(kind: HcnKind, id: string, settings: string, network?: unknown): void {
    this.#run(this.#ops.createAndClose(kind, id, settings, network));
  }

  /** `HcnOpenX`, `HcnQueryXProperties`, `HcnCloseX` (see {@link HcnApi.openQueryClose}). */
  openQueryClose(kind: HcnKind, id: string, query: string): string {
    return this.#run(this.#ops.openQueryClose(kind, id, query));
  }

  /** `HNSCall(method, path, request)`: the response JSON. */
  hnsCall(method: string, path: string, request: string): string {
    return this.#run(this.#ops.hnsCall(method, path, request));
  }

  /** Close the libraries (no further calls). */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const lib of this.#libs) lib.close();
  }
}

/** A handle address as the pointer FFI passes; anything else is NULL. */
function asPointer(handle: unknown): Deno.PointerValue {
  return typeof handle === "bigint" ? Deno.UnsafePointer.create(handle) : null;
}

/** The libraries {@link openHcnLibraries} loaded, and where `HcnModifyLoadBalancer` comes from. */
export interface HcnLibraries {
  libs: Library[];
  /** The library that exports (or would export) the HCN functions. */
  source: string;
}

/**
 * Load the HCN functions, bound blocking or `nonblocking` (`CoTaskMemFree`
 * always blocking). With `library`, every symbol comes from that one file;
 * otherwise, on Windows, from computenetwork.dll, vmcompute.dll and
 * ole32.dll in System32. Throws {@link HnsLibraryError} (one line) when a
 * library does not load or lacks a required symbol.
 */
export function openHcnLibraries(options: FfiHcnOptions, nonblocking: boolean): HcnLibraries {
  if (options.library) {
    const lib = openLibrary(options.library, {
      ...hcnSymbols(nonblocking),
      ...hnsCallSymbols(nonblocking),
      ...coTaskMemSymbols(),
    });
    return { libs: [lib], source: options.library };
  }
  if (Deno.build.os !== "windows") {
    throw new HnsLibraryError(
      `HNS exists only on Windows; on ${Deno.build.os} pass --hns-library PATH ` +
        `(or set HNSPROXY_HNS_LIBRARY) or use --hns-backend memory`,
      "",
    );
  }
  const libs: Library[] = [];
  try {
    const computenetwork = system32Path("computenetwork.dll");
    libs.push(openLibrary(computenetwork, hcnSymbols(nonblocking)));
    libs.push(openLibrary(system32Path("vmcompute.dll"), hnsCallSymbols(nonblocking)));
    libs.push(openLibrary(system32Path("ole32.dll"), coTaskMemSymbols()));
    return { libs, source: computenetwork };
  } catch (err) {
    for (const lib of libs) lib.close();
    throw err;
  }
}

/**
 * Load the HCN functions for calling them synchronously, on the calling
 * thread (see {@link openHcnLibraries}).
 */
export function openHcnCalls(options: FfiHcnOptions = {}): HcnCalls {
  const { libs, source } = openHcnLibraries(options, false);
  return new HcnCalls(libs, source);
}

/**
 * Load the HCN API as an {@link HcnApi} whose calls run `nonblocking` on the
 * runtime's blocking pool, or on up to `threads` HNS threads for large
 * batches (see {@link import("./hcn_threads.ts")}). The libraries are loaded
 * here first, so a library that cannot be used fails now, with the one-line
 * {@link HnsLibraryError}, and stays loaded until the API is disposed.
 */
export function openFfiHcnApi(options: FfiHcnOptions = {}): HcnApi {
  const pool = PoolCalls.open(options.library);
  try {
    return new ThreadedHcnApi(options, pool);
  } catch (err) {
    pool.unload();
    throw err;
  }
}
