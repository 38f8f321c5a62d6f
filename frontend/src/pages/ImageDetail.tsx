import { useState, type FormEvent } from "react";
import { api, call, session } from "../api/client";
import type { components } from "../api/schema";
import { ApiImage, ErrorBox, Loading, download } from "../components/ui";
import { useAction, useLoad } from "../lib/hooks";
import { dateTime } from "../lib/format";
import { Link, navigate } from "../lib/router";
import { ModelView } from "../components/model";

type Image = components["schemas"]["Image"];
type Visibility = components["schemas"]["Visibility"];

export function ImageDetail({ id }: { id: string }) {
  const image = useLoad(() => call(api.GET("/v1/images/{id}", { params: { path: { id } } })), [id]);
  if (image.error) {
    return (
      <section>
        <h1>Image</h1>
        <ErrorBox error={image.error} />
        <p>
          <Link to="/">Back to the gallery</Link>
        </p>
      </section>
    );
  }
  if (!image.data) return <Loading />;
  return <Detail image={image.data} onChange={image.set} />;
}

function Detail({ image, onChange }: { image: Image; onChange: (image: Image) => void }) {
  const mine = session.user?.username === image.owner.username;
  const [error, setError] = useState<unknown>();
  const like = async () => {
    if (!session.user) {
      navigate(`/login?next=${encodeURIComponent(`/images/${image.id}`)}`);
      return;
    }
    try {
      const path = { params: { path: { id: image.id } } };
      const result = await call(image.liked_by_me ? api.DELETE("/v1/images/{id}/like", path) : api.PUT("/v1/images/{id}/like", path));
      onChange({ ...image, liked_by_me: result.liked, like_count: result.like_count });
    } catch (e) {
      setError(e);
    }
  };
  return (
    <section className="detail">
      <div className="detail-image">
        {image.kind === "model3d" ? (
          <ModelView src={image.url} isPrivate={image.visibility === "private" || image.flagged} alt={image.title || image.prompt} />
        ) : (
          <ApiImage
            src={image.url}
            width={image.width}
            height={image.height}
            alt={image.title || image.prompt}
            isPrivate={image.visibility === "private" || image.flagged}
          />
        )}
      </div>
      <div className="detail-info">
        <h1>{image.title || "Untitled"}</h1>
        <p className="muted">
          by <Link to={`/u/${image.owner.username}`}>{image.owner.display_name || `@${image.owner.username}`}</Link> ·{" "}
          {dateTime(image.created_at)}
        </p>
        <div className="actions">
          <button type="button" className={image.liked_by_me ? "" : "secondary"} aria-pressed={image.liked_by_me} onClick={() => void like()}>
            {image.liked_by_me ? "♥ Liked" : "♡ Like"} · <span data-testid="like-count">{image.like_count}</span>
          </button>
          <button
            type="button"
            className="secondary"
            onClick={() => void download(image.url, `easel-${image.id}`).catch(setError)}
          >
            {image.kind === "model3d" ? "Download .glb" : "Download"}
          </button>
          {session.user && (
            <Link className="button secondary" to={`/generate?image=${image.id}`}>
              Use these settings
            </Link>
          )}
        </div>
        <ErrorBox error={error} />
        <dl>
          <dt>Prompt</dt>
          <dd>{image.prompt}</dd>
          {image.negative_prompt && (
            <>
              <dt>Negative prompt</dt>
              <dd>{image.negative_prompt}</dd>
            </>
          )}
          <dt>Model</dt>
          <dd>{image.model}</dd>
          {image.kind === "model3d" ? (
            <>
              <dt>3D model</dt>
              <dd>
                glTF binary, {(image.byte_size / 1024).toFixed(0)} KB
                {image.vertex_count != null && <>, {image.vertex_count.toLocaleString("en-US")} vertices</>}
              </dd>
            </>
          ) : (
            <>
              <dt>Size</dt>
              <dd>
                {image.width} × {image.height}
              </dd>
            </>
          )}
          <dt>Seed</dt>
          <dd>{image.seed}</dd>
          <dt>Visibility</dt>
          <dd>{image.visibility}</dd>
        </dl>
        {mine && <OwnerControls image={image} onChange={onChange} />}
        {session.user && <AddToCollection imageId={image.id} />}
        {session.user && !mine && <ReportImage imageId={image.id} />}
      </div>
    </section>
  );
}

type ReportReason = components["schemas"]["ReportReason"];
const REASONS: { reason: ReportReason; label: string }[] = [
  { reason: "sexual", label: "Sexual content" },
  { reason: "violent", label: "Violence" },
  { reason: "hateful", label: "Hate or harassment" },
  { reason: "spam", label: "Spam" },
  { reason: "copyright", label: "Someone else's work" },
  { reason: "other", label: "Something else" },
];

