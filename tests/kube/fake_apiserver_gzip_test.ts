/**
 * The fake API server compresses its answers as kube-apiserver does: gzip
 * at level 1 for get and list answers larger than 128 KiB when the request's
 * Accept-Encoding has a `gzip` token, never a watch stream. These tests speak
 * raw HTTP/1.1 over a TCP connection (fetch would add its own Accept-Encoding
 * and decompress), with explicit headers.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { gunzipSync } from "node:zlib";
import { acceptsGzip, FakeApiServer, GZIP_THRESHOLD_BYTES } from "../../lib/fake-apiserver/mod.ts";
import { service } from "./helpers.ts";

/** One raw HTTP answer: status, headers (lower-case names) and body bytes as sent (de-chunked). */
interface RawAnswer {
  status: number;
  headers: Map<string, string>;
  body: Uint8Array;
}

function indexOf(bytes: Uint8Array, needle: string, from = 0): number {
  const n = new TextEncoder().encode(needle);
  outer: for (let i = from; i <= bytes.length - n.length; i++) {
    for (let j = 0; j < n.length; j++) if (bytes[i + j] !== n[j]) continue outer;
    return i;
  }
  return -1;
}

function dechunk(bytes: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  let at = 0;
  for (;;) {
    const eol = indexOf(bytes, "\r\n", at);
    assert.ok(eol >= 0, "chunked body: a chunk size line");
    const size = parseInt(new TextDecoder().decode(bytes.subarray(at, eol)), 16);
    if (size === 0) return Buffer.concat(parts);
    parts.push(bytes.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

/** Sends a GET with exactly `headers` (plus Host and Connection: close) and reads the whole answer. */
async function rawGet(
  server: FakeApiServer,
  path: string,
  headers: Record<string, string>,
): Promise<RawAnswer> {
  const { port } = new URL(server.url);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(port) });
  const lines = [`GET ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`, "Connection: close"];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  await conn.write(new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n"));
  const parts: Uint8Array[] = [];
  for await (const chunk of conn.readable) parts.push(chunk);
  const all = Buffer.concat(parts);
  const end = indexOf(all, "\r\n\r\n");
  assert.ok(end > 0, "an HTTP answer");
  const [statusLine, ...headerLines] = new TextDecoder().decode(all.subarray(0, end)).split("\r\n");
  const answerHeaders = new Map<string, string>();
  for (const line of headerLines) {
    const colon = line.indexOf(":");
    answerHeaders.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  let body: Uint8Array = all.subarray(end + 4);
  if (answerHeaders.get("transfer-encoding") === "chunked") body = dechunk(body);
  return { status: Number(statusLine.split(" ")[1]), headers: answerHeaders, body };
}

/** The answer's JSON text, gunzipped when it says it is gzip. */
function textOf(answer: RawAnswer): string {
  const encoding = answer.headers.get("content-encoding");
  const bytes = encoding === "gzip" ? gunzipSync(answer.body) : answer.body;
  if (encoding !== undefined && encoding !== "gzip") assert.fail(`Content-Encoding ${encoding}`);
  return new TextDecoder().decode(bytes);
}

/** A server with 1,000 services (a list of them is over twice the threshold). */
async function bigServer(): Promise<FakeApiServer> {
  const server = await new FakeApiServer().start();
  for (let i = 0; i < 1000; i++) {
    server.create(
      "services",
      service("default", `svc-${String(i).padStart(4, "0")}`, `10.96.${i >> 8}.${i & 255}`, {
        labels: { app: `app-${i}` },
      }),
    );
  }
  return server;
}

Deno.test("fake API server gzip: Accept-Encoding is read as kube-apiserver reads it", () => {
  for (
    const yes of ["gzip", "gzip, br", "gzip,br", "br, gzip", " deflate , gzip ", "identity,gzip"]
  ) {
    assert.equal(acceptsGzip(yes), true, yes);
  }
  // No q-value parsing: a token with parameters is not "gzip", whatever q says.
  for (
    const no of [
      undefined,
      "",
      "identity",
      "br",
      "deflate",
      "gzip;q=0",
      "gzip;q=1.0",
      "*",
      "GZIP",
      "x-gzip",
    ]
  ) {
    assert.equal(acceptsGzip(no), false, String(no));
  }
});

Deno.test("fake API server gzip: a large list is compressed and decompresses to the uncompressed JSON", async () => {
  const server = await bigServer();
  try {
    const plain = await rawGet(server, "/api/v1/services", { "Accept": "application/json" });
    assert.equal(plain.status, 200);
    assert.equal(plain.headers.get("content-encoding"), undefined);
    assert.ok(plain.body.length > 2 * GZIP_THRESHOLD_BYTES, `list of ${plain.body.length} bytes`);
    const plainText = textOf(plain);
    assert.equal(JSON.parse(plainText).items.length, 1000);

    const gzipped = await rawGet(server, "/api/v1/services", {
      "Accept": "application/json",
      "Accept-Encoding": "gzip, br",
    });
    assert.equal(gzipped.status, 200);
    assert.equal(gzipped.headers.get("content-encoding"), "gzip");
    assert.equal(gzipped.headers.get("vary"), "Accept-Encoding");
    assert.equal(gzipped.headers.get("content-type"), "application/json");
    assert.ok(gzipped.body.length < plain.body.length / 3, `gzip of ${gzipped.body.length} bytes`);
    assert.equal(textOf(gzipped), plainText);
    assert.equal(server.requests.at(-1)!.contentEncoding, "gzip");
    assert.equal(server.requests.at(-2)!.contentEncoding, undefined);
  } finally {
    await server.stop();
  }
});

Deno.test("fake API server gzip: identity, q-valued or no gzip token gets the answer uncompressed", async () => {
  const server = await bigServer();
  try {
    const reference = textOf(await rawGet(server, "/api/v1/services", {}));
    for (const acceptEncoding of ["identity", "br", "deflate", "gzip;q=0", "gzip;q=0.5, br"]) {
      const answer = await rawGet(server, "/api/v1/services", {
        "Accept-Encoding": acceptEncoding,
      });
      assert.equal(answer.status, 200, acceptEncoding);
      assert.equal(answer.headers.get("content-encoding"), undefined, acceptEncoding);
      assert.equal(textOf(answer), reference, acceptEncoding);
    }
  } finally {
    await server.stop();
  }
});

Deno.test("fake API server gzip: each page of a paginated list is compressed on its own size", async () => {
  const server = await bigServer();
  try {
    const names: string[] = [];
    let compressed = 0;
    let uncompressed = 0;
    let cont = "";
    do {
      // 450 services are above the threshold; the last page (100) is below it.
      const query = `limit=450${cont ? `&continue=${encodeURIComponent(cont)}` : ""}`;
      const page = await rawGet(server, `/api/v1/services?${query}`, { "Accept-Encoding": "gzip" });
      assert.equal(page.status, 200);
      const text = textOf(page);
      const large = new TextEncoder().encode(text).length > GZIP_THRESHOLD_BYTES;
      assert.equal(page.headers.get("content-encoding"), large ? "gzip" : undefined);
      if (large) compressed++;
      else uncompressed++;
      const list = JSON.parse(text);
      names.push(...list.items.map((o: { metadata: { name: string } }) => o.metadata.name));
      cont = list.metadata.continue ?? "";
    } while (cont);
    assert.equal(compressed, 2);
    assert.equal(uncompressed, 1);
    assert.equal(names.length, 1000);
    assert.equal(new Set(names).size, 1000);
  } finally {
    await server.stop();
  }
});

Deno.test("fake API server gzip: small lists and small objects are not compressed; a large object is", async () => {
  const server = await bigServer();
  try {
    const small = await rawGet(server, "/api/v1/services?labelSelector=app%3Dapp-7", {
      "Accept-Encoding": "gzip",
    });
    assert.equal(small.status, 200);
    assert.equal(small.headers.get("content-encoding"), undefined);
    assert.equal(JSON.parse(textOf(small)).items.length, 1);

    const one = await rawGet(server, "/api/v1/namespaces/default/services/svc-0007", {
      "Accept-Encoding": "gzip",
    });
    assert.equal(one.status, 200);
    assert.equal(one.headers.get("content-encoding"), undefined);

    const big = service("default", "big", "10.96.9.9");
    big.metadata.annotations = { note: "x".repeat(GZIP_THRESHOLD_BYTES) };
    server.create("services", big);
    const large = await rawGet(server, "/api/v1/namespaces/default/services/big", {
      "Accept-Encoding": "gzip",
    });
    assert.equal(large.status, 200);
    assert.equal(large.headers.get("content-encoding"), "gzip");
    assert.equal(JSON.parse(textOf(large)).metadata.annotations.note.length, GZIP_THRESHOLD_BYTES);
  } finally {
    await server.stop();
  }
});

Deno.test("fake API server gzip: a watch stream is never compressed, even when gzip is accepted", async () => {
  const server = await bigServer();
  try {
    // Without a resourceVersion the watch starts with 1,000 ADDED events
    // (well above the threshold), then ends at its timeout.
    const answer = await rawGet(server, "/api/v1/services?watch=true&timeoutSeconds=1", {
      "Accept-Encoding": "gzip, br",
    });
    assert.equal(answer.status, 200);
    assert.equal(answer.headers.get("content-encoding"), undefined);
    assert.ok(answer.body.length > GZIP_THRESHOLD_BYTES, `watch of ${answer.body.length} bytes`);
    const events = new TextDecoder().decode(answer.body).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.equal(events.length, 1000);
    assert.ok(events.every((e) => e.type === "ADDED"));
  } finally {
    await server.stop();
  }
});
