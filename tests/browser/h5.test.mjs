// The H5 page in a real browser: Debian's Chromium driven by playwright-core,
// checked by axe-core, against a stack started the `make run` way
// (tests/e2e/test_h5_browser.py starts it and runs `node --test` on this file).
//
// Environment: YZTC_H5_GATEWAY (http://127.0.0.1:PORT, the page's origin),
// YZTC_H5_SMSC (the SMS centre simulator's inspection API), YZTC_H5_SCREENSHOTS
// (a folder for the 375 px screenshots), YZTC_H5_SECRETS (a file to which
// every auth code, state and session token the browser saw is appended, one
// a line, for the Python side to look for in the stack's logs), CHROMIUM
// (default /usr/bin/chromium).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const GATEWAY = process.env.YZTC_H5_GATEWAY;
const SMSC = process.env.YZTC_H5_SMSC;
const SHOTS = process.env.YZTC_H5_SCREENSHOTS;
const SECRETS = process.env.YZTC_H5_SECRETS;
const ORIGIN = new URL(GATEWAY).origin;
const AUTHORIZE_PATH = "/oauth2/publicAppAuthorize.htm";
// The flags of a closed network (machine notes): no background connections.
const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: CHROMIUM_ARGS,
  });
});

after(async () => {
  await browser?.close();
});

// -- helpers -----------------------------------------------------------------

/** A fresh context and page at 375 px that records what the page asks for,
 *  CSP violations (as the page's own `securitypolicyviolation` events and as
 *  console lines) and uncaught errors. */
async function openPage({ width = 375 } = {}) {
  const context = await browser.newContext({ viewport: { width, height: 800 }, locale: "zh-CN" });
  const page = await context.newPage();
  const seen = { requests: [], csp: [], pageErrors: [], bytes: 0 };
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  page.on("request", (request) => {
    seen.requests.push({ url: request.url(), type: request.resourceType(), at: Date.now() });
    const url = new URL(request.url());
    if (url.pathname === "/h5/callback" && SECRETS) {
      for (const name of ["auth_code", "state"]) {
        const value = url.searchParams.get(name);
        if (value) appendFileSync(SECRETS, `${value}\n`);
      }
    }
  });
  page.on("console", (message) => {
    if (/Content.Security.Policy/i.test(message.text())) seen.csp.push(message.text());
  });
  page.on("pageerror", (error) => seen.pageErrors.push(String(error)));
  return { context, page, seen };
}

/** Nothing left the gateway's origin but the login's trip to Alipay's
 *  authorization page; no CSP violation; no uncaught script error. */
async function assertClean(page, seen) {
  for (const { url, type } of seen.requests) {
    if (url.startsWith("data:")) continue;
    const target = new URL(url);
    const toAlipayLogin = type === "document" && target.pathname === AUTHORIZE_PATH;
    assert.ok(target.origin === ORIGIN || toAlipayLogin, `a request left the origin: ${type} ${target.origin}${target.pathname}`);
  }
  const events = await page.evaluate(() => window.__csp).catch(() => []);
  assert.deepEqual([...seen.csp, ...events], [], "CSP violations");
  assert.deepEqual(seen.pageErrors, [], "uncaught script errors");
}

/** Logs in through the Alipay simulator's web authorization as demo user `user` (0 or 1). */
async function login(page, user = 0) {
  await page.goto(`${GATEWAY}/`);
  await page.locator("#view-login").waitFor();
  await page.getByRole("link", { name: "使用支付宝登录" }).click();
  await page.waitForURL((url) => url.pathname === AUTHORIZE_PATH);
  await page.getByRole("button", { name: /以演示用户/ }).nth(user).click();
  await page.waitForURL(`${GATEWAY}/`);
  await page.locator("#view-query").waitFor();
  // The auth code and state came back in the callback's address and are gone now.
  assert.equal(page.url(), `${GATEWAY}/`);
  const cookies = await page.context().cookies(GATEWAY);
  const session = cookies.find((c) => c.name === "yztc_session");
  assert.ok(session && session.httpOnly && session.sameSite === "Strict", "an HttpOnly SameSite=Strict session cookie");
  if (SECRETS) appendFileSync(SECRETS, `${session.value}\n`);
  assert.equal(await page.evaluate(() => document.cookie), "", "no cookie is readable by the page's script");
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
  assert.ok(!stored.includes(session.value), "the token is in no storage");
}

