/**
 * Where the API server and its credentials come from: kubeconfig files
 * (`--kubeconfig`, `$KUBECONFIG` merged like kubectl, `~/.kube/config`), the
 * in-cluster service account, and `--master`.
 *
 * The result is one {@linkcode ConnectionConfig}: the cluster and the user of
 * the current context, validated, with relative file paths resolved against
 * the directory of the kubeconfig file that named them and embedded
 * certificates decoded. Errors name the file, the cluster/user/context and
 * the field, e.g. `kubeconfig /x: user "proxy": client-key-data is not valid
 * base64`.
 *
 * Files are JSON or YAML (lib/config/yaml.ts: YAML needs its parser loaded,
 * {@link loadKubeConfig} throws `YamlNotLoaded` before; run it under
 * `withYaml`). `@kubernetes/client-node` is not loaded (see lib/kube/auth.ts
 * for the one lazy exception, `auth-provider`).
 *
 * @module
 */

import { delimiter, dirname, isAbsolute, join, resolve, sep } from "../path.ts";
import { parseYamlOrJson, YamlNotLoaded } from "../config/yaml.ts";

/** Where the in-cluster service account files live. */
const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** The cluster extension whose value exec plugins get as `spec.cluster.config`. */
const EXEC_EXTENSION = "client.authentication.k8s.io/exec";

/** Exec plugin API versions this loader speaks. */
export const EXEC_API_VERSIONS = [
  "client.authentication.k8s.io/v1",
  "client.authentication.k8s.io/v1beta1",
] as const;

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

/** The cluster of the current context. */
export interface ClusterConfig {
  /** Name in the kubeconfig (`in-cluster`, `master` for the other sources). */
  name: string;
  /** Where it was defined, for error messages (e.g. `kubeconfig /x`). */
  origin?: string;
  /** API server URL without a trailing slash. */
  server: string;
  /** PEM of `certificate-authority` (read at load) or `certificate-authority-data`. */
  caPem?: string;
  /** `insecure-skip-tls-verify`. */
  insecureSkipTlsVerify?: boolean;
  /**
   * `tls-server-name`; accepted only when it equals the server URL's host,
   * since Deno's HTTP client verifies the certificate against that host.
   */
  tlsServerName?: string;
  /** `proxy-url` (http, https or socks5). */
  proxyUrl?: string;
  /**
   * `disable-compression`: ask the API server for uncompressed answers
   * (`Accept-Encoding: identity`) instead of gzip, as client-go does; also
   * passed on to exec plugins.
   */
  disableCompression?: boolean;
  /** The `client.authentication.k8s.io/exec` extension, for `provideClusterInfo`. */
  execExtension?: unknown;
}

/** `users[].user.exec` of a kubeconfig. */
export interface ExecConfig {
  /** `client.authentication.k8s.io/v1` or `/v1beta1`. */
  apiVersion: string;
  /** Program (resolved against the kubeconfig's directory when it contains a separator). */
  command: string;
  /** Arguments. */
  args: string[];
  /** Extra environment variables. */
  env: { name: string; value: string }[];
  /** `Never`, `IfAvailable` or `Always` (v1beta1 default: `IfAvailable`). */
  interactiveMode: "Never" | "IfAvailable" | "Always";
  /** Pass the cluster in `KUBERNETES_EXEC_INFO`. */
  provideClusterInfo: boolean;
  /** Shown when the command is not found. */
  installHint?: string;
}

/** The user of the current context; every field optional (anonymous). */
export interface UserConfig {
  /** Name in the kubeconfig. */
  name: string;
  /** Where it was defined, for error messages (e.g. `kubeconfig /x`). */
  origin?: string;
  /** Static bearer token. */
  token?: string;
  /** Bearer token file (absolute), re-read as it rotates; wins over `token` once read. */
  tokenFile?: string;
  /** Client certificate file (absolute), re-read as it rotates. */
  clientCertificate?: string;
  /** Client certificate PEM (`client-certificate-data`, decoded). */
  clientCertificatePem?: string;
  /** Client key file (absolute), re-read as it rotates. */
  clientKey?: string;
  /** Client key PEM (`client-key-data`, decoded). */
  clientKeyPem?: string;
  /** Basic authentication user. */
  username?: string;
  /** Basic authentication password. */
  password?: string;
  /** Exec credential plugin. */
  exec?: ExecConfig;
  /** Deprecated `auth-provider` (oidc, gcp, azure), as written in the kubeconfig. */
  authProvider?: { name: string; config?: Record<string, string> };
  /** `as`: user to impersonate. */
  impersonate?: string;
}

