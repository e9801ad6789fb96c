// Scalar in a real browser: loads keygate's /docs in headless Chromium with every request
// to another host refused (so the page must work offline, from the local bundle keygate
// serves), waits until the signin endpoint is rendered, and saves a screenshot. An
// uncaught error in the page fails the check.
// Usage: node browser_check.mjs http://127.0.0.1:PORT target/apiref/docs.png
import { createRequire } from "node:module";

const require = createRequire(process.env.NODE_MODULES_PARENT + "/");
const { chromium } = require("playwright-core");

const [base, screenshot] = process.argv.slice(2);
const origin = new URL(base).origin;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const refused = [];
  await page.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(origin) || url.startsWith("data:") || url.startsWith("blob:")) {
      return route.continue();
    }
    refused.push(url);
    return route.abort();
  });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${base}/docs`, { waitUntil: "load" });
  await page
    .getByText("Exchange an API key for an access token")
    .first()
    .waitFor({ state: "visible", timeout: 60_000 });
  await page.screenshot({ path: screenshot, fullPage: false });
  console.log(
    `browser: /docs rendered the signin endpoint offline; screenshot ${screenshot}` +
      (refused.length ? ` (${refused.length} outside requests refused)` : ""),
  );
  if (errors.length) {
    console.error(`page errors (${errors.length}):`, errors.slice(0, 5).join(" | "));
    process.exitCode = 1;
  }
} finally {
  await browser.close();
}
