/**
 * @pulumi/tls resources made for real (terraform-provider-tls 4.x semantics): keys from node:crypto, certificates and
 * requests from @peculiar/x509 on WebCrypto. PostgreSQL and PgBouncer serve what these make and clients verify it, so
 * nothing here is a stand-in: subject, SANs, CA flag, key usages, subject/authority key ids, validity and the
 * signature are what the provider's Go code (crypto/x509.CreateCertificate) would put there.
 *
 * Keys: ECDSA P256/P384/P521 and RSA. Refused: ECDSA P224 (the provider's default curve; WebCrypto cannot sign with
 * it) and ED25519 (not needed here). Outputs not made: privateKeyOpenssh (OpenSSH's private key format).
 */
import "reflect-metadata";
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, webcrypto, type KeyObject } from "node:crypto";
import { isIP } from "node:net";
import * as x509 from "@peculiar/x509";
import { nested, type ResourceInputs, secretWrapper } from "./resource-inputs";

// Node's WebCrypto; @peculiar/x509 types it with the DOM's names, which this project's lib setting does not load.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
type KeyPair = Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0]["keys"];
type CryptoKey = KeyPair["privateKey"];

export const tlsTypes = {
  privateKey: "tls:index/privateKey:PrivateKey",
  selfSignedCert: "tls:index/selfSignedCert:SelfSignedCert",
  certRequest: "tls:index/certRequest:CertRequest",
  locallySignedCert: "tls:index/locallySignedCert:LocallySignedCert",
} as const;

export interface MockResult {
  readonly id: string;
  readonly state: Record<string, unknown>;
}

const curves: Readonly<Record<string, { node: string; web: string; ssh: string; hash: string }>> = {
  P256: { node: "prime256v1", web: "P-256", ssh: "nistp256", hash: "SHA-256" },
  P384: { node: "secp384r1", web: "P-384", ssh: "nistp384", hash: "SHA-384" },
  P521: { node: "secp521r1", web: "P-521", ssh: "nistp521", hash: "SHA-512" },
};

/** terraform-provider-tls allowed_uses: key usage bits, and extended key usage OIDs (Go's x509.ExtKeyUsage). */
const keyUsageBits: Readonly<Record<string, x509.KeyUsageFlags>> = {
  digital_signature: x509.KeyUsageFlags.digitalSignature,
  content_commitment: x509.KeyUsageFlags.nonRepudiation,
  key_encipherment: x509.KeyUsageFlags.keyEncipherment,
  data_encipherment: x509.KeyUsageFlags.dataEncipherment,
  key_agreement: x509.KeyUsageFlags.keyAgreement,
  cert_signing: x509.KeyUsageFlags.keyCertSign,
  crl_signing: x509.KeyUsageFlags.cRLSign,
  encipher_only: x509.KeyUsageFlags.encipherOnly,
  decipher_only: x509.KeyUsageFlags.decipherOnly,
};
const extendedKeyUsages: Readonly<Record<string, string>> = {
  any_extended: "2.5.29.37.0",
  server_auth: "1.3.6.1.5.5.7.3.1",
  client_auth: "1.3.6.1.5.5.7.3.2",
  code_signing: "1.3.6.1.5.5.7.3.3",
  email_protection: "1.3.6.1.5.5.7.3.4",
  ipsec_end_system: "1.3.6.1.5.5.7.3.5",
  ipsec_tunnel: "1.3.6.1.5.5.7.3.6",
  ipsec_user: "1.3.6.1.5.5.7.3.7",
  timestamping: "1.3.6.1.5.5.7.3.8",
  ocsp_signing: "1.3.6.1.5.5.7.3.9",
  microsoft_server_gated_crypto: "1.3.6.1.4.1.311.10.3.3",
  netscape_server_gated_crypto: "2.16.840.1.113730.4.1",
  microsoft_commercial_code_signing: "1.3.6.1.4.1.311.2.1.22",
  microsoft_kernel_code_signing: "1.3.6.1.4.1.311.61.1.1",
};

