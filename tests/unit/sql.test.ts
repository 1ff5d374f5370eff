/** Quoting for the SQL we assemble (configs/sql.ts), used by configs/, postdeploy/, canary/ and local/ alike. */
import { describe, expect, it } from "vitest";
import { quoteIdent, quoteLiteral } from "../../configs/sql";

describe("quoteIdent", () => {
  it.each([
    ["memories", '"memories"'],
    ["Memories", '"Memories"'],
    ["select", '"select"'],
    ['a"b', '"a""b"'],
    ['""', '""""""'],
    ["tier; DROP TABLE x", '"tier; DROP TABLE x"'],
  ])("%s → %s", (name, quoted) => {
    expect(quoteIdent(name)).toBe(quoted);
  });
});

describe("quoteLiteral", () => {
  it.each([
    ["2GB", "'2GB'"],
    ["a'b", "'a''b'"],
    ["", "''"],
    // With a backslash, the E'' form (as PostgreSQL's quote_literal): right whatever standard_conforming_strings says.
    ["a\\b", "E'a\\\\b'"],
    ["it's a\\'", "E'it''s a\\\\'''"],
  ])("%s → %s", (value, quoted) => {
    expect(quoteLiteral(value)).toBe(quoted);
  });
});
