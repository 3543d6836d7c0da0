/**
 * YAML or JSON documents (kubeconfigs, KubeProxyConfiguration files) read
 * without loading the YAML package unless the text needs it.
 *
 * Rules:
 * - Text whose first non-blank character is `{` and that `JSON.parse`
 *   accepts is read as JSON (JSON is YAML, so the document is the same; a
 *   key given twice keeps its last value, as `JSON.parse` and client-go's
 *   JSON decoding do). Any other text is YAML.
 * - The YAML package (npm `yaml`, with Deno's Node compatibility and npm
 *   loading, several MiB resident for the process's lifetime) is loaded only
 *   by {@link loadYaml}, never by importing this module. Parsing YAML text
 *   before it is loaded throws {@link YamlNotLoaded}; {@link withYaml} runs a
 *   synchronous reader, loads the package when the reader needed it, and runs
 *   the reader again.
 *
 * @module
 */

type YamlModule = typeof import("yaml");

let yamlModule: YamlModule | undefined;

/** Thrown when YAML text is parsed before {@link loadYaml} has loaded the parser. */
export class YamlNotLoaded extends Error {
  constructor() {
    super("the YAML parser is not loaded (call loadYaml() first)");
    this.name = "YamlNotLoaded";
  }
}

/** Loads the YAML package (once); resolves to it. */
export async function loadYaml(): Promise<YamlModule> {
  yamlModule ??= await import("yaml");
  return yamlModule;
}

/** The loaded YAML package; throws {@link YamlNotLoaded} when {@link loadYaml} has not run. */
export function loadedYaml(): YamlModule {
  if (!yamlModule) throw new YamlNotLoaded();
  return yamlModule;
}

/** Options of {@link parseYamlOrJson}, passed on to the YAML parser. */
export interface ParseOptions {
  /** A mapping's key given twice is an error (YAML text only; the package's default: true). */
  uniqueKeys?: boolean;
}

/**
 * The document in `text`: JSON text with `JSON.parse`, anything else with the
 * YAML parser (which must be loaded: {@link YamlNotLoaded} otherwise). Errors
 * of either parser are thrown as they are.
 */
export function parseYamlOrJson(text: string, options: ParseOptions = {}): unknown {
  if (/^\s*\{/.test(text)) {
    try {
      return JSON.parse(text);
    } catch {
      // Not JSON: a YAML flow mapping, or an error the YAML parser will name.
    }
  }
  return loadedYaml().parse(text, { prettyErrors: false, ...options });
}

/**
 * Runs `read`; when it needed the YAML parser before it was loaded, loads it
 * and runs `read` again. For synchronous readers of documents that may be
 * YAML: they must have no effect before they parse.
 */
export async function withYaml<T>(read: () => T): Promise<T> {
  try {
    return read();
  } catch (err) {
    if (!(err instanceof YamlNotLoaded)) throw err;
  }
  await loadYaml();
  return read();
}
