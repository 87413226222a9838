// Opens wasmgate's status page in headless Chromium (Debian's, driven by playwright-core),
// waits until it shows live figures, checks what a person would look for, and saves a
// screenshot. Usage: node status_page.mjs ADMIN_URL SCREENSHOT.png
import { chromium } from "playwright-core";

const [url, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let failed = 0, passed = 0;
const check = (name, ok, detail = "") => {
  console.log(`${ok ? "PASS" : "FAIL"} ${name}${ok ? "" : ": " + detail}`);
  ok ? passed++ : failed++;
};
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 420 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url);
  // A p99 figure appears once two polls have seen traffic in between.
  const p99 = page.locator('tr[data-module="hello"] td:nth-child(10)');
  await page.waitForFunction(() => {
    const cell = document.querySelector('tr[data-module="hello"] td:nth-child(10)');
    return cell && /\d/.test(cell.textContent);
  }, null, { timeout: 20000 }).catch(() => {});
  check("the page title", (await page.title()) === "wasmgate status");
  check("hello is listed as ready",
        (await page.locator('tr[data-module="hello"] td:nth-child(2)').textContent()) === "ready");
  check("hello shows a live p99 latency", /\d+(\.\d+)? (µs|ms|s)/.test(await p99.textContent()), await p99.textContent());
  const rate = await page.locator('tr[data-module="hello"] td:nth-child(7)').textContent();
  check("hello shows a request rate above zero", parseFloat(rate) > 0, rate);
  const broken = page.locator('tr[data-module="broken"]');
  check("the broken module is listed as failed with its error",
        (await broken.locator("td:nth-child(2)").textContent()) === "failed" &&
        /cannot compile/.test(await broken.locator("td:nth-child(11)").textContent()));
  check("each module shows its ABI",
        (await page.locator('tr[data-module="hello"] td:nth-child(3)').textContent()) === "cgi" &&
        (await page.locator('tr[data-module="rsapi"] td:nth-child(3)').textContent()) === "wasi-http");
  check("the summary counts the modules", /4 modules, 3 ready/.test(await page.locator("#summary").textContent()),
        await page.locator("#summary").textContent());
  check("no script errors", errors.length === 0, errors.join("; "));
  await page.screenshot({ path: screenshot, fullPage: true });
} finally {
  await browser.close();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
