/**
 * A small Docker Engine API client over the engine's unix socket (node:http, JSON in and out, API v1.41: what dockerd
 * 20.10 speaks), with the two byte formats the engine mocks need besides JSON: a ustar archive for
 * `PUT /containers/{id}/archive` (how the provider writes `uploads`) and the multiplexed stdout/stderr stream of logs and
 * exec. Every failure names the method, the path, the HTTP status and the engine's own message.
 */
import * as http from "node:http";

/** dockerd 20.10's API; every path is prefixed with it. */
export const engineApiVersion = "v1.41";
export const defaultSocketPath = "/var/run/docker.sock";

/** A request the engine answered with an error status, in the engine's own words. */
export class EngineApiError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly engineMessage: string,
  ) {
    super(`Docker Engine API ${method} ${path} answered ${status}: ${engineMessage}`);
    this.name = "EngineApiError";
  }
}

/** Whether `error` is the engine saying the object does not exist (404). */
export function isNotFound(error: unknown): boolean {
  return error instanceof EngineApiError && error.status === 404;
}

export type Query = Readonly<Record<string, string | number | boolean | undefined>>;

export interface RequestOptions {
  readonly query?: Query;
  /** Sent as JSON. */
  readonly json?: unknown;
  /** Sent as it is, with `contentType`. */
  readonly raw?: Buffer;
  readonly contentType?: string;
}

export interface EngineResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

/** What an exec inside a running container printed, and how it ended. */
export interface ExecResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

export class DockerEngine {
  constructor(readonly socketPath: string = defaultSocketPath) {}

  /** One request; resolves with any status below 400, rejects with an EngineApiError otherwise. */
  request(method: string, path: string, options: RequestOptions = {}): Promise<EngineResponse> {
    const search = Object.entries(options.query ?? {})
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
      .join("&");
    const fullPath = `/${engineApiVersion}${path}${search === "" ? "" : `?${search}`}`;
    const payload = options.json !== undefined ? Buffer.from(JSON.stringify(options.json), "utf8") : options.raw;
    const headers: http.OutgoingHttpHeaders = {};
    if (payload !== undefined) {
      headers["Content-Type"] = options.json !== undefined ? "application/json" : (options.contentType ?? "application/octet-stream");
      headers["Content-Length"] = payload.length;
    }
    return new Promise((resolve, reject) => {
      // A fresh connection per request (agent: false): long waits (container wait, exec) never hold a pooled socket.
      const req = http.request({ socketPath: this.socketPath, method, path: fullPath, headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", (e) => reject(new EngineApiError(method, fullPath, res.statusCode ?? 0, `reading the answer failed: ${e.message}`)));
        res.on("end", () => {
          const body = Buffer.concat(chunks);
          const status = res.statusCode ?? 0;
          if (status >= 400) reject(new EngineApiError(method, fullPath, status, engineMessage(body)));
          else resolve({ status, headers: res.headers, body });
        });
      });
      req.on("error", (e) => reject(new EngineApiError(method, fullPath, 0, `no answer from the engine at ${this.socketPath}: ${e.message}`)));
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  /** A request whose answer is JSON (or empty: undefined). */
  async json<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const { body } = await this.request(method, path, options);
    if (body.length === 0) return undefined as T;
    try {
      return JSON.parse(body.toString("utf8")) as T;
    } catch {
      throw new EngineApiError(method, path, 200, `the answer is not JSON: ${body.toString("utf8").slice(0, 200)}`);
    }
  }

  /** GET a JSON object, or null when the engine says it does not exist. */
  async inspect<T>(path: string): Promise<T | null> {
    try {
      return await this.json<T>("GET", path);
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  /** Runs `cmd` in a running container (as the container's user unless `user` is given) and waits for it to end. */
  async exec(containerId: string, cmd: readonly string[], user?: string): Promise<ExecResult> {
    const created = await this.json<{ Id: string }>("POST", `/containers/${containerId}/exec`, {
      json: { Cmd: cmd, AttachStdout: true, AttachStderr: true, ...(user === undefined ? {} : { User: user }) },
    });
    // Without an Upgrade header the engine answers 200 and streams the multiplexed output until the command ends.
    const { body } = await this.request("POST", `/exec/${created.Id}/start`, { json: { Detach: false, Tty: false } });
    const streams = demultiplex(body);
    const info = await this.json<{ ExitCode: number | null; Running: boolean }>("GET", `/exec/${created.Id}/json`);
    if (info.ExitCode === null) throw new Error(`exec ${cmd.join(" ")} in ${containerId} has no exit code (still running: ${info.Running})`);
    return { exitCode: info.ExitCode, stdout: streams.stdout, stderr: streams.stderr };
  }

  /** Everything the container printed so far, stdout and stderr in the order written (as `docker logs` shows them). */
  async logs(containerId: string, tty: boolean): Promise<string> {
    const { body } = await this.request("GET", `/containers/${containerId}/logs`, { query: { stdout: 1, stderr: 1 } });
    return tty ? body.toString("utf8") : demultiplex(body).combined;
  }
}

/** The engine's error body is `{"message": "…"}`; anything else is shown as it came. */
function engineMessage(body: Buffer): string {
  const text = body.toString("utf8").trim();
  try {
    const parsed = JSON.parse(text) as { message?: unknown };
    if (typeof parsed.message === "string") return parsed.message;
  } catch {
    // not JSON: show it as it is
  }
  return text === "" ? "(empty answer)" : text;
}

/**
 * The engine's multiplexed stream (containers without a TTY): frames of an 8-byte header — stream (1 stdout, 2 stderr),
 * three zero bytes, the payload's length big-endian — and the payload.
 */
export function demultiplex(stream: Buffer): { stdout: string; stderr: string; combined: string } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const all: Buffer[] = [];
  let offset = 0;
  while (offset + 8 <= stream.length) {
    const kind = stream[offset];
    const size = stream.readUInt32BE(offset + 4);
    const payload = stream.subarray(offset + 8, offset + 8 + size);
    if (kind === 2) err.push(payload);
    else out.push(payload);
    all.push(payload);
    offset += 8 + size;
  }
  if (offset !== stream.length) throw new Error(`the engine's output stream ends inside a frame (${stream.length - offset} bytes left over)`);
  return { stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8"), combined: Buffer.concat(all).toString("utf8") };
}

/** One regular file of a tar archive. */
export interface TarFile {
  /** As written into the header; the engine extracts an absolute name relative to the target directory. */
  readonly name: string;
  readonly content: Buffer;
  /** Permission bits, e.g. 0o644. */
  readonly mode: number;
  readonly uid?: number;
  readonly gid?: number;
  /** Seconds since the epoch. Defaults to 0. */
  readonly mtime?: number;
}

const block = 512;

/** `value` in octal, zero-padded to `width - 1` digits and NUL-terminated (the ustar numeric fields). */
function octal(value: number, width: number): string {
  const digits = value.toString(8);
  if (digits.length > width - 1) throw new Error(`tar: ${value} does not fit a ${width}-byte field`);
  return `${digits.padStart(width - 1, "0")}\0`;
}

/** A long name split as ustar wants it: prefix (≤155 bytes) "/" name (≤100 bytes). */
function splitName(name: string): { prefix: string; base: string } {
  if (Buffer.byteLength(name) <= 100) return { prefix: "", base: name };
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] !== "/") continue;
    const prefix = name.slice(0, i);
    const base = name.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(base) <= 100 && base !== "") return { prefix, base };
  }
  throw new Error(`tar: the name ${name} is too long for a ustar header (a name of at most 100 bytes after a directory of at most 155)`);
}

