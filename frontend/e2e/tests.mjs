// The end-to-end journeys. Each gets `newPage` (a fresh browser profile per call), and `shot` to
// save a screenshot under target/e2e/.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

const unique = () => `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

async function signUp(page, name) {
  await page.goto("/signup");
  await page.getByLabel("Email").fill(`${name}@example.com`);
  await page.getByLabel("Username").fill(name);
  await page.getByLabel("Password").fill(`password-${name}`);
  await page.getByRole("button", { name: "Create account" }).click();
  await page.getByRole("heading", { name: "Generate" }).waitFor();
}

/** What an authenticator app shows for a base32 `key`, `offset` 30-second steps from now (RFC 6238). */
function authenticatorCode(key, offset = 0) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of key.replace(/\s/g, "")) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const bytes = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const step = Buffer.alloc(8);
  step.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 30000) + offset));
  const mac = createHmac("sha1", bytes).update(step).digest();
  const at = mac[19] & 15;
  return String((mac.readUInt32BE(at) & 0x7fffffff) % 1000000).padStart(6, "0");
}

/** Signs in with the password; stops at the second step when the account asks for a code. */
async function signIn(page, name) {
  await page.goto("/login");
  await page.getByLabel("Email").fill(`${name}@example.com`);
  await page.getByLabel("Password").fill(`password-${name}`);
  await page.getByRole("button", { name: "Sign in" }).click();
}

/** Generates from the Generate page and waits for the end; returns the progress values seen. */
async function generate(page, prompt, { visibility } = {}) {
  await page.getByLabel("Prompt", { exact: true }).fill(prompt);
  if (visibility) await page.getByLabel("Visibility").selectOption(visibility);
  await page.getByTestId("quote").getByText(/you have/).waitFor();
  await page.getByRole("button", { name: "Generate", exact: true }).click();
  const seen = new Set();
  const result = page.locator("section.result");
  await result.waitFor();
  for (let i = 0; i < 400; i++) {
    const status = await result.getAttribute("data-status");
    if (["succeeded", "failed", "canceled"].includes(status)) return { status, seen };
    const value = await page.getByRole("progressbar").getAttribute("aria-valuenow").catch(() => null);
    if (value !== null) seen.add(Number(value));
    await page.waitForTimeout(50);
  }
  throw new Error("the generation did not finish");
}

/**
 * The link to `page` (`reset-password`, `confirm-email`) mailed to `email`: without SMTP the
 * development server writes each message to E2E_MAIL_DIR as an .eml file, its body
 * quoted-printable.
 */
async function linkMailedTo(email, page) {
  const dir = process.env.E2E_MAIL_DIR ?? "target/e2e-data/mail";
  for (let i = 0; i < 200; i++) {
    let names = [];
    try {
      names = readdirSync(dir).filter((n) => n.endsWith(".eml"));
    } catch {
      // Not made yet: the first message makes it.
    }
    for (const name of names) {
      const raw = readFileSync(join(dir, name), "utf8");
      if (!raw.includes(`To: ${email}`)) continue;
      const text = raw.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
      const link = new RegExp(`https?://\\S+/${page}\\?token=[A-Za-z0-9_-]+`).exec(text)?.[0];
      if (link) return link;
    }
    await new Promise((done) => setTimeout(done, 50));
  }
  throw new Error(`no mail with a ${page} link for ${email} in ${dir}`);
}

