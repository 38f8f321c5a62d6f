// Where the Generate form starts from when asked to use earlier settings: a generation of mine
// (`/generate?from=<id>`) or an image I may see (`/generate?image=<id>`).
import type { components } from "../api/schema";

type Generation = components["schemas"]["Generation"];
type Image = components["schemas"]["Image"];
type Model = components["schemas"]["Model"];

export interface Start {
  prompt: string;
  model: string;
  aspectRatio?: string;
  /** An image's pixel size, matched to one of the model's aspect ratios (see `aspectFor`). */
  size?: [number, number];
  numOutputs: number;
  negativePrompt: string;
  seed: string;
  style: string;
  steps: string;
  guidance: string;
  visibility?: components["schemas"]["Visibility"];
  /** The upload or image the generation was given, and where its owner sees it. */
  input?: { id: string; url: string };
  /** What the settings came from, in words, and where to see it. */
  source: { label: string; to: string };
}

const text = (value: number | string | null | undefined) => (value == null ? "" : String(value));

/** Every input of a generation of mine: the same seed makes the same images again. */
export function startFromGeneration(g: Generation, label: string): Start {
  return {
    prompt: g.prompt,
    model: g.model,
    aspectRatio: g.aspect_ratio,
    numOutputs: g.num_outputs,
    negativePrompt: text(g.negative_prompt),
    seed: text(g.seed),
    style: text(g.style),
    steps: text(g.steps),
    guidance: text(g.guidance),
    visibility: g.visibility,
    input: g.image_input && g.image_input_url ? { id: g.image_input, url: g.image_input_url } : undefined,
    source: { label, to: g.images[0] ? `/images/${g.images[0].id}` : "/history" },
  };
}

/**
 * One image made again: its prompt, model, size and own seed, one output. With its generation (when
 * it is mine) the settings an image does not show come along too: style, steps, guidance, input.
 */
export function startFromImage(image: Image, generation?: Generation): Start {
  const base = generation ? startFromGeneration(generation, "") : undefined;
  return {
    ...base,
    prompt: image.prompt,
    model: image.model,
    aspectRatio: base?.aspectRatio,
    size: [image.width, image.height],
    numOutputs: 1,
    negativePrompt: text(image.negative_prompt),
    seed: text(image.seed),
    style: base?.style ?? "",
    steps: base?.steps ?? "",
    guidance: base?.guidance ?? "",
    source: { label: image.title ? `“${image.title}”` : "this image", to: `/images/${image.id}` },
  };
}

/** The model's aspect ratio for the start: as asked, else the one whose size is the image's. */
export function aspectFor(model: Model, start: Start | undefined): string {
  if (start?.aspectRatio && start.aspectRatio in model.aspect_ratios) return start.aspectRatio;
  const size = start?.size;
  if (size) {
    const found = Object.entries(model.aspect_ratios).find(([, [w, h]]) => w === size[0] && h === size[1]);
    if (found) return found[0];
  }
  return model.default_aspect_ratio;
}
