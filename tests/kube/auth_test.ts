import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ApiError, SERVICES } from "../../lib/kube/api.ts";
import { type Env, KubeClient, type KubeClientOptions } from "../../lib/kube/client.ts";
import { FakeApiServer } from "../../lib/fake-apiserver/mod.ts";
import { hasOpenssl, makeClientCert, makePki } from "./pki.ts";
import { RecordingLogger, service } from "./helpers.ts";

const NO_ENV: Env = { get: () => undefined };

/**
 * A real HTTP server that records the credentials each request carried and
 * answers an empty service list, or 401 when `tokens` is non-empty and the
 * bearer token is not in it.
 */
class HeaderServer {
  readonly seen: { authorization?: string; impersonate?: string }[] = [];
  tokens: string[] = [];
  readonly #server: Deno.HttpServer<Deno.NetAddr>;

  constructor() {
    this.#server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
      const authorization = req.headers.get("authorization") ?? undefined;
      this.seen.push({
        authorization,
        impersonate: req.headers.get("impersonate-user") ?? undefined,
      });
      const token = authorization?.startsWith("Bearer ") ? authorization.slice(7) : undefined;
      if (this.tokens.length > 0 && !(token && this.tokens.includes(token))) {
        return Response.json({ kind: "Status", status: "Failure", code: 401 }, { status: 401 });
      }
      return Response.json({
        kind: "ServiceList",
        apiVersion: "v1",
        metadata: { resourceVersion: "1" },
        items: [],
      });
    });
  }

  get url(): string {
    return `http://127.0.0.1:${this.#server.addr.port}`;
  }

  /** The Authorization header of the last request. */
  get last(): string | undefined {
    return this.seen.at(-1)?.authorization;
  }

  async stop(): Promise<void> {
    await this.#server.shutdown();
  }
}

function kubeconfigYaml(server: string, user: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "test", cluster: { server } }],
    users: [{ name: "proxy", user }],
    contexts: [{ name: "test", context: { cluster: "test", user: "proxy" } }],
    "current-context": "test",
  });
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "hnsproxy-auth-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Writes the kubeconfig into `dir` and connects with a fake clock. */
function connect(
  dir: string,
  server: string,
  user: Record<string, unknown>,
  options: KubeClientOptions = {},
): KubeClient {
  const path = join(dir, "config");
  Deno.writeTextFileSync(path, kubeconfigYaml(server, user));
  return KubeClient.connect({ kubeconfig: path, env: NO_ENV, ...options });
}

const list = (client: KubeClient) => client.list(SERVICES, {});

Deno.test("auth: a token file is re-read after a minute and after a 401", async () => {
  const server = new HeaderServer();
  let now = 1_000_000;
  try {
    await withDir(async (dir) => {
      const tokenFile = join(dir, "token");
      await Deno.writeTextFile(tokenFile, "one\n");
      const client = connect(dir, server.url, { tokenFile: "token" }, { auth: { now: () => now } });
      try {
        await list(client);
        assert.equal(server.last, "Bearer one");

        // Rotated on disk: still the cached token within the minute...
        await Deno.writeTextFile(tokenFile, "two");
        now += 30_000;
        await list(client);
        assert.equal(server.last, "Bearer one");
        // ...and the new one after it.
        now += 31_000;
        await list(client);
        assert.equal(server.last, "Bearer two");

        // Rotated and the old one revoked: the 401 makes the next request re-read.
        await Deno.writeTextFile(tokenFile, "three");
        server.tokens = ["three"];
        const err = await list(client).catch((e) => e);
        assert.ok(err instanceof ApiError && err.code === 401);
        await list(client);
        assert.equal(server.last, "Bearer three");

        // A file that vanishes later: the last token read stays in use.
        await Deno.remove(tokenFile);
        now += 120_000;
        await list(client);
        assert.equal(server.last, "Bearer three");
      } finally {
        client.close();
      }
    });
  } finally {
    await server.stop();
  }
});

