from aggregator.number_routing import NumberRouting
from aggregator.settings import CONFIG

ROUTING = NumberRouting.from_file(CONFIG / "number_segments.json")


def test_main_segments():
    assert ROUTING.operator_for("13800138000") == "cmcc"
    assert ROUTING.operator_for("18600186000") == "cucc"
    assert ROUTING.operator_for("13300133000") == "ctcc"
    assert ROUTING.operator_for("19200192000") == "cbn"


def test_longest_prefix_wins():
    assert ROUTING.operator_for("13490000000") == "ctcc"  # 1349 satellite, inside 134
    assert ROUTING.operator_for("13480000000") == "cmcc"


def test_virtual_operators_route_to_host():
    assert ROUTING.operator_for("17000000000") == "ctcc"
    assert ROUTING.operator_for("17030000000") == "cmcc"
    assert ROUTING.operator_for("17040000000") == "cucc"
    assert ROUTING.operator_for("17100000000") == "cucc"


def test_every_13x_to_19x_segment_in_use_is_routed():
    unrouted = [
        p for p in (f"1{d}{e}" for d in range(3, 10) for e in range(10)) if ROUTING.operator_for(p + "00000000") is None
    ]
    # Segments not assigned to mobile networks (or data-only / IoT) stay unrouted.
    assert set(unrouted) <= {
        "140",
        "141",
        "142",
        "143",
        "144",
        "154",
        "160",
        "161",
        "163",
        "164",
        "168",
        "169",
        "179",
        "194",
    }
