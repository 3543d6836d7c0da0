import assert from "node:assert/strict";
import { join } from "node:path";
import { createLogger, type LoggerOptions, loggerOptionsFrom } from "../../lib/log/mod.ts";

// 2024-11-22 02:56:54.123456 local time, as klog prints local time.
const T = new Date(2024, 10, 22, 2, 56, 54).getTime() + 123.456;

function capture(options: LoggerOptions = {}) {
  const lines: string[] = [];
  const logger = createLogger({
    stderr: false,
    now: () => T,
    pid: 1234,
    write: (l) => lines.push(l),
    ...options,
  });
  return { logger, lines };
}

const KLOG = /^([IWE])(\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6}) +(\d+) hnsproxy\] (.*)\n$/;

Deno.test("text: klog header, quoted message, structured pairs", () => {
  const { logger, lines } = capture();
  logger.info("message", { key: "value", other: 3 });
  assert.deepEqual(lines, [
    'I1122 02:56:54.123456    1234 hnsproxy] "message" key="value" other=3\n',
  ]);
  const m = KLOG.exec(lines[0])!;
  assert.deepEqual(m.slice(1, 9), ["I", "11", "22", "02", "56", "54", "123456", "1234"]);
});

Deno.test("text: severities, verbosity and enabled()", () => {
  const { logger, lines } = capture({ verbosity: 2 });
  logger.warn("w");
  logger.error("e");
  logger.debug(2, "shown");
  logger.debug(3, "hidden");
  assert.equal(logger.enabled(2), true);
  assert.equal(logger.enabled(3), false);
  assert.deepEqual(lines.map((l) => KLOG.exec(l)![1] + " " + KLOG.exec(l)![9]), [
    'W "w"',
    'E "e"',
    'I "shown"',
  ]);
});

Deno.test("text: value rendering (errors, quoting, multi-line, objects, nil)", () => {
  const { logger, lines } = capture();
  const cause = new Error("inner");
  logger.error("sync failed", {
    service: "default/web",
    err: new Error("boom", { cause }),
    ok: false,
    ports: [80, 443],
    lb: { vip: "10.96.0.10", port: 80 },
    none: null,
    quote: 'say "hi"\tnow',
  });
  logger.info("two\nlines", { body: "a\nb\n" });
  const body = (l: string) => KLOG.exec(l)![9];
  assert.equal(
    body(lines[0]),
    '"sync failed" err="boom: inner" service="default/web" ok=false ports=[80,443] ' +
      'lb={"vip":"10.96.0.10","port":80} none=<nil> quote="say \\"hi\\"\\tnow"',
  );
  assert.equal(
    lines[1],
    'I1122 02:56:54.123456    1234 hnsproxy] "two\\nlines" body=<\n\ta\n\tb\n >\n',
  );
});

Deno.test("with(): context fields come first, call fields override", () => {
  const { logger, lines } = capture();
  const svc = logger.with({ component: "apply", op: "create" });
  svc.with({ key: "lb/tcp/10.96.0.10:80" }).info("done", { op: "update", n: 1 });
  assert.equal(
    KLOG.exec(lines[0])![9],
    '"done" component="apply" op="update" key="lb/tcp/10.96.0.10:80" n=1',
  );
});

Deno.test("json: component-base field names", () => {
  const { logger, lines } = capture({ format: "json", verbosity: 4 });
  logger.info("Starting", { version: "0.1.0" });
  logger.debug(4, "HNS call", { op: "HcnCreateLoadBalancer", ms: 1.5 });
  logger.warn("Skipped", { reason: "bad" });
  logger.error("Sync failed", { error: new Error("HNS down"), attempt: 2 });
  logger.error("No err field");
  const parsed = lines.map((l) => {
    assert.ok(l.endsWith("\n") && !l.slice(0, -1).includes("\n"));
    return JSON.parse(l);
  });
  assert.deepEqual(parsed, [
    { ts: T, msg: "Starting", v: 0, version: "0.1.0" },
    { ts: T, msg: "HNS call", v: 4, op: "HcnCreateLoadBalancer", ms: 1.5 },
    { ts: T, msg: "Skipped", v: 0, reason: "bad" },
    { ts: T, msg: "Sync failed", err: "HNS down", attempt: 2 },
    { ts: T, msg: "No err field", err: null },
  ]);
  assert.deepEqual(Object.keys(parsed[0]), ["ts", "msg", "v", "version"]);
});

const SECRETS = [
  "s3cr3t-token-value",
  "hunter2",
  "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW0ifQ.c2lnbmF0dXJl",
  "LS0tLS1CRUdJTi1jZXJ0",
  "abcdefBearerValue",
  "MIIEvQIBADANBgkq",
  "pa55word",
  "qs-token-123",
];

