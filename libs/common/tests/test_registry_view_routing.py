import pytest

from onegrid_common.registry_view.routing import Router, RoutingError, next_tier
from onegrid_contracts.cases import Tier
from onegrid_contracts.registry import (
    CoveringUnit,
    FixedUnit,
    Grid,
    GridKind,
    IntegrationMode,
    Polygon,
    Priority,
    RoutingRule,
    Unit,
    UnitKind,
)

SQUARE = [(111.30, 30.70), (111.31, 30.70), (111.31, 30.71), (111.30, 30.71), (111.30, 30.70)]


def grid(code: str, kind: GridKind = GridKind.BASE) -> Grid:
    return Grid(
        code=code,
        name="测试网格",
        level="grid",
        parent_code=code[:12],
        kind=kind,
        geometry=Polygon(coordinates=[SQUARE]),
    )


def unit(code: str, kind: UnitKind, *jurisdiction: str, active: bool = True) -> Unit:
    mode = IntegrationMode.ADAPTER if kind is UnitKind.DEPARTMENT else IntegrationMode.WORKBENCH
    return Unit(
        code=code,
        name="单位",
        kind=kind,
        jurisdiction=list(jurisdiction),
        integration_mode=mode,
        active=active,
    )


UNITS = [
    unit("urban", UnitKind.DEPARTMENT, "420500"),
    unit("police", UnitKind.DEPARTMENT, "420500"),
    unit("fire", UnitKind.DEPARTMENT, "420500"),
    unit("civil", UnitKind.DEPARTMENT, "420500", active=False),
    unit("street-420502001", UnitKind.STREET_OFFICE, "420502001"),
    unit("street-420503001", UnitKind.STREET_OFFICE, "420503001"),
    unit("community-420502001001", UnitKind.COMMUNITY_OFFICE, "420502001001"),
    unit("community-420503001001", UnitKind.COMMUNITY_OFFICE, "420503001001"),
    unit("grid-420502001001001", UnitKind.GRID, "420502001001001"),
    unit("grid-420503001001001", UnitKind.GRID, "420503001001001"),
]


def rule(
    code: str, category: str, tier: Tier, lead: FixedUnit | CoveringUnit, **kw: object
) -> RoutingRule:
    return RoutingRule.model_validate(
        {"code": code, "category_code": category, "tier": tier, "lead": lead, **kw}
    )


RULES = [
    rule("garbage", "environment.exposed_garbage", Tier.GRID, CoveringUnit(tier=Tier.GRID)),
    rule(
        "rental",
        "security.rental_housing",
        Tier.COMMUNITY,
        CoveringUnit(tier=Tier.COMMUNITY),
        assisting=[FixedUnit(unit_code="police")],
    ),
    rule(
        "wages",
        "dispute.wage_arrears",
        Tier.STREET,
        CoveringUnit(tier=Tier.STREET),
        assisting=[CoveringUnit(tier=Tier.COMMUNITY)],
    ),
    rule("vending", "street_order.street_vending", Tier.DEPARTMENT, FixedUnit(unit_code="urban")),
    rule("fire", "safety.fire_hazard", Tier.COMMUNITY, CoveringUnit(tier=Tier.COMMUNITY)),
    rule(
        "fire.market",
        "safety.fire_hazard",
        Tier.DEPARTMENT,
        FixedUnit(unit_code="fire"),
        grid_kind=GridKind.MARKET,
        assisting=[CoveringUnit(tier=Tier.COMMUNITY)],
    ),
    rule(
        "fire.wujiagang",
        "safety.fire_hazard",
        Tier.STREET,
        CoveringUnit(tier=Tier.STREET),
        district_code="420503",
    ),
    rule(
        "fire.urgent",
        "safety.fire_hazard",
        Tier.DEPARTMENT,
        FixedUnit(unit_code="fire"),
        min_severity=Priority.URGENT,
    ),
    rule(
        "allowance", "livelihood.minimum_allowance", Tier.DEPARTMENT, FixedUnit(unit_code="civil")
    ),
    rule("inactive", "dispute.family", Tier.GRID, CoveringUnit(tier=Tier.GRID), active=False),
]

XILING = grid("420502001001001")
WUJIAGANG = grid("420503001001001")


@pytest.fixture(scope="module")
def router() -> Router:
    return Router(RULES, UNITS)


def test_a_grid_tier_case_goes_to_the_grid_team_covering_it(router: Router) -> None:
    decision = router.route("environment.exposed_garbage", XILING, Priority.NORMAL)
    assert (decision.tier, decision.lead_unit_code) == (Tier.GRID, "grid-420502001001001")
    assert router.route(
        "environment.exposed_garbage", WUJIAGANG, Priority.NORMAL
    ).lead_unit_code == ("grid-420503001001001")


