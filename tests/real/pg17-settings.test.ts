/**
 * configs/pg17-settings.ts against the real server: the same names as `SELECT name FROM pg_settings` on
 * PostgreSQL 17 with pg_stat_statements preloaded and pgvector loaded, no more and no fewer.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pg17SettingNames } from "../../configs/pg17-settings";
import { renderPgHba } from "../../configs/pg-hba";
import { getRuntime, startPostgres, stopAll, type PostgresServer } from "../../local/runtime";

let pg: PostgresServer;
let serverNames: string[];

beforeAll(async () => {
  const runtime = await getRuntime();
  pg = await startPostgres({
    runtime,
    postgresqlConf: "shared_preload_libraries = 'pg_stat_statements'\nshared_buffers = 128MB\n",
    pgHbaConf: renderPgHba(),
  });
  serverNames = (await pg.psql("LOAD 'vector';\nSELECT name FROM pg_settings ORDER BY name;")).split("\n");
});

afterAll(stopAll);

describe("pg17SettingNames", () => {
  it("is what PostgreSQL 17 + pgvector + pg_stat_statements call their settings", () => {
    const listed = [...pg17SettingNames];
    expect({ missing: serverNames.filter((n) => !pg17SettingNames.has(n)), unknown: listed.filter((n) => !serverNames.includes(n)) }).toEqual({
      missing: [],
      unknown: [],
    });
    expect(serverNames.length).toBeGreaterThan(350);
  });

  it("includes the extensions' settings", () => {
    for (const name of ["hnsw.ef_search", "hnsw.iterative_scan", "ivfflat.probes", "pg_stat_statements.max", "pg_stat_statements.track"]) {
      expect(pg17SettingNames.has(name), name).toBe(true);
    }
  });

  it("is kept as a sorted literal", () => {
    const listed = [...pg17SettingNames];
    expect(listed).toEqual([...listed].sort());
  });
});
