import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadYaml, parseYamlOrJson } from "../../lib/config/yaml.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/**
 * Runs `code` in a fresh process (the YAML parser not loaded) with the
 * repository's import map; resolves to what it printed, or throws with its stderr.
 */
async function inFreshProcess(code: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--config", join(ROOT, "deno.json"), code],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.ok(out.success, stderr);
  return new TextDecoder().decode(out.stdout).trim();
}

const lib = (path: string) => JSON.stringify(new URL(`../../lib/${path}`, import.meta.url).href);

Deno.test("yaml: JSON config and kubeconfig files are read without the YAML parser; YAML needs it loaded", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const kubeconfig = join(dir, "kubeconfig");
    await Deno.writeTextFile(
      kubeconfig,
      JSON.stringify({
        clusters: [{ name: "c", cluster: { server: "https://10.0.0.1:6443" } }],
        users: [{ name: "u", user: { token: "t" } }],
        contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
        "current-context": "x",
      }),
    );
    const json = join(dir, "config.json");
    await Deno.writeTextFile(
      json,
      JSON.stringify({
        apiVersion: "kubeproxy.config.k8s.io/v1alpha1",
        kind: "KubeProxyConfiguration",
        clientConnection: { kubeconfig },
        iptables: { syncPeriod: "45s" },
      }),
    );
    const yaml = join(dir, "config.yaml");
    await Deno.writeTextFile(
      yaml,
      "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n" +
        "iptables:\n  syncPeriod: 50s\n",
    );
    const out = await inFreshProcess(`
      const { parseConfig } = await import(${lib("config/config.ts")});
      const { loadKubeConfig } = await import(${lib("kube/kubeconfig.ts")});
      const { parseYamlOrJson, withYaml, YamlNotLoaded } = await import(${lib("config/yaml.ts")});
      const host = { hostname: () => "node-a" };
      const parse = (file) => parseConfig(["--config", file], {}, Deno.readTextFileSync, host);
      const { config } = parse(${JSON.stringify(json)});
      const server = loadKubeConfig({ kubeconfig: config.kubeconfig, env: { get: () => undefined } })
        .config.cluster.server;
      const notLoaded = (fn) => { try { fn(); return "parsed"; } catch (e) { return e instanceof YamlNotLoaded; } };
      // Still not loaded after the JSON files: YAML text throws.
      const yamlBefore = notLoaded(() => parseYamlOrJson("a: 1"));
      const fileBefore = notLoaded(() => parse(${JSON.stringify(yaml)}));
      const yamlConfig = (await withYaml(() => parse(${JSON.stringify(yaml)}))).config;
      console.log(JSON.stringify({
        sync: config.syncPeriodMs, server, yamlBefore, fileBefore, yamlSync: yamlConfig.syncPeriodMs,
      }));
    `);
    assert.deepEqual(JSON.parse(out), {
      sync: 45_000,
      server: "https://10.0.0.1:6443",
      yamlBefore: true,
      fileBefore: true,
      yamlSync: 50_000,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("yaml: JSON text is read as JSON; other text, flow mappings included, as YAML", async () => {
  await loadYaml();
  assert.deepEqual(parseYamlOrJson(' \n{"a": [1, "x"], "b": {"c": null}}'), {
    a: [1, "x"],
    b: { c: null },
  });
  // A key given twice in JSON keeps its last value (JSON.parse, client-go's JSON decoding).
  assert.deepEqual(parseYamlOrJson('{"a": 1, "a": 2}'), { a: 2 });
  // Not JSON but a YAML flow mapping: the YAML parser reads it.
  assert.deepEqual(parseYamlOrJson("{a: 1, b: [x]}"), { a: 1, b: ["x"] });
  assert.deepEqual(parseYamlOrJson("a: 1\nb:\n  - x\n"), { a: 1, b: ["x"] });
  // YAML keeps its own rules: a key given twice is an error.
  assert.throws(() => parseYamlOrJson("a: 1\na: 2\n", { uniqueKeys: true }), /unique/i);
  // Broken JSON is reported by the YAML parser (JSON is YAML).
  assert.throws(() => parseYamlOrJson('{"a": '));
});