/** The resolved connection: one cluster and one user. */
export interface ConnectionConfig {
  /** Name of the current context, when it came from a kubeconfig. */
  context?: string;
  /** Every context name defined (merged over all files). */
  contexts?: string[];
  /** The cluster. */
  cluster: ClusterConfig;
  /** The user (`{ name: "anonymous" }` for none). */
  user: UserConfig;
}

/** A loaded configuration and a description of where it came from (for logs). */
export interface LoadedConfig {
  /** The configuration. */
  config: ConnectionConfig;
  /** e.g. `kubeconfig /etc/kube/proxy.conf`, `in-cluster service account`. */
  source: string;
}

/**
 * Finds and loads the connection configuration, in this order: the
 * `kubeconfig` option, `$KUBECONFIG` (a path list, merged like kubectl: the
 * first file to define a cluster, user or context name wins, and so does the
 * first `current-context`; missing files are skipped), the in-cluster service
 * account (`KUBERNETES_SERVICE_HOST`/`_PORT` and the token file, also under
 * `$CONTAINER_SANDBOX_MOUNT_POINT` for Windows HostProcess containers),
 * `~/.kube/config` (home: `$HOME`, then `%HOMEDRIVE%%HOMEPATH%` and
 * `%USERPROFILE%`), and finally `master` alone without credentials. `master`
 * overrides the server URL of whichever configuration was found. Throws an
 * error explaining what was tried when nothing fits, and `YamlNotLoaded`
 * (lib/config/yaml.ts) when a file is YAML and the YAML parser is not loaded.
 */
export function loadKubeConfig(options: ConnectionOptions = {}): LoadedConfig {
  const env = options.env ?? Deno.env;
  const fromEnv = env.get("KUBECONFIG")?.split(delimiter).filter((f) => f !== "") ?? [];
  let loaded: LoadedConfig;
  if (options.kubeconfig) {
    const source = `kubeconfig ${options.kubeconfig}`;
    loaded = { config: fromFiles([readKubeconfig(options.kubeconfig, true)!], source), source };
  } else if (fromEnv.length > 0) {
    const source = `$KUBECONFIG ${fromEnv.join(delimiter)}`;
    const files = [...new Set(fromEnv)].map((f) => readKubeconfig(f, false))
      .filter((f) => f !== undefined);
    if (files.length === 0) throw new Error(`${source}: none of these files exists`);
    loaded = { config: fromFiles(files, source), source };
  } else {
    const inCluster = inClusterConfig(env);
    const homeConfig = homeKubeconfig(env);
    if (inCluster) {
      loaded = { config: inCluster, source: "in-cluster service account" };
    } else if (homeConfig) {
      const source = `kubeconfig ${homeConfig}`;
      loaded = { config: fromFiles([readKubeconfig(homeConfig, true)!], source), source };
    } else if (options.master) {
      loaded = {
        config: {
          cluster: { name: "master", origin: "--master", server: options.master },
          user: { name: "anonymous" },
        },
        source: "--master without credentials",
      };
    } else {
      throw new Error(
        "no API server configuration: pass --kubeconfig or --master, set $KUBECONFIG, " +
          "run in a pod with a service account, or create ~/.kube/config",
      );
    }
  }
  const { cluster } = loaded.config;
  if (options.master) {
    checkServerUrl(options.master, "--master");
    cluster.server = options.master.replace(/\/+$/, "");
    if (loaded.source !== "--master without credentials") {
      loaded.source += " (server from --master)";
    }
  } else {
    checkServerUrl(
      cluster.server,
      `${cluster.origin ?? loaded.source}: cluster "${cluster.name}" server`,
    );
  }
  checkTlsServerName(cluster);
  return loaded;
}

