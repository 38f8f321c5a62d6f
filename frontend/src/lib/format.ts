// Formatting shared by the pages: money, dates and ledger entries in words.
import type { components } from "../api/schema";

export function money(cents: number, currency: string): string {
  return new Intl.NumberFormat("en-US", { style: "currency", currency: currency.toUpperCase() }).format(cents / 100);
}

export function dateTime(iso: string): string {
  return new Date(iso).toLocaleString("en-US", { dateStyle: "medium", timeStyle: "short" });
}

export function date(iso: string): string {
  return new Date(iso).toLocaleDateString("en-US", { dateStyle: "medium" });
}

/** "in 3 hours", "in 12 minutes", "now": for the next daily grant. */
export function fromNow(iso: string, now: number = Date.now()): string {
  const minutes = Math.round((new Date(iso).getTime() - now) / 60_000);
  if (minutes <= 0) return "now";
  if (minutes < 60) return `in ${minutes} minute${minutes === 1 ? "" : "s"}`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `in ${hours} hour${hours === 1 ? "" : "s"}`;
  const days = Math.round(hours / 24);
  return `in ${days} days`;
}

const KINDS: Record<components["schemas"]["EntryKind"], string> = {
  signup_bonus: "Welcome bonus",
  daily_grant: "Daily free credits",
  daily_expiry: "Unused daily credits expired",
  reservation: "Generation",
  refund: "Refund",
  purchase: "Purchase",
  claw_back: "Refunded or disputed payment",
  admin_grant: "Added by support",
  admin_deduct: "Removed by support",
};

export function entryKind(kind: components["schemas"]["EntryKind"]): string {
  return KINDS[kind] ?? kind;
}

export function signed(n: number): string {
  return n > 0 ? `+${n}` : String(n);
}

export const PROMPT_MAX = 2000;

/** The prompt counter: characters as the server counts them (Unicode scalar values). */
export function promptLength(prompt: string): number {
  return [...prompt].length;
}

/**
 * The file-name extension the server gives a file in its `Content-Disposition` (it names each file
 * by its stored type: PNG, JPEG, WebP or a .glb model), so the table of types lives in one place.
 */
export function extensionOf(disposition: string | null): string {
  const name = /filename="([^"]*)"/i.exec(disposition ?? "")?.[1] ?? "";
  const dot = name.lastIndexOf(".");
  const extension = dot >= 0 ? name.slice(dot + 1).toLowerCase() : "";
  return /^[a-z0-9]{1,8}$/.test(extension) ? extension : "bin";
}

const STATES: Record<components["schemas"]["Status"], string> = {
  queued: "Waiting for a worker…",
  starting: "Starting…",
  processing: "Drawing…",
  succeeded: "Done",
  failed: "Failed",
  canceled: "Canceled",
};

/** Where a generation is, as the Generate page heads its result. */
export function stateInWords(g: Pick<components["schemas"]["Generation"], "status" | "started_at">): string {
  // Queued after a worker had it: the model was busy, or a try failed and it goes again.
  if (g.status === "queued" && g.started_at) return "Waiting to run again…";
  return STATES[g.status] ?? g.status;
}

/** Where a queued generation stands in the queue, or "" when it is not waiting there. */
export function queueInWords(g: Pick<components["schemas"]["Generation"], "queued_ahead">): string {
  const ahead = g.queued_ahead;
  if (ahead === null || ahead === undefined) return "";
  if (ahead === 0) return "Next in the queue.";
  // The server stops counting at 1000.
  if (ahead >= 1000) return "1,000 or more ahead of it in the queue.";
  return `${ahead} ahead of it in the queue.`;
}

/** A device as a person names it ("Chrome on Windows"), from the User-Agent it signed in with. */
export function deviceName(userAgent: string | null | undefined): string {
  if (!userAgent) return "Unknown device";
  const ua = userAgent;
  const browser =
    /Edg\//.test(ua) ? "Edge"
    : /OPR\//.test(ua) ? "Opera"
    : /Firefox\//.test(ua) ? "Firefox"
    : /HeadlessChrome\//.test(ua) ? "Headless Chrome"
    : /Chrome\//.test(ua) ? "Chrome"
    : /Safari\//.test(ua) ? "Safari"
    : null;
  const system =
    /iPhone/.test(ua) ? "iPhone"
    : /iPad/.test(ua) ? "iPad"
    : /Android/.test(ua) ? "Android"
    : /Windows/.test(ua) ? "Windows"
    : /Mac OS X|Macintosh/.test(ua) ? "macOS"
    : /CrOS/.test(ua) ? "ChromeOS"
    : /Linux/.test(ua) ? "Linux"
    : null;
  if (browser && system) return `${browser} on ${system}`;
  if (browser ?? system) return (browser ?? system) as string;
  // A program: its own name, as it gave it ("curl/8.5.0" → "curl").
  return ua.split(/[/\s]/)[0] || "Unknown device";
}
