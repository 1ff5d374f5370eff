/**
 * How the smoke benchmark talks to PostgreSQL through PgBouncer without the Node client becoming the bottleneck.
 *
 * - Named protocol-level prepared statements: parsed once per connection, then only Bind/Execute (+10 % q/s measured,
 *   pgvector-facts §10; PgBouncer ≥ 1.21 keeps them working in transaction mode with `max_prepared_statements`).
 * - Binary vector parameters (see vector-binary.ts).
 * - One round trip per transaction: node-postgres waits for ReadyForQuery before it sends the next query, so
 *   BEGIN / SET LOCAL / query / COMMIT would cost four round trips. `PipelinedTransaction` writes all of them in one
 *   corked write ending in a single Sync — the extended protocol's pipelining, which pgbench does with
 *   `\startpipeline` and PgBouncer passes through. It is a node-postgres `Submittable` and uses only the connection's
 *   parse/bind/execute/sync, the same calls node-postgres' own Query makes.
 */
import type { Client, Connection } from "pg";

/** A parameter as it goes on the wire: a Buffer goes binary (format 1), a string as text, null as NULL. */
export type WireValue = Buffer | string | null;

export interface Statement {
  /** Protocol-level prepared statement name, unique per text within a connection. */
  readonly name: string;
  readonly text: string;
}

/** Rows as arrays of text fields: the benchmark reads `id` and `distance` only, so no type parsing. */
export type TextRows = (string | null)[][];

interface PgMessage {
  fields?: (string | null)[];
}

interface ProtocolConnection {
  parsedStatements: Record<string, string>;
  stream: { cork?: () => void; uncork?: () => void };
  parse(query: { name: string; text: string; types: number[] }): void;
  bind(config: { statement: string; values: WireValue[] }): void;
  execute(config: { portal: string; rows: number }): void;
  sync(): void;
  sendCopyFail(message: string): void;
}

/**
 * BEGIN; SET LOCAL …; <statement>; COMMIT — or the statement alone when there is nothing to set — sent as one
 * pipeline. The server runs the messages in order and answers once; an error skips the rest up to the Sync.
 */
class PipelinedTransaction {
  private readonly rows: TextRows = [];
  private failed = false;
  private toRemember: Statement[] = [];

  constructor(
    private readonly prelude: readonly Statement[],
    private readonly statement: Statement,
    private readonly values: WireValue[],
    private readonly epilogue: readonly Statement[],
    private readonly resolve: (rows: TextRows) => void,
    private readonly reject: (error: Error) => void,
  ) {}

  submit(connection: Connection): void {
    const c = connection as unknown as ProtocolConnection;
    c.stream.cork?.();
    try {
      for (const s of this.prelude) this.send(c, s, []);
      this.send(c, this.statement, this.values);
      for (const s of this.epilogue) this.send(c, s, []);
      c.sync();
    } finally {
      c.stream.uncork?.();
    }
  }

  private send(c: ProtocolConnection, s: Statement, values: WireValue[]): void {
    if (s.name === "") {
      // The unnamed statement: parsed every time, nothing to remember.
      c.parse({ name: "", text: s.text, types: [] });
    } else if (c.parsedStatements[s.name] !== s.text && !this.toRemember.includes(s)) {
      c.parse({ name: s.name, text: s.text, types: [] });
      this.toRemember.push(s);
    }
    c.bind({ statement: s.name, values });
    c.execute({ portal: "", rows: 0 });
  }

  handleRowDescription(): void {}
  handleDataRow(msg: PgMessage): void {
    this.rows.push(msg.fields ?? []);
  }
  handleCommandComplete(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyInResponse(connection: Connection): void {
    (connection as unknown as ProtocolConnection).sendCopyFail("the smoke benchmark sends no COPY data here");
  }
  handleCopyData(): void {}

  /** node-postgres drops the active query on an ErrorResponse; ReadyForQuery then goes to no one. */
  handleError(error: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.reject(error);
  }

  handleReadyForQuery(connection: Connection): void {
    if (this.failed) return;
    const c = connection as unknown as ProtocolConnection;
    for (const s of this.toRemember) c.parsedStatements[s.name] = s.text;
    this.resolve(this.rows);
  }
}

const begin: Statement = { name: "smoke_begin", text: "BEGIN" };
const commit: Statement = { name: "smoke_commit", text: "COMMIT" };
const unnamedBegin: Statement = { name: "", text: "BEGIN" };
const unnamedCommit: Statement = { name: "", text: "COMMIT" };

/** A statement name derived from its text, so the same text always maps to the same name on a connection. */
export function statementName(prefix: string, text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return `${prefix}_${h.toString(16).padStart(8, "0")}`;
}

export function settingStatements(setLocal: readonly string[]): Statement[] {
  return setLocal.map((text) => ({ name: statementName("smoke_set", text), text }));
}

/**
 * Runs one benchmark operation on one connection. `pipeline: false` is the plain node-postgres way (BEGIN and the
 * SET LOCALs as one simple query, then the statement, then COMMIT: three round trips), kept to measure what the
 * pipeline buys and as a fallback for a pooler that mishandles pipelines.
 *
 * After an error the connection may sit in an aborted transaction holding a PgBouncer server, and its prepared
 * statement bookkeeping may be off, so the caller replaces it (`broken`).
 */
export class OperationRunner {
  broken = false;

  /**
   * `namedStatements: false` parses every statement each time (the unnamed statement), for a pooler without
   * protocol-level prepared statement support (PgBouncer < 1.21, or max_prepared_statements = 0), where a named
   * statement prepared on one server connection is missing on the next.
   */
  constructor(
    readonly client: Client,
    private readonly pipeline: boolean,
    private readonly namedStatements = true,
  ) {}

  run(setLocal: readonly Statement[], statement: Statement, values: WireValue[]): Promise<TextRows> {
    if (!this.namedStatements) {
      setLocal = setLocal.map((s) => ({ name: "", text: s.text }));
      statement = { name: "", text: statement.text };
    }
    const promise = this.pipeline
      ? this.runPipelined(setLocal, statement, values)
      : this.runSequential(setLocal, statement, values);
    return promise.catch((error: unknown) => {
      this.broken = true;
      throw error;
    });
  }

  private runPipelined(setLocal: readonly Statement[], statement: Statement, values: WireValue[]): Promise<TextRows> {
    return new Promise<TextRows>((resolve, reject) => {
      const transaction = setLocal.length > 0;
      const named = statement.name !== "";
      const submittable = new PipelinedTransaction(
        transaction ? [named ? begin : unnamedBegin, ...setLocal] : [],
        statement,
        values,
        transaction ? [named ? commit : unnamedCommit] : [],
        resolve,
        reject,
      );
      this.client.query(submittable);
    });
  }

  private async runSequential(setLocal: readonly Statement[], statement: Statement, values: WireValue[]): Promise<TextRows> {
    const transaction = setLocal.length > 0;
    if (transaction) await this.client.query(["BEGIN", ...setLocal.map((s) => s.text)].join("; "));
    const result = await this.client.query<(string | null)[]>({
      ...(statement.name ? { name: statement.name } : {}),
      text: statement.text,
      values,
      rowMode: "array",
      // Keep results as text: `binary: true` would switch every result column to binary.
      types: { getTypeParser: () => (value: string) => value },
    });
    if (transaction) await this.client.query("COMMIT");
    return result.rows;
  }
}
