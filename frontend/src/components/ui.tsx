// Small shared pieces: error and empty states, loading, progress, images that reserve their size.
import { useEffect, useRef, useState, type ReactNode } from "react";
import { errorMessage } from "../api/problem";
import { session } from "../api/client";
import type { Paged } from "../lib/hooks";
import { extensionOf } from "../lib/format";

export function ErrorBox({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  if (!error) return null;
  return (
    <div className="error" role="alert">
      <span>{errorMessage(error)}</span>
      {onRetry && (
        <button type="button" className="link" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function Loading({ label = "Loading…" }: { label?: string }) {
  return (
    <p className="muted" role="status" aria-live="polite">
      {label}
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="empty">{children}</div>;
}

/**
 * The button at the end of a paged list. It is also the list's sentinel: scrolling it into view
 * loads the next page, and clicking it does the same for anyone who cannot scroll.
 */
export function LoadMore({ list }: { list: Pick<Paged<unknown>, "items" | "loading" | "hasMore" | "more" | "sentinel"> }) {
  if (!list.hasMore || list.loading || list.items.length === 0) return null;
  return (
    <button type="button" className="secondary" ref={list.sentinel} onClick={list.more}>
      Load more
    </button>
  );
}

export function ProgressBar({ value, label }: { value: number; label: string }) {
  return (
    <div className="progress" role="progressbar" aria-label={label} aria-valuemin={0} aria-valuemax={100} aria-valuenow={value}>
      <div className="progress-fill" style={{ width: `${Math.max(0, Math.min(100, value))}%` }} />
    </div>
  );
}

/**
 * An image file from the API. Public and unlisted files load directly (and lazily); a private file
 * needs the bearer token, so it is fetched when it scrolls into view and shown from a blob.
 * Width and height reserve the space before the bytes arrive.
 */
export function ApiImage({
  src,
  width,
  height,
  alt,
  isPrivate,
  className,
}: {
  src: string;
  width: number;
  height: number;
  alt: string;
  isPrivate: boolean;
  className?: string;
}) {
  const [blobUrl, setBlobUrl] = useState<string>();
  const ref = useRef<HTMLImageElement>(null);
  useEffect(() => {
    if (!isPrivate || !ref.current) return;
    let url: string | undefined;
    let live = true;
    const load = async () => {
      if (session.stale()) await session.refresh();
      const response = await fetch(src, { headers: session.token ? { Authorization: `Bearer ${session.token}` } : {} });
      if (!response.ok || !live) return;
      url = URL.createObjectURL(await response.blob());
      if (live) setBlobUrl(url);
    };
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) {
        observer.disconnect();
        void load();
      }
    }, { rootMargin: "300px" });
    observer.observe(ref.current);
    return () => {
      live = false;
      observer.disconnect();
      if (url) URL.revokeObjectURL(url);
    };
  }, [src, isPrivate]);
  return (
    <img
      ref={ref}
      className={className}
      src={isPrivate ? blobUrl : src}
      width={width}
      height={height}
      alt={alt}
      loading="lazy"
      decoding="async"
      style={{ aspectRatio: `${width} / ${height}` }}
    />
  );
}

/** Saves a file from the API as `name` plus the extension of its type, with the token when the file is private. */
export async function download(src: string, name: string): Promise<void> {
  if (session.stale()) await session.refresh();
  const response = await fetch(src, { headers: session.token ? { Authorization: `Bearer ${session.token}` } : {} });
  if (!response.ok) throw new Error(`download failed: ${response.status}`);
  const url = URL.createObjectURL(await response.blob());
  const anchor = document.createElement("a");
  anchor.href = url;
  anchor.download = `${name}.${extensionOf(response.headers.get("content-disposition"))}`;
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
