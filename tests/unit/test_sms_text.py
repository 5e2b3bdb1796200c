from aggregator.catalogue import load_catalogue
from aggregator.settings import CONFIG
from aggregator.sms_text import result_text, verification_text

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
