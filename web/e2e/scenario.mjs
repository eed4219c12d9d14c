// Browser scenario of issue 11, started by the Rust test `ui_scenario::ui_scenario_upload_reject_
// resubmit_pass_in_the_browser` with a running server whose ingest quiet period is short.
//
// A site user uploads a visit folder on the upload page and sees the summary; the automated check
// runs; a QC reviewer rejects the visit in the e-signature dialog; the dashboard grid shows it
// rejected; the site user opens the data query, uploads a corrected series and answers the query;
// QC1 and QC2 accept; the grid shows QC passed. Screenshots of each step go to `out`; axe-core
// runs on the upload page and the dashboard.
//
// Input: CORELAB_E2E, a JSON object {url, out, trial, subject, password, first_folder,
// second_folder, first_files, second_files}; CHROMIUM (default /usr/bin/chromium).

import { axe, base, cfg, check, finish, launch, login, newPage, shot, step } from "./lib.mjs";

const browser = await launch();
const pages = [];
const grid = `${base}/trials/${cfg.trial}/dashboard`;
const review = `${base}/trials/${cfg.trial}/qc/${cfg.subject}/BL`;

/** The BL cell of subject 101-001 in the dashboard grid. */
async function blState(page) {
  await page.goto(grid);
  const cell = page.locator("table.visit-grid tbody tr", { hasText: "101-001" }).locator("td.gcell").first();
  return { state: await cell.getAttribute("data-state"), text: (await cell.textContent()).trim() };
}

/** Reloads the dashboard until BL of 101-001 is in `want` (the automated check runs after a quiet period). */
async function waitState(page, want) {
  let last = null;
  for (let i = 0; i < 120; i++) {
    last = await blState(page);
    if (last.state === want) return last;
    await page.waitForTimeout(1000);
  }
  throw new Error(`visit BL never reached ${want}: ${JSON.stringify(last)}`);
}

/** Chooses a folder on the upload page (the folder input; the file input if the browser refuses). */
async function chooseFolder(page, folder, files) {
  try {
    await page.setInputFiles("#upload-folder", folder);
    return "folder";
  } catch (e) {
    console.log(`# the folder input refused the directory (${e.message.split("\n")[0]}); using the file input`);
    await page.setInputFiles("#upload-files", files);
    return "files";
  }
}

async function upload(page, folder, files, shotName) {
  await page.goto(`${base}/trials/${cfg.trial}/sites/101/upload`);
  const how = await chooseFolder(page, folder, files);
  await page.click("#upload-form button[type=submit]");
  const summary = page.locator("#upload-summary .upload-counts");
  await summary.waitFor({ state: "visible" });
  const text = await page.textContent("#upload-progress");
  const bar = await page.locator("#upload-bar").evaluate((b) => b.value);
  check(`the upload (${how}) ends with the progress bar full and a summary`, bar === 100 && text.includes("Done:"), `${bar} ${text}`);
  if (shotName) await shot(page, shotName);
  return text;
}

