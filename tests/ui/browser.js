// Drives `portcullis ui` in a real Chromium (Debian's, via playwright-core's
// executablePath: Playwright's own browser download is not used). Called by
// tests/ui.rs with the page's URL; prints one JSON line of what it saw and
// exits non-zero on the first expectation that fails.
//
//   node tests/ui/browser.js URL
"use strict";

const { chromium } = require("playwright-core");

const url = process.argv[2];
const executablePath = process.env.PORTCULLIS_CHROMIUM || "/usr/bin/chromium";
const seen = {};

function expect(cond, what) {
  if (!cond) throw new Error(`expected: ${what}`);
}

(async () => {
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    // Root in CI containers: Chromium's sandbox needs user namespaces.
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  try {
    const page = await browser.newPage();
    // Script errors, and console errors (a failed request logs one): none
    // may happen until the test makes refused requests on purpose (step 3).
    const errors = [];
    const scriptErrors = [];
    page.on("pageerror", (e) => scriptErrors.push(String(e)));
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
    page.setDefaultTimeout(10000);

    // 1. The page loads and lists the tools by risk, from the saved scan.
    await page.goto(url);
    const row = page.locator('[data-server="everything"] tr[data-tool="toggle-simulated-logging"]');
    await row.waitFor();
    seen.before = (await row.locator(".effect").textContent()).trim();
    expect(seen.before === "allow", `toggle-simulated-logging is allowed before, got ${seen.before}`);
    seen.groups = await page.locator('[data-server="everything"] .group h3').allTextContents();
    seen.echo_rule = await page.locator('tr[data-tool="echo"] .rule .where').first().textContent();
    seen.description = await page.locator('tr[data-tool="echo"] td').nth(3).textContent();

    // 2. allow -> deny: preview (diff, validate, tests), then save.
    await row.locator("button.edit").click();
    await page.selectOption("#edit-effect", "deny");
    await page.click("#edit-preview");
    await page.locator("#edit-status.ok").waitFor();
    seen.preview_status = await page.textContent("#edit-status");
    seen.diff_added = await page.locator("#edit-diff .add").allTextContents();
    seen.validate = await page.textContent("#edit-validate");
    seen.tests = await page.textContent("#edit-tests");
    await page.click("#edit-save");
    await page.waitForFunction(() => document.getElementById("edit-status").textContent.startsWith("Saved"));
    seen.save_status = await page.textContent("#edit-status");
    await page.waitForFunction(() => {
      const e = document.querySelector('tr[data-tool="toggle-simulated-logging"] .effect');
      return e && e.textContent.trim() === "deny";
    });
    seen.after = (await row.locator(".effect").textContent()).trim();
    await page.click("#edit-close");
    seen.errors = errors.slice();

    // 3. An invalid limit: the compiler's diagnostic, no way to save.
    await page.locator('tr[data-tool="echo"] button.edit').click();
    await page.selectOption("#edit-effect", "limit");
    await page.fill("#edit-max", "0");
    await page.click("#edit-preview");
    await page.locator("#edit-status.error").waitFor();
    seen.invalid_status = await page.textContent("#edit-status");
    seen.invalid_validate = await page.textContent("#edit-validate");
    seen.invalid_save_disabled = await page.isDisabled("#edit-save");
    // The server refuses the save too, whatever the page's button says.
    seen.invalid_save = await page.evaluate(async () => {
      const token = document.querySelector('meta[name="portcullis-token"]').content;
      const r = await fetch("/api/save", {
        method: "POST",
        headers: { "X-Portcullis-Token": token, "Content-Type": "application/json" },
        body: JSON.stringify({ server: "everything", tool: "echo", effect: "limit", max: "0", window: "minute" }),
      });
      return { status: r.status, body: await r.json() };
    });
    await page.click("#edit-close");

    // 4. The decisions view: the denial the proxy made, and the chart.
    await page.click("#tab-decisions");
    const denial = page.locator("#recent-denials tr.denial", { hasText: "gzip-file-as-resource" });
    await denial.first().waitFor();
    seen.denial = await denial.first().textContent();
    seen.denied_total = await page.textContent("#denied-total");
    seen.bars = await page.locator("svg.chart rect.bar").count();

    // 5. Requests without the token are refused (same origin, from the page).
    seen.no_token = await page.evaluate(async () => {
      const a = await fetch("/api/servers");
      const b = await fetch("/api/save", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
      return [a.status, b.status];
    });
    seen.script_errors = scriptErrors;
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(seen));
})().catch((e) => {
  console.log(JSON.stringify(seen));
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
