import { describe, expect, it } from "vitest";
import { ApiError, asProblem, describeProblem, errorMessage } from "./problem";

describe("describeProblem", () => {
  it("lists each invalid field in words", () => {
    const text = describeProblem({
      code: "validation_failed",
      detail: "request validation failed",
      errors: [
        { field: "aspect_ratio", message: "must be one of 1:1, 16:9" },
        { field: "body.num_outputs", message: "must be between 1 and 4" },
      ],
    });
    expect(text).toBe("Please check: Aspect ratio must be one of 1:1, 16:9; Num outputs must be between 1 and 4.");
  });

  it("says how many credits are needed and where to get them", () => {
    const text = describeProblem({ code: "insufficient_credits", needed: 8, available: 1 });
    expect(text).toContain("needs 8 credits and you have 1 credit");
    expect(text).toContain("Pricing");
  });

  it("never shows a bare code", () => {
    for (const code of ["rate_limited", "too_many_in_flight", "pro_model_requires_purchase", "internal_error"] as const) {
      const text = describeProblem({ code });
      expect(text).not.toContain(code);
      expect(text.length).toBeGreaterThan(20);
    }
  });

  it("says a lost file will not come back by trying again", () => {
    const text = describeProblem({ code: "file_missing" });
    expect(text).toContain("missing");
    expect(text).toContain("trying again will not help");
  });

  it("falls back to the server's detail", () => {
    expect(describeProblem({ code: "prompt_rejected", detail: "The prompt was rejected (violence)." })).toBe(
      "The prompt was rejected (violence).",
    );
  });
});

describe("errorMessage", () => {
  it("reads API errors, network failures and anything else", () => {
    expect(errorMessage(new ApiError({ code: "invalid_credentials" }, 401))).toBe("That email and password don't match an account.");
    expect(errorMessage(new TypeError("Failed to fetch"))).toContain("Can't reach the server");
    expect(errorMessage("boom")).toBe("Something went wrong. Try again.");
  });

  it("turns a non-problem body into a problem", () => {
    expect(asProblem("Bad Gateway", 502)).toMatchObject({ status: 502, detail: "Bad Gateway", title: "Server error" });
    expect(asProblem({ code: "not_found", detail: "x" }, 404)).toMatchObject({ code: "not_found" });
  });
});
