/**
 * TLS on every connection, on a real perf cluster (PostgreSQL 17, PgBouncer 1.24): a client without TLS is refused
 * by both with their own words, verify-full with the cluster's CA gets in (pg_stat_ssl, SHOW CLIENTS), a client
 * trusting another CA and a TLS 1.1 client do not, PgBouncer's own connections to PostgreSQL are TLS; the certificate
 * is renewed without a restart (new serial and notAfter served by both, same pids, an open session still working),
 * and what the servers or the cluster's checks refuse (a mismatched key, another CA's certificate, an expired one, a
 * key readable by others) is refused loudly with the old certificate still served. PostgreSQL's own refusal of such
 * a key, at start, reaches the person with its DETAIL.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Client } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clusterSpec, parseClusterFlags } from "../../cli/local";
import { renderPgHba } from "../../configs/pg-hba";
import { renderPostgresqlConf } from "../../configs/postgresql";
import { memoryPlan } from "../../configs/memory";
import { serverNames } from "../../configs/tls";
import { LocalCluster, type RenewedCertificate } from "../../local/cluster";
import { connectionUrl } from "../../local/cluster-files";
import { getRuntime, startPostgres, stopAll } from "../../local/runtime";
import { readState, type ClusterState } from "../../local/state";
import { teardownFromState } from "../../local/teardown";
import { certificateFacts, createCertificateAuthority, issueServerCertificate, servedCertificate, tlsHandshake } from "../../local/tls";

const stateRoot = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-tls-"));
const name = `tls-${process.pid}`;
const { spec } = clusterSpec(parseClusterFlags(["--memory", "1Gi"]).flags);
const cluster = new LocalCluster({ name, spec, stateRoot, hugePages: false });
let state: ClusterState;
let otherCaFile: string;

beforeAll(async () => {
  await cluster.start();
  state = readState(stateRoot, name) as ClusterState;
  const other = await createCertificateAuthority({ commonName: "not this cluster's CA", validMs: 86_400_000 });
  otherCaFile = path.join(stateRoot, "other-ca.crt");
  fs.writeFileSync(otherCaFile, other.certificatePem);
});

afterAll(async () => {
  await cluster.stop().catch(() => undefined);
  await teardownFromState(stateRoot, name).catch(() => undefined);
  await stopAll();
  fs.rmSync(stateRoot, { recursive: true, force: true });
});

/** The URL with its query replaced: how a client that asks for no TLS, or trusts another CA, connects. */
function withQuery(url: string, query: string): string {
  return `${url.slice(0, url.indexOf("?"))}?${query}`;
}

