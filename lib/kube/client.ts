/**
 * The connection to the API server: where the configuration comes from
 * (`--kubeconfig`, `$KUBECONFIG`, the in-cluster service account,
 * `~/.kube/config`, `--master`) and an HTTP layer that applies its
 * credentials to Deno `fetch` requests with streaming bodies.
 *
 * `@kubernetes/client-node`'s `KubeConfig` parses the files and runs the
 * authenticators (static tokens, token files that rotate, exec plugins, OIDC,
 * client certificates); requests go through Deno's `fetch` with a
 * `Deno.HttpClient` holding the TLS material. Credentials never reach a log
 * line: only methods, paths and status codes are logged.
 *
 * @module
 */

import { KubeConfig } from "@kubernetes/client-node";
import { Buffer } from "node:buffer";
import { existsSync } from "node:fs";
import { delimiter, join } from "node:path";
import type { Logger } from "../log/types.ts";
import { nullLogger } from "../log/types.ts";
import { ApiError, isStatus, type KubeList, type ResourceInfo, type WatchEvent } from "./api.ts";
import { decodeWatchStream } from "./watch.ts";

/** Where the in-cluster service account files live. */
const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** Read access to environment variables (injectable for tests). */
export interface Env {
  /** The variable's value, or undefined when unset. */
  get(name: string): string | undefined;
}

/** Where to find the API server and its credentials. */
export interface ConnectionOptions {
  /** `--kubeconfig`: path of a kubeconfig file; wins over everything else. */
  kubeconfig?: string;
  /** `--master`: API server URL, overriding the kubeconfig's server. */
  master?: string;
  /** Environment (defaults to `Deno.env`). */
  env?: Env;
}

/** A loaded configuration and a description of where it came from (for logs). */
export interface LoadedConfig {
  /** The configuration. */
  config: KubeConfig;
  /** e.g. `kubeconfig /etc/kube/proxy.conf`, `in-cluster service account`. */
  source: string;
}

/**
 * Finds and loads the connection configuration, in this order: the
 * `kubeconfig` option, `$KUBECONFIG` (a path list, merged like kubectl), the
 * in-cluster service account (`KUBERNETES_SERVICE_HOST`/`_PORT` and the
 * token file, also under `$CONTAINER_SANDBOX_MOUNT_POINT` for Windows
 * HostProcess containers), `~/.kube/config`, and finally `master` alone
 * without credentials. `master` overrides the server URL of whichever
 * configuration was found. Throws an error explaining what was tried when
 * nothing fits.
 */
export function loadKubeConfig(options: ConnectionOptions = {}): LoadedConfig {
  const env = options.env ?? Deno.env;
  const kc = new KubeConfig();
  let source: string;
  const fromEnv = env.get("KUBECONFIG")?.split(delimiter).filter((f) => f !== "") ?? [];
  const inCluster = inClusterFiles(env);
  const home = env.get("HOME") ?? env.get("USERPROFILE");
  const homeConfig = home ? join(home, ".kube", "config") : undefined;
  if (options.kubeconfig) {
    loadFile(kc, options.kubeconfig);
    source = `kubeconfig ${options.kubeconfig}`;
  } else if (fromEnv.length > 0) {
    loadFile(kc, fromEnv[0]);
    for (const file of fromEnv.slice(1)) {
      const more = new KubeConfig();
      loadFile(more, file);
      kc.mergeConfig(more, true);
    }
    source = `$KUBECONFIG ${fromEnv.join(delimiter)}`;
  } else if (inCluster) {
    kc.loadFromOptions({
      clusters: [{
        name: "in-cluster",
        server: inCluster.server,
        caFile: inCluster.caFile,
        skipTLSVerify: false,
      }],
      // The tokenFile auth provider re-reads the token every minute, so
      // rotated (bound) service account tokens are picked up.
      users: [{
        name: "in-cluster",
        authProvider: { name: "tokenFile", config: { tokenFile: inCluster.tokenFile } },
      }],
      contexts: [{ name: "in-cluster", cluster: "in-cluster", user: "in-cluster" }],
      currentContext: "in-cluster",
    });
    source = "in-cluster service account";
  } else if (homeConfig && existsSync(homeConfig)) {
    loadFile(kc, homeConfig);
    source = `kubeconfig ${homeConfig}`;
  } else if (options.master) {
    kc.loadFromClusterAndUser({ name: "master", server: options.master, skipTLSVerify: false }, {
      name: "anonymous",
    });
    source = "--master without credentials";
  } else {
    throw new Error(
      "no API server configuration: pass --kubeconfig or --master, set $KUBECONFIG, " +
        "run in a pod with a service account, or create ~/.kube/config",
    );
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster) {
    throw new Error(`${source}: current-context "${kc.getCurrentContext()}" names no cluster`);
  }
  if (options.master) {
    checkServerUrl(options.master, "--master");
    const overridden = { ...cluster, server: options.master };
    kc.loadFromOptions({
      clusters: kc.clusters.map((c) => c.name === cluster.name ? overridden : c),
      users: kc.users,
      contexts: kc.contexts,
      currentContext: kc.currentContext,
    });
    source += ` (server from --master)`;
  } else {
    checkServerUrl(cluster.server, `${source}: cluster "${cluster.name}" server`);
  }
  return { config: kc, source };
}