/**
 * A POSIX ustar archive of regular files: per file a 512-byte header (checksum over the header with the checksum
 * field read as spaces) and the content padded to 512 bytes; two zero blocks end it. Directories are not written: the
 * engine creates missing parents itself (root-owned, 0755), as it does for the provider's archives.
 */
export function ustar(files: readonly TarFile[]): Buffer {
  const parts: Buffer[] = [];
  for (const file of files) {
    const { prefix, base } = splitName(file.name);
    const header = Buffer.alloc(block, 0);
    const put = (text: string, at: number, width: number) => {
      const bytes = Buffer.from(text, "utf8");
      if (bytes.length > width) throw new Error(`tar: "${text}" does not fit a ${width}-byte field`);
      bytes.copy(header, at);
    };
    put(base, 0, 100);
    put(octal(file.mode & 0o7777, 8), 100, 8);
    put(octal(file.uid ?? 0, 8), 108, 8);
    put(octal(file.gid ?? 0, 8), 116, 8);
    put(octal(file.content.length, 12), 124, 12);
    put(octal(file.mtime ?? 0, 12), 136, 12);
    put("        ", 148, 8); // checksum: spaces while summing
    put("0", 156, 1); // regular file
    put("ustar\0", 257, 6);
    put("00", 263, 2);
    put(prefix, 345, 155);
    let sum = 0;
    for (const byte of header) sum += byte;
    put(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8);
    parts.push(header, file.content);
    const pad = (block - (file.content.length % block)) % block;
    if (pad > 0) parts.push(Buffer.alloc(pad, 0));
  }
  parts.push(Buffer.alloc(2 * block, 0));
  return Buffer.concat(parts);
}
