/**
 * `drift --live --url`: what a person types is either a usable target or one clean error, and a password in it never
 * reaches the message, whatever the shape of the mistake.
 */
import { describe, expect, it } from "vitest";
import { ConnectionError, parseConnectionUrl } from "../../drift/connection";

function failure(text: string): ConnectionError {
  try {
    parseConnectionUrl(text, undefined);
  } catch (e) {
    expect(e).toBeInstanceOf(ConnectionError);
    return e as ConnectionError;
  }
  throw new Error(`${text} was accepted`);
}

describe("parseConnectionUrl refuses bad input without showing a password", () => {
  it.each([
    ["a libpq keyword string", "host=db.example password=hunter2-kv user=app", "is not a URL"],
    ["a malformed %-escape in the password", "postgresql://app:hun%ZZter2-esc@db.example:5432/app", "the password has a malformed %-escape"],
    ["a malformed %-escape in the user", "postgresql://a%ZZp:hunter2-user@db.example/app", "the user name has a malformed %-escape"],
    ["another scheme", "mysql://app:hunter2-scheme@db.example/app", "is not a postgresql:// URL"],
  ])("%s", (_, text, expected) => {
    const error = failure(text);
    expect(error.message).toContain(expected);
    expect(error.message).not.toMatch(/hunter2|hun%ZZter2/);
  });

  it("still reads a good URL, its password kept out of the display", () => {
    const target = parseConnectionUrl("postgresql://app:s%40cret@db.example:6543/vectors?sslmode=verify-full", undefined);
    expect([target.host, target.port, target.user, target.database, target.password]).toEqual(["db.example", 6543, "app", "vectors", "s@cret"]);
    expect(target.display).toBe("postgresql://app@db.example:6543/vectors");
    expect(JSON.stringify(target)).not.toContain("cret");
  });
});
