/**
 * The tables of the state file, by format version, and the check that a SQLite file is one of
 * them. Format 2 (this relay's) keeps a log of session rows; format 1 (earlier relays) kept one row
 * per session with idle times relative to its save, and is migrated when it is loaded.
 */
import type { Database } from "bun:sqlite";

/** Written by this relay. A file of a version not listed in SCHEMAS is set aside, not misread. */
export const FORMAT_VERSION = "2";
/** Read and migrated to FORMAT_VERSION when loaded. */
export const LEGACY_VERSION = "1";

interface Column {
  name: string;
  /** Declared type, as PRAGMA table_info reports it. */
  type: string;
  /** Part of the primary key. */
  key: boolean;
}

interface Table {
  columns: Column[];
  create: string;
}

const col = (name: string, type: string, key = false): Column => ({ name, type, key });

const META: Table = {
  columns: [col("key", "TEXT", true), col("value", "TEXT")],
  create: "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
};

/**
 * Format 2: every save appends one row per changed session, so the row with the highest `seq` of
 * an id is that session as last saved; a row whose `peers` is NULL says it was removed. Older rows
 * are dropped from the low end of `seq` (see incremental-save.ts). `seq` is the rowid: appends and
 * drops touch the two ends of one b-tree, never pages in between.
 */
const SESSIONS_V2: Table = {
  columns: [col("seq", "INTEGER", true), col("id", "TEXT"), col("active_at_ms", "REAL"), col("peers", "TEXT")],
  create: "CREATE TABLE IF NOT EXISTS sessions (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, active_at_ms REAL, peers TEXT)",
};

/** Format 1: one row per session, idle times as of `saved_at_ms`. */
const SESSIONS_V1: Table = {
  columns: [col("id", "TEXT", true), col("idle_ms", "REAL"), col("peers", "TEXT")],
  create: "CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, idle_ms REAL NOT NULL, peers TEXT NOT NULL)",
};

export const SCHEMAS: Record<string, Map<string, Table>> = {
  [FORMAT_VERSION]: new Map([
    ["meta", META],
    ["sessions", SESSIONS_V2],
  ]),
  [LEGACY_VERSION]: new Map([
    ["meta", META],
    ["sessions", SESSIONS_V1],
  ]),
};

/** Creates the tables of FORMAT_VERSION that do not exist yet and records the version. */
export function createTables(db: Database): void {
  for (const table of SCHEMAS[FORMAT_VERSION]!.values()) db.run(table.create);
  db.run("INSERT OR IGNORE INTO meta (key, value) VALUES ('format_version', ?)", [FORMAT_VERSION]);
}

/** The format version the file says it has, undefined when it says none (a new file). */
export function fileVersion(db: Database): string | undefined {
  if (!tableNames(db).includes("meta") || columnsOf(db, "meta").map((c) => c.name).join(",") !== "key,value") return undefined;
  const row = db.query("SELECT value FROM meta WHERE key = 'format_version'").get() as { value: unknown } | null;
  return row ? String(row.value) : undefined;
}

/**
 * Why `db` is not a state file of this relay, or undefined: it is empty (new), has the tables of
 * the format version it names (1 or 2), or names another version (load sets that one aside).
 * Keys are checked with the columns: format 2 relies on `seq` being the rowid, and an id column
 * without its key could hold one session twice.
 */
export function foreignSchema(db: Database): string | undefined {
  const version = fileVersion(db);
  if (version !== undefined && !(version in SCHEMAS)) return undefined;
  const schema = SCHEMAS[version ?? FORMAT_VERSION]!;
  for (const name of tableNames(db)) {
    const expected = schema.get(name);
    if (!expected) return `unknown table ${JSON.stringify(name.slice(0, 40))}`;
    const found = columnsOf(db, name);
    const names = (columns: Column[]) => columns.map((c) => c.name).join(",");
    if (names(found) !== names(expected.columns)) return `table '${name}' has columns (${names(found)}), expected (${names(expected.columns)})`;
    const declared = (columns: Column[]) => columns.map((c) => `${c.name} ${c.type}${c.key ? " PRIMARY KEY" : ""}`).join(", ");
    if (declared(found) !== declared(expected.columns)) return `table '${name}' is declared (${declared(found)}), expected (${declared(expected.columns)})`;
  }
  return undefined;
}

function tableNames(db: Database): string[] {
  const rows = db.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'").all() as { name: string }[];
  return rows.map((t) => t.name);
}

function columnsOf(db: Database, table: string): Column[] {
  const rows = db.query(`PRAGMA table_info("${table.replaceAll('"', '""')}")`).all() as { name: string; type: string; pk: number }[];
  return rows.map((c) => col(c.name, c.type.toUpperCase(), c.pk > 0));
}
