// Browser check of the reading pages: the adjudicator logs in, opens the adjudication list from
// the trial navigation, the side-by-side page of both readers' blinded reads, and the signing
// dialog of a decision; the reader opens their task list. Screenshots and axe-core on each page.
// Started by `reading_pages_in_the_browser_...` in crates/corelab/tests/it/reading_pages.rs.

import { axe, base, cfg, check, finish, launch, login, newPage, shot, step } from "./lib.mjs";

const browser = await launch();
try {
  const adj = await newPage(browser, "adjudicator");
  await step("adjudicator: list and side-by-side page", async () => {
    await login(adj, "adjudicator", cfg.password);
    await adj.goto(`${base}/trials/${cfg.trial}`);
    await Promise.all([adj.waitForURL(/\/adjudication$/), adj.click("nav[aria-label=Trial] >> text=Adjudication")]);
    const list = await adj.textContent("main");
    check("the adjudication list shows the blinded case", list.includes(cfg.case_code) && list.includes("progression date"), list);
    await shot(adj, "30-adjudication-list.png");
    await axe(adj, "the adjudication list");
    await Promise.all([adj.waitForURL(/\/adjudications\/[0-9a-f-]+$/), adj.click(`text=Open the adjudication of ${cfg.case_code}`)]);
    const main = await adj.textContent("main");
    check("both readers' measurements side by side", main.includes("41.2 mm") && main.includes("33.1 mm"), main);
    check("the trigger is stated", main.includes("Why this case is adjudicated") && main.includes("progression date"), main);
    check("no site, subject or scan date on the page", !/101-001|Hopital|Saint-Louis|2026-09-20|2026-11-26/.test(main), main);
    check("what differs is marked in words", (await adj.locator("tr.differs .tag").count()) > 0);
    await shot(adj, "31-adjudication-side-by-side.png");
    await axe(adj, "the adjudication page");
  });
  await step("adjudicator: the signing dialog of a decision", async () => {
    await adj.click("text=Choose reader 2 and sign…");
    const dialog = adj.locator("dialog.sign-dialog");
    await dialog.waitFor({ state: "visible" });
    const what = await dialog.textContent();
    check("the dialog states the case, the choice and the meaning", what.includes(cfg.case_code) && what.includes("reader 2") && what.includes("adjudication decided"), what);
    await shot(adj, "32-adjudication-sign-dialog.png");
    await axe(adj, "the adjudication signing dialog", "dialog.sign-dialog");
    await adj.fill("#sign-reason", "Reader 2's TP2 measurements are consistent with the baseline technique.");
    await adj.fill("#sign-username", "adjudicator");
    await adj.fill("#sign-password", cfg.password);
    await Promise.all([adj.waitForURL(/done=adjudicated/), dialog.locator("button.primary").click()]);
    const main = await adj.textContent("main");
    check("the decision shows with its signature", main.includes("Decided and signed") && /signed by .* UTC: adjudication decided/.test(main), main);
    await shot(adj, "33-adjudication-decided.png");
    await axe(adj, "the decided adjudication");
  });
  const reader = await newPage(browser, "reader");
  await step("reader: task list and a submitted read", async () => {
    await login(reader, "reader", cfg.password);
    await reader.goto(`${base}/trials/${cfg.trial}`);
    await Promise.all([reader.waitForURL(/\/reading$/), reader.click("nav[aria-label=Trial] >> text=Reading")]);
    const list = await reader.textContent("main");
    check("the task list shows the reader's timepoints", list.includes("TP1") && list.includes("TP2") && list.includes(cfg.case_code), list);
    check("each task opens the workstation", (await reader.locator('a[href$="/workstation"]').count()) >= 2);
    await shot(reader, "34-reading-tasks.png");
    await axe(reader, "the reading task list");
    await Promise.all([reader.waitForURL(/\/read-tasks\/[0-9a-f-]+$/), reader.locator("text=View the submitted read").first().click()]);
    await shot(reader, "35-read-task.png");
    await axe(reader, "the read-only read page");
  });
  const errors = [...adj.errors, ...reader.errors];
  check("no console errors (CSP violations included)", errors.length === 0, errors.join("\n"));
} finally {
  await browser.close();
}
finish();