function loadFile(kc: KubeConfig, file: string): void {
  try {
    kc.loadFromFile(file);
  } catch (err) {
    throw new Error(`kubeconfig ${file}: ${(err as Error).message}`);
  }
}

function checkServerUrl(server: string | undefined, what: string): void {
  let url: URL;
  try {
    url = new URL(server ?? "");
  } catch {
    throw new Error(`${what}: "${server ?? ""}" is not a URL`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new Error(`${what}: "${server}" must be an http:// or https:// URL`);
  }
}

function inClusterFiles(
  env: Env,
): { server: string; caFile: string; tokenFile: string } | undefined {
  const host = env.get("KUBERNETES_SERVICE_HOST");
  const port = env.get("KUBERNETES_SERVICE_PORT");
  if (!host || !port) return undefined;
  const roots = [env.get("CONTAINER_SANDBOX_MOUNT_POINT"), ""].filter((r) => r !== undefined);
  for (const root of roots) {
    const dir = join(root, SERVICE_ACCOUNT_DIR);
    const tokenFile = join(dir, "token");
    if (existsSync(tokenFile)) {
      const hostPart = host.includes(":") ? `[${host}]` : host;
      return { server: `https://${hostPart}:${port}`, caFile: join(dir, "ca.crt"), tokenFile };
    }
  }
  return undefined;
}

/** The request options `KubeConfig` fills in: headers and TLS material. */
interface AuthOptions {
  headers: Record<string, string>;
  ca?: Uint8Array | string;
  cert?: Uint8Array | string;
  key?: Uint8Array | string;
  rejectUnauthorized?: boolean;
  servername?: string;
}

/** Query parameters of a list request. */
export interface ListParams {
  /** Label selector, e.g. `!service.kubernetes.io/headless`. */
  labelSelector?: string;
  /** Field selector, e.g. `metadata.name=node-1`. */
  fieldSelector?: string;
  /** Page size. */
  limit?: number;
  /** Continue token of the previous page. */
  continue?: string;
  /** resourceVersion semantics of the list ("" or absent: most recent). */
  resourceVersion?: string;
}

/** Query parameters of a watch request. */
export interface WatchParams {
  /** Label selector. */
  labelSelector?: string;
  /** Field selector. */
  fieldSelector?: string;
  /** Start after this resourceVersion. */
  resourceVersion?: string;
  /** Server-side timeout of the watch. */
  timeoutSeconds?: number;
  /** Ask for BOOKMARK events. */
  allowWatchBookmarks?: boolean;
}

/** Options of {@linkcode KubeClient}. */
export interface KubeClientOptions {
  /** Logger (requests are logged at verbosity 4, never with credentials). */
  logger?: Logger;
  /** User-Agent header. */
  userAgent?: string;
  /** Timeout of non-watch requests in milliseconds (default 60 s). */
  requestTimeoutMs?: number;
}

/**
 * An HTTP client for the API server. Each request asks the `KubeConfig` for
 * fresh credentials (so exec plugins and token files can rotate them) and
 * reuses one `Deno.HttpClient` as long as the TLS material stays the same.
 */
export class KubeClient {
  readonly #config: KubeConfig;
  readonly #server: string;
  readonly #logger: Logger;
  readonly #userAgent: string;
  readonly #requestTimeoutMs: number;
  #httpClient?: Deno.HttpClient;
  #tlsKey = "";
  #warned = false;

  /** A client for the current context of `config`. */
  constructor(config: KubeConfig, options: KubeClientOptions = {}) {
    const cluster = config.getCurrentCluster();
    if (!cluster) throw new Error("kubeconfig: the current context names no cluster");
    this.#config = config;
    this.#server = cluster.server.replace(/\/+$/, "");
    this.#logger = options.logger ?? nullLogger;
    this.#userAgent = options.userAgent ?? "hnsproxy";
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 60_000;
  }

  /** Loads the configuration ({@linkcode loadKubeConfig}) and makes a client for it. */
  static connect(options: ConnectionOptions & KubeClientOptions = {}): KubeClient {
    const { config, source } = loadKubeConfig(options);
    const client = new KubeClient(config, options);
    options.logger?.info("API server configuration loaded", { source, server: client.server });
    return client;
  }

  /** The API server URL (no trailing slash). */
  get server(): string {
    return this.#server;
  }

  /**
   * Sends a GET request and returns the response once its headers arrived;
   * the body is left to the caller (it may be a stream). Throws
   * {@linkcode ApiError} for non-2xx answers, with the `Status` reason and
   * message, and the fetch error for transport failures.
   */
  async get(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    what: string,
    signal?: AbortSignal,
  ): Promise<Response> {
    const url = new URL(this.#server + path);
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== "") url.searchParams.set(k, String(v));
    }
    const auth = await this.#authOptions();
    const client = this.#clientFor(auth);
    const headers = new Headers(auth.headers);
    headers.set("Accept", "application/json");
    headers.set("User-Agent", this.#userAgent);
    this.#logger.debug(4, "API request", { method: "GET", url: url.pathname + url.search });
    const response = await fetch(url, { headers, signal, client });
    this.#logger.debug(4, "API response", { url: url.pathname, status: response.status });
    if (!response.ok) throw await apiErrorOf(response, what);
    return response;
  }

  /** Lists one page of a resource. */
  async list(resource: ResourceInfo, params: ListParams, signal?: AbortSignal): Promise<KubeList> {
    // An explicit controller rather than AbortSignal.any(): composite signals
    // are weakly held and can be collected before they fire.
    const local = new AbortController();
    const forward = () => local.abort(signal?.reason);
    signal?.addEventListener("abort", forward);
    if (signal?.aborted) forward();
    const timer = setTimeout(
      () => local.abort(new DOMException("list timed out", "TimeoutError")),
      this.#requestTimeoutMs,
    );
    let body: KubeList;
    try {
      const response = await this.get(
        resource.path,
        { ...params },
        `list ${resource.plural}`,
        local.signal,
      );
      body = await response.json() as KubeList;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", forward);
    }
    if (typeof body !== "object" || body === null || !Array.isArray(body.items ?? [])) {
      throw new Error(`list ${resource.plural}: the answer is not a list`);
    }
    return body;
  }

  /**
   * Opens a watch and resolves once the server accepted it (HTTP errors
   * throw here); the events are then read from the returned stream.
   * `onActivity` is called for every chunk received.
   */
  async watch(
    resource: ResourceInfo,
    params: WatchParams,
    signal?: AbortSignal,
    onActivity?: () => void,
  ): Promise<AsyncGenerator<WatchEvent>> {
    const response = await this.get(
      resource.path,
      { watch: true, ...params },
      `watch ${resource.plural}`,
      signal,
    );
    if (!response.body) throw new Error(`watch ${resource.plural}: the answer has no body`);
    return decodeWatchStream(response.body, onActivity, signal);
  }

  /** Releases the HTTP connections. */
  close(): void {
    this.#httpClient?.close();
    this.#httpClient = undefined;
    this.#tlsKey = "";
  }

  async #authOptions(): Promise<AuthOptions> {
    const opts: AuthOptions = { headers: {} };
    // `applyOptions` is the one KubeConfig method that yields headers and TLS
    // material without building a Node agent (the public variants refuse
    // http:// servers); @kubernetes/client-node is pinned in deno.lock and
    // tests/kube/client_test.ts exercises this path.
    const apply = (this.#config as unknown as { applyOptions?: (o: AuthOptions) => Promise<void> })
      .applyOptions;
    if (typeof apply !== "function") {
      throw new Error("@kubernetes/client-node: KubeConfig.applyOptions is missing (version?)");
    }
    await apply.call(this.#config, opts);
    const user = this.#config.getCurrentUser();
    if (user?.username) {
      const basic = Buffer.from(`${user.username}:${user.password ?? ""}`).toString("base64");
      opts.headers.Authorization = `Basic ${basic}`;
    }
    return opts;
  }

  #clientFor(auth: AuthOptions): Deno.HttpClient {
    const cluster = this.#config.getCurrentCluster();
    const ca = pem(auth.ca);
    const cert = pem(auth.cert);
    const key = pem(auth.key);
    const proxy = cluster?.proxyUrl;
    const tlsKey = JSON.stringify([ca, cert, key, proxy]);
    if (this.#httpClient && tlsKey === this.#tlsKey) return this.#httpClient;
    if (!this.#warned) {
      this.#warned = true;
      if (auth.rejectUnauthorized === false) {
        this.#logger.warn(
          "insecure-skip-tls-verify is set, but Deno verifies server certificates " +
            "unless started with --unsafely-ignore-certificate-errors",
          { server: this.#server },
        );
      }
      if (auth.servername) {
        this.#logger.warn("tls-server-name is not supported; the URL's host name is verified", {
          server: this.#server,
        });
      }
    }
    const options: Deno.CreateHttpClientOptions & Partial<Deno.TlsCertifiedKeyPem> = {};
    if (ca) options.caCerts = [ca];
    if (cert && key) {
      options.cert = cert;
      options.key = key;
    }
    if (proxy) options.proxy = { url: proxy };
    this.#httpClient?.close();
    this.#httpClient = Deno.createHttpClient(options as Deno.CreateHttpClientOptions);
    this.#tlsKey = tlsKey;
    return this.#httpClient;
  }
}

function pem(value: Uint8Array | string | undefined): string | undefined {
  if (value === undefined || value === null) return undefined;
  return typeof value === "string" ? value : new TextDecoder().decode(value);
}

/** Builds the {@linkcode ApiError} for a non-2xx response, reading its `Status` body. */
export async function apiErrorOf(response: Response, what: string): Promise<ApiError> {
  const text = await response.text().catch(() => "");
  const retryAfter = Number(response.headers.get("Retry-After") ?? "");
  const retry = Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined;
  try {
    const status = JSON.parse(text);
    if (isStatus(status)) {
      return new ApiError(
        what,
        response.status,
        String(status.reason ?? ""),
        String(status.message ?? ""),
        retry,
      );
    }
  } catch {
    // not JSON: fall through
  }
  const excerpt = text.length > 200 ? `${text.slice(0, 200)}...` : text;
  return new ApiError(what, response.status, "", excerpt || response.statusText, retry);
}
