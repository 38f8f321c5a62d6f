import { useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import { api, call, idempotencyKey, session } from "../api/client";
import { ApiError, credits } from "../api/problem";
import type { components } from "../api/schema";
import { followGeneration, isTerminal, type Generation } from "../api/sse";
import { ApiImage, ErrorBox, Loading, ProgressBar, download } from "../components/ui";
import { AddToCollection } from "./ImageDetail";
import { ModelView } from "../components/model";
import { useLoad } from "../lib/hooks";
import { PROMPT_MAX, dateTime, promptLength, queueInWords, stateInWords } from "../lib/format";
import { Link, useLocation } from "../lib/router";
import { aspectFor, startFromGeneration, startFromImage, type Start } from "../lib/start";

type Model = components["schemas"]["Model"];
type Quote = components["schemas"]["Quote"];
type Visibility = components["schemas"]["Visibility"];

export function Generate() {
  const { query } = useLocation();
  const from = query.get("from");
  const image = query.get("image");
  const models = useLoad(() => call(api.GET("/v1/models")).then((list) => list.data), []);
  const start = useLoad(() => startingPoint(from, image), [from, image]);
  if (models.error) return <ErrorBox error={models.error} onRetry={models.reload} />;
  if (!models.data || start.loading) return <Loading />;
  // A new starting point is a new form.
  return <GenerateForm key={`${from}:${image}`} models={models.data} start={start.data} startError={start.error} />;
}

/** The settings to start from: a generation of mine, or an image (with its generation when mine). */
async function startingPoint(from: string | null, imageId: string | null): Promise<Start | undefined> {
  const generation = (id: string) => call(api.GET("/v1/generations/{id}", { params: { path: { id } } }));
  if (from) {
    const g = await generation(from);
    return startFromGeneration(g, `your generation of ${dateTime(g.created_at)}`);
  }
  if (imageId) {
    const image = await call(api.GET("/v1/images/{id}", { params: { path: { id: imageId } } }));
    const mine = session.user?.username === image.owner.username;
    return startFromImage(image, mine ? await generation(image.generation_id) : undefined);
  }
  return undefined;
}

function GenerateForm({ models, start, startError }: { models: Model[]; start?: Start; startError: unknown }) {
  const offered = models.find((m) => m.id === start?.model);
  const [modelId, setModelId] = useState(offered?.id ?? models[0]?.id ?? "");
  const model = models.find((m) => m.id === modelId) ?? models[0];
  const [prompt, setPrompt] = useState(start?.prompt ?? "");
  const [aspect, setAspect] = useState(model ? aspectFor(model, start) : "1:1");
  const [count, setCount] = useState(start?.numOutputs ?? model?.min_outputs ?? 1);
  const [negative, setNegative] = useState(start?.negativePrompt ?? "");
  const [seed, setSeed] = useState(start?.seed ?? "");
  const [style, setStyle] = useState(start?.style ?? "");
  const [steps, setSteps] = useState(start?.steps ?? "");
  const [guidance, setGuidance] = useState(start?.guidance ?? "");
  const [visibility, setVisibility] = useState<Visibility>(start?.visibility ?? "private");
  const [input, setInput] = useState<Chosen | undefined>(
    start?.input && { id: start.input.id, preview: start.input.url, label: "The earlier input" },
  );
  const [quote, setQuote] = useState<Quote>();
  const [quoteError, setQuoteError] = useState<unknown>();
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const [generation, setGeneration] = useState<Generation>();
  const follow = useRef<AbortController | null>(null);

  // A different model may not offer the current choices: fall back to its defaults.
  useEffect(() => {
    if (!model) return;
    if (!(aspect in model.aspect_ratios)) setAspect(model.default_aspect_ratio);
    if (count < model.min_outputs || count > model.max_outputs) setCount(model.min_outputs);
    if (style && !model.styles.includes(style)) setStyle("");
  }, [model, aspect, count, style]);

  const accepts = (input: components["schemas"]["Input"]) => model?.inputs.includes(input) ?? false;
  const body = useMemo(
    () => ({
      prompt,
      model: modelId,
      aspect_ratio: aspect,
      num_outputs: count,
      negative_prompt: accepts("negative_prompt") && negative.trim() ? negative.trim() : null,
      seed: accepts("seed") && seed !== "" ? Number(seed) : null,
      style: accepts("style") && style ? style : null,
      steps: accepts("steps") && steps !== "" ? Number(steps) : null,
      guidance: accepts("guidance") && guidance !== "" ? Number(guidance) : null,
      visibility,
      image_input: model?.supports_image_input && input ? input.id : null,
    }),
    // `accepts` reads `model`, which is listed.
    [prompt, modelId, aspect, count, negative, seed, style, steps, guidance, visibility, model, input],
  );

  // The cost preview: a dry run whenever the choices that price it change. A model that needs an
  // input image is quoted once one is chosen (the API checks the input in a dry run too).
  const inputId = model?.supports_image_input ? input?.id : undefined;
  useEffect(() => {
    if (model?.image_input === "required" && !inputId) {
      setQuote(undefined);
      setQuoteError(undefined);
      return;
    }
    const timer = setTimeout(() => {
      // Only what prices it: the other choices may lag a model switch by a render.
      const quoteBody = { prompt: "cost preview", model: modelId, num_outputs: count, image_input: inputId ?? null, dry_run: true };
      call(api.POST("/v1/generations", { body: quoteBody }))
        .then((answer) => {
          if ("dry_run" in answer && answer.dry_run) setQuote(answer as Quote);
          setQuoteError(undefined);
        })
        .catch(setQuoteError);
    }, 250);
    return () => clearTimeout(timer);
    // The balance changes when a generation ends: quote again then.
  }, [modelId, count, inputId, generation && isTerminal(generation.status)]);

  useEffect(() => () => follow.current?.abort(), []);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    setGeneration(undefined);
    try {
      const created = (await call(
        api.POST("/v1/generations", { body, params: { header: { "Idempotency-Key": idempotencyKey() } } }),
      )) as Generation;
      setGeneration(created);
      follow.current?.abort();
      const controller = new AbortController();
      follow.current = controller;
      if (!isTerminal(created.status)) {
        await followGeneration(created.id, setGeneration, controller.signal);
      }
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  const length = promptLength(prompt);
  if (!model) return <p>No models are configured on this server.</p>;
  const needsInput = model.image_input === "required" && !input;
  return (
    <section>
      <h1>Generate</h1>
      <ErrorBox error={startError} />
      {start && (
        <p className="hint" data-testid="start">
          Settings from <Link to={start.source.to}>{start.source.label}</Link>.{" "}
          {offered ? "Change anything, then generate." : `${start.model} is no longer offered; choose another model.`}
        </p>
      )}
      <form onSubmit={(e) => void submit(e)} className="generate">
        <div className="field">
          <label htmlFor="prompt">Prompt</label>
          <textarea
            id="prompt"
            required
            rows={4}
            value={prompt}
            maxLength={PROMPT_MAX}
            placeholder="A lighthouse on a cliff at dawn, watercolor"
            onChange={(e) => setPrompt(e.target.value)}
            aria-describedby="prompt-count"
          />
          <span id="prompt-count" className={`hint ${length > PROMPT_MAX ? "bad" : ""}`}>
            {length} / {PROMPT_MAX} characters
          </span>
        </div>
        <fieldset>
          <legend>Model</legend>
          <div className="models">
            {models.map((m) => (
              <label key={m.id} className={`model ${m.id === modelId ? "chosen" : ""}`}>
                <input type="radio" name="model" value={m.id} checked={m.id === modelId} onChange={() => setModelId(m.id)} />
                <span className="model-name">
                  {m.name} {m.is_pro && <span className="tag">Pro</span>}{" "}
                  {m.output_kind === "model3d" && <span className="tag kind">3D</span>}
                  {m.supports_image_input && <span className="tag kind">image in</span>}
                </span>
                <span className="muted small">
                  {credits(m.cost_per_image)} per image · {m.description}
                </span>
              </label>
            ))}
          </div>
          {model.is_pro && <p className="hint">Pro models need purchased credits.</p>}
        </fieldset>
        {model.supports_image_input && (
          <InputPicker
            chosen={input}
            onChoose={setInput}
            required={model.image_input === "required"}
            formats={model.image_formats}
            maxBytes={model.image_max_bytes}
          />
        )}
        <div className="row">
          <label>
            Aspect ratio
            <select value={aspect} onChange={(e) => setAspect(e.target.value)}>
              {Object.entries(model.aspect_ratios).map(([ratio, size]) => (
                <option key={ratio} value={ratio}>
                  {ratio} ({size.join(" × ")})
                </option>
              ))}
            </select>
          </label>
          <label>
            Images
            <select value={count} onChange={(e) => setCount(Number(e.target.value))}>
              {Array.from({ length: model.max_outputs - model.min_outputs + 1 }, (_, i) => model.min_outputs + i).map((n) => (
                <option key={n} value={n}>
                  {n}
                </option>
              ))}
            </select>
          </label>
          <label>
            Visibility
            <select value={visibility} onChange={(e) => setVisibility(e.target.value as Visibility)}>
              <option value="private">Private</option>
              <option value="unlisted">Unlisted (anyone with the link)</option>
              <option value="public">Public (in the gallery)</option>
            </select>
          </label>
        </div>
        {(["negative_prompt", "seed", "style", "steps", "guidance"] as const).some(accepts) && (
          <details open={Boolean(start)}>
            <summary>Advanced</summary>
            {accepts("negative_prompt") && (
              <label>
                Negative prompt
                <input value={negative} maxLength={PROMPT_MAX} onChange={(e) => setNegative(e.target.value)} placeholder="What to leave out" />
              </label>
            )}
            {accepts("seed") && (
              <label>
                Seed
                <input type="number" min={0} step={1} value={seed} onChange={(e) => setSeed(e.target.value)} placeholder="Random" />
                {start && seed === start.seed && <span className="hint">The same seed makes the same images again; clear it for new ones.</span>}
              </label>
            )}
            {accepts("steps") && (
              <label>
                Steps
                <input type="number" min={1} max={200} step={1} value={steps} onChange={(e) => setSteps(e.target.value)} placeholder="Model default" />
              </label>
            )}
            {accepts("guidance") && (
              <label>
                Guidance
                <input type="number" min={0} max={30} step={0.5} value={guidance} onChange={(e) => setGuidance(e.target.value)} placeholder="Model default" />
              </label>
            )}
            {accepts("style") && model.styles.length > 0 && (
              <label>
                Style
                <select value={style} onChange={(e) => setStyle(e.target.value)}>
                  <option value="">None</option>
                  {model.styles.map((s) => (
                    <option key={s} value={s}>
                      {s}
                    </option>
                  ))}
                </select>
              </label>
            )}
          </details>
        )}
        <p className="quote" aria-live="polite" data-testid="quote">
          {quote && quote.model === modelId && quote.num_outputs === count ? (
            <>
              Costs <strong>{credits(quote.credits_needed)}</strong>; you have {credits(quote.credits_available)}.
              {!quote.sufficient && (
                <>
                  {" "}
                  Not enough — <Link to="/pricing">buy credits</Link>.
                </>
              )}
            </>
          ) : quoteError ? (
            <ErrorBox error={quoteError} />
          ) : (
            <>Costs {credits(model.cost_per_image * count)}.</>
          )}
        </p>
        <ErrorBox error={error} />
        <button type="submit" disabled={busy || length === 0 || length > PROMPT_MAX || needsInput}>
          {busy ? "Generating…" : "Generate"}
        </button>
      </form>
      {generation && <Result generation={generation} />}
    </section>
  );
}

function Result({ generation }: { generation: Generation }) {
  const [cancelError, setCancelError] = useState<unknown>();
  const running = !isTerminal(generation.status);
  const cancel = () =>
    call(api.POST("/v1/generations/{id}/cancel", { params: { path: { id: generation.id } } })).catch(setCancelError);
  return (
    <section className="result" aria-live="polite" data-status={generation.status}>
      <h2>{stateInWords(generation)}</h2>
      {running && (
        <>
          {generation.queued_ahead != null && (
            <p className="muted" data-testid="queue">
              {queueInWords(generation)}
            </p>
          )}
          <ProgressBar value={generation.progress} label="Generation progress" />
          <p className="muted small">{generation.progress}%</p>
          <button type="button" className="secondary" onClick={() => void cancel()}>
            Cancel
          </button>
          <ErrorBox error={cancelError} />
        </>
      )}
      {generation.status === "failed" && (
        <div className="error" role="alert">
          <p>{generation.error?.message ?? "The generation failed."}</p>
          <p data-testid="refund">
            {generation.credits_refunded > 0
              ? `${credits(generation.credits_refunded)} refunded to your balance.`
              : "No credits were taken."}
            {generation.error?.retryable && " You can try again."}
          </p>
        </div>
      )}
      {generation.status === "canceled" && (
        <p data-testid="refund">Canceled. {credits(generation.credits_refunded)} refunded to your balance.</p>
      )}
      {generation.status === "succeeded" && (
        <ul className="results">
          {generation.images.map((image, i) => (
            <ResultImage key={image.id} image={image} generation={generation} index={i} />
          ))}
        </ul>
      )}
    </section>
  );
}

interface Chosen {
  id: string;
  preview: string;
  label: string;
}

/** The input image: a new upload (previewed before it is used) or one of my images. */
function InputPicker({
  chosen,
  onChoose,
  required,
  formats,
  maxBytes,
}: {
  chosen?: Chosen;
  onChoose: (chosen?: Chosen) => void;
  required: boolean;
  formats: string[];
  maxBytes: number;
}) {
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const [browsing, setBrowsing] = useState(false);
  const mine = useLoad(
    () =>
      browsing
        ? call(api.GET("/v1/images", { params: { query: { kind: "image", limit: 24 } } })).then((p) => p.data)
        : Promise.resolve([]),
    [browsing],
  );
  const choose = async (file: File | undefined) => {
    if (!file) return;
    setError(undefined);
    if (file.size > maxBytes) {
      setError(new ApiError({ detail: `That file is ${Math.ceil(file.size / 1024)} KB; the limit is ${Math.floor(maxBytes / 1024)} KB.` }, 413));
      return;
    }
    setBusy(true);
    try {
      const form = new FormData();
      form.append("file", file);
      const uploaded = await call(api.POST("/v1/uploads", { body: form as unknown as { file: string } }));
      onChoose({ id: uploaded.id, preview: URL.createObjectURL(file), label: file.name });
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <fieldset className="input-picker">
      <legend>Input image{required ? "" : " (optional)"}</legend>
      {chosen && (
        <div className="row chosen">
          {chosen.preview.startsWith("blob:") ? (
            <img src={chosen.preview} alt={`Input: ${chosen.label}`} width={96} height={96} className="input-preview" />
          ) : (
            <ApiImage src={chosen.preview} width={96} height={96} alt={`Input: ${chosen.label}`} isPrivate className="input-preview" />
          )}
          <span className="grow">{chosen.label}</span>
          <button type="button" className="link" onClick={() => onChoose(undefined)}>
            Remove
          </button>
        </div>
      )}
      <div className="row">
        <label className="grow">
          Upload a photo
          <input type="file" accept={formats.join(",")} disabled={busy} onChange={(e) => void choose(e.target.files?.[0])} />
        </label>
        <button type="button" className="secondary" aria-expanded={browsing} onClick={() => setBrowsing(!browsing)}>
          Choose from my images
        </button>
      </div>
      {busy && <Loading label="Uploading…" />}
      <ErrorBox error={error} />
      {browsing && (
        <ul className="picker-grid" aria-label="My images">
          {mine.data?.map((image) => (
            <li key={image.id}>
              <button
                type="button"
                className="pick"
                aria-label={`Use ${image.title || image.prompt}`}
                onClick={() => {
                  onChoose({ id: image.id, preview: image.thumb_url, label: image.title || image.prompt });
                  setBrowsing(false);
                }}
              >
                <ApiImage src={image.thumb_url} width={image.width} height={image.height} alt="" isPrivate={image.visibility === "private"} />
              </button>
            </li>
          ))}
          {mine.data?.length === 0 && <li className="muted">No images yet.</li>}
        </ul>
      )}
    </fieldset>
  );
}

function ResultImage({
  image,
  generation,
  index,
}: {
  image: components["schemas"]["GeneratedImage"];
  generation: Generation;
  index: number;
}) {
  const [visibility, setVisibility] = useState(generation.visibility);
  const [error, setError] = useState<unknown>();
  const publish = async () => {
    try {
      const updated = await call(
        api.PATCH("/v1/images/{id}", { params: { path: { id: image.id } }, body: { visibility: "public" } }),
      );
      setVisibility(updated.visibility);
    } catch (e) {
      setError(e);
    }
  };
  return (
    <li className="tile">
      {image.kind === "model3d" ? (
        <ModelView src={image.url} isPrivate={visibility === "private"} alt={generation.prompt} />
      ) : (
        <Link to={`/images/${image.id}`}>
          <ApiImage
            src={image.url}
            width={image.width}
            height={image.height}
            alt={generation.prompt}
            isPrivate={visibility === "private"}
          />
        </Link>
      )}
      <div className="actions">
        <button
          type="button"
          className="secondary"
          onClick={() =>
            void download(image.url, `easel-${generation.id}-${index + 1}`).catch(setError)
          }
        >
          {image.kind === "model3d" ? "Download .glb" : "Download"}
        </button>
        {image.kind === "model3d" && <Link to={`/images/${image.id}`}>Details</Link>}
        {visibility !== "public" ? (
          <button type="button" className="secondary" onClick={() => void publish()}>
            Make public
          </button>
        ) : (
          <span className="muted small">Public</span>
        )}
      </div>
      <AddToCollection imageId={image.id} />
      <ErrorBox error={error} />
    </li>
  );
}
