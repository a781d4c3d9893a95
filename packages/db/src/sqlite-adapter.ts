import { PrismaBetterSQLite3 } from '@prisma/adapter-better-sqlite3';
import {
  DriverAdapterError,
  type IsolationLevel,
  type SqlDriverAdapter,
  type SqlDriverAdapterFactory,
  type SqlQuery,
  type Transaction,
} from '@prisma/driver-adapter-utils';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * SQLite for many concurrent requests in one process and for several processes on one file.
 *
 * Prisma's own better-sqlite3 adapter shares one connection and locks it only for interactive
 * transactions, so a plain statement from another request runs inside an open transaction: it
 * is rolled back with it, and reads see uncommitted rows. Here:
 * - every write (a plain statement, a script or a whole transaction) runs on the writer
 *   connection, one at a time, behind an async lock;
 * - plain reads (SELECT) run on a second connection: in WAL mode it sees the last committed state
 *   only, and never waits for the lock;
 * - transactions start with BEGIN IMMEDIATE, taking SQLite's write lock up front, so a
 *   read-then-write transaction cannot fail with SQLITE_BUSY_SNAPSHOT because another process
 *   committed between its read and its write;
 * - waits are bounded (`lockWaitMs`): for the in-process lock and for another process's write
 *   lock. SQLITE_BUSY is retried here, asynchronously, so the event loop keeps running while
 *   another process writes. Past the bound the error is Prisma's P1008 (timed out).
 */
export interface SqliteAdapterOptions {
  url: string;
  /** How long a statement or a transaction may wait for the write lock. */
  lockWaitMs: number;
}

/** SQLite's own (blocking) wait on a lock held by another process, before we retry. */
const BUSY_SLICE_MS = 50;

export class SerializedSqliteAdapterFactory implements SqlDriverAdapterFactory {
  readonly provider = 'sqlite';
  readonly adapterName = '@minicloud/db:sqlite';

  constructor(private readonly options: SqliteAdapterOptions) {}

  async connect(): Promise<SqlDriverAdapter> {
    const { url } = this.options;
    const open = async () => {
      const connection = await new PrismaBetterSQLite3({ url, timeout: BUSY_SLICE_MS }).connect();
      await connection.executeScript('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;');
      return connection;
    };
    const writer = await open();
    // An in-memory database exists once per connection: it cannot have a separate reader.
    const inMemory = /^file::memory:|^file:$|mode=memory/.test(url);
    const reader = inMemory ? writer : await open();
    if (reader !== writer) await reader.executeScript('PRAGMA query_only = ON');
    return new SerializedSqliteAdapter(writer, reader, this.options.lockWaitMs);
  }
}

class SerializedSqliteAdapter implements SqlDriverAdapter {
  readonly provider = 'sqlite';
  readonly adapterName = '@minicloud/db:sqlite';
  private readonly lock = new WriteLock();

  constructor(
    private readonly writer: SqlDriverAdapter,
    private readonly reader: SqlDriverAdapter,
    private readonly lockWaitMs: number,
  ) {}

  queryRaw(query: SqlQuery) {
    if (isRead(query.sql))
      return retryBusy(Date.now() + this.lockWaitMs, () => this.reader.queryRaw(query));
    return this.write(() => this.writer.queryRaw(query));
  }

  executeRaw(query: SqlQuery) {
    return this.write(() => this.writer.executeRaw(query));
  }

  executeScript(script: string) {
    return this.write(() => this.writer.executeScript(script));
  }

  async startTransaction(isolationLevel?: IsolationLevel): Promise<Transaction> {
    if (isolationLevel && isolationLevel !== 'SERIALIZABLE') {
      throw new DriverAdapterError({ kind: 'InvalidIsolationLevel', level: isolationLevel });
    }
    const deadline = Date.now() + this.lockWaitMs;
    const release = await this.lock.acquire(deadline);
    try {
      await retryBusy(deadline, () => this.writer.executeScript('BEGIN IMMEDIATE'));
    } catch (e) {
      release();
      throw e;
    }
    return new SerializedTransaction(this.writer, release);
  }

  getConnectionInfo() {
    return this.writer.getConnectionInfo?.() ?? { supportsRelationJoins: false };
  }

  async dispose() {
    await this.writer.dispose();
    if (this.reader !== this.writer) await this.reader.dispose();
  }

  private async write<T>(run: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.lockWaitMs;
    const release = await this.lock.acquire(deadline);
    try {
      return await retryBusy(deadline, run);
    } finally {
      release();
    }
  }
}

/** An open BEGIN IMMEDIATE on the writer; holds the lock until COMMIT or ROLLBACK. */
class SerializedTransaction implements Transaction {
  readonly provider = 'sqlite';
  readonly adapterName = '@minicloud/db:sqlite';
  // Prisma sends COMMIT and ROLLBACK itself (through executeRaw), then calls commit()/rollback().
  readonly options = { usePhantomQuery: false };

  private closed = false;

  constructor(
    private readonly connection: SqlDriverAdapter,
    private readonly releaseLock: () => void,
  ) {}

  async queryRaw(query: SqlQuery) {
    this.assertOpen();
    return this.connection.queryRaw(query);
  }

  async executeRaw(query: SqlQuery) {
    this.assertOpen();
    try {
      return await this.connection.executeRaw(query);
    } catch (e) {
      // Prisma does not call commit()/rollback() when its COMMIT fails: undo and let go here,
      // or the lock would be held for good.
      if (/^\s*(COMMIT|ROLLBACK)\b/i.test(query.sql)) {
        await this.connection.executeScript('ROLLBACK').catch(() => {});
        this.release();
      }
      throw e;
    }
  }

  commit() {
    this.release();
    return Promise.resolve();
  }

  rollback() {
    this.release();
    return Promise.resolve();
  }

  private release() {
    this.closed = true;
    this.releaseLock();
  }

  // Once the lock is let go, the writer belongs to someone else: a late statement must not run.
  private assertOpen() {
    if (this.closed) {
      throw new DriverAdapterError({
        kind: 'TransactionAlreadyClosed',
        cause: 'the transaction was committed or rolled back',
      });
    }
  }
}

const isRead = (sql: string) => /^\s*SELECT\b/i.test(sql);

function timedOut(): DriverAdapterError {
  return new DriverAdapterError({ kind: 'SocketTimeout' });
}

/** Run `op`, retrying while SQLite answers SQLITE_BUSY (another process writes), until deadline. */
async function retryBusy<T>(deadline: number, op: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await op();
    } catch (e) {
      if (!isBusy(e)) throw e;
      if (Date.now() >= deadline) throw timedOut();
      await sleep(Math.min(5 * 2 ** attempt, 100) * (0.5 + Math.random() / 2));
    }
  }
}

/** SQLITE_BUSY and its extended codes, raw (better-sqlite3) or mapped by Prisma's adapter. */
function isBusy(e: unknown): boolean {
  const error = e as { code?: unknown; cause?: { originalCode?: unknown } } | undefined;
  const code = error?.cause?.originalCode ?? error?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

/** A FIFO async lock whose waiters give up at a deadline. */
class WriteLock {
  private held = false;
  private readonly waiters: { grant: () => void }[] = [];

  acquire(deadline: number): Promise<() => void> {
    if (!this.held) {
      this.held = true;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        grant: () => {
          clearTimeout(timer);
          resolve(this.releaser());
        },
      };
      const timer = setTimeout(
        () => {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          reject(timedOut());
        },
        Math.max(0, deadline - Date.now()),
      );
      this.waiters.push(waiter);
    });
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      if (next) next.grant();
      else this.held = false;
    };
  }
}
