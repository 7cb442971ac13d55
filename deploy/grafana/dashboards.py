"""Grafana dashboards as code: 监管总览 (regulator overview), 商户画像 (merchant drill-down) and
管道健康 (pipeline health), built with grafana-foundation-sdk.

``python -m deploy.grafana.dashboards`` writes the dashboards' JSON to
``deploy/grafana/dashboards/`` (what Grafana's file provider loads) and the panel catalogue into
README.md between ``<!-- dashboards:start -->`` and ``<!-- dashboards:end -->``;
``--check`` writes nothing and exits 1 when any of them is stale.

Every query is data: :func:`all_queries` lists each panel target, template-variable query and
annotation query with its datasource kind, so a test can run every PromQL expression against a
real Prometheus and every SQL statement against the case service's PostgreSQL
(:func:`substitute` fills in Grafana's macros the way Grafana does for the default selection).

Queries use only these Grafana variables: PromQL ``$__rate_interval``, ``$__range``, ``$town``,
``$industry``, ``$level``; SQL ``$__timeFilter(column)``, ``'$merchant'`` and
``${town:regex}`` / ``${industry:regex}`` / ``${level:regex}`` inside ``~ '^(...)$'``. The
multi-value variables have the custom "All" value ``.*``; the ``:regex`` format is what makes
one, several or all selected values a valid PostgreSQL regular expression (Grafana's default SQL
formatting would quote them as ``'a','b'`` and leave "All" as a bare ``.*``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Self

from grafana_foundation_sdk.builders import (
    bargauge,
    prometheus,
    stat,
    statetimeline,
    table,
    timeseries,
)
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from models.indicator_docs import indicator_rows

ROOT = Path(__file__).resolve().parents[2]
OUT_DIR = ROOT / "deploy" / "grafana" / "dashboards"
README = ROOT / "README.md"
README_START = "<!-- dashboards:start -->"
README_END = "<!-- dashboards:end -->"

PROMETHEUS = model.DataSourceRef(type_val="prometheus", uid="yujing-prometheus")
POSTGRES = model.DataSourceRef(type_val="grafana-postgresql-datasource", uid="yujing-postgres")
DATASOURCE_KINDS = {"yujing-prometheus": "prometheus", "yujing-postgres": "postgres"}

OVERVIEW_UID, MERCHANT_UID, PIPELINE_UID = "yujing-overview", "yujing-merchant", "yujing-pipeline"
ENGLISH_TITLES = {OVERVIEW_UID: "Regulator overview", MERCHANT_UID: "Merchant drill-down",
                  PIPELINE_UID: "Pipeline health"}
TAGS = ["yujing", "预付卡预警"]
DEFAULT_CASES_URL = "http://localhost:8470"
TIMEZONE = "Asia/Shanghai"  # event days are Shanghai days (models/calendar.py)

LEVELS = ("blue", "yellow", "orange", "red")
LEVEL_ZH = {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色", "none": "无"}
LEVEL_COLOR = {"blue": "blue", "yellow": "yellow", "orange": "orange", "red": "red", "none": "green"}
# As the case desk names them (cases/web.py).
CASE_STATES = {"new": "待领取", "assigned": "已分派", "in_progress": "处理中", "resolved": "已办结", "closed": "已结案"}

# SQL filters for the overview's multi-value variables (see the module docstring).
TOWN_SQL = "coalesce({column}, '其他') ~ '^(${{town:regex}})$'"
INDUSTRY_SQL = "coalesce({column}, 'unknown') ~ '^(${{industry:regex}})$'"
PROM_FILTER = 'town=~"$town", industry=~"$industry"'


# --- PostgreSQL targets -------------------------------------------------------------------------
# The SDK generates typed query builders for the datasources it has schemas for (Prometheus,
# Loki, Athena, BigQuery, ...) but none for Grafana's core PostgreSQL datasource. This extends the
# SDK's common DataQuery (refId, hide, queryType, datasource) the way its generated dataqueries
# do, with the fields Grafana's SQL datasources store (rawSql, format, rawQuery, editorMode).

SqlFormat = Literal["time_series", "table"]


class SqlDataquery(common.DataQuery, cogvariants.Dataquery):
    """A Grafana PostgreSQL query in code mode (a raw SQL statement)."""

    def __init__(self, raw_sql: str = "", format_val: SqlFormat = "time_series", ref_id: str = "") -> None:
        super().__init__(ref_id=ref_id, datasource=POSTGRES)
        self.raw_sql = raw_sql
        self.format_val = format_val

    def to_json(self) -> dict[str, object]:
        return {
            **super().to_json(), "rawSql": self.raw_sql, "format": self.format_val,
            "rawQuery": True, "editorMode": "code",
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(data.get("rawSql", ""), data.get("format", "time_series"), data.get("refId", ""))


class Sql(cogbuilder.Builder[cogvariants.Dataquery]):
    """Builder for :class:`SqlDataquery`, in the SDK's builder style."""

    def __init__(self, raw_sql: str) -> None:
        self._internal = SqlDataquery(_dedent(raw_sql))

    def build(self) -> SqlDataquery:
        return self._internal

    def format(self, format_val: SqlFormat) -> Self:
        self._internal.format_val = format_val
        return self

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self


