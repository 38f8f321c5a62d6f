// A 3D model in an interactive viewer (@google/model-viewer, bundled and served by us, loaded only
// when a model is shown). Private files are fetched with the token and shown from a blob.
import { createElement, useEffect, useState } from "react";
import { session } from "../api/client";
import { ErrorBox, Loading } from "./ui";

let viewerLoaded: Promise<unknown> | undefined;

function loadViewer(): Promise<unknown> {
  viewerLoaded ??= import("@google/model-viewer");
  return viewerLoaded;
}

export function ModelView({ src, isPrivate, alt, poster }: { src: string; isPrivate: boolean; alt: string; poster?: string }) {
  const [url, setUrl] = useState<string>();
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    let live = true;
    let blob: string | undefined;
    const load = async () => {
      await loadViewer();
      if (!isPrivate) {
        if (live) setUrl(src);
        return;
      }
      if (session.stale()) await session.refresh();
      const response = await fetch(src, { headers: session.token ? { Authorization: `Bearer ${session.token}` } : {} });
      if (!response.ok) throw new Error(`model: ${response.status}`);
      blob = URL.createObjectURL(await response.blob());
      if (live) setUrl(blob);
    };
    load().catch((e: unknown) => live && setError(e));
    return () => {
      live = false;
      if (blob) URL.revokeObjectURL(blob);
    };
  }, [src, isPrivate]);
  if (error) return <ErrorBox error={error} />;
  if (!url) return <Loading label="Loading the 3D viewer…" />;
  // A custom element: React passes these through as attributes.
  return createElement("model-viewer", {
    src: url,
    alt,
    poster,
    loading: "eager",
    "camera-controls": "",
    "auto-rotate": "",
    "shadow-intensity": "0.6",
    "interaction-prompt": "none",
    class: "viewer",
    "data-testid": "model-viewer",
  });
}
