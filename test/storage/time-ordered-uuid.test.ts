// The ids of usage rows on PostgreSQL (src/storage/pg/pg-usage.ts): valid UUIDs (version 7,
// the time first), ordered by the time they were made, and distinct.
import { describe, expect, it } from "vitest";
import { timeOrderedUuid } from "../../src/storage/pg/pg-usage.js";

describe("timeOrderedUuid", () => {
  it("is a version 7 UUID that starts with the time in ms", () => {
    const at = Date.UTC(2026, 11, 3, 8, 0, 0);
    const id = timeOrderedUuid(at);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(parseInt(id.replace(/-/g, "").slice(0, 12), 16)).toBe(at);
  });

  it("sorts by the time it was made, and 100,000 made in one millisecond are all distinct", () => {
    const ids = [timeOrderedUuid(1_000), timeOrderedUuid(2_000), timeOrderedUuid(1_000_000)];
    expect([...ids].sort()).toEqual(ids);
    const same = new Set(Array.from({ length: 100_000 }, () => timeOrderedUuid(5_000)));
    expect(same.size).toBe(100_000);
  });
});