Deno.test("auth: token file over static token; basic auth; impersonation", async () => {
  const server = new HeaderServer();
  try {
    await withDir(async (dir) => {
      await Deno.writeTextFile(join(dir, "token"), "from-file");
      const logger = new RecordingLogger();
      let client = connect(dir, server.url, { token: "static", tokenFile: "token" }, { logger });
      await list(client);
      assert.equal(server.last, "Bearer from-file");
      client.close();

      // With a static token the file may be missing: the static token is used, with a warning.
      client = connect(dir, server.url, { token: "static", tokenFile: "absent" }, { logger });
      await list(client);
      assert.equal(server.last, "Bearer static");
      assert.ok(logger.text().includes("cannot read the token file"));
      assert.ok(!logger.text().includes("from-file"), "no token in the log");
      client.close();

      client = connect(dir, server.url, { username: "admin", password: "pä55:word", as: "jane" });
      await list(client);
      assert.equal(server.last, `Basic ${btoa("admin:p\u00c3\u00a455:word")}`);
      assert.equal(server.seen.at(-1)?.impersonate, "jane");
      client.close();

      client = connect(dir, server.url, {});
      await list(client);
      assert.equal(server.last, undefined, "anonymous");
      client.close();
    });
  } finally {
    await server.stop();
  }
});

/** An exec plugin: a shell script that counts its runs and prints cred.json. */
async function writePlugin(dir: string): Promise<void> {
  await Deno.mkdir(join(dir, "bin"));
  const script = join(dir, "bin/plugin.sh");
  await Deno.writeTextFile(
    script,
    [
      "#!/bin/sh",
      'echo run >> "$PLUGIN_DIR/runs"',
      'printf "%s" "$KUBERNETES_EXEC_INFO" > "$PLUGIN_DIR/info.json"',
      'printf "%s" "$*" > "$PLUGIN_DIR/args"',
      'if [ -n "$PLUGIN_FAIL" ]; then echo "token service unreachable" >&2; exit 3; fi',
      'cat "$PLUGIN_DIR/cred.json"',
      "",
    ].join("\n"),
  );
  await Deno.chmod(script, 0o755);
}

function credential(status: Record<string, unknown>, apiVersion = "v1"): string {
  return JSON.stringify({
    apiVersion: `client.authentication.k8s.io/${apiVersion}`,
    kind: "ExecCredential",
    status,
  });
}

async function runs(dir: string): Promise<number> {
  const text = await Deno.readTextFile(join(dir, "runs")).catch(() => "");
  return text.split("\n").filter((l) => l).length;
}

function execUser(dir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    exec: {
      apiVersion: "client.authentication.k8s.io/v1",
      // Relative to the kubeconfig's directory.
      command: "./bin/plugin.sh",
      args: ["get-token", "--cluster", "test"],
      env: [{ name: "PLUGIN_DIR", value: dir }],
      interactiveMode: "IfAvailable",
      ...extra,
    },
  };
}

Deno.test({
  name: "auth: exec plugin credentials are cached until they expire and re-run after a 401",
  ignore: Deno.build.os === "windows",
  async fn() {
    const server = new HeaderServer();
    let now = Date.parse("2030-01-01T00:00:00Z");
    try {
      await withDir(async (dir) => {
        await writePlugin(dir);
        await Deno.writeTextFile(
          join(dir, "cred.json"),
          credential({ token: "exec-1", expirationTimestamp: "2030-01-01T00:10:00Z" }),
        );
        const client = connect(dir, server.url, execUser(dir), {
          auth: { now: () => now, stdinIsTerminal: () => false },
        });
        try {
          // Concurrent first requests share one run.
          await Promise.all([list(client), list(client), list(client)]);
          assert.equal(await runs(dir), 1);
          assert.equal(server.last, "Bearer exec-1");
          assert.equal(await Deno.readTextFile(join(dir, "args")), "get-token --cluster test");
          const info = JSON.parse(await Deno.readTextFile(join(dir, "info.json")));
          assert.deepEqual(info, {
            apiVersion: "client.authentication.k8s.io/v1",
            kind: "ExecCredential",
            spec: { interactive: false },
          });

          // Cached until the expiration timestamp.
          now += 9 * 60_000;
          await list(client);
          assert.equal(await runs(dir), 1);
          await Deno.writeTextFile(
            join(dir, "cred.json"),
            credential({ token: "exec-2", expirationTimestamp: "2030-01-01T01:00:00Z" }),
          );
          now += 2 * 60_000;
          await list(client);
          assert.equal(await runs(dir), 2);
          assert.equal(server.last, "Bearer exec-2");

          // Revoked before it expired: the 401 makes the next request run the plugin.
          await Deno.writeTextFile(join(dir, "cred.json"), credential({ token: "exec-3" }));
          server.tokens = ["exec-3"];
          await assert.rejects(list(client), (e) => e instanceof ApiError && e.code === 401);
          await list(client);
          assert.equal(await runs(dir), 3);
          assert.equal(server.last, "Bearer exec-3");
          // No expiration: valid until rejected.
          now += 24 * 3600_000;
          await list(client);
          assert.equal(await runs(dir), 3);
        } finally {
          client.close();
        }
      });
    } finally {
      await server.stop();
    }
  },
});

