import assert from "node:assert/strict";
import * as node from "node:path";
import * as ours from "../lib/path.ts";
import { path, posix, win32 } from "../lib/path.ts";

const POSIX_PATHS = [
  "",
  ".",
  "..",
  "/",
  "//",
  "///",
  "a",
  "a/",
  "a//",
  "/a",
  "/a/",
  "//a",
  "/a/b",
  "/a/b/",
  "/a//b//",
  "a/b/../c",
  "../a",
  "/../a",
  "a/./b/.",
  "/etc/kubernetes/kubeconfig",
  "./kube/config",
  "C:\\x",
];

const WINDOWS_PATHS = [
  "",
  ".",
  "\\",
  "/",
  "\\\\",
  "a",
  "a\\",
  "a\\b",
  "a/b\\c",
  "\\a",
  "\\a\\b\\",
  "C:",
  "c:",
  "C:\\",
  "C:/",
  "C:a",
  "C:a\\b",
  "C:\\a",
  "C:\\a\\",
  "C:\\a\\b",
  "C:\\a\\..\\..\\b",
  "C:\\ProgramData\\hnsproxy\\state.json",
  "C:/ProgramData/hnsproxy/",
  "\\\\server",
  "\\\\server\\",
  "\\\\server\\share",
  "\\\\server\\share\\",
  "\\\\server\\share\\a",
  "\\\\server\\share\\a\\b",
  "//server/share/a",
  "\\\\?\\C:\\a",
  "..\\a",
  "a\\..\\..\\b",
  "1:\\a",
];

Deno.test("path: dirname and isAbsolute as node:path, POSIX and Windows", () => {
  for (const p of POSIX_PATHS) {
    assert.equal(posix.dirname(p), node.posix.dirname(p), `posix dirname ${JSON.stringify(p)}`);
    assert.equal(posix.isAbsolute(p), node.posix.isAbsolute(p), `posix isAbsolute ${p}`);
  }
  for (const p of WINDOWS_PATHS) {
    assert.equal(win32.dirname(p), node.win32.dirname(p), `win32 dirname ${JSON.stringify(p)}`);
    assert.equal(win32.isAbsolute(p), node.win32.isAbsolute(p), `win32 isAbsolute ${p}`);
  }
});

Deno.test("path: join and resolve as node:path, POSIX and Windows", () => {
  const pairs = (paths: string[]) => paths.flatMap((a) => paths.map((b) => [a, b]));
  for (const [a, b] of pairs(POSIX_PATHS)) {
    const what = JSON.stringify([a, b]);
    assert.equal(posix.join(a, b), node.posix.join(a, b), `posix join ${what}`);
    assert.equal(posix.resolve(a, b), node.posix.resolve(a, b), `posix resolve ${what}`);
  }
  for (const [a, b] of pairs(WINDOWS_PATHS)) {
    const what = JSON.stringify([a, b]);
    assert.equal(win32.join(a, b), node.win32.join(a, b), `win32 join ${what}`);
    // Relative parts start from the current directory, on the drive found; node:path
    // would read a per-drive one from =C: variables, which a service does not have.
    // Long paths (\\?\) are not special to resolve here.
    const longPath = a.startsWith("\\\\?") || b.startsWith("\\\\?");
    if ((win32.isAbsolute(a) || win32.isAbsolute(b)) && !longPath) {
      assert.equal(win32.resolve(a, b), node.win32.resolve(a, b), `win32 resolve ${what}`);
    }
  }
  assert.equal(posix.join(), ".");
  assert.equal(win32.join(), ".");
  assert.equal(posix.join("/a", "b", "../c", "d/"), "/a/c/d/");
  assert.equal(win32.join("C:\\k", "/var/run/secrets", "token"), "C:\\k\\var\\run\\secrets\\token");
  assert.equal(posix.resolve("x"), node.posix.resolve("x"));
  assert.equal(win32.resolve("C:\\k\\config", "..", "certs\\ca.crt"), "C:\\k\\certs\\ca.crt");
  assert.equal(win32.resolve("D:\\x", "C:\\k", "y"), "C:\\k\\y");
});

Deno.test("path: the platform's flavour", () => {
  const windows = Deno.build.os === "windows";
  assert.equal(path, windows ? win32 : posix);
  assert.equal(path.sep, node.sep);
  assert.equal(ours.dirname("/a/b"), path.dirname("/a/b"));
  assert.equal(ours.join("a", "b"), path.join("a", "b"));
  assert.equal(ours.resolve("/a", "b"), path.resolve("/a", "b"));
  assert.equal(ours.isAbsolute("/a"), path.isAbsolute("/a"));
  assert.equal(ours.sep, node.sep);
  assert.equal(ours.delimiter, node.delimiter);
  assert.equal(path.delimiter, node.delimiter);
  assert.equal(posix.delimiter, node.posix.delimiter);
  assert.equal(win32.delimiter, node.win32.delimiter);
});
