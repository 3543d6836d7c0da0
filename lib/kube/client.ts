/**
 * The connection to the API server: an HTTP layer over Deno `fetch` with
 * streaming bodies that applies the credentials of the loaded configuration.
 *
 * Where the configuration comes from (`--kubeconfig`, `$KUBECONFIG`, the
 * in-cluster service account, `~/.kube/config`, `--master`) is
 * lib/kube/kubeconfig.ts; the credentials (tokens and token files that
 * rotate, client certificates, basic auth, exec plugins) are
 * lib/kube/auth.ts. Requests go through a `Deno.HttpClient` holding the TLS
 * material, rebuilt only when that material changes or when a request was
 * given up for silence. Credentials never reach
 * a log line: only methods, paths and status codes are logged.
 *
 * @module
 */

import type { Logger } from "../log/types.ts";
import { nullLogger } from "../log/types.ts";
import {
  ApiError,
  isStatus,
  type KubeList,
  type KubeObject,
  type ResourceInfo,
  type WatchEvent,
} from "./api.ts";
import { Authenticator, type AuthenticatorOptions, type RequestCredentials } from "./auth.ts";
import { type ConnectionConfig, type ConnectionOptions, loadKubeConfig } from "./kubeconfig.ts";
import { decodeWatchStream } from "./watch.ts";

export type {
  ClusterConfig,
  ConnectionConfig,
  ConnectionOptions,
  Env,
  ExecConfig,
  LoadedConfig,
  UserConfig,
} from "./kubeconfig.ts";
export { loadKubeConfig } from "./kubeconfig.ts";

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
  /** Options of the credentials (clock, terminal detection; for tests). */
  auth?: Omit<AuthenticatorOptions, "logger">;
}

/**
 * An HTTP client for the API server. Each request asks the
 * {@linkcode Authenticator} for current credentials (so token files, client
 * certificate files and exec plugins can rotate them) and reuses one
 * `Deno.HttpClient` as long as the TLS material stays the same.
 */
export class KubeClient {
  readonly #config: ConnectionConfig;
  readonly #auth: Authenticator;
  readonly #server: string;
  readonly #logger: Logger;
  readonly #userAgent: string;
  readonly #requestTimeoutMs: number;
  #httpClient?: Deno.HttpClient;
  #tlsKey = "";

