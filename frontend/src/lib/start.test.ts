import { describe, expect, it } from "vitest";
import type { components } from "../api/schema";
import { aspectFor, startFromGeneration, startFromImage } from "./start";

type Generation = components["schemas"]["Generation"];
type Image = components["schemas"]["Image"];
type Model = components["schemas"]["Model"];

const generation: Generation = {
  id: "g1",
  status: "succeeded",
  model: "easel-restyle",
  prompt: "in autumn colours",
  negative_prompt: "people",
  aspect_ratio: "4:3",
  width: 640,
  height: 480,
  num_outputs: 2,
  seed: 40,
  style: "ink",
  steps: null,
  guidance: 7.5,
  image_input: "u1",
  image_input_url: "/v1/uploads/u1/file",
  visibility: "unlisted",
  credits_charged: 2,
  credits_refunded: 0,
  error: null,
  images: [{ id: "i1", kind: "image", width: 640, height: 480, url: "/a", thumb_url: "/b" }],
  progress: 100,
  created_at: "2026-12-02T08:00:00Z",
};

const image = {
  id: "i2",
  generation_id: "g1",
  model: "easel-restyle",
  prompt: "in autumn colours",
  negative_prompt: null,
  title: "Autumn",
  width: 640,
  height: 480,
  seed: 41,
} as Image;

const model = {
  id: "easel-restyle",
  aspect_ratios: { "1:1": [512, 512], "4:3": [640, 480], "3:4": [480, 640] },
  default_aspect_ratio: "1:1",
} as unknown as Model;

describe("starting from earlier settings", () => {
  it("takes every input of a generation, its seed and its input image", () => {
    const start = startFromGeneration(generation, "your generation");
    expect(start).toMatchObject({
      prompt: "in autumn colours",
      model: "easel-restyle",
      aspectRatio: "4:3",
      numOutputs: 2,
      negativePrompt: "people",
      seed: "40",
      style: "ink",
      steps: "",
      guidance: "7.5",
      visibility: "unlisted",
      input: { id: "u1", url: "/v1/uploads/u1/file" },
      source: { label: "your generation", to: "/images/i1" },
    });
  });

  it("makes one image again with its own seed, and my generation's other settings", () => {
    const theirs = startFromImage(image);
    expect(theirs).toMatchObject({ prompt: "in autumn colours", seed: "41", numOutputs: 1, style: "", negativePrompt: "" });
    expect(theirs.input).toBeUndefined();
    expect(theirs.source).toEqual({ label: "“Autumn”", to: "/images/i2" });
    const mine = startFromImage(image, generation);
    expect(mine).toMatchObject({ seed: "41", numOutputs: 1, style: "ink", guidance: "7.5", visibility: "unlisted" });
    expect(mine.input).toEqual({ id: "u1", url: "/v1/uploads/u1/file" });
  });

  it("picks the aspect ratio asked for, else the image's size, else the model's default", () => {
    expect(aspectFor(model, startFromGeneration(generation, ""))).toBe("4:3");
    expect(aspectFor(model, { ...startFromImage(image), size: [480, 640] })).toBe("3:4");
    expect(aspectFor(model, { ...startFromImage(image), size: [100, 100] })).toBe("1:1");
    expect(aspectFor(model, { ...startFromGeneration(generation, ""), aspectRatio: "16:9" })).toBe("1:1");
    expect(aspectFor(model, undefined)).toBe("1:1");
  });
});
