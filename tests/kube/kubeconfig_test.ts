import assert from "node:assert/strict";
import { delimiter, join } from "node:path";
import { type Env, loadKubeConfig } from "../../lib/kube/kubeconfig.ts";
import { loadYaml } from "../../lib/config/yaml.ts";

// These files are YAML: the parser is loaded, as the agent loads it for a YAML file.
await loadYaml();

function envOf(vars: Record<string, string>): Env {
  return { get: (name) => vars[name] };
}

const NO_ENV = envOf({});

const PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const KEY = "-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----\n";
const b64 = (s: string) => btoa(s);

interface Entry {
  name: string;
  body: Record<string, unknown>;
}

/** A kubeconfig document (JSON is YAML). */
function doc(
  parts: { clusters?: Entry[]; users?: Entry[]; contexts?: Entry[]; current?: string },
): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: parts.clusters?.map((c) => ({ name: c.name, cluster: c.body })),
    users: parts.users?.map((u) => ({ name: u.name, user: u.body })),
    contexts: parts.contexts?.map((c) => ({ name: c.name, context: c.body })),
    "current-context": parts.current,
  });
}

/** One cluster, one user, one context named `c`. */
function single(cluster: Record<string, unknown>, user: Record<string, unknown>): string {
  return doc({
    clusters: [{ name: "k", body: { server: "https://k.example:6443", ...cluster } }],
    users: [{ name: "proxy", body: user }],
    contexts: [{ name: "c", body: { cluster: "k", user: "proxy" } }],
    current: "c",
  });
}

async function withDir(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "hnsproxy-kubeconfig-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function load(dir: string, text: string, name = "config") {
  const path = join(dir, name);
  Deno.writeTextFileSync(path, text);
  return loadKubeConfig({ kubeconfig: path, env: NO_ENV });
}

function loadError(dir: string, text: string): string {
  try {
    load(dir, text);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error("the kubeconfig loaded");
}

Deno.test("kubeconfig: YAML with every cluster and user field", async () => {
  await withDir((dir) => {
    const path = join(dir, "config");
    Deno.writeTextFileSync(
      path,
      [
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        "- name: k",
        "  cluster:",
        "    server: https://k.example:6443/",
        `    certificate-authority-data: ${b64(PEM)}`,
        "    insecure-skip-tls-verify: true",
        "    tls-server-name: k.example",
        "    proxy-url: socks5://proxy.example:1080",
        "    extensions:",
        "    - name: client.authentication.k8s.io/exec",
        "      extension: {audience: kube}",
        "users:",
        "- name: proxy",
        "  user:",
        "    token: t0ken",
        `    client-certificate-data: ${b64(PEM)}`,
        `    client-key-data: ${b64(KEY)}`,
        "    as: system:serviceaccount:kube-system:kube-proxy",
        "contexts:",
        "- name: c",
        "  context: {cluster: k, user: proxy, namespace: kube-system}",
        "current-context: c",
      ].join("\n"),
    );
    const { config, source } = loadKubeConfig({ kubeconfig: path, env: NO_ENV });
    assert.equal(source, `kubeconfig ${path}`);
    assert.equal(config.context, "c");
    assert.deepEqual(config.cluster, {
      name: "k",
      origin: `kubeconfig ${path}`,
      server: "https://k.example:6443",
      caPem: PEM,
      insecureSkipTlsVerify: true,
      disableCompression: false,
      tlsServerName: "k.example",
      proxyUrl: "socks5://proxy.example:1080",
      execExtension: { audience: "kube" },
    });
    assert.deepEqual(config.user, {
      name: "proxy",
      origin: `kubeconfig ${path}`,
      token: "t0ken",
      clientCertificatePem: PEM,
      clientKeyPem: KEY,
      impersonate: "system:serviceaccount:kube-system:kube-proxy",
    });
  });
});

Deno.test("kubeconfig: relative paths resolve against the kubeconfig's directory", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(join(dir, "conf/pki"), { recursive: true });
    await Deno.writeTextFile(join(dir, "conf/pki/ca.crt"), PEM);
    await Deno.writeTextFile(join(dir, "conf/pki/cli.crt"), PEM);
    await Deno.writeTextFile(join(dir, "conf/pki/cli.key"), KEY);
    await Deno.writeTextFile(join(dir, "conf/token"), "tok\n");
    const path = join(dir, "conf/config");
    await Deno.writeTextFile(
      path,
      single({ "certificate-authority": "pki/ca.crt" }, {
        "client-certificate": "pki/cli.crt",
        "client-key": "./pki/cli.key",
        tokenFile: "token",
        exec: {
          apiVersion: "client.authentication.k8s.io/v1beta1",
          command: "bin/plugin",
        },
      }),
    );
    // Loaded through a relative path from another working directory.
    const cwd = Deno.cwd();
    Deno.chdir(dir);
    try {
      const { config } = loadKubeConfig({ kubeconfig: "conf/config", env: NO_ENV });
      assert.equal(config.cluster.caPem, PEM);
      assert.equal(config.user.clientCertificate, join(dir, "conf/pki/cli.crt"));
      assert.equal(config.user.clientKey, join(dir, "conf/pki/cli.key"));
      assert.equal(config.user.tokenFile, join(dir, "conf/token"));
      assert.equal(config.user.exec?.command, join(dir, "conf/bin/plugin"));
      assert.equal(config.user.exec?.interactiveMode, "IfAvailable", "v1beta1 default");
    } finally {
      Deno.chdir(cwd);
    }
    // A bare command name is looked up in PATH, not next to the file.
    const bare = load(
      dir,
      single({}, {
        exec: {
          apiVersion: "client.authentication.k8s.io/v1",
          command: "kubelogin",
          interactiveMode: "Never",
        },
      }),
    );
    assert.equal(bare.config.user.exec?.command, "kubelogin");
  });
});

