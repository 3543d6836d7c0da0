/**
 * Service install/uninstall helpers (lib/windows/install.ts) against a double of sc.exe
 * that keeps a small service table, and Windows argument quoting checked by parsing the
 * result back with the CommandLineToArgvW rules.
 *
 * @module
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  installService,
  isCompiledExecutable,
  parseScState,
  queryServiceState,
  quoteWindowsArg,
  ScState,
  serviceCommandLine,
  uninstallService,
} from "../../lib/windows/install.ts";
import { FakeSc, parseWindowsArgs } from "./doubles.ts";

Deno.test("install: Windows quoting round-trips through CommandLineToArgvW rules", () => {
  const cases = [
    "plain",
    "",
    "two words",
    'say "hi"',
    "C:\\Program Files\\hnsproxy\\",
    "C:\\path\\no-space\\",
    'ends with backslash quote \\"',
    "\\\\server\\share\\x y",
    "--cluster-cidr=10.244.0.0/16",
    "tab\there",
    'a\\\\"b',
  ];
  for (const c of cases) {
    assert.deepEqual(parseWindowsArgs(quoteWindowsArg(c)), [c], `case ${JSON.stringify(c)}`);
  }
  const line = cases.map(quoteWindowsArg).join(" ");
  assert.deepEqual(parseWindowsArgs(line), cases);
  assert.equal(quoteWindowsArg("plain"), "plain");
  assert.equal(quoteWindowsArg("two words"), '"two words"');
});

Deno.test("install: a compiled hnsproxy.exe is run directly, deno runs main.ts with its config", () => {
  assert.equal(isCompiledExecutable("C:\\hnsproxy\\hnsproxy.exe"), true);
  assert.equal(isCompiledExecutable("C:\\deno\\deno.exe"), false);
  assert.equal(isCompiledExecutable("/usr/bin/deno"), false);

  assert.equal(
    serviceCommandLine({
      execPath: "C:\\Program Files\\hnsproxy\\hnsproxy.exe",
      agentArgs: ["--hostname-override", "node 1", "--v=2"],
    }),
    '"C:\\Program Files\\hnsproxy\\hnsproxy.exe" --hostname-override "node 1" --v=2 --windows-service',
  );

  const mainUrl = new URL("../../main.ts", import.meta.url).href;
  const mainPath = fileURLToPath(mainUrl);
  const config = join(dirname(mainPath), "deno.json");
  assert.deepEqual(
    parseWindowsArgs(serviceCommandLine({
      execPath: "C:\\deno\\deno.exe",
      mainModule: mainUrl,
      agentArgs: ["--config", "C:\\etc\\kube proxy.yaml"],
    })),
    [
      "C:\\deno\\deno.exe",
      "run",
      "-A",
      "--config",
      config,
      mainPath,
      "--config",
      "C:\\etc\\kube proxy.yaml",
      "--windows-service",
    ],
  );
  assert.deepEqual(
    parseWindowsArgs(
      serviceCommandLine({ execPath: "deno.exe", mainModule: "C:\\x\\main.ts", config: null }),
    ),
    ["deno.exe", "run", "-A", "C:\\x\\main.ts", "--windows-service"],
  );
});

Deno.test("install: creates the service with auto start, description and restart actions", async () => {
  const sc = new FakeSc();
  const r = await installService({
    name: "hnsproxy",
    execPath: "C:\\hnsproxy\\hnsproxy.exe",
    agentArgs: ["--kubeconfig", "C:\\k\\config"],
    sc: sc.run,
  });
  assert.deepEqual(r, {
    name: "hnsproxy",
    binPath: "C:\\hnsproxy\\hnsproxy.exe --kubeconfig C:\\k\\config --windows-service",
    warnings: [],
  });
  assert.deepEqual(sc.calls[0].slice(0, 6), [
    "create",
    "hnsproxy",
    "binPath=",
    r.binPath,
    "start=",
    "auto",
  ]);
  assert.deepEqual(sc.commands(), ["create", "description", "failure", "failureflag"]);
  assert.deepEqual(sc.calls[2], [
    "failure",
    "hnsproxy",
    "reset=",
    "86400",
    "actions=",
    "restart/5000/restart/5000/restart/30000",
  ]);
  assert.deepEqual(sc.calls[3], ["failureflag", "hnsproxy", "1"]);
  assert.equal(sc.services.get("hnsproxy")?.binPath, r.binPath);
});

Deno.test("install: an sc without failure actions only warns (as under Wine)", async () => {
  const sc = new FakeSc();
  sc.failing.set("failureflag", 1639);
  sc.failing.set("failure", 1639);
  const r = await installService({ name: "svc", execPath: "C:\\h\\hnsproxy.exe", sc: sc.run });
  assert.equal(r.warnings.length, 2);
  assert.match(r.warnings[0], /failure actions: sc failure svc .* failed with 1639/);
  assert.match(r.warnings[1], /failure flag/);
  assert.ok(sc.services.has("svc"));
});

Deno.test("install: an existing service is refused with ERROR_SERVICE_EXISTS", async () => {
  const sc = new FakeSc();
  await installService({ name: "svc", execPath: "C:\\h\\hnsproxy.exe", sc: sc.run });
  await assert.rejects(
    installService({ name: "svc", execPath: "C:\\h\\hnsproxy.exe", sc: sc.run }),
    (err: Error & { code?: number }) => {
      assert.equal(err.code, 1073);
      assert.match(err.message, /already installed: uninstall it first/);
      return true;
    },
  );
});

Deno.test("uninstall: stops a running service, waits for STOPPED, then deletes it", async () => {
  const sc = new FakeSc();
  sc.services.set("hnsproxy", { state: ScState.RUNNING, binPath: "x" });
  sc.stopPendingQueries = 3;
  assert.equal(await uninstallService({ sc: sc.run, pollMs: 1 }), true);
  const cmds = sc.commands();
  assert.equal(cmds[0], "query");
  assert.equal(cmds[1], "stop");
  assert.equal(cmds.at(-1), "delete");
  assert.ok(cmds.filter((c) => c === "query").length >= 4, cmds.join(","));
  assert.equal(sc.services.size, 0);
});

Deno.test("uninstall: a stopped service is deleted without a stop; a missing one is reported", async () => {
  const sc = new FakeSc();
  sc.services.set("svc", { state: ScState.STOPPED, binPath: "x" });
  assert.equal(await uninstallService({ name: "svc", sc: sc.run }), true);
  assert.deepEqual(sc.commands(), ["query", "delete"]);
  assert.equal(await uninstallService({ name: "svc", sc: sc.run }), false);
  assert.equal(await queryServiceState("svc", sc.run), null);
});

Deno.test("uninstall: a service that does not stop in time is deleted anyway", async () => {
  const sc = new FakeSc();
  sc.services.set("svc", { state: ScState.RUNNING, binPath: "x" });
  sc.stopPendingQueries = Number.POSITIVE_INFINITY;
  assert.equal(
    await uninstallService({ name: "svc", sc: sc.run, pollMs: 1, stopTimeoutMs: 20 }),
    true,
  );
  assert.equal(sc.commands().at(-1), "delete");
});

Deno.test("install: sc query output parsing", () => {
  assert.equal(parseScState("        STATE              : 4  RUNNING \r\n"), ScState.RUNNING);
  assert.equal(parseScState("[SC] EnumQueryServicesStatus:OpenService FAILED 1060"), undefined);
});
