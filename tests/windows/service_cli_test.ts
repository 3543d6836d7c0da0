/**
 * `hnsproxy service install|uninstall` (lib/cli/service.ts) against the sc.exe double:
 * the command line the service gets, agent flags checked before anything is registered,
 * warnings for a service that would lose its logs or miss its files, one-line errors and
 * exit codes, and a clear error off Windows. Under Wine the same command runs against the
 * real SCM (agent_service_wine_test.ts).
 *
 * @module
 */
import assert from "node:assert/strict";
import { serviceCommand, type ServiceCommandDeps } from "../../lib/cli/service.ts";
import { ScState } from "../../lib/windows/install.ts";
import { FakeSc, parseWindowsArgs } from "./doubles.ts";

const EXE = "C:\\Program Files\\hnsproxy\\hnsproxy.exe";

async function run(args: string[], deps: ServiceCommandDeps = {}) {
  let out = "";
  let err = "";
  const code = await serviceCommand(args, {
    os: "windows",
    commandLine: { execPath: EXE },
    stdout: (t) => (out += t),
    stderr: (t) => (err += t),
    ...deps,
  });
  return { code, out, err };
}

const FLAGS = [
  "--kubeconfig",
  "C:\\k\\config",
  "--log-file",
  "C:\\logs\\hnsproxy.log",
  "--hostname-override",
  "node 1",
];

Deno.test("service install: sc create with this program, the agent flags and --windows-service", async () => {
  const sc = new FakeSc();
  const r = await run(["install", "--name", "kp", "--start-type", "demand", "--", ...FLAGS], {
    sc: sc.run,
  });
  assert.equal(r.code, 0, r.err);
  assert.equal(r.err, "");
  const binPath = sc.services.get("kp")?.binPath ?? "";
  assert.deepEqual(parseWindowsArgs(binPath), [EXE, ...FLAGS, "--windows-service"]);
  assert.equal(r.out, `installed service kp (start type demand): ${binPath}\n`);
  assert.deepEqual(sc.calls[0].slice(4, 6), ["start=", "demand"]);
  assert.deepEqual(sc.commands(), ["create", "description", "failure", "failureflag"]);

  // The default name and start type; a --windows-service given by hand is not doubled.
  const again = await run(["install", "--", ...FLAGS, "--windows-service"], { sc: sc.run });
  assert.equal(again.code, 0, again.err);
  assert.deepEqual(parseWindowsArgs(sc.services.get("hnsproxy")!.binPath), [
    EXE,
    ...FLAGS,
    "--windows-service",
  ]);
  assert.deepEqual(sc.calls.at(-4)!.slice(4, 6), ["start=", "auto"]);
});

Deno.test("service install: bad agent flags are refused before anything is registered", async () => {
  const sc = new FakeSc();
  const bad = await run(["install", "--", "--kubeconfig", "C:\\k", "--no-such-flag"], {
    sc: sc.run,
  });
  assert.equal(bad.code, 2);
  assert.equal(
    bad.err,
    "hnsproxy: service: agent flags: --no-such-flag: unknown flag; see --help\n",
  );
  const help = await run(["install", "--", "--help"], { sc: sc.run });
  assert.equal(help.code, 2);
  assert.match(help.err, /--help and --version are not agent flags/);
  assert.deepEqual(sc.calls, []);
});

Deno.test("service install: warns about a service without a log file or with relative paths", async () => {
  const sc = new FakeSc();
  const r = await run(["install", "--", "--kubeconfig", "kube\\config"], { sc: sc.run });
  assert.equal(r.code, 0);
  assert.equal(
    r.err,
    "hnsproxy: warning: no --log-file: a service has no console, so its logs would be lost\n" +
      "hnsproxy: warning: --kubeconfig kube\\config is relative: the service starts in " +
      "C:\\Windows\\System32\n",
  );
  // A failing optional step (Wine's sc lacks failureflag) is a warning, not a failure.
  const wine = new FakeSc();
  wine.failing.set("failureflag", 1);
  const w = await run(["install", "--", ...FLAGS], { sc: wine.run });
  assert.equal(w.code, 0);
  assert.match(w.err, /^hnsproxy: warning: failure flag: sc failureflag hnsproxy 1 failed with 1/);
});

Deno.test("service install and uninstall: sc failures are one line with exit code 1", async () => {
  const sc = new FakeSc();
  assert.equal((await run(["install", "--", ...FLAGS], { sc: sc.run })).code, 0);
  const exists = await run(["install", "--", ...FLAGS], { sc: sc.run });
  assert.equal(exists.code, 1);
  assert.match(
    exists.err,
    /^hnsproxy: service install: sc create hnsproxy binPath= .* failed with 1073 \(already installed: uninstall it first\): \[SC\] create FAILED 1073\n$/,
  );

  sc.services.get("hnsproxy")!.state = ScState.RUNNING;
  const removed = await run(["uninstall"], { sc: sc.run });
  assert.equal(removed.code, 0, removed.err);
  assert.equal(removed.out, "removed service hnsproxy\n");
  // Stopped first (waiting for STOPPED), then deleted.
  assert.deepEqual(sc.commands().slice(-6), ["query", "stop", "query", "query", "query", "delete"]);
  assert.equal(sc.services.size, 0);

  const missing = await run(["uninstall", "--name", "kp"], { sc: sc.run });
  assert.equal(missing.code, 1);
  assert.equal(missing.err, "hnsproxy: service uninstall: service kp is not installed\n");
});

Deno.test("service: usage errors exit 2 in one line; --help prints usage; off Windows a clear error", async () => {
  const cases: Array<[string[], RegExp]> = [
    [[], /missing sub-command: install or uninstall/],
    [["start"], /unknown sub-command "start": install or uninstall/],
    [["install", "extra"], /unexpected argument "extra" \(agent flags go after --\)/],
    [["install", "--name"], /--name needs a value/],
    [["install", "--name", "a b"], /--name "a b" is not a service name/],
    [["install", "--start-type", "boot"], /--start-type must be auto or demand, not "boot"/],
    [["uninstall", "--", "--v=2"], /uninstall takes no agent flags/],
    [["uninstall", "--force"], /unknown option --force/],
  ];
  for (const [args, want] of cases) {
    const r = await run(args);
    assert.equal(r.code, 2, args.join(" "));
    assert.match(r.err, want);
    assert.equal(r.err.trimEnd().split("\n").length, 1, r.err);
  }
  const help = await run(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.out, /hnsproxy service install \[--name NAME\]/);

  const linux = await run(["install", "--", ...FLAGS], { os: "linux" });
  assert.equal(linux.code, 1);
  assert.equal(
    linux.err,
    "hnsproxy: service install: Windows services exist only on Windows (this is linux); " +
      "run the agent directly (hnsproxy run)\n",
  );
});
