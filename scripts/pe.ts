/**
 * Just enough of the PE/COFF format to check what `deno compile` produced
 * for Windows without running it: headers (the `MZ` stub, the machine, PE32
 * or PE32+, the subsystem), sections, resources (the version block and the
 * icons), and the data Deno embeds in a compiled program (its metadata with
 * the baked-in permissions, and the list of embedded files).
 *
 * Everything works on the file's bytes and throws {@link PeError} with a
 * sentence naming what is wrong.
 *
 * @module
 */

/** The file is not the PE image it should be, or a structure in it is broken. */
export class PeError extends Error {
  /** @param message what is wrong, one sentence */
  constructor(message: string) {
    super(message);
    this.name = "PeError";
  }
}

/** IMAGE_FILE_MACHINE_AMD64. */
export const MACHINE_AMD64 = 0x8664;
/** IMAGE_NT_OPTIONAL_HDR64_MAGIC (PE32+). */
export const MAGIC_PE32_PLUS = 0x20b;
/** IMAGE_NT_OPTIONAL_HDR32_MAGIC (PE32). */
export const MAGIC_PE32 = 0x10b;

const MACHINES: Record<number, string> = {
  0x014c: "i386",
  0x8664: "x86-64",
  0xaa64: "arm64",
  0x01c4: "armnt",
};
const SUBSYSTEMS: Record<number, string> = { 2: "gui", 3: "console" };

/** RT_ICON, RT_GROUP_ICON and RT_VERSION resource types. */
export const RT = { ICON: 3, GROUP_ICON: 14, VERSION: 16 } as const;

/** One section header. */
export interface PeSection {
  /** Up to 8 characters, e.g. `.text`. */
  name: string;
  virtualAddress: number;
  virtualSize: number;
  rawOffset: number;
  rawSize: number;
}

