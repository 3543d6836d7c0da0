/**
 * A throwaway PKI for the TLS tests: a CA, a server certificate for
 * 127.0.0.1/localhost and a client certificate, made with the `openssl`
 * command (tests that need it are skipped when it is missing).
 *
 * @module
 */

import { join } from "node:path";

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "null", stderr: "piped" })
    .output();
  if (!out.success) throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
}

export const hasOpenssl = await new Deno.Command("openssl", { args: ["version"], stdout: "null" })
  .output().then((o) => o.success, () => false);

export interface Pki {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** A throwaway CA with a server certificate for 127.0.0.1 and a client certificate. */
export async function makePki(): Promise<Pki> {
  const dir = await Deno.makeTempDir({ prefix: "hnsproxy-pki-" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await openssl([
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "1",
    "-subj",
    "/CN=test-ca",
  ], dir);
  await Deno.writeTextFile(join(dir, "srv.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  await openssl([
    "req",
    ...ec,
    "-keyout",
    "srv.key",
    "-out",
    "srv.csr",
    "-subj",
    "/CN=kube-apiserver",
  ], dir);
  await openssl([
    "x509",
    "-req",
    "-in",
    "srv.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "srv.crt",
    "-days",
    "1",
    "-extfile",
    "srv.ext",
  ], dir);
  await Deno.writeTextFile(join(dir, "cli.ext"), "extendedKeyUsage=clientAuth\n");
  await openssl([
    "req",
    ...ec,
    "-keyout",
    "cli.key",
    "-out",
    "cli.csr",
    "-subj",
    "/O=system:node-proxier/CN=system:kube-proxy",
  ], dir);
  await openssl([
    "x509",
    "-req",
    "-in",
    "cli.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "cli.crt",
    "-days",
    "1",
    "-extfile",
    "cli.ext",
  ], dir);
  const read = (f: string) => Deno.readTextFile(join(dir, f));
  return {
    dir,
    ca: await read("ca.crt"),
    serverCert: await read("srv.crt"),
    serverKey: await read("srv.key"),
    clientCert: await read("cli.crt"),
    clientKey: await read("cli.key"),
  };
}

/** Another client certificate from the CA of `pki`, for common name `cn`. */
export async function makeClientCert(pki: Pki, cn: string): Promise<{ cert: string; key: string }> {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await openssl(
    ["req", ...ec, "-keyout", `${cn}.key`, "-out", `${cn}.csr`, "-subj", `/CN=${cn}`],
    pki.dir,
  );
  await openssl([
    "x509",
    "-req",
    "-in",
    `${cn}.csr`,
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    `${cn}.crt`,
    "-days",
    "1",
    "-extfile",
    "cli.ext",
  ], pki.dir);
  return {
    cert: await Deno.readTextFile(join(pki.dir, `${cn}.crt`)),
    key: await Deno.readTextFile(join(pki.dir, `${cn}.key`)),
  };
}