async function smsTexts(phone) {
  const response = await fetch(`${SMSC}/messages?dest=${phone}`);
  return (await response.json()).messages.map((m) => ({ source: m.source, text: m.text }));
}

async function latestCode(phone, before = 0) {
  for (let i = 0; i < 300; i++) {
    const codes = (await smsTexts(phone)).map((m) => /验证码为(\d{6})/.exec(m.text)?.[1]).filter(Boolean);
    if (codes.length > before) return codes.at(-1);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error("no verification SMS reached the SMS centre");
}

async function codeCount(phone) {
  return (await smsTexts(phone)).filter((m) => /验证码为/.test(m.text)).length;
}

/** Fills phone and ID six, asks for a code, reads it off the SMS centre, fills it. */
async function fillWithCode(page, phone, idLast6) {
  const before = await codeCount(phone);
  await page.getByLabel("手机号码").fill(phone);
  await page.getByLabel("身份证号码后六位").fill(idLast6);
  await page.getByRole("button", { name: "获取验证码" }).click();
  await assert.doesNotReject(page.locator("#send-code", { hasText: /秒后可重新获取/ }).waitFor());
  const code = await latestCode(phone, before);
  await page.getByLabel("短信验证码").fill(code);
  return code;
}

async function errorOf(page, field) {
  const box = page.locator(`#${field}-error`);
  await box.waitFor();
  return box.innerText();
}

async function axe(page, label) {
  await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } }),
  );
  const found = result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  assert.deepEqual(found, [], `axe violations (${label})`);
}

async function screenshot(page, name) {
  if (SHOTS) await page.screenshot({ path: path.join(SHOTS, name), fullPage: true });
}

async function waitCompleted(page) {
  await page.locator('#view-progress[data-final="true"]').waitFor({ timeout: 90_000 });
}

// -- the flows -----------------------------------------------------------------

test("the whole flow: authorize, code by SMS, submit, progress to COMPLETED, the result SMS", async () => {
  const { context, page, seen } = await openPage();
  await login(page);
  await fillWithCode(page, "13800138000", "12345x");
  await page.getByLabel(/我已阅读并同意/).check();
  await screenshot(page, "query.png");
  await page.getByRole("button", { name: "提交查询" }).click();
  await page.locator("#view-progress").waitFor();
  await page.locator("#progress-phone", { hasText: "138****8000" }).waitFor();
  assert.match(await page.locator("#view-progress").innerText(), /结果将在48小时内通过10699000短信发送/);
  await waitCompleted(page);
  assert.equal(await page.locator("#progress-status").innerText(), "已完成");
  assert.match(await page.locator("#progress-sms").innerText(), /已发送|已送达/);
  const list = await page.locator("#progress-list").innerText();
  assert.match(list, /腾讯\s*已返回：3个（微信1个，QQ2个）/);
  assert.match(list, /京东\s*已返回：0个/);
  await screenshot(page, "progress.png");
  const results = (await smsTexts("13800138000")).filter((m) => m.text.includes("关联的互联网账号"));
  assert.equal(results.length, 1);
  assert.equal(results[0].source, "10699000");
  assert.match(results[0].text, /138\*{4}8000.*腾讯3个/);
  // Polled with back-off: never faster than a second, the waits growing.
  const times = seen.requests.filter((r) => r.url.includes("/api/v1/queries/")).map((r) => r.at);
  const gaps = times.slice(1).map((t, i) => t - times[i]);
  assert.ok(gaps.length >= 1 && gaps.every((gap) => gap >= 900), `polled at ${gaps} ms`);
  if (gaps.length >= 3) assert.ok(gaps[2] >= gaps[0] * 1.3, `no back-off: ${gaps} ms`);
  // Polling stopped: no query read after the final answer.
  const reads = () => seen.requests.filter((r) => r.url.includes("/api/v1/queries/")).length;
  const settled = reads();
  await page.waitForTimeout(2500);
  assert.equal(reads(), settled, "polling went on after the final state");
  // Nothing personal in the address at any point after the exchange.
  assert.equal(page.url(), `${GATEWAY}/#progress`);
  await assertClean(page, seen);
  await context.close();
});