def _dedent(sql: str) -> str:
    lines = [line.rstrip() for line in sql.strip("\n").splitlines()]
    indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    return "\n".join(line[indent:] for line in lines).strip()


def prom(expr: str, legend: str = "", ref_id: str = "A", *, instant: bool = False,
         fmt: PromQueryFormat | None = None) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).ref_id(ref_id).datasource(PROMETHEUS)
    if legend:
        query = query.legend_format(legend)
    query = query.instant() if instant else query.range()
    if fmt is not None:
        query = query.format(fmt)
    return query


def quantile(q: float, buckets: str, legend: str, ref_id: str = "A") -> prometheus.Dataquery:
    """A histogram's ``q`` quantile over all its series, per rate interval."""
    return prom(f"histogram_quantile({q}, sum by (le) (rate({buckets}[$__rate_interval])))", legend, ref_id)


def sql(raw_sql: str, ref_id: str = "A", fmt: SqlFormat = "time_series") -> Sql:
    return Sql(raw_sql).ref_id(ref_id).format(fmt)


# --- small helpers ------------------------------------------------------------------------------

def fixed_color(color: str) -> model.DynamicConfigValue:
    return model.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": color})


def display_name(name: str) -> model.DynamicConfigValue:
    return model.DynamicConfigValue(id_val="displayName", value=name)


def links(*pairs: tuple[str, str]) -> model.DynamicConfigValue:
    return model.DynamicConfigValue(
        id_val="links", value=[model.DashboardLink(title=title, url=url) for title, url in pairs]
    )


def level_mappings() -> list[model.ValueMapping]:
    return [model.ValueMap(options={
        level: model.ValueMappingResult(text=f"{LEVEL_ZH[level]} {level}", color=LEVEL_COLOR[level], index=i)
        for i, level in enumerate((*LEVELS, "none"))
    })]


def hidden() -> model.DynamicConfigValue:
    return model.DynamicConfigValue(id_val="custom.hidden", value=True)


def color_cells() -> model.DynamicConfigValue:
    return model.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background"})


P = Any  # the SDK's panel builders share no base class with the override methods


def by_level(panel: P) -> P:
    """Colour (and name) series or fields called blue/yellow/orange/red by their level."""
    for level in LEVELS:
        panel = panel.override_by_name(level, [
            fixed_color(LEVEL_COLOR[level]), display_name(f"{LEVEL_ZH[level]} {level}"),
        ])
    return panel


def legend(placement: common.LegendPlacement = common.LegendPlacement.BOTTOM) -> common_builders.VizLegendOptions:
    return (common_builders.VizLegendOptions().show_legend(True).placement(placement)
            .display_mode(common.LegendDisplayMode.LIST))


def last_value() -> common_builders.ReduceDataOptions:
    return common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def multi_variable(name: str, label: str, description: str, query: str) -> dash.QueryVariable:
    return (dash.QueryVariable(name).label(label).description(description).datasource(PROMETHEUS)
            .query(query).multi(True).include_all(True).all_value(".*")
            .refresh(model.VariableRefresh.ON_DASHBOARD_LOAD).sort(model.VariableSort.ALPHABETICAL_ASC)
            .current(model.VariableOption(text=["All"], value=["$__all"], selected=True)))


def cases_url_variable() -> dash.TextBoxVariable:
    return (dash.TextBoxVariable("cases_url").label("案件系统 case desk URL")
            .description("Base URL of the case desk (yujing cases serve) that table links open.")
            .default_value(DEFAULT_CASES_URL)
            .current(model.VariableOption(text=DEFAULT_CASES_URL, value=DEFAULT_CASES_URL, selected=True)))


