// Which field each CONTRACT error belongs next to, and how its wait is told.
// Messages come from the gateway (plain Chinese, nothing personal); this only
// places them and adds the retry time.

// Per step: error code -> field id ("form" is the message above the fields).
const PLACES = {
  code: {
    INVALID_ARGUMENT: "phone",
    RATE_LIMITED: "code",
    QUERY_IN_PROGRESS: "phone",
    QUERY_LIMITED: "phone",
    NUMBER_CANCELLED: "phone",
    VERIFICATION_FAILED: "id_last6",
  },
  submit: {
    CONSENT_REQUIRED: "consent",
    CODE_INVALID: "code",
    CODE_EXPIRED: "code",
    VERIFICATION_FAILED: "id_last6",
    NUMBER_CANCELLED: "phone",
    QUERY_IN_PROGRESS: "phone",
    QUERY_LIMITED: "phone",
    RATE_LIMITED: "submit",
  },
};

const INVALID_FIELDS = [
  ["（phone）", "phone"],
  ["（id_last6）", "id_last6"],
  ["（code）", "code"],
  ["（consent）", "consent"],
];

/** The field id an error of `step` ("code" or "submit") is shown next to. */
export function placeOf(step, error) {
  if (error.code === "INVALID_ARGUMENT") {
    const named = INVALID_FIELDS.find(([mark]) => error.message.includes(mark));
    if (named) return named[1];
  }
  return PLACES[step][error.code] || (step === "submit" ? "submit" : "form");
}

/** "2小时5分钟" for a wait of `seconds` (rounded up to whole minutes). */
export function duration(seconds) {
  if (seconds < 60) return `${seconds}秒`;
  const minutes = Math.ceil(seconds / 60);
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  return `${hours ? `${hours}小时` : ""}${rest ? `${rest}分钟` : ""}`;
}

/** The error's message, with when to try again where the gateway said. */
export function describe(error, now = new Date()) {
  if (error.retryAfter === null) return error.message;
  const at = new Date(now.getTime() + error.retryAfter * 1000);
  const clock = at.toLocaleString("zh-CN", { month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit", hour12: false });
  return `${error.message}请在${duration(error.retryAfter)}后（${clock}以后）再试。`;
}

// Client-side checks, the CONTRACT's forms (the gateway checks again).
const FULL_WIDTH = /[０-９Ｘｘ＋]/g;
const fold = (text) => text.replace(FULL_WIDTH, (c) => String.fromCharCode(c.charCodeAt(0) - 0xfee0));

/** The 11-digit phone, or null if `text` is not a mainland mobile number. */
export function normalisePhone(text) {
  let digits = fold(text).replace(/[\s-]/g, "");
  if (digits.startsWith("+86")) digits = digits.slice(3);
  else if (digits.length === 13 && digits.startsWith("86")) digits = digits.slice(2);
  return /^1[3-9]\d{9}$/.test(digits) ? digits : null;
}

export const validIdLast6 = (text) => /^\d{5}[\dX]$/i.test(fold(text.trim()));
export const validCode = (text) => /^\d{6}$/.test(fold(text.trim()));
