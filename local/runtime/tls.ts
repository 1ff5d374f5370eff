/**
 * TLS for servers the rig starts without a placement (tests that run the stack's postgresql.conf or pgbouncer.ini,
 * or a scratch one, through startPostgres/startPgBouncer): one throw-away CA per process, made on first use and kept
 * in memory only, and for each server a certificate for the loopback names written into its scratch directory. Every
 * server of one process shares the CA, so a PgBouncer verifies the PostgreSQL it pools (server_tls_sslmode =
 * verify-full) and a test trusts both with one file. The certificates come from local/tls.ts, as the cluster's do.
 */
import { serverNames, type TlsFiles } from "../../configs/tls";
import { createCertificateAuthority, issueServerCertificate, type CertificateAuthority } from "../tls";
import type { ScratchDir } from "./scratch";

/** Long enough for any test run; a CA that outlives the process is never seen again. */
const rigCaValidityMs = 7 * 86_400_000;
const rigCertificateValidityMs = 2 * 86_400_000;

let rigCa: Promise<CertificateAuthority> | undefined;

/** The process's rig CA (its key never leaves this process's memory). */
export function rigCertificateAuthority(): Promise<CertificateAuthority> {
  rigCa ??= createCertificateAuthority({ commonName: `pgvector-stack rig CA (pid ${process.pid})`, validMs: rigCaValidityMs });
  return rigCa;
}

/** A server's TLS files in its scratch directory: the paths it reads (runtime paths) and the CA's host path. */
export interface RigTls {
  /** As the server sees them: ssl_cert_file, ssl_key_file; client_tls_* and server_tls_ca_file. */
  readonly files: TlsFiles;
  /** Host path of the CA certificate, for clients on this host (sslrootcert). */
  readonly caHostPath: string;
}

/** Entries in a server's scratch directory. */
export const rigTlsEntries = { certificate: "tls/tls.crt", key: "tls/tls.key", ca: "tls/ca.crt" } as const;

/**
 * Writes a fresh server certificate from the rig CA (loopback names, as the stack's carries), its key (0600, the
 * postgres user's: PostgreSQL and PgBouncer both run as that user) and the CA certificate into `scratch`.
 */
export async function writeRigTls(scratch: ScratchDir): Promise<RigTls> {
  const ca = await rigCertificateAuthority();
  const server = await issueServerCertificate(ca, { names: serverNames(), validMs: rigCertificateValidityMs });
  const files: TlsFiles = {
    certificate: scratch.writeFile(rigTlsEntries.certificate, server.certificatePem, 0o644),
    key: scratch.writeFile(rigTlsEntries.key, server.keyPem, 0o600),
    ca: scratch.writeFile(rigTlsEntries.ca, ca.certificatePem, 0o644),
  };
  return { files, caHostPath: scratch.hostPathOf(rigTlsEntries.ca) };
}
