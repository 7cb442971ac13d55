"""管道健康 (pipeline health): throughput, lag, latency, dead letters, errors, event time, state and
the processes of the scoring workers and the case service, all from Prometheus."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import stat, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from deploy.grafana.panels import (
    PIPELINE_UID,
    TAGS,
    P,
    bars,
    builtin_annotations,
    dashboard_links,
    last_value,
    legend,
    with_panels,
)
from deploy.grafana.targets import PROMETHEUS, prom, quantile


def dashboard() -> dash.Dashboard:
    board = (
        dash.Dashboard("管道健康").uid(PIPELINE_UID).tags(TAGS)
        .description("Is the pipeline healthy: throughput, lag, latency, dead letters, errors, event time, "
                     "state and the processes of the scoring workers and the case service.")
        .time("now-3h", "now").refresh("30s").timezone("browser").readonly()
        .tooltip(model.DashboardCursorSync.CROSSHAIR).links(dashboard_links())
        .annotation(builtin_annotations())
    )
    panels: list[P] = [
        scrape_targets_up(), watermark_lag(), outbox_pending(),
        throughput(), consumer_lag(), event_to_warning_latency(), processing_time(),
        dead_letters(), duplicates_and_late(), errors(), case_ingest(),
        state_table_sizes(), memory(),
    ]
    return with_panels(board, [panel.datasource(PROMETHEUS) for panel in panels])


def over_time(title: str, description: str) -> timeseries.Panel:
    """A half-width time series with a legend."""
    return timeseries.Panel().title(title).span(12).height(8).description(description).legend(legend())


# --- status now ---------------------------------------------------------------------------------

def scrape_targets_up() -> stat.Panel:
    up = {"1": model.ValueMappingResult(text="在线 up", color="green", index=0),
          "0": model.ValueMappingResult(text="离线 down", color="red", index=1)}
    return (
        stat.Panel().title("抓取目标在线").span(8).height(5)
        .description("Whether Prometheus can scrape each worker and case service (up).")
        .with_target(prom('up{job=~"yujing-.*"}', "{{job}} {{instance}}", instant=True))
        .reduce_options(last_value()).color_mode(common.BigValueColorMode.BACKGROUND)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME).graph_mode(common.BigValueGraphMode.NONE)
        .mappings([model.ValueMap(options=up)])
    )


def watermark_lag() -> stat.Panel:
    return (
        stat.Panel().title("事件时间水位滞后").span(8).height(5)
        .description("How far the event-time watermark (end of the last day closed on every worker "
                     "partition) trails the wall clock: time() - min(yujing_event_time_watermark_seconds > 0) (0: no day closed yet).")
        .with_target(prom("time() - min(yujing_event_time_watermark_seconds > 0)", "watermark age", instant=True))
        .reduce_options(last_value()).unit("s").graph_mode(common.BigValueGraphMode.NONE)
    )


def outbox_pending() -> stat.Panel:
    return (
        stat.Panel().title("待推送").span(8).height(5)
        .description("Webhook pushes and feedback records queued in the case service's outbox and not yet "
                     "delivered (yujing_outbox_pending).")
        .with_target(prom("max by (kind) (yujing_outbox_pending)", "{{kind}}", instant=True))
        .reduce_options(last_value()).unit("short").decimals(0).graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
    )


# --- flow ---------------------------------------------------------------------------------------

def throughput() -> timeseries.Panel:
    return (
        over_time("吞吐量（按主题）",
                  "Input records consumed per second by the workers, by topic "
                  "(rate of yujing_events_consumed_total).")
        .with_target(prom("sum by (topic) (rate(yujing_events_consumed_total[$__rate_interval]))", "{{topic}}"))
        .unit("cps").min(0)
    )


def consumer_lag() -> timeseries.Panel:
    return (
        over_time("消费积压",
                  "Records behind the end of the input topics (workers) and of the warnings and "
                  "merchant-days topics (case service).")
        .with_target(prom("sum by (topic) (yujing_consumer_lag_records)", "worker {{topic}}"))
        .with_target(prom("sum by (topic) (yujing_case_consumer_lag_records)", "cases {{topic}}", "B"))
        .unit("short").min(0)
    )


def event_to_warning_latency() -> timeseries.Panel:
    return (
        over_time("事件到预警延迟",
                  "From the Kafka timestamp of the record that closed a day to its warning being sent: "
                  "median and 95th percentile (yujing_event_to_warning_latency_seconds).")
        .with_target(quantile(0.5, "yujing_event_to_warning_latency_seconds_bucket", "p50"))
        .with_target(quantile(0.95, "yujing_event_to_warning_latency_seconds_bucket", "p95", "B"))
        .unit("s").min(0)
    )


def processing_time() -> timeseries.Panel:
    return (
        over_time("单条事件处理耗时",
                  "Time to process one input record, decode to last send: median and 95th percentile "
                  "(yujing_event_processing_seconds).")
        .with_target(quantile(0.5, "yujing_event_processing_seconds_bucket", "p50"))
        .with_target(quantile(0.95, "yujing_event_processing_seconds_bucket", "p95", "B"))
        .unit("s").min(0)
    )


# --- failures -----------------------------------------------------------------------------------

def dead_letters() -> timeseries.Panel:
    return bars(
        over_time("死信（按主题与原因）",
                  "Input records sent to the dead-letter topic, by topic and reason "
                  "(increase of yujing_events_deadlettered_total).")
        .with_target(prom(
            "sum by (topic, reason) (increase(yujing_events_deadlettered_total[$__rate_interval]))",
            "{{topic}} {{reason}}"))
        .unit("short").min(0),
        stacked=True,
    )


def duplicates_and_late() -> timeseries.Panel:
    return bars(
        over_time("重复与迟到事件",
                  "Redelivered records ignored as duplicates and records beyond the allowed lateness, "
                  "by topic (yujing_events_duplicate_total, yujing_events_late_total).")
        .with_target(prom("sum by (topic) (increase(yujing_events_duplicate_total[$__rate_interval]))",
                          "duplicate {{topic}}"))
        .with_target(prom("sum by (topic) (increase(yujing_events_late_total[$__rate_interval]))",
                          "late {{topic}}", "B"))
        .unit("short").min(0)
    )


def errors() -> timeseries.Panel:
    return bars(
        over_time("错误",
                  "Failures: worker errors by kind, case service errors by kind, webhook deliveries "
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
        .unit("short").min(0)
    )


# --- the case service, state and processes ------------------------------------------------------

def case_ingest() -> timeseries.Panel:
    return (
        over_time("案件服务接收",
                  "Warnings the case service read per second, by what the alert policy did with them, "
                  "and merchant-day history rows written per second.")
        .with_target(prom("sum by (action) (rate(yujing_case_warnings_ingested_total[$__rate_interval]))",
                          "{{action}}"))
        .with_target(prom("sum(rate(yujing_merchant_days_recorded_total[$__rate_interval]))",
                          "merchant-days", "B"))
        .unit("cps").min(0)
    )


def state_table_sizes() -> timeseries.Panel:
    return (
        over_time("状态表大小",
                  "Entries in each of the workers' state tables (yujing_state_entries), summed over "
                  "workers.")
        .with_target(prom("sum by (table) (yujing_state_entries)", "{{table}}"))
        .unit("short").min(0)
    )


def memory() -> timeseries.Panel:
    return (
        over_time("内存",
                  "Resident memory of each worker and case service process "
                  "(process_resident_memory_bytes).")
        .with_target(prom('process_resident_memory_bytes{job=~"yujing-.*"}', "{{job}} {{instance}}"))
        .unit("bytes").min(0)
    )
