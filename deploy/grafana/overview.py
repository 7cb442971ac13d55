"""监管总览 (regulator overview): merchants at each warning level, new warnings and complaints,
the current red/orange list and the case desk's workload, for the selected towns, industries and
levels."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from deploy.grafana.panels import (
    LEVEL_ZH,
    LEVELS,
    MERCHANT_UID,
    OVERVIEW_UID,
    TAGS,
    bars,
    builtin_annotations,
    by_indicator,
    by_level,
    cases_url_variable,
    color_cells,
    dashboard_links,
    display_name,
    hidden,
    last_value,
    legend,
    level_names,
    links,
    with_panels,
)
from deploy.grafana.targets import POSTGRES, PROMETHEUS, prom, sql

TIMEZONE = "Asia/Shanghai"  # event days are Shanghai days (models/calendar.py)
# As the case desk names them (cases/web/common.py).
CASE_STATES = {"new": "待领取", "assigned": "已分派", "in_progress": "处理中", "resolved": "已办结", "closed": "已结案"}

# SQL filters for the overview's multi-value variables (see deploy/grafana/dashboards.py).
TOWN_SQL = "coalesce({column}, '其他') ~ '^(${{town:regex}})$'"
INDUSTRY_SQL = "coalesce({column}, 'unknown') ~ '^(${{industry:regex}})$'"
PROM_FILTER = 'town=~"$town", industry=~"$industry"'
ACTIVE_WARNINGS = f'yujing_active_warnings{{level=~"$level", {PROM_FILTER}}}'


def dashboard() -> dash.Dashboard:
    return with_panels(overview_board(), [
        current_levels(), warned_merchants_by("town", "镇街"), warned_merchants_by("industry", "行业"),
        live_new_warnings(), daily_new_warnings(), daily_complaints(), score_distribution(),
        red_orange_list(), case_states(), overdue_cases(), compliance_findings(),
    ])


def overview_board() -> dash.Dashboard:
    """The dashboard without its panels: time range, variables and annotations."""
    board = (
        dash.Dashboard("监管总览").uid(OVERVIEW_UID).tags(TAGS)
        .description("Prepaid-card early warnings for regulators: merchants at each warning level, "
                     "new warnings and complaints, the current red/orange list and the case desk's workload.")
        .time("now-90d", "now").refresh("5m").timezone("browser").readonly()
        .tooltip(model.DashboardCursorSync.CROSSHAIR).links(dashboard_links())
        .annotation(builtin_annotations())
        .with_variable(multi_variable(
            "town", "镇街 town", "Fengxian towns (yujing_active_warnings' town label; 其他 = other).",
            "label_values(yujing_active_warnings, town)"))
        .with_variable(multi_variable(
            "industry", "行业 industry", "Industries (beauty, hairdressing, fitness, other, unknown).",
            "label_values(yujing_active_warnings, industry)"))
        .with_variable(
            dash.CustomVariable("level").label("等级 level")
            .description("Warning levels shown by the level-aware panels.")
            .values(", ".join(f"{LEVEL_ZH[level]} {level} : {level}" for level in LEVELS))
            .multi(True).include_all(True).all_value(".*")
            .current(model.VariableOption(text=["All"], value=["$__all"], selected=True)))
        .with_variable(cases_url_variable())
    )
    for annotation in threshold_change_annotations():
        board = board.annotation(annotation)
    return board


def multi_variable(name: str, label: str, description: str, query: str) -> dash.QueryVariable:
    return (dash.QueryVariable(name).label(label).description(description).datasource(PROMETHEUS)
            .query(query).multi(True).include_all(True).all_value(".*")
            .refresh(model.VariableRefresh.ON_DASHBOARD_LOAD).sort(model.VariableSort.ALPHABETICAL_ASC)
            .current(model.VariableOption(text=["All"], value=["$__all"], selected=True)))


def threshold_change_annotations() -> list[dash.AnnotationQuery]:
    """Threshold changes on the overview's charts, from the case service's copy of the
    thresholds topic (``threshold_versions``): when a version was published (wall clock: the
    live panels) and the event time it applies from (the event-day panels). Refused versions
    are marked too, so a publication that changed nothing is not a mystery."""
    text = ("'阈值 thresholds ' || version || ' (' || status || ') by ' || author || ': ' || reason "
            "|| ' — ' || detail")
    return [
        dash.AnnotationQuery().name("阈值发布 thresholds published").datasource(POSTGRES)
        .enable(True).icon_color("purple")
        .target(sql(f"""
            SELECT published_at AS time, {text} AS text, 'thresholds,' || status AS tags
            FROM threshold_versions WHERE $__timeFilter(published_at) ORDER BY published_at""", fmt="table")),
        dash.AnnotationQuery().name("阈值生效 thresholds in force (event time)").datasource(POSTGRES)
        .enable(True).icon_color("dark-purple")
        .target(sql(f"""
            SELECT effective_from AS time, {text} AS text, 'thresholds,' || status AS tags
            FROM threshold_versions WHERE status = 'applied' AND $__timeFilter(effective_from)
            ORDER BY effective_from""", fmt="table")),
    ]


def count_gauge(panel: bargauge.Panel, colors: dash.FieldColor,
                orientation: common.VizOrientation = common.VizOrientation.HORIZONTAL) -> bargauge.Panel:
    """A bar gauge of whole counts, one bar per series."""
    return (panel.orientation(orientation).display_mode(common.BarGaugeDisplayMode.BASIC)
            .reduce_options(last_value()).unit("short").decimals(0).min(0).color_scheme(colors))


# --- warnings now -------------------------------------------------------------------------------

def current_levels() -> stat.Panel:
    return by_level(
        stat.Panel().title("当前预警商户（按等级）").span(8).height(6)
        .description("Merchants currently holding each warning level (sum of the workers' "
                     "yujing_active_warnings gauges), for the selected towns and industries.")
        .datasource(PROMETHEUS)
        .with_target(prom(f"sum by (level) ({ACTIVE_WARNINGS})", "{{level}}", instant=True))
        .reduce_options(last_value()).color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE).text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .unit("short").decimals(0)
    )


def warned_merchants_by(label: str, label_zh: str) -> bargauge.Panel:
    """Merchants holding a warning by town or by industry."""
    return count_gauge(
        bargauge.Panel().title(f"按{label_zh}（当前预警商户）").span(8).height(6)
        .description(f"Merchants currently holding a selected warning level, by {label} (largest first).")
        .datasource(PROMETHEUS)
        .with_target(prom(f"sort_desc(sum by ({label}) ({ACTIVE_WARNINGS}))", f"{{{{{label}}}}}", instant=True)),
        dash.FieldColor().mode(model.FieldColorModeId.CONTINUOUS_YL_RD),
    )


# --- trends -------------------------------------------------------------------------------------

def live_new_warnings() -> timeseries.Panel:
    new_warnings = (f'yujing_warnings_total{{transition=~"raised|escalated", level=~"$level", '
                    f'{PROM_FILTER}}}')
    return by_level(bars(
        timeseries.Panel().title("新增预警趋势（实时）").span(12).height(8)
        .description("Warnings raised or escalated as the worker sends them (wall-clock time), by level: "
                     "increase of yujing_warnings_total over Grafana's rate interval.")
        .datasource(PROMETHEUS)
        .with_target(prom(f"sum by (level) (increase({new_warnings}[$__rate_interval]))", "{{level}}"))
        .unit("short").min(0).legend(legend()),
        stacked=True,
    ))


def daily_new_warnings() -> timeseries.Panel:
    return by_level(bars(
        timeseries.Panel().title("新增预警趋势（按事件日）").span(12).height(8)
        .description("Warnings raised or escalated per event day (the Shanghai day of raised_at), by "
                     "level, from the case desk's warnings table; repeats of a level a merchant already "
                     "held (action = duplicate) are left out.")
        .datasource(POSTGRES)
        .with_target(sql(f"""
            SELECT date_trunc('day', w.raised_at AT TIME ZONE '{TIMEZONE}') AS time,
                   w.level AS metric, count(*) AS warnings
            FROM warnings w
            WHERE $__timeFilter(w.raised_at)
              AND w.transition IN ('raised', 'escalated') AND w.action <> 'duplicate'
              AND w.level ~ '^(${{level:regex}})$'
              AND {TOWN_SQL.format(column="w.payload->>'district'")}
              AND {INDUSTRY_SQL.format(column="w.payload->>'industry'")}
            GROUP BY 1, 2
            ORDER BY 1, 2
        """))
        .unit("short").min(0).legend(legend()),
        stacked=True,
    ))


def daily_complaints() -> timeseries.Panel:
    return bars(
        timeseries.Panel().title("投诉趋势（按事件日）").span(12).height(8)
        .description("Consumer complaints per event day over all merchants in the selected towns and "
                     "industries (sum of merchant_days.complaints).")
        .datasource(POSTGRES)
        .with_target(sql(f"""
            SELECT day::timestamp AS time, sum(complaints) AS "投诉 complaints"
            FROM merchant_days
            WHERE $__timeFilter(day)
              AND {TOWN_SQL.format(column="district")}
              AND {INDUSTRY_SQL.format(column="industry")}
            GROUP BY day
            ORDER BY day
        """))
        .unit("short").min(0).legend(legend())
        .color_scheme(dash.FieldColor().mode(model.FieldColorModeId.FIXED).fixed_color("purple")),
        fill_opacity=70,
    )


def score_distribution() -> bargauge.Panel:
    return count_gauge(
        bargauge.Panel().title("风险评分分布").span(12).height(8)
        .description("How the composite risk scores of the merchant-days scored in the selected time "
                     "range are distributed: merchant-days per 0.1 of score (yujing_risk_score histogram, "
                     "buckets de-cumulated by Grafana's heatmap format).")
        .datasource(PROMETHEUS)
        .with_target(prom(
            'sum by (le) (increase(yujing_risk_score_bucket{industry=~"$industry"}[$__range]))',
            "{{le}}", instant=True, fmt=PromQueryFormat.HEATMAP)),
        dash.FieldColor().mode(model.FieldColorModeId.CONTINUOUS_GR_YL_RD),
        common.VizOrientation.VERTICAL,
    )


# --- red/orange list and the case desk ----------------------------------------------------------

def red_orange_list() -> table.Panel:
    return (
        table.Panel().title("当前红橙名单").span(24).height(10)
        .description("Merchants currently at red or orange (merchant_levels, as the case desk read the "
                     "warnings), red first, with the open case that holds each one. Click a merchant "
                     "for its drill-down, a case id for the case page in the case desk.")
        .datasource(POSTGRES)
        .with_target(sql(f"""
            SELECT m.merchant_name AS merchant, m.district AS town, m.industry, m.level,
                   m.last_raised_at AS since, c.case_id, m.merchant_id
            FROM merchant_levels m
            LEFT JOIN LATERAL (
                SELECT cm.case_id
                FROM case_merchants cm JOIN cases k ON k.case_id = cm.case_id
                WHERE cm.merchant_id = m.merchant_id
                  AND k.status IN ('new', 'assigned', 'in_progress')
                ORDER BY k.opened_at DESC
                LIMIT 1
            ) c ON true
            WHERE m.level IN ('red', 'orange')
              AND {TOWN_SQL.format(column="m.district")}
              AND {INDUSTRY_SQL.format(column="m.industry")}
            ORDER BY m.level = 'red' DESC, m.last_raised_at DESC
        """, fmt="table"))
        .cell_height(common.TableCellHeight.SM).filterable(True)
        .override_by_name("merchant", [
            display_name("商户 merchant"),
            links(("商户画像 merchant drill-down",
                   f"/d/{MERCHANT_UID}?var-merchant=${{__data.fields.merchant_id}}&${{__url_time_range}}")),
        ])
        .override_by_name("town", [display_name("镇街 town")])
        .override_by_name("industry", [display_name("行业 industry")])
        .override_by_name("level", [display_name("等级 level"), color_cells(), level_names()])
        .override_by_name("since", [display_name("起始 since")])
        .override_by_name("case_id", [display_name("案件 case"),
                                      links(("打开案件 open case", "${cases_url}/cases/${__value.raw}"))])
        .override_by_name("merchant_id", [hidden()])
    )


def case_states() -> bargauge.Panel:
    states = count_gauge(
        bargauge.Panel().title("案件状态").span(12).height(7)
        .description("Cases in the case desk by state (yujing_cases gauge, all levels).")
        .datasource(PROMETHEUS)
        .with_target(prom("max by (state) (yujing_cases)", "{{state}}", instant=True)),
        dash.FieldColor().mode(model.FieldColorModeId.FIXED).fixed_color("blue"),
    )
    for state, zh in CASE_STATES.items():
        states = states.override_by_name(state, [display_name(f"{zh} {state}")])
    return states


def overdue_cases() -> stat.Panel:
    return by_level(
        stat.Panel().title("超期案件").span(12).height(7)
        .description("Open cases past their response deadline, by level (yujing_cases_overdue).")
        .datasource(PROMETHEUS)
        .with_target(prom("max by (level) (yujing_cases_overdue)", "{{level}}", instant=True))
        .reduce_options(last_value()).color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.NONE).text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .unit("short").decimals(0)
    )


def compliance_findings() -> bargauge.Panel:
    return by_indicator(count_gauge(
        bargauge.Panel().title("合规发现").span(24).height(6)
        .description("Compliance findings not yet cleared, by code (yujing_compliance_findings, open or "
                     "acknowledged): cap breaches, missing custody reports, custody shortfalls. They are "
                     "for the compliance desk (/compliance in the case desk) and raise the risk level only "
                     "as far as their learned weights do (docs/compliance.md).")
        .datasource(PROMETHEUS)
        .with_target(prom('sum by (code) (max by (code, status) '
                          '(yujing_compliance_findings{status=~"open|acknowledged"}))', "{{code}}", instant=True)),
        dash.FieldColor().mode(model.FieldColorModeId.FIXED).fixed_color("purple"),
    ))
