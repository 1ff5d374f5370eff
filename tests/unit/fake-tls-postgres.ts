/**
 * An in-process stand-in for a PostgreSQL-protocol server with TLS, for unit tests of every client that reads or
 * verifies the certificate a server presents (the canary, drift, the served-certificate reader). It speaks just
 * enough of the protocol: the SSLRequest (answered 'S', 'N' or never), the TLS handshake with the certificate it was
 * given (node:tls createServer, fed the socket after the 'S'), a startup message answered with AuthenticationOk and
 * ReadyForQuery, a simple query answered with an empty result, Terminate. It records what each connection did, so a
 * test can tell a login from a bare handshake and see that every socket was closed.
 */
import { X509Certificate } from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as tls from "node:tls";
import * as os from "node:os";
import * as path from "node:path";
import { createCertificateAuthority, issueServerCertificate, type CertificateAuthority, type ServerCertificate } from "../../local/tls";
import type { ServerNames } from "../../configs/tls";

/** How the server answers an SSLRequest: 'S' and a handshake, 'N' (no TLS here), not at all, or by hanging up. */
export type SslAnswer = "tls" | "refuse" | "hang" | "close";

/** What one client connection did. */
export interface ConnectionRecord {
  /** Its SSLRequest was read. */
  sslRequested: boolean;
  /** The TLS handshake completed. */
  handshake: boolean;
  /** The SNI name the client sent, if any. */
  servername: string | null;
  /** The startup message's user, once one arrived (a login attempt). */
  user: string | null;
  /** Simple queries received. */
  queries: string[];
  /** The client's socket closed. */
  closed: boolean;
}

export interface FakeTlsPostgres {
  readonly port: number;
  readonly connections: ConnectionRecord[];
  /** Resolves once every connection so far has closed. */
  allClosed(): Promise<void>;
  close(): Promise<void>;
}

