import pandas as pd
import pytest

from therapy_claims import npi

# vectors from the CMS algorithm as published (x12-837.md section 2)
VALID = ["1234567893", "1245319599", "1558598797"]
INVALID = ["1234567898", "9876543210", "5812345679", "123456789", "12345678901", "abcdefghij", ""]


@pytest.mark.parametrize("value", VALID)
def test_valid(value):
    assert npi.is_valid(value)


@pytest.mark.parametrize("value", INVALID)
def test_invalid(value):
    assert not npi.is_valid(value)


def test_vectorised_agrees_with_scalar():
    values = pd.Series(VALID + INVALID + [None])
    assert npi.valid_mask(values).tolist() == [npi.is_valid(v) if v else False for v in values]


def test_plain_luhn_over_prefix_agrees():
    def luhn(number: str) -> bool:
        total = 0
        for i, ch in enumerate(reversed(number)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        return total % 10 == 0

    for first9 in ("123456789", "150012345", "100000000", "299999999"):
        assert luhn("80840" + npi.make_valid(first9))
