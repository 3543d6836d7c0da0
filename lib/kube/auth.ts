/**
 * Credentials for API requests from a {@linkcode UserConfig}: bearer tokens
 * (static or from a file that rotates), client certificates (data or files,
 * re-read as they rotate), basic authentication, impersonation (`as`) and
 * exec credential plugins (`client.authentication.k8s.io/v1` and `v1beta1`),
 * with client-go's caching rules.
 *
 * The deprecated `auth-provider` users (oidc, gcp, azure) are the one case
 * that loads `@kubernetes/client-node`, lazily, to run its authenticator:
 * everyone else never pays its memory (about 85 MiB RSS).
 *
 * @module
 */

import type { ClusterConfig, ExecConfig, UserConfig } from "./kubeconfig.ts";
import type { Logger } from "../log/types.ts";
import { nullLogger } from "../log/types.ts";

/** Token files and certificate files are re-read after this long (client-go: about a minute). */
export const FILE_REFRESH_MS = 60_000;

/** What one request carries: headers and the client certificate, if any. */
export interface RequestCredentials {
  /** `Authorization` and `Impersonate-*` headers. */
  headers: Record<string, string>;
  /** Client certificate PEM. */
  cert?: string;
  /** Client key PEM. */
  key?: string;
}

/** Options of {@linkcode Authenticator}. */
export interface AuthenticatorOptions {
  /** Logger for warnings (never with credentials). */
  logger?: Logger;
  /** Clock in ms since the epoch (injectable for tests; default `Date.now`). */
  now?: () => number;
  /** Whether standard input is a terminal (injectable for tests). */
  stdinIsTerminal?: () => boolean;
}

/** A cached exec plugin answer. */
interface ExecCredential {
  token?: string;
  cert?: string;
  key?: string;
  /** ms since the epoch; undefined: valid until the server rejects it. */
  expiresAt?: number;
}

/** A file re-read at most every {@linkcode FILE_REFRESH_MS}. */
class RefreshedFile {
  #text?: string;
  #readAt = -Infinity;

  constructor(readonly path: string, readonly trim: boolean) {}

  /** The contents; the last good contents when a re-read fails (throws only when never read). */
  async read(now: number): Promise<string> {
    if (this.#text !== undefined && now - this.#readAt < FILE_REFRESH_MS) return this.#text;
    try {
      const text = await Deno.readTextFile(this.path);
      const value = this.trim ? text.trim() : text;
      if (value === "") throw new Error("the file is empty");
      this.#text = value;
      this.#readAt = now;
    } catch (err) {
      if (this.#text === undefined) throw err;
    }
    return this.#text;
  }

  /** Read again on the next request. */
  expire(): void {
    this.#readAt = -Infinity;
  }
}

/**
 * Supplies the credentials of one user for each request and reacts to 401
 * answers like client-go: token files are re-read and exec plugins re-run.
 */
export class Authenticator {
  readonly #cluster: ClusterConfig;
  readonly #user: UserConfig;
  readonly #where: string;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #stdinIsTerminal: () => boolean;
  readonly #tokenFile?: RefreshedFile;
  readonly #certFile?: RefreshedFile;
  readonly #keyFile?: RefreshedFile;
  #exec?: ExecCredential;
  #execRunning?: Promise<ExecCredential>;
  #legacy?: Promise<LegacyAuthProvider>;
  #warnedTokenFile = false;

  /** An authenticator for `user` talking to `cluster`. */
  constructor(cluster: ClusterConfig, user: UserConfig, options: AuthenticatorOptions = {}) {
    this.#cluster = cluster;
    this.#user = user;
    this.#where = `${user.origin ?? "kubeconfig"}: user "${user.name}"`;
    this.#logger = options.logger ?? nullLogger;
    this.#now = options.now ?? Date.now;
    this.#stdinIsTerminal = options.stdinIsTerminal ?? (() => Deno.stdin.isTerminal());
    if (user.tokenFile) this.#tokenFile = new RefreshedFile(user.tokenFile, true);
    if (user.clientCertificate) this.#certFile = new RefreshedFile(user.clientCertificate, false);
    if (user.clientKey) this.#keyFile = new RefreshedFile(user.clientKey, false);
  }

  /** The credentials for the next request. */
  async credentials(): Promise<RequestCredentials> {
    const user = this.#user;
    const now = this.#now();
    const creds: RequestCredentials = { headers: {} };
    creds.cert = user.clientCertificatePem ??
      (this.#certFile
        ? await this.#readFile(this.#certFile, "client-certificate", now)
        : undefined);
    creds.key = user.clientKeyPem ??
      (this.#keyFile ? await this.#readFile(this.#keyFile, "client-key", now) : undefined);

    const token = await this.#staticToken(now);
    if (token) {
      creds.headers.Authorization = `Bearer ${token}`;
    } else if (user.username || user.password) {
      creds.headers.Authorization = `Basic ${basic(user.username ?? "", user.password ?? "")}`;
    } else if (user.exec) {
      const exec = await this.#execCredential(user.exec);
      if (exec.token) creds.headers.Authorization = `Bearer ${exec.token}`;
      if (exec.cert && !creds.cert) {
        creds.cert = exec.cert;
        creds.key = exec.key;
      }
    } else if (user.authProvider) {
      const authorization = await this.#authProviderHeader();
      if (authorization) creds.headers.Authorization = authorization;
    }

    if (user.impersonate) creds.headers["Impersonate-User"] = user.impersonate;
    return creds;
  }

  /**
   * The server answered 401 to a request sent with `used`: read token files
   * again and re-run the exec plugin on the next request, unless the
   * credentials changed meanwhile.
   */
  rejected(used: RequestCredentials): void {
    this.#tokenFile?.expire();
    this.#certFile?.expire();
    this.#keyFile?.expire();
    const exec = this.#exec;
    if (exec && (!exec.token || used.headers.Authorization === `Bearer ${exec.token}`)) {
      this.#exec = undefined;
    }
  }

  async #staticToken(now: number): Promise<string | undefined> {
    if (!this.#tokenFile) return this.#user.token;
    try {
      return await this.#tokenFile.read(now);
    } catch (err) {
      // Only possible with a static token to fall back to (the loader
      // checked that the file is readable otherwise).
      if (!this.#warnedTokenFile) {
        this.#warnedTokenFile = true;
        this.#logger.warn("cannot read the token file; using the static token", {
          user: this.#user.name,
          file: this.#tokenFile.path,
          err: (err as Error).message,
        });
      }
      return this.#user.token;
    }
  }

  async #readFile(file: RefreshedFile, field: string, now: number): Promise<string> {
    try {
      return await file.read(now);
    } catch (err) {
      throw new Error(`${this.#where}: ${field} ${file.path}: ${(err as Error).message}`);
    }
  }

