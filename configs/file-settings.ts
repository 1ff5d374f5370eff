/**
 * Readers of the rendered files' own syntax, for components that must agree with what a file says (the port in
 * postgresql.conf, the auth_file in pgbouncer.ini) instead of re-deciding it.
 */

/** `key = value` of one INI section, as PgBouncer reads it (`;` and `#` start comment lines). */
export function iniSetting(ini: string, section: string, key: string): string | undefined {
  let current = "";
  let found: string | undefined;
  for (const raw of ini.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith(";") || line.startsWith("#")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = header[1].trim();
      continue;
    }
    const eq = line.indexOf("=");
    if (current === section && eq > 0 && line.slice(0, eq).trim() === key) found = line.slice(eq + 1).trim();
  }
  return found;
}

/** A postgresql.conf setting's value without quotes, or undefined. The last assignment wins, as in PostgreSQL. */
export function confSetting(conf: string, name: string): string | undefined {
  let found: string | undefined;
  for (const raw of conf.split(/\r?\n/)) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=?\s*('(?:[^']|'')*'|[^\s#]+)/.exec(raw);
    if (m && m[1] === name) found = m[2].startsWith("'") ? m[2].slice(1, -1).replace(/''/g, "'") : m[2];
  }
  return found;
}