async function withClient<T>(url: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url, application_name: "tls-test" });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function refusal(url: string): Promise<string> {
  const client = new Client({ connectionString: url });
  try {
    await client.connect();
    return "connected";
  } catch (error) {
    return (error as Error).message;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** PgBouncer's admin console as the stats user (SHOW CLIENTS, SHOW SERVERS), over TLS like every client. */
function statsUrl(): string {
  const { rendered } = cluster;
  return connectionUrl(rendered.roles.stats, state.passwords.stats, rendered.placement.ports.pgbouncer, "pgbouncer", cluster.info.caPath);
}

const served = async (): Promise<{ postgres: string; pgbouncer: string }> => ({
  postgres: certificateFacts(await servedCertificate(cluster.info.ports.postgres)).serial,
  pgbouncer: certificateFacts(await servedCertificate(cluster.info.ports.pgbouncer)).serial,
});

const runningPids = (): { postgres: number; pgbouncer: number } => {
  const pid = (server: string) => state.servers.filter((s) => s.name === server).at(-1)?.pid ?? -1;
  return { postgres: pid("postgres"), pgbouncer: pid("pgbouncer") };
};

describe("a client without TLS", () => {
  it("is refused by PostgreSQL (pg_hba: hostnossl … reject, loopback too) and by PgBouncer (client_tls_sslmode = require)", async () => {
    const { info } = cluster;
    expect(await refusal(withQuery(info.directUrl, "sslmode=disable"))).toBe('pg_hba.conf rejects connection for host "127.0.0.1", user "app_owner", database "app", no encryption');
    const readOnlyDirect = info.readOnlyUrl.replace(`:${info.ports.pgbouncer}/`, `:${info.ports.postgres}/`);
    expect(await refusal(withQuery(readOnlyDirect, "sslmode=disable"))).toMatch(/pg_hba\.conf rejects connection for host "127\.0\.0\.1", user "app_readonly", database "app", no encryption/);
    expect(await refusal(withQuery(info.pooledUrl, "sslmode=disable"))).toMatch(/SSL required/);
  });
});

describe("verify-full with the cluster's CA", () => {
  it("gets in to PostgreSQL over TLS 1.3 (pg_stat_ssl) and to PgBouncer over TLS (SHOW CLIENTS)", async () => {
    const { info } = cluster;
    const ssl = await withClient(info.directUrl, async (c) => (await c.query("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")).rows[0]);
    expect(ssl).toEqual({ ssl: true, version: "TLSv1.3" });

    const pooled = new Client({ connectionString: info.pooledUrl, application_name: "tls-test-pooled" });
    await pooled.connect();
    try {
      await pooled.query("SELECT 1");
      const clients = await withClient(statsUrl(), async (c) => (await c.query("SHOW CLIENTS")).rows as { user: string; application_name: string; tls: string }[]);
      const mine = clients.find((c) => c.application_name === "tls-test-pooled");
      expect(mine?.tls).toMatch(/^TLSv1\.3\//);
      // Every client of PgBouncer uses TLS: the canary, pgbouncer_exporter (this listing), this test.
      for (const c of clients) expect(c.tls, `${c.user} ${c.application_name}`).toMatch(/^TLSv1\.[23]\//);
    } finally {
      await pooled.end();
    }
  });

  it("is refused when the client trusts another CA", async () => {
    const { info } = cluster;
    const trustingAnother = (url: string) => withQuery(url, `sslmode=verify-full&sslrootcert=${otherCaFile}`);
    // PostgreSQL sends its certificate alone; PgBouncer adds the CA from its client_tls_ca_file to the chain, which
    // the client finds self-signed and unknown. Refused either way.
    expect(await refusal(trustingAnother(info.directUrl))).toBe("unable to verify the first certificate");
    expect(await refusal(trustingAnother(info.pooledUrl))).toBe("self-signed certificate in certificate chain");
  });

  it("refuses a TLS 1.1 client on both servers", async () => {
    const { info } = cluster;
    // OpenSSL 3 offers TLS 1.1 only at security level 0; the servers' floor (TLS 1.2) then refuses the handshake.
    const old = { minVersion: "TLSv1" as const, maxVersion: "TLSv1.1" as const, ciphers: "DEFAULT@SECLEVEL=0" };
    for (const port of [info.ports.postgres, info.ports.pgbouncer]) {
      await expect(tlsHandshake(port, old)).rejects.toThrow(/protocol version|unsupported protocol|no protocols available/i);
      // The same handshake with TLS 1.2 allowed succeeds and verifies: the refusal is about the version alone.
      const modern = await tlsHandshake(port, { ca: fs.readFileSync(info.caPath, "utf8"), servername: "localhost", minVersion: "TLSv1.2", maxVersion: "TLSv1.2" });
      expect([modern.protocol, modern.authorized]).toEqual(["TLSv1.2", true]);
    }
  });

  it("carries PgBouncer's own connections to PostgreSQL (server_tls_sslmode = verify-full)", async () => {
    const { info } = cluster;
    await withClient(info.pooledUrl, (c) => c.query("SELECT 1"));
    const servers = await withClient(statsUrl(), async (c) => (await c.query("SHOW SERVERS")).rows as { remote_pid: string; tls: string; database: string }[]);
    expect(servers.length).toBeGreaterThan(0);
    for (const s of servers) expect(s.tls, `server connection to ${s.database}`).toMatch(/^TLSv1\.3\//);
    const pids = servers.map((s) => Number(s.remote_pid));
    const onPostgres = await withClient(info.superuserUrl, async (c) => (await c.query("SELECT pid, ssl FROM pg_stat_ssl WHERE pid = ANY($1::int[])", [pids])).rows);
    expect(onPostgres.map((r) => r.ssl)).toEqual(pids.map(() => true));
  });
});

describe("renewing the certificate", () => {
  it("serves the new serial and notAfter from both servers without a restart, and a session open across it goes on", async () => {
    const { info } = cluster;
    const before = await served();
    expect(before.postgres).toBe(before.pgbouncer);
    const pids = runningPids();
    const direct = new Client({ connectionString: info.directUrl });
    const pooled = new Client({ connectionString: info.pooledUrl });
    await Promise.all([direct.connect(), pooled.connect()]);
    try {
      const backend = (await direct.query("SELECT pg_backend_pid() AS pid")).rows[0].pid as number;
      const validMs = 3 * 86_400_000;
      const renewed: RenewedCertificate = await cluster.renewCertificate({ validMs });
      expect(renewed.serial).not.toBe(before.postgres);
      expect(renewed.pids).toEqual(pids);
      expect(Math.abs(renewed.notAfter.getTime() - (Date.now() - 60_000 + validMs))).toBeLessThan(60_000);
      for (const port of [info.ports.postgres, info.ports.pgbouncer]) {
        const facts = certificateFacts(await servedCertificate(port));
        expect([facts.serial, facts.notAfter.toISOString()]).toEqual([renewed.serial, renewed.notAfter.toISOString()]);
      }
      // The processes are the ones from before (no restart), and the open sessions still answer.
      for (const pid of Object.values(pids)) expect(fs.existsSync(`/proc/${pid}`)).toBe(true);
      expect((await direct.query("SELECT pg_backend_pid() AS pid")).rows[0].pid).toBe(backend);
      expect((await pooled.query("SELECT 2 AS two")).rows[0].two).toBe(2);
      // New clients verify the new certificate with the same CA.
      expect((await withClient(info.pooledUrl, (c) => c.query("SELECT 3 AS three"))).rows[0].three).toBe(3);
    } finally {
      await Promise.all([direct.end(), pooled.end()]);
    }
  });

  it("with a key that does not match is refused by both servers, the error names what they logged, the old one stays served", async () => {
    const before = await served();
    const certificatePem = fs.readFileSync(path.join(path.dirname(cluster.info.caPath), "tls.crt"), "utf8");
    const a = await cluster.issueCertificate();
    const b = await cluster.issueCertificate();
    const error = await cluster.renewCertificate({ provided: { certificatePem: a.certificatePem, keyPem: b.keyPem } }).catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    const message = (error as Error).message;
    expect(message).toContain(`the servers refused serial ${certificateFacts(a.certificatePem).serial}`);
    expect(message).toMatch(/postgres kept serving serial .* logged: .*could not load private key file .*key values mismatch/);
    expect(message).toMatch(/SSL configuration was not reloaded/);
    expect(message).toMatch(/pgbouncer kept serving serial .* logged: .*TLS configuration could not be reloaded, keeping old configuration/);
    expect(message).toMatch(/The previous certificate and key are back in place/);
    expect(message).not.toMatch(/BEGIN PRIVATE KEY/);
    console.log(`a mismatched key, refused: ${message}`);
    expect(await served()).toEqual(before);
    expect(fs.readFileSync(path.join(path.dirname(cluster.info.caPath), "tls.crt"), "utf8")).toBe(certificatePem);
    expect((await withClient(cluster.info.pooledUrl, (c) => c.query("SELECT 1 AS one"))).rows[0].one).toBe(1);
  });

  it("refuses, before touching anything, another CA's certificate, an expired one and a key readable by others", async () => {
    const before = await served();
    const dir = path.dirname(cluster.info.caPath);
    const files = () => ["tls.crt", "tls.key"].map((f) => fs.readFileSync(path.join(dir, f), "utf8"));
    const onDisk = files();
    const foreignCa = await createCertificateAuthority({ commonName: "someone else's CA", validMs: 86_400_000 });
    const foreign = await issueServerCertificate(foreignCa, { names: serverNames(), validMs: 3_600_000 });
    const expired = await cluster.issueCertificate({ validMs: 60_000, notBefore: new Date(Date.now() - 3_600_000) });
    const cases: [string, Parameters<LocalCluster["renewCertificate"]>[0], RegExp][] = [
      ["another CA", { provided: foreign }, /was not issued by the CA its clients trust: it names issuer "CN=someone else's CA"/],
      ["expired", { provided: expired }, /expired at \d{4}-\d\d-\d\dT/],
      ["key 0644", { keyMode: 0o644 }, /the key \S+tls\.key has mode 0644; owned by the server's user \(uid \d+\) it must be 0600 or less/],
    ];
    for (const [label, request, reason] of cases) {
      const error = await cluster.renewCertificate(request).catch((e: Error) => e);
      expect((error as Error).message, label).toMatch(/the server certificate was refused and nothing was installed/);
      expect((error as Error).message, label).toMatch(reason);
      expect(files(), label).toEqual(onDisk);
      expect(fs.readdirSync(dir).filter((f) => f.endsWith(".new")), label).toEqual([]);
    }
    expect(await served()).toEqual(before);
    // The CA's key is beside them, root's alone; nothing above printed it.
    const caKey = fs.statSync(path.join(dir, "ca.key"));
    expect([caKey.uid, caKey.mode & 0o777]).toEqual([process.getuid?.(), 0o600]);
  });
});

describe("a cluster started with a bad certificate", () => {
  it("stops before anything runs, naming what is wrong, and leaves nothing behind", async () => {
    const ca = await createCertificateAuthority({ commonName: "given CA", validMs: 10 * 86_400_000 });
    const other = await createCertificateAuthority({ commonName: "other CA", validMs: 10 * 86_400_000 });
    const cases: [string, NonNullable<ConstructorParameters<typeof LocalCluster>[0]["tls"]>, RegExp][] = [
      ["another CA", { ca, certificate: { provided: await issueServerCertificate(other, { names: serverNames(), validMs: 86_400_000 }) } }, /not issued by the CA/],
      [
        "expired",
        { ca, certificate: { provided: await issueServerCertificate(ca, { names: serverNames(), validMs: 60_000, notBefore: new Date(Date.now() - 3_600_000) }) } },
        /expired at/,
      ],
      ["key 0644", { ca, certificate: { keyMode: 0o644, validMs: 86_400_000 } }, /has mode 0644/],
    ];
    for (const [label, tls, reason] of cases) {
      const badName = `${name}-bad-${label.replace(/\W+/g, "-")}`;
      const bad = new LocalCluster({ name: badName, spec, stateRoot, hugePages: false, tls });
      const error = await bad.start().catch((e: Error) => e);
      expect((error as Error).message, label).toMatch(new RegExp(`cluster ${badName}: the server certificate was refused and nothing was installed: .*${reason.source}`));
      expect(readState(stateRoot, badName), label).toBeUndefined();
      const report = await bad.stop();
      expect(report.stopped, label).toEqual([]);
    }
  });

  it("PostgreSQL's own refusal of a key readable by others reaches the person with its DETAIL", async () => {
    const runtime = await getRuntime();
    const scratch = runtime.scratchDir("tls-key-0644");
    const ca = await createCertificateAuthority({ commonName: "key-mode CA", validMs: 86_400_000 });
    const issued = await issueServerCertificate(ca, { names: serverNames(), validMs: 86_400_000 });
    const certificate = scratch.writeFile("tls/tls.crt", issued.certificatePem, 0o644);
    const key = scratch.writeFile("tls/tls.key", issued.keyPem, 0o644);
    const caHostPath = scratch.hostPathOf("tls/ca.crt");
    scratch.writeFile("tls/ca.crt", ca.certificatePem, 0o644);
    const port = cluster.info.ports.postgres + 1000;
    // A conf placed by this test (as the cluster's are): its port, socket and the key PostgreSQL is to refuse.
    const conf = renderPostgresqlConf(spec, memoryPlan(spec), { port, socketDirectory: scratch.path, tls: { certificate, key } });
    const error = await startPostgres({ runtime, scratch, placed: true, port, caHostPath, postgresqlConf: conf, pgHbaConf: renderPgHba() }).catch((e: Error) => e);
    expect((error as Error).message).toMatch(/private key file ".*tls\.key" has group or world access/);
    expect((error as Error).message).toMatch(/DETAIL: +File must have permissions u=rw \(0600\) or less if owned by the database user, or permissions u=rw,g=r \(0640\) or less if owned by root\./);
  });
});