Deno.test("kubeconfig: $KUBECONFIG merges like kubectl", async () => {
  await withDir(async (dir) => {
    const first = join(dir, "first");
    const second = join(dir, "second");
    // The first file sets no current-context; its user "proxy" wins over the second's.
    await Deno.writeTextFile(
      first,
      doc({ users: [{ name: "proxy", body: { token: "from-first" } }] }),
    );
    await Deno.writeTextFile(
      second,
      doc({
        clusters: [{ name: "k", body: { server: "https://second.example" } }],
        users: [{ name: "proxy", body: { token: "from-second" } }],
        contexts: [{ name: "c2", body: { cluster: "k", user: "proxy" } }],
        current: "c2",
      }),
    );
    const missing = join(dir, "missing");
    const list = [missing, first, second, first].join(delimiter);
    const { config, source } = loadKubeConfig({ env: envOf({ KUBECONFIG: list }) });
    assert.equal(source, `$KUBECONFIG ${list}`);
    assert.equal(config.context, "c2", "current-context from the first file that sets it");
    assert.equal(config.cluster.server, "https://second.example");
    assert.equal(config.user.token, "from-first", "the first file to define a name wins");
    assert.equal(config.user.origin, `kubeconfig ${first}`);

    assert.throws(
      () => loadKubeConfig({ env: envOf({ KUBECONFIG: missing }) }),
      new RegExp(`\\$KUBECONFIG ${missing}: none of these files exists`),
    );
  });
});

Deno.test("kubeconfig: home directory candidates, in-cluster over home", async () => {
  await withDir(async (dir) => {
    for (const home of ["profile", "drive/path"]) {
      await Deno.mkdir(join(dir, home, ".kube"), { recursive: true });
      await Deno.writeTextFile(
        join(dir, home, ".kube/config"),
        single({ server: `https://${home.replace("/", "-")}.example` }, {}),
      );
    }
    // $HOME without a config, then %HOMEDRIVE%%HOMEPATH%, then %USERPROFILE%.
    const env = {
      HOME: join(dir, "empty"),
      HOMEDRIVE: dir,
      HOMEPATH: `${join("/", "drive", "path")}`,
      USERPROFILE: join(dir, "profile"),
    };
    assert.equal(
      loadKubeConfig({ env: envOf(env) }).config.cluster.server,
      "https://drive-path.example",
    );
    assert.equal(
      loadKubeConfig({ env: envOf({ ...env, HOMEPATH: "" }) }).config.cluster.server,
      "https://profile.example",
    );
    // A context without a user: anonymous.
    const anonymous = load(
      dir,
      doc({
        clusters: [{ name: "k", body: { server: "https://k.example" } }],
        contexts: [{ name: "c", body: { cluster: "k" } }],
        current: "c",
      }),
    );
    assert.deepEqual(anonymous.config.user, { name: "anonymous" });

    // In-cluster wins over the home directory; IPv6 hosts get brackets.
    const sa = join(dir, "var/run/secrets/kubernetes.io/serviceaccount");
    await Deno.mkdir(sa, { recursive: true });
    await Deno.writeTextFile(join(sa, "token"), "sa");
    await Deno.writeTextFile(join(sa, "ca.crt"), PEM);
    const inCluster = loadKubeConfig({
      env: envOf({
        ...env,
        KUBERNETES_SERVICE_HOST: "fd00::1",
        KUBERNETES_SERVICE_PORT: "443",
        CONTAINER_SANDBOX_MOUNT_POINT: dir,
      }),
    });
    assert.equal(inCluster.source, "in-cluster service account");
    assert.equal(inCluster.config.cluster.server, "https://[fd00::1]:443");
    assert.equal(inCluster.config.cluster.caPem, PEM);
    assert.equal(inCluster.config.user.tokenFile, join(sa, "token"));

    // --master alone keeps its own source, without credentials.
    const bare = loadKubeConfig({ master: "http://127.0.0.1:8080/", env: NO_ENV });
    assert.equal(bare.source, "--master without credentials");
    assert.equal(bare.config.cluster.server, "http://127.0.0.1:8080");
    assert.equal(bare.config.user.name, "anonymous");
  });
});

