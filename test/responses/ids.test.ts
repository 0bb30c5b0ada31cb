import { describe, expect, it } from "vitest";
import { itemIds, newId, responseOfItem } from "../../src/responses/ids.js";

describe("response and item ids", () => {
  it("are OpenAI-shaped, unique, and ordered by time so stored rows append to their index", async () => {
    const a = newId("resp");
    await new Promise((r) => setTimeout(r, 3));
    const b = newId("resp");
    expect(a).toMatch(/^resp_[0-9a-f]{48}$/);
    expect(a < b).toBe(true);
    const many = new Set(Array.from({ length: 5000 }, () => newId("msg")));
    expect(many.size).toBe(5000);
  });

  it("name the response that holds an item, so item_reference needs no index of items", () => {
    const resp = newId("resp");
    const next = itemIds(resp);
    const msg = next("msg");
    const fc = next("fc");
    expect(msg).toMatch(/^msg_[0-9a-f]{52}$/);
    expect(msg).not.toBe(fc.replace("fc_", "msg_"));
    expect(responseOfItem(msg)).toBe(resp);
    expect(responseOfItem(fc)).toBe(resp);
    for (const other of ["msg_1", resp, "fc_xyz", `msg_${"g".repeat(52)}`]) expect(responseOfItem(other)).toBeUndefined();
  });
});
