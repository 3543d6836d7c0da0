/**
 * hnsproxy's version, read from deno.json so there is one source of truth.
 *
 * @module
 */

import denoJson from "../../deno.json" with { type: "json" };

/** The hnsproxy version, e.g. `0.1.0`. */
export const VERSION: string = denoJson.version;

/** The `--version` line: `hnsproxy v0.1.0 (deno 2.9.6, windows/x86_64)`. */
export function versionText(): string {
  return `hnsproxy v${VERSION} (deno ${Deno.version.deno}, ${Deno.build.os}/${Deno.build.arch})`;
}