def test_a_community_tier_case_goes_to_the_community_office_with_assistants(router: Router) -> None:
    decision = router.route("security.rental_housing", XILING, Priority.NORMAL)
    assert decision.tier is Tier.COMMUNITY
    assert decision.lead_unit_code == "community-420502001001"
    assert decision.assisting_unit_codes == ("police",)


def test_a_street_tier_case_goes_to_the_street_office(router: Router) -> None:
    decision = router.route("dispute.wage_arrears", WUJIAGANG, Priority.HIGH)
    assert decision.tier is Tier.STREET
    assert decision.lead_unit_code == "street-420503001"
    assert decision.assisting_unit_codes == ("community-420503001001",)


def test_a_department_tier_case_goes_to_the_fixed_department(router: Router) -> None:
    decision = router.route("street_order.street_vending", XILING, Priority.NORMAL)
    assert (decision.rule_code, decision.tier, decision.lead_unit_code) == (
        "vending",
        Tier.DEPARTMENT,
        "urban",
    )


def test_the_category_default_applies_without_a_narrower_match(router: Router) -> None:
    decision = router.route("safety.fire_hazard", XILING, Priority.NORMAL)
    assert (decision.rule_code, decision.lead_unit_code) == ("fire", "community-420502001001")


def test_a_district_rule_beats_the_default(router: Router) -> None:
    decision = router.route("safety.fire_hazard", WUJIAGANG, Priority.NORMAL)
    assert (decision.rule_code, decision.lead_unit_code) == ("fire.wujiagang", "street-420503001")


def test_a_grid_kind_rule_beats_a_district_rule(router: Router) -> None:
    market = grid("420503001001001", GridKind.MARKET)
    decision = router.route("safety.fire_hazard", market, Priority.NORMAL)
    assert decision.rule_code == "fire.market"
    assert decision.lead_unit_code == "fire"
    assert decision.assisting_unit_codes == ("community-420503001001",)


def test_a_severity_floor_applies_only_to_severe_enough_cases(router: Router) -> None:
    assert router.route("safety.fire_hazard", XILING, Priority.URGENT).rule_code == "fire.urgent"
    assert router.route("safety.fire_hazard", XILING, Priority.HIGH).rule_code == "fire"
    # A district rule is more specific than a severity floor.
    assert (
        router.route("safety.fire_hazard", WUJIAGANG, Priority.URGENT).rule_code == "fire.wujiagang"
    )


def test_precedence_breaks_ties_between_equally_specific_rules() -> None:
    low = rule("a.low", "environment.exposed_garbage", Tier.GRID, CoveringUnit(tier=Tier.GRID))
    high = rule(
        "b.high",
        "environment.exposed_garbage",
        Tier.DEPARTMENT,
        FixedUnit(unit_code="urban"),
        precedence=5,
    )
    assert (
        Router([low, high], UNITS)
        .route("environment.exposed_garbage", XILING, Priority.LOW)
        .rule_code
        == "b.high"
    )


def test_no_rule_inactive_rule_or_inactive_unit_is_a_routing_error(router: Router) -> None:
    with pytest.raises(RoutingError, match="no active routing rule"):
        router.route("traffic.road_damage", XILING, Priority.NORMAL)
    with pytest.raises(RoutingError, match="no active routing rule"):
        router.route("dispute.family", XILING, Priority.NORMAL)
    with pytest.raises(RoutingError, match="inactive unit civil"):
        router.route("livelihood.minimum_allowance", XILING, Priority.NORMAL)


def test_a_grid_no_unit_covers_is_a_routing_error(router: Router) -> None:
    with pytest.raises(RoutingError, match="no active grid unit covers grid 420504001001001"):
        router.route("environment.exposed_garbage", grid("420504001001001"), Priority.NORMAL)


def test_the_narrowest_covering_jurisdiction_wins() -> None:
    units = [*UNITS, unit("community-wide", UnitKind.COMMUNITY_OFFICE, "420502")]
    router = Router(RULES, units)
    narrow = router.covering_unit(Tier.COMMUNITY, "420502001001001")
    wide = router.covering_unit(Tier.COMMUNITY, "420502002001001")
    assert narrow is not None
    assert narrow.code == "community-420502001001"
    assert wide is not None
    assert wide.code == "community-wide"


def test_escalation_goes_one_tier_up_until_the_departments() -> None:
    assert [next_tier(t) for t in Tier] == [Tier.COMMUNITY, Tier.STREET, Tier.DEPARTMENT, None]
