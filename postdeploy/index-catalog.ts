/**
 * What the catalog says of an index, read the same way by the hook (postdeploy/indexes.ts), which decides whether to
 * build, repair or leave it, and by live drift (drift/live-query.ts), which compares it with the plan: one query
 * fragment and one mapping, so the two can never disagree about what an index is.
 */
import type { ObservedIndex } from "./index-decisions";

/**
 * Select-list items over `pg_class c` (the index), `pg_index i`, `pg_class t` (its table) and `pg_am am`. Columns
 * and operator classes come back in key order; an expression column has no attname and reads as "".
 */
export const indexCatalogColumns = `am.amname::text AS access_method, c.reloptions,
            t.relname::text AS table_name, i.indisvalid AS valid, i.indisready AS ready, i.indpred IS NOT NULL AS partial,
            pg_get_indexdef(c.oid) AS definition,
            ARRAY(SELECT coalesce(a.attname::text, '') FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
                    LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord) AS columns,
            ARRAY(SELECT o.opcname::text FROM unnest(i.indclass) WITH ORDINALITY k(opc, ord)
                    JOIN pg_opclass o ON o.oid = k.opc ORDER BY k.ord) AS opclasses`;

/** A row with `c.relname AS name` and `indexCatalogColumns`; null where a LEFT JOIN found nothing. */
export interface IndexCatalogRow {
  name: string;
  access_method: string | null;
  reloptions: string[] | null;
  table_name: string | null;
  valid: boolean | null;
  ready: boolean | null;
  partial: boolean | null;
  definition: string | null;
  columns: string[] | null;
  opclasses: string[] | null;
}

export function observedIndexOf(r: IndexCatalogRow): ObservedIndex {
  return {
    name: r.name,
    table: r.table_name ?? "",
    accessMethod: r.access_method ?? "",
    columns: r.columns ?? [],
    opclasses: r.opclasses ?? [],
    reloptions: r.reloptions,
    valid: r.valid ?? false,
    ready: r.ready ?? false,
    partial: r.partial ?? false,
    definition: r.definition ?? "",
  };
}