/** One parsed kubeconfig file: its named entries, still raw. */
interface KubeconfigFile {
  path: string;
  clusters: Map<string, Record<string, unknown>>;
  users: Map<string, Record<string, unknown>>;
  contexts: Map<string, Record<string, unknown>>;
  currentContext?: string;
}

/** Reads and parses one file; `undefined` when it is missing and not `required`. */
function readKubeconfig(path: string, required: boolean): KubeconfigFile | undefined {
  const where = `kubeconfig ${path}`;
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      if (!required) return undefined;
      throw new Error(`${where}: no such file`);
    }
    throw new Error(`${where}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = text.trim() === "" ? {} : parseYamlOrJson(text);
  } catch (err) {
    if (err instanceof YamlNotLoaded) throw err;
    throw new Error(`${where}: not valid YAML: ${(err as Error).message.split("\n")[0]}`);
  }
  if (doc === null || doc === undefined) doc = {};
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new Error(`${where}: not a kubeconfig (expected a mapping at the top level)`);
  }
  const top = doc as Record<string, unknown>;
  const file: KubeconfigFile = {
    path,
    clusters: namedEntries(top, "clusters", "cluster", where),
    users: namedEntries(top, "users", "user", where),
    contexts: namedEntries(top, "contexts", "context", where),
  };
  const current = top["current-context"];
  if (current !== undefined && current !== null && typeof current !== "string") {
    throw new Error(`${where}: current-context must be a string`);
  }
  if (current) file.currentContext = current;
  return file;
}

/** `clusters: [{name, cluster: {...}}]` → name → `{...}` (a later duplicate replaces, like client-go). */
function namedEntries(
  top: Record<string, unknown>,
  list: string,
  item: string,
  where: string,
): Map<string, Record<string, unknown>> {
  const entries = new Map<string, Record<string, unknown>>();
  const value = top[list];
  if (value === undefined || value === null) return entries;
  if (!Array.isArray(value)) throw new Error(`${where}: ${list} must be a list`);
  value.forEach((entry, i) => {
    if (typeof entry !== "object" || entry === null) {
      throw new Error(`${where}: ${list}[${i}] must be a mapping`);
    }
    const { name } = entry as Record<string, unknown>;
    if (typeof name !== "string" || name === "") {
      throw new Error(`${where}: ${list}[${i}].name is missing`);
    }
    const body = (entry as Record<string, unknown>)[item] ?? {};
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      throw new Error(`${where}: ${item} "${name}" must be a mapping`);
    }
    entries.set(name, body as Record<string, unknown>);
  });
  return entries;
}

/** Merges files (first definition of a name wins) and resolves the current context. */
function fromFiles(files: KubeconfigFile[], source: string): ConnectionConfig {
  const pick = (kind: "clusters" | "users" | "contexts", name: string) => {
    for (const f of files) {
      const entry = f[kind].get(name);
      if (entry) return { entry, file: f.path };
    }
    return undefined;
  };
  const contextName = files.find((f) => f.currentContext)?.currentContext;
  if (!contextName) throw new Error(`${source}: current-context is not set`);
  const context = pick("contexts", contextName);
  if (!context) throw new Error(`${source}: current-context "${contextName}" is not defined`);
  const where = `kubeconfig ${context.file}: context "${contextName}"`;
  const fields = new Fields(context.entry, where);
  const clusterName = fields.string("cluster");
  if (!clusterName) throw new Error(`${where}: cluster is not set`);
  const cluster = pick("clusters", clusterName);
  if (!cluster) throw new Error(`${where}: cluster "${clusterName}" is not defined`);
  const userName = fields.string("user");
  let user: UserConfig = { name: "anonymous" };
  if (userName) {
    const found = pick("users", userName);
    if (!found) throw new Error(`${where}: user "${userName}" is not defined`);
    user = parseUser(userName, found.entry, found.file);
  }
  const contexts = new Set(files.flatMap((f) => [...f.contexts.keys()]));
  return {
    context: contextName,
    contexts: [...contexts],
    cluster: parseCluster(clusterName, cluster.entry, cluster.file),
    user,
  };
}

/** Typed access to the fields of one kubeconfig entry, with errors naming it. */
class Fields {
  constructor(readonly raw: Record<string, unknown>, readonly where: string) {}

  string(key: string): string | undefined {
    const v = this.raw[key];
    if (v === undefined || v === null || v === "") return undefined;
    if (typeof v !== "string") throw new Error(`${this.where}: ${key} must be a string`);
    return v;
  }

  bool(key: string): boolean {
    const v = this.raw[key];
    if (v === undefined || v === null) return false;
    if (typeof v !== "boolean") throw new Error(`${this.where}: ${key} must be true or false`);
    return v;
  }

  strings(key: string): string[] {
    const v = this.raw[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) {
      throw new Error(`${this.where}: ${key} must be a list of strings`);
    }
    return v;
  }

  /** A path, resolved against the kubeconfig file's directory. */
  path(key: string, file: string): string | undefined {
    const p = this.string(key);
    return p === undefined ? undefined : resolvePath(file, p);
  }

  /** `*-data`: base64 of a PEM document. */
  pemData(key: string): string | undefined {
    const v = this.string(key);
    if (v === undefined) return undefined;
    const text = decodeBase64(v);
    if (text === undefined) throw new Error(`${this.where}: ${key} is not valid base64`);
    if (!text.includes("-----BEGIN ")) {
      throw new Error(`${this.where}: ${key} does not hold a PEM document`);
    }
    return text;
  }
}

function resolvePath(file: string, path: string): string {
  return isAbsolute(path) ? path : join(resolve(dirname(file)), path);
}

/** Decodes standard base64 (whitespace ignored); `undefined` when malformed. */
function decodeBase64(value: string): string | undefined {
  const compact = value.replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 === 1) return undefined;
  try {
    const binary = atob(compact);
    return new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
  } catch {
    return undefined;
  }
}

function readPemFile(path: string, where: string, field: string): string {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (err) {
    throw new Error(`${where}: ${field} ${path}: ${(err as Error).message}`);
  }
  if (!text.includes("-----BEGIN ")) {
    throw new Error(`${where}: ${field} ${path} does not hold a PEM document`);
  }
  return text;
}

function parseCluster(name: string, raw: Record<string, unknown>, file: string): ClusterConfig {
  const origin = `kubeconfig ${file}`;
  const where = `${origin}: cluster "${name}"`;
  const f = new Fields(raw, where);
  const server = f.string("server");
  if (!server) throw new Error(`${where}: server is not set`);
  const caFile = f.path("certificate-authority", file);
  const caData = f.pemData("certificate-authority-data");
  if (caFile && caData) {
    throw new Error(
      `${where}: certificate-authority and certificate-authority-data are both set; keep one`,
    );
  }
  const cluster: ClusterConfig = {
    name,
    origin,
    server: server.replace(/\/+$/, ""),
    caPem: caData ?? (caFile ? readPemFile(caFile, where, "certificate-authority") : undefined),
    insecureSkipTlsVerify: f.bool("insecure-skip-tls-verify"),
    disableCompression: f.bool("disable-compression"),
  };
  const tlsServerName = f.string("tls-server-name");
  if (tlsServerName) cluster.tlsServerName = tlsServerName;
  const proxyUrl = f.string("proxy-url");
  if (proxyUrl) {
    let scheme: string;
    try {
      scheme = new URL(proxyUrl).protocol;
    } catch {
      throw new Error(`${where}: proxy-url "${proxyUrl}" is not a URL`);
    }
    if (!["http:", "https:", "socks5:", "socks5h:"].includes(scheme)) {
      throw new Error(`${where}: proxy-url must be an http, https or socks5 URL`);
    }
    cluster.proxyUrl = proxyUrl;
  }
  const extensions = raw.extensions;
  if (Array.isArray(extensions)) {
    const exec = extensions.find((e) => e?.name === EXEC_EXTENSION);
    if (exec) cluster.execExtension = exec.extension;
  }
  return cluster;
}

/**
 * `tls-server-name` asks for TLS verification against a name other than the
 * URL's host, which Deno's HTTP client cannot do: it is an error unless it
 * equals the URL's host.
 */
function checkTlsServerName(cluster: ClusterConfig): void {
  if (!cluster.tlsServerName) return;
  const host = new URL(cluster.server).hostname.replace(/^\[|\]$/g, "");
  if (cluster.tlsServerName.toLowerCase() !== host.toLowerCase()) {
    throw new Error(
      `${cluster.origin ?? "kubeconfig"}: cluster "${cluster.name}": tls-server-name ` +
        `"${cluster.tlsServerName}" is not supported (Deno's HTTP client verifies the server ` +
        `certificate against the host of server "${cluster.server}"); use a server URL whose ` +
        `host the certificate names`,
    );
  }
}

