/**
 * Bulk loading for the smoke benchmark: `COPY … FROM STDIN WITH (FORMAT BINARY)` through pg-copy-streams, over a
 * DIRECT connection (a COPY through a transaction pooler ties up a server connection for the whole load, and the
 * pooler gains nothing). The index is built after the load (pgvector-facts §5: create indexes after the initial load).
 *
 * COPY BINARY layout (PostgreSQL docs, "Binary Format"): the 11-byte signature, int32 flags, int32 header-extension
 * length; per row an int16 field count and per field an int32 length (-1 for NULL) and the bytes, which for `text` are
 * UTF-8 and for `vector`/`halfvec` exactly what their recv functions read (vector-binary.ts); then an int16 -1 trailer.
 */
import { once } from "events";
import type { Client } from "pg";
import { from as copyFrom } from "pg-copy-streams";
import type { Progress } from "../configs/progress";
import type { VectorType } from "../configs/hnsw";
import { quoteIdent } from "../configs/sql";
import { encodeVectorParam } from "./vector-binary";
import { benchmarkRows, type ClusteredVectors } from "./vectors";

const signature = Buffer.from("PGCOPY\n\xff\r\n\0", "latin1");

export const copyBinaryHeader: Buffer = Buffer.concat([signature, Buffer.alloc(8)]);
export const copyBinaryTrailer: Buffer = Buffer.from([0xff, 0xff]);

/** One COPY BINARY tuple; strings are sent as UTF-8 text fields, Buffers as they are. */
export function copyBinaryRow(fields: readonly (Buffer | string | null)[]): Buffer {
  const parts: Buffer[] = [];
  const count = Buffer.allocUnsafe(2);
  count.writeInt16BE(fields.length, 0);
  parts.push(count);
  for (const field of fields) {
    const length = Buffer.allocUnsafe(4);
    if (field === null) {
      length.writeInt32BE(-1, 0);
      parts.push(length);
      continue;
    }
    const bytes = typeof field === "string" ? Buffer.from(field, "utf8") : field;
    length.writeInt32BE(bytes.length, 0);
    parts.push(length, bytes);
  }
  return Buffer.concat(parts);
}

export interface CopyTarget {
  readonly table: string;
  /** Columns in field order. */
  readonly columns: readonly string[];
}

export interface LoadResult {
  readonly rows: number;
  readonly seconds: number;
  readonly rowsPerSec: number;
}

/**
 * Streams `rows` (each already in field order) into `target`. Rows are batched into ~256 kB writes and the stream's
 * back-pressure is honoured, so memory stays flat for any row count.
 */
export async function copyRows(
  client: Client,
  target: CopyTarget,
  rows: Iterable<readonly (Buffer | string | null)[]>,
  expectedRows: number,
  progress?: Progress,
): Promise<LoadResult> {
  const started = performance.now();
  const sql = `COPY ${quoteIdent(target.table)} (${target.columns.map(quoteIdent).join(", ")}) FROM STDIN WITH (FORMAT BINARY)`;
  const stream = client.query(copyFrom(sql));
  const finished = new Promise<void>((resolve, reject) => {
    stream.on("finish", resolve);
    stream.on("error", reject);
  });
  // Handled here so a failure seen first by the loop below is not also an unhandled rejection.
  finished.catch(() => undefined);
  // Without this a server error during the load would surface only when the stream ends.
  let failure: unknown = null;
  stream.on("error", (e) => (failure = e));
  let count = 0;
  let batch: Buffer[] = [copyBinaryHeader];
  let batchBytes = copyBinaryHeader.length;
  const flush = async () => {
    if (batch.length === 0) return;
    const chunk = Buffer.concat(batch, batchBytes);
    batch = [];
    batchBytes = 0;
    if (!stream.write(chunk)) await Promise.race([once(stream, "drain"), finished]);
  };
  for (const row of rows) {
    if (failure) break;
    const encoded = copyBinaryRow(row);
    batch.push(encoded);
    batchBytes += encoded.length;
    count++;
    if (batchBytes >= 256 * 1024) {
      await flush();
      if (progress && expectedRows > 0) progress.advance(Math.min(1, count / expectedRows), `${count} rows`);
    }
  }
  if (failure) {
    stream.destroy();
    throw failure;
  }
  batch.push(copyBinaryTrailer);
  batchBytes += copyBinaryTrailer.length;
  await flush();
  stream.end();
  await finished;
  const seconds = (performance.now() - started) / 1000;
  return { rows: count, seconds, rowsPerSec: seconds > 0 ? count / seconds : 0 };
}

/** A vector table's layout, as the plan (IndexPlanEntry) and the benchmark's table (BenchTable) both give it. */
export interface VectorTableLayout {
  readonly table: string;
  readonly column: string;
  readonly type: VectorType;
  readonly filterColumns: readonly string[];
}

/** `rows` of the generator's benchmark rows (filter values, then the vector) into `layout.table`. */
export function loadBenchmarkRows(
  client: Client,
  layout: VectorTableLayout,
  vectors: ClusteredVectors,
  rows: number,
  progress?: Progress,
): Promise<LoadResult> {
  const source = benchmarkRows(vectors, rows, layout.filterColumns.length);
  return copyRows(client, { table: layout.table, columns: [...layout.filterColumns, layout.column] }, vectorRows(layout.type, source), rows, progress);
}

/** Rows for `copyRows`: filter values then the binary vector. */
function* vectorRows(
  type: VectorType,
  source: Iterable<{ filters: string[]; vector: Float32Array }>,
): Generator<(Buffer | string)[]> {
  for (const row of source) yield [...row.filters, encodeVectorParam(type, row.vector)];
}
