// The citizen's page: one task per screen (login, query, progress, 解绑与明细查询,
// 使用指南), chosen by the address's #fragment; 关怀模式 switched here.
import * as api from "./api.js";
import { describe, normalisePhone, placeOf, validCode, validIdLast6 } from "./form-errors.js";

const $ = (id) => document.getElementById(id);
const VIEWS = ["login", "query", "progress", "unbind", "guide"];
const NEEDS_LOGIN = new Set(["query", "progress"]);
const QUERY_KEY = "yztc.query"; // the query id being followed (sessionStorage; not personal)
const FIELDS = ["phone", "id_last6", "code", "consent"];
const LOGIN_MESSAGES = {
  failed: "支付宝授权没有完成，请重新登录。",
  limited: "登录过于频繁，请稍后再试。",
  unavailable: "服务暂时不可用，请稍后再试。",
};
const STATE_TEXT = { PENDING: "等待企业返回", DONE: "已返回", FAILED: "未能返回" };
const STATUS_TEXT = { IN_PROGRESS: "查询中", COMPLETED: "已完成", PARTIAL: "已结束（部分企业未返回）" };
const SMS_TEXT = { PENDING: "等待发送", SENT: "已发送", DELIVERED: "已送达", FAILED: "发送失败" };

let loggedIn = false;
let pollTimer = null;

// -- 关怀模式 ---------------------------------------------------------------

function showCareMode() {
  const on = document.documentElement.classList.contains("care");
  $("care-toggle").setAttribute("aria-pressed", String(on));
  $("care-toggle").textContent = on ? "关怀模式：已开启" : "关怀模式";
}

$("care-toggle").addEventListener("click", () => {
  const on = document.documentElement.classList.toggle("care");
  try {
    localStorage.setItem("yztc.care", on ? "1" : "0");
  } catch (e) {
    // not remembered, still switched
  }
  showCareMode();
});

// -- views -------------------------------------------------------------------

function viewFromHash() {
  const name = location.hash.slice(1);
  return VIEWS.includes(name) && name !== "login" ? name : "query";
}

function show(requested) {
  const name = NEEDS_LOGIN.has(requested) && !loggedIn ? "login" : requested;
  $("loading").hidden = true;
  for (const view of VIEWS) $(`view-${view}`).hidden = view !== name;
  for (const tab of ["query", "unbind", "guide"]) {
    const current = tab === name || (tab === "query" && ["login", "progress"].includes(name));
    if (current) $(`tab-${tab}`).setAttribute("aria-current", "page");
    else $(`tab-${tab}`).removeAttribute("aria-current");
  }
  if (name !== "progress") stopPolling();
  if (name === "progress") followQuery();
  if (name === "unbind") loadEnterprises();
  return name;
}

window.addEventListener("hashchange", () => {
  show(viewFromHash());
  $("main").focus();
});

// -- errors next to their fields ----------------------------------------------

function setError(place, text) {
  const box = $(`${place}-error`);
  box.textContent = text ? `⚠ ${text}` : "";
  box.hidden = !text;
  const input = $(place);
  if (input && input.tagName === "INPUT") {
    if (text) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }
}

function clearErrors() {
  for (const place of [...FIELDS, "form", "submit"]) setError(place, "");
}

function showApiError(step, error) {
  if (error.code === "UNAUTHENTICATED") {
    loggedIn = false;
    $("login-message").textContent = "⚠ 登录已失效，请重新登录。";
    $("login-message").hidden = false;
    show("login");
    return;
  }
  const place = placeOf(step, error);
  setError(place, describe(error));
  if (error.code === "QUERY_IN_PROGRESS" && error.queryId) offerProgress(place, error.queryId);
  $(place === "form" || place === "submit" ? `${place}-error` : place).focus?.();
}

function offerProgress(place, queryId) {
  const link = document.createElement("a");
  link.href = "#progress";
  link.className = "inline-button";
  link.textContent = "查看该查询的进度";
  link.addEventListener("click", () => sessionStorage.setItem(QUERY_KEY, queryId));
  $(`${place}-error`).append(" ", link);
}

// -- the verification code, its countdown per phone ---------------------------

let countdown = { phone: null, until: 0, timer: null };

function renderCountdown() {
  const button = $("send-code");
  const phone = normalisePhone($("phone").value);
  const left = Math.ceil((countdown.until - Date.now()) / 1000);
  if (phone && phone === countdown.phone && left > 0) {
    button.disabled = true;
    button.textContent = `${left}秒后可重新获取`;
  } else {
    button.disabled = false;
    button.textContent = "获取验证码";
  }
}

function startCountdown(phone, seconds) {
  clearInterval(countdown.timer);
  countdown = { phone, until: Date.now() + seconds * 1000, timer: setInterval(renderCountdown, 1000) };
  renderCountdown();
}

$("phone").addEventListener("input", renderCountdown);

$("send-code").addEventListener("click", async () => {
  clearErrors();
  const phone = normalisePhone($("phone").value);
  if (!phone) {
    setError("phone", "请填写正确的11位手机号码。");
    $("phone").focus();
    return;
  }
  $("send-code").disabled = true;
  try {
    const answer = await api.requestCode(phone);
    startCountdown(phone, answer.resend_after);
    $("code-hint").textContent = "验证码已发送，请查看短信（5分钟内有效，请勿告知他人）";
    $("code").focus();
  } catch (error) {
    renderCountdown();
    showApiError("code", error);
    if (error.code === "RATE_LIMITED" && error.retryAfter !== null && error.retryAfter <= 600) {
      startCountdown(phone, error.retryAfter);
    }
  }
});

// -- submitting the query ------------------------------------------------------

