"""The demo city's category taxonomy and routing rules.

Limits follow the practice the source documents describe: emergencies answered within
30 minutes around the clock, urgent matters within 2 working hours, ordinary matters
resolved in 1-5 working days, and service requests filed on a resident's behalf (低保,
临时救助, 高龄补贴, 残疾人补贴) within the civil-affairs review periods.

Default tiers follow "small things stay in the grid, big things stay in the street":
what a grid worker can settle stays in the grid; what needs enforcement, a licence or
a professional crew goes to the department that holds the power.
"""

from __future__ import annotations

from dataclasses import dataclass

from onegrid_contracts.cases import Tier
from onegrid_contracts.registry import (
    Category,
    CoveringUnit,
    FixedUnit,
    GridKind,
    LimitUnit,
    Priority,
    RoutingRule,
    TimeLimit,
)

MAJORS: dict[str, str] = {
    "environment": "市容环境",
    "street_order": "街面秩序",
    "advertising": "宣传广告",
    "construction": "施工管理",
    "emergency": "突发事件",
    "facilities": "公用设施",
    "traffic": "道路交通",
    "greening": "园林绿化",
    "dispute": "矛盾纠纷",
    "security": "治安隐患",
    "safety": "安全生产与消防隐患",
    "special_groups": "特殊人群服务",
    "livelihood": "民生服务代办",
}


def _limit(text: str) -> TimeLimit:
    """'30m' clock minutes, '2h' working hours, '3d' working days."""
    units = {"m": LimitUnit.MINUTES, "h": LimitUnit.WORKING_HOURS, "d": LimitUnit.WORKING_DAYS}
    return TimeLimit(amount=int(text[:-1]), unit=units[text[-1]])


@dataclass(frozen=True)
class _Spec:
    code: str
    name_zh: str
    priority: Priority
    response: str
    resolution: str
    tier: Tier
    lead: str  # a department code, or "" for the covering unit of `tier`
    keywords: tuple[str, ...]
    assisting: tuple[str, ...] = ()  # department codes, or "community"/"street" (covering)
    requires_id: bool = False
    radius_m: int = 50
    window_h: int = 24


U, H, N, L = Priority.URGENT, Priority.HIGH, Priority.NORMAL, Priority.LOW
G, C, S, D = Tier.GRID, Tier.COMMUNITY, Tier.STREET, Tier.DEPARTMENT

