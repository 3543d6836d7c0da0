/**
 * Response compression between the client and an API server that gzips as
 * kube-apiserver does (the fake): by default Deno's fetch asks for gzip and
 * decompresses large lists transparently; a kubeconfig cluster with
 * `disable-compression: true` gets them uncompressed, as client-go does.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { SERVICES } from "../../lib/kube/api.ts";
import { type Env, KubeClient } from "../../lib/kube/client.ts";
import { FakeApiServer, GZIP_THRESHOLD_BYTES } from "../../lib/fake-apiserver/mod.ts";
import { service } from "./helpers.ts";

const NO_ENV: Env = { get: () => undefined };

/** A server with 1,000 services: a list of them is over twice the compression threshold. */
async function bigServer(): Promise<FakeApiServer> {
  const server = await new FakeApiServer().start();
  for (let i = 0; i < 1000; i++) {
    server.create("services", service("default", `svc-${i}`, `10.96.${i >> 8}.${i & 255}`));
  }
  return server;
}

/** A client loaded from a kubeconfig file (JSON) whose cluster has `extra` fields. */
async function clientFor(server: FakeApiServer, extra: Record<string, unknown>) {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "kubeconfig");
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "c", cluster: { server: server.url, ...extra } }],
      users: [{ name: "u", user: {} }],
      contexts: [{ name: "c", context: { cluster: "c", user: "u" } }],
      "current-context": "c",
    }),
  );
  const client = KubeClient.connect({ kubeconfig: path, env: NO_ENV });
  return {
    client,
    async [Symbol.asyncDispose]() {
      client.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("compression: by default a large list arrives gzipped and is decompressed by fetch", async () => {
  const server = await bigServer();
  try {
    await using c = await clientFor(server, {});
    const list = await c.client.list(SERVICES, {});
    assert.equal(list.items?.length, 1000);
    const request = server.requests.at(-1)!;
    assert.match(request.acceptEncoding ?? "", /(^|,)\s*gzip\s*(,|$)/);
    assert.equal(request.contentEncoding, "gzip");

    const response = await c.client.get(SERVICES.path, {}, "list services");
    assert.equal(response.headers.get("content-encoding"), "gzip");
    const text = await response.text();
    assert.ok(text.length > 2 * GZIP_THRESHOLD_BYTES);
    assert.equal(JSON.parse(text).items.length, 1000);
  } finally {
    await server.stop();
  }
});

Deno.test("compression: disable-compression in the kubeconfig gets every answer uncompressed", async () => {
  const server = await bigServer();
  try {
    await using c = await clientFor(server, { "disable-compression": true });
    const served = server.requests.length;
    const list = await c.client.list(SERVICES, {});
    assert.equal(list.items?.length, 1000);
    // Pages as the agent lists them, each above the threshold.
    let cont = "";
    let pages = 0;
    do {
      const page = await c.client.list(SERVICES, { limit: 450, continue: cont || undefined });
      cont = page.metadata?.continue ?? "";
      pages++;
    } while (cont);
    assert.equal(pages, 3);

    const response = await c.client.get(SERVICES.path, {}, "list services");
    assert.equal(response.headers.get("content-encoding"), null);
    const bytes = new Uint8Array(await response.arrayBuffer());
    assert.ok(bytes.length > 2 * GZIP_THRESHOLD_BYTES, `${bytes.length} bytes as sent`);
    assert.equal(JSON.parse(new TextDecoder().decode(bytes)).items.length, 1000);

    // A watch works as before (a watch is never compressed).
    const events = await c.client.watch(SERVICES, { timeoutSeconds: 1 });
    let added = 0;
    for await (const e of events) if (e.type === "ADDED") added++;
    assert.equal(added, 1000);

    const mine = server.requests.slice(served);
    assert.equal(mine.length, 6);
    for (const r of mine) {
      assert.equal(r.acceptEncoding, "identity", `${r.verb} ${JSON.stringify(r.query)}`);
      assert.equal(r.contentEncoding, undefined, `${r.verb} ${JSON.stringify(r.query)}`);
    }
  } finally {
    await server.stop();
  }
});
