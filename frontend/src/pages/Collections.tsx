import { useState, type FormEvent } from "react";
import { api, call, session } from "../api/client";
import type { components } from "../api/schema";
import { ImageGrid } from "../components/images";
import { ApiImage, Empty, ErrorBox, Loading, LoadMore } from "../components/ui";
import { useAction, useLoad, usePaged } from "../lib/hooks";
import { Link, navigate } from "../lib/router";

type Collection = components["schemas"]["Collection"];
type Visibility = components["schemas"]["Visibility"];

export function Collections() {
  const list = usePaged((cursor) => call(api.GET("/v1/collections", { params: { query: { cursor, limit: 50 } } })), []);
  return (
    <section>
      <h1>Collections</h1>
      <CollectionForm
        submitLabel="Create collection"
        onSaved={(c) => list.replace((items) => [c, ...items])}
        save={(body) => call(api.POST("/v1/collections", { body }))}
      />
      <ErrorBox error={list.error} onRetry={list.more} />
      {list.loading && <Loading />}
      {!list.loading && list.items.length === 0 && <Empty>No collections yet. Create one above, then add images from an image's page.</Empty>}
      <ul className="cards">
        {list.items.map((c) => (
          <li key={c.id} className="card">
            <Link to={`/collections/${c.id}`}>
              {/* Mine: the cover may be a private image even in a public collection. */}
              {c.cover_thumb_url && <ApiImage src={c.cover_thumb_url} width={384} height={384} alt="" isPrivate />}
              <strong>{c.name}</strong>
            </Link>
            <span className="muted small">
              {c.image_count} image{c.image_count === 1 ? "" : "s"} · {c.visibility}
            </span>
          </li>
        ))}
      </ul>
      <LoadMore list={list} />
    </section>
  );
}

interface Fields {
  name: string;
  description: string | null;
  visibility: Visibility;
}

function CollectionForm({
  initial,
  submitLabel,
  save,
  onSaved,
}: {
  initial?: Collection;
  submitLabel: string;
  save: (body: Fields) => Promise<Collection>;
  onSaved: (collection: Collection) => void;
}) {
  const [name, setName] = useState(initial?.name ?? "");
  const [description, setDescription] = useState(initial?.description ?? "");
  const [visibility, setVisibility] = useState<Visibility>(initial?.visibility ?? "private");
  const { run: submit, busy, error } = useAction(async (event: FormEvent) => {
    event.preventDefault();
    onSaved(await save({ name: name.trim(), description: description.trim() || null, visibility }));
    if (!initial) {
      setName("");
      setDescription("");
    }
  });
  return (
    <form className="panel" onSubmit={(e) => void submit(e)}>
      <div className="row">
        <label className="grow">
          Name
          <input required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        <label>
          Visibility
          <select value={visibility} onChange={(e) => setVisibility(e.target.value as Visibility)}>
            <option value="private">Private</option>
            <option value="unlisted">Unlisted</option>
            <option value="public">Public (on your page)</option>
          </select>
        </label>
      </div>
      <label>
        Description
        <textarea rows={2} maxLength={1000} value={description} onChange={(e) => setDescription(e.target.value)} />
      </label>
      <ErrorBox error={error} />
      <button type="submit" disabled={busy}>
        {submitLabel}
      </button>
    </form>
  );
}

export function CollectionDetail({ id }: { id: string }) {
  const collection = useLoad(() => call(api.GET("/v1/collections/{id}", { params: { path: { id } } })), [id]);
  const images = usePaged(
    (cursor) => call(api.GET("/v1/collections/{id}/images", { params: { path: { id }, query: { cursor, limit: 24 } } })),
    [id],
  );
  const [editing, setEditing] = useState(false);
  const [error, setError] = useState<unknown>();
  if (collection.error) return <ErrorBox error={collection.error} />;
  if (!collection.data) return <Loading />;
  const c = collection.data;
  const mine = session.user?.username === c.owner.username;
  const remove = async (imageId: string) => {
    try {
      await call(api.DELETE("/v1/collections/{id}/images/{image_id}", { params: { path: { id, image_id: imageId } } }));
      images.replace((items) => items.filter((i) => i.id !== imageId));
      // Its count changes, and so does its cover when this image was it.
      collection.reload();
    } catch (e) {
      setError(e);
    }
  };
  const makeCover = async (imageId: string) => {
    try {
      collection.set(await call(api.PATCH("/v1/collections/{id}", { params: { path: { id } }, body: { cover_image_id: imageId } })));
    } catch (e) {
      setError(e);
    }
  };
  const destroy = async () => {
    if (!window.confirm(`Delete the collection “${c.name}”? Its images stay.`)) return;
    try {
      await call(api.DELETE("/v1/collections/{id}", { params: { path: { id } } }));
      navigate("/collections");
    } catch (e) {
      setError(e);
    }
  };
  return (
    <section>
      <h1>{c.name}</h1>
      <p className="muted">
        by <Link to={`/u/${c.owner.username}`}>@{c.owner.username}</Link> · {c.image_count} image{c.image_count === 1 ? "" : "s"} ·{" "}
        {c.visibility}
      </p>
      {c.description && <p>{c.description}</p>}
      {mine && (
        <div className="actions">
          <button type="button" className="secondary" aria-expanded={editing} onClick={() => setEditing(!editing)}>
            Edit
          </button>
          <button type="button" className="danger" onClick={() => void destroy()}>
            Delete collection
          </button>
        </div>
      )}
      {mine && editing && (
        <CollectionForm
          initial={c}
          submitLabel="Save"
          save={(body) => call(api.PATCH("/v1/collections/{id}", { params: { path: { id } }, body }))}
          onSaved={(saved) => {
            collection.set(saved);
            setEditing(false);
          }}
        />
      )}
      <ErrorBox error={error ?? images.error} />
      <ImageGrid
        images={images.items}
        actions={
          mine
            ? (image) => (
                <>
                  {c.cover_chosen && c.cover_image_id === image.id ? (
                    <span className="muted small">Cover</span>
                  ) : (
                    <button type="button" className="link" onClick={() => void makeCover(image.id)}>
                      Make cover
                    </button>
                  )}
                  <button type="button" className="link" onClick={() => void remove(image.id)}>
                    Remove from collection
                  </button>
                </>
              )
            : undefined
        }
      />
      {images.loading && <Loading />}
      {!images.loading && images.items.length === 0 && <Empty>This collection is empty. Add images from an image's page.</Empty>}
      <LoadMore list={images} />
    </section>
  );
}
