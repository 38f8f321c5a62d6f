// Server-Sent Events over fetch (EventSource cannot send a bearer token): a parser for the wire
// format and a follower that reconnects with Last-Event-ID until the generation ends.
import { session } from "./client";
import type { components } from "./schema";

export type Generation = components["schemas"]["Generation"];

export interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

/** Incremental parser: feed it text as it arrives, get back the events completed so far. */
export class SseParser {
  private buffer = "";
  lastEventId: string | undefined;

  push(chunk: string): SseEvent[] {
    this.buffer += chunk.replace(/\r\n?/g, "\n");
    const events: SseEvent[] = [];
    let end: number;
    while ((end = this.buffer.indexOf("\n\n")) !== -1) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      const event: SseEvent = { event: "message", data: "" };
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (line === "" || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let value = colon === -1 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") data.push(value);
        else if (field === "event") event.event = value;
        else if (field === "id") {
          event.id = value;
          this.lastEventId = value;
        }
      }
      if (data.length === 0) continue;
      event.data = data.join("\n");
      events.push(event);
    }
    return events;
  }
}

/** Every state, in the order a generation moves through them. */
export const STATUSES: components["schemas"]["Status"][] = ["queued", "starting", "processing", "succeeded", "failed", "canceled"];

export const TERMINAL = ["succeeded", "failed", "canceled"] as const;

export function isTerminal(status: string): boolean {
  return (TERMINAL as readonly string[]).includes(status);
}

/**
 * Follows a generation's event stream, calling `onUpdate` with each state, until it ends or
 * `signal` aborts. Reconnects after a dropped connection, resuming from the last event seen.
 */
export async function followGeneration(
  id: string,
  onUpdate: (generation: Generation) => void,
  signal: AbortSignal,
): Promise<void> {
  const parser = new SseParser();
  for (let attempt = 0; !signal.aborted; attempt++) {
    try {
      if (session.stale()) await session.refresh();
      const headers: Record<string, string> = { Accept: "text/event-stream" };
      if (session.token) headers.Authorization = `Bearer ${session.token}`;
      if (parser.lastEventId) headers["Last-Event-ID"] = parser.lastEventId;
      const response = await fetch(`/v1/generations/${id}/events`, { headers, signal });
      if (!response.ok || !response.body) throw new Error(`events: ${response.status}`);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const event of parser.push(value)) {
          const generation = JSON.parse(event.data) as Generation;
          onUpdate(generation);
          if (isTerminal(generation.status)) return;
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      if (attempt > 30) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(500 * 2 ** Math.min(attempt, 4), 5_000)));
  }
}
