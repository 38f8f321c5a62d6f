import { api, call } from "../api/client";
import type { components } from "../api/schema";
import { ImageGrid } from "../components/images";
import { Empty, ErrorBox, Loading, LoadMore } from "../components/ui";
import { useLoad, usePaged } from "../lib/hooks";
import { Link, navigate, useLocation, withQuery } from "../lib/router";

type Visibility = components["schemas"]["Visibility"];

export function MyImages() {
  const { query } = useLocation();
  const model = query.get("model") ?? "";
  const visibility = (query.get("visibility") ?? "") as Visibility | "";
  const collection = query.get("collection") ?? "";
  const kind = (query.get("kind") ?? "") as components["schemas"]["OutputKind"] | "";
  const models = useLoad(() => call(api.GET("/v1/models")).then((l) => l.data), []);
  const collections = useLoad(
    () => call(api.GET("/v1/collections", { params: { query: { limit: 100 } } })).then((p) => p.data),
    [],
  );
  const images = usePaged(
    (cursor) =>
      call(
        api.GET("/v1/images", {
          params: {
            query: {
              cursor,
              limit: 24,
              model: model || undefined,
              visibility: visibility || undefined,
              collection: collection || undefined,
              kind: kind || undefined,
            },
          },
        }),
      ),
    [model, visibility, collection, kind],
  );
  const filter = (key: string, value: string) =>
    navigate(withQuery("/images", { model, visibility, collection, kind, [key]: value }), { replace: true });
  return (
    <section>
      <h1>My images</h1>
      <div className="filters row">
        <label>
          Model
          <select value={model} onChange={(e) => filter("model", e.target.value)}>
            <option value="">All models</option>
            {models.data?.map((m) => (
              <option key={m.id} value={m.id}>
                {m.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Visibility
          <select value={visibility} onChange={(e) => filter("visibility", e.target.value)}>
            <option value="">Any</option>
            <option value="private">Private</option>
            <option value="unlisted">Unlisted</option>
            <option value="public">Public</option>
          </select>
        </label>
        <label>
          Kind
          <select value={kind} onChange={(e) => filter("kind", e.target.value)}>
            <option value="">Everything</option>
            <option value="image">Images</option>
            <option value="model3d">3D models</option>
          </select>
        </label>
        <label>
          Collection
          <select value={collection} onChange={(e) => filter("collection", e.target.value)}>
            <option value="">Any</option>
            {collections.data?.map((c) => (
              <option key={c.id} value={c.id}>
                {c.name}
              </option>
            ))}
          </select>
        </label>
      </div>
      <ImageGrid images={images.items} showOwner={false} />
      <ErrorBox error={images.error} onRetry={images.more} />
      {images.loading && <Loading />}
      {!images.loading && !images.error && images.items.length === 0 && (
        <Empty>
          {model || visibility || collection || kind ? (
            "No images match these filters."
          ) : (
            <>
              No images yet. <Link to="/generate">Generate your first one</Link>.
            </>
          )}
        </Empty>
      )}
      <LoadMore list={images} />
    </section>
  );
}