def builtin_annotations() -> dash.AnnotationQuery:
    """Grafana's own annotations and alerts (what Grafana adds to every new dashboard)."""
    return (dash.AnnotationQuery().name("Annotations & Alerts").built_in(1).type("dashboard")
            .datasource(model.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
            .enable(True).hide(True).icon_color("rgba(0, 211, 255, 1)"))


def dashboard_links() -> list[dash.DashboardLink]:
    return [dash.DashboardLink("预付卡预警 dashboards").type(model.DashboardLinkType.DASHBOARDS)
            .tags(["yujing"]).as_dropdown(True).keep_time(True).include_vars(False)]


class Ids:
    """Panel ids, unique within a dashboard and stable across runs."""

    def __init__(self) -> None:
        self.last = 0

    def __call__(self) -> int:
        self.last += 1
        return self.last


# --- 监管总览 regulator overview -----------------------------------------------------------------

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


def overview() -> dash.Dashboard:
    next_id = Ids()
    active = f'yujing_active_warnings{{level=~"$level", {PROM_FILTER}}}'
    new_warnings = (f'yujing_warnings_total{{transition=~"raised|escalated", level=~"$level", '
                    f'{PROM_FILTER}}}')
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

    board = board.with_panel(by_level(
        stat.Panel().id(next_id()).title("当前预警商户（按等级）").span(8).height(6)
        .description("Merchants currently holding each warning level (sum of the workers' "
                     "yujing_active_warnings gauges), for the selected towns and industries.")
        .datasource(PROMETHEUS).with_target(prom(f"sum by (level) ({active})", "{{level}}", instant=True))
        .reduce_options(last_value()).color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE).text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .unit("short").decimals(0)
    ))
    board = board.with_panel(
        bargauge.Panel().id(next_id()).title("按镇街（当前预警商户）").span(8).height(6)
        .description("Merchants currently holding a selected warning level, by town (largest first).")
        .datasource(PROMETHEUS)
        .with_target(prom(f"sort_desc(sum by (town) ({active}))", "{{town}}", instant=True))
        .orientation(common.VizOrientation.HORIZONTAL).display_mode(common.BarGaugeDisplayMode.BASIC)
        .reduce_options(last_value()).unit("short").decimals(0).min(0)
        .color_scheme(dash.FieldColor().mode(model.FieldColorModeId.CONTINUOUS_YL_RD))
    )
    board = board.with_panel(
        bargauge.Panel().id(next_id()).title("按行业（当前预警商户）").span(8).height(6)
        .description("Merchants currently holding a selected warning level, by industry (largest first).")
        .datasource(PROMETHEUS)
        .with_target(prom(f"sort_desc(sum by (industry) ({active}))", "{{industry}}", instant=True))
        .orientation(common.VizOrientation.HORIZONTAL).display_mode(common.BarGaugeDisplayMode.BASIC)
        .reduce_options(last_value()).unit("short").decimals(0).min(0)
        .color_scheme(dash.FieldColor().mode(model.FieldColorModeId.CONTINUOUS_YL_RD))
    )
    board = board.with_panel(by_level(
        timeseries.Panel().id(next_id()).title("新增预警趋势（实时）").span(12).height(8)
        .description("Warnings raised or escalated as the worker sends them (wall-clock time), by level: "
                     "increase of yujing_warnings_total over Grafana's rate interval.")
        .datasource(PROMETHEUS)
        .with_target(prom(f"sum by (level) (increase({new_warnings}[$__rate_interval]))", "{{level}}"))
        .draw_style(common.GraphDrawStyle.BARS).fill_opacity(80).unit("short").min(0)
        .stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL)).legend(legend())
    ))
    board = board.with_panel(by_level(
        timeseries.Panel().id(next_id()).title("新增预警趋势（按事件日）").span(12).height(8)
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
        .draw_style(common.GraphDrawStyle.BARS).fill_opacity(80).unit("short").min(0)
        .stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL)).legend(legend())
    ))
    board = board.with_panel(
        timeseries.Panel().id(next_id()).title("投诉趋势（按事件日）").span(12).height(8)
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
        .draw_style(common.GraphDrawStyle.BARS).fill_opacity(70).unit("short").min(0).legend(legend())
        .color_scheme(dash.FieldColor().mode(model.FieldColorModeId.FIXED).fixed_color("purple"))
    )
    board = board.with_panel(
        bargauge.Panel().id(next_id()).title("风险评分分布").span(12).height(8)
        .description("How the composite risk scores of the merchant-days scored in the selected time "
                     "range are distributed: merchant-days per 0.1 of score (yujing_risk_score histogram, "
                     "buckets de-cumulated by Grafana's heatmap format).")
        .datasource(PROMETHEUS)
        .with_target(prom(
            'sum by (le) (increase(yujing_risk_score_bucket{industry=~"$industry"}[$__range]))',
            "{{le}}", instant=True, fmt=PromQueryFormat.HEATMAP))
        .orientation(common.VizOrientation.VERTICAL).display_mode(common.BarGaugeDisplayMode.BASIC)
        .reduce_options(last_value()).unit("short").decimals(0).min(0)
        .color_scheme(dash.FieldColor().mode(model.FieldColorModeId.CONTINUOUS_GR_YL_RD))
    )
    red_list = (
        table.Panel().id(next_id()).title("当前红橙名单").span(24).height(10)
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
        .override_by_name("level", [display_name("等级 level"), color_cells(),
                                    model.DynamicConfigValue(id_val="mappings", value=level_mappings())])
        .override_by_name("since", [display_name("起始 since")])
        .override_by_name("case_id", [display_name("案件 case"),
                                      links(("打开案件 open case", "${cases_url}/cases/${__value.raw}"))])
        .override_by_name("merchant_id", [hidden()])
    )
    board = board.with_panel(red_list)
    states = (
        bargauge.Panel().id(next_id()).title("案件状态").span(12).height(7)
        .description("Cases in the case desk by state (yujing_cases gauge, all levels).")
        .datasource(PROMETHEUS)
        .with_target(prom("max by (state) (yujing_cases)", "{{state}}", instant=True))
        .orientation(common.VizOrientation.HORIZONTAL).display_mode(common.BarGaugeDisplayMode.BASIC)
        .reduce_options(last_value()).unit("short").decimals(0).min(0)
        .color_scheme(dash.FieldColor().mode(model.FieldColorModeId.FIXED).fixed_color("blue"))
    )
    for state, zh in CASE_STATES.items():
        states = states.override_by_name(state, [display_name(f"{zh} {state}")])
    board = board.with_panel(states)
    board = board.with_panel(by_level(
        stat.Panel().id(next_id()).title("超期案件").span(12).height(7)
        .description("Open cases past their response deadline, by level (yujing_cases_overdue).")
        .datasource(PROMETHEUS)
        .with_target(prom("max by (level) (yujing_cases_overdue)", "{{level}}", instant=True))
        .reduce_options(last_value()).color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.NONE).text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .unit("short").decimals(0)
    ))
    findings = (
        bargauge.Panel().id(next_id()).title("合规发现").span(24).height(6)
        .description("Compliance findings not yet cleared, by code (yujing_compliance_findings, open or "
                     "acknowledged): cap breaches, missing custody reports, custody shortfalls. They are "
                     "for the compliance desk (/compliance in the case desk) and raise the risk level only "
                     "as far as their learned weights do (docs/compliance.md).")
        .datasource(PROMETHEUS)
        .with_target(prom('sum by (code) (max by (code, status) '
                          '(yujing_compliance_findings{status=~"open|acknowledged"}))', "{{code}}", instant=True))
        .orientation(common.VizOrientation.HORIZONTAL).display_mode(common.BarGaugeDisplayMode.BASIC)
        .reduce_options(last_value()).unit("short").decimals(0).min(0)
        .color_scheme(dash.FieldColor().mode(model.FieldColorModeId.FIXED).fixed_color("purple"))
    )
    return board.with_panel(by_indicator(findings))