test("a ported number (携号转网), used with the keyboard only", async () => {
  const { context, page, seen } = await openPage();
  await login(page, 1);
  const tabTo = async (id) => {
    for (let i = 0; i < 40; i++) {
      if ((await page.evaluate(() => document.activeElement?.id)) === id) return;
      await page.keyboard.press("Tab");
    }
    throw new Error(`#${id} cannot be reached with Tab`);
  };
  await tabTo("phone");
  await page.keyboard.type("150 0015 0000");
  await tabTo("id_last6");
  await page.keyboard.type("78901X");
  await tabTo("send-code");
  await page.keyboard.press("Enter");
  const code = await latestCode("15000150000");
  await tabTo("code");
  await page.keyboard.type(code);
  await tabTo("consent");
  await page.keyboard.press("Space");
  await tabTo("submit");
  await page.keyboard.press("Enter");
  await page.locator("#view-progress").waitFor();
  await waitCompleted(page);
  const list = await page.locator("#progress-list").innerText();
  assert.match(list, /京东\s*已返回：3个/);
  await page.locator("#progress-phone", { hasText: "150****0000" }).waitFor();
  const results = (await smsTexts("15000150000")).filter((m) => m.text.includes("关联的互联网账号"));
  assert.equal(results.length, 1);
  await assertClean(page, seen);
  await context.close();
});

test("errors next to their fields: wrong code, locked number, cancelled number, rate limit", async () => {
  const { context, page, seen } = await openPage();
  await login(page);

  // Wrong code: next to the code field, and the field is marked invalid.
  await fillWithCode(page, "13900139000", "234567");
  await page.getByLabel("短信验证码").fill("000000");
  await page.getByLabel(/我已阅读并同意/).check();
  await page.getByRole("button", { name: "提交查询" }).click();
  assert.match(await errorOf(page, "code"), /验证码错误或已使用/);
  assert.equal(await page.getByLabel("短信验证码").getAttribute("aria-invalid"), "true");

  // Locked: the wrong ID six, next to that field, with when to try again.
  await page.reload();
  await page.locator("#view-query").waitFor();
  await fillWithCode(page, "18600186000", "111111");
  await page.getByLabel(/我已阅读并同意/).check();
  await page.getByRole("button", { name: "提交查询" }).click();
  const locked = await errorOf(page, "id_last6");
  assert.match(locked, /校验未通过/);
  assert.match(locked, /请在(23小时\d+分钟|24小时)后（.+以后）再试/);

  // Cancelled: next to the phone.
  await page.reload();
  await page.locator("#view-query").waitFor();
  await fillWithCode(page, "13700137000", "678901");
  await page.getByLabel(/我已阅读并同意/).check();
  await page.getByRole("button", { name: "提交查询" }).click();
  assert.match(await errorOf(page, "phone"), /该号码已注销/);

  // Missing consent: next to the checkbox, before anything is sent.
  await page.reload();
  await page.locator("#view-query").waitFor();
  await page.getByLabel("手机号码").fill("13300133000");
  await page.getByLabel("身份证号码后六位").fill("456789");
  await page.getByLabel("短信验证码").fill("123456");
  await page.getByRole("button", { name: "提交查询" }).click();
  assert.match(await errorOf(page, "consent"), /请先阅读并同意/);

  // Rate limit: this session's codes (5 an hour) are used up by the sixth,
  // which is refused next to the code field with its wait.
  await page.reload();
  await page.locator("#view-query").waitFor();
  for (const n of [1, 2]) {
    await page.getByLabel("手机号码").fill(`1310000000${n}`);
    await page.getByRole("button", { name: "获取验证码" }).click();
    await page.locator("#send-code", { hasText: /秒后可重新获取/ }).waitFor();
  }
  await page.getByLabel("手机号码").fill("13100000009");
  await page.getByRole("button", { name: "获取验证码" }).click();
  const limited = await errorOf(page, "code");
  assert.match(limited, /操作过于频繁/);
  assert.match(limited, /请在[\d小时分钟秒]+后（.+以后）再试/);
  await screenshot(page, "errors.png");
  await assertClean(page, seen);
  await context.close();
});

