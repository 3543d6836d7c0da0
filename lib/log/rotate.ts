/**
 * A log file rotated by size: when the next line would take `hnsproxy.log`
 * past `maxBytes`, it becomes `hnsproxy.log.1` (older ones shift to `.2`
 * ... `.maxBackups`, the oldest is dropped) and a fresh file starts.
 * Writes are synchronous so a line is on disk before the call returns.
 *
 * @module
 */

/** Options for {@link RotatingFile}. */
export interface RotatingFileOptions {
  /** The live log file. */
  path: string;
  /** Rotate before the file would exceed this size, in bytes (Infinity: never). */
  maxBytes: number;
  /** Rotated files to keep; 0 truncates instead. */
  maxBackups: number;
}

/** An append-only file that rotates itself by size. */
export class RotatingFile {
  readonly #path: string;
  readonly #maxBytes: number;
  readonly #maxBackups: number;
  #file: Deno.FsFile | undefined;
  #size = 0;

  /** Opens (creating it and its directory if needed) the file for appending. */
  constructor(options: RotatingFileOptions) {
    if (!(options.maxBytes > 0)) throw new RangeError(`maxBytes: ${options.maxBytes} must be > 0`);
    if (!(options.maxBackups >= 0)) {
      throw new RangeError(`maxBackups: ${options.maxBackups} must be >= 0`);
    }
    this.#path = options.path;
    this.#maxBytes = options.maxBytes;
    this.#maxBackups = Math.floor(options.maxBackups);
    const dir = parentDir(this.#path);
    if (dir) Deno.mkdirSync(dir, { recursive: true });
    this.#open(false);
  }

  /** The live file's path. */
  get path(): string {
    return this.#path;
  }

  /** Append bytes, rotating first when they would not fit. */
  write(bytes: Uint8Array): void {
    if (!this.#file) throw new Error(`log file ${this.#path} is closed`);
    if (this.#size > 0 && this.#size + bytes.length > this.#maxBytes) this.#rotate();
    let written = 0;
    while (written < bytes.length) written += this.#file!.writeSync(bytes.subarray(written));
    this.#size += bytes.length;
  }

  /** Close the file; further writes throw. */
  close(): void {
    this.#file?.close();
    this.#file = undefined;
  }

  #open(truncate: boolean): void {
    this.#file = Deno.openSync(this.#path, {
      create: true,
      write: true,
      append: !truncate,
      truncate,
    });
    this.#size = truncate ? 0 : this.#file.statSync().size;
  }

  #rotate(): void {
    // Windows cannot rename an open file: close first.
    this.#file!.close();
    this.#file = undefined;
    if (this.#maxBackups > 0) {
      removeIfExists(`${this.#path}.${this.#maxBackups}`);
      for (let i = this.#maxBackups - 1; i >= 1; i--) {
        renameIfExists(`${this.#path}.${i}`, `${this.#path}.${i + 1}`);
      }
      renameIfExists(this.#path, `${this.#path}.1`);
    }
    this.#open(true);
  }
}

function parentDir(path: string): string {
  const i = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  return i > 0 ? path.slice(0, i) : "";
}

function removeIfExists(path: string): void {
  try {
    Deno.removeSync(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

function renameIfExists(from: string, to: string): void {
  try {
    Deno.renameSync(from, to);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}
