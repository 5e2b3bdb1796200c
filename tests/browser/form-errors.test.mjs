// The page's pure rules (gateway/h5/form-errors.js), without a browser:
// where each CONTRACT error is shown, how a wait is told, the client-side
// checks of the CONTRACT's identifier forms. Run by tests/unit/test_h5_scripts.py.
import { test } from "node:test";
import assert from "node:assert/strict";
import { describe, duration, normalisePhone, placeOf, validCode, validIdLast6 } from "../../gateway/h5/form-errors.js";

const CONTRACT_CODES = [
  "INVALID_ARGUMENT", "REQUEST_TOO_LARGE", "CONSENT_REQUIRED", "UNAUTHENTICATED", "NOT_FOUND",
  "QUERY_IN_PROGRESS", "PAYLOAD_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE", "CODE_INVALID", "CODE_EXPIRED",
  "VERIFICATION_FAILED", "NUMBER_CANCELLED", "RATE_LIMITED", "QUERY_LIMITED", "UNAVAILABLE",
];
const PLACES = new Set(["phone", "id_last6", "code", "consent", "form", "submit"]);

test("every CONTRACT error has a place on the form, at both steps", () => {
  for (const step of ["code", "submit"]) {
    for (const code of CONTRACT_CODES) {
      const place = placeOf(step, { code, message: "" });
      assert.ok(PLACES.has(place), `${step} ${code} -> ${place}`);
    }
  }
});

test("field errors sit next to their fields", () => {
  const at = (step, code, message = "") => placeOf(step, { code, message });
  assert.equal(at("submit", "CODE_INVALID"), "code");
  assert.equal(at("submit", "CODE_EXPIRED"), "code");
  assert.equal(at("submit", "VERIFICATION_FAILED"), "id_last6");
  assert.equal(at("submit", "NUMBER_CANCELLED"), "phone");
  assert.equal(at("submit", "QUERY_LIMITED"), "phone");
  assert.equal(at("submit", "QUERY_IN_PROGRESS"), "phone");
  assert.equal(at("submit", "CONSENT_REQUIRED"), "consent");
  assert.equal(at("code", "RATE_LIMITED"), "code");
  assert.equal(at("code", "INVALID_ARGUMENT"), "phone");
  // The gateway's INVALID_ARGUMENT message names the field: that field.
  assert.equal(at("submit", "INVALID_ARGUMENT", "身份证号码后六位（id_last6）格式有误"), "id_last6");
  assert.equal(at("submit", "INVALID_ARGUMENT", "验证码（code）格式有误，应为6位数字。"), "code");
  assert.equal(at("submit", "UNAVAILABLE"), "submit");
});

test("waits are told in hours and minutes, with the clock time", () => {
  assert.equal(duration(45), "45秒");
  assert.equal(duration(60), "1分钟");
  assert.equal(duration(61), "2分钟");
  assert.equal(duration(3600), "1小时");
  assert.equal(duration(86400), "24小时");
  assert.equal(duration(86399 - 3600), "23小时");
  assert.equal(duration(5400), "1小时30分钟");
  const now = new Date(2026, 10, 30, 8, 0);
  const text = describe({ message: "号码已锁定。", retryAfter: 7200 }, now);
  assert.match(text, /^号码已锁定。请在2小时后（11\/30 10:00以后）再试。$/);
  assert.equal(describe({ message: "服务暂时不可用。", retryAfter: null }), "服务暂时不可用。");
});

test("the CONTRACT's identifier forms", () => {
  for (const ok of ["13800138000", "+86 138-0013-8000", "86 13800138000", "１３８００１３８０００", "138 0013 8000"]) {
    assert.equal(normalisePhone(ok), "13800138000", ok);
  }
  for (const bad of ["", "12800138000", "1380013800", "138001380001", "13800138000x", "+85213800138000"]) {
    assert.equal(normalisePhone(bad), null, bad);
  }
  assert.ok(validIdLast6("12345X") && validIdLast6("12345x") && validIdLast6("123456") && validIdLast6("１２３４５Ｘ"));
  assert.ok(!validIdLast6("1234X5") && !validIdLast6("12345") && !validIdLast6("1234567"));
  assert.ok(validCode("012345") && !validCode("12345") && !validCode("12345a"));
});