  #execCredential(exec: ExecConfig): Promise<ExecCredential> {
    const cached = this.#exec;
    if (cached && (cached.expiresAt === undefined || this.#now() < cached.expiresAt)) {
      return Promise.resolve(cached);
    }
    // Concurrent requests share one run of the plugin.
    this.#execRunning ??= this.#runExec(exec).then((credential) => {
      this.#exec = credential;
      return credential;
    }).finally(() => {
      this.#execRunning = undefined;
    });
    return this.#execRunning;
  }

  async #runExec(exec: ExecConfig): Promise<ExecCredential> {
    const where = `${this.#where}: exec plugin "${exec.command}"`;
    let interactive = false;
    if (exec.interactiveMode !== "Never") {
      const terminal = this.#stdinIsTerminal();
      if (exec.interactiveMode === "Always" && !terminal) {
        throw new Error(
          `${where}: interactiveMode is Always but standard input is not a terminal`,
        );
      }
      interactive = terminal;
    }
    const info = {
      apiVersion: exec.apiVersion,
      kind: "ExecCredential",
      spec: {
        interactive,
        ...(exec.provideClusterInfo ? { cluster: execClusterInfo(this.#cluster) } : {}),
      },
    };
    // The compiled hnsproxy is granted only the programs it runs itself
    // (scripts/compile.ts): say so rather than fail with a permission error.
    const permission = Deno.permissions.querySync({ name: "run", command: exec.command });
    if (permission.state !== "granted") {
      throw new Error(
        `${where}: this process may not run it (Deno's --allow-run permission does not ` +
          `include it); use a token, token file or client certificate instead`,
      );
    }
    const env: Record<string, string> = {};
    for (const { name, value } of exec.env) env[name] = value;
    env.KUBERNETES_EXEC_INFO = JSON.stringify(info);
    let output: Deno.CommandOutput;
    try {
      output = await new Deno.Command(exec.command, {
        args: exec.args,
        env,
        stdin: interactive ? "inherit" : "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new Error(
          `${where}: command not found` + (exec.installHint ? `; ${exec.installHint.trim()}` : ""),
        );
      }
      throw new Error(`${where}: ${(err as Error).message}`);
    }
    const decoder = new TextDecoder();
    if (!output.success) {
      const stderr = decoder.decode(output.stderr).trim();
      const tail = stderr.length > 500 ? `...${stderr.slice(-500)}` : stderr;
      throw new Error(
        `${where}: exited with code ${output.code}${tail ? `: ${tail}` : ""}`,
      );
    }
    let credential: unknown;
    try {
      credential = JSON.parse(decoder.decode(output.stdout));
    } catch (err) {
      throw new Error(`${where}: did not print an ExecCredential: ${(err as Error).message}`);
    }
    return parseExecCredential(credential, exec.apiVersion, where, this.#now);
  }

  #authProviderHeader(): Promise<string | undefined> {
    const provider = this.#user.authProvider!;
    const where = `${this.#where}: auth-provider "${provider.name}"`;
    this.#legacy ??= loadLegacyAuthProvider(this.#cluster, this.#user).catch((err) => {
      this.#legacy = undefined;
      throw new Error(`${where}: ${(err as Error).message}`);
    });
    return this.#legacy.then((legacy) => legacy.authorization()).catch((err) => {
      const message = (err as Error).message;
      throw new Error(message.startsWith(where) ? message : `${where}: ${message}`);
    });
  }
}