Deno.test("kubeconfig: errors name the file, the entry and the field", async () => {
  await withDir((dir) => {
    const file = `kubeconfig ${join(dir, "config")}`;
    const cases: [string, string][] = [
      [
        single({}, { "client-certificate-data": b64(PEM), "client-key-data": "not base64!" }),
        `${file}: user "proxy": client-key-data is not valid base64`,
      ],
      [
        single({}, { "client-certificate-data": b64(PEM), "client-key-data": b64("hello") }),
        `${file}: user "proxy": client-key-data does not hold a PEM document`,
      ],
      [
        single({}, { "client-certificate-data": b64(PEM) }),
        `${file}: user "proxy": client-certificate needs client-key or client-key-data`,
      ],
      [
        single({}, { "client-certificate": "cli.crt", "client-key": "cli.key" }),
        `${file}: user "proxy": client-certificate ${join(dir, "cli.crt")}: `,
      ],
      [
        single({ "certificate-authority": "ca.crt" }, {}),
        `${file}: cluster "k": certificate-authority ${join(dir, "ca.crt")}: `,
      ],
      [
        single({ "certificate-authority-data": b64(PEM), "certificate-authority": "x" }, {}),
        `${file}: cluster "k": certificate-authority and certificate-authority-data are both set`,
      ],
      [
        single({}, { token: "t", username: "u", password: "p" }),
        `${file}: user "proxy": both a token and username/password are set`,
      ],
      [
        single({}, { tokenFile: "absent" }),
        `${file}: user "proxy": tokenFile ${join(dir, "absent")}: `,
      ],
      [
        single({}, { token: 42 }),
        `${file}: user "proxy": token must be a string`,
      ],
      [
        single({}, { "as-groups": ["a", "b"] }),
        `${file}: user "proxy": as-groups is not supported`,
      ],
      [
        single({}, { exec: { apiVersion: "client.authentication.k8s.io/v1alpha1", command: "x" } }),
        `${file}: user "proxy": exec: apiVersion "client.authentication.k8s.io/v1alpha1" is not supported`,
      ],
      [
        single({}, { exec: { apiVersion: "client.authentication.k8s.io/v1", command: "x" } }),
        `${file}: user "proxy": exec: interactiveMode is required`,
      ],
      [
        single({}, { exec: { apiVersion: "client.authentication.k8s.io/v1beta1" } }),
        `${file}: user "proxy": exec: command is not set`,
      ],
      [
        single({}, {
          exec: { apiVersion: "client.authentication.k8s.io/v1beta1", command: "x" },
          "auth-provider": { name: "oidc" },
        }),
        `${file}: user "proxy": exec and auth-provider are both set`,
      ],
      [
        single({ "proxy-url": "ftp://proxy" }, {}),
        `${file}: cluster "k": proxy-url must be an http, https or socks5 URL`,
      ],
      [
        single({ server: "https://10.0.0.1:6443", "tls-server-name": "kubernetes" }, {}),
        `${file}: cluster "k": tls-server-name "kubernetes" is not supported`,
      ],
      [
        single({ "disable-compression": "yes" }, {}),
        `${file}: cluster "k": disable-compression must be true or false`,
      ],
      [
        single({ server: "k.example" }, {}),
        `${file}: cluster "k" server: "k.example" is not a URL`,
      ],
      [
        doc({
          clusters: [{ name: "k", body: { server: "https://k" } }],
          contexts: [{ name: "c", body: { cluster: "other" } }],
          current: "c",
        }),
        `${file}: context "c": cluster "other" is not defined`,
      ],
      [
        doc({
          clusters: [{ name: "k", body: { server: "https://k" } }],
          contexts: [{ name: "c", body: { cluster: "k", user: "nobody" } }],
          current: "c",
        }),
        `${file}: context "c": user "nobody" is not defined`,
      ],
      [doc({ current: "gone" }), `${file}: current-context "gone" is not defined`],
      [doc({}), `${file}: current-context is not set`],
      ["clusters: [unclosed", `${file}: not valid YAML`],
      ["- a list", `${file}: not a kubeconfig`],
    ];
    for (const [text, expected] of cases) {
      const message = loadError(dir, text);
      assert.ok(message.startsWith(expected), `expected "${expected}...", got "${message}"`);
    }
    // Errors never echo secrets.
    assert.ok(!loadError(dir, single({}, { token: "s3cret", username: "u" })).includes("s3cret"));
    // A missing --kubeconfig file.
    assert.throws(
      () => loadKubeConfig({ kubeconfig: join(dir, "absent"), env: NO_ENV }),
      new RegExp(`kubeconfig ${join(dir, "absent")}: no such file`),
    );
  });
});

Deno.test("kubeconfig: tls-server-name equal to the URL's host is accepted", async () => {
  await withDir((dir) => {
    const { config } = load(
      dir,
      single({ server: "https://k.example:6443", "tls-server-name": "K.example" }, {}),
    );
    assert.equal(config.cluster.tlsServerName, "K.example");
    // --master replaces the host, and the check follows it.
    const path = join(dir, "config");
    assert.throws(
      () => loadKubeConfig({ kubeconfig: path, master: "https://10.0.0.1:6443", env: NO_ENV }),
      /tls-server-name "K.example" is not supported/,
    );
  });
});
