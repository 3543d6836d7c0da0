import { equal, match, ok } from "node:assert/strict";

const root = new URL("../../", import.meta.url);

/** `main.ts demo` once main.ts routes the subcommand, else the demo module itself. */
async function entry(): Promise<string[]> {
  const main = await Deno.readTextFile(new URL("main.ts", root));
  return main.includes("lib/demo/mod.ts") ? ["main.ts", "demo"] : ["lib/demo/mod.ts"];
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let cached: Promise<Run> | undefined;

/** Run the demo once as a subprocess, as `deno task demo` does. */
function runDemo(): Promise<Run> {
  cached ??= (async () => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", ...await entry()],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  })();
  return cached;
}

/** The lines of the section that starts with `start` and ends before the next blank line. */
function section(text: string, start: string): string {
  const at = text.indexOf(start);
  ok(at >= 0, `output has no section "${start}":\n${text}`);
  const end = text.indexOf("\n\n", at);
  return text.slice(at, end < 0 ? undefined : end);
}

/** `hnsproxy made N HNS calls (W writes)` of a step section. */
function made(step: string, who: "hnsproxy made" | "kube-proxy would make"): [number, number] {
  const m = new RegExp(`${who} (\\d+) HNS calls \\((\\d+) writes\\)`).exec(step);
  ok(m, `no "${who}" line in:\n${step}`);
  return [Number(m[1]), Number(m[2])];
}

Deno.test("demo: exits 0 and shows the programmed HNS state as a table", async () => {
  const { code, stdout, stderr } = await runDemo();
  equal(code, 0, `demo failed:\n${stderr}\n${stdout}`);
  const start = section(stdout, "▶ hnsproxy replaces kube-proxy on win-node-1");
  const table = stdout.slice(stdout.indexOf("HNS load balancers on win-node-1 now:"));
  match(table, /service\s+frontend\s+→ backends\s+flags/);
  // One row per kind of service address, backends told apart as local or remote.
  match(table, /default\/kubernetes\s+10\.96\.0\.1:443\/TCP\s+10\.0\.1\.5:6443\s+remote/);
  match(
    table,
    /kube-system\/kube-dns\s+10\.96\.0\.10:53\/UDP\s+10\.244\.3\.5:53\s+remote, linux-node-3/,
  );
  match(
    table,
    /node:30080\/TCP\s+\(NodePort\)\s+10\.244\.1\.10:8080\s+local\s+LocalRoutedVIP, VipExternalIP/,
  );
  match(table, /20\.50\.60\.70:443\/TCP\s+\(LB ingress\)/);
  // externalTrafficPolicy Local: local backends only, with DSR.
  match(
    table,
    /node:30880\/TCP\s+\(NodePort\)\s+10\.244\.1\.14:8080\s+local\s+DSR, LocalRoutedVIP, VipExternalIP/,
  );
  // Dual-stack on overlay: single-stack as with kube-proxy, the node's primary family (IPv4) only.
  match(table, /shop\/echo\s+10\.96\.10\.50:7\/TCP\s+10\.244\.2\.30:7007\s+remote, win-node-2/);
  ok(!/fd00:10:96::50/.test(table), "no IPv6 load balancer on an overlay network");
  match(table, /\(another tool's\)\s+10\.0\.1\.11:9100\/TCP.*left alone by hnsproxy/);
  const [, writes] = made(start, "hnsproxy made");
  ok(writes > 0, "the start created HNS objects");
});

Deno.test("demo: each step prints exactly the HNS operations it made", async () => {
  const { stdout } = await runDemo();
  const scale = section(stdout, "1. scale up shop/web from 2 to 4 pods");
  match(scale, /create endpoint 10\.244\.2\.11 \(remote pod, on win-node-2\)/);
  match(scale, /update in place load balancer 10\.96\.10\.20:80\/TCP → 4 backends/);
  match(scale, /update in place load balancer node:30080\/TCP → 4 backends/);
  ok(!/delete load balancer/.test(scale), "scaling up deletes no load balancer");
  // The new local pod's CNI endpoint is looked up in the same sync: one update per LB.
  equal(made(scale, "hnsproxy made")[1], 3, `one endpoint create and one update per LB:\n${scale}`);
  ok(!/→ 3 backends/.test(scale), "no intermediate update without the local pod");

  const terminating = section(stdout, "2. pod api-1 of shop/api is terminating");
  match(terminating, /update in place load balancer 10\.96\.10\.30:443\/TCP → 2 backends/);
  match(terminating, /delete endpoint 10\.244\.2\.20 \(remote pod, on win-node-2\)/);

  const deletion = section(stdout, "3. delete the dual-stack service shop/echo");
  match(deletion, /delete load balancer 10\.96\.10\.50:7\/TCP/);
  match(deletion, /delete endpoint 10\.244\.3\.30 \(remote pod, on linux-node-3\)/);
  ok(!/fd00:/.test(deletion), "the IPv6 half was never programmed on overlay");
  ok(!/create /.test(deletion), "deleting a service creates nothing");

  const restart = section(stdout, "4. restart hnsproxy");
  match(restart, /(\d+) of \1 load balancers kept their HNS IDs/);
});

Deno.test("demo: the start takes over what kube-proxy left, and leaves unclaimed objects alone", async () => {
  const { stdout } = await runDemo();
  match(stdout, /what kube-proxy left when the node moved to hnsproxy: \d+ load balancers/);
  const start = section(stdout, "▶ hnsproxy replaces kube-proxy on win-node-1");
  // web's LBs still pointed at the pod that moved away: updated in place.
  match(start, /update in place 2 load balancers: 10\.96\.10\.20:80\/TCP, node:30080\/TCP/);
  // The endpoints on the replaced node's old IP are replaced (with the LBs that use them).
  match(start, /delete 3 endpoints: 10\.244\.2\.20, 10\.244\.2\.21, 10\.244\.2\.30/);
  match(start, /create \d+ endpoints: .*10\.244\.2\.20, 10\.244\.2\.21/);
  const lbs =
    /kube-proxy's load balancers: (\d+) adopted as they were, (\d+) updated in place, (\d+) replaced \(deleted and created\s+anew\); (\d+) on addresses\s+no Service claims left alone/
      .exec(start);
  ok(lbs, `no takeover summary in:\n${start}`);
  const [adopted, updated, replaced, left] = lbs.slice(1).map(Number);
  equal(updated, 2);
  ok(adopted > 0 && replaced > 0, start);
  equal(left, 2, "shop/legacy's two load balancers");
  match(start, /kube-proxy's endpoints: \d+ adopted, 3 replaced \(wrong provider\s+address\)/);
  // Nothing on shop/legacy's addresses was touched; the table says whose they are.
  ok(!/10\.96\.10\.90|30090/.test(start.slice(0, start.indexOf("kube-proxy's load balancers"))));
  const table = stdout.slice(stdout.indexOf("HNS load balancers on win-node-1 now:"));
  match(table, /\(kube-proxy's\)\s+10\.96\.10\.90:80\/TCP.*left alone by hnsproxy/);
  // Counted: kube-proxy's own start would delete every load balancer, its leftovers included.
  match(
    start,
    /kube-proxy would make \d+ HNS calls \(\d+ writes\): [\s\S]*HcnDeleteLoadBalancer 12/,
  );
});

Deno.test("demo: the agent restart makes no HNS writes", async () => {
  const { stdout } = await runDemo();
  const restart = section(stdout, "4. restart hnsproxy");
  const [calls, writes] = made(restart, "hnsproxy made");
  equal(writes, 0, `the restart changed HNS:\n${restart}`);
  ok(calls > 0, "the restart reads HNS once");
  match(restart, /no writes: HNS was not changed/);
});

Deno.test("demo: the comparison table adds up the step results", async () => {
  const { stdout } = await runDemo();
  const table = section(stdout, "HNS calls per step");
  const rows = table.split("\n").filter((l) => /\d+ \(\d+ writes\)/.test(l));
  equal(rows.length, 6, `start, 4 steps and the total:\n${table}`);
  const titles = ["▶ hnsproxy replaces kube-proxy", "1. ", "2. ", "3. ", "4. "];
  let sum = [0, 0, 0, 0];
  titles.forEach((title, i) => {
    const step = section(stdout, title);
    const [h, hw] = made(step, "hnsproxy made");
    const [k, kw] = made(step, "kube-proxy would make");
    const cells = [...rows[i].matchAll(/(\d+) \((\d+) writes\)/g)].map((m) => [+m[1], +m[2]]);
    equal(JSON.stringify(cells), JSON.stringify([[h, hw], [k, kw]]), rows[i]);
    sum = [sum[0] + h, sum[1] + hw, sum[2] + k, sum[3] + kw];
  });
  const total = [...rows[5].matchAll(/(\d+) \((\d+) writes\)/g)].flatMap((m) => [+m[1], +m[2]]);
  equal(JSON.stringify(total), JSON.stringify(sum), rows[5]);
  match(stdout, /kube-proxy reads all of HNS on every sync: \d+ calls/);
});
