import { useState } from "react";
import { api, call } from "../api/client";
import type { components } from "../api/schema";
import { Empty, ErrorBox, Loading, LoadMore } from "../components/ui";
import { replaceById, useAction, usePaged } from "../lib/hooks";
import { STATUSES, isTerminal } from "../api/sse";
import { dateTime, queueInWords } from "../lib/format";
import { Link } from "../lib/router";

type Status = components["schemas"]["Status"];
type Generation = components["schemas"]["Generation"];

/** Every generation of mine, including those that failed or were canceled, with what each cost. */
export function History() {
  const [status, setStatus] = useState<Status | "">("");
  const list = usePaged(
    (cursor) => call(api.GET("/v1/generations", { params: { query: { cursor, limit: 50, status: status || undefined } } })),
    [status],
  );
  return (
    <section>
      <h1>History</h1>
      <label>
        Status
        <select value={status} onChange={(e) => setStatus(e.target.value as Status | "")}>
          <option value="">All</option>
          {STATUSES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </label>
      <ErrorBox error={list.error} onRetry={list.more} />
      {list.items.length > 0 && (
        <table className="ledger">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Prompt</th>
              <th scope="col">Model</th>
              <th scope="col">Status</th>
              <th scope="col">Credits</th>
            </tr>
          </thead>
          <tbody>
            {list.items.map((g) => (
              <Row key={g.id} generation={g} onChange={(next) => list.replace(replaceById(next))} />
            ))}
          </tbody>
        </table>
      )}
      {list.loading && <Loading />}
      {!list.loading && !list.error && list.items.length === 0 && (
        <Empty>
          {status ? `No ${status} generations.` : "Nothing generated yet."} <Link to="/generate">Generate an image</Link>.
        </Empty>
      )}
      <LoadMore list={list} />
    </section>
  );
}

function Row({ generation: g, onChange }: { generation: Generation; onChange: (g: Generation) => void }) {
  const active = !isTerminal(g.status);
  const cancel = useAction(async () => {
    onChange(await call(api.POST("/v1/generations/{id}/cancel", { params: { path: { id: g.id } } })));
  });
  return (
    <tr>
      <td>{dateTime(g.created_at)}</td>
      <td>
        {g.images[0] ? <Link to={`/images/${g.images[0].id}`}>{g.prompt}</Link> : g.prompt}
        {g.error && <div className="muted small">{g.error.message}</div>}
        <div className="small">
          <Link to={`/generate?from=${g.id}`} aria-label={`Use the settings of “${g.prompt}” again`}>
            Use these settings
          </Link>
        </div>
      </td>
      <td>{g.model}</td>
      <td>
        <span data-testid="generation-status">{g.status}</span>
        {active && g.progress > 0 && ` (${g.progress}%)`}
        {g.queued_ahead != null && <div className="muted small">{queueInWords(g)}</div>}
        {active && (
          <div>
            <button type="button" className="link" disabled={cancel.busy} onClick={() => void cancel.run()} aria-label={`Cancel “${g.prompt}”`}>
              Cancel
            </button>
          </div>
        )}
        <ErrorBox error={cancel.error} />
      </td>
      <td>
        {g.credits_charged}
        {g.credits_refunded > 0 && <span className="pos"> (refunded {g.credits_refunded})</span>}
      </td>
    </tr>
  );
}
