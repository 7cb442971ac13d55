"""商户画像 (merchant drill-down): one merchant's history as the worker scored it, day by day in
event time, from the case service's merchant-day history, warnings and cases."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import statetimeline, table, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from deploy.grafana.panels import (
    MERCHANT_UID,
    TAGS,
    bars,
    builtin_annotations,
    by_indicator,
    cases_url_variable,
    color_cells,
    dashboard_links,
    decimals,
    legend,
    level_mappings,
    level_names,
    links,
    with_panels,
)
from deploy.grafana.targets import POSTGRES, dedent_sql, sql

MERCHANT_WHERE = "merchant_id = '$merchant' AND $__timeFilter(day)"


def dashboard() -> dash.Dashboard:
    return with_panels(merchant_board(), [
        profile(), score(), level_held(), indicator_readings(), score_contributions(), money(),
        complaints(), level_changes(), cases(),
    ])


def merchant_board() -> dash.Dashboard:
    """The dashboard without its panels: time range and the merchant to show."""
    return (
        dash.Dashboard("商户画像").uid(MERCHANT_UID).tags(TAGS)
        .description("One merchant's history as the worker scored it, day by day in event time: score, "
                     "level, indicator readings, money, complaints, warnings and cases.")
        .time("now-1y", "now").timezone("browser").readonly()
        .tooltip(model.DashboardCursorSync.CROSSHAIR).links(dashboard_links())
        .annotation(builtin_annotations())
        .with_variable(
            dash.QueryVariable("merchant").label("商户 merchant").datasource(POSTGRES)
            .description("Merchants with scored days, highest peak score first.")
            .query(dedent_sql("""
                SELECT merchant_id AS __value, coalesce(max(merchant_name) || ' · ', '') || merchant_id AS __text
                FROM merchant_days
                GROUP BY merchant_id
                ORDER BY max(score) DESC, merchant_id
            """))
            .refresh(model.VariableRefresh.ON_DASHBOARD_LOAD).sort(model.VariableSort.DISABLED))
        .with_variable(cases_url_variable())
    )


# --- the scored days ----------------------------------------------------------------------------

def profile() -> table.Panel:
    return (
        table.Panel().title("商户概况").span(24).height(4)
        .description("The merchant's latest scored day: profile, composite score and level held.")
        .datasource(POSTGRES)
        .with_target(sql("""
            SELECT merchant_name AS merchant, district AS town, industry, chain_id, day AS last_day,
                   score, coalesce(level, 'none') AS level, thresholds_version
            FROM merchant_days
            WHERE merchant_id = '$merchant'
            ORDER BY day DESC
            LIMIT 1
        """, fmt="table"))
        .override_by_name("level", [color_cells(), level_names()])
        .override_by_name("score", [decimals(3)])
    )


def score() -> timeseries.Panel:
    return (
        timeseries.Panel().title("综合风险评分").span(12).height(8)
        .description("Composite risk score (0..1) of each scored day in event time (merchant_days.score).")
        .datasource(POSTGRES)
        .with_target(sql(f"""
            SELECT day::timestamp AS time, score AS "综合评分 score"
            FROM merchant_days
            WHERE {MERCHANT_WHERE}
            ORDER BY day
        """))
        .unit("percentunit").min(0).max(1).legend(legend())
    )


def level_held() -> statetimeline.Panel:
    return (
        statetimeline.Panel().title("预警等级").span(12).height(8)
        .description("The warning level the merchant held after each event day (merchant_days.level; "
                     "none = no warning).")
        .datasource(POSTGRES)
        .with_target(sql(f"""
            SELECT day::timestamp AS time, coalesce(level, 'none') AS "等级 level"
            FROM merchant_days
            WHERE {MERCHANT_WHERE}
            ORDER BY day
        """))
        .mappings(level_mappings()).show_value(common.VisibilityMode.NEVER).merge_values(True)
        .legend(legend())
    )


def indicator_readings() -> timeseries.Panel:
    return by_indicator(
        timeseries.Panel().title("指标读数").span(12).height(9)
        .description("Each indicator's reading per event day, 0 (fine) to 1 (fully alarming), one series "
                     "per indicator code (merchant_indicator_days.reading).")
        .datasource(POSTGRES)
        .with_target(sql(f"""
            SELECT day::timestamp AS time, code AS metric, reading
            FROM merchant_indicator_days
            WHERE {MERCHANT_WHERE}
            ORDER BY day, code
        """))
        .unit("percentunit").min(0).max(1).legend(legend(common.LegendPlacement.RIGHT))
    )


def score_contributions() -> timeseries.Panel:
    return by_indicator(bars(
        timeseries.Panel().title("评分贡献").span(12).height(9)
        .description("What each indicator added to the score per event day (weight x reading, before "
                     "the groups are fused), stacked (merchant_indicator_days.contribution).")
        .datasource(POSTGRES)
        .with_target(sql(f"""
            SELECT day::timestamp AS time, code AS metric, contribution
            FROM merchant_indicator_days
            WHERE {MERCHANT_WHERE}
            ORDER BY day, code
        """))
        .min(0).legend(legend(common.LegendPlacement.RIGHT)),
        stacked=True,
    ))


def money() -> timeseries.Panel:
    return (
        timeseries.Panel().title("预收资金与存管").span(12).height(9)
        .description("Outstanding prepaid balance, card sales, redemptions and refunds over the last 28 "
                     "days, and the custody balance against what custody requires, per event day (yuan).")
        .datasource(POSTGRES)
        .with_target(sql(f"""
            SELECT day::timestamp AS time,
                   prepaid_balance AS "预收余额 prepaid balance",
                   sales_28d AS "28日售卡 sales 28d",
                   redeemed_28d AS "28日核销 redeemed 28d",
                   refunds_28d AS "28日退款 refunds 28d",
                   custody_balance AS "存管余额 custody balance",
                   custody_required AS "应存管 custody required"
            FROM merchant_days
            WHERE {MERCHANT_WHERE}
            ORDER BY day
        """))
        .unit("currencyCNY").legend(legend())
        .override_by_name("应存管 custody required", [
            model.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
        ])
    )


def complaints() -> timeseries.Panel:
    return bars(
        timeseries.Panel().title("每日投诉").span(12).height(9)
        .description("Complaints against the merchant per event day (bars) and over the last 28 days "
                     "(line), from merchant_days.")
        .datasource(POSTGRES)
        .with_target(sql(f"""
            SELECT day::timestamp AS time, complaints AS "当日投诉 complaints",
                   complaints_28d AS "28日投诉 complaints 28d"
            FROM merchant_days
            WHERE {MERCHANT_WHERE}
            ORDER BY day
        """))
        .unit("short").min(0).legend(legend())
        .override_by_name("28日投诉 complaints 28d", [
            model.DynamicConfigValue(id_val="custom.drawStyle", value="line"),
            model.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
        ]),
        fill_opacity=70,
    )


# --- warnings and cases -------------------------------------------------------------------------

def level_changes() -> table.Panel:
    return (
        table.Panel().title("等级变化记录").span(24).height(8)
        .description("Every warning the case desk read for this merchant, newest first (all time): when "
                     "the level changed (event time), how, the score and the reason.")
        .datasource(POSTGRES)
        .with_target(sql("""
            SELECT raised_at, transition, previous_level, level, score, reason
            FROM warnings
            WHERE merchant_id = '$merchant'
            ORDER BY raised_at DESC, emitted_at DESC
        """, fmt="table"))
        .cell_height(common.TableCellHeight.SM)
        .override_by_name("level", [color_cells(), level_names()])
        .override_by_name("previous_level", [level_names()])
        .override_by_name("score", [decimals(3)])
        .override_by_name("reason", [model.DynamicConfigValue(id_val="custom.width", value=600)])
    )


def cases() -> table.Panel:
    return (
        table.Panel().title("相关案件").span(24).height(6)
        .description("The case desk's cases that hold this merchant, newest first (all time); a case id "
                     "opens the case page.")
        .datasource(POSTGRES)
        .with_target(sql("""
            SELECT c.case_id, c.title, c.status, c.level, c.max_level, c.assignee, c.disposition,
                   c.opened_at, c.due_at, c.resolved_at, c.closed_at
            FROM cases c
            JOIN case_merchants cm ON cm.case_id = c.case_id
            WHERE cm.merchant_id = '$merchant'
            ORDER BY c.opened_at DESC
        """, fmt="table"))
        .cell_height(common.TableCellHeight.SM)
        .override_by_name("case_id", [links(("打开案件 open case", "${cases_url}/cases/${__value.raw}"))])
        .override_by_name("level", [level_names()])
        .override_by_name("max_level", [level_names()])
    )
