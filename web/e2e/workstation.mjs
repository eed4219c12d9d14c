// The reader workstation in headless chromium (started by tests/it/workstation.rs): a reader
// opens a baseline task, waits for the first image, scrolls the CT, draws a bidirectional
// measurement with the mouse, attaches it to a new target lesion, sees the engine's answer and
// signs; then opens the follow-up, where the baseline is shown beside it and "go to" jumps to the
// slice T1 was measured on. Prints the time to the first image and to the whole series loaded.

import { axe, base, cfg, check, finish, launch, login, newPage, shot, step } from "./lib.mjs";

// WebGL without a GPU: ANGLE on SwiftShader (Cornerstone3D renders with WebGL).
const browser = await launch(["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"]);
const page = await newPage(browser, "reader");
const slice = (id) => page.$eval(id, (e) => Number(e.dataset.slice || 0));

await step("the reader opens the workstation of a baseline task", async () => {
  await login(page, cfg.username, cfg.password);
  const t0 = Date.now();
  await page.goto(`${base}/read-tasks/${cfg.task}/workstation`);
  await page.waitForSelector("#vp-current[data-ready=true]", { timeout: 60000 });
  const first = Date.now() - t0;
  await page.waitForSelector("#workstation[data-series-loaded=true]", { timeout: 120000 });
  const all = Date.now() - t0;
  const t = await page.evaluate(() => window.corelabWorkstation);
  check("the first image is shown", t.firstImageMs > 0, JSON.stringify(t));
  check(`the whole series is loaded (${t.loaded} of ${cfg.slices})`, t.loaded === cfg.slices && t.slices === cfg.slices, JSON.stringify(t));
  // Both as the page measured them (from navigation start) and as seen from here.
  console.log(`# timing: first image ${t.firstImageMs} ms, whole series (${cfg.slices} slices) ${t.seriesLoadedMs} ms after navigation start`);
  console.log(`# timing (test driver): first image ${first} ms, whole series ${all} ms after page.goto`);
  // Something visible: the canvas is not one flat colour.
  const varied = await page.$eval("#vp-current canvas", (c) => {
    const tmp = document.createElement("canvas");
    tmp.width = 64;
    tmp.height = 64;
    const g = tmp.getContext("2d");
    g.drawImage(c, 0, 0, 64, 64);
    const d = g.getImageData(0, 0, 64, 64).data;
    const values = new Set();
    for (let i = 0; i < d.length; i += 4) values.add(d[i]);
    return values.size;
  });
  check(`the image has content (${varied} grey levels)`, varied > 2);
  check("no console errors (CSP violations included)", page.errors.length === 0, page.errors.join("\n"));
  await shot(page, "ws-01-first-image.png");
  await axe(page, "the workstation", "main");
});

await step("stack scroll with the keyboard and the mouse wheel", async () => {
  const before = await slice("#vp-current");
  await page.focus("#vp-current");
  for (let i = 0; i < 5; i++) await page.keyboard.press("ArrowDown");
  await page.waitForFunction((b) => Number(document.querySelector("#vp-current").dataset.slice) === b + 5, before);
  check("five ArrowDown presses move five slices", (await slice("#vp-current")) === before + 5);
  await page.keyboard.press("End");
  await page.waitForFunction((n) => Number(document.querySelector("#vp-current").dataset.slice) === n, cfg.slices);
  check("End goes to the last slice", (await slice("#vp-current")) === cfg.slices);
  await page.keyboard.press("Home");
  await page.waitForFunction(() => Number(document.querySelector("#vp-current").dataset.slice) === 1);
  const box = await page.$("#vp-current").then((e) => e.boundingBox());
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  for (let i = 0; i < 3; i++) {
    await page.mouse.wheel(0, 120);
    await page.waitForTimeout(100);
  }
  await page.waitForFunction(() => Number(document.querySelector("#vp-current").dataset.slice) > 1);
  check("the mouse wheel scrolls", (await slice("#vp-current")) > 1);
  const status = await page.textContent("#status-current");
  check(`the slice is announced ("${status}")`, status.includes(`of ${cfg.slices}`));
  // Down the stack a little.
  await page.focus("#vp-current");
  for (let i = 0; i < 16; i++) await page.keyboard.press("ArrowDown");
  await page.keyboard.press("2");
  await page.keyboard.press("1");
  check("presets keep working (soft tissue again)", (await page.textContent("#tool-status")).includes("Soft tissue"));
});