# fmt: off
_SPECS: tuple[_Spec, ...] = (
    # 市容环境
    _Spec("environment.exposed_garbage", "暴露垃圾", N, "2h", "1d", G, "",
          ("垃圾", "垃圾堆", "乱扔", "脏乱差")),
    _Spec("environment.overflowing_bin", "垃圾桶满溢", N, "2h", "1d", G, "",
          ("垃圾桶", "垃圾箱", "满溢", "没人清运")),
    _Spec("environment.road_dirt", "道路不洁", L, "4h", "1d", C, "",
          ("路面脏", "油污", "泥浆", "撒漏")),
    _Spec("environment.construction_waste", "乱倒建筑垃圾", N, "4h", "3d", D, "urban",
          ("建筑垃圾", "渣土", "偷倒", "装修垃圾"), radius_m=100),
    _Spec("environment.dead_animal", "动物尸体", N, "2h", "1d", G, "",
          ("死猫", "死狗", "动物尸体", "死老鼠")),
    # 街面秩序
    _Spec("street_order.street_vending", "占道经营", N, "4h", "2d", D, "urban",
          ("摆摊", "占道经营", "流动摊贩", "小贩"), radius_m=100),
    _Spec("street_order.outside_shop", "店外经营", L, "1d", "3d", C, "",
          ("店外经营", "出店经营", "门前堆放")),
    _Spec("street_order.illegal_parking", "违规停车", N, "2h", "1d", D, "police",
          ("乱停车", "违停", "占道停车", "堵住车库")),
    _Spec("street_order.noise", "噪声扰民", N, "4h", "2d", D, "urban",
          ("噪音", "噪声", "扰民", "广场舞", "音响")),
    _Spec("street_order.shared_bikes", "共享单车乱停放", L, "1d", "2d", C, "",
          ("共享单车", "单车乱停", "电动车乱停")),
    # 宣传广告
    _Spec("advertising.illegal_posters", "非法小广告", L, "1d", "2d", G, "",
          ("小广告", "牛皮癣", "乱贴", "乱涂乱画")),
    _Spec("advertising.illegal_signboard", "违规户外广告牌", N, "1d", "5d", D, "urban",
          ("广告牌", "店招", "招牌", "灯箱")),
    _Spec("advertising.banner", "违规悬挂横幅", L, "1d", "2d", C, "",
          ("横幅", "条幅", "标语")),
    # 施工管理
    _Spec("construction.illegal_building", "违法建设", H, "4h", "5d", D, "urban",
          ("违建", "私搭乱建", "加层", "违章建筑"), assisting=("street",), radius_m=30,
          window_h=24 * 7),
    _Spec("construction.night_work", "夜间施工扰民", H, "2h", "1d", D, "urban",
          ("夜间施工", "半夜施工", "施工噪音")),
    _Spec("construction.site_dust", "工地扬尘", N, "4h", "3d", D, "housing",
          ("扬尘", "工地", "未覆盖", "黄土")),
    _Spec("construction.road_excavation", "违规占道挖掘", N, "4h", "3d", D, "housing",
          ("挖路", "开挖", "占道施工"), assisting=("urban",)),
    # 突发事件
    _Spec("emergency.fire", "火灾", U, "30m", "1d", D, "fire",
          ("着火", "火灾", "冒烟", "失火"), assisting=("community",), radius_m=200, window_h=6),
    _Spec("emergency.flooding", "积水内涝", U, "30m", "1d", D, "emergency",
          ("积水", "内涝", "淹水", "被淹"), assisting=("utilities",), radius_m=200, window_h=12),
    _Spec("emergency.gas_leak", "燃气泄漏", U, "30m", "1d", D, "utilities",
          ("燃气泄漏", "煤气味", "天然气泄漏"), assisting=("fire",), radius_m=100, window_h=6),
    _Spec("emergency.geological_hazard", "地质灾害", U, "30m", "2d", D, "emergency",
          ("滑坡", "塌方", "落石", "地面塌陷"), assisting=("street",), radius_m=300, window_h=24),
    # 公用设施
    _Spec("facilities.manhole_cover", "井盖缺损", H, "2h", "1d", D, "utilities",
          ("井盖", "窨井", "下水道盖")),
    _Spec("facilities.streetlight", "路灯故障", N, "1d", "3d", D, "urban",
          ("路灯", "不亮", "灯坏了")),
    _Spec("facilities.water_pipe", "供水管道破损", H, "2h", "1d", D, "utilities",
          ("爆管", "漏水", "水管破裂", "停水"), radius_m=100),
    _Spec("facilities.power_line", "电力设施隐患", H, "2h", "2d", D, "utilities",
          ("停电", "电线", "电杆", "变压器")),
    _Spec("facilities.drain_blockage", "下水道堵塞", N, "4h", "2d", D, "utilities",
          ("下水道", "堵塞", "污水外溢", "化粪池")),
    _Spec("facilities.fitness_equipment", "健身器材损坏", L, "1d", "5d", C, "",
          ("健身器材", "器材损坏", "滑梯")),
    # 道路交通
    _Spec("traffic.road_damage", "道路破损", N, "1d", "5d", D, "housing",
          ("坑洼", "路面破损", "塌陷", "人行道破损")),
    _Spec("traffic.traffic_signal", "交通信号灯故障", H, "2h", "1d", D, "police",
          ("红绿灯", "信号灯", "交通灯")),
    _Spec("traffic.guardrail", "护栏损坏", N, "1d", "3d", D, "urban",
          ("护栏", "隔离栏", "防撞栏")),
    # 园林绿化
    _Spec("greening.damaged_green", "绿地毁损", L, "1d", "5d", D, "urban",
          ("绿地", "草坪", "践踏", "毁绿")),
    _Spec("greening.fallen_tree", "树木倒伏", H, "2h", "1d", D, "urban",
          ("倒树", "树倒了", "断枝", "树枝")),
    _Spec("greening.vegetable_planting", "毁绿种菜", L, "1d", "5d", C, "",
          ("种菜", "开荒", "菜地")),
    # 矛盾纠纷
    _Spec("dispute.neighbour", "邻里纠纷", N, "4h", "3d", G, "",
          ("邻居", "吵架", "纠纷", "漏水到楼下"), radius_m=20, window_h=24 * 7),
    _Spec("dispute.family", "家庭矛盾", N, "4h", "5d", C, "",
          ("家庭矛盾", "婚姻", "赡养", "家暴")),
    _Spec("dispute.property_management", "物业纠纷", N, "1d", "5d", S, "",
          ("物业", "物业费", "业委会"), assisting=("housing",)),
    _Spec("dispute.wage_arrears", "拖欠工资", H, "4h", "5d", S, "",
          ("欠薪", "拖欠工资", "讨薪", "农民工工资"), assisting=("community",)),
    # 治安隐患
    _Spec("security.suspicious_person", "可疑人员", H, "2h", "1d", D, "police",
          ("可疑", "陌生人", "尾随", "撬锁")),
    _Spec("security.gambling", "聚众赌博", N, "2h", "2d", D, "police",
          ("赌博", "赌钱", "聚赌")),
    _Spec("security.rental_housing", "出租屋隐患", N, "1d", "5d", C, "",
          ("出租屋", "群租", "租客"), assisting=("police",)),
    # 安全生产与消防隐患
    _Spec("safety.fire_hazard", "消防隐患", H, "2h", "2d", C, "",
          ("消防通道", "堵塞", "灭火器", "消防栓")),
    _Spec("safety.ev_charging", "电动车违规充电", H, "2h", "1d", G, "",
          ("飞线充电", "楼道充电", "电动车充电")),
    _Spec("safety.gas_cylinder", "液化气瓶违规使用", H, "2h", "2d", D, "emergency",
          ("液化气", "煤气罐", "气瓶")),
    _Spec("safety.production_hazard", "安全生产隐患", H, "2h", "3d", S, "",
          ("安全生产", "违规作业", "无证作业", "危化品"), assisting=("emergency",)),
    _Spec("safety.food_safety", "食品安全", H, "4h", "3d", D, "market",
          ("过期食品", "食品安全", "无证经营", "食物中毒")),
    # 特殊人群服务
    _Spec("special_groups.elderly_alone", "独居老人关爱", N, "4h", "2d", G, "",
          ("独居老人", "空巢老人", "孤寡老人")),
    _Spec("special_groups.mental_disorder", "严重精神障碍患者异常", U, "30m", "1d", D, "health",
          ("精神病", "精神障碍", "肇事肇祸", "发病"), assisting=("police", "community")),
    _Spec("special_groups.community_correction", "社区矫正人员异常", H, "2h", "2d", C, "",
          ("社区矫正", "刑满释放", "脱管"), assisting=("police",)),
    _Spec("special_groups.left_behind_children", "留守儿童关爱", N, "1d", "5d", C, "",
          ("留守儿童", "无人看管", "辍学")),
    # 民生服务代办
    _Spec("livelihood.minimum_allowance", "低保申请", N, "1d", "20d", D, "civil",
          ("低保", "最低生活保障"), assisting=("community",), requires_id=True, radius_m=0,
          window_h=24 * 30),
    _Spec("livelihood.temporary_assistance", "临时救助", H, "4h", "5d", D, "civil",
          ("临时救助", "救助金", "生活困难", "大病"), assisting=("community",), requires_id=True,
          radius_m=0, window_h=24 * 7),
    _Spec("livelihood.elderly_allowance", "高龄补贴申领", L, "1d", "15d", D, "civil",
          ("高龄补贴", "高龄津贴", "八十岁"), assisting=("community",), requires_id=True,
          radius_m=0, window_h=24 * 30),
    _Spec("livelihood.disability_allowance", "残疾人补贴申领", L, "1d", "15d", D, "civil",
          ("残疾人补贴", "残疾证", "护理补贴", "两项补贴"), assisting=("community",),
          requires_id=True, radius_m=0, window_h=24 * 30),
    _Spec("livelihood.medical_insurance", "城乡居民医保代办", L, "1d", "5d", C, "",
          ("医保", "参保", "代缴"), requires_id=True, radius_m=0, window_h=24 * 30),
)
# fmt: on