/** What a PEM private key is, as WebCrypto and the provider's `key_algorithm` name it. */
interface KeyKind {
  readonly algorithm: "ECDSA" | "RSA";
  readonly importParams: { name: string; namedCurve?: string; hash?: string };
  readonly signingAlgorithm: { name: string; hash?: string };
}

function keyKind(key: KeyObject, what: string): KeyKind {
  if (key.asymmetricKeyType === "rsa") {
    return { algorithm: "RSA", importParams: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, signingAlgorithm: { name: "RSASSA-PKCS1-v1_5" } };
  }
  if (key.asymmetricKeyType === "ec") {
    const curve = Object.values(curves).find((c) => c.node === key.asymmetricKeyDetails?.namedCurve);
    if (curve === undefined) throw new Error(`${what}: an EC key on ${key.asymmetricKeyDetails?.namedCurve} cannot sign here (P256, P384, P521 can)`);
    return { algorithm: "ECDSA", importParams: { name: "ECDSA", namedCurve: curve.web }, signingAlgorithm: { name: "ECDSA", hash: curve.hash } };
  }
  throw new Error(`${what}: a ${key.asymmetricKeyType} key is not implemented by the engine mocks (ECDSA and RSA are)`);
}

async function signingKeys(pem: string, what: string): Promise<{ kind: KeyKind; privateKey: CryptoKey; publicKey: CryptoKey }> {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (error) {
    throw new Error(`${what}: the private key is not a PEM private key (${(error as Error).message})`);
  }
  const kind = keyKind(key, what);
  const pkcs8 = key.export({ type: "pkcs8", format: "der" });
  const spki = createPublicKey(key).export({ type: "spki", format: "der" });
  const privateKey = (await webcrypto.subtle.importKey("pkcs8", pkcs8, kind.importParams, false, ["sign"])) as unknown as CryptoKey;
  const publicKey = (await webcrypto.subtle.importKey("spki", spki, kind.importParams, true, ["verify"])) as unknown as CryptoKey;
  return { kind, privateKey, publicKey };
}

/** SSH wire encoding: a length-prefixed string, and an mpint (big-endian, a leading zero when the high bit is set). */
function sshString(bytes: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}
function sshMpint(bytes: Buffer): Buffer {
  let b = bytes;
  while (b.length > 1 && b[0] === 0 && (b[1] & 0x80) === 0) b = b.subarray(1);
  return sshString(b[0] & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b);
}

