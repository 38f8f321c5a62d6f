// The signed-in session: the access token lives only in memory; the refresh token is an HttpOnly
// cookie the browser sends to /v1/auth. A refresh happens shortly before the access token expires,
// and at most one runs at a time.
import type { components } from "./schema";

export type Me = components["schemas"]["Me"];
export type Tokens = components["schemas"]["TokenResponse"];

/** Refresh this long before expiry, so a request never carries a token about to lapse. */
export const REFRESH_MARGIN_MS = 60_000;

export class Session {
  token: string | null = null;
  user: Me | null = null;
  expiresAt = 0;
  private listeners = new Set<() => void>();
  private inFlight: Promise<boolean> | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly exchange: () => Promise<Tokens | null>,
    private readonly now: () => number = () => Date.now(),
    private readonly schedule: (fn: () => void, ms: number) => ReturnType<typeof setTimeout> = (fn, ms) =>
      setTimeout(fn, ms),
  ) {}

  accept(tokens: Tokens): void {
    this.token = tokens.access_token;
    this.user = tokens.user;
    this.expiresAt = this.now() + tokens.expires_in * 1000;
    clearTimeout(this.timer);
    const wait = Math.max(tokens.expires_in * 1000 - REFRESH_MARGIN_MS, 1_000);
    this.timer = this.schedule(() => void this.refresh(), wait);
    this.notify();
  }

  setUser(user: Me): void {
    this.user = user;
    this.notify();
  }

  clear(): void {
    clearTimeout(this.timer);
    this.token = null;
    this.user = null;
    this.expiresAt = 0;
    this.notify();
  }

  /** True when the token is missing or close to expiry. */
  stale(): boolean {
    return this.token === null || this.now() >= this.expiresAt - REFRESH_MARGIN_MS / 2;
  }

  /** Exchanges the refresh cookie for new tokens; concurrent callers share one exchange. */
  refresh(): Promise<boolean> {
    if (!this.inFlight) {
      this.inFlight = this.exchange()
        .then((tokens) => {
          if (tokens) {
            this.accept(tokens);
            return true;
          }
          this.clear();
          return false;
        })
        .catch(() => false)
        .finally(() => {
          this.inFlight = null;
        });
    }
    return this.inFlight;
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private notify(): void {
    for (const listener of this.listeners) listener();
  }
}
