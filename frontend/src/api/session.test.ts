import { describe, expect, it, vi } from "vitest";
import { REFRESH_MARGIN_MS, Session, type Tokens } from "./session";
import { authorizedFetch } from "./client";

function tokens(access: string, expiresIn = 900): Tokens {
  return {
    access_token: access,
    token_type: "Bearer",
    expires_in: expiresIn,
    refresh_token: "r",
    user: {
      id: "u1",
      username: "ada",
      role: "user",
      email_verified: false,
      two_factor: false,
      created_at: "2026-11-24T00:00:00Z",
    },
  };
}

describe("Session", () => {
  it("schedules the silent refresh a minute before expiry", () => {
    const scheduled: number[] = [];
    const session = new Session(
      async () => null,
      () => 0,
      (_fn, ms) => {
        scheduled.push(ms);
        return 0 as unknown as ReturnType<typeof setTimeout>;
      },
    );
    session.accept(tokens("a", 900));
    expect(scheduled).toEqual([900_000 - REFRESH_MARGIN_MS]);
    expect(session.stale()).toBe(false);
  });

  it("runs one exchange for concurrent refreshes and signs out when the cookie is gone", async () => {
    let calls = 0;
    let answer: Tokens | null = tokens("b");
    const session = new Session(async () => {
      calls++;
      return answer;
    });
    const results = await Promise.all([session.refresh(), session.refresh(), session.refresh()]);
    expect(results).toEqual([true, true, true]);
    expect(calls).toBe(1);
    expect(session.token).toBe("b");
    answer = null;
    expect(await session.refresh()).toBe(false);
    expect(calls).toBe(2);
    expect(session.token).toBeNull();
    expect(session.user).toBeNull();
  });

  it("is stale near expiry", () => {
    let now = 0;
    const session = new Session(async () => null, () => now);
    session.accept(tokens("a", 120));
    now = 120_000 - REFRESH_MARGIN_MS / 2 + 1;
    expect(session.stale()).toBe(true);
  });
});

describe("authorizedFetch", () => {
  it("adds the token, and after a 401 refreshes once and retries with the new token", async () => {
    const session = new Session(async () => tokens("fresh"));
    session.accept(tokens("old"));
    const seen: (string | null)[] = [];
    const base = vi.fn(async (request: Request) => {
      seen.push(request.headers.get("Authorization"));
      const body = await request.text();
      expect(body).toBe('{"prompt":"x"}');
      return new Response(null, { status: seen.length === 1 ? 401 : 200 });
    });
    const send = authorizedFetch(session, base);
    const response = await send(new Request("http://localhost/v1/generations", { method: "POST", body: '{"prompt":"x"}' }));
    expect(response.status).toBe(200);
    expect(seen).toEqual(["Bearer old", "Bearer fresh"]);
  });

  it("does not loop when the refresh fails, and leaves auth routes alone", async () => {
    const session = new Session(async () => null);
    session.accept(tokens("old"));
    const base = vi.fn(async (request: Request) => new Response(request.headers.get("Authorization"), { status: 401 }));
    const send = authorizedFetch(session, base);
    expect((await send(new Request("http://localhost/v1/me"))).status).toBe(401);
    expect(base).toHaveBeenCalledTimes(1);
    expect(session.token).toBeNull();
    const auth = await send(new Request("http://localhost/v1/auth/login", { method: "POST" }));
    expect(await auth.text()).toBe("");
  });
});
