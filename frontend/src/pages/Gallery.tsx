import { useEffect, useState } from "react";
import { api, call } from "../api/client";
import type { components } from "../api/schema";
import { ImageGrid } from "../components/images";
import { Empty, ErrorBox, Loading, LoadMore } from "../components/ui";
import { useLoad, usePaged } from "../lib/hooks";
import { navigate, useLocation, withQuery } from "../lib/router";

type Sort = components["schemas"]["Sort"];
type Period = components["schemas"]["Period"];
type Kind = components["schemas"]["OutputKind"];

export function Gallery() {
  const { query } = useLocation();
  const q = query.get("q") ?? "";
  const sort = (query.get("sort") ?? (q ? "relevance" : "new")) as Sort;
  const period = (query.get("period") ?? "all") as Period;
  const model = query.get("model") ?? "";
  const kind = (query.get("kind") ?? "") as Kind | "";
  const [text, setText] = useState(q);
  useEffect(() => setText(q), [q]);
  const models = useLoad(() => call(api.GET("/v1/models")).then((l) => l.data), []);
  const images = usePaged(
    (cursor) =>
      call(
        api.GET("/v1/gallery", {
          params: {
            query: {
              cursor,
              limit: 24,
              q: q || undefined,
              sort,
              period: sort === "top" ? period : undefined,
              model: model || undefined,
              kind: kind || undefined,
            },
          },
        }),
      ),
    [q, sort, period, model, kind],
  );
  const go = (change: Record<string, string>) => {
    const next: Record<string, string> = { q, sort, period, model, kind, ...change };
    if (!next.q && next.sort === "relevance") next.sort = "new";
    if (next.sort !== "top") next.period = "";
    navigate(withQuery("/", next), { replace: true });
  };
  return (
    <section>
      <h1>Gallery</h1>
      <form
        className="filters row"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          go({ q: text.trim(), sort: text.trim() ? "relevance" : "new" });
        }}
      >
        <label className="grow">
          Search prompts and titles
          <input type="search" value={text} onChange={(e) => setText(e.target.value)} placeholder="lighthouse at dawn" />
        </label>
        <label>
          Sort
          <select value={sort} onChange={(e) => go({ sort: e.target.value })}>
            {q && <option value="relevance">Best match</option>}
            <option value="new">Newest</option>
            <option value="top">Most liked</option>
            <option value="trending">Trending</option>
          </select>
        </label>
        {sort === "top" && (
          <label>
            Period
            <select value={period} onChange={(e) => go({ period: e.target.value })}>
              <option value="day">Today</option>
              <option value="week">This week</option>
              <option value="month">This month</option>
              <option value="all">All time</option>
            </select>
          </label>
        )}
        <label>
          Model
          <select value={model} onChange={(e) => go({ model: e.target.value })}>
            <option value="">All models</option>
            {models.data?.map((m) => (
              <option key={m.id} value={m.id}>
                {m.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Kind
          <select value={kind} onChange={(e) => go({ kind: e.target.value })}>
            <option value="">Everything</option>
            <option value="image">Images</option>
            <option value="model3d">3D models</option>
          </select>
        </label>
        <button type="submit">Search</button>
      </form>
      <ImageGrid images={images.items} />
      <ErrorBox error={images.error} onRetry={images.more} />
      {images.loading && <Loading />}
      {!images.loading && !images.error && images.items.length === 0 && (
        <Empty>{q ? `Nothing public matches “${q}”.` : "No public images yet."}</Empty>
      )}
      <LoadMore list={images} />
    </section>
  );
}
