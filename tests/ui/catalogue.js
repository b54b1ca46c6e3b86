// Drives `portcullis ui` in a real Chromium over the policy directory
// `portcullis init` wrote (the catalogue YAML form, with its saved scan).
// Called by tests/ui.rs (init_then_the_page) with the page's URL; prints
// one JSON line of what it saw and exits non-zero on the first expectation
// that fails. Chromium is Debian's, as in browser.js.
//
//   node tests/ui/catalogue.js URL
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
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  try {
    const page = await browser.newPage();
    const scriptErrors = [];
    page.on("pageerror", (e) => scriptErrors.push(String(e)));
    page.setDefaultTimeout(10000);

    // 1. The tools by risk, with the saved scan's descriptions and the
    //    effects init chose.
    await page.goto(url);
    const server = page.locator('[data-server="everything"]');
    const row = server.locator('tr[data-tool="echo"]');
    await row.waitFor();
    seen.meta = await server.locator(".meta").first().textContent();
    seen.groups = await server.locator(".group h3").allTextContents();
    seen.before = (await row.locator(".effect").textContent()).trim();
    expect(seen.before === "allow", `echo is allowed before, got ${seen.before}`);
    seen.write_effect = (await server.locator('tr[data-tool="gzip-file-as-resource"] .effect').textContent()).trim();
    seen.description = await row.locator("td").nth(3).textContent();
    seen.edit_enabled = await row.locator("button.edit").isEnabled();

    // 2. allow -> deny with a reason: preview, then save. init's tests pin
    //    echo as allowed, so they fail and the page says so: "Save anyway".
    await row.locator("button.edit").click();
    await page.selectOption("#edit-effect", "deny");
    await page.fill("#edit-reason", "echo is off for this team");
    await page.click("#edit-preview");
    await page.locator("#edit-status").filter({ hasText: /./ }).waitFor();
    seen.preview_status = await page.textContent("#edit-status");
    seen.diff = await page.locator("#edit-diff span").allTextContents();
    seen.validate = await page.textContent("#edit-validate");
    seen.tests = await page.textContent("#edit-tests");
    seen.save_label = await page.textContent("#edit-save");
    await page.click("#edit-save");
    await page.waitForFunction(() => document.getElementById("edit-status").textContent.startsWith("Saved"));
    await page.waitForFunction(() => {
      const e = document.querySelector('[data-server="everything"] tr[data-tool="echo"] .effect');
      return e && e.textContent.trim() === "deny";
    });
    seen.after = (await row.locator(".effect").textContent()).trim();
    seen.after_rule = await row.locator(".rule").first().textContent();
    await page.click("#edit-close");

    // 3. An invalid limit on a write tool: the compiler's diagnostic, no save.
    const write = server.locator('tr[data-tool="toggle-simulated-logging"]');
    await write.locator("button.edit").click();
    seen.prefilled = [await page.inputValue("#edit-max"), await page.inputValue("#edit-window")];
    await page.fill("#edit-max", "0");
    await page.click("#edit-preview");
    await page.locator("#edit-status.error").waitFor();
    seen.invalid_status = await page.textContent("#edit-status");
    seen.invalid_validate = await page.textContent("#edit-validate");
    seen.invalid_save_disabled = await page.isDisabled("#edit-save");
    seen.invalid_save = await page.evaluate(async () => {
      const token = document.querySelector('meta[name="portcullis-token"]').content;
      const r = await fetch("/api/save", {
        method: "POST",
        headers: { "X-Portcullis-Token": token, "Content-Type": "application/json" },
        body: JSON.stringify({ server: "everything", tool: "toggle-simulated-logging", effect: "limit", max: "0", window: "minute" }),
      });
      return { status: r.status, body: await r.json() };
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