function basic(username: string, password: string): string {
  const bytes = new TextEncoder().encode(`${username}:${password}`);
  return btoa(String.fromCharCode(...bytes));
}

/** The `spec.cluster` of `KUBERNETES_EXEC_INFO`, spelled like client-go's JSON. */
function execClusterInfo(cluster: ClusterConfig): Record<string, unknown> {
  const info: Record<string, unknown> = { server: cluster.server };
  if (cluster.tlsServerName) info["tls-server-name"] = cluster.tlsServerName;
  if (cluster.insecureSkipTlsVerify) info["insecure-skip-tls-verify"] = true;
  if (cluster.caPem) {
    const bytes = new TextEncoder().encode(cluster.caPem);
    info["certificate-authority-data"] = btoa(String.fromCharCode(...bytes));
  }
  if (cluster.proxyUrl) info["proxy-url"] = cluster.proxyUrl;
  if (cluster.disableCompression) info["disable-compression"] = true;
  if (cluster.execExtension !== undefined) info.config = cluster.execExtension;
  return info;
}

/** Validates an exec plugin's answer the way client-go does. */
function parseExecCredential(
  value: unknown,
  apiVersion: string,
  where: string,
  now: () => number,
): ExecCredential {
  const obj = value as Record<string, unknown> | null;
  if (typeof obj !== "object" || obj === null || obj.kind !== "ExecCredential") {
    throw new Error(`${where}: did not print an ExecCredential`);
  }
  if (obj.apiVersion !== apiVersion) {
    throw new Error(
      `${where}: printed apiVersion "${obj.apiVersion}", the kubeconfig asks for "${apiVersion}"`,
    );
  }
  const status = obj.status as Record<string, unknown> | undefined;
  if (typeof status !== "object" || status === null) {
    throw new Error(`${where}: the ExecCredential has no status`);
  }
  const text = (key: string) => {
    const v = status[key];
    if (v === undefined || v === null || v === "") return undefined;
    if (typeof v !== "string") throw new Error(`${where}: status.${key} must be a string`);
    return v;
  };
  const credential: ExecCredential = {
    token: text("token"),
    cert: text("clientCertificateData"),
    key: text("clientKeyData"),
  };
  if (!credential.token && !credential.cert && !credential.key) {
    throw new Error(`${where}: the ExecCredential has neither a token nor a certificate and key`);
  }
  if (!credential.cert !== !credential.key) {
    throw new Error(
      `${where}: the ExecCredential has only one of clientCertificateData and clientKeyData`,
    );
  }
  const expiry = text("expirationTimestamp");
  if (expiry) {
    const at = Date.parse(expiry);
    if (Number.isNaN(at)) {
      throw new Error(`${where}: status.expirationTimestamp "${expiry}" is not a time`);
    }
    credential.expiresAt = at;
    if (at <= now()) {
      throw new Error(`${where}: the ExecCredential expired at ${expiry}`);
    }
  }
  return credential;
}

/** `@kubernetes/client-node`'s authenticator for an `auth-provider` user. */
interface LegacyAuthProvider {
  /** The `Authorization` header value, if the provider sets one. */
  authorization(): Promise<string | undefined>;
}

async function loadLegacyAuthProvider(
  cluster: ClusterConfig,
  user: UserConfig,
): Promise<LegacyAuthProvider> {
  // A string literal, so that `deno compile` still embeds the package.
  const { KubeConfig } = await import("@kubernetes/client-node");
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: cluster.name, server: cluster.server, skipTLSVerify: false }],
    // Only the provider: every other credential is ours. The provider may
    // write refreshed tokens into its config, so it gets a copy.
    users: [{ name: user.name, authProvider: structuredClone(user.authProvider) }],
    contexts: [{ name: "current", cluster: cluster.name, user: user.name }],
    currentContext: "current",
  });
  // `applyOptions` is the KubeConfig method that yields headers without
  // building a Node agent; tests/kube/auth_test.ts exercises it.
  const apply = (kc as unknown as { applyOptions?: (o: LegacyOptions) => Promise<void> })
    .applyOptions;
  if (typeof apply !== "function") {
    throw new Error("@kubernetes/client-node: KubeConfig.applyOptions is missing (version?)");
  }
  return {
    async authorization() {
      const opts: LegacyOptions = { headers: {} };
      await apply.call(kc, opts);
      return opts.headers.Authorization;
    },
  };
}

/** The part of client-node's request options that carries headers. */
interface LegacyOptions {
  headers: Record<string, string>;
}
