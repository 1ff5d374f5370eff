/**
 * Quoting for the SQL text we assemble ourselves (DDL, SET, role bootstrap), where a bind parameter cannot go:
 * identifiers and the values of SET / ALTER ROLE … PASSWORD are not parameters in PostgreSQL's protocol.
 */

/** `memories` → `"memories"`, `a"b` → `"a""b"`: always quoted, so case and reserved words survive as written. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * `2GB` → `'2GB'`, `a'b` → `'a''b'`; a value with a backslash becomes `E'a\\b'`, as PostgreSQL's own quote_literal
 * does: correct whether standard_conforming_strings is on or off (a stack's postgres.settings may turn it off).
 */
export function quoteLiteral(value: string): string {
  const quoted = value.replace(/'/g, "''");
  return value.includes("\\") ? `E'${quoted.replace(/\\/g, "\\\\")}'` : `'${quoted}'`;
}
