/**
 * The one masker (configs/secrets.ts), row by row: what every printed message in postdeploy/, drift/, canary/, the
 * local cluster and the CLI goes through. The rows include what each of the three maskers it replaced did right
 * and what one of them got wrong (a short secret inside a longer one, the empty string, a URL's own encoding).
 */
import { describe, expect, it } from "vitest";
import { maskedError, maskSecrets, maskUrl, urlPasswords } from "../../configs/secrets";

describe("maskSecrets", () => {
  it.each<[string, string, readonly (string | null | undefined)[], string]>([
    ["a raw secret, every occurrence", "hunter2 failed; hunter2 again", ["hunter2"], "*** failed; *** again"],
    ["its percent-encoded form (as inside a URL)", "failed with hunter2 and hunter%232", ["hunter2", "hunter#2"], "failed with *** and ***"],
    ["the encoded form of a password with @ / :", "failed: postgresql://app:p%40ss%2Fw%3Ard@127.0.0.1:5432/app and p@ss/w:rd", ["p@ss/w:rd"], "failed: postgresql://app:***@127.0.0.1:5432/app and ***"],
    ["the longest secret first, so no tail of it is left", "hunter22 and hunter2", ["hunter2", "hunter22"], "*** and ***"],
    ["the empty string never masks everything", "nothing to hide", ["", null, undefined], "nothing to hide"],
    ["no secrets: the text as it was", "plain text, postgresql://app@host/db", [], "plain text, postgresql://app@host/db"],
    ["a URL password nobody named", "dial postgresql://u:guessme@h:5432/db now", [], "dial postgresql://u:***@h:5432/db now"],
    ["a URL password with an unencoded @ (to the last @ of the word)", "a postgresql://u:p@ss@w0rd@h/db b", [], "a postgresql://u:***@h/db b"],
    ["the postgres:// spelling and an upper-case scheme", "postgres://u:x@h and POSTGRESQL://u:y@h", [], "postgres://u:***@h and POSTGRESQL://u:***@h"],
    ["a URL without a password keeps its user", "postgresql://app@host:5432/db", [], "postgresql://app@host:5432/db"],
    ["a URL with a port but no credentials is untouched", "postgresql://host:5432/db", [], "postgresql://host:5432/db"],
    ["JSON-quoted URLs keep their quotes", '"postgresql://app:pw@h/db"', [], '"postgresql://app:***@h/db"'],
    ["a secret with regex characters is taken literally", "p.a*s+s? and pXaas", ["p.a*s+s?"], "*** and pXaas"],
    ["an unpaired surrogate (no percent-encoding exists) still masks raw", "x\ud800y", ["\ud800"], "x***y"],
  ])("%s", (_, text, secrets, masked) => {
    expect(maskSecrets(text, secrets)).toBe(masked);
  });
});

describe("urlPasswords", () => {
  it.each<[string, string, string[]]>([
    ["as written and decoded", "postgres://app:s3cr%40t@127.0.0.1:6432/db", ["s3cr%40t", "s3cr@t"]],
    ["a plain password once", "postgresql://app:plain@h/db", ["plain"]],
    ["no password, nothing", "postgresql://app@h/db", []],
    ["a URL the parser rejects (bad port) still gives its password", "postgresql://app:pw@h:port/db", ["pw"]],
    ["an unencoded @ in the password: up to the last @", "postgresql://app:p@ss@h/db", ["p%40ss", "p@ss"]],
    ["invalid percent-encoding is taken as written", "postgresql://app:100%zz@h/db", ["100%zz"]],
    ["not a URL at all, nothing", "just text", []],
  ])("%s", (_, url, passwords) => {
    expect(urlPasswords([url])).toEqual(passwords);
  });

  it("skips missing URLs and collects the passwords of several", () => {
    expect(urlPasswords([undefined, "postgresql://a:one@h/db", null, "", "postgresql://b:two@h/db"])).toEqual(["one", "two"]);
  });

  it("masks every form it finds", () => {
    const url = "postgres://app:s3cr%40t@127.0.0.1:6432/db";
    expect(maskSecrets('password "s3cr@t" and s3cr%40t rejected', urlPasswords([url]))).toBe('password "***" and *** rejected');
  });
});

describe("maskUrl", () => {
  it.each([
    ["postgres://app:s3cr%40t@127.0.0.1:6432/db", "postgres://app:***@127.0.0.1:6432/db"],
    ["postgresql://app@127.0.0.1:6432/db?sslmode=require", "postgresql://app@127.0.0.1:6432/db?sslmode=require"],
    ["postgresql://app:pw@h:port/db", "postgresql://app:***@h:port/db"],
    ["mysql://app:pw@h/db", "mysql://app:***@h/db"],
  ])("%s → %s", (url, masked) => {
    expect(maskUrl(url)).toBe(masked);
  });
});

describe("maskedError", () => {
  it("masks the message, adds the context and keeps the driver's code, not the original error", () => {
    const original = Object.assign(new Error('password authentication failed: "hunter2"'), { code: "28P01" });
    const masked = maskedError(original, ["hunter2"], "cannot connect to postgresql://app:***@h/db");
    expect(masked.message).toBe('cannot connect to postgresql://app:***@h/db: password authentication failed: "***"');
    expect((masked as Error & { code?: string }).code).toBe("28P01");
    expect(masked.cause).toBeUndefined();
    expect(masked.stack).not.toContain("hunter2");
  });

  it("takes anything thrown, not only Errors", () => {
    expect(maskedError("boom hunter2", ["hunter2"]).message).toBe("boom ***");
  });
});