def categories() -> list[Category]:
    return [
        Category(
            code=spec.code,
            name_zh=spec.name_zh,
            major_code=spec.code.split(".")[0],
            major_name_zh=MAJORS[spec.code.split(".")[0]],
            priority=spec.priority,
            response_limit=_limit(spec.response),
            resolution_limit=_limit(spec.resolution),
            default_tier=spec.tier,
            requires_id_number=spec.requires_id,
            keywords=list(spec.keywords),
            duplicate_radius_m=spec.radius_m,
            duplicate_window_hours=spec.window_h,
        )
        for spec in _SPECS
    ]


def _selector(name: str) -> FixedUnit | CoveringUnit:
    if name in ("grid", "community", "street"):
        return CoveringUnit(tier=Tier(name))
    return FixedUnit(unit_code=name)


def _default_rule(spec: _Spec) -> RoutingRule:
    lead = FixedUnit(unit_code=spec.lead) if spec.lead else CoveringUnit(tier=spec.tier)
    return RoutingRule(
        code=f"route.{spec.code}",
        category_code=spec.code,
        tier=spec.tier,
        lead=lead,
        assisting=[_selector(name) for name in spec.assisting],
    )


# Narrower rules: where the place or the severity changes who must act.
_DEDICATED_FIRE_KINDS = (
    GridKind.SCHOOL,
    GridKind.HOSPITAL,
    GridKind.MARKET,
    GridKind.INDUSTRIAL_PARK,
)
XIAOTING = "420505"  # 猇亭区: the industrial district