/** The public key in OpenSSH's one-line format and its fingerprints, as the provider outputs them. */
function opensshPublicKey(key: KeyObject, curve?: { ssh: string }): { line: string; md5: string; sha256: string } {
  const jwk = key.export({ format: "jwk" });
  const b64u = (v: string | undefined) => Buffer.from(v ?? "", "base64url");
  let type: string;
  let blob: Buffer;
  if (key.asymmetricKeyType === "rsa") {
    type = "ssh-rsa";
    blob = Buffer.concat([sshString(Buffer.from(type)), sshMpint(b64u(jwk.e)), sshMpint(b64u(jwk.n))]);
  } else {
    type = `ecdsa-sha2-${curve?.ssh}`;
    const point = Buffer.concat([Buffer.from([4]), b64u(jwk.x), b64u(jwk.y)]);
    blob = Buffer.concat([sshString(Buffer.from(type)), sshString(Buffer.from(curve?.ssh ?? "")), sshString(point)]);
  }
  const md5 = createHash("md5").update(blob).digest("hex").replace(/(..)(?!$)/g, "$1:");
  const sha256 = `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
  return { line: `${type} ${blob.toString("base64")}\n`, md5, sha256 };
}

/** tls.PrivateKey: a fresh key; privateKeyPem is SEC 1 ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY") as Go marshals it. */
export function privateKey(inputs: ResourceInputs): MockResult {
  const algorithm = inputs.requiredString("algorithm");
  const ecdsaCurve = inputs.string("ecdsaCurve") ?? "P224";
  const rsaBits = inputs.integer("rsaBits") ?? 2048;
  inputs.refuseUnread();
  let key: KeyObject;
  let pem: string;
  let curve: (typeof curves)[string] | undefined;
  if (algorithm === "ECDSA") {
    curve = curves[ecdsaCurve];
    if (curve === undefined) {
      throw inputs.error(`ecdsaCurve ${ecdsaCurve}${inputs.has("ecdsaCurve") ? "" : " (the provider's default)"} is not implemented by the engine mocks: WebCrypto signs with P256, P384 or P521 only`);
    }
    ({ privateKey: key } = generateKeyPairSync("ec", { namedCurve: curve.node }));
    pem = key.export({ type: "sec1", format: "pem" }) as string;
  } else if (algorithm === "RSA") {
    ({ privateKey: key } = generateKeyPairSync("rsa", { modulusLength: rsaBits }));
    pem = key.export({ type: "pkcs1", format: "pem" }) as string;
  } else {
    throw inputs.error(`algorithm ${algorithm} is not implemented by the engine mocks (ECDSA and RSA are)`);
  }
  const publicKey = createPublicKey(key);
  const ssh = opensshPublicKey(publicKey, curve);
  const spki = publicKey.export({ type: "spki", format: "der" });
  return {
    id: createHash("sha1").update(spki).digest("hex"),
    state: {
      ...inputs.echo(),
      algorithm,
      ecdsaCurve,
      rsaBits,
      privateKeyPem: secretWrapper(pem),
      privateKeyPemPkcs8: secretWrapper(key.export({ type: "pkcs8", format: "pem" }) as string),
      publicKeyPem: publicKey.export({ type: "spki", format: "pem" }) as string,
      publicKeyOpenssh: ssh.line,
      publicKeyFingerprintMd5: ssh.md5,
      publicKeyFingerprintSha256: ssh.sha256,
    },
  };
}

/** The provider's subject block as an X.500 name, in the order Go's pkix.Name.ToRDNSequence writes it. */
function subjectName(inputs: ResourceInputs): x509.JsonName {
  const raw = inputs.object("subject");
  if (raw === undefined) return [];
  const s = nested(inputs, "subject", raw);
  const one = (key: string) => s.string(key);
  const rdns: [string, string[] | undefined][] = [
    ["C", one("country") === undefined ? undefined : [one("country") as string]],
    ["ST", one("province") === undefined ? undefined : [one("province") as string]],
    ["L", one("locality") === undefined ? undefined : [one("locality") as string]],
    ["2.5.4.9", s.strings("streetAddresses")], // street
    ["2.5.4.17", one("postalCode") === undefined ? undefined : [one("postalCode") as string]],
    ["O", one("organization") === undefined ? undefined : [one("organization") as string]],
    ["OU", one("organizationalUnit") === undefined ? undefined : [one("organizationalUnit") as string]],
    ["CN", one("commonName") === undefined ? undefined : [one("commonName") as string]],
    ["2.5.4.5", one("serialNumber") === undefined ? undefined : [one("serialNumber") as string]],
  ];
  s.refuseUnread();
  return rdns.filter(([, v]) => v !== undefined && v.length > 0 && v.some((x) => x !== "")).map(([k, v]) => ({ [k]: v as string[] }));
}

function alternativeNames(inputs: ResourceInputs): x509.SubjectAlternativeNameExtension | undefined {
  const dns = inputs.strings("dnsNames") ?? [];
  const ips = inputs.strings("ipAddresses") ?? [];
  const uris = inputs.strings("uris") ?? [];
  for (const ip of ips) if (isIP(ip) === 0) throw inputs.error(`ipAddresses: "${ip}" is not an IP address`);
  const names: x509.JsonGeneralName[] = [
    ...dns.map((value) => ({ type: "dns" as const, value })),
    ...ips.map((value) => ({ type: "ip" as const, value })),
    ...uris.map((value) => ({ type: "url" as const, value })),
  ];
  return names.length === 0 ? undefined : new x509.SubjectAlternativeNameExtension(names);
}

function usageExtensions(inputs: ResourceInputs): x509.Extension[] {
  const uses = inputs.strings("allowedUses");
  if (uses === undefined) throw inputs.error(`input "allowedUses" is required`);
  let bits = 0;
  const extended: string[] = [];
  for (const use of uses) {
    if (keyUsageBits[use] !== undefined) bits |= keyUsageBits[use];
    else if (extendedKeyUsages[use] !== undefined) extended.push(extendedKeyUsages[use]);
    else throw inputs.error(`allowedUses: "${use}" is not one the provider knows (${[...Object.keys(keyUsageBits), ...Object.keys(extendedKeyUsages)].join(", ")})`);
  }
  // Go writes key usage as critical, extended key usage as not; each only when there is one.
  return [...(bits !== 0 ? [new x509.KeyUsagesExtension(bits, true)] : []), ...(extended.length > 0 ? [new x509.ExtendedKeyUsageExtension(extended, false)] : [])];
}

/** 128 random bits, as the provider draws serials (big.Int below 2^128), kept positive for DER. */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] &= 0x7f;
  return bytes.toString("hex");
}

/** Validity from now (whole seconds, as the certificate holds it) and the provider's ready_for_renewal at create. */
function validity(inputs: ResourceInputs, now: Date): { notBefore: Date; notAfter: Date; earlyRenewalHours: number } {
  const hours = inputs.integer("validityPeriodHours");
  if (hours === undefined || hours <= 0) throw inputs.error(`input "validityPeriodHours" is required and must be positive`);
  const earlyRenewalHours = inputs.integer("earlyRenewalHours") ?? 0;
  const notBefore = new Date(Math.floor(now.getTime() / 1000) * 1000);
  return { notBefore, notAfter: new Date(notBefore.getTime() + hours * 3_600_000), earlyRenewalHours };
}

function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function certificateState(certificate: x509.X509Certificate, notBefore: Date, notAfter: Date, earlyRenewalHours: number, now: Date): Record<string, unknown> {
  return {
    certPem: certificate.toString("pem") + "\n",
    validityStartTime: rfc3339(notBefore),
    validityEndTime: rfc3339(notAfter),
    readyForRenewal: now.getTime() >= notAfter.getTime() - earlyRenewalHours * 3_600_000,
  };
}

/** tls.SelfSignedCert: subject, SANs, CA flag, usages; a CA always gets a subject key id (Go adds one to CA certificates). */
export async function selfSignedCert(inputs: ResourceInputs, now: Date): Promise<MockResult> {
  const keyPem = inputs.requiredString("privateKeyPem");
  const name = subjectName(inputs);
  const sans = alternativeNames(inputs);
  const usages = usageExtensions(inputs);
  const isCa = inputs.boolean("isCaCertificate") ?? false;
  const setSubjectKeyId = inputs.boolean("setSubjectKeyId") ?? false;
  const setAuthorityKeyId = inputs.boolean("setAuthorityKeyId") ?? false;
  const { notBefore, notAfter, earlyRenewalHours } = validity(inputs, now);
  inputs.refuseUnread();
  const keys = await signingKeys(keyPem, inputs.what);
  const ski = isCa || setSubjectKeyId || setAuthorityKeyId ? await x509.SubjectKeyIdentifierExtension.create(keys.publicKey) : undefined;
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: name,
    issuer: name,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: keys.privateKey,
    signingAlgorithm: keys.kind.signingAlgorithm,
    extensions: [
      ...usages,
      new x509.BasicConstraintsExtension(isCa, undefined, true),
      ...(isCa || setSubjectKeyId ? [ski as x509.SubjectKeyIdentifierExtension] : []),
      ...(setAuthorityKeyId ? [new x509.AuthorityKeyIdentifierExtension((ski as x509.SubjectKeyIdentifierExtension).keyId)] : []),
      ...(sans ? [sans] : []),
    ],
  });
  return {
    id: BigInt(`0x${certificate.serialNumber}`).toString(10),
    state: { ...inputs.echo(), privateKeyPem: secretWrapper(keyPem), keyAlgorithm: keys.kind.algorithm, ...certificateState(certificate, notBefore, notAfter, earlyRenewalHours, now) },
  };
}

/** tls.CertRequest: a PKCS#10 request signed by the key, the SANs in its extension request (as Go writes them). */
export async function certRequest(inputs: ResourceInputs): Promise<MockResult> {
  const keyPem = inputs.requiredString("privateKeyPem");
  const name = subjectName(inputs);
  const sans = alternativeNames(inputs);
  inputs.refuseUnread();
  const keys = await signingKeys(keyPem, inputs.what);
  const request = await x509.Pkcs10CertificateRequestGenerator.create({
    name,
    keys: { privateKey: keys.privateKey, publicKey: keys.publicKey } as KeyPair,
    signingAlgorithm: keys.kind.signingAlgorithm,
    extensions: sans ? [sans] : [],
  });
  const pem = request.toString("pem") + "\n";
  return {
    id: createHash("sha1").update(pem).digest("hex"),
    state: { ...inputs.echo(), privateKeyPem: secretWrapper(keyPem), keyAlgorithm: keys.kind.algorithm, certRequestPem: pem },
  };
}

/**
 * tls.LocallySignedCert: the request's subject and SANs (nothing else of it, as the provider copies only those),
 * issued by the CA, with the CA's subject key id as authority key id. The request's signature and the CA key's match
 * with the CA certificate are checked first: a certificate no client could verify is refused here, not served.
 */
export async function locallySignedCert(inputs: ResourceInputs, now: Date): Promise<MockResult> {
  const requestPem = inputs.requiredString("certRequestPem");
  const caCertPem = inputs.requiredString("caCertPem");
  const caKeyPem = inputs.requiredString("caPrivateKeyPem");
  const usages = usageExtensions(inputs);
  const isCa = inputs.boolean("isCaCertificate") ?? false;
  const setSubjectKeyId = inputs.boolean("setSubjectKeyId") ?? false;
  const { notBefore, notAfter, earlyRenewalHours } = validity(inputs, now);
  inputs.refuseUnread();
  const request = new x509.Pkcs10CertificateRequest(requestPem);
  if (!(await request.verify())) throw inputs.error(`certRequestPem: the request's signature does not verify with its own public key`);
  const ca = new x509.X509Certificate(caCertPem);
  const caKeys = await signingKeys(caKeyPem, inputs.what);
  const caSpki = Buffer.from(await webcrypto.subtle.exportKey("spki", caKeys.publicKey as unknown as webcrypto.CryptoKey));
  if (!caSpki.equals(Buffer.from(ca.publicKey.rawData))) throw inputs.error(`caPrivateKeyPem is not the private key of caCertPem (${ca.subject})`);
  const sanExtension = request.getExtension("2.5.29.17");
  const caSki = ca.getExtension(x509.SubjectKeyIdentifierExtension);
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: request.subjectName,
    issuer: ca.subjectName,
    notBefore,
    notAfter,
    publicKey: request.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: caKeys.kind.signingAlgorithm,
    extensions: [
      ...usages,
      new x509.BasicConstraintsExtension(isCa, undefined, true),
      ...(isCa || setSubjectKeyId ? [await x509.SubjectKeyIdentifierExtension.create(request.publicKey)] : []),
      ...(caSki ? [new x509.AuthorityKeyIdentifierExtension(caSki.keyId)] : []),
      ...(sanExtension ? [new x509.SubjectAlternativeNameExtension(sanExtension.rawData)] : []),
    ],
  });
  return {
    id: BigInt(`0x${certificate.serialNumber}`).toString(10),
    state: {
      ...inputs.echo(),
      caPrivateKeyPem: secretWrapper(caKeyPem),
      caKeyAlgorithm: caKeys.kind.algorithm,
      ...certificateState(certificate, notBefore, notAfter, earlyRenewalHours, now),
    },
  };
}
