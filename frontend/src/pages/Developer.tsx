import { useState, type FormEvent } from "react";
import { api, call } from "../api/client";
import type { components } from "../api/schema";
import { Empty, ErrorBox, Loading } from "../components/ui";
import { usePaged } from "../lib/hooks";
import { dateTime } from "../lib/format";

type Scope = components["schemas"]["Scope"];
const SCOPES: { scope: Scope; help: string }[] = [
  { scope: "generate", help: "create generations, change images and collections" },
  { scope: "read", help: "read images, generations, credits" },
  { scope: "billing", help: "start checkouts, list purchases" },
];

export function Developer() {
  const keys = usePaged((cursor) => call(api.GET("/v1/me/api-keys", { params: { query: { cursor, limit: 100 } } })), []);
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState<Scope[]>(["generate", "read"]);
  const [created, setCreated] = useState<string>();
  const [copied, setCopied] = useState(false);
  const [error, setError] = useState<unknown>();
  const create = async (event: FormEvent) => {
    event.preventDefault();
    setError(undefined);
    try {
      const key = await call(api.POST("/v1/me/api-keys", { body: { name: name.trim(), scopes } }));
      setCreated(key.key);
      setCopied(false);
      setName("");
      keys.replace((items) => [key, ...items]);
    } catch (e) {
      setError(e);
    }
  };
  const revoke = async (id: string) => {
    if (!window.confirm("Revoke this key? Programs using it stop working at once.")) return;
    try {
      await call(api.DELETE("/v1/me/api-keys/{id}", { params: { path: { id } } }));
      keys.replace((items) => items.filter((k) => k.id !== id));
    } catch (e) {
      setError(e);
    }
  };
  const [secret, setSecret] = useState<string>();
  const [secretError, setSecretError] = useState<unknown>();
  const showSecret = async (rotate: boolean) => {
    if (rotate && !window.confirm("Replace the signing secret? Receivers checking the old one will refuse new deliveries.")) return;
    setSecretError(undefined);
    try {
      const answer = rotate
        ? await call(api.POST("/v1/me/webhook-secret/rotate"))
        : await call(api.GET("/v1/me/webhook-secret"));
      setSecret(answer.secret);
    } catch (e) {
      setSecretError(e);
    }
  };
  const origin = window.location.origin;
  return (
    <section>
      <h1>Developer</h1>
      <p>
        API keys let your programs use Easel. The reference is at <a href="/docs/">/docs/</a>.
      </p>
      <form className="panel" onSubmit={(e) => void create(e)}>
        <label>
          Key name
          <input required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} placeholder="my script" />
        </label>
        <fieldset>
          <legend>Scopes</legend>
          {SCOPES.map(({ scope, help }) => (
            <label key={scope} className="check">
              <input
                type="checkbox"
                checked={scopes.includes(scope)}
                onChange={(e) => setScopes(e.target.checked ? [...scopes, scope] : scopes.filter((s) => s !== scope))}
              />
              <span>
                <code>{scope}</code> — {help}
              </span>
            </label>
          ))}
        </fieldset>
        <ErrorBox error={error} />
        <button type="submit" disabled={scopes.length === 0}>
          Create key
        </button>
      </form>
      {created && (
        <div className="notice" role="status">
          <p>Copy this key now: it is shown only once.</p>
          <div className="row">
            <code className="secret" data-testid="new-key">
              {created}
            </code>
            <button
              type="button"
              className="secondary"
              onClick={() => void navigator.clipboard?.writeText(created).then(() => setCopied(true))}
            >
              {copied ? "Copied" : "Copy"}
            </button>
          </div>
        </div>
      )}
      <h2>Your keys</h2>
      {keys.loading && <Loading />}
      <ErrorBox error={keys.error} />
      {!keys.loading && keys.items.length === 0 && <Empty>No keys yet.</Empty>}
      <ul className="keys">
        {keys.items.map((k) => (
          <li key={k.id} className="row">
            <span className="grow">
              <strong>{k.name}</strong>{" "}
              <code>
                {k.prefix}…{k.last_four}
              </code>
              <span className="muted small">
                {" "}
                {k.scopes.join(", ")} · created {dateTime(k.created_at)}
                {k.last_used_at ? ` · last used ${dateTime(k.last_used_at)}` : " · never used"}
              </span>
            </span>
            <button type="button" className="danger" onClick={() => void revoke(k.id)}>
              Revoke
            </button>
          </li>
        ))}
      </ul>
      <h2>Webhooks</h2>
      <p>
        Add <code>"webhook_url": "https://…"</code> to a generation and Easel POSTs it there when it ends, as{" "}
        <code>generation.completed</code>, signed the{" "}
        <a href="https://www.standardwebhooks.com" rel="noreferrer">
          Standard Webhooks
        </a>{" "}
        way with this secret. A delivery the receiver does not take is tried again, for hours.
      </p>
      <div className="row">
        {secret ? (
          <code className="secret" data-testid="webhook-secret">
            {secret}
          </code>
        ) : (
          <button type="button" className="secondary" onClick={() => void showSecret(false)}>
            Show signing secret
          </button>
        )}
        {secret && (
          <button type="button" className="danger" onClick={() => void showSecret(true)}>
            Replace secret
          </button>
        )}
      </div>
      <ErrorBox error={secretError} />
      <h2>Try it</h2>
      <pre className="code">{`curl -X POST ${origin}/v1/generations \\
  -H "Authorization: Bearer ${created ?? "YOUR_KEY"}" \\
  -H "Content-Type: application/json" \\
  -H "Prefer: wait=30" \\
  -d '{"prompt": "a lighthouse at dawn", "model": "easel-sketch"}'`}</pre>
      <p className="muted small">
        Or, without waiting: add <code>"webhook_url": "https://example.com/hooks/easel"</code> and answer 2xx there.
      </p>
    </section>
  );
}
