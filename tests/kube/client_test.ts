import assert from "node:assert/strict";
import { join } from "node:path";
import { ApiError, SERVICES } from "../../lib/kube/api.ts";
import { type Env, KubeClient, loadKubeConfig } from "../../lib/kube/client.ts";
import { FakeApiServer, type FakeApiServerOptions } from "../../lib/fake-apiserver/mod.ts";
import { hasOpenssl, makePki } from "./pki.ts";
import { RecordingLogger, service } from "./helpers.ts";
import { loadYaml } from "../../lib/config/yaml.ts";

// These files are YAML: the parser is loaded, as the agent loads it for a YAML file.
await loadYaml();

function envOf(vars: Record<string, string>): Env {
  return { get: (name) => vars[name] };
}

const NO_ENV = envOf({});

const b64 = (s: string) => btoa(s);

function kubeconfigYaml(server: string, user: string, cluster = ""): string {
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: test",
    "  cluster:",
    `    server: ${server}`,
    ...cluster.split("\n").filter((l) => l).map((l) => `    ${l}`),
    "users:",
    "- name: proxy",
    "  user:",
    ...user.split("\n").filter((l) => l).map((l) => `    ${l}`),
    "contexts:",
    "- name: test",
    "  context: {cluster: test, user: proxy}",
    "current-context: test",
    "",
  ].join("\n");
}

