// Shared helpers of corelab's browser tests (run.mjs and the other scripts here): the
// configuration from CORELAB_E2E, TAP-like checks, axe-core, width and screenshot checks, pages
// that collect console errors, login, and Debian's chromium launched headless.

import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
export const cfg = JSON.parse(process.env.CORELAB_E2E ?? "{}");
export const base = cfg.url;
mkdirSync(cfg.out, { recursive: true });

let passed = 0;
let failed = 0;
export function check(name, ok, detail = "") {
  if (ok) {
    passed++;
    console.log(`ok - ${name}`);
  } else {
    failed++;
    console.log(`not ok - ${name}${detail ? `\n    ${String(detail).replace(/\n/g, "\n    ")}` : ""}`);
  }
}
export async function step(name, fn) {
  try {
    await fn();
  } catch (e) {
    check(name, false, e && e.stack ? e.stack : e);
  }
}

/** Runs axe-core in the page (or in one element) and checks there is no serious or critical violation. */
export async function axe(page, name, selector) {
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async (sel) => {
    const r = await window.axe.run(sel ? document.querySelector(sel) : document, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"] },
    });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")),
    }));
  }, selector ?? null);
  const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  const minor = violations.filter((v) => !bad.includes(v));
  if (minor.length) {
    console.log(`# ${name}: minor axe findings: ${minor.map((v) => `${v.id} (${v.impact})`).join(", ")}`);
  }
  check(`axe: no serious or critical violations on ${name}`, bad.length === 0, JSON.stringify(bad, null, 2));
}

/** Readable on a laptop: at 1280 px nothing sticks out sideways (wide tables scroll in their own region). */
export async function fits(page, name) {
  const out = await page.evaluate(() => {
    const w = document.documentElement.clientWidth;
    // Inside a scrolling region only what escapes it (positioned out of it) counts.
    const escapes = (el) => !el.closest(".scroll") || el.offsetParent === null || !el.offsetParent.closest(".scroll");
    return [...document.querySelectorAll("body *")]
      .filter((el) => el.getBoundingClientRect().right > w + 1 && escapes(el))
      .slice(0, 5)
      .map((el) => `${el.tagName.toLowerCase()}.${el.className} right=${Math.round(el.getBoundingClientRect().right)}`);
  });
  check(`${name} fits the window's width`, out.length === 0, out.join("\n"));
}

export async function shot(page, file) {
  await fits(page, file);
  await page.screenshot({ path: join(cfg.out, file), fullPage: true });
}

/** A fresh browser context whose console errors (CSP violations included) are collected. */
export async function newPage(browser, who) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  // CI runs this beside the other tests on two cores: be patient.
  page.setDefaultTimeout(60000);
  page.errors = [];
  page.on("console", (m) => {
    if (m.type() === "error") page.errors.push(`${who}: ${m.text()}`);
  });
  page.on("pageerror", (e) => page.errors.push(`${who}: ${e.message}`));
  return page;
}

export async function login(page, username, password) {
  await page.goto(`${base}/login`);
  await page.fill("#username", username);
  await page.fill("#password", password);
  await Promise.all([page.waitForURL(/\/trials$/), page.click("button[type=submit]")]);
}

/** Debian's chromium, headless; `extraArgs` for what one script needs (e.g. WebGL flags). */
export async function launch(extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      // Without a GPU flag from the caller, no GPU (the pages need none).
      ...(extraArgs.length ? extraArgs : ["--disable-gpu"]),
    ],
  });
}

/** Prints the tally and exits: 1 if anything failed or nothing was checked. */
export function finish() {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
}
