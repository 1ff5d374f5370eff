/**
 * SCRAM-SHA-256 verifiers as PostgreSQL stores them in pg_authid.rolpassword (RFC 5802 / RFC 7677):
 *
 *   SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>     (base64 each)
 *   SaltedPassword = PBKDF2-HMAC-SHA-256(SASLprep(password), salt, iterations)
 *   StoredKey = SHA-256(HMAC(SaltedPassword, "Client Key")),  ServerKey = HMAC(SaltedPassword, "Server Key")
 *
 * A verifier lets a server check a password without holding it. PostgreSQL stores a verifier given to
 * `CREATE/ALTER ROLE … PASSWORD '<verifier>'` as it is, and PgBouncer accepts the same string in its auth_file.
 * Both sides must hold the very same verifier (same salt) for PgBouncer's SCRAM pass-through, which is why the salt
 * is an input here rather than random.
 */
import { createHash, createHmac, pbkdf2Sync } from "node:crypto";

/** PostgreSQL's default `scram_iterations`. */
export const scramIterations = 4096;

/** PostgreSQL's salt length (SCRAM_DEFAULT_SALT_LEN). */
export const scramSaltBytes = 16;

const verifierPattern = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2}):([A-Za-z0-9+/]+={0,2})$/;

/** Whether `text` is a SCRAM-SHA-256 verifier (and so not a password). */
export function isScramVerifier(text: string): boolean {
  const match = verifierPattern.exec(text);
  return (
    match !== null &&
    Number(match[1]) > 0 &&
    Buffer.from(match[3], "base64").length === 32 &&
    Buffer.from(match[4], "base64").length === 32
  );
}

/** The verifier PostgreSQL would store for `password` with this salt and iteration count. */
export function scramVerifier(password: string, salt: Buffer, iterations = scramIterations): string {
  if (salt.length === 0) throw new Error("SCRAM salt is empty; pass 16 bytes (scramSaltBytes)");
  if (!Number.isInteger(iterations) || iterations < 1) throw new Error(`SCRAM iteration count ${iterations} must be a positive integer`);
  const salted = pbkdf2Sync(saslPrep(password), salt, iterations, 32, "sha256");
  const clientKey = createHmac("sha256", salted).update("Client Key").digest();
  const storedKey = createHash("sha256").update(clientKey).digest();
  const serverKey = createHmac("sha256", salted).update("Server Key").digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString("base64")}$${storedKey.toString("base64")}:${serverKey.toString("base64")}`;
}

// ---- SASLprep (RFC 4013), as PostgreSQL's pg_saslprep() applies it ------------------------------------------------

type Range = readonly [number, number];

/** RFC 3454 C.1.2: non-ASCII spaces, mapped to U+0020. */
const nonAsciiSpaces: readonly Range[] = [
  [0x00a0, 0x00a0], [0x1680, 0x1680], [0x2000, 0x200b], [0x202f, 0x202f], [0x205f, 0x205f], [0x3000, 0x3000],
];

/** RFC 3454 B.1: commonly mapped to nothing. */
const mappedToNothing: readonly Range[] = [
  [0x00ad, 0x00ad], [0x034f, 0x034f], [0x1806, 0x1806], [0x180b, 0x180d], [0x200b, 0x200d], [0x2060, 0x2060],
  [0xfe00, 0xfe0f], [0xfeff, 0xfeff],
];

/** RFC 3454 C.2–C.9: control, private use, non-characters, surrogates, and other prohibited code points. */
const prohibited: readonly Range[] = [
  [0x0000, 0x001f], [0x007f, 0x009f], [0x0340, 0x0341], [0x06dd, 0x06dd], [0x070f, 0x070f], [0x180e, 0x180e],
  [0x200c, 0x200f], [0x2028, 0x202e], [0x2060, 0x2063], [0x206a, 0x206f], [0x2ff0, 0x2ffb], [0xd800, 0xdfff],
  [0xe000, 0xf8ff], [0xfdd0, 0xfdef], [0xfeff, 0xfeff], [0xfff9, 0xffff], [0x1d173, 0x1d17a], [0xe0001, 0xe0001],
  [0xe0020, 0xe007f], [0xf0000, 0xffffd], [0x100000, 0x10fffd],
];

const inRanges = (code: number, ranges: readonly Range[]): boolean => ranges.some(([lo, hi]) => code >= lo && code <= hi);

/**
 * PostgreSQL prepares the password with SASLprep and, when the result is prohibited, uses the raw bytes instead
 * (so any password still works). ASCII passwords pass unchanged. Covered here: the space and nothing mappings,
 * NFKC, and the prohibited tables; the bidirectional-text rule and Unicode 3.2's unassigned code points are not,
 * so a password mixing right-to-left scripts with others may hash differently from PostgreSQL. Use printable ASCII
 * (as generated passwords are) to stay clear of that.
 */
export function saslPrep(password: string): string {
  if (/^[\x00-\x7f]*$/.test(password)) return password;
  let mapped = "";
  for (const ch of password) {
    const code = ch.codePointAt(0) ?? 0;
    if (inRanges(code, nonAsciiSpaces)) mapped += " ";
    else if (!inRanges(code, mappedToNothing)) mapped += ch;
  }
  const normalized = mapped.normalize("NFKC");
  for (const ch of normalized) {
    const code = ch.codePointAt(0) ?? 0;
    if (inRanges(code, prohibited) || (code & 0xfffe) === 0xfffe) return password;
  }
  return normalized;
}

/**
 * A deterministic SCRAM salt for a stack's role. A random salt would give a new verifier on every `pulumi preview`,
 * and with it new Secrets/uploads and a replaced database on every run; this one is derived from the stack, the role
 * and the password, so the same password keeps its verifier and a new password gets a new salt.
 *
 * PBKDF2 with the verifier's own iteration count, not one plain HMAC: the salt sits in the clear inside the verifier,
 * and a salt that is a cheap function of the password would let whoever reads the verifier test guesses 4096 times
 * faster than SCRAM allows. Per stack and role, so one password used for two roles still gets two salts.
 */
export function roleSalt(stack: string, role: string, password: string): Buffer {
  if (password === "") throw new Error(`SCRAM salt for role "${role}" of stack "${stack}": the password is empty`);
  return pbkdf2Sync(password, `pgvector-stack/scram-salt/${stack}/${role}`, scramIterations, scramSaltBytes, "sha256");
}

/** The verifier every target stores for a role: same stack, role and password → same bytes. */
export function roleVerifier(stack: string, role: string, password: string): string {
  return scramVerifier(password, roleSalt(stack, role, password));
}
