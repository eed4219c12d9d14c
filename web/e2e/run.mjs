// Headless browser test of corelab's pages, started by the Rust integration test
// `ui::browser_walks_the_pages_with_screenshots_and_no_serious_axe_violations` with a populated
// server. It drives Debian's chromium through playwright-core, logs in by keyboard, opens the main
// pages, signs in the e-signature dialog, takes screenshots and runs axe-core on every page.
//
// Input: CORELAB_E2E, a JSON object {url, out, trial, subject, site_a, site_new, password,
// admin_password}; CHROMIUM (default /usr/bin/chromium).
// Output: one "ok - ..." or "not ok - ..." line per check, then "N passed, N failed"; exit 1 on
// any failure. Screenshots go to `out`.

import { axe, base, cfg, check, finish, launch, login, newPage, shot, step } from "./lib.mjs";

const browser = await launch();
const pages = [];

try {
  // Site staff: keyboard login, trial page, subject page, signing in the dialog, a correction.
  const site = await newPage(browser, "site_a");
  pages.push(site);
  await step("login page", async () => {
    await site.goto(`${base}/login`);
    await shot(site, "01-login.png");
    await axe(site, "the login page");
    // Keyboard only: the username field has focus, Tab moves to the password, Enter submits.
    check("login: the username field has focus", await site.evaluate(() => document.activeElement?.id === "username"));
    await site.keyboard.type("site_a");
    await site.keyboard.press("Tab");
    await site.keyboard.type(cfg.password);
    await Promise.all([site.waitForURL(/\/trials$/), site.keyboard.press("Enter")]);
    check("login by keyboard lands on the trial list", site.url().endsWith("/trials"));
  });
  await step("trial list and focus", async () => {
    await site.keyboard.press("Tab");
    const focus = await site.evaluate(() => {
      const el = document.activeElement;
      const s = getComputedStyle(el);
      return { cls: el.className, outline: s.outlineStyle, width: s.outlineWidth };
    });
    check("Tab reaches the skip link first, with a visible focus outline", focus.cls === "skip" && focus.outline !== "none", JSON.stringify(focus));
    await shot(site, "02-trials.png");
    await axe(site, "the trial list");
  });
  await step("trial page as site staff", async () => {
    await site.goto(`${base}/trials/${cfg.trial}`);
    await site.waitForSelector("table.calendar", { timeout: 60000 });
    const text = await site.textContent("main");
    check("site staff see their site and subject", text.includes("Hopital Saint-Louis") && text.includes("101-001"));
    check("site staff see no other site's subjects", !text.includes("102-001"));
    await shot(site, "03-trial-site-user.png");
    await axe(site, "the trial page (site user, with the calendar grid)");
  });
  await step("subject page and signing dialog", async () => {
    await site.goto(`${base}/subjects/${cfg.subject}`);
    await shot(site, "04-subject.png");
    await axe(site, "the subject page");
    await site.click("text=Sign this record…");
    const dialog = site.locator("dialog.sign-dialog");
    await dialog.waitFor({ state: "visible" });
    const what = await dialog.textContent();
    const meaning = await dialog.locator("#sign-meaning").inputValue();
    check("the dialog states what is signed", what.includes("You are signing") && what.includes("Subject 101-001 at site 101") && meaning === "enrollment confirmed", `${what} / ${meaning}`);
    check("the first signature of a session asks for the username", (await dialog.locator("#sign-username").count()) === 1);
    check("the dialog takes focus", await site.evaluate(() => document.activeElement?.closest("dialog") !== null));
    await shot(site, "05-sign-dialog.png");
    await axe(site, "the signing dialog", "dialog.sign-dialog");
    // Escape closes it without signing.
    await site.keyboard.press("Escape");
    await dialog.waitFor({ state: "detached" });
    check("Escape closes the dialog", (await site.locator("dialog").count()) === 0);
    await site.click("text=Sign this record…");
    await dialog.waitFor({ state: "visible" });
    await site.fill("#sign-username", "site_a");
    await site.fill("#sign-password", cfg.password);
    await Promise.all([site.waitForURL(/done=signed/), dialog.locator("button.primary").click()]);
    const sigs = await site.textContent(".signatures");
    check("the signature shows its manifestation", /signed by Sam Sitea on .* UTC: enrollment confirmed/.test(sigs), sigs);
  });
  await step("correction invalidates the signature", async () => {
    await site.fill("#correct-anchor", "2026-10-03");
    await site.fill("#correct-reason", "randomisation date transcribed wrongly");
    await Promise.all([site.waitForURL(/done=corrected/), site.click("#correct button[type=submit]")]);
    const sigs = await site.textContent(".signatures");
    check("after a correction the signature shows as invalidated", sigs.includes("invalidated"), sigs);
    await shot(site, "06-subject-corrected.png");
    await axe(site, "the subject page after a correction");
  });

  // QC reviewer: qualification decision in the dialog.
  const qc = await newPage(browser, "qc");
  pages.push(qc);
  await step("qualification approval as QC", async () => {
    await login(qc, "qc", cfg.password);
    await qc.goto(`${base}/trials/${cfg.trial}/sites/${cfg.site_new}`);
    await shot(qc, "07-site-submitted.png");
    await axe(qc, "the site page (submitted)");
    await qc.click("text=Approve and sign…");
    const dialog = qc.locator("dialog.sign-dialog");
    await dialog.waitFor({ state: "visible" });
    const what = await dialog.textContent();
    check("the decision dialog names the site, the decision and the scan", what.includes(`site ${cfg.site_new}`) && what.includes("site qualification approved") && what.includes("SHA-256"));
    await shot(qc, "08-qualification-dialog.png");
    await qc.fill("#sign-username", "qc");
    await qc.fill("#sign-password", cfg.password);
    await Promise.all([qc.waitForURL(/done=approved/), dialog.locator("button.primary").click()]);
    const main = await qc.textContent("main");
    check("the site is qualified with the signed decision shown", main.includes("Qualified") && /signed by Quinn Checker on .* UTC: site qualification approved/.test(main));
    await shot(qc, "09-site-qualified.png");
    await axe(qc, "the site page (qualified)");
  });

  // QC reviewer: the QC queue, a visit's review page, rejecting it in the signing dialog; then the
  // data queries list and the query's thread.
  await step("QC queue, review page and a signed rejection", async () => {
    await qc.goto(`${base}/trials/${cfg.trial}`);
    await qc.click("nav[aria-label=Trial] >> text=QC queue");
    await qc.waitForURL(/\/qc$/);
    const queue = await qc.textContent("main");
    check("the QC queue lists the visit awaiting QC1", queue.includes("101-001") && queue.includes("QC1"), queue);
    await shot(qc, "17-qc-queue.png");
    await axe(qc, "the QC queue");
    await qc.click("table.qc-queue a");
    await qc.waitForURL(/\/qc\/[0-9a-f-]+\/BL$/);
    const review = await qc.textContent("main");
    check("the review page shows the finding with the charter's limit and what was found", review.includes("slice_thickness") && review.includes("at most 5.0 mm"), review);
    await shot(qc, "18-qc-review.png");
    await axe(qc, "the QC review page");
    await qc.click("text=Reject and sign…");
    const dialog = qc.locator("dialog.sign-dialog");
    await dialog.waitFor({ state: "visible" });
    const what = await dialog.textContent();
    check("the QC decision dialog says what is signed", what.includes("QC review of visit BL") && what.includes("QC1 QC rejected"), what);
    await shot(qc, "19-qc-reject-dialog.png");
    await axe(qc, "the QC decision dialog", "dialog.sign-dialog");
    await qc.fill("#sign-reason", "motion artefacts in the liver");
    // The qualification approval above was this session's first signature.
    if ((await dialog.locator("#sign-username").count()) === 1) await qc.fill("#sign-username", "qc");
    await qc.fill("#sign-password", cfg.password);
    await Promise.all([qc.waitForURL(/done=qc_rejected/), dialog.locator("button.primary").click()]);
    check("the visit shows as rejected", (await qc.textContent("main")).includes("Rejected by QC"));
  });
  await step("data queries as site staff", async () => {
    await site.goto(`${base}/trials/${cfg.trial}`);
    await site.click("nav[aria-label=Trial] >> text=Data queries");
    await site.waitForURL(/\/queries$/);
    const list = await site.textContent("main");
    check("the site's query list shows the rejection", list.includes("QC rejected visit BL of subject 101-001"), list);
    await shot(site, "20-queries.png");
    await axe(site, "the data queries list");
    await site.click("text=QC rejected visit BL of subject 101-001");
    await site.fill("#answer-body", "Rescanned with breath-hold; the new series follows.");
    await Promise.all([site.waitForURL(/done=answered/), site.click("#answer button[type=submit]")]);
    const thread = await site.textContent(".thread");
    check("the answer is in the thread", thread.includes("Rescanned with breath-hold"), thread);
    await shot(site, "21-query-thread.png");
    await axe(site, "a data query with its thread");
  });

  // Trial manager and administrator pages.
  const admin = await newPage(browser, "admin");
  pages.push(admin);
  await step("administrator pages", async () => {
    await login(admin, "admin", cfg.admin_password);
    await admin.goto(`${base}/trials/${cfg.trial}`);
    await admin.waitForSelector("table.calendar", { timeout: 60000 });
    await admin.click("summary:has-text('The charter as your roles see it')");
    await shot(admin, "10-trial-admin.png");
    await axe(admin, "the trial page (administrator, charter open)");
    await admin.goto(`${base}/trials/${cfg.trial}/charter`);
    await shot(admin, "11-charter.png");
    await axe(admin, "the charter versions page");
    await admin.goto(`${base}/audit?trial_id=${cfg.trial}`);
    check("the audit trail lists records", (await admin.locator("table.audit tbody tr").count()) > 10);
    await shot(admin, "12-audit.png");
    await axe(admin, "the audit trail");
    for (const name of ["site-performance", "reader-performance", "response", "timeline"]) {
      await admin.goto(`${base}/trials/${cfg.trial}/reports/${name}`);
      check(`the ${name} report has its heading`, (await admin.locator("main h2").count()) > 0);
      await shot(admin, `16-report-${name}.png`);
      await axe(admin, `the ${name} report`);
    }
    await admin.goto(`${base}/admin/users`);
    await shot(admin, "13-users.png");
    await axe(admin, "the users page");
    await admin.goto(`${base}/trials/${cfg.trial}/grants`);
    await shot(admin, "14-grants.png");
    await axe(admin, "the roles page");
  });
  await step("not-found page", async () => {
    // Its own page: the browser logs the 404 of the document as a console error, on purpose here.
    const nf = await newPage(browser, "not-found");
    await login(nf, "admin", cfg.admin_password);
    const r = await nf.goto(`${base}/trials/${cfg.trial}/sites/nope`);
    check("an unknown site answers 404 with a way back", r.status() === 404 && (await nf.textContent("main")).includes("Your trials"));
    await shot(nf, "15-not-found.png");
    await axe(nf, "the not-found page");
    await nf.context().close();
  });

  // A blinded reader sees the trial without sites, subjects or arms.
  const reader = await newPage(browser, "reader");
  pages.push(reader);
  await step("reader's trial page", async () => {
    await login(reader, "reader", cfg.password);
    await reader.goto(`${base}/trials/${cfg.trial}`);
    await reader.click("summary:has-text('The charter as your roles see it')");
    const text = await reader.textContent("body");
    const leaked = ["Hopital Saint-Louis", "Charite", "Acmetinib 200", "Docetaxel 75", "101-001", "SLS_CT1"].filter((s) => text.includes(s));
    check("a reader's trial page shows no site, subject or arm", leaked.length === 0, leaked.join(", "));
    await shot(reader, "16-trial-reader.png");
    await axe(reader, "the trial page (reader)");
  });

  const errors = pages.flatMap((p) => p.errors);
  check("no console errors (no CSP violation, no script error)", errors.length === 0, errors.join("\n"));
} finally {
  await browser.close();
}

finish();