test("关怀模式: switched on the first screen, remembered, and measured", async () => {
  const { context, page, seen } = await openPage();
  await login(page);
  const toggle = page.getByRole("button", { name: /关怀模式/ });
  const box = await toggle.boundingBox();
  assert.ok(box.y < 200, "the switch is on the first screen");
  await toggle.click();
  await page.reload();
  await page.locator("#view-query").waitFor();
  assert.equal(await toggle.getAttribute("aria-pressed"), "true", "remembered over a reload");

  const measure = () =>
    page.evaluate(() => {
      const visible = (el) => el.checkVisibility() && el.getBoundingClientRect().width > 0;
      const texts = [...document.querySelectorAll("body *")].filter(
        (el) => visible(el) && [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim()),
      );
      const fonts = texts.map((el) => {
        const style = getComputedStyle(el);
        return { tag: el.tagName, size: parseFloat(style.fontSize), line: parseFloat(style.lineHeight) / parseFloat(style.fontSize) };
      });
      const targets = [...document.querySelectorAll("a, button, input, summary")].filter(visible).map((el) => {
        const r = el.getBoundingClientRect();
        return { what: el.id || el.textContent.trim().slice(0, 12), width: r.width, height: r.height };
      });
      return { fonts, targets };
    });
  for (const view of ["query", "unbind", "guide"]) {
    await page.goto(`${GATEWAY}/#${view}`);
    await page.locator(`#view-${view}`).waitFor();
    if (view === "unbind") await page.locator("#enterprise-list li").first().waitFor();
    const { fonts, targets } = await measure();
    assert.ok(fonts.length > 5);
    for (const f of fonts) {
      assert.ok(f.size >= 18, `${view}: ${f.tag} text at ${f.size}px`);
      assert.ok(f.line >= 1.3, `${view}: ${f.tag} line height ${f.line}`);
    }
    assert.ok(Math.max(...fonts.map((f) => f.size)) >= 30, `${view}: the largest text is under 30px`);
    for (const t of targets) assert.ok(t.width >= 60 && t.height >= 60, `${view}: target ${t.what} is ${t.width}x${t.height}`);
    await axe(page, `关怀模式, ${view}`);
    if (view === "query") await screenshot(page, "care-query.png");
  }
  // No pop-ups: the page opens no dialog of its own.
  let dialogs = 0;
  page.on("dialog", () => dialogs++);
  await page.goto(`${GATEWAY}/#query`);
  await page.getByRole("button", { name: "提交查询" }).click();
  assert.equal(dialogs, 0);
  await assertClean(page, seen);
  await context.close();
});

test("normal mode: WCAG 2.1 AA by axe, 44 px targets, 320 px wide, light first load", async () => {
  const { context, page, seen } = await openPage({ width: 320 });
  const sizes = [];
  page.on("response", async (response) => {
    const body = await response.body().catch(() => Buffer.alloc(0));
    sizes.push(body.length);
  });
  await page.goto(`${GATEWAY}/`);
  await page.locator("#view-login").waitFor();
  await page.waitForLoadState("networkidle");
  const firstLoad = sizes.reduce((a, b) => a + b, 0);
  assert.ok(firstLoad > 0 && firstLoad <= 150 * 1024, `first load is ${firstLoad} bytes`);
  assert.equal(await page.evaluate(() => document.documentElement.lang), "zh-CN");
  await axe(page, "normal, login");
  await login(page);
  for (const view of ["query", "unbind", "guide"]) {
    await page.goto(`${GATEWAY}/#${view}`);
    await page.locator(`#view-${view}`).waitFor();
    if (view === "unbind") {
      await page.locator("#enterprise-list li").first().waitFor();
      const hotlines = await page.locator('#enterprise-list a[href^="tel:"]').count();
      assert.equal(hotlines, 8, "a tel: link per company");
    }
    const scroll = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(scroll <= 320, `${view} is ${scroll}px wide at 320px`);
    const small = await page.evaluate(() =>
      [...document.querySelectorAll("a, button, input, summary")]
        .filter((el) => el.checkVisibility())
        .map((el) => el.getBoundingClientRect())
        .filter((r) => r.width < 44 || r.height < 44).length,
    );
    assert.equal(small, 0, `${view}: targets under 44x44`);
    const unlabelled = await page.evaluate(() =>
      [...document.querySelectorAll("input")].filter((el) => el.labels.length === 0).length,
    );
    assert.equal(unlabelled, 0);
    await axe(page, `normal, ${view}`);
  }
  await assertClean(page, seen);
  await context.close();
});

test("a forged login return is refused: the state must be the one this browser was sent with", async () => {
  const { context, page, seen } = await openPage();
  await page.goto(`${GATEWAY}/h5/callback?auth_code=demo-auth-code&state=forged`);
  await page.locator("#login-message").waitFor();
  assert.match(await page.locator("#login-message").innerText(), /授权没有完成/);
  assert.equal(page.url(), `${GATEWAY}/`);
  assert.equal((await context.cookies(GATEWAY)).filter((c) => c.name === "yztc_session").length, 0);
  await assertClean(page, seen);
  await context.close();
});
