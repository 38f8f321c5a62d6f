import { describe, expect, it } from "vitest";
import { SseParser, isTerminal } from "./sse";

describe("SseParser", () => {
  it("assembles events split across chunks and remembers the last id", () => {
    const parser = new SseParser();
    expect(parser.push("id: queued:0\nevent: generation\ndata: {\"status\":")).toEqual([]);
    const events = parser.push("\"queued\"}\n\n: keep-alive\n\nid: processing:40\r\nevent: generation\r\ndata: {\"status\":\"processing\"}\r\n\r\n");
    expect(events).toEqual([
      { id: "queued:0", event: "generation", data: '{"status":"queued"}' },
      { id: "processing:40", event: "generation", data: '{"status":"processing"}' },
    ]);
    expect(parser.lastEventId).toBe("processing:40");
  });

  it("joins multi-line data and ignores blocks without data", () => {
    const parser = new SseParser();
    expect(parser.push("event: ping\n\ndata: a\ndata: b\n\n")).toEqual([{ event: "message", data: "a\nb" }]);
  });

  it("knows the terminal states", () => {
    expect(["succeeded", "failed", "canceled"].every(isTerminal)).toBe(true);
    expect(["queued", "starting", "processing"].some(isTerminal)).toBe(false);
  });
});