/** Tells support about an image that should not be here. */
function ReportImage({ imageId }: { imageId: string }) {
  const [open, setOpen] = useState(false);
  const [reason, setReason] = useState<ReportReason>("sexual");
  const [details, setDetails] = useState("");
  const [sent, setSent] = useState(false);
  const { run: send, busy, error } = useAction(async (event: FormEvent) => {
    event.preventDefault();
    await call(
      api.POST("/v1/images/{id}/reports", {
        params: { path: { id: imageId } },
        body: { reason, details: details.trim() || undefined },
      }),
    );
    setSent(true);
  });
  if (sent) {
    return (
      <p role="status" className="muted small" data-testid="reported">
        Reported. Thank you: support will look at it.
      </p>
    );
  }
  if (!open) {
    return (
      <button type="button" className="link small" onClick={() => setOpen(true)}>
        Report this image
      </button>
    );
  }
  return (
    <form className="panel" onSubmit={(e) => void send(e)} aria-label="Report this image">
      <label>
        What is wrong
        <select value={reason} onChange={(e) => setReason(e.target.value as ReportReason)}>
          {REASONS.map((r) => (
            <option key={r.reason} value={r.reason}>
              {r.label}
            </option>
          ))}
        </select>
      </label>
      <label>
        Details (optional)
        <textarea maxLength={1000} value={details} onChange={(e) => setDetails(e.target.value)} />
      </label>
      <button type="submit" className="danger" disabled={busy}>
        {busy ? "Sending…" : "Send report"}
      </button>
      <ErrorBox error={error} />
    </form>
  );
}

function OwnerControls({ image, onChange }: { image: Image; onChange: (image: Image) => void }) {
  const [title, setTitle] = useState(image.title ?? "");
  const [error, setError] = useState<unknown>();
  const [saved, setSaved] = useState("");
  const update = async (body: components["schemas"]["UpdateImageRequest"], what: string) => {
    setError(undefined);
    try {
      onChange(await call(api.PATCH("/v1/images/{id}", { params: { path: { id: image.id } }, body })));
      setSaved(what);
    } catch (e) {
      setError(e);
    }
  };
  const setAvatar = async () => {
    setError(undefined);
    try {
      session.setUser(await call(api.PATCH("/v1/me", { body: { avatar_image_id: image.id } })));
      setSaved("Avatar set.");
    } catch (e) {
      setError(e);
    }
  };
  const remove = async () => {
    if (!window.confirm("Delete this image? It disappears from every list at once.")) return;
    try {
      await call(api.DELETE("/v1/images/{id}", { params: { path: { id: image.id } } }));
      navigate("/images");
    } catch (e) {
      setError(e);
    }
  };
  return (
    <div className="panel">
      <h2>Yours</h2>
      <label>
        Visibility
        <select
          value={image.visibility}
          onChange={(e) => void update({ visibility: e.target.value as Visibility }, "Visibility saved.")}
        >
          <option value="private">Private (only you)</option>
          <option value="unlisted">Unlisted (anyone with the link)</option>
          <option value="public">Public (in the gallery)</option>
        </select>
      </label>
      <form
        className="row"
        onSubmit={(e) => {
          e.preventDefault();
          void update({ title: title.trim() || null }, "Title saved.");
        }}
      >
        <label className="grow">
          Title
          <input value={title} maxLength={200} onChange={(e) => setTitle(e.target.value)} />
        </label>
        <button type="submit" className="secondary">
          Save title
        </button>
      </form>
      {image.visibility === "public" && (
        <button type="button" className="secondary" onClick={() => void setAvatar()}>
          Use as my avatar
        </button>
      )}
      <p className="muted small" aria-live="polite">
        {saved}
      </p>
      <ErrorBox error={error} />
      <button type="button" className="danger" onClick={() => void remove()}>
        Delete image
      </button>
    </div>
  );
}

/** Adds an image to one of my collections, or removes it, by picking the collection. */
export function AddToCollection({ imageId }: { imageId: string }) {
  const collections = useLoad(
    () => call(api.GET("/v1/collections", { params: { query: { limit: 100 } } })).then((p) => p.data),
    [],
  );
  const [chosen, setChosen] = useState("");
  const [message, setMessage] = useState("");
  const [error, setError] = useState<unknown>();
  const list = collections.data ?? [];
  const target = chosen || list[0]?.id || "";
  const act = async (add: boolean) => {
    setError(undefined);
    setMessage("");
    const path = { params: { path: { id: target, image_id: imageId } } };
    try {
      await call(add ? api.PUT("/v1/collections/{id}/images/{image_id}", path) : api.DELETE("/v1/collections/{id}/images/{image_id}", path));
      const name = list.find((c) => c.id === target)?.name ?? "the collection";
      setMessage(add ? `Added to ${name}.` : `Removed from ${name}.`);
    } catch (e) {
      setError(e);
    }
  };
  if (collections.loading) return null;
  if (list.length === 0) {
    return (
      <p className="muted small">
        <Link to="/collections">Create a collection</Link> to keep images together.
      </p>
    );
  }
  return (
    <div className="collect">
      <div className="row">
        <label className="grow">
          Collection
          <select value={target} onChange={(e) => setChosen(e.target.value)}>
            {list.map((c) => (
              <option key={c.id} value={c.id}>
                {c.name}
              </option>
            ))}
          </select>
        </label>
        <button type="button" className="secondary" onClick={() => void act(true)}>
          Add to collection
        </button>
        <button type="button" className="link" onClick={() => void act(false)}>
          Remove
        </button>
      </div>
      <p className="muted small" aria-live="polite">
        {message}
      </p>
      <ErrorBox error={error} />
    </div>
  );
}