/** The headers of a PE image. */
export interface PeHeaders {
  /** IMAGE_FILE_HEADER.Machine, e.g. {@link MACHINE_AMD64}. */
  machine: number;
  /** `x86-64`, `arm64`, ... or the number in hex. */
  machineName: string;
  /** From the optional header's magic. */
  format: "PE32" | "PE32+";
  /** IMAGE_OPTIONAL_HEADER.Subsystem (3 is the console). */
  subsystem: number;
  /** `console`, `gui`, or the number. */
  subsystemName: string;
  sections: PeSection[];
  /** RVA and size of the resource directory (data directory 2), or undefined. */
  resources?: { rva: number; size: number };
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function need(bytes: Uint8Array, offset: number, length: number, what: string): void {
  if (offset < 0 || offset + length > bytes.length) {
    throw new PeError(`${what} lies outside the file (offset ${offset}, ${bytes.length} bytes)`);
  }
}

/** Parse the DOS stub, the COFF header, the optional header and the section table. */
export function parsePeHeaders(bytes: Uint8Array): PeHeaders {
  if (bytes.length < 64 || bytes[0] !== 0x4d || bytes[1] !== 0x5a) {
    throw new PeError("no MZ header: not a Windows executable");
  }
  const v = view(bytes);
  const pe = v.getUint32(0x3c, true);
  need(bytes, pe, 24, "the PE header");
  if (v.getUint32(pe, true) !== 0x00004550) {
    throw new PeError(`no PE signature at offset ${pe}`);
  }
  const machine = v.getUint16(pe + 4, true);
  const sectionCount = v.getUint16(pe + 6, true);
  const optSize = v.getUint16(pe + 20, true);
  const opt = pe + 24;
  need(bytes, opt, optSize, "the optional header");
  if (optSize < 70) throw new PeError(`optional header too short (${optSize} bytes)`);
  const magic = v.getUint16(opt, true);
  if (magic !== MAGIC_PE32 && magic !== MAGIC_PE32_PLUS) {
    throw new PeError(`unknown optional header magic 0x${magic.toString(16)}`);
  }
  const format = magic === MAGIC_PE32_PLUS ? "PE32+" : "PE32";
  const subsystem = v.getUint16(opt + 68, true);
  const dirs = opt + (format === "PE32+" ? 112 : 96);
  const dirCount = v.getUint32(opt + (format === "PE32+" ? 108 : 92), true);
  let resources: PeHeaders["resources"];
  if (dirCount > 2 && dirs + 24 <= opt + optSize) {
    const rva = v.getUint32(dirs + 16, true), size = v.getUint32(dirs + 20, true);
    if (rva !== 0 && size !== 0) resources = { rva, size };
  }
  const table = opt + optSize;
  need(bytes, table, sectionCount * 40, "the section table");
  const sections: PeSection[] = [];
  for (let i = 0; i < sectionCount; i++) {
    const s = table + 40 * i;
    const raw = bytes.subarray(s, s + 8);
    const end = raw.indexOf(0);
    sections.push({
      name: new TextDecoder("latin1").decode(end < 0 ? raw : raw.subarray(0, end)),
      virtualSize: v.getUint32(s + 8, true),
      virtualAddress: v.getUint32(s + 12, true),
      rawSize: v.getUint32(s + 16, true),
      rawOffset: v.getUint32(s + 20, true),
    });
  }
  return {
    machine,
    machineName: MACHINES[machine] ?? `0x${machine.toString(16)}`,
    format,
    subsystem,
    subsystemName: SUBSYSTEMS[subsystem] ?? String(subsystem),
    sections,
    resources,
  };
}

/** File offset of a relative virtual address. */
export function rvaToOffset(headers: PeHeaders, rva: number): number {
  for (const s of headers.sections) {
    const size = Math.max(s.virtualSize, s.rawSize);
    if (rva >= s.virtualAddress && rva < s.virtualAddress + size) {
      return s.rawOffset + (rva - s.virtualAddress);
    }
  }
  throw new PeError(`RVA 0x${rva.toString(16)} is in no section`);
}

/** One leaf of the resource tree: type / name / language and where its data is. */
export interface PeResource {
  type: number | string;
  name: number | string;
  language: number;
  /** File offset of the data. */
  offset: number;
  size: number;
}

/** Every resource in the image (the three-level type / name / language tree, flattened). */
export function listResources(bytes: Uint8Array, headers: PeHeaders): PeResource[] {
  if (!headers.resources) return [];
  const v = view(bytes);
  const base = rvaToOffset(headers, headers.resources.rva);
  const out: PeResource[] = [];

  const label = (raw: number): number | string => {
    if ((raw & 0x80000000) === 0) return raw;
    const at = base + (raw & 0x7fffffff);
    need(bytes, at, 2, "a resource name");
    const length = v.getUint16(at, true);
    need(bytes, at + 2, length * 2, "a resource name");
    return new TextDecoder("utf-16le").decode(bytes.subarray(at + 2, at + 2 + length * 2));
  };
  const entries = (dir: number): { id: number | string; target: number; isDir: boolean }[] => {
    const at = base + dir;
    need(bytes, at, 16, "a resource directory");
    const count = v.getUint16(at + 12, true) + v.getUint16(at + 14, true);
    need(bytes, at + 16, count * 8, "a resource directory");
    const list = [];
    for (let i = 0; i < count; i++) {
      const e = at + 16 + i * 8;
      const target = v.getUint32(e + 4, true);
      list.push({
        id: label(v.getUint32(e, true)),
        target: target & 0x7fffffff,
        isDir: (target & 0x80000000) !== 0,
      });
    }
    return list;
  };

  for (const type of entries(0)) {
    if (!type.isDir) continue;
    for (const name of entries(type.target)) {
      if (!name.isDir) continue;
      for (const lang of entries(name.target)) {
        if (lang.isDir) continue;
        const leaf = base + lang.target;
        need(bytes, leaf, 16, "a resource data entry");
        const rva = v.getUint32(leaf, true), size = v.getUint32(leaf + 4, true);
        const offset = rvaToOffset(headers, rva);
        need(bytes, offset, size, "resource data");
        out.push({
          type: type.id,
          name: name.id,
          language: typeof lang.id === "number" ? lang.id : 0,
          offset,
          size,
        });
      }
    }
  }
  return out;
}

/** What the VS_VERSIONINFO resource says. */
export interface VersionInfo {
  /** From VS_FIXEDFILEINFO, `major.minor.patch.build`. */
  fileVersion: string;
  /** The StringFileInfo strings of the first table (`ProductName`, `OriginalFilename`, ...). */
  strings: Record<string, string>;
}

interface VersionNode {
  key: string;
  value: Uint8Array;
  children: VersionNode[];
}

function parseVersionNode(bytes: Uint8Array, at: number, end: number): [VersionNode, number] {
  const v = view(bytes);
  need(bytes, at, 6, "a version block");
  const length = v.getUint16(at, true);
  const valueLength = v.getUint16(at + 2, true);
  const isText = v.getUint16(at + 4, true) === 1;
  const stop = Math.min(at + length, end);
  if (length < 6) throw new PeError(`version block of ${length} bytes`);
  let p = at + 6;
  const keyStart = p;
  while (p + 1 < stop && v.getUint16(p, true) !== 0) p += 2;
  const key = new TextDecoder("utf-16le").decode(bytes.subarray(keyStart, p));
  p = (p + 2 + 3) & ~3;
  const valueBytes = Math.min(isText ? valueLength * 2 : valueLength, Math.max(stop - p, 0));
  const value = bytes.subarray(p, p + valueBytes);
  p = (p + valueBytes + 3) & ~3;
  const children: VersionNode[] = [];
  while (p + 6 <= stop) {
    const [child, next] = parseVersionNode(bytes, p, stop);
    children.push(child);
    if (next <= p) break;
    p = next;
  }
  return [{ key, value, children }, (at + length + 3) & ~3];
}

/** The version resource, or undefined when the image has none. */
export function readVersionInfo(bytes: Uint8Array, headers: PeHeaders): VersionInfo | undefined {
  const res = listResources(bytes, headers).find((r) => r.type === RT.VERSION);
  if (!res) return undefined;
  const [root] = parseVersionNode(bytes, res.offset, res.offset + res.size);
  if (root.key !== "VS_VERSION_INFO" || root.value.length < 52) {
    throw new PeError("the version resource is not a VS_VERSION_INFO block");
  }
  const fixed = view(root.value);
  if (fixed.getUint32(0, true) !== 0xfeef04bd) {
    throw new PeError("VS_FIXEDFILEINFO has a bad signature");
  }
  const ms = fixed.getUint32(8, true), ls = fixed.getUint32(12, true);
  const fileVersion = `${ms >>> 16}.${ms & 0xffff}.${ls >>> 16}.${ls & 0xffff}`;
  const strings: Record<string, string> = {};
  const table = root.children.find((c) => c.key === "StringFileInfo")?.children[0];
  for (const s of table?.children ?? []) {
    strings[s.key] = new TextDecoder("utf-16le").decode(s.value).replace(/\0+$/, "");
  }
  return { fileVersion, strings };
}

/** The data of every RT_ICON resource (each one image of an icon, as in a .ico file). */
export function readIconImages(bytes: Uint8Array, headers: PeHeaders): Uint8Array[] {
  return listResources(bytes, headers)
    .filter((r) => r.type === RT.ICON)
    .map((r) => bytes.subarray(r.offset, r.offset + r.size));
}

/** What `deno compile` embedded: its metadata and the paths of the embedded files. */
export interface DenoStandalone {
  /** The metadata JSON (permissions, entrypoint, app name and version, ...). */
  metadata: DenoMetadata;
  /** Embedded file paths relative to the embedding root, `/`-separated, sorted. */
  files: string[];
}

/** The parts of Deno's standalone metadata this project checks. */
export interface DenoMetadata {
  /** `allow_ffi`, `allow_sys`, ...: null (denied), [] (all) or the allowed list. */
  permissions: Record<string, unknown>;
  entrypoint_key?: string;
  app_name?: string;
  app_version?: string;
  [key: string]: unknown;
}

const MAGIC = new TextEncoder().encode("d3n0l4nd");

function indexOfBytes(hay: Uint8Array, needle: Uint8Array, from: number, to: number): number {
  const last = Math.min(to, hay.length) - needle.length;
  for (
    let i = hay.indexOf(needle[0], from);
    i !== -1 && i <= last;
    i = hay.indexOf(needle[0], i + 1)
  ) {
    let j = 1;
    while (j < needle.length && hay[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}

function readU64(bytes: Uint8Array, at: number): number {
  const n = view(bytes).getBigUint64(at, true);
  return n > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(n);
}

function tryJson(bytes: Uint8Array, at: number, length: number): unknown {
  if (length <= 1 || at + length > bytes.length) return undefined;
  try {
    return JSON.parse(
      new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(at, at + length)),
    );
  } catch {
    return undefined;
  }
}

interface VfsEntry {
  File?: { n: string };
  Dir?: { n: string; e: VfsEntry[] };
  Symlink?: { n: string };
}

function vfsFiles(entries: VfsEntry[], prefix: string, out: string[]): void {
  for (const e of entries) {
    if (e.File) out.push(prefix + e.File.n);
    else if (e.Dir) vfsFiles(e.Dir.e ?? [], `${prefix}${e.Dir.n}/`, out);
    else if (e.Symlink) out.push(prefix + e.Symlink.n);
  }
}

function isVfs(x: unknown): x is VfsEntry[] {
  return Array.isArray(x) && x.length > 0 &&
    x.every((e) => e && typeof e === "object" && ("File" in e || "Dir" in e || "Symlink" in e));
}

/**
 * Find what `deno compile` embedded: the `d3n0l4nd` block with its
 * length-prefixed metadata JSON, then the length-prefixed JSON list of the
 * embedded file system. Sections are searched last first, then data after
 * the last section. The layout is Deno's own and not a stable format; it is
 * read here as Deno 2.9 writes it, and a change shows as a clear error.
 */
export function readDenoStandalone(bytes: Uint8Array, headers: PeHeaders): DenoStandalone {
  const ranges = headers.sections
    .map((s) => [s.rawOffset, s.rawOffset + s.rawSize] as const)
    .sort((a, b) => b[0] - a[0]);
  const imageEnd = Math.max(0, ...ranges.map((r) => r[1]));
  if (imageEnd < bytes.length) ranges.unshift([imageEnd, bytes.length]);
  for (const [from, to] of ranges) {
    for (
      let at = indexOfBytes(bytes, MAGIC, from, to);
      at !== -1;
      at = indexOfBytes(bytes, MAGIC, at + 1, to)
    ) {
      if (at + 16 > bytes.length) break;
      const length = readU64(bytes, at + 8);
      const metadata = tryJson(bytes, at + 16, length) as DenoMetadata | undefined;
      if (!metadata || typeof metadata !== "object" || !metadata.permissions) continue;
      const files = findVfs(bytes, at + 16 + length, Math.max(to, at + 16 + length));
      return { metadata, files };
    }
  }
  throw new PeError("no Deno program is embedded (no d3n0l4nd block with metadata)");
}

function findVfs(bytes: Uint8Array, from: number, to: number): string[] {
  const open = new TextEncoder().encode('[{"');
  for (
    let p = indexOfBytes(bytes, open, from, to);
    p !== -1;
    p = indexOfBytes(bytes, open, p + 1, to)
  ) {
    if (p < 8) continue;
    const parsed = tryJson(bytes, p, readU64(bytes, p - 8));
    if (isVfs(parsed)) {
      const files: string[] = [];
      vfsFiles(parsed, "", files);
      return files.sort();
    }
  }
  throw new PeError("the embedded file list was not found after Deno's metadata");
}