function checkForm() {
  const problems = [];
  if (!normalisePhone($("phone").value)) problems.push(["phone", "请填写正确的11位手机号码。"]);
  if (!validIdLast6($("id_last6").value)) problems.push(["id_last6", "请填写身份证号码后六位：5位数字加1位数字或X。"]);
  if (!validCode($("code").value)) problems.push(["code", "请填写短信中的6位验证码。"]);
  if (!$("consent").checked) problems.push(["consent", "请先阅读并同意个人信息处理规则。"]);
  for (const [place, text] of problems) setError(place, text);
  if (problems.length) $(problems[0][0]).focus();
  return problems.length === 0;
}

$("query-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors();
  if (!checkForm()) return;
  $("submit").disabled = true;
  try {
    const answer = await api.submitQuery({
      phone: normalisePhone($("phone").value),
      id_last6: $("id_last6").value.trim(),
      code: $("code").value.trim(),
      consent: true,
    });
    sessionStorage.setItem(QUERY_KEY, answer.query_id);
    $("query-form").reset();
    location.hash = "#progress";
  } catch (error) {
    showApiError("submit", error);
  } finally {
    $("submit").disabled = false;
  }
});

// -- progress, polled with back-off until final ---------------------------------

const FIRST_DELAY_MS = 1000;
const MAX_DELAY_MS = 15000;

function stopPolling() {
  clearTimeout(pollTimer);
  pollTimer = null;
}

function renderQuery(query) {
  $("progress-phone").textContent = query.phone;
  $("progress-status").textContent = STATUS_TEXT[query.status] || query.status;
  $("progress-sms").textContent = SMS_TEXT[query.sms.state] || query.sms.state;
  const items = query.enterprises.map((company) => {
    const item = document.createElement("li");
    item.dataset.state = company.state;
    const name = document.createElement("strong");
    name.textContent = company.name;
    const state = document.createElement("span");
    let text = STATE_TEXT[company.state] || company.state;
    if (company.state === "DONE" && company.count !== null) {
      const apps = company.apps.map((app) => `${app.name}${app.count}个`).join("，");
      text += `：${company.count}个${apps ? `（${apps}）` : ""}`;
    }
    state.textContent = text;
    item.append(name, state);
    return item;
  });
  $("progress-list").replaceChildren(...items);
}

function isFinal(query) {
  return query.status !== "IN_PROGRESS" && query.sms.state !== "PENDING";
}

function followQuery() {
  stopPolling();
  const queryId = sessionStorage.getItem(QUERY_KEY);
  if (!queryId) {
    location.hash = "#query";
    return;
  }
  setError("progress", "");
  // Nothing of an earlier query stays on screen while this one is read.
  for (const id of ["progress-phone", "progress-status", "progress-sms"]) $(id).textContent = "正在读取…";
  $("progress-list").replaceChildren();
  delete $("view-progress").dataset.final;
  let delay = FIRST_DELAY_MS;
  const poll = async () => {
    try {
      const query = await api.getQuery(queryId);
      renderQuery(query);
      $("view-progress").dataset.final = String(isFinal(query));
      if (isFinal(query)) return;
    } catch (error) {
      if (error.code === "UNAUTHENTICATED" || error.code === "NOT_FOUND") {
        if (error.code === "NOT_FOUND") sessionStorage.removeItem(QUERY_KEY);
        showApiError("submit", error);
        setError("progress", describe(error));
        return;
      }
      setError("progress", describe(error));
      if (error.retryAfter !== null) delay = Math.max(delay, error.retryAfter * 1000);
    }
    pollTimer = setTimeout(poll, delay);
    delay = Math.min(delay * 1.5, MAX_DELAY_MS);
  };
  poll();
}

$("new-query").addEventListener("click", () => {
  sessionStorage.removeItem(QUERY_KEY);
  location.hash = "#query";
});

// -- 解绑与明细查询 ------------------------------------------------------------

let enterprisesShown = false;

async function loadEnterprises() {
  if (enterprisesShown) return;
  try {
    const { enterprises } = await api.listEnterprises();
    $("enterprise-list").replaceChildren(
      ...enterprises.map((company) => {
        const item = document.createElement("li");
        const name = document.createElement("h3");
        name.textContent = company.name;
        const guide = document.createElement("p");
        guide.textContent = company.detail_and_unbind;
        const hotline = document.createElement("a");
        hotline.className = "button";
        hotline.href = `tel:${company.hotline.replace(/[^\d+]/g, "")}`;
        hotline.textContent = `拨打${company.name}客服 ${company.hotline}`;
        item.append(name, guide, hotline);
        return item;
      }),
    );
    enterprisesShown = true;
    setError("unbind", "");
  } catch (error) {
    setError("unbind", describe(error));
  }
}

// -- start -----------------------------------------------------------------------

$("logout").addEventListener("click", async () => {
  try {
    await api.logout();
  } catch (error) {
    // the session is gone either way for this page
  }
  loggedIn = false;
  sessionStorage.removeItem(QUERY_KEY);
  $("logout").hidden = true;
  location.hash = "#query";
  show("query");
});

async function start() {
  showCareMode();
  const params = new URLSearchParams(location.search);
  const outcome = params.get("login");
  if (outcome) {
    $("login-message").textContent = `⚠ ${LOGIN_MESSAGES[outcome] || LOGIN_MESSAGES.failed}`;
    $("login-message").hidden = false;
    history.replaceState(null, "", `/${location.hash}`);
  }
  try {
    loggedIn = await api.startSession();
  } catch (error) {
    loggedIn = false;
    $("login-message").textContent = `⚠ ${describe(error)}`;
    $("login-message").hidden = false;
  }
  $("logout").hidden = !loggedIn;
  document.body.dataset.ready = "true";
  show(viewFromHash());
}

start();