function parseUser(name: string, raw: Record<string, unknown>, file: string): UserConfig {
  const origin = `kubeconfig ${file}`;
  const where = `${origin}: user "${name}"`;
  const f = new Fields(raw, where);
  const user: UserConfig = { name, origin };
  const set = <K extends keyof UserConfig>(key: K, value: UserConfig[K] | undefined) => {
    if (value !== undefined) user[key] = value;
  };
  set("token", f.string("token"));
  // client-go spells it tokenFile; @kubernetes/client-node read token-file.
  set("tokenFile", f.path("tokenFile", file) ?? f.path("token-file", file));
  set("username", f.string("username"));
  set("password", f.string("password"));
  set("impersonate", f.string("as"));
  // Go's API server reads each group from its own Impersonate-Group header,
  // which fetch would fold into one; only `as` is supported (as before).
  for (const key of ["as-uid", "as-groups", "as-user-extra"]) {
    if (raw[key] !== undefined && raw[key] !== null) {
      throw new Error(`${where}: ${key} is not supported (of impersonation, only as is)`);
    }
  }

  const certFile = f.path("client-certificate", file);
  const certData = f.pemData("client-certificate-data");
  const keyFile = f.path("client-key", file);
  const keyData = f.pemData("client-key-data");
  if (certFile && certData) {
    throw new Error(
      `${where}: client-certificate and client-certificate-data are both set; keep one`,
    );
  }
  if (keyFile && keyData) {
    throw new Error(`${where}: client-key and client-key-data are both set; keep one`);
  }
  if ((certFile || certData) && !(keyFile || keyData)) {
    throw new Error(`${where}: client-certificate needs client-key or client-key-data`);
  }
  if ((keyFile || keyData) && !(certFile || certData)) {
    throw new Error(`${where}: client-key needs client-certificate or client-certificate-data`);
  }
  // Read now so that a missing file fails at start; lib/kube/auth.ts re-reads them.
  if (certFile) readPemFile(certFile, where, "client-certificate");
  if (keyFile) readPemFile(keyFile, where, "client-key");
  set("clientCertificate", certFile);
  set("clientCertificatePem", certData);
  set("clientKey", keyFile);
  set("clientKeyPem", keyData);

  // Without a static token the file must be readable now (client-go reads it
  // at start too); with one, it only has to be readable later to win.
  if (user.tokenFile && !user.token) {
    try {
      if (Deno.readTextFileSync(user.tokenFile).trim() === "") throw new Error("the file is empty");
    } catch (err) {
      throw new Error(`${where}: tokenFile ${user.tokenFile}: ${(err as Error).message}`);
    }
  }
  if ((user.token || user.tokenFile) && (user.username || user.password)) {
    throw new Error(
      `${where}: both a token and username/password are set; only one authentication method is allowed`,
    );
  }

  const exec = raw.exec;
  const authProvider = raw["auth-provider"];
  if (exec && authProvider) {
    throw new Error(`${where}: exec and auth-provider are both set; keep one`);
  }
  if (exec !== undefined && exec !== null) user.exec = parseExec(exec, file, `${where}: exec`);
  if (authProvider !== undefined && authProvider !== null) {
    const p = new Fields(authProvider as Record<string, unknown>, `${where}: auth-provider`);
    const providerName = p.string("name");
    if (!providerName) throw new Error(`${where}: auth-provider.name is not set`);
    const config = (authProvider as Record<string, unknown>).config;
    user.authProvider = {
      name: providerName,
      ...(config && typeof config === "object" ? { config: config as Record<string, string> } : {}),
    };
  }
  return user;
}

