/**
 * The canary's certificate gauge against real PostgreSQL 17 and PgBouncer 1.24 over TLS (the rig gives each server a
 * certificate from its CA; the URLs verify with sslmode=verify-full): each probe exports the notAfter of the
 * certificate each target serves, and keeps doing so when a renewal goes wrong — an expired certificate or one from
 * another CA, loaded by a reload as the servers load them — while the verify-full logins fail and are counted.
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Canary, type ProbeResult } from "../../canary";
import { canaryMetrics, defaultCanarySettings, type CanaryTarget } from "../../configs/canary";
import { getRuntime, startPgBouncer, startPostgres, stopAll, type PgBouncerServer, type PostgresServer } from "../../local/runtime";
import { rigCertificateAuthority, rigTlsEntries } from "../../local/runtime/tls";
import { certificateFacts, createCertificateAuthority, issueServerCertificate, type ServerCertificate } from "../../local/tls";
import { serverNames } from "../../configs/tls";
import { readServedCertificate } from "../../pgclient/served-certificate";
import { parseExposition } from "../exposition";
import { scratchPgHbaConf, scratchPostgresConf } from "./scratch-servers";

const day = 86_400_000;
const appPassword = `app-${randomBytes(12).toString("base64url")}`;
let pg: PostgresServer;
let pgb: PgBouncerServer;
let canary: Canary;
const log: string[] = [];

beforeAll(async () => {
  const runtime = await getRuntime();
  pg = await startPostgres({ runtime, postgresqlConf: scratchPostgresConf({ sharedBuffers: "128MB", maxParallelMaintenanceWorkers: 0 }), pgHbaConf: scratchPgHbaConf });
  await pg.psql(`CREATE ROLE app LOGIN PASSWORD '${appPassword}'; CREATE DATABASE canary OWNER app;`);
  const verifier = await pg.psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'app'");
  pgb = await startPgBouncer({
    runtime,
    ini: `[databases]
canary = host=127.0.0.1 port=${pg.port} dbname=canary

[pgbouncer]
pool_mode = transaction
auth_type = scram-sha-256
client_tls_sslmode = require
server_tls_sslmode = verify-full
`,
    userlist: `"app" "${verifier}"\n`,
  });
  canary = new Canary({
    settings: { ...defaultCanarySettings, connectTimeoutMs: 5_000 },
    pooledUrl: pgb.url("canary", "app", appPassword),
    directUrl: pg.url("canary", "app", appPassword),
    log: (line) => log.push(line),
  });
});

afterAll(async () => {
  await stopAll();
});

async function gauge(target: CanaryTarget): Promise<number | undefined> {
  const series = parseExposition(await canary.metrics.text());
  return series.find((s) => s.name === canaryMetrics.certificateNotAfter.name && s.labels.target === target)?.value;
}

async function failures(target: CanaryTarget): Promise<number | undefined> {
  const series = parseExposition(await canary.metrics.text());
  return series.find((s) => s.name === canaryMetrics.connectionFailures.name && s.labels.target === target)?.value;
}

const seconds = (pem: string) => Math.floor(certificateFacts(pem).notAfter.getTime() / 1000);

/** Puts `certificate` in place of both servers' own and reloads them; resolves once both serve it. */
async function serveEverywhere(certificate: ServerCertificate): Promise<void> {
  for (const server of [pg, pgb]) {
    server.scratch.writeFile(rigTlsEntries.certificate, certificate.certificatePem, 0o644);
    server.scratch.writeFile(rigTlsEntries.key, certificate.keyPem, 0o600);
  }
  await pg.psql("SELECT pg_reload_conf()");
  process.kill(pgb.process.pid, "SIGHUP");
  const serial = certificateFacts(certificate.certificatePem).serial;
  const deadline = Date.now() + 15_000;
  for (const port of [pg.port, pgb.port]) {
    while ((await readServedCertificate({ host: "127.0.0.1", port, caPath: undefined }, 2_000)).serial !== serial) {
      if (Date.now() > deadline) throw new Error(`port ${port} does not serve the new certificate (serial ${serial}) 15 s after the reload`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

async function probeBoth(): Promise<Record<CanaryTarget, ProbeResult>> {
  const [pgbouncer, postgres] = await Promise.all([canary.probe("pgbouncer"), canary.probe("postgres")]);
  return { pgbouncer, postgres };
}

describe("the canary's certificate gauge on real servers", () => {
  it("exports the notAfter each server serves, verified, with the logins working", async () => {
    const probes = await probeBoth();
    for (const [target, server] of [["pgbouncer", pgb], ["postgres", pg]] as const) {
      expect(probes[target].connection, target).toBeNull();
      expect(probes[target].certificate).toMatchObject({ ok: true, certificate: { verified: true } });
      const served = server.scratch.hostPathOf(rigTlsEntries.certificate);
      expect(await gauge(target)).toBe(seconds(fs.readFileSync(served, "utf8")));
      expect(await failures(target)).toBe(0);
    }
  });

  it("reports an expired certificate both servers loaded on reload; the verify-full logins fail and are counted", async () => {
    const expired = await issueServerCertificate(await rigCertificateAuthority(), { names: serverNames(), validMs: day, notBefore: new Date(Date.now() - 3 * day) });
    await serveEverywhere(expired);
    const probes = await probeBoth();
    for (const target of ["pgbouncer", "postgres"] as const) {
      expect(probes[target].connection, target).toMatch(/certificate has expired/);
      expect(probes[target].certificate).toMatchObject({ ok: true, certificate: { verified: false, problem: "it has expired (CERT_HAS_EXPIRED)" } });
      expect(await gauge(target)).toBe(seconds(expired.certificatePem));
      expect(await failures(target)).toBe(1);
    }
  });

  it("reports a certificate from another CA", async () => {
    const other = await createCertificateAuthority({ commonName: "not the rig's CA", validMs: 10 * day });
    const foreign = await issueServerCertificate(other, { names: serverNames(), validMs: 5 * day });
    await serveEverywhere(foreign);
    const probes = await probeBoth();
    for (const target of ["pgbouncer", "postgres"] as const) {
      expect(probes[target].connection, target).not.toBeNull();
      expect(probes[target].certificate).toMatchObject({ ok: true, certificate: { verified: false, issuer: "CN=not the rig's CA" } });
      expect(await gauge(target)).toBe(seconds(foreign.certificatePem));
      expect(await failures(target)).toBe(2);
    }
    expect(log.join("\n")).toMatch(/certificate of postgres: serial .*, does not verify: it was not issued by the CA in /);
    expect(log.join("\n")).not.toContain(appPassword);
  });
});
