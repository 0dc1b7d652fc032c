/** Where each id's newest row is (src/state/row-index.ts): kinds, counts, and undo with the file's transaction. */
import { describe, expect, it } from "bun:test";
import { RowIndex } from "../../src/state/row-index.ts";

describe("RowIndex", () => {
  it("keeps each id's newest row and its kind; counts the ids whose newest row is a session", () => {
    const index = new RowIndex();
    expect(index.session("a", 1)).toBeUndefined();
    expect(index.session("b", 2)).toBeUndefined();
    expect(index.session("a", 3)).toBe(1);
    expect(index.removal("b", 4)).toBe(2);
    expect(index.sessions).toBe(1);
    expect(index.size).toBe(2);
    expect(index.holdsSession("a")).toBe(true);
    expect(index.holdsSession("b")).toBe(false);
    expect(index.isNewestSession("a", 3)).toBe(true);
    expect(index.isNewestSession("a", 1)).toBe(false);
    expect(index.isNewestRemoval("b", 4)).toBe(true);
    expect(index.isNewestSession(new Uint8Array([97]), 3)).toBe(false);
    index.forget("b");
    expect(index.size).toBe(1);
  });

  it("rollback undoes what was done since begin, in reverse; commit keeps it", () => {
    const index = new RowIndex();
    index.session("a", 1);
    index.removal("gone", 2);
    index.begin();
    index.session("a", 3);
    index.session("new", 4);
    index.forget("gone");
    index.removal("a", 5);
    expect(index.sessions).toBe(1);
    index.rollback();
    expect(index.isNewestSession("a", 1)).toBe(true);
    expect(index.isNewestRemoval("gone", 2)).toBe(true);
    expect(index.holdsSession("new")).toBe(false);
    expect(index.sessions).toBe(1);
    expect(index.size).toBe(2);

    index.begin();
    index.session("new", 6);
    index.commit();
    index.rollback(); // nothing open: nothing undone
    expect(index.isNewestSession("new", 6)).toBe(true);
    expect(index.sessions).toBe(2);
  });
});
