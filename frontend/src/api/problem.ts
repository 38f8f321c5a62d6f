// Turns the API's problem+json answers into sentences a person can act on.
import type { components } from "./schema";

export type Problem = components["schemas"]["Problem"];

/** What the person should read for a problem: never a bare code. */
export function describeProblem(problem: Partial<Problem>): string {
  const detail = problem.detail?.trim();
  switch (problem.code) {
    case "validation_failed": {
      const fields = (problem.errors ?? []).map((e) => `${fieldLabel(e.field)} ${e.message}`);
      return fields.length > 0 ? `Please check: ${fields.join("; ")}.` : detail || "Some fields are not valid.";
    }
    case "insufficient_credits":
      return problem.needed != null && problem.available != null
        ? `This needs ${credits(problem.needed)} and you have ${credits(problem.available)}. Buy more on the Pricing page.`
        : "You don't have enough credits for this. Buy more on the Pricing page.";
    case "credits_owed":
      return "Your balance is below zero after a refund or dispute; buy credits to continue.";
    case "invalid_credentials":
      return "That email and password don't match an account.";
    case "unauthorized":
    case "invalid_token":
    case "token_expired":
    case "refresh_token_reused":
      return "Your session has ended. Please sign in again.";
    case "rate_limited":
      return "Too many requests. Wait a moment and try again.";
    case "too_many_in_flight":
      return "You have too many generations running. Wait for one to finish and try again.";
    case "pro_model_requires_purchase":
      return "This is a Pro model: it needs purchased credits. Buy a package on the Pricing page.";
    case "payments_not_configured":
      return "Payments are not set up on this server, so credits can't be bought here.";
    case "payment_provider_failed":
      return "The payment provider did not answer. Nothing was charged; try again in a moment.";
    case "file_missing":
      return "This file is missing from the server's storage, so trying again will not help. Tell the site's operator.";
    case "database_unavailable":
    case "not_ready":
    case "internal_error":
      return "The server had a problem. Try again in a moment.";
    default:
      return detail || problem.title || "Something went wrong.";
  }
}

function fieldLabel(field: string): string {
  const name = field.split(".").pop() ?? field;
  const words = name.replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

export function credits(n: number): string {
  return `${n.toLocaleString("en-US")} credit${Math.abs(n) === 1 ? "" : "s"}`;
}

/** An error from an API call, carrying the problem for code that wants its fields. */
export class ApiError extends Error {
  readonly problem: Partial<Problem>;
  readonly status: number;

  constructor(problem: Partial<Problem>, status: number) {
    super(describeProblem(problem));
    this.name = "ApiError";
    this.problem = problem;
    this.status = status;
  }
}

/** A readable message for anything a call can throw. */
export function errorMessage(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof TypeError) return "Can't reach the server. Check your connection and try again.";
  if (error instanceof Error && error.name === "AbortError") return "The request was cancelled.";
  return "Something went wrong. Try again.";
}

/** The problem in an error body, whatever shape the body had. */
export function asProblem(body: unknown, status: number): Partial<Problem> {
  if (body && typeof body === "object" && "code" in body) return body as Partial<Problem>;
  return { status, title: status >= 500 ? "Server error" : "Request failed", detail: typeof body === "string" ? body : undefined };
}
