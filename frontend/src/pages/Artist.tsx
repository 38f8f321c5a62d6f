import { api, call } from "../api/client";
import { ImageGrid } from "../components/images";
import { ApiImage, Empty, ErrorBox, Loading } from "../components/ui";
import { useLoad, usePaged } from "../lib/hooks";
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
      {collections.data && collections.data.length > 0 && (
        <>
          <h2>Collections</h2>
          <ul className="cards">
            {collections.data.map((c) => (
              <li key={c.id} className="card">
                <Link to={`/collections/${c.id}`}>
                  {c.cover_thumb_url && <ApiImage src={c.cover_thumb_url} width={384} height={384} alt="" isPrivate={false} />}
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
      <ErrorBox error={images.error} />
      {images.loading && <Loading />}
      {!images.loading && images.items.length === 0 && <Empty>No public images yet.</Empty>}
      {images.hasMore && !images.loading && images.items.length > 0 && (
        <button type="button" className="secondary" ref={images.sentinel} onClick={images.more}>
          Load more
        </button>
      )}
    </section>
  );
}
