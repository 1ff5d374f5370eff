/**
 * local/tls.ts, the one place certificates are made: a CA and server certificates OpenSSL accepts for the loopback
 * names, and the checks the cluster runs before a server is given one — a certificate from another CA, an expired
 * one, one missing a name, a key file PostgreSQL would refuse — each named in a line a person can act on.
 */
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serverNames } from "../../configs/tls";
import {
  certificateFacts,
  certificateProblems,
  createCertificateAuthority,
  issueServerCertificate,
  keyFileProblem,
  keyMatches,
  type CertificateAuthority,
  type ServerCertificate,
} from "../../local/tls";

const day = 86_400_000;
const names = serverNames();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pgstack-tls-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

let ca: CertificateAuthority;
let server: ServerCertificate;
beforeAll(async () => {
  ca = await createCertificateAuthority({ commonName: "unit CA, with a comma", validMs: 30 * day });
  server = await issueServerCertificate(ca, { names, validMs: day });
});

describe("a CA and a server certificate", () => {
  it("carry what verify-full clients check: the chain, the loopback names as DNS and IP SANs, serverAuth", () => {
    const c = new X509Certificate(server.certificatePem);
    const authority = new X509Certificate(ca.certificatePem);
    expect(authority.ca).toBe(true);
    expect(c.ca).toBe(false);
    expect(c.checkIssued(authority) && c.verify(authority.publicKey)).toBe(true);
    expect(c.subjectAltName).toBe("DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1");
    expect(c.keyUsage).toEqual(["1.3.6.1.5.5.7.3.1"]);
    expect(keyMatches(server.certificatePem, server.keyPem)).toBe(true);
    expect(certificateProblems({ caPem: ca.certificatePem, certificatePem: server.certificatePem, names })).toEqual([]);
  });

  it("verify with OpenSSL as PostgreSQL and PgBouncer use it, for the IP PgBouncer connects to", () => {
    fs.writeFileSync(path.join(tmp, "ca.crt"), ca.certificatePem);
    fs.writeFileSync(path.join(tmp, "tls.crt"), server.certificatePem);
    const out = execFileSync("openssl", ["verify", "-CAfile", path.join(tmp, "ca.crt"), "-verify_ip", "127.0.0.1", "-purpose", "sslserver", path.join(tmp, "tls.crt")], {
      encoding: "utf8",
    });
    expect(out.trim()).toBe(`${path.join(tmp, "tls.crt")}: OK`);
  });

  it("last as long as asked, from a minute ago, with a fresh positive serial and key each time", async () => {
    const before = Date.now();
    const again = await issueServerCertificate(ca, { names, validMs: day });
    const facts = certificateFacts(again.certificatePem);
    expect(facts.notAfter.getTime() - facts.notBefore.getTime()).toBe(day);
    expect(Math.abs(facts.notBefore.getTime() - (before - 60_000))).toBeLessThan(2_000);
    expect(facts.serial).not.toBe(certificateFacts(server.certificatePem).serial);
    expect(Number.parseInt(facts.serial.slice(0, 2), 16)).toBeLessThan(0x80);
    expect(keyMatches(again.certificatePem, server.keyPem)).toBe(false);
    expect(facts.issuer).toBe("CN=unit CA\\, with a comma");
  });
});

describe("what the cluster refuses before a server gets it", () => {
  it("a certificate from another CA, naming both", async () => {
    const other = await createCertificateAuthority({ commonName: "someone else", validMs: 30 * day });
    const foreign = await issueServerCertificate(other, { names, validMs: day });
    const problems = certificateProblems({ caPem: ca.certificatePem, certificatePem: foreign.certificatePem, names });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/was not issued by the CA its clients trust: it names issuer "CN=someone else", the CA is "CN=unit CA\\, with a comma"/);
  });

  it("an expired certificate, with when it expired", async () => {
    const expired = await issueServerCertificate(ca, { names, validMs: 60_000, notBefore: new Date(Date.now() - 3_600_000) });
    const { notAfter, serial } = certificateFacts(expired.certificatePem);
    expect(certificateProblems({ caPem: ca.certificatePem, certificatePem: expired.certificatePem, names })).toEqual([
      `the server certificate (serial ${serial}) expired at ${notAfter.toISOString()}; every verifying client would refuse it`,
    ]);
  });

  it("a certificate without a name clients connect to, or outliving its CA", async () => {
    const dnsOnly = await issueServerCertificate(ca, { names: { dns: ["localhost"], ips: [] }, validMs: day });
    expect(certificateProblems({ caPem: ca.certificatePem, certificatePem: dnsOnly.certificatePem, names }).join("\n")).toMatch(
      /does not carry 127\.0\.0\.1, ::1, which clients connect to/,
    );
    const long = await issueServerCertificate(ca, { names, validMs: 60 * day });
    expect(certificateProblems({ caPem: ca.certificatePem, certificatePem: long.certificatePem, names }).join("\n")).toMatch(/after its CA ends/);
  });

  it("text that is no certificate", () => {
    expect(certificateProblems({ caPem: ca.certificatePem, certificatePem: "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n", names })[0]).toMatch(
      /^the server certificate is not a PEM certificate/,
    );
  });

  it("a key file with group or world access, or another owner (PostgreSQL's own rule)", () => {
    const key = path.join(tmp, "tls.key");
    fs.writeFileSync(key, server.keyPem, { mode: 0o600 });
    const owner = fs.statSync(key).uid;
    expect(keyFileProblem(key, owner)).toBeUndefined();
    fs.chmodSync(key, 0o644);
    expect(keyFileProblem(key, owner)).toBe(
      `the key ${key} has mode 0644; owned by the server's user (uid ${owner}) it must be 0600 or less: PostgreSQL refuses a key with group or world access`,
    );
    fs.chmodSync(key, 0o640);
    expect(keyFileProblem(key, owner)).toMatch(/has mode 0640; owned by the server's user/);
    const someoneElse = owner + 4242;
    if (owner === 0) {
      // A root-owned key may be group-readable for a server running as another user; no wider.
      expect(keyFileProblem(key, someoneElse)).toBeUndefined();
      fs.chmodSync(key, 0o644);
      expect(keyFileProblem(key, someoneElse)).toMatch(/has mode 0644; owned by root it must be 0640 or less/);
    } else {
      expect(keyFileProblem(key, someoneElse)).toMatch(new RegExp(`belongs to uid ${owner}; it must belong to the server's user \\(uid ${someoneElse}`));
    }
    expect(keyFileProblem(path.join(tmp, "missing.key"), owner)).toMatch(/cannot be read/);
  });
});
