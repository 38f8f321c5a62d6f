import { useState, type FormEvent } from "react";
import { api, call, session } from "../api/client";
import type { components } from "../api/schema";
import { ImageGrid } from "../components/images";
import { ApiImage, Empty, ErrorBox, Loading, LoadMore } from "../components/ui";
import { useAction, useLoad, usePaged } from "../lib/hooks";
import { date } from "../lib/format";
import { Link } from "../lib/router";

export function Artist({ username }: { username: string }) {
  const path = { params: { path: { username } } };
  const profile = useLoad(() => call(api.GET("/v1/users/{username}", path)), [username]);
  const collections = useLoad(
    () => call(api.GET("/v1/users/{username}/collections", { params: { path: { username }, query: { limit: 100 } } })).then((p) => p.data),
    [username],
  );
  const images = usePaged(
    (cursor) => call(api.GET("/v1/users/{username}/images", { params: { path: { username }, query: { cursor, limit: 24 } } })),
    [username],
  );
  if (profile.error) return <ErrorBox error={profile.error} />;
  if (!profile.data) return <Loading />;
  const p = profile.data;
  return (
    <section>
      <header className="profile">
        {p.avatar_url && <img className="avatar" src={p.avatar_url} width={72} height={72} alt="" />}
        <div>
          <h1>{p.display_name || `@${p.username}`}</h1>
          <p className="muted">
            @{p.username} · joined {date(p.joined_at)} · {p.public_images} public image{p.public_images === 1 ? "" : "s"} ·{" "}
            {p.likes_received} like{p.likes_received === 1 ? "" : "s"} received
          </p>
          {p.bio && <p>{p.bio}</p>}
        </div>
      </header>
      {session.user?.username === p.username && <ProfileForm profile={p} onSaved={profile.reload} />}
      {collections.data && collections.data.length > 0 && (
        <>
          <h2>Collections</h2>
          <ul className="cards">
            {collections.data.map((c) => (
              <li key={c.id} className="card">
                <Link to={`/collections/${c.id}`}>
                  {c.cover_thumb_url && <ApiImage src={c.cover_thumb_url} width={384} height={384} alt="" isPrivate={session.user?.username === username} />}
                  <strong>{c.name}</strong>
                </Link>
                <span className="muted small">
                  {c.image_count} image{c.image_count === 1 ? "" : "s"}
                </span>
              </li>
            ))}
          </ul>
        </>
      )}
      <h2>Images</h2>
      <ImageGrid images={images.items} showOwner={false} />
      <ErrorBox error={images.error} onRetry={images.more} />
      {images.loading && <Loading />}
      {!images.loading && images.items.length === 0 && <Empty>No public images yet.</Empty>}
      <LoadMore list={images} />
    </section>
  );
}

/** My display name and bio. The avatar is chosen on one of my public images' page. */
function ProfileForm({ profile, onSaved }: { profile: components["schemas"]["Profile"]; onSaved: () => void }) {
  const [editing, setEditing] = useState(false);
  const [displayName, setDisplayName] = useState(profile.display_name ?? "");
  const [bio, setBio] = useState(profile.bio ?? "");
  const { run: save, busy, error } = useAction(async (event: FormEvent) => {
    event.preventDefault();
    const me = await call(api.PATCH("/v1/me", { body: { display_name: displayName.trim() || null, bio: bio.trim() || null } }));
    session.setUser(me);
    setEditing(false);
    onSaved();
  });
  if (!editing) {
    return (
      <div className="actions">
        <button type="button" className="secondary" onClick={() => setEditing(true)}>
          Edit profile
        </button>
        {!profile.avatar_url && <span className="muted small">To add an avatar, open one of your public images and use it as your avatar.</span>}
      </div>
    );
  }
  return (
    <form className="panel" onSubmit={(e) => void save(e)}>
      <label>
        Display name
        <input maxLength={64} value={displayName} onChange={(e) => setDisplayName(e.target.value)} />
      </label>
      <label>
        Bio
        <textarea rows={3} maxLength={500} value={bio} onChange={(e) => setBio(e.target.value)} />
      </label>
      <ErrorBox error={error} />
      <div className="actions">
        <button type="submit" disabled={busy}>
          Save profile
        </button>
        <button type="button" className="secondary" onClick={() => setEditing(false)}>
          Cancel
        </button>
      </div>
    </form>
  );
}