async function withServer(
  opts: FakeApiServerOptions,
  fn: (server: FakeApiServer, dir: string) => Promise<void>,
): Promise<void> {
  const server = await new FakeApiServer(opts).start();
  server.create("services", service("default", "kubernetes", "10.96.0.1"));
  const dir = await Deno.makeTempDir({ prefix: "hnsproxy-kubeconfig-" });
  try {
    await fn(server, dir);
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

async function listWith(client: KubeClient): Promise<number> {
  try {
    return (await client.list(SERVICES, {})).items?.length ?? 0;
  } finally {
    client.close();
  }
}

Deno.test("client: a kubeconfig file with a bearer token, over HTTP", async () => {
  await withServer({ tokens: ["s3cret-token"] }, async (server, dir) => {
    const path = join(dir, "config");
    await Deno.writeTextFile(path, kubeconfigYaml(server.url, "token: s3cret-token"));
    const logger = new RecordingLogger();
    const client = KubeClient.connect({ kubeconfig: path, env: NO_ENV, logger });
    assert.equal(client.server, server.url);
    assert.equal(await listWith(client), 1);
    assert.equal(server.requests.at(-1)!.user, "token");
    assert.ok(!logger.text().includes("s3cret"), "credentials never logged");

    await Deno.writeTextFile(path, kubeconfigYaml(server.url, "token: wrong"));
    const err = await listWith(KubeClient.connect({ kubeconfig: path, env: NO_ENV }))
      .catch((e) => e);
    assert.ok(err instanceof ApiError);
    assert.equal(err.code, 401);
    assert.equal(err.reason, "Unauthorized");
    assert.ok(!err.message.includes("wrong"));
  });
});

Deno.test("client: an exec credential plugin supplies the token", async () => {
  await withServer({ tokens: ["from-exec"] }, async (server, dir) => {
    const credential = JSON.stringify({
      apiVersion: "client.authentication.k8s.io/v1",
      kind: "ExecCredential",
      status: { token: "from-exec" },
    });
    await Deno.writeTextFile(join(dir, "cred.json"), credential);
    const path = join(dir, "config");
    await Deno.writeTextFile(
      path,
      kubeconfigYaml(
        server.url,
        [
          "exec:",
          "  apiVersion: client.authentication.k8s.io/v1",
          "  command: cat",
          `  args: ["${join(dir, "cred.json")}"]`,
          "  interactiveMode: Never",
        ].join("\n"),
      ),
    );
    assert.equal(await listWith(KubeClient.connect({ kubeconfig: path, env: NO_ENV })), 1);
    assert.equal(server.requests.at(-1)!.user, "token");
  });
});

Deno.test({
  name: "client: client certificates and a CA file over HTTPS",
  ignore: !hasOpenssl,
  async fn() {
    const pki = await makePki();
    try {
      await withServer({
        tls: { cert: pki.serverCert, key: pki.serverKey, clientCA: pki.ca },
        tokens: ["unused"],
      }, async (server, dir) => {
        await Deno.copyFile(join(pki.dir, "ca.crt"), join(dir, "ca.crt"));
        const path = join(dir, "config");
        // A relative CA path resolves against the kubeconfig's directory.
        await Deno.writeTextFile(
          path,
          kubeconfigYaml(
            server.url,
            `client-certificate-data: ${b64(pki.clientCert)}\nclient-key-data: ${
              b64(pki.clientKey)
            }`,
            "certificate-authority: ca.crt",
          ),
        );
        const client = KubeClient.connect({ kubeconfig: path, env: NO_ENV });
        assert.ok(server.url.startsWith("https://"));
        assert.equal(await listWith(client), 1);
        assert.equal(server.requests.at(-1)!.user, "cert:system:kube-proxy");

        // Without the CA the server certificate is not trusted.
        await Deno.writeTextFile(
          path,
          kubeconfigYaml(
            server.url,
            `client-certificate-data: ${b64(pki.clientCert)}\nclient-key-data: ${
              b64(pki.clientKey)
            }`,
          ),
        );
        await assert.rejects(
          listWith(KubeClient.connect({ kubeconfig: path, env: NO_ENV })),
          (e: Error) => /certificate|UnknownIssuer/i.test(`${e.message} ${e.cause}`),
        );
      });
    } finally {
      await Deno.remove(pki.dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "client: in-cluster service account (HostProcess mount point) over HTTPS, watch streams",
  ignore: !hasOpenssl,
  async fn() {
    const pki = await makePki();
    try {
      await withServer({
        tls: { cert: pki.serverCert, key: pki.serverKey },
        tokens: ["sa-token"],
      }, async (server, dir) => {
        const sa = join(dir, "var/run/secrets/kubernetes.io/serviceaccount");
        await Deno.mkdir(sa, { recursive: true });
        await Deno.writeTextFile(join(sa, "token"), "sa-token");
        await Deno.writeTextFile(join(sa, "ca.crt"), pki.ca);
        const port = new URL(server.url).port;
        const env = envOf({
          KUBERNETES_SERVICE_HOST: "127.0.0.1",
          KUBERNETES_SERVICE_PORT: port,
          CONTAINER_SANDBOX_MOUNT_POINT: dir,
          HOME: dir,
        });
        const loaded = loadKubeConfig({ env });
        assert.equal(loaded.source, "in-cluster service account");
        const client = new KubeClient(loaded.config);
        try {
          assert.equal(client.server, `https://127.0.0.1:${port}`);
          const list = await client.list(SERVICES, {});
          assert.equal(server.requests.at(-1)!.user, "token");
          const ac = new AbortController();
          const events = await client.watch(SERVICES, {
            resourceVersion: list.metadata!.resourceVersion,
          }, ac.signal);
          server.create("services", service("default", "new", "10.96.0.2"));
          const first = await events.next();
          assert.equal(first.value?.type, "ADDED");
          assert.equal(first.value?.object.metadata?.name, "new");
          ac.abort();
          await assert.rejects(events.next());
        } finally {
          client.close();
        }
      });
    } finally {
      await Deno.remove(pki.dir, { recursive: true });
    }
  },
});

Deno.test("loadKubeConfig: order of sources and the --master override", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hnsproxy-kc-" });
  try {
    const a = join(dir, "a.yaml");
    const b = join(dir, "b.yaml");
    await Deno.writeTextFile(a, kubeconfigYaml("https://a.example:6443", "token: a"));
    await Deno.writeTextFile(
      b,
      kubeconfigYaml("https://b.example:6443", "token: b").replaceAll("test", "other")
        .replaceAll("proxy", "other-user"),
    );
    await Deno.mkdir(join(dir, "home/.kube"), { recursive: true });
    await Deno.writeTextFile(
      join(dir, "home/.kube/config"),
      kubeconfigYaml("https://home.example:6443", "token: h"),
    );
    const server = (o: Parameters<typeof loadKubeConfig>[0]) =>
      loadKubeConfig(o).config.cluster.server;

    // --kubeconfig wins over $KUBECONFIG.
    assert.equal(
      server({ kubeconfig: a, env: envOf({ KUBECONFIG: b }) }),
      "https://a.example:6443",
    );
    // $KUBECONFIG: files merged, the first one's current-context wins.
    const merged = loadKubeConfig({ env: envOf({ KUBECONFIG: `${a}:${b}` }) });
    assert.equal(merged.config.cluster.server, "https://a.example:6443");
    assert.deepEqual(merged.config.contexts?.toSorted(), ["other", "test"]);
    // ~/.kube/config when nothing else is given.
    assert.equal(server({ env: envOf({ HOME: join(dir, "home") }) }), "https://home.example:6443");
    // --master overrides the server and keeps the credentials.
    const over = loadKubeConfig({ kubeconfig: a, master: "http://127.0.0.1:8080", env: NO_ENV });
    assert.equal(over.config.cluster.server, "http://127.0.0.1:8080");
    assert.equal(over.config.user.token, "a");
    // --master alone: no credentials.
    const bare = loadKubeConfig({ master: "http://127.0.0.1:8080", env: NO_ENV });
    assert.equal(bare.config.cluster.server, "http://127.0.0.1:8080");
    // Nothing at all: a clear error.
    assert.throws(() => loadKubeConfig({ env: NO_ENV }), /no API server configuration/);
    assert.throws(
      () => loadKubeConfig({ kubeconfig: join(dir, "missing"), env: NO_ENV }),
      /missing/,
    );
    assert.throws(
      () => loadKubeConfig({ master: "ftp://x", env: NO_ENV }),
      /--master: "ftp:\/\/x" must be an http/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