await step("a bidirectional measurement drawn with the mouse, attached to a new target", async () => {
  await page.click("#tool-bidirectional");
  check("the Bidirectional tool is pressed", (await page.getAttribute("#tool-bidirectional", "aria-pressed")) === "true");
  const box = await page.$("#vp-current").then((e) => e.boundingBox());
  const cx = box.x + box.width / 2;
  const cy = box.y + box.height / 2;
  await page.mouse.move(cx - 40, cy - 10);
  await page.mouse.down();
  for (let i = 1; i <= 10; i++) await page.mouse.move(cx - 40 + 8 * i, cy - 10 + 2 * i);
  await page.mouse.up();
  await page.waitForSelector("#m1", { timeout: 20000 });
  const text = await page.textContent("#m1");
  check(`the measurement is listed ("${text.split("Show")[0].trim()}")`, /M1 bidirectional: \d+\.\d mm × \d+\.\d mm/.test(text));
  await page.selectOption("#m1-slot", "new-target");
  await page.click("#m1-attach");
  await page.waitForSelector("#lesion-T1");
  const d = Number(await page.inputValue("#target-0-diameter"));
  check(`T1's diameter comes from the measurement (${d} mm)`, d > 0);
  await page.fill("#target-0-organ", "liver");
  const ref = await page.textContent("#lesion-T1 .imgref");
  check(`T1 knows where it was measured ("${ref.trim()}")`, /slice \d+/.test(ref));
  await shot(page, "ws-02-measured.png");
});

await step("submit shows the engine's answer, then the reader signs", async () => {
  await page.click("#save-draft");
  await page.waitForFunction(() => document.querySelector("#form-status").textContent.includes("Draft saved"));
  await page.click("#submit-read");
  await page.waitForSelector("#sign-dialog[open]");
  const result = await page.textContent("#computed-result");
  check(`the dialog shows the computed baseline sum ("${result.replace(/\s+/g, " ").trim()}")`, result.includes("Baseline sum of diameters"));
  await shot(page, "ws-03-sign-dialog.png");
  await axe(page, "the signing dialog", "#sign-dialog");
  // A wrong password first: refused, nothing signed.
  if (await page.$("#sign-username")) await page.fill("#sign-username", cfg.username);
  await page.fill("#sign-password", "not the password");
  await page.click("#sign-submit");
  await page.waitForSelector("#sign-problem:not([hidden])");
  check("a wrong password is refused in the dialog", (await page.textContent("#sign-problem")).includes("password"));
  // The browser logs the refused request (422) as a console error: expected here, and only here.
  page.errors = page.errors.filter((e) => !e.includes("status of 422"));
  await page.fill("#sign-password", cfg.password);
  await page.click("#sign-submit");
  await page.waitForSelector("#signed:not([hidden])");
  const signed = await page.textContent("#signed");
  check("signed and locked", signed.includes("Signed and locked") && signed.includes("read completed"), signed);
  check("the form is locked", await page.isDisabled("#submit-read"));
  await shot(page, "ws-04-signed.png");
});

await step("the follow-up shows the baseline beside it and goes to T1", async () => {
  await page.goto(`${base}/read-tasks/${cfg.follow_up}/workstation`);
  await page.waitForSelector("#vp-current[data-ready=true]");
  await page.waitForSelector("#vp-prior[data-ready=true]");
  check("the prior pane shows the baseline", (await page.textContent("#series-prior")).includes("baseline"));
  const marks = await page.evaluate(() => window.corelabWorkstation.earlierMarks);
  check(`the baseline measurement of T1 is drawn on the prior pane (${marks})`, marks === 1);
  // Both panes to the first slice (linked), then to T1.
  await page.focus("#vp-prior");
  await page.keyboard.press("Home");
  await page.waitForFunction(() => Number(document.querySelector("#vp-current").dataset.slice) === 1);
  await page.click("#goto-baseline-T1");
  const measured = await page.evaluate(async (task) => {
    const r = await fetch(`/api/v1/read-tasks/${task}`);
    const v = await r.json();
    return v.earlier[0].assessment.targets[0].image.sop_instance_uid;
  }, cfg.follow_up);
  await page.waitForFunction(() => document.querySelector("#tool-status").textContent.includes("where the lesion was measured"));
  const priorSlice = await slice("#vp-prior");
  check(`"Go to T1 at baseline" jumps to the slice it was measured on (${priorSlice})`, priorSlice > 1 && measured.length > 0);
  // Linked scrolling: the current timepoint follows.
  await page.waitForFunction((s) => Number(document.querySelector("#vp-current").dataset.slice) === s, priorSlice);
  check("the current timepoint scrolled with it (linked)", (await slice("#vp-current")) === priorSlice);
  // On that slice the baseline measurement is drawn (the tool's SVG lines in the prior pane).
  await page.waitForSelector("#vp-prior svg line", { timeout: 10000 });
  check("T1's baseline measurement is drawn where it was measured", (await page.$$("#vp-prior svg line")).length >= 2);
  check("no console errors after measuring, signing and on the follow-up", page.errors.length === 0, page.errors.join("\n"));
  await shot(page, "ws-05-follow-up.png");
});

await browser.close();
finish();
