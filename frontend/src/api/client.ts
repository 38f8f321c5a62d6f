// The typed API client: openapi-fetch over the generated schema, with the session's bearer token
// added to every call and one silent refresh-and-retry when the token was refused.
import createClient from "openapi-fetch";
import type { paths } from "./schema";
import { ApiError, asProblem } from "./problem";
import { Session, type Tokens } from "./session";

/** A fetch that signs requests with the session and retries once after a refresh on 401. */
export function authorizedFetch(session: Session, base: (request: Request) => Promise<Response> = (r) => fetch(r)) {
  return async (request: Request): Promise<Response> => {
    const isAuthRoute = new URL(request.url).pathname.startsWith("/v1/auth/");
    if (isAuthRoute) return base(request);
    if (session.token && session.stale()) await session.refresh();
    const retry = request.clone();
    const signed = (r: Request) => {
      if (session.token) r.headers.set("Authorization", `Bearer ${session.token}`);
      return r;
    };
    const hadToken = session.token !== null;
    const response = await base(signed(request));
    if (response.status === 401 && hadToken && (await session.refresh())) {
      return base(signed(retry));
    }
    return response;
  };
}

async function exchangeRefreshCookie(): Promise<Tokens | null> {
  const response = await fetch("/v1/auth/refresh", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
    credentials: "same-origin",
  });
  return response.ok ? ((await response.json()) as Tokens) : null;
}

export const session = new Session(exchangeRefreshCookie);

export const api = createClient<paths>({
  baseUrl: typeof window === "undefined" ? "http://localhost" : window.location.origin,
  fetch: authorizedFetch(session),
  credentials: "same-origin",
});

/** The data of a call, or an ApiError carrying its problem. */
export async function call<T>(pending: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const { data, error, response } = await pending;
  if (error !== undefined || !response.ok) throw new ApiError(asProblem(error, response.status), response.status);
  return data as T;
}

/** A key that makes a retried create safe: the server answers a repeat with the first result. */
export function idempotencyKey(): string {
  return crypto.randomUUID();
}
