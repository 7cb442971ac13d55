"""What the three dashboards share: their uids and tags, the warning levels' names and colours,
field overrides, legends, the case desk URL variable, Grafana's built-in annotations and the
links between the dashboards."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from models.indicator_docs import indicator_rows

OVERVIEW_UID, MERCHANT_UID, PIPELINE_UID = "yujing-overview", "yujing-merchant", "yujing-pipeline"
TAGS = ["yujing", "预付卡预警"]
DEFAULT_CASES_URL = "http://localhost:8470"

LEVELS = ("blue", "yellow", "orange", "red")
LEVEL_ZH = {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色", "none": "无"}
LEVEL_COLOR = {"blue": "blue", "yellow": "yellow", "orange": "orange", "red": "red", "none": "green"}

P = Any  # the SDK's panel builders share no base class with the override methods


# --- field overrides ----------------------------------------------------------------------------

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


def level_names() -> model.DynamicConfigValue:
    """A field of levels shown by their Chinese and English names, in their colours."""
    return model.DynamicConfigValue(id_val="mappings", value=level_mappings())


def decimals(places: int) -> model.DynamicConfigValue:
    return model.DynamicConfigValue(id_val="decimals", value=places)


def hidden() -> model.DynamicConfigValue:
    return model.DynamicConfigValue(id_val="custom.hidden", value=True)


def color_cells() -> model.DynamicConfigValue:
    return model.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background"})


def by_level(panel: P) -> P:
    """Colour (and name) series or fields called blue/yellow/orange/red by their level."""
    for level in LEVELS:
        panel = panel.override_by_name(level, [
            fixed_color(LEVEL_COLOR[level]), display_name(f"{LEVEL_ZH[level]} {level}"),
        ])
    return panel


def indicator_names() -> dict[str, str]:
    return {row["code"]: f"{row['name_zh']} {row['code']}" for row in indicator_rows()}


def by_indicator(panel: P) -> P:
    """Name series or fields called by an indicator code with the indicator's Chinese name."""
    for code, name in indicator_names().items():
        panel = panel.override_by_name(code, [display_name(name)])
    return panel


# --- panel options ------------------------------------------------------------------------------

def legend(placement: common.LegendPlacement = common.LegendPlacement.BOTTOM) -> common_builders.VizLegendOptions:
    return (common_builders.VizLegendOptions().show_legend(True).placement(placement)
            .display_mode(common.LegendDisplayMode.LIST))


def last_value() -> common_builders.ReduceDataOptions:
    return common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def bars(panel: P, fill_opacity: int = 80, *, stacked: bool = False) -> P:
    """A time series drawn as bars (counts per interval or per day), stacked if asked."""
    panel = panel.draw_style(common.GraphDrawStyle.BARS).fill_opacity(fill_opacity)
    if stacked:
        panel = panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    return panel


# --- dashboard parts ----------------------------------------------------------------------------

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


def with_panels(board: dash.Dashboard, panels: Iterable[P]) -> dash.Dashboard:
    """The board with the panels in order, numbered 1, 2, ...: ids unique within the dashboard and
    stable across runs."""
    for panel_id, panel in enumerate(panels, start=1):
        board = board.with_panel(panel.id(panel_id))
    return board