Deno.test("redaction: credentials never reach any format", () => {
  for (const format of ["text", "json"] as const) {
    const { logger, lines } = capture({ format });
    logger.info("auth", {
      token: SECRETS[0],
      password: SECRETS[1],
      "client-certificate-data": SECRETS[3],
      user: { name: "admin", bearerToken: SECRETS[0] },
      header: `Authorization: Bearer ${SECRETS[4]}`,
      raw: `authorization=Token ${SECRETS[1]}`,
      key: "lb/tcp/10.96.0.10:80",
    });
    logger.with({ Authorization: `Bearer ${SECRETS[4]}` }).info(`got ${SECRETS[2]}`);
    logger.error("request failed", {
      err: new Error(`GET https://admin:${SECRETS[6]}@10.0.0.1:6443/api?token=${SECRETS[7]}`),
      body: `-----BEGIN PRIVATE KEY-----\n${SECRETS[5]}\n-----END PRIVATE KEY-----`,
      json: `{"token":"${SECRETS[0]}","kind":"Secret"}`,
    });
    const all = lines.join("");
    for (const s of SECRETS) assert.ok(!all.includes(s), `${format} output leaks ${s}:\n${all}`);
    assert.ok(all.includes("lb/tcp/10.96.0.10:80"), "ordinary keys stay");
    assert.ok(all.includes("admin"), "non-secret values stay");
    assert.ok(all.includes("[REDACTED]"));
  }
});

Deno.test("file sink: size-based rotation keeps maxBackups files", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hnsproxy-log-" });
  try {
    const path = join(dir, "nested", "hnsproxy.log");
    const logger = createLogger({
      stderr: false,
      file: { path, maxBytes: 300, maxBackups: 2 },
      now: () => T,
      pid: 1,
    });
    for (let i = 0; i < 40; i++) logger.info("line", { i });
    logger.close();
    logger.info("after close goes nowhere");
    const names = [...Deno.readDirSync(join(dir, "nested"))].map((e) => e.name).sort();
    assert.deepEqual(names, ["hnsproxy.log", "hnsproxy.log.1", "hnsproxy.log.2"]);
    const numbers = (name: string) => {
      const text = Deno.readTextFileSync(join(dir, "nested", name));
      assert.ok(new TextEncoder().encode(text).length <= 300, `${name} is within maxBytes`);
      return text.trimEnd().split("\n").map((l) => Number(/ i=(\d+)$/.exec(l)![1]));
    };
    const live = numbers("hnsproxy.log");
    const one = numbers("hnsproxy.log.1");
    const two = numbers("hnsproxy.log.2");
    // Oldest to newest: .2, .1, live, consecutive and ending with the last line.
    const seq = [...two, ...one, ...live];
    assert.equal(seq.at(-1), 39);
    seq.forEach((n, k) => assert.equal(n, seq[0] + k));
    assert.ok(live.length > 0 && one.length > 0 && two.length > 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file sink: reopening appends; maxBackups 0 truncates", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hnsproxy-log-" });
  try {
    const path = join(dir, "a.log");
    const first = createLogger({ stderr: false, file: { path, maxBytes: 1000, maxBackups: 0 } });
    first.info("one");
    first.close();
    const second = createLogger({ stderr: false, file: { path, maxBytes: 1000, maxBackups: 0 } });
    second.info("two");
    let text = Deno.readTextFileSync(path);
    assert.deepEqual(text.trimEnd().split("\n").map((l) => l.split("] ")[1]), ['"one"', '"two"']);
    for (let i = 0; i < 30; i++) second.info("filler", { i });
    second.close();
    text = Deno.readTextFileSync(path);
    assert.ok(!text.includes('"one"'), "old content was truncated away");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["a.log"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("stderr sink writes klog lines (real process)", async () => {
  const code = `
    import { createLogger } from ${
    JSON.stringify(new URL("../../lib/log/mod.ts", import.meta.url).href)
  };
    const log = createLogger({ verbosity: 1 });
    log.info("hello", { token: "abc123secret", n: 1 });
    log.debug(2, "too verbose");
    const quiet = createLogger({ stderr: false });
    quiet.error("never printed");
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-check", code],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const lines = new TextDecoder().decode(out.stderr).trimEnd().split("\n");
  assert.equal(lines.length, 1, lines.join("\n"));
  const m = KLOG.exec(lines[0] + "\n");
  assert.ok(m, lines[0]);
  assert.equal(m[9], '"hello" token="[REDACTED]" n=1');
  assert.equal(new TextDecoder().decode(out.stdout), "");
});

Deno.test("loggerOptionsFrom maps a LoggingConfig (0 max size: never rotate)", () => {
  const opts = loggerOptionsFrom({
    format: "json",
    verbosity: 3,
    file: "/var/log/hnsproxy.log",
    fileMaxBytes: 0,
    fileMaxBackups: 2,
    stderr: false,
  });
  assert.deepEqual(opts, {
    format: "json",
    verbosity: 3,
    stderr: false,
    file: { path: "/var/log/hnsproxy.log", maxBytes: Infinity, maxBackups: 2 },
  });
  assert.equal(
    loggerOptionsFrom({ ...opts, file: "", fileMaxBytes: 1, fileMaxBackups: 1 } as never).file,
    undefined,
  );
});