export const tests = {
  async "upload a photo, turn it into 3D, rotate it, download the .glb"({ newPage, shot }) {
    const page = await newPage();
    await signUp(page, `mo${unique()}`);
    await page.getByRole("radio", { name: /Easel Relief 3D/ }).check();
    await page.getByLabel("Prompt", { exact: true }).fill("a dome of light");
    const uploaded = page.waitForResponse((r) => r.url().endsWith("/v1/uploads") && r.status() === 201);
    await page.getByLabel("Upload a photo").setInputFiles({
      name: "dome.png",
      mimeType: "image/png",
      buffer: readFileSync(new URL("./fixtures/dome.png", import.meta.url)),
    });
    await page.getByRole("img", { name: "Input: dome.png" }).waitFor();
    const inputId = (await (await uploaded).json()).id;
    const { status } = await generate(page, "a dome of light");
    assert.equal(status, "succeeded");
    // The viewer loads the model (WebGL in software) and can be turned by dragging.
    const viewer = page.getByTestId("model-viewer");
    await viewer.waitFor();
    await viewer.scrollIntoViewIfNeeded();
    await page.waitForFunction(() => document.querySelector("model-viewer")?.loaded === true, null, { timeout: 30_000 });
    const before = await viewer.evaluate((v) => v.getCameraOrbit().theta);
    const box = await viewer.boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width / 2 + 120, box.y + box.height / 2, { steps: 8 });
    await page.mouse.up();
    const after = await viewer.evaluate((v) => v.getCameraOrbit().theta);
    assert.notEqual(after, before, "dragging rotates the model");
    await shot(page, "model3d-viewer");

    const download = page.waitForEvent("download");
    await page.getByRole("button", { name: "Download .glb" }).click();
    const file = await download;
    assert.match(file.suggestedFilename(), /\.glb$/);
    const bytes = readFileSync(await file.path());
    assert.equal(bytes.subarray(0, 4).toString("latin1"), "glTF");

    // Someone else cannot use that photo as an input.
    const other = await newPage();
    const signedUp = other.waitForResponse((r) => r.url().endsWith("/v1/auth/signup"));
    await signUp(other, `eve${unique()}`);
    const eveToken = (await (await signedUp).json()).access_token;
    const stolen = await other.request.post("/v1/generations", {
      headers: { Authorization: `Bearer ${eveToken}` },
      data: { prompt: "mine now", model: "easel-relief-3d", image_input: inputId },
    });
    assert.equal(stolen.status(), 404);
    assert.equal((await stolen.json()).code, "not_found");
  },

  async "generate, publish, like, collect, artist page"({ newPage, shot }) {
    const ada = `ada${unique()}`;
    const page = await newPage();
    await signUp(page, ada);

    // Generate, watching the progress bar move.
    const { status, seen } = await generate(page, "a lighthouse on a cliff at dawn");
    assert.equal(status, "succeeded");
    assert.ok([...seen].some((v) => v > 0 && v < 100), `progress seen: ${[...seen]}`);
    const result = page.locator(".results img").first();
    await result.waitFor();
    await page.waitForFunction(() => document.querySelector(".results img")?.naturalWidth > 0);
    await shot(page, "generate-result");
    const saved = page.waitForEvent("download");
    await page.getByRole("button", { name: "Download", exact: true }).click();
    const png = await saved;
    assert.match(png.suggestedFilename(), /^easel-[0-9a-f-]+-1\.png$/);
    assert.equal(readFileSync(await png.path()).subarray(1, 4).toString("latin1"), "PNG");

    // The session survives a reload (silent refresh from the cookie).
    await page.reload();
    await page.getByRole("link", { name: `@${ada}` }).waitFor();

    // My images shows it; open it and make it public, with a title.
    await page.getByRole("link", { name: "My images" }).click();
    const tile = page.locator(".grid .tile").first();
    await tile.waitFor();
    await page.waitForFunction(() => document.querySelector(".grid img")?.naturalWidth > 0);
    await tile.locator("a").first().click();
    await page.getByRole("heading", { name: "Untitled" }).waitFor();
    await page.getByLabel("Title").fill("Dawn light");
    await page.getByRole("button", { name: "Save title" }).click();
    await page.getByRole("heading", { name: "Dawn light" }).waitFor();
    await page.getByLabel("Visibility").selectOption("public");
    await page.getByText("Visibility saved.").waitFor();
    const imageUrl = page.url();

    // A collection, public, holding the image.
    await page.getByRole("link", { name: "Collections" }).click();
    await page.getByLabel("Name").fill("Seascapes");
    await page.getByLabel("Visibility").selectOption("public");
    await page.getByRole("button", { name: "Create collection" }).click();
    await page.getByRole("link", { name: "Seascapes" }).waitFor();
    await page.goto(imageUrl);
    await page.getByRole("button", { name: "Use as my avatar" }).click();
    await page.getByText("Avatar set.").waitFor();
    await page.getByRole("button", { name: "Add to collection" }).click();
    await page.getByText("Added to Seascapes.").waitFor();
    // Its newest image stands in as the cover until one is chosen; then the chosen one is marked.
    await page.getByRole("link", { name: "Collections" }).click();
    await page.locator(".cards .card img").first().waitFor();
    await page.getByRole("link", { name: "Seascapes" }).click();
    await page.getByRole("button", { name: "Make cover" }).click();
    await page.getByText("Cover", { exact: true }).waitFor();
    assert.equal(await page.getByRole("button", { name: "Make cover" }).count(), 0);

    // Another person finds it in the gallery and likes it.
    const bob = `bob${unique()}`;
    const other = await newPage();
    await signUp(other, bob);
    await other.getByRole("link", { name: "Gallery" }).click();
    await other.getByRole("link", { name: "Dawn light" }).first().click();
    await other.getByRole("heading", { name: "Dawn light" }).waitFor();
    await other.getByRole("button", { name: /Like/ }).click();
    await other.getByRole("button", { name: /Liked/ }).waitFor();
    assert.equal(await other.getByTestId("like-count").textContent(), "1");
    await shot(other, "image-detail-liked");

    // Search finds it by title.
    await other.getByRole("link", { name: "Gallery" }).click();
    await other.getByLabel("Search prompts and titles").fill("lighthouse");
    await other.getByRole("button", { name: "Search" }).click();
    await other.getByRole("link", { name: "Dawn light" }).first().waitFor();

    // The artist page shows the image, the collection and the like received.
    await other.getByRole("link", { name: `@${ada}` }).first().click();
    await other.getByRole("heading", { name: `@${ada}` }).waitFor();
    await other.getByText("1 like received").waitFor();
    await other.getByRole("link", { name: "Dawn light" }).waitFor();
    await other.getByRole("link", { name: "Seascapes" }).waitFor();
    await other.waitForFunction(() => document.querySelector(".profile .avatar")?.naturalWidth > 0);
    assert.equal(await other.getByRole("button", { name: "Edit profile" }).count(), 0, "only the owner edits");
    await shot(other, "artist-page");

    // The owner edits their profile there.
    await page.goto(other.url());
    await page.getByRole("button", { name: "Edit profile" }).click();
    await page.getByLabel("Display name").fill("Ada of the Coast");
    await page.getByLabel("Bio").fill("Lighthouses, mostly.");
    await page.getByRole("button", { name: "Save profile" }).click();
    await page.getByRole("heading", { name: "Ada of the Coast" }).waitFor();
    await page.getByText("Lighthouses, mostly.").waitFor();
  },

  async "use the settings of an earlier generation, or of one image, again"({ newPage, shot }) {
    const page = await newPage();
    const signedUp = page.waitForResponse((r) => r.url().endsWith("/v1/auth/signup"));
    await signUp(page, `re${unique()}`);
    const token = (await (await signedUp).json()).access_token;
    const auth = { headers: { Authorization: `Bearer ${token}` } };
    /** The stored files behind a generation's images, by their ETags (content hashes). */
    const filesOf = async (generation) =>
      Promise.all(generation.images.map(async (image) => (await page.request.get(image.url, auth)).headers().etag));

    // Restyle an uploaded photo: two images, 4:3, in ink.
    await page.getByRole("radio", { name: /Easel Restyle/ }).check();
    await page.getByLabel("Upload a photo").setInputFiles({
      name: "dome.png",
      mimeType: "image/png",
      buffer: readFileSync(new URL("./fixtures/dome.png", import.meta.url)),
    });
    await page.getByRole("img", { name: "Input: dome.png" }).waitFor();
    await page.getByLabel("Aspect ratio").selectOption("4:3");
    await page.getByLabel(/^Images/).selectOption("2");
    await page.getByText("Advanced").click();
    await page.getByLabel(/^Style/).selectOption("ink");
    let accepted = page.waitForResponse((r) => r.url().endsWith("/v1/generations") && r.request().method() === "POST" && r.status() === 202);
    assert.equal((await generate(page, "a dome in the rain")).status, "succeeded");
    const first = await (await page.request.get(`/v1/generations/${(await (await accepted).json()).id}`, auth)).json();
    assert.ok(first.image_input, "the generation names its input");

    // From History, every choice comes back, the input image included.
    await page.getByRole("link", { name: "History" }).click();
    await page.getByRole("link", { name: "Use the settings of “a dome in the rain” again" }).click();
    await page.getByTestId("start").getByText("Settings from your generation of").waitFor();
    assert.equal(await page.getByLabel("Prompt", { exact: true }).inputValue(), "a dome in the rain");
    assert.ok(await page.getByRole("radio", { name: /Easel Restyle/ }).isChecked());
    assert.equal(await page.getByLabel("Aspect ratio").inputValue(), "4:3");
    assert.equal(await page.getByLabel(/^Images/).inputValue(), "2");
    assert.equal(await page.getByLabel(/^Style/).inputValue(), "ink");
    assert.equal(await page.getByLabel(/^Seed/).inputValue(), String(first.seed));
    await page.getByRole("img", { name: "Input: The earlier input" }).waitFor();
    await page.waitForFunction(() => document.querySelector(".input-preview")?.naturalWidth > 0);
    await shot(page, "generate-again");
    accepted = page.waitForResponse((r) => r.url().endsWith("/v1/generations") && r.request().method() === "POST" && r.status() === 202);
    assert.equal((await generate(page, "a dome in the rain")).status, "succeeded");
    const again = await (await page.request.get(`/v1/generations/${(await (await accepted).json()).id}`, auth)).json();
    assert.notEqual(again.id, first.id);
    assert.equal(again.image_input, first.image_input);
    assert.deepEqual(await filesOf(again), await filesOf(first), "the same settings make the same images");

    // From one image: that image again, alone, with its own seed.
    const second = first.images[1];
    await page.goto(`/images/${second.id}`);
    await page.getByRole("link", { name: "Use these settings" }).click();
    await page.getByTestId("start").waitFor();
    assert.equal(await page.getByLabel(/^Images/).inputValue(), "1");
    assert.equal(await page.getByLabel(/^Seed/).inputValue(), String(first.seed + 1));
    assert.equal(await page.getByLabel(/^Style/).inputValue(), "ink");
    accepted = page.waitForResponse((r) => r.url().endsWith("/v1/generations") && r.request().method() === "POST" && r.status() === 202);
    assert.equal((await generate(page, "a dome in the rain")).status, "succeeded");
    const one = await (await page.request.get(`/v1/generations/${(await (await accepted).json()).id}`, auth)).json();
    assert.deepEqual(await filesOf(one), [(await filesOf(first))[1]], "the one image again");
  },

  async "support finds a person's generations, sees why one failed, and cancels one with a refund"({ newPage, shot }) {
    const user = `sp${unique()}`;
    const page = await newPage();
    const signup = await page.request.post("/v1/auth/signup", {
      data: { email: `${user}@example.com`, username: user, password: `password-${user}` },
    });
    const token = (await signup.json()).access_token;
    const auth = { headers: { Authorization: `Bearer ${token}` } };
    const balance = async () => (await (await page.request.get("/v1/credits", auth)).json()).total;
    const before = await balance();
    const failed = await page.request.post("/v1/generations", {
      headers: { ...auth.headers, Prefer: "wait=30" },
      data: { prompt: "this breaks [[fail]]", model: "easel-sketch" },
    });
    assert.equal((await failed.json()).status, "failed");
    await page.request.post("/v1/generations", { ...auth, data: { prompt: "a long one [[slow]]", model: "easel-sketch" } });

    await page.goto("/login");
    await page.getByLabel("Email").fill(process.env.E2E_ADMIN_EMAIL);
    await page.getByLabel("Password").fill(process.env.E2E_ADMIN_PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("link", { name: "Support", exact: true }).click();
    await page.getByLabel("Account").fill(user);
    await page.getByRole("button", { name: "Find" }).click();
    // The list of everyone's shows first; the account's replaces it.
    const rows = page.getByTestId("support-row");
    await page.waitForFunction(
      (name) => {
        const accounts = [...document.querySelectorAll("[data-testid=support-row] td:nth-child(2)")].map((td) => td.textContent);
        return accounts.length === 2 && accounts.every((account) => account === `@${name}`);
      },
      user,
    );
    assert.equal(await rows.count(), 2);
    await rows.filter({ hasText: "this breaks" }).getByText("model_failed").waitFor();
    page.once("dialog", (dialog) => void dialog.accept());
    await rows.filter({ hasText: "a long one" }).getByRole("button", { name: "Cancel and refund" }).click();
    await rows.filter({ hasText: "a long one" }).getByTestId("support-status").getByText("canceled").waitFor();
    await shot(page, "support");
    assert.equal(await balance(), before, "both refunded");

    // The account itself: shut, its token stops working; opened again, it works.
    const card = page.getByTestId("account-card");
    await card.getByText(`@${user}`).waitFor();
    page.once("dialog", (dialog) => void dialog.accept());
    await card.getByRole("button", { name: "Shut account" }).click();
    await card.getByText(/Shut since/).waitFor();
    assert.equal((await page.request.get("/v1/credits", auth)).status(), 401);
    await card.getByRole("button", { name: "Open account" }).click();
    await card.getByTestId("account-state").getByText("Open.").waitFor();

    // Only admins have it.
    const other = await newPage();
    await signUp(other, `no${unique()}`);
    assert.equal(await other.getByRole("link", { name: "Support", exact: true }).count(), 0);
  },

  async "a reported image is hidden by support and gone for everyone else"({ newPage, shot }) {
    // An owner publishes an image through the API.
    const owner = `ow${unique()}`;
    const api = await newPage();
    const signup = await api.request.post("/v1/auth/signup", {
      data: { email: `${owner}@example.com`, username: owner, password: `password-${owner}` },
    });
    const auth = { Authorization: `Bearer ${(await signup.json()).access_token}` };
    const made = await api.request.post("/v1/generations", {
      headers: { ...auth, Prefer: "wait=30" },
      data: { prompt: "an image someone objects to", model: "easel-sketch", visibility: "public" },
    });
    const imageId = (await made.json()).images[0].id;

    // Someone else reports it.
    const reporter = await newPage();
    await signUp(reporter, `rp${unique()}`);
    await reporter.goto(`/images/${imageId}`);
    await reporter.getByRole("button", { name: "Report this image" }).click();
    await reporter.getByLabel("What is wrong").selectOption("spam");
    await reporter.getByLabel("Details (optional)").fill("the same picture posted over and over");
    await reporter.getByRole("button", { name: "Send report" }).click();
    await reporter.getByTestId("reported").waitFor();

    // Support hides it.
    const admin = await newPage();
    await admin.goto("/login");
    await admin.getByLabel("Email").fill(process.env.E2E_ADMIN_EMAIL);
    await admin.getByLabel("Password").fill(process.env.E2E_ADMIN_PASSWORD);
    await admin.getByRole("button", { name: "Sign in" }).click();
    await admin.getByRole("link", { name: "Support", exact: true }).click();
    const row = admin.getByTestId("report").filter({ hasText: "an image someone objects to" });
    await row.getByText("the same picture posted over and over").waitFor();
    await shot(admin, "support-reports");
    await row.getByRole("button", { name: "Hide" }).click();
    await row.getByTestId("decision").getByText("Hidden.").waitFor();

    // Gone for the reporter; still there, flagged, for its owner.
    assert.equal((await reporter.request.get(`/v1/images/${imageId}`)).status(), 404);
    const own = await api.request.get(`/v1/images/${imageId}`, { headers: auth });
    assert.equal((await own.json()).flagged, true);

    // Taken back: shown again.
    await row.getByRole("button", { name: "Undo" }).click();
    await row.getByTestId("decision").getByText("Shown again.").waitFor();
    assert.equal((await reporter.request.get(`/v1/images/${imageId}`)).status(), 200);
  },

  async "a failing generation shows the refund"({ newPage, shot }) {
    const page = await newPage();
    await signUp(page, `cy${unique()}`);
    await page.getByRole("link", { name: "Credits" }).click();
    const before = await page.getByTestId("balance-total").textContent();
    await page.getByRole("link", { name: "Generate" }).click();
    const { status } = await generate(page, "this one breaks [[fail]]");
    assert.equal(status, "failed");
    await page.getByText("the model failed on this prompt").waitFor();
    assert.match(await page.getByTestId("refund").textContent(), /1 credit refunded to your balance/);
    // The quote under the form counts the refunded credit again.
    await page.getByTestId("quote").getByText(`you have ${before} credits`).waitFor();
    await shot(page, "generation-failed");
    await page.getByRole("link", { name: "Credits" }).click();
    await page.getByRole("cell", { name: "Refund", exact: true }).waitFor();
    assert.equal(await page.getByTestId("balance-total").textContent(), before);
    // History lists it with its error and refund; the failed filter keeps it.
    await page.getByRole("link", { name: "History" }).click();
    await page.getByText("the model failed on this prompt").waitFor();
    await page.getByText("(refunded 1)").waitFor();
    await page.getByLabel("Status").selectOption("succeeded");
    await page.getByText("No succeeded generations.").waitFor();
    await page.getByLabel("Status").selectOption("failed");
    assert.equal(await page.getByTestId("generation-status").first().textContent(), "failed");

    // One still running is canceled from History, and refunded.
    await page.getByRole("link", { name: "Generate" }).click();
    await page.getByLabel("Prompt", { exact: true }).fill("a long one [[slow]]");
    await page.getByTestId("quote").getByText(/you have/).waitFor();
    await page.getByRole("button", { name: "Generate", exact: true }).click();
    await page.locator("section.result").waitFor();
    await page.getByRole("link", { name: "History" }).click();
    await page.getByRole("button", { name: "Cancel “a long one [[slow]]”" }).click();
    const row = page.getByRole("row").filter({ hasText: "a long one" });
    await row.getByTestId("generation-status").getByText("canceled").waitFor();
    await row.getByText("(refunded 1)").waitFor();
    await page.getByRole("link", { name: "Credits" }).click();
    assert.equal(await page.getByTestId("balance-total").textContent(), before);
  },

  async "buying a package with development payments raises the balance"({ newPage, shot }) {
    const page = await newPage();
    await signUp(page, `di${unique()}`);
    await page.getByRole("link", { name: "Credits" }).click();
    const before = Number(await page.getByTestId("balance-total").textContent());
    const purchasedBefore = Number(await page.getByTestId("balance-purchased").textContent());
    await page.getByRole("link", { name: "Pricing" }).click();
    await page.getByText("Development payments are on").waitFor();
    await page.getByRole("button", { name: "Buy Starter" }).click();
    await page.getByTestId("purchase-success").getByText("100 credits added").waitFor();
    await page.getByText(`Your balance is now ${before + 100} credits`).waitFor();
    await shot(page, "purchase-success");
    await page.getByRole("link", { name: "Credits" }).click();
    await page.getByRole("cell", { name: "Purchase", exact: true }).waitFor();
    assert.equal(Number(await page.getByTestId("balance-purchased").textContent()), purchasedBefore + 100);
    assert.equal(Number(await page.getByTestId("balance-total").textContent()), before + 100);

    // Bought credits open the pro model, whose advanced choices include steps and guidance.
    await page.getByRole("link", { name: "Generate" }).click();
    await page.getByRole("radio", { name: /Easel Canvas Pro/ }).check();
    await page.getByText("Advanced").click();
    await page.getByLabel("Steps").fill("40");
    await page.getByLabel("Guidance").fill("9.5");
    const accepted = page.waitForResponse((r) => r.url().endsWith("/v1/generations") && r.request().method() === "POST" && r.status() === 202);
    const { status } = await generate(page, "a pro lighthouse");
    assert.equal(status, "succeeded");
    const created = await (await accepted).json();
    assert.equal(created.steps, 40);
    assert.equal(created.guidance, 9.5);
    await shot(page, "generate-pro-steps");
  },

  async "My images: a failed first page can be tried again, then 24 and the rest from Load more"({ newPage, shot }) {
    const page = await newPage();
    const name = `pg${unique()}`;
    const signup = await page.request.post("/v1/auth/signup", {
      data: { email: `${name}@example.com`, username: name, password: `password-${name}` },
    });
    assert.equal(signup.status(), 201);
    const token = (await signup.json()).access_token;
    // 28 images from 7 generations of 4, run 4 at a time (the in-flight cap).
    const prompts = Array.from({ length: 7 }, (_, i) => `page test ${i}`);
    for (const wave of [prompts.slice(0, 4), prompts.slice(4)]) {
      const done = await Promise.all(
        wave.map((prompt) =>
          page.request.post("/v1/generations", {
            headers: { Authorization: `Bearer ${token}`, Prefer: "wait=30" },
            data: { prompt, model: "easel-sketch", num_outputs: 4 },
          }),
        ),
      );
      for (const response of done) assert.equal((await response.json()).status, "succeeded");
    }
    await page.goto("/login");
    await page.getByLabel("Email").fill(`${name}@example.com`);
    await page.getByLabel("Password").fill(`password-${name}`);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Generate" }).waitFor();
    // The first page fails once: the error offers to try again, and trying loads it.
    let failed = false;
    await page.route(/\/v1\/images\?/, async (route) => {
      if (failed) return route.continue();
      failed = true;
      await route.fulfill({
        status: 503,
        contentType: "application/problem+json",
        body: JSON.stringify({ type: "about:blank", title: "Service Unavailable", status: 503, code: "database_unavailable", detail: "down" }),
      });
    });
    await page.getByRole("link", { name: "My images" }).click();
    await page.getByRole("alert").getByText("The server had a problem").waitFor();
    await page.getByRole("button", { name: "Try again" }).click();
    const tiles = page.getByRole("list", { name: "Images" }).getByRole("listitem");
    await tiles.nth(23).waitFor();
    assert.equal(await tiles.count(), 24);
    // The button loads the next page when it comes into view; clicking it does the same.
    const more = page.getByRole("button", { name: "Load more" });
    await more.scrollIntoViewIfNeeded().catch(() => {});
    if (await more.isVisible()) await more.click().catch(() => {});
    await tiles.nth(27).waitFor();
    await more.waitFor({ state: "detached" });
    assert.equal(await tiles.count(), 28);
    await shot(page, "my-images-paged");
  },

  async "changing the password signs out another device, and the new one signs in"({ newPage, shot }) {
    const name = `pw${unique()}`;
    const here = await newPage();
    await signUp(here, name);
    const elsewhere = await newPage();
    await elsewhere.goto("/login");
    await elsewhere.getByLabel("Email").fill(`${name}@example.com`);
    await elsewhere.getByLabel("Password").fill(`password-${name}`);
    await elsewhere.getByRole("button", { name: "Sign in" }).click();
    await elsewhere.getByRole("link", { name: "History" }).click();
    await elsewhere.getByRole("heading", { name: "History" }).waitFor();

    await here.getByRole("link", { name: "Account" }).click();
    // Both devices are listed; this one cannot sign itself out from the list.
    await here.getByTestId("device").nth(1).waitFor();
    assert.equal(await here.getByTestId("device").count(), 2);
    assert.equal(await here.getByTestId("device").getByText("This device").count(), 1);
    await here.getByLabel("Current password").fill("not my password");
    await here.getByLabel("New password", { exact: true }).fill("a brand new one");
    await here.getByLabel("New password again").fill("a brand new one");
    await here.getByRole("button", { name: "Change password" }).click();
    await here.getByRole("alert").getByText("Current password is not this account's password").waitFor();
    await here.getByLabel("Current password").fill(`password-${name}`);
    await here.getByRole("button", { name: "Change password" }).click();
    await here.getByTestId("password-changed").waitFor();
    // The list is read again: the other device is gone from it.
    await here.getByTestId("device").getByText("This device").waitFor();
    await here.waitForFunction(() => document.querySelectorAll("[data-testid=device]").length === 1);
    await shot(here, "account-password");

    // The other device's session is over: on its next visit it is asked to sign in.
    await elsewhere.reload();
    await elsewhere.getByRole("heading", { name: "Sign in to continue" }).waitFor();
    // This one goes on, and the new password signs in anew.
    await here.getByRole("link", { name: "History" }).click();
    await here.getByRole("heading", { name: "History" }).waitFor();
    await here.getByRole("button", { name: "Sign out" }).click();
    await here.goto("/login");
    await here.getByLabel("Email").fill(`${name}@example.com`);
    await here.getByLabel("Password").fill("a brand new one");
    await here.getByRole("button", { name: "Sign in" }).click();
    await here.getByRole("link", { name: `@${name}` }).waitFor();
  },

  async "downloading my data, then deleting the account takes its public image away, and the email signs up again"({ newPage, shot }) {
    const name = `del${unique()}`;
    const page = await newPage();
    await signUp(page, name);
    const { status } = await generate(page, "a farewell lantern", { visibility: "public" });
    assert.equal(status, "succeeded");
    await page.getByRole("link", { name: "My images" }).click();
    await page.locator(".grid .tile a").first().click();
    await page.waitForURL(/\/images\/[0-9a-f-]+$/);
    const imageId = page.url().split("/").pop();
    assert.equal((await page.request.get(`/v1/images/${imageId}`)).status(), 200);

    await page.getByRole("link", { name: "Account" }).click();
    // First the data, as a person leaving would: one zip with the image in it, as it was made.
    const saved = page.waitForEvent("download");
    await page.getByRole("button", { name: "Download my data" }).click();
    const archive = await saved;
    assert.match(archive.suggestedFilename(), new RegExp(`^easel-${name}-\\d{4}-\\d{2}-\\d{2}\\.zip$`));
    const zip = readFileSync(await archive.path());
    assert.equal(zip.subarray(0, 4).toString("latin1"), "PK\x03\x04");
    const original = Buffer.from(await (await page.request.get(`/v1/images/${imageId}/file`)).body());
    assert.ok(zip.includes(original), "the image's bytes are in the archive, stored as they are");
    assert.ok(zip.includes(Buffer.from(`images/${imageId}.png`)), "under its own name");

    await page.getByRole("form", { name: "Delete account" }).getByLabel("Password").fill(`password-${name}`);
    await shot(page, "account-delete");
    page.once("dialog", (dialog) => void dialog.accept());
    await page.getByRole("button", { name: "Delete my account" }).click();
    // Signed out, on the gallery, and the image is gone for everyone.
    await page.getByRole("link", { name: "Sign in" }).waitFor();
    assert.equal((await page.request.get(`/v1/images/${imageId}`)).status(), 404);
    assert.equal((await page.request.get(`/v1/users/${name}`)).status(), 404);
    // A reload does not sign the deleted account back in.
    await page.reload();
    await page.getByRole("link", { name: "Sign in" }).waitFor();
    // The same email and username make a new account.
    await signUp(page, name);
  },

  async "two-step sign-in: set up with an app's code, then a code or a recovery code after the password"({ newPage, shot }) {
    const name = `tf${unique()}`;
    const page = await newPage();
    await signUp(page, name);
    await page.getByRole("link", { name: "Account" }).click();
    const section = page.getByRole("form", { name: "Two-step sign-in" });
    await section.getByLabel("Password").fill(`password-${name}`);
    await section.getByRole("button", { name: "Set up" }).click();
    const key = (await page.getByTestId("two-factor-key").textContent()).replace(/\s/g, "");
    assert.match(key, /^[A-Z2-7]{32}$/);
    await shot(page, "two-factor-setup");
    await page.getByLabel("The code the app shows").fill(authenticatorCode(key));
    await page.getByRole("button", { name: "Turn on" }).click();
    await page.getByTestId("two-factor-on").waitFor();
    const codes = await page.getByTestId("recovery-codes").locator("code").allTextContents();
    assert.equal(codes.length, 10);
    const saving = page.waitForEvent("download");
    await page.getByRole("button", { name: "Save as a text file" }).click();
    const saved = readFileSync(await (await saving).path(), "utf8");
    assert.ok(codes.every((code) => saved.includes(code)), saved);
    await shot(page, "two-factor-codes");

    // Another browser: the password alone is not enough, the app's next code is.
    const other = await newPage();
    await signIn(other, name);
    const second = other.getByRole("form", { name: "Authenticator code" });
    await second.getByLabel("Code from your authenticator app").fill("000000");
    await second.getByRole("button", { name: "Sign in" }).click();
    await other.getByRole("alert").waitFor();
    await second.getByLabel("Code from your authenticator app").fill(authenticatorCode(key, 1));
    await second.getByRole("button", { name: "Sign in" }).click();
    await other.getByRole("link", { name: `@${name}` }).waitFor();

    // A third, with a recovery code typed as written down.
    const third = await newPage();
    await signIn(third, name);
    await third.getByLabel("Code from your authenticator app").fill(codes[0].toUpperCase());
    await third.getByRole("button", { name: "Sign in" }).click();
    await third.getByRole("link", { name: `@${name}` }).waitFor();

    // The Account page counts the codes left: one was used; and its activity shows the sign-ins.
    await page.reload();
    await page.getByTestId("codes-left").getByText("9 recovery codes left.").waitFor();
    await page.getByTestId("activity").getByText("Signed in with a recovery code").waitFor();
    await page.getByTestId("activity").getByText("Two-step sign-in turned on").waitFor();
    await shot(page, "account-activity");

    // Off again: the password alone signs in.
    await page.getByRole("region", { name: "Two-step sign-in" }).getByLabel("Password").fill(`password-${name}`);
    await page.getByRole("button", { name: "Turn off" }).click();
    await page.getByRole("form", { name: "Two-step sign-in" }).getByRole("button", { name: "Set up" }).waitFor();
    const fourth = await newPage();
    await signIn(fourth, name);
    await fourth.getByRole("link", { name: `@${name}` }).waitFor();
  },

  async "a forgotten password is set anew from the emailed link"({ newPage, shot }) {
    const name = `fg${unique()}`;
    const page = await newPage();
    await signUp(page, name);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.goto("/login");
    await page.getByRole("link", { name: "Forgot your password?" }).click();
    await page.getByLabel("Email").fill(`${name}@example.com`);
    await page.getByRole("button", { name: "Send the link" }).click();
    await page.getByTestId("reset-sent").waitFor();
    const link = await linkMailedTo(`${name}@example.com`, "reset-password");
    await page.goto(link);
    await page.getByLabel("New password", { exact: true }).fill("remembered at last");
    await page.getByLabel("New password again").fill("remembered at last");
    await shot(page, "reset-password");
    await page.getByRole("button", { name: "Set password" }).click();
    await page.getByRole("heading", { name: "Password set" }).waitFor();
    // The link works once.
    await page.goto(link);
    await page.getByLabel("New password", { exact: true }).fill("and once more");
    await page.getByLabel("New password again").fill("and once more");
    await page.getByRole("button", { name: "Set password" }).click();
    await page.getByRole("alert").getByText(/not a working reset link/).waitFor();
    await page.goto("/login");
    await page.getByLabel("Email").fill(`${name}@example.com`);
    await page.getByLabel("Password").fill("remembered at last");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("link", { name: `@${name}` }).waitFor();
  },

  async "a new email is confirmed from the link mailed to it"({ newPage }) {
    const name = `em${unique()}`;
    const page = await newPage();
    await signUp(page, name);
    await page.getByRole("link", { name: "Account" }).click();
    await page.getByLabel("New email").fill(`${name}@new.example`);
    await page.getByRole("form", { name: "Change email" }).getByLabel("Password").fill(`password-${name}`);
    await page.getByRole("form", { name: "Change email" }).getByRole("button", { name: "Send the link" }).click();
    await page.getByTestId("email-link-sent").waitFor();
    await page.goto(await linkMailedTo(`${name}@new.example`, "confirm-email"));
    await page.getByRole("button", { name: "Confirm email" }).click();
    await page.getByTestId("email-confirmed").waitFor();
    await page.goto("/account");
    await page.getByText(`Signed in as ${name}@new.example`).waitFor();
  },

  async "readable errors, API keys, and a phone-width layout"({ newPage, shot }) {
    const page = await newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    await page.goto("/login");
    await page.getByLabel("Email").fill("nobody@example.com");
    await page.getByLabel("Password").fill("wrong-password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").getByText("That email and password don't match an account.").waitFor();

    const name = `ed${unique()}`;
    await signUp(page, name);
    // The Pro model needs purchased credits: the error says so in words.
    await page.getByLabel("Prompt", { exact: true }).fill("a portrait in oils");
    await page.getByRole("radio", { name: /Easel Canvas Pro/ }).check();
    await page.getByRole("button", { name: "Generate", exact: true }).click();
    await page.getByRole("alert").getByText(/Pro model/).first().waitFor();
    assert.equal(await page.getByRole("alert").getByText(/pro_model_requires_purchase/).count(), 0);

    // The menu folds at phone width.
    await page.getByRole("button", { name: "Menu" }).click();
    await page.getByRole("link", { name: "Developer" }).click();
    await page.getByLabel("Key name").fill("my script");
    await page.getByRole("button", { name: "Create key" }).click();
    const key = await page.getByTestId("new-key").textContent();
    assert.ok(key && key.length > 20, `key: ${key}`);
    await page.getByText(key, { exact: false }).first().waitFor();
    // The key works against the API.
    const me = await page.request.get("/v1/me", { headers: { Authorization: `Bearer ${key}` } });
    assert.equal(me.status(), 200);
    assert.equal((await me.json()).username, name);
    // The webhook signing secret is the one the key reads from the API.
    await page.getByRole("button", { name: "Show signing secret" }).click();
    const secret = await page.getByTestId("webhook-secret").textContent();
    assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
    const read = await page.request.get("/v1/me/webhook-secret", { headers: { Authorization: `Bearer ${key}` } });
    assert.equal((await read.json()).secret, secret);
    await shot(page, "developer-phone");
    // Revoked, it stops working.
    page.once("dialog", (dialog) => void dialog.accept());
    await page.getByRole("button", { name: "Revoke" }).click();
    await page.getByText("No keys yet.").waitFor();
    const after = await page.request.get("/v1/me", { headers: { Authorization: `Bearer ${key}` } });
    assert.equal(after.status(), 401);
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `no sideways scrolling at phone width (scrollWidth ${width})`);
  },
};