try {
  const site = await newPage(browser, "site_a");
  pages.push(site);
  await login(site, "site_a", cfg.password);
  await step("the site user finds the upload page from the site page", async () => {
    await site.goto(`${base}/trials/${cfg.trial}/sites/101`);
    await Promise.all([site.waitForURL(/\/upload$/), site.click("text=Upload images for a visit")]);
    check("the upload page offers a folder and a files input", (await site.locator("input[webkitdirectory]").count()) === 1 && (await site.locator("#upload-files").count()) === 1);
    await shot(site, "s01-upload-page.png");
    await axe(site, "the upload page");
  });
  await step("the site user uploads the visit folder", async () => {
    const text = await upload(site, cfg.first_folder, cfg.first_files, "s02-upload-summary.png");
    check("every image is stored", text.includes(`${cfg.first_count} stored`), text);
    check("DICOMDIR and the text file are skipped and listed", text.includes("DICOMDIR") && text.includes("notes.txt") && text.includes("2 skipped"), text);
    await axe(site, "the upload page with its summary");
  });
  await step("the automated check passes the visit to QC1", async () => {
    const s = await waitState(site, "awaiting_qc1");
    check("the site's dashboard shows the visit awaiting QC1 in words", s.text.includes("Awaiting QC1"), JSON.stringify(s));
    await shot(site, "s03-dashboard-awaiting-qc1.png");
    await axe(site, "the dashboard (site user)");
  });

  const qc = await newPage(browser, "qc");
  pages.push(qc);
  await login(qc, "qc", cfg.password);
  await step("the QC reviewer rejects the visit in the signing dialog", async () => {
    await qc.goto(`${base}/trials/${cfg.trial}`);
    await Promise.all([qc.waitForURL(/\/dashboard$/), qc.click("nav[aria-label=Trial] >> text=Dashboard")]);
    await qc.goto(review);
    // A thumbnail per received series, rendered from the stored images.
    const thumbs = qc.locator("img.thumb");
    await thumbs.first().scrollIntoViewIfNeeded();
    await qc.waitForFunction(() => [...document.querySelectorAll("img.thumb")].every((i) => i.complete));
    const widths = await thumbs.evaluateAll((imgs) => imgs.map((i) => i.naturalWidth));
    check("the QC review page shows a rendered thumbnail of the series", widths.length >= 1 && widths.every((w) => w > 0), JSON.stringify(widths));
    await shot(qc, "s03b-qc-review-thumbnails.png");
    await qc.click("text=Reject and sign…");
    const dialog = qc.locator("dialog.sign-dialog");
    await dialog.waitFor({ state: "visible" });
    await qc.fill("#sign-reason", "5 mm slices are too thick for the small liver lesions: reconstruct at 2.5 mm and resend");
    if ((await dialog.locator("#sign-username").count()) === 1) await qc.fill("#sign-username", "qc");
    await qc.fill("#sign-password", cfg.password);
    await shot(qc, "s04-qc-reject-dialog.png");
    await Promise.all([qc.waitForURL(/done=qc_rejected/), dialog.locator("button.primary").click()]);
  });
  await step("the dashboard grid shows the rejection", async () => {
    const s = await blState(qc);
    check("BL is rejected, in words and a symbol", s.state === "qc_rejected" && s.text.includes("✗") && s.text.includes("Rejected by QC"), JSON.stringify(s));
    const row = qc.locator("table.dashboard-sites tbody tr", { has: qc.locator("th", { hasText: /^101$/ }) });
    const cells = await row.locator("td").allTextContents();
    // Subjects, expected, received, QC passed, read, open queries, two turnarounds.
    check("site 101's row counts the received visit, its QC decision time and the open query", Number(cells[2]) >= 1 && Number(cells[5]) >= 1 && cells[6] !== "no data yet", cells.join(" | "));
    await shot(qc, "s05-dashboard-rejected.png");
    await axe(qc, "the dashboard (QC reviewer, rejected visit)");
  });
  await step("the site user opens the query, resends and answers", async () => {
    await site.goto(`${base}/trials/${cfg.trial}/queries`);
    await site.click("text=QC rejected visit BL of subject 101-001");
    const thread = await site.textContent(".thread");
    check("the query carries the reviewer's reason", thread.includes("reconstruct at 2.5 mm"), thread);
    const queryUrl = site.url();
    await Promise.all([site.waitForURL(/\/upload$/), site.click("text=Upload corrected images for site 101")]);
    check("the query page leads to the site's upload page", site.url().endsWith("/sites/101/upload"));
    const text = await upload(site, cfg.second_folder, cfg.second_files, "s06-upload-corrected.png");
    check("the corrected series is stored", text.includes(`${cfg.second_count} stored`), text);
    await site.goto(queryUrl);
    await site.fill("#answer-body", "Reconstructed at 2.5 mm and sent again through the upload page.");
    await Promise.all([site.waitForURL(/done=answered/), site.click("#answer button[type=submit]")]);
    await shot(site, "s07-query-answered.png");
  });
  await step("QC1 and QC2 accept the resent visit", async () => {
    await waitState(qc, "awaiting_qc1");
    await qc.goto(review);
    await qc.click("text=Accept and sign…");
    let dialog = qc.locator("dialog.sign-dialog");
    await dialog.waitFor({ state: "visible" });
    if ((await dialog.locator("#sign-username").count()) === 1) await qc.fill("#sign-username", "qc");
    await qc.fill("#sign-password", cfg.password);
    await Promise.all([qc.waitForURL(/done=qc_accepted/), dialog.locator("button.primary").click()]);
    const qc2 = await newPage(browser, "qc2");
    pages.push(qc2);
    await login(qc2, "qc2", cfg.password);
    await qc2.goto(review);
    await qc2.click("text=Accept and sign…");
    dialog = qc2.locator("dialog.sign-dialog");
    await dialog.waitFor({ state: "visible" });
    await qc2.fill("#sign-username", "qc2");
    await qc2.fill("#sign-password", cfg.password);
    await Promise.all([qc2.waitForURL(/done=qc_accepted/), dialog.locator("button.primary").click()]);
  });
  await step("the dashboard grid shows QC passed", async () => {
    const s = await blState(qc);
    check("BL is QC passed, in words and a symbol", s.state === "qc_passed" && s.text.includes("✓") && s.text.includes("QC passed"), JSON.stringify(s));
    await shot(qc, "s08-dashboard-qc-passed.png");
    await axe(qc, "the dashboard (QC passed)");
    const mine = await blState(site);
    check("the site user sees the same state", mine.state === "qc_passed", JSON.stringify(mine));
  });

  const errors = pages.flatMap((p) => p.errors);
  check("no console errors (no CSP violation, no script error)", errors.length === 0, errors.join("\n"));
} finally {
  await browser.close();
}

finish();