# --- 商户画像 merchant drill-down ----------------------------------------------------------------

MERCHANT_WHERE = "merchant_id = '$merchant' AND $__timeFilter(day)"


def indicator_names() -> dict[str, str]:
    return {row["code"]: f"{row['name_zh']} {row['code']}" for row in indicator_rows()}


def by_indicator(panel: P) -> P:
    for code, name in indicator_names().items():
        panel = panel.override_by_name(code, [display_name(name)])
    return panel


def merchant() -> dash.Dashboard:
    next_id = Ids()
    board = (
        dash.Dashboard("商户画像").uid(MERCHANT_UID).tags(TAGS)
        .description("One merchant's history as the worker scored it, day by day in event time: score, "
                     "level, indicator readings, money, complaints, warnings and cases.")
        .time("now-1y", "now").timezone("browser").readonly()
        .tooltip(model.DashboardCursorSync.CROSSHAIR).links(dashboard_links())
        .annotation(builtin_annotations())
        .with_variable(
            dash.QueryVariable("merchant").label("商户 merchant").datasource(POSTGRES)
            .description("Merchants with scored days, highest peak score first.")
            .query(_dedent("""
                SELECT merchant_id AS __value, coalesce(max(merchant_name) || ' · ', '') || merchant_id AS __text
                FROM merchant_days
                GROUP BY merchant_id
                ORDER BY max(score) DESC, merchant_id
            """))
            .refresh(model.VariableRefresh.ON_DASHBOARD_LOAD).sort(model.VariableSort.DISABLED))
        .with_variable(cases_url_variable())
    )
    board = board.with_panel(
        table.Panel().id(next_id()).title("商户概况").span(24).height(4)
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
        .override_by_name("level", [color_cells(),
                                    model.DynamicConfigValue(id_val="mappings", value=level_mappings())])
        .override_by_name("score", [model.DynamicConfigValue(id_val="decimals", value=3)])
    )
    board = board.with_panel(
        timeseries.Panel().id(next_id()).title("综合风险评分").span(12).height(8)
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
    board = board.with_panel(
        statetimeline.Panel().id(next_id()).title("预警等级").span(12).height(8)
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
    board = board.with_panel(by_indicator(
        timeseries.Panel().id(next_id()).title("指标读数").span(12).height(9)
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
    ))
    board = board.with_panel(by_indicator(
        timeseries.Panel().id(next_id()).title("评分贡献").span(12).height(9)
        .description("What each indicator added to the score per event day (weight x reading, before "
                     "the groups are fused), stacked (merchant_indicator_days.contribution).")
        .datasource(POSTGRES)
        .with_target(sql(f"""
            SELECT day::timestamp AS time, code AS metric, contribution
            FROM merchant_indicator_days
            WHERE {MERCHANT_WHERE}
            ORDER BY day, code
        """))
        .draw_style(common.GraphDrawStyle.BARS).fill_opacity(80).min(0)
        .stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
        .legend(legend(common.LegendPlacement.RIGHT))
    ))
    board = board.with_panel(
        timeseries.Panel().id(next_id()).title("预收资金与存管").span(12).height(9)
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
    board = board.with_panel(
        timeseries.Panel().id(next_id()).title("每日投诉").span(12).height(9)
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
        .draw_style(common.GraphDrawStyle.BARS).fill_opacity(70).unit("short").min(0).legend(legend())
        .override_by_name("28日投诉 complaints 28d", [
            model.DynamicConfigValue(id_val="custom.drawStyle", value="line"),
            model.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
        ])
    )
    board = board.with_panel(
        table.Panel().id(next_id()).title("等级变化记录").span(24).height(8)
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
        .override_by_name("level", [color_cells(),
                                    model.DynamicConfigValue(id_val="mappings", value=level_mappings())])
        .override_by_name("previous_level", [model.DynamicConfigValue(id_val="mappings", value=level_mappings())])
        .override_by_name("score", [model.DynamicConfigValue(id_val="decimals", value=3)])
        .override_by_name("reason", [model.DynamicConfigValue(id_val="custom.width", value=600)])
    )
    board = board.with_panel(
        table.Panel().id(next_id()).title("相关案件").span(24).height(6)
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
        .override_by_name("level", [model.DynamicConfigValue(id_val="mappings", value=level_mappings())])
        .override_by_name("max_level", [model.DynamicConfigValue(id_val="mappings", value=level_mappings())])
    )
    return board


# --- 管道健康 pipeline health --------------------------------------------------------------------

def pipeline() -> dash.Dashboard:
    next_id = Ids()
    board = (
        dash.Dashboard("管道健康").uid(PIPELINE_UID).tags(TAGS)
        .description("Is the pipeline healthy: throughput, lag, latency, dead letters, errors, event time, "
                     "state and the processes of the scoring workers and the case service.")
        .time("now-3h", "now").refresh("30s").timezone("browser").readonly()
        .tooltip(model.DashboardCursorSync.CROSSHAIR).links(dashboard_links())
        .annotation(builtin_annotations())
    )
    up = {"1": model.ValueMappingResult(text="在线 up", color="green", index=0),
          "0": model.ValueMappingResult(text="离线 down", color="red", index=1)}
    panels: list[Any] = [
        stat.Panel().title("抓取目标在线").span(8).height(5)
        .description("Whether Prometheus can scrape each worker and case service (up).")
        .with_target(prom('up{job=~"yujing-.*"}', "{{job}} {{instance}}", instant=True))
        .reduce_options(last_value()).color_mode(common.BigValueColorMode.BACKGROUND)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME).graph_mode(common.BigValueGraphMode.NONE)
        .mappings([model.ValueMap(options=up)]),
        stat.Panel().title("事件时间水位滞后").span(8).height(5)
        .description("How far the event-time watermark (end of the last day closed on every worker "
                     "partition) trails the wall clock: time() - min(yujing_event_time_watermark_seconds > 0) (0: no day closed yet).")
        .with_target(prom("time() - min(yujing_event_time_watermark_seconds > 0)", "watermark age", instant=True))
        .reduce_options(last_value()).unit("s").graph_mode(common.BigValueGraphMode.NONE),
        stat.Panel().title("待推送").span(8).height(5)
        .description("Webhook pushes and feedback records queued in the case service's outbox and not yet "
                     "delivered (yujing_outbox_pending).")
        .with_target(prom("max by (kind) (yujing_outbox_pending)", "{{kind}}", instant=True))
        .reduce_options(last_value()).unit("short").decimals(0).graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME),
        timeseries.Panel().title("吞吐量（按主题）").span(12).height(8)
        .description("Input records consumed per second by the workers, by topic "
                     "(rate of yujing_events_consumed_total).")
        .with_target(prom("sum by (topic) (rate(yujing_events_consumed_total[$__rate_interval]))", "{{topic}}"))
        .unit("cps").min(0).legend(legend()),
        timeseries.Panel().title("消费积压").span(12).height(8)
        .description("Records behind the end of the input topics (workers) and of the warnings and "
                     "merchant-days topics (case service).")
        .with_target(prom("sum by (topic) (yujing_consumer_lag_records)", "worker {{topic}}"))
        .with_target(prom("sum by (topic) (yujing_case_consumer_lag_records)", "cases {{topic}}", "B"))
        .unit("short").min(0).legend(legend()),
        timeseries.Panel().title("事件到预警延迟").span(12).height(8)
        .description("From the Kafka timestamp of the record that closed a day to its warning being sent: "
                     "median and 95th percentile (yujing_event_to_warning_latency_seconds).")
        .with_target(quantile(0.5, "yujing_event_to_warning_latency_seconds_bucket", "p50"))
        .with_target(quantile(0.95, "yujing_event_to_warning_latency_seconds_bucket", "p95", "B"))
        .unit("s").min(0).legend(legend()),
        timeseries.Panel().title("单条事件处理耗时").span(12).height(8)
        .description("Time to process one input record, decode to last send: median and 95th percentile "
                     "(yujing_event_processing_seconds).")
        .with_target(quantile(0.5, "yujing_event_processing_seconds_bucket", "p50"))
        .with_target(quantile(0.95, "yujing_event_processing_seconds_bucket", "p95", "B"))
        .unit("s").min(0).legend(legend()),
        timeseries.Panel().title("死信（按主题与原因）").span(12).height(8)
        .description("Input records sent to the dead-letter topic, by topic and reason "
                     "(increase of yujing_events_deadlettered_total).")
        .with_target(prom(
            "sum by (topic, reason) (increase(yujing_events_deadlettered_total[$__rate_interval]))",
            "{{topic}} {{reason}}"))
        .draw_style(common.GraphDrawStyle.BARS).fill_opacity(80).unit("short").min(0)
        .stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL)).legend(legend()),
        timeseries.Panel().title("重复与迟到事件").span(12).height(8)
        .description("Redelivered records ignored as duplicates and records beyond the allowed lateness, "
                     "by topic (yujing_events_duplicate_total, yujing_events_late_total).")
        .with_target(prom("sum by (topic) (increase(yujing_events_duplicate_total[$__rate_interval]))",
                          "duplicate {{topic}}"))
        .with_target(prom("sum by (topic) (increase(yujing_events_late_total[$__rate_interval]))",
                          "late {{topic}}", "B"))
        .draw_style(common.GraphDrawStyle.BARS).fill_opacity(80).unit("short").min(0).legend(legend()),
        timeseries.Panel().title("错误").span(12).height(8)
        .description("Failures: worker errors by kind, case service errors by kind, webhook deliveries "
                     "that will be retried or failed for good, and worker partitions found stalled and "
                     "read again (by topic).")
        .with_target(prom("sum by (kind) (increase(yujing_worker_errors_total[$__rate_interval]))",
                          "worker {{kind}}"))
        .with_target(prom("sum by (kind) (increase(yujing_case_errors_total[$__rate_interval]))",
                          "cases {{kind}}", "B"))
        .with_target(prom(
            'sum by (outcome) (increase(yujing_webhook_deliveries_total{outcome=~"retry|failed"}'
            '[$__rate_interval]))', "webhook {{outcome}}", "C"))
        .with_target(prom("sum by (topic) (increase(yujing_partition_stalls_total[$__rate_interval]))",
                          "stalled {{topic}}", "D"))
        .draw_style(common.GraphDrawStyle.BARS).fill_opacity(80).unit("short").min(0).legend(legend()),
        timeseries.Panel().title("案件服务接收").span(12).height(8)
        .description("Warnings the case service read per second, by what the alert policy did with them, "
                     "and merchant-day history rows written per second.")
        .with_target(prom("sum by (action) (rate(yujing_case_warnings_ingested_total[$__rate_interval]))",
                          "{{action}}"))
        .with_target(prom("sum(rate(yujing_merchant_days_recorded_total[$__rate_interval]))",
                          "merchant-days", "B"))
        .unit("cps").min(0).legend(legend()),
        timeseries.Panel().title("状态表大小").span(12).height(8)
        .description("Entries in each of the workers' state tables (yujing_state_entries), summed over "
                     "workers.")
        .with_target(prom("sum by (table) (yujing_state_entries)", "{{table}}"))
        .unit("short").min(0).legend(legend()),
        timeseries.Panel().title("内存").span(12).height(8)
        .description("Resident memory of each worker and case service process "
                     "(process_resident_memory_bytes).")
        .with_target(prom('process_resident_memory_bytes{job=~"yujing-.*"}', "{{job}} {{instance}}"))
        .unit("bytes").min(0).legend(legend()),
    ]
    for panel in panels:
        board = board.with_panel(panel.id(next_id()).datasource(PROMETHEUS))
    return board


