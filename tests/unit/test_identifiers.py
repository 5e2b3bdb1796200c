import pytest

from yztc.identifiers import mask_phone, normalise_id_last6, normalise_phone, valid_code


@pytest.mark.parametrize(
    "raw",
    ["13800138000", "+8613800138000", "8613800138000", "138 0013 8000", "+86 138-0013-8000"],
)
def test_phone_forms_normalise(raw):
    assert normalise_phone(raw) == "13800138000"


@pytest.mark.parametrize(
    "raw",
    ["", "12800138000", "1380013800", "138001380001", "1380013800a", "+8513800138000",
     "０13800138000", 13800138000, None, ["13800138000"], "1" * 40],
)
def test_bad_phones_are_refused(raw):
    assert normalise_phone(raw) is None


def test_id_last6_accepts_x_either_case_and_uppercases():
    assert normalise_id_last6("12345x") == "12345X"
    assert normalise_id_last6("123456") == "123456"


@pytest.mark.parametrize("raw", ["1234X5", "12345", "1234567", "abcdef", 123456, None])
def test_bad_id_last6(raw):
    assert normalise_id_last6(raw) is None


def test_code_is_six_digits():
    assert valid_code("012345")
    assert not valid_code("12345")
    assert not valid_code("12345a")
    assert not valid_code(123456)


def test_mask():
    assert mask_phone("13800138000") == "138****8000"


@pytest.mark.parametrize("raw", ["1３800138000", "١٣٨٠٠١٣٨٠٠٠"])
def test_only_ascii_digits_make_a_phone(raw):
    assert normalise_phone(raw) is None


def test_only_ascii_digits_make_codes_and_id_six():
    assert not valid_code("١٢٣٤٥٦")
    assert normalise_id_last6("１２３４５X") is None
