from aggregator.catalogue import load_catalogue
from aggregator.settings import CONFIG
from aggregator.sms_text import RESULT_MAX_UNITS, AppCount, result_text, verification_text

CATALOGUE = load_catalogue(CONFIG / "enterprises.json")


def test_verification_text_has_code_and_validity():
    text = verification_text("042137")
    assert "042137" in text and "5分钟" in text


def test_result_text_lists_every_company_in_order_with_masked_phone():
    counts = {e.id: 0 for e in CATALOGUE}
    counts.update(tencent=3, meituan=None)
    text = result_text("13800138000", CATALOGUE, counts)
    assert "138****8000" in text and "13800138000" not in text
    assert "腾讯3个" in text and "美团暂未返回" in text and "京东0个" in text
    positions = [text.index(e.name) for e in CATALOGUE]
    assert positions == sorted(positions)
    assert "解绑与明细查询" in text


def test_verification_text_warns_not_to_share_the_code():
    assert "验证码请勿告知他人" in verification_text("042137")


def _counts(**given):
    counts = {e.id: 0 for e in CATALOGUE}
    counts.update(given)
    return counts


def test_result_text_gives_the_per_app_split_a_company_gives():
    apps = {"tencent": [AppCount("微信", 1), AppCount("QQ", 2)]}
    text = result_text("13800138000", CATALOGUE, _counts(tencent=3, alipay=1), apps)
    assert "腾讯3个（微信1个，QQ2个）" in text
    assert "支付宝1个，" in text  # no split given: the total alone


def test_result_text_leaves_out_a_split_with_an_unsafe_app_name():
    for name in ("点击t.cn/x", "http://evil", "", "微信" * 7, "QQ\n2"):
        apps = {"tencent": [AppCount(name, 1), AppCount("QQ", 2)]}
        text = result_text("13800138000", CATALOGUE, _counts(tencent=3), apps)
        assert "腾讯3个，" in text, name
        assert name not in text or name == ""


def test_result_text_has_no_split_for_a_company_with_no_accounts_or_no_answer():
    apps = {"tencent": [AppCount("微信", 0)], "meituan": [AppCount("美团", 1)]}
    text = result_text("13800138000", CATALOGUE, _counts(tencent=0, meituan=None), apps)
    assert "腾讯0个，" in text and "美团暂未返回" in text and "（" not in text


def test_result_text_stays_within_the_multipart_limit_dropping_splits_from_the_end():
    many = [AppCount(f"某某应用程序{i:02d}号", i) for i in range(1, 9)]
    apps = {e.id: many for e in CATALOGUE}
    counts = _counts(**{e.id: sum(a.count for a in many) for e in CATALOGUE})
    text = result_text("13800138000", CATALOGUE, counts, apps)
    assert len(text.encode("utf-16-le")) // 2 <= RESULT_MAX_UNITS
    first, last = CATALOGUE[0], CATALOGUE[-1]
    assert f"{first.name}36个（某某应用程序01号1个" in text  # the first companies keep theirs
    assert f"{last.name}36个。" in text  # the last ones give theirs up first
    for e in CATALOGUE:
        assert f"{e.name}36个" in text  # every count is there


def test_result_text_fits_one_limit_given():
    apps = {"tencent": [AppCount("微信", 1), AppCount("QQ", 2)]}
    full = result_text("13800138000", CATALOGUE, _counts(tencent=3), apps)
    short = result_text("13800138000", CATALOGUE, _counts(tencent=3), apps, max_units=len(full) - 1)
    assert "（" not in short and "腾讯3个" in short