# --- output -------------------------------------------------------------------------------------

BUILDERS: dict[str, Callable[[], dash.Dashboard]] = {
    OVERVIEW_UID: overview, MERCHANT_UID: merchant, PIPELINE_UID: pipeline,
}


def dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard as Grafana JSON (plain dicts), by uid."""
    return {uid: json.loads(json.dumps(build().build(), cls=JSONEncoder)) for uid, build in BUILDERS.items()}


def render(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


Kind = Literal["prometheus", "postgres"]
Role = Literal["target", "variable", "annotation"]


@dataclass(frozen=True)
class Query:
    """One query a dashboard sends to a datasource."""

    dashboard: str  # dashboard uid
    panel: str  # panel title, or the variable's / annotation's name
    kind: Kind
    expr: str  # as stored in the dashboard
    role: Role = "target"
    ref_id: str = ""
    legend: str = ""

    @property
    def promql(self) -> str:
        """The PromQL to evaluate: Grafana's ``label_values(metric, label)`` (a variable query, not
        PromQL) becomes ``group by (label) (metric)``, which returns one series per value."""
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", self.expr.strip())
        return f"group by ({match[2]}) ({match[1]})" if match else self.expr


def _kind(datasource: Any) -> Kind:
    uid = datasource.get("uid") if isinstance(datasource, dict) else None
    if uid not in DATASOURCE_KINDS:
        raise ValueError(f"unknown datasource {datasource!r}")
    return DATASOURCE_KINDS[uid]  # type: ignore[return-value]


def queries_of(board: dict[str, Any]) -> list[Query]:
    uid = board["uid"]
    found = []
    for panel in board.get("panels", []):
        for target in panel.get("targets", []):
            kind = _kind(target.get("datasource") or panel.get("datasource"))
            expr = target.get("expr") if kind == "prometheus" else target.get("rawSql")
            found.append(Query(uid, panel["title"], kind, expr or "", "target", target.get("refId", ""),
                               target.get("legendFormat", "")))
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            found.append(Query(uid, variable["name"], _kind(variable.get("datasource")),
                               query if isinstance(query, str) else str(query.get("query") or query.get("rawSql")),
                               "variable"))
    for annotation in board.get("annotations", {}).get("list", []):
        if annotation.get("builtIn"):
            continue
        target = annotation.get("target") or {}
        kind = _kind(annotation.get("datasource"))
        expr = (annotation.get("expr") or annotation.get("rawQuery") or target.get("expr")
                or target.get("rawSql") or "")
        found.append(Query(uid, annotation["name"], kind, expr, "annotation"))
    return found


def all_queries() -> list[Query]:
    """Every query of every dashboard: panel targets, template variables, annotations."""
    return [query for board in dashboards().values() for query in queries_of(board)]


# Grafana's macros and variables, filled in as Grafana does with every multi-value variable at
# "All" (its custom value .*). Only these may appear in a query (a test checks it).
PROMQL_MACROS = ("$__rate_interval", "$__range", "$__interval", "$town", "$industry", "$level")
SQL_MACROS = ("$__timeFilter(", "$__timeFrom()", "$__timeTo()", "$merchant",
              "${town:regex}", "${industry:regex}", "${level:regex}", "${cases_url}")


def substitute(query: Query, *, time_from: datetime, time_to: datetime, merchant: str = "",
               rate_interval: str = "1m", cases_url: str = DEFAULT_CASES_URL) -> str:
    """The query as Grafana would send it with town/industry/level at "All" (``.*``).

    PromQL gets ``promql`` (variables' ``label_values`` rewritten); the range
    ``[$__range]`` becomes the whole window in seconds. SQL gets Grafana's PostgreSQL macros:
    ``$__timeFilter(c)`` is ``c BETWEEN '<from>' AND '<to>'`` (RFC 3339, UTC).

    >>> q = Query("d", "p", "postgres", "SELECT 1 WHERE $__timeFilter(day) AND m = '$merchant'")
    >>> substitute(q, time_from=datetime(2025, 9, 1, tzinfo=UTC),
    ...            time_to=datetime(2025, 10, 1, tzinfo=UTC), merchant="M1")
    "SELECT 1 WHERE day BETWEEN '2025-09-01T00:00:00Z' AND '2025-10-01T00:00:00Z' AND m = 'M1'"
    """
    if query.kind == "prometheus":
        text = query.promql
        seconds = max(1, int((time_to - time_from).total_seconds()))
        for name, value in (("$__rate_interval", rate_interval), ("$__range", f"{seconds}s"),
                            ("$__interval", "15s"), ("$town", ".*"), ("$industry", ".*"), ("$level", ".*")):
            text = text.replace(name, value)
        return text

    def stamp(moment: datetime) -> str:
        aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    text = re.sub(r"\$__timeFilter\(([^)]*)\)",
                  lambda m: f"{m[1].strip()} BETWEEN '{stamp(time_from)}' AND '{stamp(time_to)}'", query.expr)
    text = text.replace("$__timeFrom()", f"'{stamp(time_from)}'").replace("$__timeTo()", f"'{stamp(time_to)}'")
    for name, value in (("${town:regex}", ".*"), ("${industry:regex}", ".*"), ("${level:regex}", ".*"),
                        ("${cases_url}", cases_url), ("$merchant", merchant)):
        text = text.replace(name, value)
    return text


# --- README catalogue ---------------------------------------------------------------------------

def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def catalogue(boards: dict[str, dict[str, Any]] | None = None) -> str:
    """The README block: one table per dashboard, every panel with what it shows and its queries."""
    boards = boards if boards is not None else dashboards()
    lines = [
        README_START,
        "<!-- generated by `python -m deploy.grafana.dashboards` from deploy/grafana/dashboards.py; "
        "do not edit by hand (`--check` fails when this block or the JSON is stale) -->",
        "",
        "Three dashboards, generated as code with grafana-foundation-sdk into `deploy/grafana/dashboards/` "
        "and provisioned, with their Prometheus and PostgreSQL datasources, from "
        "`deploy/grafana/provisioning/` into the folder 预付卡预警. Multi-value variables (`town`, "
        "`industry`, `level`) have the \"All\" value `.*`; SQL uses their `:regex` form. Links in the "
        "tables open the case desk at `${cases_url}` (a text box, default " + DEFAULT_CASES_URL + ").",
        "",
    ]
    for board in boards.values():
        lines += [f"#### {board['title']} {ENGLISH_TITLES.get(board['uid'], '')} (`{board['uid']}`)",
                  "", board["description"], ""]
        variables = [v for v in board.get("templating", {}).get("list", [])]
        if variables:
            lines += ["Variables: " + "; ".join(
                f"`{v['name']}` = `{_cell(str(v.get('query', '')))}`" for v in variables) + ".", ""]
        queries = queries_of(board)
        lines += ["| panel | shows | query |", "|---|---|---|"]
        for panel in board.get("panels", []):
            exprs = [q for q in queries if q.role == "target" and q.panel == panel["title"]]
            cell = "<br>".join(f"`{_cell(q.expr)}`" for q in exprs)
            lines.append(f"| {panel['title']} | {_cell(panel.get('description', ''))} | {cell} |")
        lines.append("")
    lines.append(README_END)
    return "\n".join(lines)


def readme_with_catalogue(readme: str, block: str) -> str:
    start, end = readme.find(README_START), readme.find(README_END)
    if start < 0 or end < start:
        raise SystemExit(f"README.md lacks the {README_START} ... {README_END} markers")
    return readme[:start] + block + readme[end + len(README_END):]


# --- command line -------------------------------------------------------------------------------

def outputs() -> dict[Path, str]:
    """Every generated file and its content."""
    boards = dashboards()
    files = {OUT_DIR / f"{uid}.json": render(board) for uid, board in boards.items()}
    files[README] = readme_with_catalogue(README.read_text(encoding="utf-8"), catalogue(boards))
    return files


def stale(files: dict[Path, str]) -> list[Path]:
    return [path for path, text in files.items()
            if not path.exists() or path.read_text(encoding="utf-8") != text]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.grafana.dashboards", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a dashboard file or the README block is stale")
    args = parser.parse_args(argv)
    files = outputs()
    outdated = stale(files)
    if args.check:
        if outdated:
            names = ", ".join(_name(path) for path in outdated)
            sys.stderr.write(f"stale: {names} (run python -m deploy.grafana.dashboards)\n")
            return 1
        return 0
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for path in outdated:
        path.write_text(files[path], encoding="utf-8")
    _report(outdated)
    return 0


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _report(paths: Iterable[Path]) -> None:
    written = [_name(path) for path in paths]
    sys.stdout.write(("wrote " + ", ".join(written) if written else "up to date") + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
