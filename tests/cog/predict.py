"""A small Cog predictor for Easel's tests: draws a PNG with Pillow from the prompt and seed.

Given an `image` (as a data URI or URL; Cog fetches it into a file), it returns that image fitted to
the requested size instead: a plain image-to-image model. Prompts may carry test switches: `[[fail]]` raises (a model failure), `[[slow]]` takes 20 s in
small steps (so cancel and at-capacity can be tested). Progress is printed the way many real models
print it, as `step N/M`, so Easel can parse it from the logs."""

import hashlib
import time
from typing import Optional

from cog import BasePredictor, Input, Path
from PIL import Image, ImageDraw


class Predictor(BasePredictor):
    def predict(
        self,
        prompt: str = Input(description="What to draw"),
        width: int = Input(default=256, ge=64, le=2048),
        height: int = Input(default=256, ge=64, le=2048),
        seed: int = Input(default=0),
        num_outputs: int = Input(default=1, ge=1, le=4),
        image: Optional[Path] = Input(default=None, description="An input image to fit to the size"),
    ) -> list[Path]:
        steps = 40 if "[[slow]]" in prompt else 4
        for step in range(1, steps + 1):
            time.sleep(0.5 if "[[slow]]" in prompt else 0.05)
            print(f"step {step}/{steps}", flush=True)
            if step == 2 and "[[fail]]" in prompt:
                raise RuntimeError("the predictor failed on purpose ([[fail]])")
        outputs = []
        if image is not None:
            fitted = Image.open(image).convert("RGB").resize((width, height))
            path = Path(f"/tmp/easel-cog-input-{hashlib.sha256(fitted.tobytes()).hexdigest()[:16]}.png")
            fitted.save(path)
            return [path]
        for index in range(num_outputs):
            digest = hashlib.sha256(f"{prompt}|{seed + index}".encode()).digest()
            image = Image.new("RGB", (width, height), tuple(digest[0:3]))
            draw = ImageDraw.Draw(image)
            for n in range(8):
                x, y = digest[3 + n] * width // 256, digest[11 + n] * height // 256
                r = 8 + digest[19 + n] % (min(width, height) // 4)
                draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(digest[(n * 3) % 29 : (n * 3) % 29 + 3]))
            path = Path(f"/tmp/easel-cog-{digest.hex()[:16]}.png")
            image.save(path)
            outputs.append(path)
        return outputs
