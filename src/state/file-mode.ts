/**
 * Who may read the state file. It holds session ids, which are the only credential when REG
 * authentication is off, so it is created 0600 and an existing one open to group or others is
 * restricted when this process owns it. SQLite creates its side files with the main file's mode.
 */
import { chmodSync, closeSync, openSync, statSync } from "node:fs";

export const PRIVATE_MODE = 0o600;

/** Side files SQLite may leave next to the database (rollback journal, WAL). */
const SIDE_FILES = ["-journal", "-wal", "-shm"];

/** A file that was open to group or others: now restricted, or left so (and why). */
export type ModeNote =
  | { file: string; restricted: true; was: string }
  | { file: string; restricted: false; mode: string; reason: string };

/** The file-system calls used here, replaceable in tests. */
export interface ModeFs {
  stat(path: string): { mode: number; uid: number } | undefined;
  chmod(path: string, mode: number): void;
  /** This process's effective uid; undefined where there is none (then ownership is not checked). */
  euid: number | undefined;
}

export const nodeModeFs: ModeFs = {
  stat(path) {
    try {
      return statSync(path);
    } catch {
      return undefined;
    }
  },
  chmod: (path, mode) => chmodSync(path, mode),
  euid: process.geteuid?.(),
};

/**
 * Creates `path` empty with mode 0600 (exactly, whatever the umask) unless it exists. Returns
 * whether it created it; throws the system error (a missing directory, permissions).
 */
export function createPrivateFile(path: string): boolean {
  try {
    closeSync(openSync(path, "wx", PRIVATE_MODE));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  }
  chmodSync(path, PRIVATE_MODE);
  return true;
}

/** Restricts the database and its side files to 0600 where they are open to group or others. */
export function restrictToOwner(path: string, fs: ModeFs = nodeModeFs): ModeNote[] {
  const notes: ModeNote[] = [];
  for (const file of [path, ...SIDE_FILES.map((suffix) => path + suffix)]) {
    const st = fs.stat(file);
    if (!st || (st.mode & 0o077) === 0) continue;
    notes.push(restrict(file, st, fs));
  }
  return notes;
}

function restrict(file: string, st: { mode: number; uid: number }, fs: ModeFs): ModeNote {
  const mode = octal(st.mode);
  if (fs.euid !== undefined && st.uid !== fs.euid) {
    return { file, restricted: false, mode, reason: `owned by uid ${st.uid}, not by this relay (uid ${fs.euid})` };
  }
  try {
    fs.chmod(file, PRIVATE_MODE);
    return { file, restricted: true, was: mode };
  } catch (error) {
    return { file, restricted: false, mode, reason: (error as Error).message };
  }
}

function octal(mode: number): string {
  return `0${(mode & 0o777).toString(8).padStart(3, "0")}`;
}
