import { describe, expect, it } from "vitest";
import { deviceName, extensionOf, fromNow, money, promptLength, queueInWords, signed, stateInWords } from "./format";
import { matchPath, withQuery } from "./router";

describe("format", () => {
  it("says when the next grant comes", () => {
    const now = Date.parse("2026-11-24T10:00:00Z");
    expect(fromNow("2026-11-24T10:00:00Z", now)).toBe("now");
    expect(fromNow("2026-11-24T10:01:00Z", now)).toBe("in 1 minute");
    expect(fromNow("2026-11-24T10:45:00Z", now)).toBe("in 45 minutes");
    expect(fromNow("2026-11-25T09:00:00Z", now)).toBe("in 23 hours");
  });

  it("says where a generation is, and that one handed back waits to run again", () => {
    expect(stateInWords({ status: "queued", started_at: null })).toBe("Waiting for a worker…");
    expect(stateInWords({ status: "queued", started_at: "2026-12-02T09:00:00Z" })).toBe("Waiting to run again…");
    expect(stateInWords({ status: "processing", started_at: "2026-12-02T09:00:00Z" })).toBe("Drawing…");
    expect(stateInWords({ status: "failed" })).toBe("Failed");
  });

  it("says how many jobs are ahead of a queued generation", () => {
    expect(queueInWords({ queued_ahead: 0 })).toBe("Next in the queue.");
    expect(queueInWords({ queued_ahead: 1 })).toBe("1 ahead of it in the queue.");
    expect(queueInWords({ queued_ahead: 999 })).toBe("999 ahead of it in the queue.");
    expect(queueInWords({ queued_ahead: 1000 })).toBe("1,000 or more ahead of it in the queue.");
    expect(queueInWords({ queued_ahead: null })).toBe("");
  });

  it("names a device as a person would, from its User-Agent", () => {
    expect(
      deviceName("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"),
    ).toBe("Chrome on Windows");
    expect(
      deviceName("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"),
    ).toBe("Safari on iPhone");
    expect(deviceName("Mozilla/5.0 (Macintosh; Intel Mac OS X 14.7; rv:133.0) Gecko/20100101 Firefox/133.0")).toBe("Firefox on macOS");
    expect(
      deviceName("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0"),
    ).toBe("Edge on Windows");
    expect(deviceName("curl/8.5.0")).toBe("curl");
    expect(deviceName(null)).toBe("Unknown device");
  });

  it("counts prompt characters the way the server does", () => {
    expect(promptLength("a🎨b")).toBe(3);
    expect("a🎨b".length).toBe(4);
  });

  it("formats money and signed deltas", () => {
    expect(money(2000, "usd")).toBe("$20.00");
    expect(signed(5)).toBe("+5");
    expect(signed(-3)).toBe("-3");
  });

  it("names a download as the server names the file, not by a guess", () => {
    expect(extensionOf('inline; filename="easel-0193.png"')).toBe("png");
    expect(extensionOf('inline; filename="easel-0193.jpg"')).toBe("jpg");
    expect(extensionOf('inline; filename="easel-0193-thumb.webp"')).toBe("webp");
    expect(extensionOf('attachment; FILENAME="model.GLB"')).toBe("glb");
    expect(extensionOf('inline; filename="no-extension"')).toBe("bin");
    expect(extensionOf('inline; filename="odd.<script>"')).toBe("bin");
    expect(extensionOf(null)).toBe("bin");
  });
});

describe("router", () => {
  it("matches path patterns", () => {
    expect(matchPath("/images/:id", "/images/abc")).toEqual({ id: "abc" });
    expect(matchPath("/u/:username", "/u/ada%20l")).toEqual({ username: "ada l" });
    expect(matchPath("/images/:id", "/images/abc/edit")).toBeNull();
    expect(matchPath("/collections", "/images")).toBeNull();
  });

  it("builds queries without empty values", () => {
    expect(withQuery("/", { q: "sea", sort: "top", period: "", model: undefined })).toBe("/?q=sea&sort=top");
    expect(withQuery("/images", {})).toBe("/images");
  });
});
