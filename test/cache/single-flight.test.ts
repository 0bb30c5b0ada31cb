import { describe, expect, it } from "vitest";
import { createSingleFlight } from "../../src/cache/single-flight.js";

/** A piece of work the test finishes by hand, recording the signal it was given. */
function controllable<T>() {
  const state = {
    calls: 0,
    signal: undefined as AbortSignal | undefined,
    resolve: undefined as unknown as (value: T) => void,
    reject: undefined as unknown as (error: unknown) => void,
    work: (signal: AbortSignal): Promise<T> => {
      state.calls++;
      state.signal = signal;
      return promise;
    },
  };
  const promise = new Promise<T>((resolve, reject) => Object.assign(state, { resolve, reject }));
  return state;
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe("single flight", () => {
  it("runs the work once for callers of one key and tells the joiners they were coalesced", async () => {
    const flight = createSingleFlight<string>();
    const w = controllable<string>();
    const calls = [flight.run("k", w.work), flight.run("k", w.work), flight.run("k", w.work)];
    expect(flight.size).toBe(1);
    w.resolve("answer");
    const results = await Promise.all(calls);
    expect(w.calls).toBe(1);
    expect(results).toEqual([
      { value: "answer", coalesced: false }, { value: "answer", coalesced: true }, { value: "answer", coalesced: true },
    ]);
  });

  it("gives every caller the same object", async () => {
    const flight = createSingleFlight<{ n: number }>();
    const w = controllable<{ n: number }>();
    const [a, b] = [flight.run("k", w.work), flight.run("k", w.work)];
    w.resolve({ n: 1 });
    expect((await a).value).toBe((await b).value);
  });

  it("keeps different keys apart", async () => {
    const flight = createSingleFlight<string>();
    const one = controllable<string>();
    const two = controllable<string>();
    const a = flight.run("a", one.work);
    const b = flight.run("b", two.work);
    expect(flight.size).toBe(2);
    two.resolve("two");
    one.resolve("one");
    expect(await a).toEqual({ value: "one", coalesced: false });
    expect(await b).toEqual({ value: "two", coalesced: false });
  });

  it("fails every caller with the same error", async () => {
    const flight = createSingleFlight<string>();
    const w = controllable<string>();
    const calls = [flight.run("k", w.work), flight.run("k", w.work), flight.run("k", w.work)];
    const boom = new Error("upstream 503");
    w.reject(boom);
    const settled = await Promise.allSettled(calls);
    expect(settled.map((s) => (s.status === "rejected" ? s.reason : s))).toEqual([boom, boom, boom]);
    expect((settled[1] as PromiseRejectedResult).reason).toBe(boom);
    expect(flight.size).toBe(0);
  });

  it("turns a synchronous throw of the work into a rejection", async () => {
    const flight = createSingleFlight<string>();
    await expect(flight.run("k", () => { throw new Error("sync"); })).rejects.toThrow("sync");
    expect(flight.size).toBe(0);
  });

  it("frees the key once settled, before the callers hear, so the next caller runs anew", async () => {
    const flight = createSingleFlight<string>();
    const first = controllable<string>();
    const pending = flight.run("k", first.work).then((r) => ({ ...r, sizeWhenTold: flight.size }));
    first.resolve("first");
    expect(await pending).toEqual({ value: "first", coalesced: false, sizeWhenTold: 0 });
    const second = controllable<string>();
    const next = flight.run("k", second.work);
    second.resolve("second");
    expect(await next).toEqual({ value: "second", coalesced: false });
    expect(second.calls).toBe(1);
  });

  it("leaks no key after many settled flights, failed ones included", async () => {
    const flight = createSingleFlight<number>();
    await Promise.allSettled(Array.from({ length: 100 }, (_, i) =>
      flight.run(`k${i % 10}`, async () => {
        await tick();
        if (i % 3 === 0) throw new Error("no");
        return i;
      })));
    expect(flight.size).toBe(0);
  });

  it("lets a follower outlive the leader's cancellation, with the work going on", async () => {
    const flight = createSingleFlight<string>();
    const w = controllable<string>();
    const leaderClient = new AbortController();
    const leader = flight.run("k", w.work, leaderClient.signal);
    const follower = flight.run("k", w.work, new AbortController().signal);
    leaderClient.abort(new Error("client went away"));
    await expect(leader).rejects.toThrow("client went away");
    expect(w.signal!.aborted).toBe(false);
    w.resolve("answer");
    expect(await follower).toEqual({ value: "answer", coalesced: true });
  });

  it("rejects a leaving follower with its own reason and leaves the others waiting", async () => {
    const flight = createSingleFlight<string>();
    const w = controllable<string>();
    const leader = flight.run("k", w.work, new AbortController().signal);
    const leaving = new AbortController();
    const follower = flight.run("k", w.work, leaving.signal);
    leaving.abort("deadline");
    await expect(follower).rejects.toBe("deadline");
    expect(w.signal!.aborted).toBe(false);
    w.resolve("answer");
    expect(await leader).toEqual({ value: "answer", coalesced: false });
  });

  it("aborts the work only when every caller has gone, and frees the key at once", async () => {
    const flight = createSingleFlight<string>();
    const w = controllable<string>();
    const clients = [new AbortController(), new AbortController(), new AbortController()];
    const calls = clients.map((c) => flight.run("k", w.work, c.signal));
    clients[0]!.abort(new Error("a"));
    clients[2]!.abort(new Error("c"));
    expect(w.signal!.aborted).toBe(false);
    expect(flight.size).toBe(1);
    clients[1]!.abort(new Error("b"));
    expect(w.signal!.aborted).toBe(true);
    expect(w.signal!.reason).toEqual(new Error("b"));
    expect(flight.size).toBe(0);
    const settled = await Promise.allSettled(calls);
    expect(settled.map((s) => (s as PromiseRejectedResult).reason.message)).toEqual(["a", "b", "c"]);
  });

  it("makes no signal for a work that takes none; its leader gets the work's outcome, its followers may leave", async () => {
    const flight = createSingleFlight<string>();
    let args = -1;
    let finish!: (v: string) => void;
    const leader = new AbortController();
    const follower = new AbortController();
    const lead = flight.run("k", function (this: unknown, ...given: unknown[]) {
      args = given.filter((a) => a !== undefined).length;
      return new Promise<string>((resolve) => (finish = resolve));
    } as () => Promise<string>, leader.signal);
    expect(args).toBe(0);
    const join = flight.run("k", () => Promise.resolve("never run"), follower.signal);
    follower.abort(new Error("gone"));
    await expect(join).rejects.toThrow("gone");
    expect(flight.size).toBe(1); // the leader still waits on its own work
    leader.abort(new Error("ignored")); // such work ends with its leader's request, not with its signal
    expect(flight.size).toBe(1);
    finish("answer");
    await expect(lead).resolves.toEqual({ value: "answer", coalesced: false });
    expect(flight.size).toBe(0);
  });

  it("starts a fresh flight for a caller arriving after all left, unharmed by the old one settling late", async () => {
    const flight = createSingleFlight<string>();
    const old = controllable<string>();
    const gone = new AbortController();
    const abandoned = flight.run("k", old.work, gone.signal);
    gone.abort("bye");
    await expect(abandoned).rejects.toBe("bye");
    const fresh = controllable<string>();
    const next = flight.run("k", fresh.work);
    expect(fresh.calls).toBe(1);
    old.reject(new Error("aborted")); // the abandoned work ends late, as aborted work does
    await tick();
    expect(flight.size).toBe(1); // the fresh flight still holds the key
    const joiner = flight.run("k", fresh.work);
    fresh.resolve("fresh");
    expect(await next).toEqual({ value: "fresh", coalesced: false });
    expect(await joiner).toEqual({ value: "fresh", coalesced: true });
    expect(flight.size).toBe(0);
  });

  it("refuses a caller whose signal is already aborted, without starting or joining", async () => {
    const flight = createSingleFlight<string>();
    const w = controllable<string>();
    await expect(flight.run("k", w.work, AbortSignal.abort("late"))).rejects.toBe("late");
    expect(w.calls).toBe(0);
    expect(flight.size).toBe(0);
  });

  it("answers a caller that has settled no matter when its signal aborts later", async () => {
    const flight = createSingleFlight<string>();
    const client = new AbortController();
    const result = await flight.run("k", async () => "v", client.signal);
    client.abort("after");
    expect(result).toEqual({ value: "v", coalesced: false });
  });

  it("lets work that is aborted with nobody waiting reject without an unhandled rejection", async () => {
    const flight = createSingleFlight<string>();
    const client = new AbortController();
    const call = flight.run("k", (signal) => new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason))), client.signal);
    client.abort(new Error("cancelled"));
    await expect(call).rejects.toThrow("cancelled");
    await tick(); // vitest fails the run on an unhandled rejection
    expect(flight.size).toBe(0);
  });
});