  /** A client for the cluster and user of `config`. */
  constructor(config: ConnectionConfig, options: KubeClientOptions = {}) {
    this.#config = config;
    this.#server = config.cluster.server.replace(/\/+$/, "");
    this.#logger = options.logger ?? nullLogger;
    this.#userAgent = options.userAgent ?? "hnsproxy";
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 60_000;
    this.#auth = new Authenticator(config.cluster, config.user, {
      ...options.auth,
      logger: this.#logger,
    });
    if (config.cluster.insecureSkipTlsVerify && this.#server.startsWith("https:")) {
      this.#logger.warn(
        "insecure-skip-tls-verify is set, but Deno verifies server certificates " +
          "unless started with --unsafely-ignore-certificate-errors",
        { server: this.#server },
      );
    }
  }

  /**
   * Loads the configuration ({@linkcode loadKubeConfig}) and makes a client for it.
   * A YAML kubeconfig needs the YAML parser loaded (run it under lib/config/yaml.ts `withYaml`).
   */
  static connect(options: ConnectionOptions & KubeClientOptions = {}): KubeClient {
    const { config, source } = loadKubeConfig(options);
    const client = new KubeClient(config, options);
    options.logger?.info("API server configuration loaded", {
      source,
      server: client.server,
      ...(config.context ? { context: config.context } : {}),
      user: config.user.name,
    });
    return client;
  }

  /** The API server URL (no trailing slash). */
  get server(): string {
    return this.#server;
  }

  /**
   * Sends a GET request and returns the response once its headers arrived;
   * the body is left to the caller (it may be a stream). Aborting `signal`
   * with a `TimeoutError` reason (the server went silent) retires the
   * connections in use, see {@linkcode KubeClient.watch}. Throws
   * {@linkcode ApiError} for non-2xx answers, with the `Status` reason and
   * message, and the fetch error for transport failures.
   */
  async get(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    what: string,
    signal?: AbortSignal,
  ): Promise<Response> {
    // The query is encoded apart and the URL parsed once: each change made
    // through `url.searchParams` reparses the whole URL.
    const params = new URLSearchParams();
    for (const k in query) {
      const v = query[k];
      if (v !== undefined && v !== "") params.set(k, String(v));
    }
    const search = params.toString();
    const url = new URL(search === "" ? this.#server + path : `${this.#server}${path}?${search}`);
    const credentials = await this.#auth.credentials();
    const client = this.#clientFor(credentials);
    this.#retireOnTimeout(client, signal);
    const headers = new Headers(credentials.headers);
    headers.set("Accept", "application/json");
    headers.set("User-Agent", this.#userAgent);
    // Deno's fetch otherwise asks for gzip and br; "identity" also keeps it from decompressing.
    if (this.#config.cluster.disableCompression) headers.set("Accept-Encoding", "identity");
    this.#logger.debug(4, "API request", { method: "GET", url: url.pathname + url.search });
    const response = await fetch(url, { headers, signal, client });
    this.#logger.debug(4, "API response", { url: url.pathname, status: response.status });
    if (response.status === 401) this.#auth.rejected(credentials);
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
   * `onActivity` is called for every chunk received. A caller that finds
   * the stream silent aborts `signal` with a `TimeoutError` reason: the
   * connection may be dead without a reset, and over HTTP/2 every later
   * request would be multiplexed onto it, so the next request opens a new
   * connection (streams open on the old one go on until they end).
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

  /**
   * Sends a write (`POST`, `PATCH`) with a JSON body and returns the decoded
   * answer. Throws {@linkcode ApiError} for non-2xx answers and the fetch
   * error for transport failures; `timeoutMs` (default the request timeout)
   * bounds the whole request, `signal` aborts it.
   */
  async send(
    method: "POST" | "PATCH",
    path: string,
    body: unknown,
    options: { what: string; contentType?: string; timeoutMs?: number; signal?: AbortSignal },
  ): Promise<KubeObject> {
    const url = new URL(this.#server + path);
    const credentials = await this.#auth.credentials();
    const client = this.#clientFor(credentials);
    const headers = new Headers(credentials.headers);
    headers.set("Accept", "application/json");
    headers.set("Content-Type", options.contentType ?? "application/json");
    headers.set("User-Agent", this.#userAgent);
    if (this.#config.cluster.disableCompression) headers.set("Accept-Encoding", "identity");
    this.#logger.debug(4, "API request", { method, url: url.pathname });
    // An explicit controller rather than AbortSignal.any(), as in list().
    const local = new AbortController();
    const forward = () => local.abort(options.signal?.reason);
    options.signal?.addEventListener("abort", forward);
    if (options.signal?.aborted) forward();
    this.#retireOnTimeout(client, local.signal);
    const timer = setTimeout(
      () => local.abort(new DOMException(`${options.what} timed out`, "TimeoutError")),
      options.timeoutMs ?? this.#requestTimeoutMs,
    );
    try {
      const response = await fetch(url, {
        method,
        headers,
        body: JSON.stringify(body),
        client,
        signal: local.signal,
      });
      this.#logger.debug(4, "API response", { url: url.pathname, status: response.status });
      if (response.status === 401) this.#auth.rejected(credentials);
      if (!response.ok) throw await apiErrorOf(response, options.what);
      return await response.json() as KubeObject;
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", forward);
    }
  }

  /** Releases the HTTP connections. */
  close(): void {
    this.#httpClient?.close();
    this.#httpClient = undefined;
    this.#tlsKey = "";
  }

  /**
   * When `signal` aborts for a timeout, stops using `client` for new
   * requests: a connection that went dead without a reset would otherwise
   * keep them all (client-go pings HTTP/2 connections for this,
   * kubernetes/kubernetes#95981; fetch cannot).
   */
  #retireOnTimeout(client: Deno.HttpClient, signal: AbortSignal | undefined): void {
    signal?.addEventListener("abort", () => {
      if ((signal.reason as Error | undefined)?.name !== "TimeoutError") return;
      if (this.#httpClient !== client) return;
      this.#logger.debug(2, "a request timed out; new requests open a new connection");
      this.close();
    }, { once: true });
  }

  #clientFor(credentials: RequestCredentials): Deno.HttpClient {
    const { caPem, proxyUrl } = this.#config.cluster;
    const { cert, key } = credentials;
    const tlsKey = JSON.stringify([cert, key]);
    if (this.#httpClient && tlsKey === this.#tlsKey) return this.#httpClient;
    const options: Deno.CreateHttpClientOptions & Partial<Deno.TlsCertifiedKeyPem> = {};
    if (caPem) options.caCerts = [caPem];
    if (cert && key) {
      options.cert = cert;
      options.key = key;
    }
    if (proxyUrl) options.proxy = proxyOf(proxyUrl);
    let client: Deno.HttpClient;
    try {
      client = Deno.createHttpClient(options as Deno.CreateHttpClientOptions);
    } catch (err) {
      const user = this.#config.user;
      throw new Error(
        `${user.origin ?? "kubeconfig"}: user "${user.name}" / cluster ` +
          `"${this.#config.cluster.name}": the TLS material is not usable: ${
            (err as Error).message
          }`,
      );
    }
    this.#httpClient?.close();
    this.#httpClient = client;
    this.#tlsKey = tlsKey;
    return client;
  }
}

/** `proxy-url` as Deno's proxy option, with credentials in the URL moved to basic auth. */
function proxyOf(proxyUrl: string): Deno.Proxy {
  const url = new URL(proxyUrl);
  const transport = url.protocol.startsWith("socks5") ? "socks5" : undefined;
  if (!url.username && !url.password) return { url: proxyUrl, ...(transport ? { transport } : {}) };
  const basicAuth = {
    username: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
  };
  url.username = "";
  url.password = "";
  return { url: url.href, basicAuth, ...(transport ? { transport } : {}) };
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