function parseExec(raw: unknown, file: string, where: string): ExecConfig {
  if (typeof raw !== "object" || Array.isArray(raw)) throw new Error(`${where} must be a mapping`);
  const f = new Fields(raw as Record<string, unknown>, where);
  const apiVersion = f.string("apiVersion");
  if (!apiVersion) throw new Error(`${where}: apiVersion is not set`);
  if (!(EXEC_API_VERSIONS as readonly string[]).includes(apiVersion)) {
    throw new Error(
      `${where}: apiVersion "${apiVersion}" is not supported; use ${
        EXEC_API_VERSIONS.join(" or ")
      }`,
    );
  }
  let command = f.string("command");
  if (!command) throw new Error(`${where}: command is not set`);
  // Like client-go: a command with a path separator is relative to the
  // kubeconfig; a bare name is looked up in PATH.
  if (!isAbsolute(command) && (command.includes(sep) || command.includes("/"))) {
    command = resolvePath(file, command);
  }
  const envList = (raw as Record<string, unknown>).env ?? [];
  if (!Array.isArray(envList)) throw new Error(`${where}: env must be a list`);
  const env = envList.map((e, i) => {
    const name = e?.name, value = e?.value ?? "";
    if (typeof name !== "string" || name === "" || typeof value !== "string") {
      throw new Error(`${where}: env[${i}] needs a name and a string value`);
    }
    return { name, value };
  });
  const mode = f.string("interactiveMode");
  if (!mode && apiVersion.endsWith("/v1")) {
    throw new Error(
      `${where}: interactiveMode is required with ${apiVersion} (Never, IfAvailable or Always)`,
    );
  }
  const interactiveMode = mode ?? "IfAvailable";
  if (
    interactiveMode !== "Never" && interactiveMode !== "IfAvailable" && interactiveMode !== "Always"
  ) {
    throw new Error(
      `${where}: interactiveMode "${interactiveMode}" is not Never, IfAvailable or Always`,
    );
  }
  const exec: ExecConfig = {
    apiVersion,
    command,
    args: f.strings("args"),
    env,
    interactiveMode,
    provideClusterInfo: f.bool("provideClusterInfo"),
  };
  const hint = f.string("installHint");
  if (hint) exec.installHint = hint;
  return exec;
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

/** The in-cluster configuration, when the service host and token file exist. */
function inClusterConfig(env: Env): ConnectionConfig | undefined {
  const host = env.get("KUBERNETES_SERVICE_HOST");
  const port = env.get("KUBERNETES_SERVICE_PORT");
  if (!host || !port) return undefined;
  const roots = [env.get("CONTAINER_SANDBOX_MOUNT_POINT"), ""].filter((r) => r !== undefined);
  for (const root of roots) {
    const dir = join(root, SERVICE_ACCOUNT_DIR);
    const tokenFile = join(dir, "token");
    if (!isFile(tokenFile)) continue;
    const origin = "in-cluster service account";
    const caFile = join(dir, "ca.crt");
    const hostPart = host.includes(":") ? `[${host}]` : host;
    return {
      cluster: {
        name: "in-cluster",
        origin,
        server: `https://${hostPart}:${port}`,
        caPem: readPemFile(caFile, origin, "CA"),
      },
      // Bound service account tokens rotate: lib/kube/auth.ts re-reads the file.
      user: { name: "in-cluster", origin, tokenFile },
    };
  }
  return undefined;
}

/**
 * `~/.kube/config` when it exists. Home is `$HOME`, then (Windows)
 * `%HOMEDRIVE%%HOMEPATH%` and `%USERPROFILE%`: the first that holds
 * `.kube/config`, as client-go looks for it.
 */
function homeKubeconfig(env: Env): string | undefined {
  const drive = env.get("HOMEDRIVE"), path = env.get("HOMEPATH");
  const homes = [env.get("HOME"), drive && path ? drive + path : undefined, env.get("USERPROFILE")];
  for (const home of homes) {
    if (!home) continue;
    const file = join(home, ".kube", "config");
    if (isFile(file)) return file;
  }
  return undefined;
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}