Deno.test({
  name: "auth: exec plugin with v1beta1, provideClusterInfo and the cluster's exec extension",
  ignore: !hasOpenssl || Deno.build.os === "windows",
  async fn() {
    const server = new HeaderServer();
    const pki = await makePki();
    try {
      await withDir(async (dir) => {
        await writePlugin(dir);
        await Deno.writeTextFile(
          join(dir, "cred.json"),
          credential({ token: "beta" }, "v1beta1"),
        );
        const path = join(dir, "config");
        const ca = pki.ca;
        const user = execUser(dir, {
          apiVersion: "client.authentication.k8s.io/v1beta1",
          interactiveMode: undefined,
          provideClusterInfo: true,
        });
        await Deno.writeTextFile(
          path,
          JSON.stringify({
            clusters: [{
              name: "test",
              cluster: {
                server: server.url,
                "certificate-authority-data": btoa(ca),
                extensions: [{
                  name: "client.authentication.k8s.io/exec",
                  extension: { audience: "kube" },
                }],
              },
            }],
            users: [{ name: "proxy", user }],
            contexts: [{ name: "test", context: { cluster: "test", user: "proxy" } }],
            "current-context": "test",
          }),
        );
        const client = KubeClient.connect({
          kubeconfig: path,
          env: NO_ENV,
          auth: { stdinIsTerminal: () => false },
        });
        try {
          await list(client);
        } finally {
          client.close();
        }
        assert.equal(server.last, "Bearer beta");
        const info = JSON.parse(await Deno.readTextFile(join(dir, "info.json")));
        assert.deepEqual(info, {
          apiVersion: "client.authentication.k8s.io/v1beta1",
          kind: "ExecCredential",
          spec: {
            interactive: false,
            cluster: {
              server: server.url,
              "certificate-authority-data": btoa(ca),
              config: { audience: "kube" },
            },
          },
        });
      });
    } finally {
      await server.stop();
      await Deno.remove(pki.dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "auth: exec plugin failures name the kubeconfig user and the command",
  ignore: Deno.build.os === "windows",
  async fn() {
    const server = new HeaderServer();
    try {
      await withDir(async (dir) => {
        await writePlugin(dir);
        const command = join(dir, "bin/plugin.sh");
        const where = `kubeconfig ${join(dir, "config")}: user "proxy": exec plugin "${command}"`;
        const failure = async (
          cred: string,
          extra: Record<string, unknown> = {},
          terminal = false,
        ): Promise<string> => {
          await Deno.writeTextFile(join(dir, "cred.json"), cred);
          const client = connect(dir, server.url, execUser(dir, extra), {
            auth: { stdinIsTerminal: () => terminal },
          });
          try {
            await list(client);
          } catch (err) {
            return (err as Error).message;
          } finally {
            client.close();
          }
          throw new Error("the request succeeded");
        };
        const cases: [() => Promise<string>, string][] = [
          [
            () =>
              failure("", {
                env: [{ name: "PLUGIN_DIR", value: dir }, { name: "PLUGIN_FAIL", value: "1" }],
              }),
            `${where}: exited with code 3: token service unreachable`,
          ],
          [
            () => failure("", { command: "no-such-plugin-here", installHint: "install it from x" }),
            `kubeconfig ${
              join(dir, "config")
            }: user "proxy": exec plugin "no-such-plugin-here": command not found; install it from x`,
          ],
          [() => failure("not json"), `${where}: did not print an ExecCredential: `],
          [
            () => failure(credential({ token: "t" }, "v1beta1")),
            `${where}: printed apiVersion "client.authentication.k8s.io/v1beta1", the kubeconfig asks for "client.authentication.k8s.io/v1"`,
          ],
          [() => failure(credential({})), `${where}: the ExecCredential has neither a token`],
          [
            () => failure(credential({ clientCertificateData: "x" })),
            `${where}: the ExecCredential has only one of clientCertificateData and clientKeyData`,
          ],
          [
            () => failure(credential({ token: "t", expirationTimestamp: "soon" })),
            `${where}: status.expirationTimestamp "soon" is not a time`,
          ],
          [
            () => failure(credential({ token: "t", expirationTimestamp: "2000-01-01T00:00:00Z" })),
            `${where}: the ExecCredential expired at 2000-01-01T00:00:00Z`,
          ],
          [
            () => failure(credential({ token: "t" }), { interactiveMode: "Always" }),
            `${where}: interactiveMode is Always but standard input is not a terminal`,
          ],
        ];
        // One after the other: they share cred.json.
        for (const [message, expected] of cases) {
          const text = await message();
          assert.ok(text.startsWith(expected), `expected "${expected}...", got "${text}"`);
        }
        // Never runs the plugin without a terminal even when one exists.
        await Deno.writeTextFile(join(dir, "cred.json"), credential({ token: "t" }));
        const client = connect(dir, server.url, execUser(dir, { interactiveMode: "Never" }), {
          auth: { stdinIsTerminal: () => true },
        });
        try {
          await list(client);
        } finally {
          client.close();
        }
        const info = JSON.parse(await Deno.readTextFile(join(dir, "info.json")));
        assert.equal(info.spec.interactive, false);
      });
    } finally {
      await server.stop();
    }
  },
});

Deno.test({
  name: "auth: client certificate files and exec plugin certificates over HTTPS",
  ignore: !hasOpenssl || Deno.build.os === "windows",
  async fn() {
    const pki = await makePki();
    const server = await new FakeApiServer({
      tls: { cert: pki.serverCert, key: pki.serverKey, clientCA: pki.ca },
      tokens: ["unused"],
    }).start();
    server.create("services", service("default", "kubernetes", "10.96.0.1"));
    try {
      await withDir(async (dir) => {
        await Deno.writeTextFile(join(dir, "ca.crt"), pki.ca);
        await Deno.writeTextFile(join(dir, "cli.crt"), pki.clientCert);
        await Deno.writeTextFile(join(dir, "cli.key"), pki.clientKey);
        const write = (user: Record<string, unknown>) =>
          Deno.writeTextFile(
            join(dir, "config"),
            JSON.stringify({
              clusters: [{
                name: "test",
                cluster: { server: server.url, "certificate-authority": "ca.crt" },
              }],
              users: [{ name: "proxy", user }],
              contexts: [{ name: "test", context: { cluster: "test", user: "proxy" } }],
              "current-context": "test",
            }),
          );

        await write({ "client-certificate": "cli.crt", "client-key": "cli.key" });
        let now = 1_000_000;
        let client = KubeClient.connect({
          kubeconfig: join(dir, "config"),
          env: NO_ENV,
          auth: { now: () => now },
        });
        try {
          assert.equal((await list(client)).items?.length, 1);
          assert.equal(server.requests.at(-1)!.user, "cert:system:kube-proxy");

          // The files rotate (as kubelet rotates its client certificate): read again after a minute.
          const rotated = await makeClientCert(pki, "rotated");
          await Deno.writeTextFile(join(dir, "cli.crt"), rotated.cert);
          await Deno.writeTextFile(join(dir, "cli.key"), rotated.key);
          now += 61_000;
          await list(client);
          assert.equal(server.requests.at(-1)!.user, "cert:rotated");
        } finally {
          client.close();
        }

        await writePlugin(dir);
        await Deno.writeTextFile(
          join(dir, "cred.json"),
          credential({ clientCertificateData: pki.clientCert, clientKeyData: pki.clientKey }),
        );
        await write(execUser(dir));
        client = KubeClient.connect({
          kubeconfig: join(dir, "config"),
          env: NO_ENV,
          auth: { stdinIsTerminal: () => false },
        });
        try {
          assert.equal((await list(client)).items?.length, 1);
          assert.equal(server.requests.at(-1)!.user, "cert:system:kube-proxy");
        } finally {
          client.close();
        }
      });
    } finally {
      await server.stop();
      await Deno.remove(pki.dir, { recursive: true });
    }
  },
});

Deno.test("auth: an auth-provider user goes through @kubernetes/client-node, loaded lazily", async () => {
  const server = await new FakeApiServer({ tokens: ["gcp-access-token"] }).start();
  try {
    await withDir(async (dir) => {
      const client = connect(dir, server.url, {
        "auth-provider": {
          name: "gcp",
          config: { "access-token": "gcp-access-token", expiry: "2999-01-01T00:00:00Z" },
        },
      });
      try {
        await list(client);
        assert.equal(server.requests.at(-1)!.user, "token");
      } finally {
        client.close();
      }
      // A provider that cannot produce a token fails with the user and provider named.
      const expired = connect(dir, server.url, {
        "auth-provider": { name: "gcp", config: { "access-token": "x", expiry: "2000-01-01" } },
      });
      try {
        await assert.rejects(
          list(expired),
          new RegExp(`kubeconfig ${join(dir, "config")}: user "proxy": auth-provider "gcp": `),
        );
      } finally {
        expired.close();
      }
    });
  } finally {
    await server.stop();
  }
});

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** Runs a script importing lib/kube/client.ts (as `kube`) in its own Deno process. */
async function runProbe(
  body: string,
  flags: string[],
): Promise<{ success: boolean; stdout: string; stderr: string }> {
  const dir = await Deno.makeTempDir({ prefix: "hnsproxy-probe-" });
  try {
    const script = join(dir, "probe.ts");
    const client = new URL("../../lib/kube/client.ts", import.meta.url).href;
    await Deno.writeTextFile(script, `import * as kube from "${client}";\n${body}\n`);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...flags, "--config", join(ROOT, "deno.json"), script],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decoder = new TextDecoder();
    return {
      success: out.success,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The npm packages a probe loads, from Deno's debug log (it names each package folder resolved). */
async function loadedPackages(body: string): Promise<string> {
  const out = await runProbe(body, ["-A", "-L", "debug"]);
  assert.ok(out.success, out.stderr.slice(-2000));
  return out.stderr.split("\n").filter((l) => l.includes("Resolved package folder of")).join(
    "\n",
  );
}

/** A probe body: connect with a kubeconfig for `user` and make one request, printing any error. */
function connectProbe(user: Record<string, unknown>): string {
  return `
    const path = Deno.makeTempFileSync();
    Deno.writeTextFileSync(path, ${JSON.stringify(kubeconfigYaml("http://127.0.0.1:9", user))});
    const client = kube.KubeClient.connect({ kubeconfig: path, env: { get: () => undefined } });
    await client.list({ path: "/api/v1/services", plural: "services" } as never, {})
      .catch((e) => console.log(e.message));
    client.close();
    Deno.removeSync(path);
  `;
}

Deno.test("auth: importing and using lib/kube/client.ts does not load @kubernetes/client-node", async () => {
  // The kubeconfig is JSON: no npm package at all (lib/config/yaml.ts).
  const plain = await loadedPackages(connectProbe({ token: "t" }));
  assert.doesNotMatch(plain, /@kubernetes\/client-node/);
  assert.doesNotMatch(plain, /yaml@/);

  // The debug log names the packages loaded: this one loads client-node.
  const legacy = await loadedPackages(
    connectProbe({ "auth-provider": { name: "gcp", config: { "access-token": "t" } } }),
  );
  assert.match(legacy, /@kubernetes\/client-node@/);
});

Deno.test("auth: without permission to run the exec plugin, a clear error", async () => {
  // The permissions of the compiled hnsproxy (scripts/compile.ts): only sc.exe may run.
  const out = await runProbe(
    connectProbe({
      exec: {
        apiVersion: "client.authentication.k8s.io/v1",
        command: "kubelogin",
        interactiveMode: "Never",
      },
    }),
    ["--allow-read", "--allow-write", "--allow-env", "--allow-net", "--allow-run=sc.exe"],
  );
  assert.ok(out.success, out.stderr);
  assert.match(
    out.stdout,
    /user "proxy": exec plugin "kubelogin": this process may not run it \(Deno's --allow-run permission/,
  );
});
