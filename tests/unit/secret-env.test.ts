/**
 * `<NAME>_FILE` for the connection URLs of `pgstack canary` and `pgstack postdeploy`: how the Docker target hands them
 * over (components/docker/layout.ts secretsDirectory), so that `docker inspect` never shows them.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { secretFromEnv } from "../../cli/secret-env";

const dir = mkdtempSync(path.join(tmpdir(), "pgstack-secret-env-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, content: string): string {
  const at = path.join(dir, name);
  writeFileSync(at, content, { mode: 0o600 });
  return at;
}

describe("secretFromEnv", () => {
  const url = "postgresql://app:p%40ss@127.0.0.1:6432/app?sslmode=verify-full";

  it.each([
    ["the variable", { PGSTACK_POOLED_URL: url }, url],
    ["the file <NAME>_FILE names", { PGSTACK_POOLED_URL_FILE: file("plain", url) }, url],
    ["the file, its one trailing newline dropped", { PGSTACK_POOLED_URL_FILE: file("newline", `${url}\n`) }, url],
    ["the file when the variable is empty", { PGSTACK_POOLED_URL: "", PGSTACK_POOLED_URL_FILE: file("empty-var", url) }, url],
    ["nothing when neither is set", {}, undefined],
  ])("reads %s", (_, env, want) => {
    expect(secretFromEnv("PGSTACK_POOLED_URL", env)).toBe(want);
  });

  it("refuses both at once, and a file it cannot read, naming the variables and never the value", () => {
    expect(() => secretFromEnv("PGSTACK_DIRECT_URL", { PGSTACK_DIRECT_URL: url, PGSTACK_DIRECT_URL_FILE: file("both", url) })).toThrow(
      "both PGSTACK_DIRECT_URL and PGSTACK_DIRECT_URL_FILE are set; set one of them",
    );
    const missing = path.join(dir, "missing");
    expect(() => secretFromEnv("PGSTACK_DIRECT_URL", { PGSTACK_DIRECT_URL_FILE: missing })).toThrow(`PGSTACK_DIRECT_URL_FILE names ${missing}, which cannot be read: ENOENT`);
  });
});
