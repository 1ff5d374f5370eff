import { createHash, createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { isScramVerifier, saslPrep, scramIterations, scramVerifier } from "../../configs/scram";

const saltOf = (verifier: string) => Buffer.from(verifier.split("$")[1].split(":")[1], "base64");

describe("scramVerifier", () => {
  // Verifiers PostgreSQL 17.12 stored for `CREATE ROLE … PASSWORD '<password>'` (password_encryption scram-sha-256):
  // recomputed from the same salt, ours must be the same string.
  it.each([
    ["pencil", "SCRAM-SHA-256$4096:H+TYJUDPsmpeJdsx3D2qig==$Je3nAy/zQHi4Nvdmwb7K34oH8xGuipZHbmuXuM+8eAs=:DeG4xOO7628N2eJf6obriqdM0Rn0SXlKhmNKR5fkaQc="],
    ["pässwörd", "SCRAM-SHA-256$4096:XdATmvsOZ7FriS77f/XxbA==$Y8cXkIQ+KYHySYOwYdTuE/9uQr7frDfidq/55U2KbuI=:MNm/oJcSvDhjHW5AqbfQPCouPsMUYSd0b47ljVmTeUs="],
    // no-break space → space, soft hyphen → nothing, roman numeral nine → "IX" (SASLprep + NFKC)
    ["a\u00a0b\u00adc\u2168", "SCRAM-SHA-256$4096:KSAhdoMoeGgsvJFG9sMaIw==$XcdvenDJ37FtKVPO1oVBKg6r8wPdmXSqS6wRgiYbVcs=:e3ZxWRiTtQ3O+VlIVhfEEt3d9wdaMncBObyyQDlZAw0="],
  ])("matches PostgreSQL's own verifier for %j", (password, postgres) => {
    expect(scramVerifier(password, saltOf(postgres))).toBe(postgres);
  });

  it("proves the RFC 7677 exchange (user, pencil): server signature and client proof check out", () => {
    const salt = Buffer.from("W22ZaJ0SNY7soEsUEjb6gQ==", "base64");
    const [, , keys] = scramVerifier("pencil", salt).split("$");
    const [storedKey, serverKey] = keys.split(":").map((k) => Buffer.from(k, "base64"));
    const nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const authMessage = `n=user,r=rOprNGfwEbeRWgbNEkqO,r=${nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=${nonce}`;
    const serverSignature = createHmac("sha256", serverKey).update(authMessage).digest("base64");
    expect(serverSignature).toBe("6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    const clientProof = Buffer.from("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", "base64");
    const clientSignature = createHmac("sha256", storedKey).update(authMessage).digest();
    const clientKey = Buffer.from(clientProof.map((b, i) => b ^ clientSignature[i]));
    expect(createHash("sha256").update(clientKey).digest().equals(storedKey)).toBe(true);
  });

  it("is deterministic for a given salt, different for another", () => {
    const salt = Buffer.alloc(16, 7);
    expect(scramVerifier("secret", salt)).toBe(scramVerifier("secret", salt));
    expect(scramVerifier("secret", Buffer.alloc(16, 8))).not.toBe(scramVerifier("secret", salt));
    expect(scramVerifier("secret", salt)).toMatch(new RegExp(`^SCRAM-SHA-256\\$${scramIterations}:`));
    expect(scramVerifier("secret", salt)).not.toContain("secret");
  });

  it("refuses an empty salt and a bad iteration count", () => {
    expect(() => scramVerifier("x", Buffer.alloc(0))).toThrow(/salt is empty/);
    expect(() => scramVerifier("x", Buffer.alloc(16), 0)).toThrow(/iteration count/);
  });
});

describe("isScramVerifier", () => {
  it("accepts verifiers and refuses passwords and md5 hashes", () => {
    expect(isScramVerifier(scramVerifier("pw", Buffer.alloc(16, 1)))).toBe(true);
    expect(isScramVerifier("pw")).toBe(false);
    expect(isScramVerifier("md5" + "0".repeat(32))).toBe(false);
    expect(isScramVerifier("SCRAM-SHA-256$4096:c2FsdA==$YQ==:Yg==")).toBe(false); // keys are not 32 bytes
  });
});

describe("saslPrep", () => {
  it.each([
    ["plain ASCII passes unchanged", "Tr0ub4dor&3", "Tr0ub4dor&3"],
    ["ASCII control characters pass unchanged (PostgreSQL's ASCII fast path)", "a\tb", "a\tb"],
    ["non-ASCII spaces become spaces", "a\u2003b", "a b"],
    ["characters mapped to nothing are removed", "a\u200db\ufeffc", "abc"],
    ["NFKC normalizes", "\ufb01x", "fix"],
    ["a prohibited code point keeps the raw password", "p\ue000ss", "p\ue000ss"],
  ])("%s", (_name, input, expected) => {
    expect(saslPrep(input)).toBe(expected);
  });
});
