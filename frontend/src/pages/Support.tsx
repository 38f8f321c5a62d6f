import { useState, type FormEvent } from "react";
import { api, call } from "../api/client";
import type { components } from "../api/schema";
import { Empty, ErrorBox, Loading, LoadMore } from "../components/ui";
import { replaceById, useAction, useLoad, usePaged } from "../lib/hooks";
import { STATUSES, isTerminal } from "../api/sse";
import { dateTime } from "../lib/format";
import { Link } from "../lib/router";

type AdminGeneration = components["schemas"]["AdminGeneration"];
type ModerationAction = components["schemas"]["ModerationAction"];
type Status = components["schemas"]["Status"];

interface Filter {
  user: string;
  status: Status | "";
  model: string;
  error_code: string;
}

const NO_FILTER: Filter = { user: "", status: "", model: "", error_code: "" };

/** Support's view of every account's generations (admins only): find one, see how it went, stop it. */
export function Support() {
  const [draft, setDraft] = useState<Filter>(NO_FILTER);
  const [filter, setFilter] = useState<Filter>(NO_FILTER);
  const models = useLoad(() => call(api.GET("/v1/models")).then((list) => list.data), []);
  const list = usePaged(
    (cursor) =>
      call(
        api.GET("/v1/admin/generations", {
          params: {
            query: {
              cursor,
              limit: 50,
              user: filter.user.trim() || undefined,
              status: filter.status || undefined,
              model: filter.model || undefined,
              error_code: filter.error_code.trim() || undefined,
            },
          },
        }),
      ),
    [filter],
  );
  const search = (event: FormEvent) => {
    event.preventDefault();
    setFilter({ ...draft });
  };
  const set = (key: keyof Filter) => (value: string) => setDraft((d) => ({ ...d, [key]: value }));
  return (
    <section>
      <h1>Support</h1>
      <Reports />
      <h2>Generations</h2>
      <p className="muted">Every account&apos;s generations, newest first.</p>
      <form className="row" onSubmit={search} aria-label="Find generations">
        <label className="grow">
          Account
          <input value={draft.user} onChange={(e) => set("user")(e.target.value)} placeholder="Username, email or id" />
        </label>
        <label>
          Status
          <select value={draft.status} onChange={(e) => set("status")(e.target.value)}>
            <option value="">Any</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Model
          <select value={draft.model} onChange={(e) => set("model")(e.target.value)}>
            <option value="">Any</option>
            {models.data?.map((m) => (
              <option key={m.id} value={m.id}>
                {m.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Error code
          <input value={draft.error_code} onChange={(e) => set("error_code")(e.target.value)} placeholder="deadline_exceeded" />
        </label>
        <button type="submit">Find</button>
      </form>
      {filter.user.trim() && <AccountCard key={filter.user.trim()} user={filter.user.trim()} />}
      <ErrorBox error={list.error} onRetry={list.more} />
      {list.items.length > 0 && (
        <table className="ledger">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Account</th>
              <th scope="col">Prompt</th>
              <th scope="col">Status</th>
              <th scope="col">Credits</th>
              <th scope="col">Job</th>
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
      {!list.loading && !list.error && list.items.length === 0 && <Empty>No generations match.</Empty>}
      <LoadMore list={list} />
    </section>
  );
}

function Row({ generation: g, onChange }: { generation: AdminGeneration; onChange: (g: AdminGeneration) => void }) {
  const active = !isTerminal(g.status);
  const cancel = useAction(async () => {
    if (!window.confirm(`Cancel @${g.username}'s generation and refund ${g.credits_charged} credits?`)) return;
    onChange(await call(api.POST("/v1/admin/generations/{id}/cancel", { params: { path: { id: g.id } } })));
  });
  return (
    <tr data-testid="support-row">
      <td>{dateTime(g.created_at)}</td>
      <td>
        <Link to={`/u/${g.username}`}>@{g.username}</Link>
      </td>
      <td>
        {g.prompt}
        <div className="muted small">{g.model}</div>
      </td>
      <td>
        <span data-testid="support-status">{g.status}</span>
        {active && g.progress > 0 && ` (${g.progress}%)`}
        {g.error && (
          <div className="muted small">
            <code>{g.error.code}</code>: {g.error.message}
          </div>
        )}
      </td>
      <td>
        {g.credits_charged}
        {g.credits_refunded > 0 && <span className="pos"> (refunded {g.credits_refunded})</span>}
      </td>
      <td className="small">
        {g.attempts} attempt{g.attempts === 1 ? "" : "s"}
        {g.worker && <div className="muted">on {g.worker}</div>}
        {g.provider_ref && (
          <div className="muted">
            provider <code>{g.provider_ref}</code>
          </div>
        )}
        {active && (
          <div className="muted">
            deadline {dateTime(g.deadline_at)}{" "}
            <button type="button" className="link" disabled={cancel.busy} onClick={() => void cancel.run()}>
              Cancel and refund
            </button>
          </div>
        )}
        <ErrorBox error={cancel.error} />
      </td>
    </tr>
  );
}

/** The account a search named: who it is, its credits, and a switch to shut it or open it again. */
function AccountCard({ user }: { user: string }) {
  const account = useLoad(() => call(api.GET("/v1/admin/users/{user}", { params: { path: { user } } })), [user]);
  const { run: change, busy, error } = useAction(async (disabled: boolean) => {
    const id = account.data?.id;
    if (!id) return;
    if (disabled && !window.confirm("Shut this account? Its sessions end and its API keys stop working.")) return;
    account.set(await call(api.PATCH("/v1/admin/users/{user}", { params: { path: { user: id } }, body: { disabled } })));
  });
  const a = account.data;
  return (
    <div className="panel" data-testid="account-card">
      {account.loading && <Loading />}
      <ErrorBox error={account.error ?? error} />
      {a && (
        <>
          <p>
            <strong>@{a.username}</strong> {a.email ?? "no email"}
            {a.email && !a.email_verified && " (unconfirmed)"} · {a.role} · joined {dateTime(a.created_at)}
            {a.external && " · signs in through the identity provider"}
          </p>
          <p className="muted small">
            {a.purchased_credits} non-expiring and {a.free_credits} free credits · {a.sessions} device
            {a.sessions === 1 ? "" : "s"} signed in
          </p>
          {a.deleted_at ? (
            <p data-testid="account-state">Deleted by its owner {dateTime(a.deleted_at)}.</p>
          ) : a.disabled_at ? (
            <p data-testid="account-state">
              Shut since {dateTime(a.disabled_at)}.{" "}
              <button type="button" className="secondary" disabled={busy} onClick={() => void change(false)}>
                Open account
              </button>
            </p>
          ) : (
            <p data-testid="account-state">
              Open.{" "}
              <button type="button" className="danger" disabled={busy} onClick={() => void change(true)}>
                Shut account
              </button>
            </p>
          )}
        </>
      )}
    </div>
  );
}

/** Images people reported, oldest report first: hide each or keep it. */
function Reports() {
  const queue = usePaged((cursor) => call(api.GET("/v1/admin/reports", { params: { query: { cursor, limit: 20 } } })), []);
  // Decided images stay in the list until the page reloads, so a hide can be taken back at once.
  const [decided, setDecided] = useState<Record<string, string>>({});
  const { run: decide, error } = useAction(async (imageId: string, action: ModerationAction) => {
    const done = await call(api.POST("/v1/admin/images/{id}/moderation", { params: { path: { id: imageId } }, body: { action } }));
    setDecided((d) => ({ ...d, [imageId]: done.resolution }));
  });
  return (
    <section aria-labelledby="reports-heading">
      <h2 id="reports-heading">Reported images</h2>
      <ErrorBox error={queue.error ?? error} onRetry={queue.more} />
      {!queue.loading && queue.items.length === 0 && <Empty>No reports waiting.</Empty>}
      <ul className="keys">
        {queue.items.map((item) => (
          <li key={item.image_id} className="row" data-testid="report">
            {/* Reported images are public or unlisted: their thumbnails need no credentials. */}
            <img src={item.thumb_url} alt={item.title ?? item.prompt} width={64} height={64} className="report-thumb" loading="lazy" />
            <span className="grow">
              <Link to={`/images/${item.image_id}`}>{item.title || item.prompt}</Link> by @{item.owner_username}
              <span className="muted small">
                {" "}
                · {item.reports} report{item.reports === 1 ? "" : "s"}: {item.reasons.join(", ")} · first {dateTime(item.first_reported_at)}
              </span>
              {item.details.map((d, i) => (
                <span key={i} className="muted small">
                  {" "}
                  <q>{d}</q>
                </span>
              ))}
            </span>
            {decided[item.image_id] === "hidden" ? (
              <span data-testid="decision">
                Hidden.{" "}
                <button type="button" className="link" onClick={() => void decide(item.image_id, "restore")}>
                  Undo
                </button>
              </span>
            ) : decided[item.image_id] ? (
              <span data-testid="decision">{decided[item.image_id] === "restored" ? "Shown again." : "Kept."}</span>
            ) : (
              <>
                <button type="button" className="danger" onClick={() => void decide(item.image_id, "hide")}>
                  Hide
                </button>
                <button type="button" className="secondary" onClick={() => void decide(item.image_id, "dismiss")}>
                  Keep
                </button>
              </>
            )}
          </li>
        ))}
      </ul>
      <LoadMore list={queue} />
    </section>
  );
}
