// Grids of image thumbnails, shared by My images, the gallery, artist pages and collections.
import type { ReactNode } from "react";
import type { components } from "../api/schema";
import { Link } from "../lib/router";
import { ApiImage } from "./ui";

export type Image = components["schemas"]["Image"];

export function ImageGrid({
  images,
  showOwner = true,
  actions,
}: {
  images: Image[];
  showOwner?: boolean;
  actions?: (image: Image) => ReactNode;
}) {
  return (
    <ul className="grid" aria-label="Images">
      {images.map((image) => (
        <li key={image.id} className="tile">
          <Link to={`/images/${image.id}`} aria-label={image.title || image.prompt} className="tile-link">
            {image.kind === "model3d" && <span className="badge">3D</span>}
            <ApiImage
              src={image.thumb_url}
              width={image.width}
              height={image.height}
              alt={image.title || image.prompt}
              isPrivate={image.visibility === "private" || image.flagged}
            />
          </Link>
          <div className="tile-meta">
            <span className="tile-title" title={image.prompt}>
              {image.title || image.prompt}
            </span>
            <span className="muted small">
              {showOwner && (
                <>
                  <Link to={`/u/${image.owner.username}`}>@{image.owner.username}</Link> ·{" "}
                </>
              )}
              ♥ {image.like_count}
              {image.visibility !== "public" && <> · {image.visibility}</>}
            </span>
            {actions?.(image)}
          </div>
        </li>
      ))}
    </ul>
  );
}