function message(type: string, body: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.write(type, 0, "latin1");
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

const authenticationOk = message("R", Buffer.from([0, 0, 0, 0]));
const readyForQuery = message("Z", Buffer.from("I", "latin1"));
const commandComplete = message("C", Buffer.from("SELECT 0\0", "latin1"));

/** Frontend messages after TLS: the startup message (no type byte), then typed ones. */
function serveProtocol(stream: tls.TLSSocket, record: ConnectionRecord): void {
  let buffered = Buffer.alloc(0);
  let started = false;
  stream.on("data", (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    for (;;) {
      if (!started) {
        if (buffered.length < 4) return;
        const length = buffered.readInt32BE(0);
        if (buffered.length < length) return;
        const fields = buffered.subarray(8, length).toString("utf8").split("\0");
        record.user = fields[fields.indexOf("user") + 1] ?? "";
        buffered = buffered.subarray(length);
        started = true;
        stream.write(Buffer.concat([authenticationOk, readyForQuery]));
        continue;
      }
      if (buffered.length < 5) return;
      const type = String.fromCharCode(buffered[0]);
      const length = buffered.readInt32BE(1);
      if (buffered.length < 1 + length) return;
      const body = buffered.subarray(5, 1 + length);
      buffered = buffered.subarray(1 + length);
      if (type === "Q") {
        record.queries.push(body.toString("utf8").replace(/\0$/, ""));
        stream.write(Buffer.concat([commandComplete, readyForQuery]));
      } else if (type === "X") {
        stream.end();
        return;
      }
    }
  });
}

/** Starts the fake on a free loopback port. `certificate` is what it presents; `answer` how it meets an SSLRequest. */
export async function startFakeTlsPostgres(opts: { readonly certificate: ServerCertificate; readonly answer?: SslAnswer }): Promise<FakeTlsPostgres> {
  const answer = opts.answer ?? "tls";
  const connections: ConnectionRecord[] = [];
  const sockets = new Set<net.Socket>();
  const closedWaiters: (() => void)[] = [];
  const checkClosed = (): void => {
    if (connections.every((c) => c.closed)) closedWaiters.splice(0).forEach((w) => w());
  };
  const secure = tls.createServer({ cert: opts.certificate.certificatePem, key: opts.certificate.keyPem });
  /** Client port → its record: the TLS socket the server hands over is another object than the raw one. */
  const byClientPort = new Map<number, ConnectionRecord>();
  secure.on("secureConnection", (stream: tls.TLSSocket) => {
    const record = byClientPort.get(stream.remotePort ?? -1);
    if (record === undefined) return;
    record.handshake = true;
    // Node sets `servername` on a server's TLS socket from the client's SNI (string, or false without one); the
    // type declarations do not list it.
    const sni = (stream as tls.TLSSocket & { servername?: string | false }).servername;
    record.servername = typeof sni === "string" ? sni : null;
    stream.on("error", () => undefined);
    serveProtocol(stream, record);
  });
  secure.on("tlsClientError", () => undefined);
  const server = net.createServer((socket) => {
    const record: ConnectionRecord = { sslRequested: false, handshake: false, servername: null, user: null, queries: [], closed: false };
    connections.push(record);
    sockets.add(socket);
    socket.on("error", () => undefined);
    socket.on("close", () => {
      sockets.delete(socket);
      record.closed = true;
      checkClosed();
    });
    socket.once("data", (request: Buffer) => {
      if (request.length !== 8 || request.readInt32BE(4) !== 80877103) {
        socket.destroy();
        return;
      }
      record.sslRequested = true;
      if (answer === "hang") return;
      if (answer === "close") {
        socket.destroy();
        return;
      }
      if (answer === "refuse") {
        socket.write("N");
        return;
      }
      socket.write("S");
      // The TLS server takes the socket from here (what a STARTTLS server does with node:tls).
      byClientPort.set(socket.remotePort ?? -1, record);
      secure.emit("connection", socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    connections,
    allClosed: () =>
      new Promise<void>((resolve) => {
        closedWaiters.push(resolve);
        checkClosed();
      }),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The certificates the tests need, made once per file: the stack's CA, a foreign CA, and servers signed by them. */
export interface TestCertificates {
  readonly ca: CertificateAuthority;
  /** A file holding the stack CA's certificate (the clients' sslrootcert). */
  readonly caFile: string;
  /** Valid, for localhost and 127.0.0.1 / ::1 (the stack's loopback names). */
  readonly valid: ServerCertificate;
  /** Signed by the stack's CA, for the same names, expired a day ago. */
  readonly expired: ServerCertificate;
  /** Valid, for the same names, from another CA. */
  readonly foreign: ServerCertificate;
  /** Valid, from the stack's CA, for the DNS name localhost only: a client connecting to 127.0.0.1 must refuse it. */
  readonly localhostOnly: ServerCertificate;
  readonly dir: string;
  remove(): void;
}

const day = 86_400_000;
const loopback: ServerNames = { dns: ["localhost"], ips: ["127.0.0.1", "::1"] };

export async function makeTestCertificates(): Promise<TestCertificates> {
  const ca = await createCertificateAuthority({ commonName: "pgstack unit-test CA", validMs: 30 * day });
  const other = await createCertificateAuthority({ commonName: "someone else's CA", validMs: 30 * day });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-tls-test-"));
  const caFile = path.join(dir, "ca.crt");
  fs.writeFileSync(caFile, ca.certificatePem);
  return {
    ca,
    caFile,
    valid: await issueServerCertificate(ca, { names: loopback, validMs: 10 * day }),
    expired: await issueServerCertificate(ca, { names: loopback, validMs: day, notBefore: new Date(Date.now() - 2 * day) }),
    foreign: await issueServerCertificate(other, { names: loopback, validMs: 10 * day }),
    localhostOnly: await issueServerCertificate(ca, { names: { dns: ["localhost"], ips: [] }, validMs: 10 * day }),
    dir,
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

/** notAfter of a PEM certificate, in whole Unix seconds (what the canary's gauge holds). */
export function notAfterSeconds(certificatePem: string): number {
  return Math.floor(new Date(new X509Certificate(certificatePem).validTo).getTime() / 1000);
}
