/**
 * Choose and open the HNS backend: the FFI binding (default) or the in-memory
 * HNS. The FFI library comes from `--hns-library`, else env
 * `HNSPROXY_HNS_LIBRARY`, else the Windows System32 DLLs.
 *
 * @module
 */

import { openFfiHcnApi } from "./ffi.ts";
import { MemoryHcnApi, type MemoryHnsOptions } from "./memory.ts";
import type { HcnApi } from "./types.ts";

/** The environment variable naming one library that exports the whole HCN API. */
export const HNS_LIBRARY_ENV = "HNSPROXY_HNS_LIBRARY";

/** The two HNS backends. */
export type HnsBackendKind = "ffi" | "memory";

/** Options of {@link openHnsBackend}. */
export interface OpenHnsBackendOptions {
  /** `ffi` (default) or `memory`. */
  backend?: HnsBackendKind;
  /** `--hns-library`: one library with every HCN function (FFI backend only). */
  library?: string;
  /** `--hns-concurrency`: HNS threads, calls run at once (FFI backend only). */
  threads?: number;
  /** Settings of the in-memory HNS (memory backend only). */
  memory?: MemoryHnsOptions;
}

/** Read an environment variable; undefined when unset or when env access is not granted. */
function env(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

/** The library the FFI backend loads: the flag's value, else `HNSPROXY_HNS_LIBRARY`, else none. */
export function resolveHnsLibrary(flag?: string): string | undefined {
  return flag || env(HNS_LIBRARY_ENV);
}

/** True for the names {@link openHnsBackend} accepts. */
export function isHnsBackendKind(value: string): value is HnsBackendKind {
  return value === "ffi" || value === "memory";
}

/**
 * Open the chosen backend. The FFI backend throws a one-line
 * {@link import("./ffi.ts").HnsLibraryError} when its library cannot be used.
 */
export function openHnsBackend(options: OpenHnsBackendOptions = {}): HcnApi {
  const backend = options.backend ?? "ffi";
  if (backend === "memory") return new MemoryHcnApi(options.memory);
  if (backend !== "ffi") {
    throw new Error(`unknown HNS backend "${backend}": use ffi or memory`);
  }
  return openFfiHcnApi({ library: resolveHnsLibrary(options.library), threads: options.threads });
}