def _specific_rules() -> list[RoutingRule]:
    rules = [
        RoutingRule(
            code=f"route.safety.fire_hazard.{kind.value}",
            category_code="safety.fire_hazard",
            grid_kind=kind,
            tier=Tier.DEPARTMENT,
            lead=FixedUnit(unit_code="fire"),
            assisting=[CoveringUnit(tier=Tier.COMMUNITY)],
        )
        for kind in _DEDICATED_FIRE_KINDS
    ]
    rules += [
        RoutingRule(
            code="route.safety.fire_hazard.urgent",
            category_code="safety.fire_hazard",
            min_severity=Priority.URGENT,
            tier=Tier.DEPARTMENT,
            lead=FixedUnit(unit_code="fire"),
            assisting=[CoveringUnit(tier=Tier.COMMUNITY)],
        ),
        RoutingRule(
            code="route.safety.production_hazard.xiaoting",
            category_code="safety.production_hazard",
            district_code=XIAOTING,
            tier=Tier.DEPARTMENT,
            lead=FixedUnit(unit_code="emergency"),
            assisting=[CoveringUnit(tier=Tier.STREET)],
        ),
        RoutingRule(
            code="route.safety.production_hazard.industrial_park",
            category_code="safety.production_hazard",
            grid_kind=GridKind.INDUSTRIAL_PARK,
            tier=Tier.DEPARTMENT,
            lead=FixedUnit(unit_code="emergency"),
            assisting=[FixedUnit(unit_code="fire")],
        ),
        RoutingRule(
            code="route.street_order.street_vending.market",
            category_code="street_order.street_vending",
            grid_kind=GridKind.MARKET,
            tier=Tier.DEPARTMENT,
            lead=FixedUnit(unit_code="market"),
            assisting=[FixedUnit(unit_code="urban")],
        ),
        RoutingRule(
            code="route.environment.exposed_garbage.scenic_area",
            category_code="environment.exposed_garbage",
            grid_kind=GridKind.SCENIC_AREA,
            tier=Tier.DEPARTMENT,
            lead=FixedUnit(unit_code="urban"),
        ),
        RoutingRule(
            code="route.dispute.neighbour.serious",
            category_code="dispute.neighbour",
            min_severity=Priority.HIGH,
            tier=Tier.COMMUNITY,
            lead=CoveringUnit(tier=Tier.COMMUNITY),
            assisting=[FixedUnit(unit_code="police")],
        ),
        RoutingRule(
            code="route.security.suspicious_person.school",
            category_code="security.suspicious_person",
            grid_kind=GridKind.SCHOOL,
            tier=Tier.DEPARTMENT,
            lead=FixedUnit(unit_code="police"),
            assisting=[CoveringUnit(tier=Tier.GRID)],
            precedence=1,
        ),
    ]
    return rules


def routing_rules() -> list[RoutingRule]:
    return [_default_rule(spec) for spec in _SPECS] + _specific_rules()
