// Opens wasmgate's status page in headless Chromium (Debian's, driven by playwright-core)
// and checks what an operator would look for, saving a screenshot of each state.
//
//   node status_page.mjs main ADMIN_URL PUBLIC_URL SCREENSHOT_DIR HELLO_REQUESTS COUNTER_REQUESTS
//   node status_page.mjs thousand ADMIN_URL PUBLIC_URL SCREENSHOT_DIR MODULES
import { chromium } from "playwright-core";

const [mode, url, publicUrl, shots, count, counterCalls] = process.argv.slice(2);
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
const cell = (page, module, column) =>
  page.evaluate(([m, c]) => {
    const keys = [...document.querySelectorAll("#columns th")].map((th) => th.dataset.key);
    const row = document.querySelector(`tr[data-module="${m}"]`);
    return row ? row.children[keys.indexOf(c)].textContent : null;
  }, [module, column]);
const polls = (page) => page.evaluate(() => window.wasmgateStatus.state.polls);

/// Requests `path` on the public port in a loop until `stop()`.
function traffic(path) {
  let running = true;
  const loop = (async () => {
    while (running) {
      try { await (await fetch(publicUrl + path)).arrayBuffer(); } catch { /* keep going */ }
    }
  })();
  return async () => { running = false; await loop; };
}

async function main(page) {
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url);
  await page.waitForFunction(() => window.wasmgateStatus && window.wasmgateStatus.state.polls >= 1);
  const requests = await cell(page, "hello", "requests");
  const p99 = await cell(page, "hello", "p99");
  check(`the first paint shows hello's ${count} requests`, requests === count, requests);
  check("the first paint shows hello's p99 since start", /\d+(\.\d+)? (µs|ms|s)/.test(p99), p99);
  check("the first paint was the first poll (no rate yet)", (await polls(page)) === 1 &&
        (await cell(page, "hello", "rate")) === "…", await cell(page, "hello", "rate"));
  await page.screenshot({ path: `${shots}/first-paint.png`, fullPage: true });

  const stopHello = traffic("/hello");
  const stopWatenv = traffic("/watenv");
  await page.waitForFunction(() => {
    const s = window.wasmgateStatus.state;
    const hello = s.rows.find((r) => r.name === "hello");
    return s.polls >= 3 && hello && hello.rate > 0;
  }, null, { timeout: 20000 }).catch(() => {});
  const rate = await cell(page, "hello", "rate");
  check("after the second poll hello shows a non-zero rate", parseFloat(rate) > 0, rate);
  const points = await page.evaluate(() => {
    const c = window.wasmgateStatus.charts;
    const values = (plot, i) => plot.data[i].filter((v) => v !== null && v !== undefined).length;
    return { rate: values(c.rate, 1), p99: values(c.latency, 2), pool: values(c.pool, 1), ttfb: values(c.ttfb, 1) };
  });
  check("the gateway charts have data points (req/s, p99, pool, first byte)",
        points.rate > 0 && points.p99 > 0 && points.pool > 0 && points.ttfb > 0, JSON.stringify(points));
  const spark = await page.evaluate(() => {
    const s = window.wasmgateStatus.sparklines.get("hello");
    return s ? s.plot.data[1].filter((v) => v > 0).length : -1;
  });
  check("hello has a sparkline with data", spark > 0, spark);
  check("the broken module is highlighted, with its error",
        await page.locator('tr[data-module="broken"].attention').count() === 1 &&
        /broken failed to load: .*cannot compile/.test(await page.locator("#attention").textContent()),
        await page.locator("#attention").textContent());
  check("the module answering only 5xx is highlighted",
        await page.locator('tr[data-module="crashy"].attention').count() === 1 &&
        /crashy answers mostly 5xx/.test(await page.locator("#attention").textContent()));
  const store = (column) => page.evaluate((c) => {
    const row = document.querySelector('#store-rows tr[data-store="counts"]');
    return row ? row.children[c].textContent : null;
  }, column);
  check(`the store 'counts' shows its ${counterCalls} failed calls, by result`,
        (await store(2)) === counterCalls && (await store(3)) === `unavailable ${counterCalls}`,
        `${await store(2)} errors: ${await store(3)}`);
  const stopCounter = traffic("/counter/x");
  const unavailable = await page.waitForFunction(
    () => /store counts: .* unavailable since the last poll/.test(document.getElementById("attention").textContent),
    null, { timeout: 20000 }).then(() => true, () => false);
  check("a store whose calls are failing as unavailable is called out", unavailable,
        await page.locator("#attention").textContent());
  await stopCounter();
  check("each module shows its ABI",
        (await cell(page, "hello", "abi")) === "cgi" && (await cell(page, "rsapi", "abi")) === "wasi-http");
  await page.screenshot({ path: `${shots}/live.png`, fullPage: true });

  // Sorting and filtering.
  const order = () => page.evaluate(() => [...document.querySelectorAll("#modules tr")].map((tr) => tr.dataset.module));
  await page.click('#columns th[data-key="requests"]');
  await page.click('#columns th[data-key="requests"]');
  const byRequests = await order();
  check("a second click on 'requests' sorts the busiest first", ["hello", "watenv"].includes(byRequests[0]),
        byRequests.join(","));
  await page.fill("#filter", "wat");
  const filtered = await order();
  check("the filter keeps only the matching modules", filtered.length === 1 && filtered[0] === "watenv",
        filtered.join(","));
  await page.fill("#filter", "");

  // A pool near full: four slow requests at once on a four-slot pool.
  const stopSlow = [1, 2, 3, 4].map(() => traffic("/slow"));
  const full = await page.waitForFunction(
    () => /pool is near full/.test(document.getElementById("attention").textContent), null, { timeout: 20000 })
    .then(() => true, () => false);
  check("a pool near full is called out", full, await page.locator("#attention").textContent());
  await page.screenshot({ path: `${shots}/pool-full.png`, fullPage: true });
  await Promise.all(stopSlow.map((stop) => stop()));

  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check("on a narrow screen nothing but the table scrolls sideways", overflow <= 1, `${overflow} px too wide`);
  await page.screenshot({ path: `${shots}/narrow.png`, fullPage: true });
  await stopHello();
  await stopWatenv();
  check("no script errors", errors.length === 0, errors.join("; "));
}

async function thousand(page) {
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const started = Date.now();
  await page.goto(url);
  await page.waitForFunction((n) => document.querySelectorAll("#modules tr").length === n, Number(count),
                             { timeout: 20000 }).catch(() => {});
  const took = Date.now() - started;
  const rows = await page.evaluate(() => document.querySelectorAll("#modules tr").length);
  check(`${count} modules render in under 2 s`, rows === Number(count) && took < 2000, `${rows} rows in ${took} ms`);
  check("the sparklines are only for the busiest", await page.locator(".spark").count() <= 8);
  await page.screenshot({ path: `${shots}/thousand.png` });
  check("no script errors", errors.length === 0, errors.join("; "));
}

try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await (mode === "thousand" ? thousand(page) : main(page));
} finally {
  await browser.close();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
