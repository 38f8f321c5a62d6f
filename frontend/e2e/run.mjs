// Browser tests: Debian's Chromium driven by playwright-core against a real `easel serve` (started
// by scripts/e2e.sh with a fresh database, the `local` provider and development payments).
// Each test gets fresh browser contexts and leaves a screenshot under target/e2e/.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { tests } from "./tests.mjs";

const base = process.env.E2E_BASE_URL ?? "http://127.0.0.1:8080";
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const shots = resolve(process.env.E2E_SCREENSHOTS ?? join(import.meta.dirname, "../../target/e2e"));
const only = process.argv[2];
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    // WebGL for the 3D viewer, rendered in software (there is no GPU here).
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
  ],
});

let failed = 0;
for (const [name, test] of Object.entries(tests)) {
  if (only && !name.includes(only)) continue;
  const contexts = [];
  const newPage = async (options = {}) => {
    const context = await browser.newContext({ baseURL: base, viewport: { width: 1280, height: 900 }, ...options });
    context.setDefaultTimeout(15_000);
    contexts.push(context);
    const page = await context.newPage();
    page.on("pageerror", (error) => console.error(`  [${name}] page error: ${error.message}`));
    page.on("response", (response) => {
      if (response.status() === 404) console.error(`  [${name}] 404: ${response.url()}`);
    });
    page.on("console", (message) => {
      if (message.type() === "error" && !message.text().includes("401")) console.error(`  [${name}] console: ${message.text()}`);
    });
    return page;
  };
  const started = Date.now();
  let last;
  try {
    await test({ newPage, base, shot: async (page, label = name) => {
      last = page;
      await page.screenshot({ path: join(shots, `${label}.png`), fullPage: true });
    } });
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    failed++;
    console.log(`FAIL ${name} (${Date.now() - started} ms)\n${error?.stack ?? error}`);
    const page = last ?? contexts.at(-1)?.pages().at(-1);
    if (page) await page.screenshot({ path: join(shots, `${name}-failure.png`), fullPage: true }).catch(() => {});
  } finally {
    for (const context of contexts) await context.close();
  }
}
await browser.close();
console.log(failed ? `\n${failed} browser test(s) failed` : "\nAll browser tests passed.");
process.exit(failed ? 1 : 0);
